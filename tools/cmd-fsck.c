/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agstore fsck: re-hash every object on all cores, each byte once (the
 * whole SHA-256, then the stored fs-verity tree against its root; every
 * block against the tree only for an object whose digest differs, or for
 * all with --full), largest objects first, then check the structure: stray files under objects/ and
 * generations that name blobs without a record.  The hashing runs without the store lock (an import
 * or gc may run meanwhile); what it found is re-checked against the records afterwards, so a blob a
 * concurrent gc deleted is not reported.  The structural checks need the lock (a writer in progress
 * looks like strays or dangling references) and are skipped, with a note, when it is busy.  The
 * result goes into the store's "last_fsck" metadata and the audit log.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/catalog.h"
#include "tools/tool.h"

struct fsck_rec {
	ag_blob_info bi;
	int result;	/* of ag_object_check */
	uint64_t chunk; /* the bad chunk for -EBADMSG */
};

struct fsck {
	struct tool *t;
	ag_store *s;
	struct fsck_rec *recs;
	size_t nrecs, cap;
	bool full; /* --full: every block against the tree too */
	uint64_t total_bytes;
	atomic_size_t next, done;
	atomic_uint_fast64_t done_bytes;
	atomic_bool starved; /* the last object checked ran out of retries */
	unsigned jobs;
	json_t *problems;
	size_t ncorrupt, nmissing, nstray, ndangling, nunchecked, nunaudited;
	json_t *badrecs; /* blob records that fail their own check, found in phase 1 */
	bool locked;	 /* the structural pass ran under the store lock */
	int lock_err;	 /* why not */
};

