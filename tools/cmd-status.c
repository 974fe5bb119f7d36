/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agstore status: the current generation and its age (exit 3 when it is
 * older than --max-age days, for monitoring), store size, object count,
 * and the last fsck.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/tool.h"

static const char status_usage[] =
	"Usage: agstore [--store DIR] [--json] status [--max-age DAYS]\n"
	"Show the current generation (id, label, age), the store's size and object\n"
	"count, free space and the last fsck.  Exit status 3 when the current\n"
	"generation is older than DAYS (default 90) or there is none.\n";

struct status {
	uint64_t max_age_days;
	int64_t now;
	ag_gen *cur; /* NULL: no current generation */
	size_t ngens;
	uint64_t objects, bytes, free_bytes;
	bool has_free;
	json_t *last_fsck; /* NULL: never */
	bool stale;
	double age_days;
};

static int count_blob(const ag_blob_info *bi, void *arg)
{
	struct status *st = arg;

	st->objects++;
	st->bytes += bi->size;
	return 0;
}

static int gather(ag_store *s, struct status *st)
{
	_cleanup_free_ uint64_t *ids = NULL;
	_cleanup_free_ char *fsck = NULL;
	int r = ag_gen_get(s, 0, &st->cur);

	if (r < 0 && r != -ENOENT)
		return r;
	r = ag_gen_list(s, &ids, &st->ngens);
	if (r >= 0)
		r = ag_blob_foreach(s, count_blob, st);
	if (r < 0)
		return r;
	st->has_free = ag_store_free_space(s, &st->free_bytes) >= 0;
	r = ag_meta_get(s, "last_fsck", &fsck);
	if (r >= 0 && fsck)
		st->last_fsck = json_loads(fsck, 0, NULL);
	else if (r < 0 && r != -ENOENT)
		return r;
	if (st->cur) {
		st->age_days = (double)(st->now - st->cur->created) / 86400.0;
		st->stale = st->now - st->cur->created > (int64_t)st->max_age_days * 86400;
	} else {
		st->stale = true;
	}
	return 0;
}

static json_t *status_json(const struct tool *t, const struct status *st)
{
	json_t *cur = json_null();

	if (st->cur)
		cur = json_pack("{s:I,s:o,s:o,s:o,s:f,s:I}", "id", (json_int_t)st->cur->id, "label",
				json_str_or_null(st->cur->label), "created",
				json_time(st->cur->created), "operator",
				json_str_or_null(st->cur->operator_name), "age_days", st->age_days,
				"models", (json_int_t)st->cur->nmodels);
	return json_pack("{s:s,s:o,s:b,s:I,s:I,s:I,s:I,s:o,s:O?}", "store", t->store_path,
			 "current", cur, "stale", st->stale, "max_age_days",
			 (json_int_t)st->max_age_days, "generations", (json_int_t)st->ngens,
			 "objects", (json_int_t)st->objects, "bytes", (json_int_t)st->bytes,
			 "free_bytes",
			 st->has_free ? json_integer((json_int_t)st->free_bytes) : json_null(),
			 "last_fsck", st->last_fsck);
}

static void print_fsck(json_t *f)
{
	json_t *ok = json_object_get(f, "ok");

	printf("last fsck:    %s, ", json_string_value(json_object_get(f, "time")));
	if (json_is_true(ok))
		printf("clean (%" JSON_INTEGER_FORMAT " objects)\n",
		       json_integer_value(json_object_get(f, "objects")));
	else
		printf("PROBLEMS: %" JSON_INTEGER_FORMAT " corrupt, %" JSON_INTEGER_FORMAT
		       " missing, %" JSON_INTEGER_FORMAT " stray, %" JSON_INTEGER_FORMAT
		       " dangling\n",
		       json_integer_value(json_object_get(f, "corrupt")),
		       json_integer_value(json_object_get(f, "missing")),
		       json_integer_value(json_object_get(f, "stray")),
		       json_integer_value(json_object_get(f, "dangling")));
}

static void status_print(const struct tool *t, const struct status *st)
{
	char created[TOOL_TIME_LEN], size[TOOL_SIZE_LEN], free_sz[TOOL_SIZE_LEN];

	printf("store:        %s\n", t->store_path);
	if (st->cur) {
		fmt_time(st->cur->created, created);
		printf("current:      generation %" PRIu64 "%s%s%s, %zu model%s\n", st->cur->id,
		       st->cur->label ? " \"" : "", st->cur->label ? st->cur->label : "",
		       st->cur->label ? "\"" : "", st->cur->nmodels,
		       st->cur->nmodels == 1 ? "" : "s");
		printf("created:      %s (%.1f days ago)\n", created, st->age_days);
	} else {
		printf("current:      none (nothing is served)\n");
	}
	if (st->stale && st->cur)
		printf("WARNING:      generation %" PRIu64 " is older than %" PRIu64
		       " days: the models are stale\n",
		       st->cur->id, st->max_age_days);
	fmt_size(st->bytes, size);
	printf("generations:  %zu\n", st->ngens);
	printf("objects:      %" PRIu64 " (%s)\n", st->objects, size);
	if (st->has_free) {
		fmt_size(st->free_bytes, free_sz);
		printf("free space:   %s\n", free_sz);
	}
	if (st->last_fsck)
		print_fsck(st->last_fsck);
	else
		printf("last fsck:    never\n");
}

static int status_opt(struct tool *t, int c, const char *arg, void *days)
{
	if (parse_u64(arg, 0, 1000000, days) < 0)
		return tool_fail(t, EX_AG_USAGE, "--max-age '%s' is not a number of days", arg);
	return -1;
}

int cmd_status(struct tool *t, int argc, char **argv)
{
	static const struct option opts[] = {TOOL_COMMON_OPTIONS,
					     {"max-age", required_argument, NULL, OPT_FIRST_CMD},
					     {NULL, 0, NULL, 0}};
	_cleanup_store_ ag_store *s = NULL;
	struct status st = {.max_age_days = 90, .now = (int64_t)time(NULL)};
	int r;

	r = tool_getopt(t, argc, argv, opts, status_usage, status_opt, &st.max_age_days);
	if (r >= 0)
		return r;
	if (argc != optind)
		return tool_fail(t, EX_AG_USAGE,
				 "status takes no operand (see agstore status --help)");
	r = tool_open(t, AG_RDONLY, &s);
	if (r > 0)
		return r;
	r = gather(s, &st);
	if (r < 0)
		r = tool_fail_err(t, r, "cannot read the store %s", t->store_path);
	else if (t->json)
		r = out_json(status_json(t, &st)) < 0 ? EX_AG_IO : EX_AG_OK;
	else
		status_print(t, &st);
	if (r == EX_AG_OK && st.stale && st.cur)
		r = tool_fail(t, EX_AG_STALE,
			      "generation %" PRIu64 " of %s is %.0f days old, older than %" PRIu64
			      " days",
			      st.cur->id, t->store_path, st.age_days, st.max_age_days);
	else if (r == EX_AG_OK && st.stale)
		r = tool_fail(t, EX_AG_STALE, "the store %s has no current generation",
			      t->store_path);
	ag_gen_free(st.cur);
	json_decref(st.last_fsck);
	return r;
}
