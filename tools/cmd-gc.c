/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agstore gc: keep the current generation and the N most recent, delete the
 * others, then every blob no kept generation references and every stray file
 * under objects/.  Mark and sweep, under the store lock (so no import runs
 * meanwhile): the records go in one transaction, the object files after it
 * commits.  A file a mount already has open keeps reading: an unlinked file
 * stays readable through its open descriptors.
 *
 * Live mounts and pins (store/lease.c): generations a mount serves and blobs
 * it has open are leased, and pinned generations (agstore pin) are kept too.
 * The lease guard is held exclusively from reading the leases until the
 * records are deleted and committed (plan, then sweep_records), so a mount
 * that leases a blob and then opens it either is seen here or finds the
 * record gone; object files are unlinked after the guard is let go.  Stale
 * leases (their holder died) are removed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/tool.h"

struct digest_set {
	ag_digest *d;
	size_t n, cap;
};

static int set_add(struct digest_set *set, const ag_digest *d)
{
	if (set->n == set->cap) {
		size_t ncap = set->cap ? set->cap * 2 : 256;
		ag_digest *nd = realloc(set->d, ncap * sizeof(*nd));
		if (!nd)
			return -ENOMEM;
		set->d = nd;
		set->cap = ncap;
	}
	set->d[set->n++] = *d;
	return 0;
}

static int digest_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(ag_digest));
}

static void set_sort(struct digest_set *set)
{
	size_t w = 0;

	if (set->n == 0)
		return;
	qsort(set->d, set->n, sizeof(ag_digest), digest_cmp);
	for (size_t i = 1; i < set->n; i++)
		if (!ag_digest_eq(&set->d[w], &set->d[i]))
			set->d[++w] = set->d[i];
	set->n = w + 1;
}

static bool set_has(const struct digest_set *set, const ag_digest *d)
{
	return set->n && bsearch(d, set->d, set->n, sizeof(ag_digest), digest_cmp);
}

struct gc_plan {
	uint64_t keep, current;
	json_t *kept, *dropped;	   /* generation ids */
	struct digest_set marked;  /* referenced by a kept generation */
	struct digest_set records; /* every blob record */
	struct digest_set sweep;   /* records to delete */
	uint64_t sweep_bytes;
	json_t *strays;	  /* relpaths of files under objects/ without a record */
	json_t *problems; /* damaged records found on the way: reported, exit 1 */
	bool unsure;	  /* a kept generation could not be read: sweep no blob */
	ag_leases leases; /* what live mounts serve and have open */
	uint64_t *pins;	  /* pinned generations */
	size_t npins;
};

static void plan_free(struct gc_plan *p)
{
	json_decref(p->kept);
	json_decref(p->dropped);
	json_decref(p->strays);
	json_decref(p->problems);
	free(p->marked.d);
	free(p->records.d);
	free(p->sweep.d);
	ag_leases_clear(&p->leases);
	free(p->pins);
}

static int mark_model(struct digest_set *set, const ag_model *m)
{
	int r = 0;

	for (size_t i = 0; r >= 0 && i < ag_model_nblobs(m); i++)
		r = set_add(set, ag_model_blob(m, i));
	return r;
}

static int mark_extra(const ag_digest *d, void *arg)
{
	return set_add(arg, d);
}

static int gc_problem(struct gc_plan *p, json_t *what)
{
	return json_array_append_new(p->problems, what) < 0 ? -ENOMEM : 0;
}

/* A kept generation whose record is damaged names blobs nobody can know: it
 * is reported and no blob is swept this time (the generations still are).
 * One that could not be read (a full reader table, no memory, a disk error)
 * is not damaged: gc stops, exit 4, nothing removed. */
static int mark_gen(ag_store *s, uint64_t id, struct gc_plan *p)
{
	_cleanup_gen_ ag_gen *g = NULL;
	int r = ag_gen_get(s, id, &g);

	if (r == -AG_ECORRUPT || r == -AG_EINDEX || r == -ENOENT) {
		p->unsure = true;
		return gc_problem(p, json_pack("{s:s,s:I,s:s}", "kind", "corrupt", "generation",
					       (json_int_t)id, "detail", ag_strerror(r)));
	}
	for (size_t i = 0; r >= 0 && i < g->nmodels; i++)
		r = mark_model(&p->marked, &g->models[i]);
	/* Its bundle files, catalog and signature (store format 2). */
	if (r >= 0)
		r = ag_gen_foreach_extra_blob(g, mark_extra, &p->marked);
	return r;
}

