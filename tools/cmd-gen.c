/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agstore activate, rollback, rm: choosing which generation is served.
 * Each is one write transaction under the store lock, so a running mount
 * sees the old generation or the new one, never a mix.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/tool.h"

/* Makes id current in one transaction, committed with its
 * GENERATION_ACTIVATED record (no switch without its record); *previous gets
 * what was current (0: none). */
static int switch_to(struct tool *t, ag_store *s, uint64_t id, const char *how, uint64_t *previous)
{
	_cleanup_txn_ ag_txn *txn = NULL;
	_cleanup_gen_ ag_gen *g = NULL;
	int r;

	r = ag_txn_begin(s, &txn);
	if (r < 0)
		return tool_fail_err(t, r, "cannot write to the store %s", t->store_path);
	r = ag_txn_current(txn, previous);
	if (r == -ENOENT)
		*previous = 0;
	else if (r < 0)
		return tool_fail_err(t, r, "cannot read the current generation of %s",
				     t->store_path);
	r = ag_txn_gen_get(txn, id, &g);
	if (r == -ENOENT)
		return tool_fail(t, EX_AG_PROBLEM, "the store %s has no generation %" PRIu64,
				 t->store_path, id);
	if (r < 0)
		return tool_fail_err(t, r, "cannot read generation %" PRIu64 " of %s", id,
				     t->store_path);
	if (*previous == id)
		return EX_AG_OK; /* nothing to change; keep "previous" as it is */
	r = ag_txn_set_current(txn, id);
	if (r >= 0) {
		_cleanup_json_ json_t *f = json_pack("{s:I,s:I,s:s}", "generation", (json_int_t)id,
						     "previous", (json_int_t)*previous, "how", how);
		r = f ? ag_txn_commit_audit(TAKE_PTR(txn), "GENERATION_ACTIVATED", t->operator_name,
					    f)
		      : -ENOMEM;
	}
	if (r < 0)
		return tool_fail_err(t, r,
				     "cannot make generation %" PRIu64
				     " current in %s (with its record in audit.log)",
				     id, t->store_path);
	return EX_AG_OK;
}

/* Switches, audits and reports; how is "activate" or "rollback". */
static int activate(struct tool *t, ag_store *s, uint64_t id, const char *how)
{
	uint64_t prev = 0;
	int r = switch_to(t, s, id, how, &prev);

	if (r != EX_AG_OK)
		return r;
	if (prev == id) {
		if (!t->json)
			printf("generation %" PRIu64 " is already current\n", id);
		else
			out_json(json_pack("{s:I,s:I,s:b}", "current", (json_int_t)id, "previous",
					   (json_int_t)prev, "changed", 0));
		return EX_AG_OK;
	}
	if (t->json)
		out_json(json_pack("{s:I,s:I,s:b}", "current", (json_int_t)id, "previous",
				   (json_int_t)prev, "changed", 1));
	else if (prev)
		printf("generation %" PRIu64 " is current (was %" PRIu64 ")\n", id, prev);
	else
		printf("generation %" PRIu64 " is current\n", id);
	return EX_AG_OK;
}

static const char activate_usage[] =
	"Usage: agstore [--store DIR] [--operator NAME] activate N\n"
	"Make generation N the one served.  Atomic; a running mount follows\n"
	"within seconds; files already open keep their bytes.\n";

