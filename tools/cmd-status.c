/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agstore status: the current generation and the age of its data (from the
 * signed bundle's creation_date, so neither `agstore rm` nor a re-import
 * resets it), store size, object count, the last fsck, the audit chain and,
 * with --mount, whether a mount serves the current generation.  For
 * monitoring: exit 1 for a problem (last fsck found problems, audit chain
 * broken, mount not serving the current generation), else 3 when stale.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tools/tool.h"

static const char status_usage[] =
	"Usage: agstore [--store DIR] [--json] status [--max-age DAYS] [--mount DIR]\n"
	"Show the current generation (id, label, age of its data), the store's size\n"
	"and object count, free space, the last fsck and the audit chain; with\n"
	"--mount, whether the agfs mount at DIR serves the current generation.\n"
	"The age is measured from the bundle's signed creation_date.\n"
	"Exit: 0 ok; 1 the last fsck found problems, the audit chain is broken or\n"
	"the mount does not serve the current generation; 3 the current generation\n"
	"is older than DAYS (default 90) or there is none; 4 I/O error.\n";

/* Looks at a mount this many times, a second apart, before it is "not serving". */
#define MOUNT_TRIES 3

struct status {
	uint64_t max_age_days;
	const char *mount; /* --mount DIR, or NULL */
	int64_t now;
	ag_gen *cur; /* NULL: no current generation */
	size_t ngens;
	uint64_t objects, bytes, free_bytes;
	bool has_free;
	json_t *last_fsck; /* NULL: never */
	bool stale;
	double age_days;
	struct data_date date;
	bool fsck_problems;
	bool fsck_incomplete; /* the last fsck could not check some objects, found nothing */
	bool chain_ok;
	uint64_t chain_line;
	char *chain_why;
	bool mount_ok;
	uint64_t mount_shows; /* versions/current of the mount, 0: unreadable */
	char *mount_why;
	json_t *last_pull; /* the newest REGISTRY_PULL* record, NULL: never */
};

/* The newest registry pull in the audit log (agimport --registry): done,
 * incomplete (verified blobs kept for a rerun) or refused. */
static int find_pull(uint64_t lineno, json_t *o, void *arg)
{
	struct status *st = arg;
	const char *ev = json_string_value(json_object_get(o, "event"));

	if (ev && (!strcmp(ev, "REGISTRY_PULL") || !strcmp(ev, "REGISTRY_PULL_INCOMPLETE") ||
		   !strcmp(ev, "REGISTRY_PULL_REJECTED"))) {
		json_decref(st->last_pull);
		st->last_pull = json_incref(o);
	}
	return 0;
}

static const char *pull_result(json_t *p)
{
	const char *ev = json_string_value(json_object_get(p, "event"));
	return !strcmp(ev, "REGISTRY_PULL")		 ? "done"
	       : !strcmp(ev, "REGISTRY_PULL_INCOMPLETE") ? "incomplete"
							 : "refused";
}

static int count_blob(const ag_blob_info *bi, void *arg)
{
	struct status *st = arg;

	st->objects++;
	st->bytes += bi->size;
	return 0;
}

/* The last fsck (its stored summary) could not check some objects and found
 * nothing wrong: every other kind of problem it counts is zero. */