/* Splits generations into kept and dropped, and marks what the kept ones use. */
static int plan_gens(ag_store *s, struct gc_plan *p)
{
	_cleanup_free_ uint64_t *ids = NULL;
	size_t n = 0;
	int r;

	r = ag_current(s, &p->current);
	if (r == -ENOENT)
		p->current = 0;
	else if (r < 0)
		return r;
	r = ag_gen_list(s, &ids, &n);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		bool keep = ids[i] == p->current || n - i <= p->keep ||
			    ag_pins_has(p->pins, p->npins, ids[i]) ||
			    ag_leases_has_gen(&p->leases, ids[i]);
		json_array_append_new(keep ? p->kept : p->dropped,
				      json_integer((json_int_t)ids[i]));
		if (keep)
			r = mark_gen(s, ids[i], p);
	}
	/* The current generation missing from the listing: the index is
	 * inconsistent, and everything would look unreferenced. */
	bool listed = p->current == 0;
	for (size_t i = 0; !listed && i < n; i++)
		listed = ids[i] == p->current;
	if (r >= 0 && !listed) {
		p->unsure = true;
		r = gc_problem(p,
			       json_pack("{s:s,s:I,s:s}", "kind", "corrupt", "generation",
					 (json_int_t)p->current, "detail",
					 "the current generation is not in the index's listing"));
	}
	set_sort(&p->marked);
	return r;
}

/* A damaged record is reported and the walk goes on: swept like any other
 * record when no kept generation names it, kept (still damaged) otherwise. */
static int collect_record(const ag_blob_info *bi, int err, void *arg)
{
	struct gc_plan *p = arg;
	int r = set_add(&p->records, &bi->digest);

	if (r >= 0 && err < 0)
		r = gc_problem(p, json_pack("{s:s,s:o,s:s,s:b}", "kind", "corrupt", "digest",
					    json_digest(&bi->digest), "detail",
					    "its blob record fails its own check", "referenced",
					    set_has(&p->marked, &bi->digest)));
	if (r >= 0 && !p->unsure && !set_has(&p->marked, &bi->digest) &&
	    !ag_leases_has_blob(&p->leases, &bi->digest)) {
		r = set_add(&p->sweep, &bi->digest);
		p->sweep_bytes += bi->size;
	}
	return r;
}

/* Every blob a kept generation names must have a record.  One that has not
 * means the index is inconsistent (damaged): what looks unreferenced or
 * stray cannot be trusted, so nothing is swept. */
static int check_marked(struct gc_plan *p)
{
	for (size_t i = 0; i < p->marked.n; i++) {
		if (set_has(&p->records, &p->marked.d[i]))
			continue;
		p->unsure = true;
		if (gc_problem(p,
			       json_pack("{s:s,s:o,s:s}", "kind", "dangling", "digest",
					 json_digest(&p->marked.d[i]), "detail",
					 "a kept generation names it but it has no blob record")) <
		    0)
			return -ENOMEM;
	}
	if (p->unsure) { /* nothing swept: not the records, not the files */
		p->sweep.n = 0;
		p->sweep_bytes = 0;
	}
	return 0;
}

static int collect_stray(const char *relpath, const ag_digest *d, uint64_t size, void *arg)
{
	struct gc_plan *p = arg;

	if (p->unsure)
		return 0;
	if (d && set_has(&p->records, d))
		return 0;
	return json_array_append_new(p->strays, json_string(relpath)) < 0 ? -ENOMEM : 0;
}