static int collect(const ag_blob_info *bi, int err, void *arg)
{
	struct fsck *f = arg;

	if (err < 0) /* reported after the hashing; the walk goes on */
		return json_array_append_new(f->badrecs, json_digest(&bi->digest)) < 0 ? -ENOMEM
										       : 0;
	if (f->nrecs == f->cap) {
		size_t ncap = f->cap ? f->cap * 2 : 256;
		struct fsck_rec *n = realloc(f->recs, ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		f->recs = n;
		f->cap = ncap;
	}
	f->recs[f->nrecs++] = (struct fsck_rec){.bi = *bi, .chunk = UINT64_MAX};
	f->total_bytes += bi->size;
	return 0;
}

static void *worker(void *arg)
{
	struct fsck *f = arg;
	size_t i;

	while ((i = atomic_fetch_add(&f->next, 1)) < f->nrecs) {
		struct fsck_rec *rec = &f->recs[i];
		/* Could not check (a full reader table, no memory): try again a
		 * few times before reporting it as unchecked, never as corrupt;
		 * once, while the object before ran out of its tries too (a
		 * lasting shortage must not cost half a second per object). */
		int tries = atomic_load(&f->starved) ? 4 : 0;
		for (;; tries++) {
			rec->result = f->full ? ag_object_check(f->s, &rec->bi, &rec->chunk)
					      : ag_object_check_once(f->s, &rec->bi, &rec->chunk);
			if ((rec->result != -EAGAIN && rec->result != -ENOMEM) || tries == 4)
				break;
			nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
		}
		atomic_store(&f->starved, rec->result == -EAGAIN || rec->result == -ENOMEM);
		atomic_fetch_add(&f->done_bytes, rec->bi.size);
		atomic_fetch_add(&f->done, 1);
	}
	return NULL;
}

static void progress(struct fsck *f, bool final)
{
	char a[TOOL_SIZE_LEN], b[TOOL_SIZE_LEN];

	fmt_size(atomic_load(&f->done_bytes), a);
	fmt_size(f->total_bytes, b);
	fprintf(stderr, "\rfsck: %zu/%zu objects, %s of %s%s", atomic_load(&f->done), f->nrecs, a,
		b, final ? "\n" : "   ");
}

static int bigger_first(const void *a, const void *b)
{
	const ag_blob_info *x = &((const struct fsck_rec *)a)->bi,
			   *y = &((const struct fsck_rec *)b)->bi;
	if (x->size != y->size)
		return x->size > y->size ? -1 : 1;
	return memcmp(&x->digest, &y->digest, sizeof(x->digest));
}

/* Hashes every recorded object with f->jobs threads, the largest first, so
 * the last one to finish is a small one. */
static int hash_all(struct fsck *f)
{
	pthread_t th[256];
	unsigned n = 0;
	bool tty = tool_interactive();

	if (f->nrecs)
		qsort(f->recs, f->nrecs, sizeof(*f->recs), bigger_first);

	for (; n < f->jobs && n < f->nrecs; n++)
		if (pthread_create(&th[n], NULL, worker, f) != 0)
			break;
	if (n == 0 && f->nrecs > 0)
		worker(f); /* no thread could start: do it here */
	while (tty && atomic_load(&f->done) < f->nrecs) {
		progress(f, false);
		nanosleep(&(struct timespec){0, 250 * 1000 * 1000}, NULL);
	}
	for (unsigned i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	if (tty)
		progress(f, true);
	return 0;
}

static void problem(struct fsck *f, size_t *counter, json_t *p)
{
	(*counter)++;
	json_array_append_new(f->problems, p);
}

/* A verdict on the object's bytes, as opposed to "could not check". */
static bool is_verdict(int r)
{
	return r == -EBADMSG || r == -AG_EDIGEST || r == -AG_ECORRUPT;
}

/* What the hashing found, kept only if the record still exists (not gc'ed). */
static void hash_problems(struct fsck *f)
{
	size_t i;
	json_t *d;

	json_array_foreach(f->badrecs, i, d)
	{
		char rel[96];
		ag_digest dg;
		const char *hex = json_string_value(d);
		if (!hex || parse_digest_arg(hex, &dg) < 0)
			memset(&dg, 0, sizeof(dg));
		ag_object_relpath(&dg, rel, sizeof(rel));
		problem(f, &f->ncorrupt,
			json_pack("{s:s,s:O,s:s,s:s}", "kind", "corrupt", "digest", d, "object",
				  rel, "detail",
				  "its blob record in the index fails its own check (not hashed)"));
	}
	for (i = 0; i < f->nrecs; i++) {
		struct fsck_rec *rec = &f->recs[i];
		char rel[96];
		if (rec->result == 0 ||
		    ag_blob_lookup(f->s, &rec->bi.digest, &(ag_blob_info){0}) == -ENOENT)
			continue;
		ag_object_relpath(&rec->bi.digest, rel, sizeof(rel));
		bool verdict = is_verdict(rec->result);
		const char *kind = rec->result == -ENOENT ? "missing"
				   : verdict		  ? "corrupt"
							  : "unchecked";
		json_t *p = json_pack("{s:s,s:o,s:s,s:s}", "kind", kind, "digest",
				      json_digest(&rec->bi.digest), "object", rel, "detail",
				      ag_strerror(rec->result));
		if (verdict && rec->result != -AG_EDIGEST && rec->chunk != UINT64_MAX)
			json_object_set_new(p, "chunk", json_integer((json_int_t)rec->chunk));
		problem(f,
			rec->result == -ENOENT ? &f->nmissing
			: verdict	       ? &f->ncorrupt
					       : &f->nunchecked,
			p);
	}
}

/* The blob records, sorted by digest: what the structural checks look up. */
struct present_rec {
	ag_digest d; /* first: the key bsearch compares */
	uint64_t size;
	ag_digest fsverity;
	bool has_fsverity;
	bool damaged;  /* reported once, as corrupt, by the hash pass */
	bool reported; /* reported already: by the hash pass, or a catalog mismatch */
};

struct present {
	struct present_rec *d;
	size_t n, cap;
};

static int present_add(const ag_blob_info *bi, int err, void *arg)
{
	struct present *p = arg;

	if (p->n == p->cap) {
		size_t ncap = p->cap ? p->cap * 2 : 256;
		struct present_rec *nd = realloc(p->d, ncap * sizeof(*nd));
		if (!nd)
			return -ENOMEM;
		p->d = nd;
		p->cap = ncap;
	}
	p->d[p->n++] = (struct present_rec){.d = bi->digest,
					    .size = bi->size,
					    .fsverity = bi->fsverity,
					    .has_fsverity = bi->has_fsverity,
					    .damaged = err != 0};
	return 0;
}

static int dcmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(ag_digest));
}