static bool fsck_only_unchecked(json_t *f)
{
	static const char *const kinds[] = {"corrupt", "missing", "stray", "dangling", "unaudited"};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (json_integer_value(json_object_get(f, kinds[i])) != 0)
			return false;
	return json_integer_value(json_object_get(f, "unchecked")) > 0;
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
		st->last_fsck = ag_json_loads(fsck, 0, NULL);
	else if (r < 0 && r != -ENOENT)
		return r;
	bool not_ok = st->last_fsck && !json_is_true(json_object_get(st->last_fsck, "ok"));
	st->fsck_incomplete = not_ok && fsck_only_unchecked(st->last_fsck);
	st->fsck_problems = not_ok && !st->fsck_incomplete;
	r = ag_audit_verify(s, &st->chain_line, &st->chain_why);
	if (r < 0 && r != -AG_ECHAIN)
		return r;
	st->chain_ok = r == 0;
	if (st->chain_ok && (r = ag_audit_foreach(s, find_pull, st)) < 0)
		return r;
	if (st->cur) {
		gen_data_date(s, st->cur, &st->date);
		st->age_days = (double)(st->now - st->date.when) / 86400.0;
		st->stale = st->now - st->date.when > (int64_t)st->max_age_days * 86400;
	} else {
		st->stale = true;
	}
	/* A live mount follows a switch within about a second: look again for
	 * a few seconds before calling it wrong (no false alarm right after an
	 * import or activate). */
	for (int tries = 0; st->mount && st->cur; tries++) {
		r = mount_serves(st->mount, st->cur, &st->mount_shows, &st->mount_why);
		if (r < 0)
			return r;
		st->mount_ok = r == 0;
		if (st->mount_ok || st->mount_shows == 0 || tries == MOUNT_TRIES - 1)
			break;
		free(st->mount_why);
		st->mount_why = NULL;
		sleep(1);
	}
	if (st->mount && !st->cur)
		st->mount_why = strdup("the store has no current generation");
	return 0;
}

/* "at line N", or "in audit.log" when the whole file is missing or empty. */
static const char *chain_where(const struct status *st, char buf[static 40])
{
	if (st->chain_line == 0)
		return "in audit.log";
	snprintf(buf, 40, "at line %" PRIu64, st->chain_line);
	return buf;
}

static json_t *chain_json(const struct status *st)
{
	if (st->chain_ok)
		return json_pack("{s:b}", "ok", 1);
	return json_pack("{s:b,s:I,s:s?}", "ok", 0, "line", (json_int_t)st->chain_line, "why",
			 st->chain_why);
}

static json_t *mount_json(const struct status *st)
{
	if (!st->mount)
		return json_null();
	return json_pack("{s:s,s:b,s:o,s:s?}", "path", st->mount, "serves_current", st->mount_ok,
			 "versions_current",
			 st->mount_shows ? json_integer((json_int_t)st->mount_shows) : json_null(),
			 "why", st->mount_ok ? NULL : st->mount_why);
}

static json_t *pull_json(const struct status *st)
{
	json_t *p = st->last_pull;
	if (!p)
		return json_null();
	return json_pack("{s:O?,s:O?,s:s,s:O?,s:O?}", "time", json_object_get(p, "time"), "url",
			 json_object_get(p, "url"), "result", pull_result(p), "remote_generation",
			 json_object_get(p, "remote_generation"), "reason",
			 json_object_get(p, "reason"));
}

static json_t *status_json(const struct tool *t, const struct status *st)
{
	json_t *cur = json_null();

	if (st->cur)
		cur = json_pack(
			"{s:I,s:o,s:o,s:o,s:o,s:s,s:f,s:I}", "id", (json_int_t)st->cur->id, "label",
			json_str_or_null(st->cur->label), "created", json_time(st->cur->created),
			"operator", json_str_or_null(st->cur->operator_name), "data_date",
			json_time(st->date.when), "age_from", data_date_source(st->date.from),
			"age_days", st->age_days, "models", (json_int_t)st->cur->nmodels);
	return json_pack("{s:s,s:o,s:b,s:I,s:I,s:I,s:I,s:o,s:O?,s:b,s:b,s:o,s:o,s:o}", "store",
			 t->store_path, "current", cur, "stale", st->stale, "max_age_days",
			 (json_int_t)st->max_age_days, "generations", (json_int_t)st->ngens,
			 "objects", (json_int_t)st->objects, "bytes", (json_int_t)st->bytes,
			 "free_bytes",
			 st->has_free ? json_integer((json_int_t)st->free_bytes) : json_null(),
			 "last_fsck", st->last_fsck, "fsck_problems", st->fsck_problems,
			 "fsck_incomplete", st->fsck_incomplete, "audit_chain", chain_json(st),
			 "mount", mount_json(st), "last_pull", pull_json(st));
}