static int plan(ag_store *s, struct gc_plan *p)
{
	int r;

	p->kept = json_array();
	p->dropped = json_array();
	p->strays = json_array();
	p->problems = json_array();
	if (!p->kept || !p->dropped || !p->strays || !p->problems)
		return -ENOMEM;
	r = ag_pins(s, &p->pins, &p->npins);
	if (r >= 0)
		r = plan_gens(s, p);
	if (r >= 0)
		r = ag_blob_foreach_all(s, collect_record, p);
	set_sort(&p->records);
	if (r >= 0)
		r = check_marked(p);
	if (r >= 0)
		r = ag_object_foreach(s, collect_stray, p);
	return r;
}

/* The records, in one transaction. */
static int sweep_records(ag_store *s, const struct gc_plan *p)
{
	_cleanup_txn_ ag_txn *txn = NULL;
	size_t i;
	json_t *v;
	int r;

	if (json_array_size(p->dropped) == 0 && p->sweep.n == 0)
		return 0;
	r = ag_txn_begin(s, &txn);
	json_array_foreach(p->dropped, i, v)
	{
		if (r >= 0)
			r = ag_txn_gen_del(txn, (uint64_t)json_integer_value(v));
	}
	for (i = 0; r >= 0 && i < p->sweep.n; i++)
		r = ag_txn_blob_del(txn, &p->sweep.d[i]);
	if (r >= 0)
		r = ag_txn_commit(TAKE_PTR(txn));
	return r;
}

/* The files, after the commit.  Returns the first error; goes on past it. */
static int sweep_files(ag_store *s, const struct gc_plan *p)
{
	int first = 0, r;
	size_t i;
	json_t *v;

	for (i = 0; i < p->sweep.n; i++) {
		r = ag_object_unlink(s, &p->sweep.d[i]);
		if (r < 0 && r != -ENOENT && !first)
			first = r;
	}
	json_array_foreach(p->strays, i, v)
	{
		r = ag_object_unlink_path(s, json_string_value(v));
		if (r < 0 && r != -ENOENT && !first)
			first = r;
	}
	return first;
}

static json_t *plan_json(const struct gc_plan *p, bool dry_run)
{
	json_t *blobs = json_array();

	for (size_t i = 0; i < p->sweep.n; i++)
		json_array_append_new(blobs, json_digest(&p->sweep.d[i]));
	return json_pack("{s:b,s:I,s:O,s:O,s:o,s:I,s:O,s:O}", "dry_run", dry_run, "keep",
			 (json_int_t)p->keep, "kept_generations", p->kept, "removed_generations",
			 p->dropped, "removed_blobs", blobs, "bytes_freed",
			 (json_int_t)p->sweep_bytes, "removed_strays", p->strays, "problems",
			 p->problems);
}

static void print_ids(const char *what, json_t *ids)
{
	size_t i;
	json_t *v;

	printf("%s:", what);
	if (json_array_size(ids) == 0)
		printf(" none");
	json_array_foreach(ids, i, v) printf(" %" JSON_INTEGER_FORMAT, json_integer_value(v));
	printf("\n");
}

static void plan_print(const struct gc_plan *p, bool dry_run)
{
	char size[TOOL_SIZE_LEN];
	const char *verb = dry_run ? "would remove" : "removed";
	size_t nstrays = json_array_size(p->strays);

	fmt_size(p->sweep_bytes, size);
	print_ids("kept generations", p->kept);
	print_ids(dry_run ? "generations to remove" : "removed generations", p->dropped);
	printf("%s %zu blob%s (%s) and %zu stray file%s\n", verb, p->sweep.n,
	       p->sweep.n == 1 ? "" : "s", size, nstrays, nstrays == 1 ? "" : "s");
	size_t i;
	json_t *v;
	json_array_foreach(p->problems, i, v)
	{
		json_t *d = json_object_get(v, "digest");
		if (!strcmp(json_string_value(json_object_get(v, "kind")), "dangling"))
			printf("dangling  blob %s: %s (no blob was removed)\n",
			       json_string_value(d),
			       json_string_value(json_object_get(v, "detail")));
		else if (d)
			printf("corrupt   blob %s: %s%s\n", json_string_value(d),
			       json_string_value(json_object_get(v, "detail")),
			       json_is_true(json_object_get(v, "referenced"))
				       ? " (kept: a kept generation names it)"
				       : "");
		else
			printf("corrupt   generation %" JSON_INTEGER_FORMAT
			       ": %s (no blob was removed)\n",
			       json_integer_value(json_object_get(v, "generation")),
			       json_string_value(json_object_get(v, "detail")));
	}
}

