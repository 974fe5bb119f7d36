/* SPDX-License-Identifier: Apache-2.0 */
/* agstore init, ls, versions, show: looking at what a store holds. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/provenance.h"
#include "tools/tool.h"

/* ---------- init ---------- */

static const char init_usage[] = "Usage: agstore [--store DIR] init\n"
				 "Create an empty store in DIR (missing or empty).\n";

int cmd_init(struct tool *t, int argc, char **argv)
{
	static const struct option opts[] = {TOOL_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
	int r;

	r = tool_getopt(t, argc, argv, opts, init_usage, NULL, NULL);
	if (r >= 0)
		return r;
	if (optind != argc)
		return tool_fail(t, EX_AG_USAGE, "init takes no operand (see agstore init --help)");
	r = ag_store_init(t->store_path); /* it writes the STORE_INIT audit event */
	if (r == -EEXIST)
		return tool_fail(t, EX_AG_PROBLEM, "%s is already an agfs store", t->store_path);
	if (r == -AG_ENOTSTORE)
		return tool_fail(t, EX_AG_PROBLEM, "%s is neither empty nor an agfs store",
				 t->store_path);
	if (r < 0)
		return tool_fail_err(t, r, "cannot create a store in %s", t->store_path);
	if (!t->json)
		printf("initialised an empty store in %s\n", t->store_path);
	else
		out_json(json_pack("{s:s,s:i}", "store", t->store_path, "format",
				   AG_FORMAT_VERSION));
	return EX_AG_OK;
}

/* ---------- ls ---------- */

static const char ls_usage[] =
	"Usage: agstore [--store DIR] [--json] ls [GEN]\n"
	"List the models of the current generation, or of generation GEN:\n"
	"name, ID (the manifest's SHA-256, as `ollama list` shows it), size,\n"
	"when the manifest entered the store, and the bundle that brought it (the\n"
	"label of the first generation holding that manifest).\n";

/* The generations up to g (which bundle brought each model). */
struct prov {
	ag_gen **gens;
	size_t n;
	uint64_t upto;
};

static const ag_gen *prov_of(const struct prov *p, const ag_model *m)
{
	return p ? ag_provenance_find((const ag_gen *const *)p->gens, p->n, p->upto, &m->manifest)
		 : NULL;
}

/* bundle_label, bundle_sha256, from_generation (null when unknown). */
static void prov_json(json_t *o, const ag_gen *from)
{
	if (!o)
		return;
	json_object_set_new(o, "bundle_label", json_str_or_null(from ? from->label : NULL));
	json_object_set_new(o, "bundle_sha256",
			    from && from->has_source_sha256 ? json_digest(&from->source_sha256)
							    : json_null());
	json_object_set_new(o, "from_generation",
			    from ? json_integer((json_int_t)from->id) : json_null());
}

static json_t *model_json(const ag_model *m)
{
	_cleanup_free_ char *disp = ag_name_display(m->name);

	return json_pack("{s:s,s:s,s:o,s:I,s:o}", "name", disp ? disp : m->name, "path", m->name,
			 "digest", json_digest(&m->manifest), "size", (json_int_t)model_size(m),
			 "added", json_time(m->added));
}

static int ls_print(struct tool *t, const ag_gen *g, const struct prov *p)
{
	static const char *const hdr[] = {"NAME", "ID", ">SIZE", "ADDED", "BUNDLE"};
	_cleanup_table_ struct table *tb = table_new(5, hdr);

	if (!tb)
		return tool_fail(t, EX_AG_IO, "out of memory");
	for (size_t i = 0; i < g->nmodels; i++) {
		const ag_model *m = &g->models[i];
		_cleanup_free_ char *disp = ag_name_display(m->name);
		char id[13], size[TOOL_SIZE_LEN], added[TOOL_TIME_LEN], bundle[160] = "-";
		const ag_gen *from = prov_of(p, m);
		fmt_digest_short(&m->manifest, id);
		fmt_size(model_size(m), size);
		fmt_time(m->added, added);
		if (from)
			snprintf(bundle, sizeof(bundle), "%s (gen %" PRIu64 ")",
				 from->label && *from->label ? from->label : "-", from->id);
		if (table_add(tb,
			      (const char *[]){disp ? disp : m->name, id, size, added, bundle}) < 0)
			return tool_fail(t, EX_AG_IO, "out of memory");
	}
	table_print(tb, stdout);
	return EX_AG_OK;
}

static int ls_json(struct tool *t, const ag_gen *g, const struct prov *p)
{
	json_t *arr = json_array();

	for (size_t i = 0; g && i < g->nmodels; i++) {
		json_t *o = model_json(&g->models[i]);
		prov_json(o, prov_of(p, &g->models[i]));
		json_array_append_new(arr, o);
	}
	if (out_json(arr) < 0)
		return tool_fail(t, EX_AG_IO, "cannot write JSON to standard output");
	return EX_AG_OK;
}

int cmd_ls(struct tool *t, int argc, char **argv)
{
	static const struct option opts[] = {TOOL_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
	_cleanup_store_ ag_store *s = NULL;
	_cleanup_gen_ ag_gen *g = NULL;
	uint64_t id = 0;
	int r;

	r = tool_getopt(t, argc, argv, opts, ls_usage, NULL, NULL);
	if (r >= 0)
		return r;
	if (argc - optind > 1)
		return tool_fail(t, EX_AG_USAGE, "ls takes at most one generation number");
	if (optind < argc && parse_u64(argv[optind], 1, UINT64_MAX, &id) < 0)
		return tool_fail(t, EX_AG_USAGE, "'%s' is not a generation number", argv[optind]);
	r = tool_open(t, AG_RDONLY, &s);
	if (r > 0)
		return r;
	r = ag_gen_get(s, id, &g);
	if (r == -ENOENT && id == 0)
		return t->json ? ls_json(t, NULL, NULL)
			       : EX_AG_OK; /* an empty store lists nothing */
	if (r == -ENOENT)
		return tool_fail(t, EX_AG_PROBLEM, "the store %s has no generation %" PRIu64,
				 t->store_path, id);
	if (r < 0)
		return tool_fail_err(t, r, "cannot read generation %" PRIu64 " of %s", id,
				     t->store_path);
	struct prov p = {.upto = g->id};
	r = ag_gens_load(s, g->id, &p.gens, &p.n);
	if (r < 0)
		return tool_fail_err(t, r, "cannot list the generations of %s", t->store_path);
	r = t->json ? ls_json(t, g, &p) : ls_print(t, g, &p);
	ag_gens_free(p.gens, p.n);
	return r;
}

/* ---------- versions ---------- */

static const char versions_usage[] =
	"Usage: agstore [--store DIR] [--json] versions\n"
	"List generations, oldest first: id, created, label, operator, signer,\n"
	"number of models; * marks the current one.\n";

static json_t *gen_json(const ag_gen *g, uint64_t current)
{
	json_t *o =
		json_pack("{s:I,s:b,s:o,s:o,s:o,s:o,s:o,s:I}", "id", (json_int_t)g->id, "current",
			  g->id == current, "created", json_time(g->created), "label",
			  json_str_or_null(g->label), "operator",
			  json_str_or_null(g->operator_name), "source", json_str_or_null(g->source),
			  "signer", json_str_or_null(g->signer), "models", (json_int_t)g->nmodels);

	if (o && g->has_source_sha256)
		json_object_set_new(o, "source_sha256", json_digest(&g->source_sha256));
	return o;
}

static int versions_row(struct table *tb, const ag_gen *g, uint64_t current)
{
	char id[24], created[TOOL_TIME_LEN], nm[24], signer[20];
	const char *sg = NULL;

	snprintf(id, sizeof(id), "%s%" PRIu64, g->id == current ? "*" : "", g->id);
	fmt_time(g->created, created);
	snprintf(nm, sizeof(nm), "%zu", g->nmodels);
	if (g->signer) { /* the last 16 hex digits: the long key ID */
		size_t n = strlen(g->signer);
		snprintf(signer, sizeof(signer), "%s", n > 16 ? g->signer + n - 16 : g->signer);
		sg = signer;
	}
	return table_add(tb, (const char *[]){id, created, g->label, g->operator_name, sg, nm});
}

/* Calls fn for every generation in id order. */
static int each_gen(ag_store *s, int (*fn)(const ag_gen *g, void *arg), void *arg)
{
	_cleanup_free_ uint64_t *ids = NULL;
	size_t n = 0;
	int r = ag_gen_list(s, &ids, &n);

	for (size_t i = 0; r >= 0 && i < n; i++) {
		_cleanup_gen_ ag_gen *g = NULL;
		r = ag_gen_get(s, ids[i], &g);
		if (r == -ENOENT) { /* deleted by a gc since the list: skip it */
			r = 0;
			continue;
		}
		if (r >= 0)
			r = fn(g, arg);
	}
	return r;
}

struct versions_ctx {
	uint64_t current;
	struct table *tb;
	json_t *arr;
};

static int versions_one(const ag_gen *g, void *arg)
{
	struct versions_ctx *v = arg;

	if (v->arr)
		return json_array_append_new(v->arr, gen_json(g, v->current)) < 0 ? -ENOMEM : 0;
	return versions_row(v->tb, g, v->current);
}

int cmd_versions(struct tool *t, int argc, char **argv)
{
	static const struct option opts[] = {TOOL_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
	static const char *const hdr[] = {">ID",      "CREATED", "LABEL",
					  "OPERATOR", "SIGNER",	 ">MODELS"};
	_cleanup_store_ ag_store *s = NULL;
	_cleanup_table_ struct table *tb = NULL;
	_cleanup_json_ json_t *arr = NULL;
	struct versions_ctx v = {0};
	int r;

	r = tool_getopt(t, argc, argv, opts, versions_usage, NULL, NULL);
	if (r >= 0)
		return r;
	if (optind != argc)
		return tool_fail(t, EX_AG_USAGE, "versions takes no operand");
	r = tool_open(t, AG_RDONLY, &s);
	if (r > 0)
		return r;
	r = ag_current(s, &v.current);
	if (r < 0 && r != -ENOENT)
		return tool_fail_err(t, r, "cannot read the current generation of %s",
				     t->store_path);
	if (t->json)
		v.arr = arr = json_array();
	else
		v.tb = tb = table_new(6, hdr);
	if (!v.arr && !v.tb)
		return tool_fail(t, EX_AG_IO, "out of memory");
	r = each_gen(s, versions_one, &v);
	if (r < 0)
		return tool_fail_err(t, r, "cannot list the generations of %s", t->store_path);
	if (t->json)
		return out_json(TAKE_PTR(arr)) < 0 ? EX_AG_IO : EX_AG_OK;
	table_print(tb, stdout);
	return EX_AG_OK;
}

/* ---------- show ---------- */

static const char show_usage[] =
	"Usage: agstore [--store DIR] [--json] show [--gen N] NAME[:TAG]\n"
	"Show one model of the current generation (or of generation N): its\n"
	"manifest digest and size, config and layers, the generations holding it,\n"
	"and the bundle that brought it.\n";

struct show_ctx {
	const char *name;
	json_t *gens; /* ids of the generations holding the model */
};

static int show_gens(const ag_gen *g, void *arg)
{
	struct show_ctx *c = arg;

	if (ag_gen_find(g, c->name))
		json_array_append_new(c->gens, json_integer((json_int_t)g->id));
	return 0;
}

static json_t *layer_json(const ag_layer *l)
{
	return json_pack("{s:s?,s:o,s:I}", "media_type", l->media_type, "digest",
			 json_digest(&l->digest), "size", (json_int_t)l->size);
}

static void show_layer(const char *what, const ag_layer *l)
{
	char dg[80], size[TOOL_SIZE_LEN];

	fmt_digest(&l->digest, dg, sizeof(dg));
	fmt_size(l->size, size);
	printf("  %-7s %s  %10s  %s\n", what, dg, size, l->media_type ? l->media_type : "-");
}

static void show_print(const ag_model *m, json_t *gens, const ag_gen *from)
{
	_cleanup_free_ char *disp = ag_name_display(m->name);
	char dg[80], size[TOOL_SIZE_LEN], added[TOOL_TIME_LEN];
	size_t i;
	json_t *v;

	fmt_digest(&m->manifest, dg, sizeof(dg));
	fmt_size(model_size(m), size);
	fmt_time(m->added, added);
	printf("name:        %s\n", disp ? disp : m->name);
	printf("path:        manifests/%s\n", m->name);
	printf("manifest:    %s (%" PRIu64 " bytes)\n", dg, m->manifest_size);
	printf("size:        %s (%" PRIu64 " bytes)\n", size, model_size(m));
	printf("added:       %s\n", added);
	if (from) {
		char src[AG_HEX_LEN + 1] = "-";
		if (from->has_source_sha256)
			ag_digest_hex(&from->source_sha256, src);
		printf("bundle:      %s sha256:%s (generation %" PRIu64 ")\n",
		       from->label && *from->label ? from->label : "-", src, from->id);
	}
	printf("generations:");
	json_array_foreach(gens, i, v) printf(" %" JSON_INTEGER_FORMAT, json_integer_value(v));
	printf("\nblobs:\n");
	show_layer("config", &m->config);
	for (i = 0; i < m->nlayers; i++)
		show_layer("layer", &m->layers[i]);
}

static json_t *show_json(const ag_model *m, json_t *gens, const ag_gen *from)
{
	json_t *o = model_json(m), *layers = json_array();

	prov_json(o, from);
	for (size_t i = 0; i < m->nlayers; i++)
		json_array_append_new(layers, layer_json(&m->layers[i]));
	json_object_set_new(o, "manifest_size", json_integer((json_int_t)m->manifest_size));
	json_object_set_new(o, "config", layer_json(&m->config));
	json_object_set_new(o, "layers", layers);
	json_object_set(o, "generations", gens);
	return o;
}

static int show_opt(struct tool *t, int c, const char *arg, void *gen)
{
	if (parse_u64(arg, 1, UINT64_MAX, gen) < 0)
		return tool_fail(t, EX_AG_USAGE, "--gen '%s' is not a generation number", arg);
	return -1;
}

int cmd_show(struct tool *t, int argc, char **argv)
{
	static const struct option opts[] = {TOOL_COMMON_OPTIONS,
					     {"gen", required_argument, NULL, OPT_FIRST_CMD},
					     {NULL, 0, NULL, 0}};
	_cleanup_store_ ag_store *s = NULL;
	_cleanup_gen_ ag_gen *g = NULL;
	_cleanup_free_ char *name = NULL;
	_cleanup_json_ json_t *gens = json_array();
	uint64_t id = 0;
	ag_model *m;
	int r;

	r = tool_getopt(t, argc, argv, opts, show_usage, show_opt, &id);
	if (r >= 0)
		return r;
	if (argc - optind != 1)
		return tool_fail(t, EX_AG_USAGE,
				 "show takes one model name (see agstore show --help)");
	r = ag_name_parse(argv[optind], strlen(argv[optind]), &name);
	if (r < 0)
		return tool_fail(t, EX_AG_USAGE, "'%s' is not a model name", argv[optind]);
	r = tool_open(t, AG_RDONLY, &s);
	if (r > 0)
		return r;
	r = ag_gen_get(s, id, &g);
	if (r < 0)
		return tool_fail_err(t, r, "cannot read generation %" PRIu64 " of %s", id,
				     t->store_path);
	m = ag_gen_find(g, name);
	if (!m) {
		_cleanup_free_ char *have = gen_names_list(g, 20);
		return tool_fail(t, EX_AG_PROBLEM,
				 "generation %" PRIu64 " of %s has no model %s (it has: %s)", g->id,
				 t->store_path, argv[optind], have && *have ? have : "none");
	}
	r = each_gen(s, show_gens, &(struct show_ctx){name, gens});
	if (r < 0)
		return tool_fail_err(t, r, "cannot list the generations of %s", t->store_path);
	struct prov p = {.upto = g->id};
	r = ag_gens_load(s, g->id, &p.gens, &p.n);
	if (r < 0)
		return tool_fail_err(t, r, "cannot list the generations of %s", t->store_path);
	const ag_gen *from = prov_of(&p, m);
	if (t->json)
		r = out_json(show_json(m, gens, from)) < 0 ? EX_AG_IO : EX_AG_OK;
	else {
		show_print(m, gens, from);
		r = EX_AG_OK;
	}
	ag_gens_free(p.gens, p.n);
	return r;
}