static void print_fsck(json_t *f)
{
	if (fsck_only_unchecked(f)) {
		printf("last fsck:    %s, INCOMPLETE: %" JSON_INTEGER_FORMAT
		       " could not be checked, nothing checked was wrong\n",
		       json_string_value(json_object_get(f, "time")),
		       json_integer_value(json_object_get(f, "unchecked")));
		return;
	}
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
		printf("created:      %s\n", created);
		fmt_time(st->date.when, created);
		printf("data date:    %s (%.1f days ago; %s", created, st->age_days,
		       data_date_source(st->date.from));
		if (st->date.via_gen != st->cur->id)
			printf(" of generation %" PRIu64, st->date.via_gen);
		printf(")\n");
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
	char where[40];
	if (st->chain_ok)
		printf("audit chain:  intact\n");
	else
		printf("audit chain:  BROKEN %s: %s\n", chain_where(st, where),
		       st->chain_why ? st->chain_why : "the hash chain is broken");
	if (st->mount && st->mount_ok)
		printf("mount:        %s serves generation %" PRIu64 "\n", st->mount, st->cur->id);
	else if (st->mount)
		printf("mount:        %s does NOT serve the current generation: %s\n", st->mount,
		       st->mount_why ? st->mount_why : "unknown");
	if (st->last_pull) {
		json_t *p = st->last_pull;
		const char *why = json_string_value(json_object_get(p, "reason"));
		printf("last pull:    %s, %s from %s",
		       json_string_value(json_object_get(p, "time")), pull_result(p),
		       json_string_value(json_object_get(p, "url")));
		if (json_is_integer(json_object_get(p, "remote_generation")))
			printf(" (its generation %" JSON_INTEGER_FORMAT ")",
			       json_integer_value(json_object_get(p, "remote_generation")));
		printf(why ? ": %s\n" : "\n", why);
	}
}

/* The exit code and its one sentence: problems (1) before staleness (3). */
static int verdict(struct tool *t, const struct status *st)
{
	char where[40];

	if (st->fsck_problems)
		return tool_fail(
			t, EX_AG_PROBLEM,
			"the last fsck of %s found problems (run agstore fsck to see them)",
			t->store_path);
	if (!st->chain_ok)
		return tool_fail(t, EX_AG_PROBLEM, "the audit chain of %s is broken %s: %s",
				 t->store_path, chain_where(st, where),
				 st->chain_why ? st->chain_why : "the hash chain is broken");
	if (st->fsck_incomplete)
		return tool_fail(
			t, EX_AG_IO,
			"the last fsck of %s could not check every object (run agstore fsck "
			"again)",
			t->store_path);
	if (st->mount && !st->mount_ok)
		return tool_fail(t, EX_AG_PROBLEM,
				 "the mount %s does not serve the current generation of %s: %s",
				 st->mount, t->store_path,
				 st->mount_why ? st->mount_why : "unknown");
	if (st->stale && st->cur)
		return tool_fail(t, EX_AG_STALE,
				 "generation %" PRIu64
				 " of %s is %.0f days old, older than %" PRIu64 " days",
				 st->cur->id, t->store_path, st->age_days, st->max_age_days);
	if (st->stale)
		return tool_fail(t, EX_AG_STALE, "the store %s has no current generation",
				 t->store_path);
	return EX_AG_OK;
}

static int status_opt(struct tool *t, int c, const char *arg, void *stp)
{
	struct status *st = stp;

	if (c == OPT_FIRST_CMD + 1) {
		st->mount = arg;
		return -1;
	}
	if (parse_u64(arg, 0, 1000000, &st->max_age_days) < 0)
		return tool_fail(t, EX_AG_USAGE, "--max-age '%s' is not a number of days", arg);
	return -1;
}

int cmd_status(struct tool *t, int argc, char **argv)
{
	static const struct option opts[] = {TOOL_COMMON_OPTIONS,
					     {"max-age", required_argument, NULL, OPT_FIRST_CMD},
					     {"mount", required_argument, NULL, OPT_FIRST_CMD + 1},
					     {NULL, 0, NULL, 0}};
	_cleanup_store_ ag_store *s = NULL;
	struct status st = {.max_age_days = 90, .now = (int64_t)time(NULL)};
	int r;

	r = tool_getopt(t, argc, argv, opts, status_usage, status_opt, &st);
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
	if (r == EX_AG_OK)
		r = verdict(t, &st);
	ag_gen_free(st.cur);
	json_decref(st.last_fsck);
	json_decref(st.last_pull);
	free(st.chain_why);
	free(st.mount_why);
	return r;
}