struct gc_opts {
	uint64_t keep;
	bool dry_run;
};

static int gc_opt(struct tool *t, int c, const char *arg, void *arg2)
{
	struct gc_opts *o = arg2;

	if (c == OPT_FIRST_CMD + 1) {
		o->dry_run = true;
		return -1;
	}
	if (parse_u64(arg, 0, 1000000, &o->keep) < 0)
		return tool_fail(t, EX_AG_USAGE, "--keep '%s' is not a number of generations", arg);
	return -1;
}

static const char gc_usage[] =
	"Usage: agstore [--store DIR] [--operator NAME] [--json] gc [--keep N] [--dry-run]\n"
	"Keep the current generation and the N most recent ones (default 5);\n"
	"delete the others, every blob no kept generation references and every\n"
	"stray file under objects/.  Waits for the store lock, so it is safe while\n"
	"an import runs; safe while a mount serves.  --dry-run only says what it\n"
	"would remove.\n";

static int gc_run(struct tool *t, ag_store *s, struct gc_plan *p, bool dry_run)
{
	int guard = -1, r = dry_run ? 0 : ag_lease_guard(s, true, &guard), rf;

	if (r < 0)
		return tool_fail_err(t, r, "cannot take %s/leases/.guard", t->store_path);
	r = ag_leases_read(s, !dry_run, &p->leases);
	if (r < 0) {
		ag_lease_unguard(guard);
		return tool_fail_err(t, r, "cannot read the leases in %s/leases", t->store_path);
	}
	r = plan(s, p);
	if (r < 0 || dry_run)
		ag_lease_unguard(guard);
	if (r < 0)
		return tool_fail_err(t, r, "cannot read the store %s", t->store_path);
	if (dry_run)
		return EX_AG_OK;
	r = sweep_records(s, p);
	ag_lease_unguard(guard); /* the records are gone: nothing can lease them now */
	if (r < 0)
		return tool_fail_err(t, r, "cannot delete records in %s/index", t->store_path);
	rf = sweep_files(s, p);
	json_t *ev = plan_json(p, false);
	json_object_del(ev, "dry_run");
	r = tool_audit(t, s, "GC", ev);
	if (rf < 0)
		return tool_fail_err(t, rf, "cannot remove every object file under %s/objects",
				     t->store_path);
	if (r < 0)
		return tool_fail_err(t, r, "gc done but %s/audit.log", t->store_path);
	return EX_AG_OK;
}

int cmd_gc(struct tool *t, int argc, char **argv)
{
	static const struct option opts[] = {TOOL_COMMON_OPTIONS,
					     {"keep", required_argument, NULL, OPT_FIRST_CMD},
					     {"dry-run", no_argument, NULL, OPT_FIRST_CMD + 1},
					     {NULL, 0, NULL, 0}};
	_cleanup_store_ ag_store *s = NULL;
	struct gc_opts o = {.keep = 5};
	struct gc_plan p = {0};
	int r;

	r = tool_getopt(t, argc, argv, opts, gc_usage, gc_opt, &o);
	if (r >= 0)
		return r;
	if (argc != optind)
		return tool_fail(t, EX_AG_USAGE, "gc takes no operand (see agstore gc --help)");
	r = tool_open(t, o.dry_run ? AG_RDONLY : AG_WRITE, &s);
	if (r > 0)
		return r;
	p.keep = o.keep;
	r = gc_run(t, s, &p, o.dry_run);
	if (r == EX_AG_OK) {
		if (t->json)
			r = out_json(plan_json(&p, o.dry_run)) < 0 ? EX_AG_IO : EX_AG_OK;
		else
			plan_print(&p, o.dry_run);
	}
	if (r == EX_AG_OK && json_array_size(p.problems) > 0)
		r = tool_fail(t, EX_AG_PROBLEM, "gc found %zu damaged record%s in %s/index",
			      json_array_size(p.problems),
			      json_array_size(p.problems) == 1 ? "" : "s", t->store_path);
	plan_free(&p);
	return r;
}
