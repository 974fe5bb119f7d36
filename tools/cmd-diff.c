/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agstore diff A B: which models generation B adds, removes and changes
 * compared with generation A, from the index alone (no mount needed).
 * A model is "changed" when its name stays and its manifest digest differs.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/tool.h"

static const char diff_usage[] =
	"Usage: agstore [--store DIR] [--json] diff A B\n"
	"Compare generation A with generation B (numbers, or 'current'): the\n"
	"models B adds (+), removes (-) and changes (~, same name, another\n"
	"manifest).  Reads the store's index only; no mount is needed.\n";

int gen_arg_load(struct tool *t, ag_store *s, const char *arg, ag_gen **out)
{
	_cleanup_free_ uint64_t *ids = NULL;
	size_t n = 0;
	uint64_t id = 0;
	int r;

	if (strcmp(arg, "current") != 0 && parse_u64(arg, 1, UINT64_MAX, &id) < 0)
		return tool_fail(t, EX_AG_USAGE, "'%s' is not a generation number (or 'current')",
				 arg);
	r = ag_gen_get(s, id, out);
	if (r == -ENOENT && id == 0)
		return tool_fail(
			t, EX_AG_PROBLEM,
			"the store %s has no current generation (import one with agimport)",
			t->store_path);
	if (r == -ENOENT) {
		char list[256] = "";
		size_t len = 0;
		if (ag_gen_list(s, &ids, &n) >= 0)
			for (size_t i = 0; i < n && len < sizeof(list) - 32; i++)
				len += (size_t)snprintf(list + len, sizeof(list) - len,
							"%s%" PRIu64, i ? ", " : "", ids[i]);
		return tool_fail(t, EX_AG_PROBLEM,
				 "the store %s has no generation %" PRIu64 " (it has: %s)",
				 t->store_path, id, n ? list : "none");
	}
	if (r < 0)
		return tool_fail_err(t, r, "cannot read generation %s of %s", arg, t->store_path);
	return EX_AG_OK;
}

struct change {
	char kind; /* '+', '-', '~' */
	const ag_model *from, *to;
};

/* Walks both sorted model lists at once. */
static size_t compare(const ag_gen *a, const ag_gen *b, struct change *out)
{
	size_t i = 0, j = 0, n = 0;

	while (i < a->nmodels || j < b->nmodels) {
		int c = i == a->nmodels	  ? 1
			: j == b->nmodels ? -1
					  : strcmp(a->models[i].name, b->models[j].name);
		if (c < 0) {
			out[n++] = (struct change){'-', &a->models[i++], NULL};
		} else if (c > 0) {
			out[n++] = (struct change){'+', NULL, &b->models[j++]};
		} else {
			if (!ag_digest_eq(&a->models[i].manifest, &b->models[j].manifest))
				out[n++] = (struct change){'~', &a->models[i], &b->models[j]};
			i++;
			j++;
		}
	}
	return n;
}

static json_t *change_json(const struct change *c)
{
	_cleanup_free_ char *name = ag_name_display(c->from ? c->from->name : c->to->name);

	return json_pack("{s:s,s:o,s:o,s:o,s:o}", "name", name ? name : "?", "from",
			 c->from ? json_digest(&c->from->manifest) : json_null(), "to",
			 c->to ? json_digest(&c->to->manifest) : json_null(), "from_size",
			 c->from ? json_integer((json_int_t)model_size(c->from)) : json_null(),
			 "to_size",
			 c->to ? json_integer((json_int_t)model_size(c->to)) : json_null());
}

static int diff_json(const ag_gen *a, const ag_gen *b, const struct change *ch, size_t n)
{
	json_t *add = json_array(), *rm = json_array(), *chg = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(ch[i].kind == '+'	  ? add
				      : ch[i].kind == '-' ? rm
							  : chg,
				      change_json(&ch[i]));
	return out_json(json_pack(
		"{s:I,s:I,s:o,s:o,s:o,s:I}", "from", (json_int_t)a->id, "to", (json_int_t)b->id,
		"added", add, "removed", rm, "changed", chg, "unchanged",
		(json_int_t)(b->nmodels - (json_array_size(add) + json_array_size(chg)))));
}

static int diff_table(const ag_gen *a, const ag_gen *b, const struct change *ch, size_t n)
{
	static const char *const hdr[] = {"", "NAME", "FROM", "TO", ">SIZE"};
	_cleanup_table_ struct table *tb = table_new(5, hdr);

	if (!tb)
		return EX_AG_IO;
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *name =
			ag_name_display(ch[i].from ? ch[i].from->name : ch[i].to->name);
		char k[2] = {ch[i].kind, 0}, f[13] = "-", to[13] = "-", sz[TOOL_SIZE_LEN];
		if (ch[i].from)
			fmt_digest_short(&ch[i].from->manifest, f);
		if (ch[i].to)
			fmt_digest_short(&ch[i].to->manifest, to);
		fmt_size(model_size(ch[i].to ? ch[i].to : ch[i].from), sz);
		const char *cells[] = {k, name, f, to, sz};
		if (table_add(tb, cells) < 0)
			return EX_AG_IO;
	}
	printf("generation %" PRIu64 " -> %" PRIu64 ": ", a->id, b->id);
	if (n == 0) {
		printf("the same models\n");
		return EX_AG_OK;
	}
	printf("%zu change%s\n", n, n == 1 ? "" : "s");
	table_print(tb, stdout);
	return EX_AG_OK;
}

int cmd_diff(struct tool *t, int argc, char **argv)
{
	static const struct option opts[] = {TOOL_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
	_cleanup_store_ ag_store *s = NULL;
	_cleanup_gen_ ag_gen *a = NULL, *b = NULL;
	_cleanup_free_ struct change *ch = NULL;
	size_t n;
	int r;

	r = tool_getopt(t, argc, argv, opts, diff_usage, NULL, NULL);
	if (r >= 0)
		return r;
	if (argc - optind != 2)
		return tool_fail(t, EX_AG_USAGE,
				 "diff takes two generations (see agstore diff --help)");
	if ((r = tool_open(t, AG_RDONLY, &s)) > 0 ||
	    (r = gen_arg_load(t, s, argv[optind], &a)) > 0 ||
	    (r = gen_arg_load(t, s, argv[optind + 1], &b)) > 0)
		return r;
	ch = calloc(a->nmodels + b->nmodels + 1, sizeof(*ch));
	if (!ch)
		return tool_fail(t, EX_AG_IO, "out of memory");
	n = compare(a, b, ch);
	if (t->json)
		return diff_json(a, b, ch, n) < 0 ? EX_AG_IO : EX_AG_OK;
	return diff_table(a, b, ch, n);
}