static struct present_rec *present_find(const struct present *p, const ag_digest *d)
{
	return p->n ? bsearch(d, p->d, p->n, sizeof(*p->d), dcmp) : NULL;
}

static bool present_has(const struct present *p, const ag_digest *d)
{
	return present_find(p, d) != NULL;
}

struct stray_ctx {
	struct fsck *f;
	struct present *recs;
};

static int stray_one(const char *relpath, const ag_digest *d, uint64_t size, void *arg)
{
	struct stray_ctx *c = arg;

	if (d && present_has(c->recs, d))
		return 0;
	problem(c->f, &c->f->nstray,
		json_pack("{s:s,s:s,s:s}", "kind", "stray", "object", relpath, "detail",
			  d ? "object without a blob record" : "not an object name"));
	return 0;
}

static void dangling(struct fsck *f, const ag_gen *g, const ag_model *m, const char *what,
		     const ag_digest *d)
{
	_cleanup_free_ char *disp = ag_name_display(m->name);

	problem(f, &f->ndangling,
		json_pack("{s:s,s:I,s:s,s:s,s:o,s:s}", "kind", "dangling", "generation",
			  (json_int_t)g->id, "model", disp ? disp : m->name, "blob", what, "digest",
			  json_digest(d), "detail", "no blob record for this digest"));
}

static void check_model(struct fsck *f, const struct present *recs, const ag_gen *g,
			const ag_model *m)
{
	static const char *const what[] = {"manifest", "config", "layer"};

	for (size_t i = 0; i < ag_model_nblobs(m); i++)
		if (!present_has(recs, ag_model_blob(m, i)))
			dangling(f, g, m, what[i < 2 ? i : 2], ag_model_blob(m, i));
}

/* A bundle file, catalog or signature blob of a generation without its
 * record. */
struct extra_check {
	struct fsck *f;
	const struct present *recs;
	const ag_gen *g;
};

static int check_extra(const ag_digest *d, void *arg)
{
	struct extra_check *x = arg;

	if (!present_has(x->recs, d))
		problem(x->f, &x->f->ndangling,
			json_pack("{s:s,s:I,s:s,s:o,s:s}", "kind", "dangling", "generation",
				  (json_int_t)x->g->id, "blob", "catalog, signature or bundle file",
				  "digest", json_digest(d), "detail",
				  "no blob record for this digest"));
	return 0;
}

/* A generation's catalog against the blob records: each blob's size and
 * fs-verity digest must be what the catalog says.  The default hash pass
 * checks each object's bytes against its SHA-256 and its stored tree blocks
 * against the record's root, so a record and tree rewritten together for
 * unchanged bytes pass it; the catalog (signed, in a signed store) does not
 * agree with them, and this costs no byte read. */
static void check_catalog(struct fsck *f, const struct present *recs, const ag_gen *g)
{
	ag_digest cd;
	_cleanup_free_ char *bytes = NULL;
	size_t len = 0;
	struct ag_catalog c = {0};
	const char *why = NULL;
	int r = ag_gen_catalog(f->s, g->id, &cd, &bytes, &len);

	if (r == -ENOENT) /* format-1 history */
		return;
	if (r == 0)
		r = ag_catalog_parse(bytes, len, &c, &why);
	if (r < 0) { /* unreadable (no memory, a disk error): not checked, not corrupt */
		bool verdict = is_verdict(r);
		problem(f, verdict ? &f->ncorrupt : &f->nunchecked,
			json_pack("{s:s,s:I,s:s}", "kind", verdict ? "corrupt" : "unchecked",
				  "generation", (json_int_t)g->id, "detail",
				  why ? why : ag_strerror(r)));
		ag_catalog_clear(&c);
		return;
	}
	for (size_t i = 0; i < c.nblobs; i++) {
		/* No record: reported as dangling; a damaged one: as corrupt; a
		 * mismatch: once, for the first generation that shows it. */
		struct present_rec *pr = present_find(recs, &c.blobs[i].digest);
		if (!pr || pr->damaged || pr->reported)
			continue;
		if (pr->size == c.blobs[i].size && pr->has_fsverity &&
		    ag_digest_eq(&pr->fsverity, &c.blobs[i].fsverity))
			continue;
		pr->reported = true;
		char rel[96], detail[160];
		ag_object_relpath(&pr->d, rel, sizeof(rel));
		snprintf(detail, sizeof(detail),
			 "its record's %s is not the one in generation %" PRIu64
			 "'s catalog (record and tree rewritten?)",
			 pr->size != c.blobs[i].size ? "size" : "fs-verity digest", g->id);
		problem(f, &f->ncorrupt,
			json_pack("{s:s,s:o,s:s,s:s}", "kind", "corrupt", "digest",
				  json_digest(&pr->d), "object", rel, "detail", detail));
	}
	ag_catalog_clear(&c);
}

