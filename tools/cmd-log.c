/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agstore log: which generation was current when, read from the audit log
 * (the records of every change of the current generation: BUNDLE_INGEST,
 * GENERATION_ACTIVATED, MODELS_REMOVED).  Each line runs from its record's
 * time until the next one; the last is what is current now.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/tool.h"

static const char log_usage[] =
	"Usage: agstore [--store DIR] [--json] log\n"
	"Which generation was current when, from the audit log: since, until,\n"
	"generation, how it became current (import, activate, rollback, rm),\n"
	"operator, and the label or source.\n";

struct step {
	char time[TOOL_TIME_LEN];
	uint64_t gen, from;
	char *how, *op, *what;
};

struct steps {
	struct step *v;
	size_t n, cap;
	int err;
};

static const char *sget(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* How a record changes the current generation; NULL if it does not. */
static const char *change_kind(json_t *o, uint64_t *from, const char **what)
{
	const char *ev = sget(o, "event");

	*from = 0;
	*what = NULL;
	if (!ev)
		return NULL;
	if (strcmp(ev, "BUNDLE_INGEST") == 0) {
		*what = sget(o, "label") ? sget(o, "label") : sget(o, "source");
		return json_is_true(json_object_get(o, "dry_run")) ? NULL : "import";
	}
	if (strcmp(ev, "GENERATION_ACTIVATED") == 0) {
		*from = (uint64_t)json_integer_value(json_object_get(o, "previous"));
		return sget(o, "how") ? sget(o, "how") : "activate";
	}
	if (strcmp(ev, "MODELS_REMOVED") == 0) {
		*from = (uint64_t)json_integer_value(json_object_get(o, "from"));
		return "rm";
	}
	return NULL;
}

static int add_step(uint64_t lineno, json_t *o, void *arg)
{
	struct steps *ss = arg;
	const char *what, *how;
	uint64_t from;
	json_int_t gen = json_integer_value(json_object_get(o, "generation"));
	struct step *st;

	how = change_kind(o, &from, &what);
	if (!how || gen <= 0)
		return 0;
	if (ss->n == ss->cap) {
		size_t cap = ss->cap ? ss->cap * 2 : 16;
		struct step *v = realloc(ss->v, cap * sizeof(*v));
		if (!v)
			return ss->err = -ENOMEM;
		ss->v = v;
		ss->cap = cap;
	}
	st = &ss->v[ss->n];
	memset(st, 0, sizeof(*st));
	snprintf(st->time, sizeof(st->time), "%s", sget(o, "time") ? sget(o, "time") : "-");
	st->gen = (uint64_t)gen;
	st->from = from;
	st->how = strdup(how);
	st->op = sget(o, "operator") ? strdup(sget(o, "operator")) : NULL;
	st->what = what ? strdup(what) : NULL;
	if (!st->how)
		return ss->err = -ENOMEM;
	ss->n++;
	return 0;
}

static void steps_free(struct steps *ss)
{
	for (size_t i = 0; i < ss->n; i++) {
		free(ss->v[i].how);
		free(ss->v[i].op);
		free(ss->v[i].what);
	}
	free(ss->v);
}

static json_t *step_json(const struct steps *ss, size_t i)
{
	const struct step *st = &ss->v[i];

	return json_pack("{s:s,s:o,s:I,s:s,s:o,s:o,s:o}", "since", st->time, "until",
			 i + 1 < ss->n ? json_string(ss->v[i + 1].time) : json_null(), "generation",
			 (json_int_t)st->gen, "how", st->how, "from",
			 st->from ? json_integer((json_int_t)st->from) : json_null(), "operator",
			 json_str_or_null(st->op), "what", json_str_or_null(st->what));
}

static int log_print(const struct steps *ss)
{
	static const char *const hdr[] = {"SINCE", "UNTIL", ">GEN", "HOW", "OPERATOR", "DETAILS"};
	_cleanup_table_ struct table *tb = table_new(6, hdr);

	if (!tb)
		return EX_AG_IO;
	for (size_t i = 0; i < ss->n; i++) {
		const struct step *st = &ss->v[i];
		char gen[24], details[320];
		snprintf(gen, sizeof(gen), "%" PRIu64, st->gen);
		if (st->from && st->what)
			snprintf(details, sizeof(details), "from %" PRIu64 "; %s", st->from,
				 st->what);
		else if (st->from)
			snprintf(details, sizeof(details), "from %" PRIu64, st->from);
		else
			snprintf(details, sizeof(details), "%s", st->what ? st->what : "-");
		const char *cells[] = {st->time, i + 1 < ss->n ? ss->v[i + 1].time : "now",
				       gen,	 st->how,
				       st->op,	 details};
		if (table_add(tb, cells) < 0)
			return EX_AG_IO;
	}
	table_print(tb, stdout);
	return EX_AG_OK;
}

int cmd_log(struct tool *t, int argc, char **argv)
{
	static const struct option opts[] = {TOOL_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
	_cleanup_store_ ag_store *s = NULL;
	struct steps ss = {0};
	int r;

	r = tool_getopt(t, argc, argv, opts, log_usage, NULL, NULL);
	if (r >= 0)
		return r;
	if (argc != optind)
		return tool_fail(t, EX_AG_USAGE, "log takes no operand (see agstore log --help)");
	r = tool_open(t, AG_RDONLY, &s);
	if (r > 0)
		return r;
	r = ag_audit_foreach(s, add_step, &ss);
	if (r < 0 && r != -ENOENT) {
		steps_free(&ss);
		return tool_fail_err(t, r, "cannot read %s/audit.log", t->store_path);
	}
	if (t->json) {
		json_t *arr = json_array();
		for (size_t i = 0; arr && i < ss.n; i++)
			json_array_append_new(arr, step_json(&ss, i));
		r = out_json(arr) < 0 ? EX_AG_IO : EX_AG_OK;
	} else if (ss.n == 0) {
		printf("no generation was ever current in %s\n", t->store_path);
		r = EX_AG_OK;
	} else {
		r = log_print(&ss);
	}
	steps_free(&ss);
	return r;
}
