/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agstore migrate: converts a format-1 store to format 2 in place, all or
 * nothing (store/migrate.c): every object re-hashed and checked, its
 * fs-verity tree and format-2 record written, a catalog built for every
 * generation, in one write transaction committed with its STORE_MIGRATED
 * audit record.  On any problem nothing changes and the admin is told which
 * object failed and to re-import.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tools/tool.h"

static void progress(uint64_t done, uint64_t total, void *arg)
{
	(void)arg;
	if (tool_interactive())
		fprintf(stderr, "\ragstore: migrate: %" PRIu64 "/%" PRIu64 " objects", done, total);
	if (tool_interactive() && done == total)
		fputc('\n', stderr);
}

static const char migrate_usage[] =
	"Usage: agstore [--store DIR] [--operator NAME] [--json] migrate\n"
	"Convert a format-1 store to format 2 in place (fs-verity hash trees,\n"
	"a catalog per generation).  All or nothing: on any problem the store is\n"
	"left as it was.\n";

int cmd_migrate(struct tool *t, int argc, char **argv)
{
	static const struct option opts[] = {TOOL_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
	_cleanup_store_ ag_store *s = NULL;
	_cleanup_txn_ ag_txn *txn = NULL;
	int r = tool_getopt(t, argc, argv, opts, migrate_usage, NULL, NULL);

	if (r >= 0)
		return r;
	if (argc != optind)
		return tool_fail(t, EX_AG_USAGE, "migrate takes no operands");
	if ((r = tool_open(t, AG_WRITE | AG_FORMAT1_OK, &s)) > 0)
		return r;
	unsigned fmt = 0;
	ag_store_format(s, &fmt);
	if (fmt == AG_FORMAT_VERSION) {
		if (t->json)
			out_json(
				json_pack("{s:i,s:b}", "format", AG_FORMAT_VERSION, "migrated", 0));
		else
			printf("%s is format %d already: nothing to do\n", t->store_path,
			       AG_FORMAT_VERSION);
		return EX_AG_OK;
	}
	ag_digest bad;
	static const ag_digest zero;
	r = ag_txn_begin(s, &txn);
	if (r == 0)
		r = ag_txn_migrate(txn, &bad, progress, NULL);
	if (r < 0 && memcmp(&bad, &zero, sizeof(bad))) {
		char d[80];
		fmt_digest(&bad, d, sizeof(d));
		ag_txn_abort(TAKE_PTR(txn));
		tool_audit(t, s, "STORE_MIGRATE_FAILED",
			   json_pack("{s:o,s:s}", "digest", json_digest(&bad), "detail",
				     ag_strerror(r)));
		return tool_fail(
			t, r == -ENOMEM ? EX_AG_IO : EX_AG_PROBLEM,
			"cannot migrate %s: object %s: %s; nothing was changed (the store is "
			"still format 1): re-import the bundle that brought it, or remove "
			"the generations that use it",
			t->store_path, d, ag_strerror(r));
	}
	if (r == 0) {
		json_t *fields =
			json_pack("{s:i,s:i}", "from_format", 1, "to_format", AG_FORMAT_VERSION);
		r = ag_txn_commit_audit(TAKE_PTR(txn), "STORE_MIGRATED", t->operator_name, fields);
		json_decref(fields); /* not stolen */
	}
	if (r < 0)
		return tool_fail_err(t, r,
				     "cannot migrate %s; nothing was changed (the store is still "
				     "format 1)",
				     t->store_path);
	if (t->json)
		out_json(json_pack("{s:i,s:b}", "format", AG_FORMAT_VERSION, "migrated", 1));
	else
		printf("%s migrated to format %d\n", t->store_path, AG_FORMAT_VERSION);
	return EX_AG_OK;
}