/* Generation ids named by audit records ("generation", "index_generation"). */
struct audited {
	uint64_t *ids;
	size_t n, cap;
	json_t *lost;  /* seqs named by INDEX_COMMIT_LOST / _FAILED */
	json_t *byseq; /* seq -> generation, of records with index_generation */
};

static int audited_add(struct audited *a, json_t *v)
{
	if (!json_is_integer(v))
		return 0;
	if (a->n == a->cap) {
		size_t ncap = a->cap ? a->cap * 2 : 64;
		uint64_t *nv = realloc(a->ids, ncap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		a->ids = nv;
		a->cap = ncap;
	}
	a->ids[a->n++] = (uint64_t)json_integer_value(v);
	return 0;
}

static int audited_line(uint64_t lineno, json_t *o, void *arg)
{
	struct audited *a = arg;
	const char *ev = json_string_value(json_object_get(o, "event"));
	char seq[24];

	if (ev && (!strcmp(ev, "INDEX_COMMIT_LOST") || !strcmp(ev, "INDEX_COMMIT_FAILED"))) {
		snprintf(seq, sizeof(seq), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(json_object_get(o, "for_seq")));
		return json_object_set_new(a->lost, seq, json_true()) < 0 ? -ENOMEM : 0;
	}
	if (json_object_get(o, "index_generation")) {
		snprintf(seq, sizeof(seq), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(json_object_get(o, "seq")));
		return json_object_set(a->byseq, seq, json_object_get(o, "index_generation")) < 0
			       ? -ENOMEM
			       : 0;
	}
	return audited_add(a, json_object_get(o, "generation"));
}

static int u64cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Every generation made since audited commits began has a record naming it
 * (issue 10 #4): one without is a change nobody recorded. */
static int check_audited(struct fsck *f, const uint64_t *ids, size_t n)
{
	_cleanup_free_ char *floor_s = NULL;
	struct audited a = {.lost = json_object(), .byseq = json_object()};
	uint64_t floor;
	const char *k;
	json_t *v;
	int r = ag_meta_get(f->s, "audit_floor", &floor_s);

	if (r == -ENOENT || (r == 0 && parse_u64(floor_s, 0, UINT64_MAX, &floor) < 0))
		r = 0, floor = UINT64_MAX; /* no audited commit yet: nothing to check */
	if (r == 0 && floor != UINT64_MAX && (!a.lost || !a.byseq))
		r = -ENOMEM;
	if (r == 0 && floor != UINT64_MAX)
		r = ag_audit_foreach(f->s, audited_line, &a);
	json_object_foreach(a.byseq, k, v)
	{
		if (r == 0 && !json_object_get(a.lost, k))
			r = audited_add(&a, v);
	}
	if (r == 0 && a.n)
		qsort(a.ids, a.n, sizeof(*a.ids), u64cmp);
	for (size_t i = 0; r == 0 && floor != UINT64_MAX && i < n; i++)
		if (ids[i] > floor &&
		    !(a.n && bsearch(&ids[i], a.ids, a.n, sizeof(*a.ids), u64cmp)))
			problem(f, &f->nunaudited,
				json_pack("{s:s,s:I,s:s}", "kind", "unaudited", "generation",
					  (json_int_t)ids[i], "detail",
					  "no audit record names this generation"));
	free(a.ids);
	json_decref(a.lost);
	json_decref(a.byseq);
	return r;
}

static int check_gens(struct fsck *f, const struct present *recs)
{
	_cleanup_free_ uint64_t *ids = NULL;
	size_t n = 0;
	int r = ag_gen_list(f->s, &ids, &n);

	for (size_t i = 0; r >= 0 && i < n; i++) {
		_cleanup_gen_ ag_gen *g = NULL;
		int rg = ag_gen_get(f->s, ids[i], &g);
		if (rg == -ENOENT)
			continue;
		if (rg < 0) { /* one damaged (or unreadable) generation does not stop the check */
			bool verdict = is_verdict(rg);
			problem(f, verdict ? &f->ncorrupt : &f->nunchecked,
				json_pack("{s:s,s:I,s:s}", "kind",
					  verdict ? "corrupt" : "unchecked", "generation",
					  (json_int_t)ids[i], "detail", ag_strerror(rg)));
			continue;
		}
		for (size_t j = 0; j < g->nmodels; j++)
			check_model(f, recs, g, &g->models[j]);
		struct extra_check x = {f, recs, g};
		ag_gen_foreach_extra_blob(g, check_extra, &x);
		check_catalog(f, recs, g);
	}
	if (r >= 0)
		r = check_audited(f, ids, n);
	return r;
}

/* The objects the hash pass found corrupt or missing (hash_problems()
 * reported those whose record is still there) are not reported again as a
 * catalog mismatch: one object, one problem, the hashing verdict. */
static void mark_hashed(const struct fsck *f, struct present *recs)
{
	for (size_t i = 0; i < f->nrecs; i++) {
		const struct fsck_rec *rec = &f->recs[i];
		struct present_rec *pr;
		if ((is_verdict(rec->result) || rec->result == -ENOENT) &&
		    (pr = present_find(recs, &rec->bi.digest)))
			pr->reported = true;
	}
}

/* Strays and dangling references, from a fresh look at the store. */
static int structure(struct fsck *f)
{
	struct present recs = {0};
	int r = ag_blob_foreach_all(f->s, present_add, &recs);

	if (r >= 0)
		qsort(recs.d, recs.n, sizeof(*recs.d), dcmp);
	if (r >= 0)
		mark_hashed(f, &recs);
	if (r >= 0)
		r = ag_object_foreach(f->s, stray_one, &(struct stray_ctx){f, &recs});
	if (r >= 0)
		r = check_gens(f, &recs);
	free(recs.d);
	return r;
}

static json_t *summary(const struct fsck *f, int64_t now)
{
	char tm[TOOL_TIME_LEN];

	fmt_time(now, tm);
	json_t *o = json_pack("{s:s,s:I,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:b}", "time", tm, "time_unix",
			      (json_int_t)now, "ok", json_array_size(f->problems) == 0, "objects",
			      (json_int_t)f->nrecs, "bytes", (json_int_t)f->total_bytes, "corrupt",
			      (json_int_t)f->ncorrupt, "missing", (json_int_t)f->nmissing, "stray",
			      (json_int_t)f->nstray, "dangling", (json_int_t)f->ndangling,
			      "recorded", f->locked);
	if (o) {
		json_object_set_new(o, "unchecked", json_integer((json_int_t)f->nunchecked));
		json_object_set_new(o, "unaudited", json_integer((json_int_t)f->nunaudited));
	}
	return o;
}

/* Stores the summary as "last_fsck" (writer only). */
static int record(struct fsck *f, json_t *sum)
{
	_cleanup_txn_ ag_txn *txn = NULL;
	_cleanup_free_ char *text = json_dumps(sum, JSON_COMPACT);
	int r;

	if (!text)
		return -ENOMEM;
	r = ag_txn_begin(f->s, &txn);
	if (r >= 0)
		r = ag_txn_meta_put(txn, "last_fsck", text);
	if (r >= 0)
		r = ag_txn_commit(TAKE_PTR(txn));
	return r;
}

static void print_problem(json_t *p)
{
	const char *k = json_string_value(json_object_get(p, "kind"));
	const char *detail = json_string_value(json_object_get(p, "detail"));
	json_t *ch = json_object_get(p, "chunk");

	if (strcmp(k, "unaudited") == 0 ||
	    (json_object_get(p, "generation") && !json_object_get(p, "model"))) {
		printf("%-8s  generation %" JSON_INTEGER_FORMAT ": %s\n", k,
		       json_integer_value(json_object_get(p, "generation")), detail);
		return;
	}
	if (strcmp(k, "dangling") == 0) {
		printf("dangling  generation %" JSON_INTEGER_FORMAT " model %s: %s %s: %s\n",
		       json_integer_value(json_object_get(p, "generation")),
		       json_string_value(json_object_get(p, "model")),
		       json_string_value(json_object_get(p, "blob")),
		       json_string_value(json_object_get(p, "digest")), detail);
		return;
	}
	printf("%-8s  %s: %s", k, json_string_value(json_object_get(p, "object")), detail);
	if (ch)
		printf(" (chunk %" JSON_INTEGER_FORMAT ")", json_integer_value(ch));
	printf("\n");
}

static void report(const struct fsck *f)
{
	char sz[TOOL_SIZE_LEN];
	size_t i;
	json_t *p;

	json_array_foreach(f->problems, i, p) print_problem(p);
	fmt_size(f->total_bytes, sz);
	printf("fsck: %zu objects (%s) checked with %u jobs: %zu corrupt, %zu missing, %zu stray, "
	       "%zu dangling",
	       f->nrecs, sz, f->jobs, f->ncorrupt, f->nmissing, f->nstray, f->ndangling);
	if (f->nunchecked)
		printf(", %zu could not be checked", f->nunchecked);
	if (f->nunaudited)
		printf(", %zu generation%s without an audit record", f->nunaudited,
		       f->nunaudited == 1 ? "" : "s");
	printf("\n");
	if (f->locked)
		return;
	printf("fsck: %s: stray and dangling checks were skipped and the result was not "
	       "recorded as last_fsck\n",
	       f->lock_err == -AG_ELOCKED ? "another writer held the store lock"
					  : ag_strerror(f->lock_err));
}

/* Why the store lock may be missing in a sound run: another writer holds
 * it, or this user may only read the store. */
static bool lock_expected(int err)
{
	return err == -AG_ELOCKED || err == -EACCES || err == -EPERM || err == -EROFS;
}

/* No more hashing threads than LMDB reader slots allow: each holds one
 * while it loads a table page, and the mounts need theirs.  Half of the
 * free slots at most. */
static void fit_jobs(struct fsck *f)
{
	unsigned nfree = 0;

	if (ag_store_readers_free(f->s, &nfree) < 0)
		return;
	if (f->jobs > nfree / 2)
		f->jobs = nfree / 2 ? nfree / 2 : 1;
}

/* Phase 1, without the lock: every object re-hashed. */
static int phase_hash(struct fsck *f)
{
	struct tool *t = f->t;
	int r = tool_open(t, AG_RDONLY, &f->s);

	if (r > 0)
		return r;
	r = ag_blob_foreach_all(f->s, collect, f);
	if (r < 0)
		return tool_fail_err(t, r, "cannot list the blobs of %s", t->store_path);
	fit_jobs(f);
	hash_all(f);
	ag_store_close(TAKE_PTR(f->s)); /* one LMDB environment per process at a time */
	return EX_AG_OK;
}

/* Phase 2, under the lock if it is free: re-check, structure, record. */
static int phase_check(struct fsck *f, json_t **sum)
{
	struct tool *t = f->t;
	int r = ag_store_open(t->store_path, AG_WRITE | AG_NOWAIT, &f->s);

	f->locked = r >= 0;
	f->lock_err = r;
	if (r < 0) /* another writer, or no write permission: check what we can */
		r = ag_store_open(t->store_path, AG_RDONLY, &f->s);
	if (r < 0)
		return tool_fail_err(t, r, "cannot open the store %s", t->store_path);
	hash_problems(f);
	/* Without the lock a writer may be between its steps (objects placed
	 * before their records commit, records deleted before their objects):
	 * strays and dangling references cannot be told from that. */
	r = f->locked ? structure(f) : 0;
	if (r < 0)
		return tool_fail_err(t, r, "cannot check the structure of %s", t->store_path);
	*sum = summary(f, (int64_t)time(NULL));
	if (f->locked && (r = record(f, *sum)) < 0)
		return tool_fail_err(t, r, "cannot record the result in %s/index", t->store_path);
	json_object_set_new(*sum, "problems", json_copy(f->problems));
	json_t *ev = json_deep_copy(*sum);
	json_object_del(ev, "time"); /* the audit record has its own */
	json_object_del(ev, "time_unix");
	r = tool_audit(t, f->s, "FSCK", ev);
	if (r < 0)
		return tool_fail_err(t, r, "cannot append to %s/audit.log", t->store_path);
	return EX_AG_OK;
}

static int fsck_opt(struct tool *t, int c, const char *arg, void *arg_f)
{
	struct fsck *f = arg_f;
	uint64_t v;

	if (c == OPT_FIRST_CMD + 1) {
		f->full = true;
		return -1;
	}
	if (parse_u64(arg, 1, 256, &v) < 0)
		return tool_fail(t, EX_AG_USAGE, "--jobs '%s' is not a number from 1 to 256", arg);
	f->jobs = (unsigned)v;
	return -1;
}

static const char fsck_usage[] =
	"Usage: agstore [--store DIR] [--operator NAME] [--json] fsck [--jobs N] [--full]\n"
	"Re-hash every object with N threads (default: all cores), each byte once:\n"
	"its SHA-256, and its fs-verity tree against the record's root (--full: also\n"
	"every 4 KiB block against the tree, hashing each byte twice).  Report\n"
	"corrupt, missing and stray objects (and records whose fs-verity digest is\n"
	"not the one in a generation's catalog) and generations that name blobs without\n"
	"a record.  An object that could not be checked (no memory, a damaged index)\n"
	"is reported as such, never as corrupt.  Exit status 1 on any problem.  The\n"
	"result is recorded (agstore status shows it) and written to the audit log.\n";

int cmd_fsck(struct tool *t, int argc, char **argv)
{
	static const struct option opts[] = {TOOL_COMMON_OPTIONS,
					     {"jobs", required_argument, NULL, OPT_FIRST_CMD},
					     {"full", no_argument, NULL, OPT_FIRST_CMD + 1},
					     {NULL, 0, NULL, 0}};
	struct fsck f = {.t = t};
	_cleanup_json_ json_t *sum = NULL;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int r;

	f.jobs = ncpu > 0 ? (ncpu > 256 ? 256 : (unsigned)ncpu) : 1;
	r = tool_getopt(t, argc, argv, opts, fsck_usage, fsck_opt, &f);
	if (r >= 0)
		return r;
	if (argc != optind)
		return tool_fail(t, EX_AG_USAGE, "fsck takes no operand (see agstore fsck --help)");
	f.problems = json_array();
	f.badrecs = json_array();
	r = phase_hash(&f);
	if (r == EX_AG_OK)
		r = phase_check(&f, &sum);
	if (r == EX_AG_OK && t->json)
		r = out_json(json_incref(sum)) < 0 ? EX_AG_IO : EX_AG_OK;
	else if (r == EX_AG_OK)
		report(&f);
	/* only objects that could not be checked: not a verdict (exit 4) */
	if (r == EX_AG_OK && json_array_size(f.problems) > 0 &&
	    json_array_size(f.problems) == f.nunchecked)
		r = tool_fail(
			t, EX_AG_IO,
			"fsck could not check %zu object%s of %s; nothing it checked was wrong",
			f.nunchecked, f.nunchecked == 1 ? "" : "s", t->store_path);
	else if (r == EX_AG_OK && json_array_size(f.problems) > 0)
		r = tool_fail(t, EX_AG_PROBLEM, "fsck found %zu problem%s in %s",
			      json_array_size(f.problems),
			      json_array_size(f.problems) == 1 ? "" : "s", t->store_path);
	/* The structure unchecked for a system error, not for another writer
	 * at work or a read-only fsck: incomplete, not a clean bill. */
	else if (r == EX_AG_OK && !f.locked && !lock_expected(f.lock_err))
		r = tool_fail(t, EX_AG_IO,
			      "fsck could not check the structure of %s (%s); the objects it "
			      "checked were right",
			      t->store_path, ag_strerror(f.lock_err));
	ag_store_close(f.s);
	json_decref(f.problems);
	json_decref(f.badrecs);
	free(f.recs);
	return r;
}
