/* SPDX-License-Identifier: Apache-2.0 */
/* agstore audit: print the hash-chained audit log readably; audit verify: check its chain. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/tool.h"

static const char audit_usage[] =
	"Usage: agstore [--store DIR] [--json] audit [--since TIME]\n"
	"       agstore [--store DIR] [--json] audit verify\n"
	"Print the audit log, one event a line: sequence number, time (UTC), event,\n"
	"operator and the event's details; --since keeps events at or after TIME\n"
	"(YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS], UTC).  `audit verify` checks the\n"
	"hash chain and names the first line that was edited, removed or reordered.\n";

/* The fields every record has, not repeated in the details column. */
static bool base_field(const char *k)
{
	return !strcmp(k, "seq") || !strcmp(k, "time") || !strcmp(k, "event") ||
	       !strcmp(k, "operator") || !strcmp(k, "prev") ||
	       /* the store's bookkeeping of audited commits (--json shows them) */
	       !strcmp(k, "index_txn") || !strcmp(k, "index_generation");
}

/* "key=value key=value", strings bare, everything else as compact JSON. */
static char *details(json_t *obj)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	const char *k;
	json_t *v;
	bool first = true;

	if (!f)
		return NULL;
	json_object_foreach(obj, k, v)
	{
		if (base_field(k))
			continue;
		fprintf(f, "%s%s=", first ? "" : " ", k);
		first = false;
		if (json_is_string(v)) {
			fputs(json_string_value(v), f);
		} else {
			char *j = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
			fputs(j ? j : "?", f);
			free(j);
		}
	}
	fclose(f);
	return buf;
}

/* Unix seconds of a record's "time" (ISO-8601, maybe with fractions); -1 if unreadable. */
static int64_t record_time(json_t *obj)
{
	const char *s = json_string_value(json_object_get(obj, "time"));
	char buf[20];
	int64_t t;

	if (!s || strlen(s) < 19)
		return -1;
	memcpy(buf, s, 19);
	buf[19] = '\0';
	return ag_parse_time(buf, &t) < 0 ? -1 : t;
}

struct audit_ctx {
	int64_t since; /* INT64_MIN: everything */
	struct table *tb;
	json_t *arr;
};

static const char *str_field(json_t *obj, const char *k)
{
	return json_string_value(json_object_get(obj, k));
}

static int audit_one(uint64_t lineno, json_t *obj, void *arg)
{
	struct audit_ctx *c = arg;
	char seq[24];
	_cleanup_free_ char *det = NULL;

	if (c->since != INT64_MIN && record_time(obj) < c->since)
		return 0;
	if (c->arr)
		return json_array_append(c->arr, obj) < 0 ? -ENOMEM : 0;
	json_t *sq = json_object_get(obj, "seq");
	if (json_is_integer(sq))
		snprintf(seq, sizeof(seq), "%" JSON_INTEGER_FORMAT, json_integer_value(sq));
	else
		snprintf(seq, sizeof(seq), "(line %" PRIu64 ")", lineno);
	det = details(obj);
	return table_add(c->tb,
			 (const char *[]){seq, str_field(obj, "time"), str_field(obj, "event"),
					  str_field(obj, "operator"), det ? det : ""});
}

static int audit_list(struct tool *t, ag_store *s, int64_t since)
{
	static const char *const hdr[] = {">SEQ", "TIME", "EVENT", "OPERATOR", "DETAILS"};
	_cleanup_table_ struct table *tb = NULL;
	_cleanup_json_ json_t *arr = NULL;
	struct audit_ctx c = {.since = since};
	int r;

	if (t->json)
		c.arr = arr = json_array();
	else
		c.tb = tb = table_new(5, hdr);
	if (!c.arr && !c.tb)
		return tool_fail(t, EX_AG_IO, "out of memory");
	r = ag_audit_foreach(s, audit_one, &c);
	if (r < 0 && r != -ENOENT)
		return tool_fail_err(t, r, "cannot read %s/audit.log", t->store_path);
	if (t->json)
		return out_json(TAKE_PTR(arr)) < 0 ? EX_AG_IO : EX_AG_OK;
	table_print(tb, stdout);
	return EX_AG_OK;
}

static int count_one(uint64_t lineno, json_t *obj, void *arg)
{
	*(uint64_t *)arg = lineno;
	return 0;
}

static int audit_verify(struct tool *t, ag_store *s)
{
	_cleanup_free_ char *why = NULL;
	uint64_t bad = 0, lines = 0;
	int r = ag_audit_verify(s, &bad, &why);

	if (r == -AG_ECHAIN) {
		if (t->json)
			out_json(json_pack("{s:b,s:I,s:s?}", "ok", 0, "line", (json_int_t)bad,
					   "why", why));
		if (bad == 0)
			return tool_fail(t, EX_AG_PROBLEM, "%s/audit.log: %s", t->store_path,
					 why ? why : "the hash chain is broken");
		return tool_fail(t, EX_AG_PROBLEM, "%s/audit.log line %" PRIu64 ": %s",
				 t->store_path, bad, why ? why : "the hash chain is broken");
	}
	if (r < 0)
		return tool_fail_err(t, r, "cannot verify %s/audit.log", t->store_path);
	r = ag_audit_foreach(s, count_one, &lines);
	if (r < 0)
		return tool_fail_err(t, r, "cannot read %s/audit.log", t->store_path);
	if (t->json)
		return out_json(json_pack("{s:b,s:I}", "ok", 1, "lines", (json_int_t)lines)) < 0
			       ? EX_AG_IO
			       : EX_AG_OK;
	printf("%s/audit.log: %" PRIu64 " record%s, hash chain intact\n", t->store_path, lines,
	       lines == 1 ? "" : "s");
	return EX_AG_OK;
}

static int audit_opt(struct tool *t, int c, const char *arg, void *since)
{
	if (ag_parse_time(arg, since) < 0)
		return tool_fail(t, EX_AG_USAGE,
				 "--since '%s' is not a UTC date (YYYY-MM-DD) or date-time "
				 "(YYYY-MM-DDTHH:MM[:SS])",
				 arg);
	return -1;
}

int cmd_audit(struct tool *t, int argc, char **argv)
{
	static const struct option opts[] = {TOOL_COMMON_OPTIONS,
					     {"since", required_argument, NULL, OPT_FIRST_CMD},
					     {NULL, 0, NULL, 0}};
	_cleanup_store_ ag_store *s = NULL;
	int64_t since = INT64_MIN;
	bool verify = false;
	int r;

	r = tool_getopt(t, argc, argv, opts, audit_usage, audit_opt, &since);
	if (r >= 0)
		return r;
	if (argc - optind == 1 && strcmp(argv[optind], "verify") == 0)
		verify = true;
	else if (argc != optind)
		return tool_fail(t, EX_AG_USAGE,
				 "audit takes no operand but 'verify' (see agstore audit --help)");
	if (verify && since != INT64_MIN)
		return tool_fail(t, EX_AG_USAGE, "audit verify checks the whole log: no --since");
	r = tool_open(t, AG_RDONLY, &s);
	if (r > 0)
		return r;
	return verify ? audit_verify(t, s) : audit_list(t, s, since);
}