int cmd_activate(struct tool *t, int argc, char **argv)
{
	static const struct option opts[] = {TOOL_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
	_cleanup_store_ ag_store *s = NULL;
	uint64_t id;
	int r;

	r = tool_getopt(t, argc, argv, opts, activate_usage, NULL, NULL);
	if (r >= 0)
		return r;
	if (argc - optind != 1)
		return tool_fail(t, EX_AG_USAGE, "activate takes one generation number");
	if (parse_u64(argv[optind], 1, UINT64_MAX, &id) < 0)
		return tool_fail(t, EX_AG_USAGE, "'%s' is not a generation number", argv[optind]);
	r = tool_open(t, AG_WRITE, &s);
	if (r > 0)
		return r;
	return activate(t, s, id, "activate");
}

static const char rollback_usage[] =
	"Usage: agstore [--store DIR] [--operator NAME] rollback\n"
	"Make the generation that was current before the current one current\n"
	"again.  A second rollback returns to where the first started.\n";

int cmd_rollback(struct tool *t, int argc, char **argv)
{
	static const struct option opts[] = {TOOL_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
	_cleanup_store_ ag_store *s = NULL;
	uint64_t id;
	int r;

	r = tool_getopt(t, argc, argv, opts, rollback_usage, NULL, NULL);
	if (r >= 0)
		return r;
	if (argc != optind)
		return tool_fail(t, EX_AG_USAGE, "rollback takes no operand (use activate N)");
	r = tool_open(t, AG_WRITE, &s);
	if (r > 0)
		return r;
	r = ag_previous(s, &id);
	if (r == -ENOENT || (r >= 0 && id == 0))
		return tool_fail(t, EX_AG_PROBLEM,
				 "the store %s has no previous generation to roll back to",
				 t->store_path);
	if (r < 0)
		return tool_fail_err(t, r, "cannot read the previous generation of %s",
				     t->store_path);
	return activate(t, s, id, "rollback");
}

/* ---------- rm ---------- */

static const char rm_usage[] =
	"Usage: agstore [--store DIR] [--operator NAME] rm [--label TEXT] NAME[:TAG]...\n"
	"Make a new generation holding every model of the current one except the\n"
	"named ones, and make it current.  Objects stay until gc.\n";

/* Parses every operand into path form; all must be in cur. */
static int rm_names(struct tool *t, const ag_gen *cur, int n, char **args, char **paths)
{
	for (int i = 0; i < n; i++) {
		int r = ag_name_parse(args[i], strlen(args[i]), &paths[i]);
		if (r < 0)
			return tool_fail(t, EX_AG_USAGE, "'%s' is not a model name", args[i]);
		if (!ag_gen_find(cur, paths[i])) {
			_cleanup_free_ char *have = gen_names_list(cur, 20);
			return tool_fail(t, EX_AG_PROBLEM,
					 "the current generation %" PRIu64
					 " of %s has no model %s (it has: %s)",
					 cur->id, t->store_path, args[i],
					 have && *have ? have : "none");
		}
	}
	return EX_AG_OK;
}

static bool name_in(const char *name, char **paths, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(name, paths[i]) == 0)
			return true;
	return false;
}

/* The new generation: cur's models minus paths. */
static int rm_build(struct tool *t, const ag_gen *cur, char **paths, int n, const char *label,
		    ag_gen **out)
{
	_cleanup_gen_ ag_gen *g = ag_gen_new();

	if (!g)
		return tool_fail(t, EX_AG_IO, "out of memory");
	if (label) {
		g->label = strdup(label);
	} else { /* "rm a:b c:d" */
		size_t len = 3;
		for (int i = 0; i < n; i++)
			len += strlen(paths[i]) + 1;
		g->label = malloc(len);
		if (g->label) {
			strcpy(g->label, "rm");
			for (int i = 0; i < n; i++) {
				_cleanup_free_ char *d = ag_name_display(paths[i]);
				strcat(g->label, " ");
				strcat(g->label, d ? d : paths[i]);
			}
		}
	}
	g->operator_name = strdup(t->operator_name);
	g->source = strdup("agstore rm");
	for (size_t i = 0; i < cur->nmodels; i++) {
		if (name_in(cur->models[i].name, paths, n))
			continue;
		if (ag_gen_add_model(g, &cur->models[i]) < 0)
			return tool_fail(t, EX_AG_IO, "out of memory");
	}
	*out = TAKE_PTR(g);
	return EX_AG_OK;
}

/* One transaction: add the generation, make it current, committed with its
 * MODELS_REMOVED record (names: the models as the admin typed them). */
static int rm_commit(struct tool *t, ag_store *s, const ag_gen *cur, char **paths, int n,
		     const char *label, json_t *names, uint64_t *new_id)
{
	_cleanup_txn_ ag_txn *txn = NULL;
	_cleanup_gen_ ag_gen *g = NULL;
	int r = rm_build(t, cur, paths, n, label, &g);

	if (r != EX_AG_OK)
		return r;
	r = ag_txn_begin(s, &txn);
	if (r >= 0)
		r = ag_txn_gen_add(txn, g);
	if (r >= 0)
		r = ag_txn_set_current(txn, g->id);
	if (r >= 0) {
		_cleanup_json_ json_t *f =
			json_pack("{s:I,s:I,s:O}", "generation", (json_int_t)g->id, "from",
				  (json_int_t)cur->id, "models", names);
		r = f ? ag_txn_commit_audit(TAKE_PTR(txn), "MODELS_REMOVED", t->operator_name, f)
		      : -ENOMEM;
	}
	if (r < 0)
		return tool_fail_err(t, r,
				     "cannot write the new generation into %s (with its record in "
				     "audit.log)",
				     t->store_path);
	*new_id = g->id;
	return EX_AG_OK;
}

static void free_paths(char **paths, int n)
{
	for (int i = 0; paths && i < n; i++)
		free(paths[i]);
	free(paths);
}

static int rm_opt(struct tool *t, int c, const char *arg, void *label)
{
	*(const char **)label = arg;
	return -1;
}

static int rm_report(struct tool *t, uint64_t from, uint64_t id, json_t *names, int n)
{
	if (t->json)
		return out_json(json_pack("{s:I,s:I,s:O}", "current", (json_int_t)id, "previous",
					  (json_int_t)from, "removed", names)) < 0
			       ? EX_AG_IO
			       : EX_AG_OK;
	printf("generation %" PRIu64 " is current: generation %" PRIu64 " without %d model%s\n", id,
	       from, n, n == 1 ? "" : "s");
	return EX_AG_OK;
}

int cmd_rm(struct tool *t, int argc, char **argv)
{
	static const struct option opts[] = {TOOL_COMMON_OPTIONS,
					     {"label", required_argument, NULL, OPT_FIRST_CMD},
					     {NULL, 0, NULL, 0}};
	_cleanup_store_ ag_store *s = NULL;
	_cleanup_gen_ ag_gen *cur = NULL;
	const char *label = NULL;
	char **paths = NULL;
	uint64_t id = 0;
	int r, n;

	r = tool_getopt(t, argc, argv, opts, rm_usage, rm_opt, &label);
	if (r >= 0)
		return r;
	n = argc - optind;
	if (n < 1)
		return tool_fail(t, EX_AG_USAGE, "rm takes at least one model name");
	r = tool_open(t, AG_WRITE, &s);
	if (r > 0)
		return r;
	r = ag_gen_get(s, 0, &cur);
	if (r < 0)
		return tool_fail_err(t, r, "cannot read the current generation of %s",
				     t->store_path);
	paths = calloc((size_t)n, sizeof(char *));
	if (!paths)
		return tool_fail(t, EX_AG_IO, "out of memory");
	_cleanup_json_ json_t *names = json_array();
	for (int i = 0; names && i < n; i++)
		json_array_append_new(names, json_string(argv[optind + i]));
	r = rm_names(t, cur, n, argv + optind, paths);
	if (r == EX_AG_OK)
		r = names ? rm_commit(t, s, cur, paths, n, label, names, &id)
			  : tool_fail(t, EX_AG_IO, "out of memory");
	free_paths(paths, n);
	if (r != EX_AG_OK)
		return r;
	return rm_report(t, cur->id, id, names, n);
}
