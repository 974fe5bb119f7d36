/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The LMDB index.  Databases:
 *   meta   "format" -> "2", "current" / "previous" -> generation id (decimal),
 *          other small string values (ag_meta_get)
 *   blobs  32-byte digest -> struct ag_blob_rec + record hash
 *   trees  32-byte digest + 8-byte big-endian block -> one 4 KiB block of the
 *          blob's fs-verity tree (kernel layout: top level first)
 *   tables format 1 only: the chunk tables, read and dropped by migration
 *   gens   8-byte big-endian id -> JSON (gen.c)
 * Readers: MDB_RDONLY | MDB_NOTLS and one short read transaction per call.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/internal.h"
#include "store/verity.h"

int ag_lmdb_err(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_MAP_FULL:
		return -ENOSPC;
	case MDB_READERS_FULL:
		return -EAGAIN; /* could not check: retry */
	case MDB_INVALID:
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_VERSION_MISMATCH:
	case MDB_BAD_TXN:
	case MDB_BAD_VALSIZE:
		return -AG_EINDEX;
	case MDB_KEYEXIST:
		return -EEXIST;
	case MDB_TXN_FULL:
		return -E2BIG;
	case MDB_MAP_RESIZED:
	case MDB_TLS_FULL:
	case MDB_BAD_RSLOT:
		return -EAGAIN; /* could not check: retry */
	default:
		/* LMDB's other codes (a page or cursor that makes no sense) come
		 * from the index's structure, not from the disk. */
		if (rc >= MDB_KEYEXIST && rc <= MDB_LAST_ERRCODE)
			return -AG_EINDEX;
		return rc > 0 && rc < 4096 ? -rc : -EIO;
	}
}

/* A cheap structural look at a database: the paths to its first and last
 * records.  A damaged branch page on either edge faults (caught by the
 * guard) or fails here, at open, rather than in the middle of serving. */
static int probe_dbi(MDB_txn *txn, MDB_dbi dbi)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc)
		return ag_lmdb_err(rc);
	rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	if (rc == 0)
		rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	mdb_cursor_close(cur);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : -AG_EINDEX;
}

static int open_dbis_txn(ag_store *s, bool create, MDB_txn *volatile *vtxn)
{
	MDB_txn *txn;
	int r0 = s->writer ? ag_lmdb_err(mdb_txn_begin(s->env, NULL, 0, &txn))
			   : ag_rtxn_begin(s, &txn); /* waits out a full reader table */
	if (r0 < 0)
		return r0;
	int rc;
	*vtxn = txn;
	unsigned fl = create ? MDB_CREATE : 0;
	if ((rc = mdb_dbi_open(txn, "meta", fl, &s->dbi_meta)) ||
	    (rc = mdb_dbi_open(txn, "blobs", fl, &s->dbi_blobs)) ||
	    (rc = mdb_dbi_open(txn, "gens", fl, &s->dbi_gens))) {
		mdb_txn_abort(txn);
		return rc == MDB_NOTFOUND ? -AG_ENOTSTORE : ag_lmdb_err(rc);
	}
	uint64_t fmt = 0;
	int r = ag_meta_get_u64(txn, s, "format", &fmt);
	if (r == -ENOENT && create) {
		char v[8];
		snprintf(v, sizeof(v), "%d", AG_FORMAT_VERSION);
		r = ag_meta_put_str(txn, s, "format", v);
		fmt = AG_FORMAT_VERSION;
	}
	/* A format-1 store is opened only by a writer that migrates it. */
	if (r == 0 && fmt == 1)
		r = s->format1_ok && s->writer ? 0 : -AG_EOLDFORMAT;
	else if (r == 0 && fmt != AG_FORMAT_VERSION)
		r = fmt > AG_FORMAT_VERSION ? -AG_EFORMAT : -AG_ECORRUPT;
	if (r == -ENOENT)
		r = -AG_ENOTSTORE;
	s->format = (unsigned)fmt;
	if (r == 0 && fmt == 1 && (rc = mdb_dbi_open(txn, "tables", 0, &s->dbi_tables)))
		r = rc == MDB_NOTFOUND ? -AG_ENOTSTORE : ag_lmdb_err(rc);
	/* trees: created by ag_txn_migrate in a format-1 store. */
	if (r == 0 && fmt != 1 && (rc = mdb_dbi_open(txn, "trees", fl, &s->dbi_trees)))
		r = rc == MDB_NOTFOUND ? -AG_ENOTSTORE : ag_lmdb_err(rc);
	if (r == 0 && !create) {
		MDB_dbi dbis[] = {s->dbi_meta, s->dbi_blobs, s->dbi_gens,
				  fmt == 1 ? s->dbi_tables : s->dbi_trees};
		for (size_t i = 0; r == 0 && i < sizeof(dbis) / sizeof(dbis[0]); i++)
			r = probe_dbi(txn, dbis[i]);
	}
	*vtxn = NULL;
	if (r < 0) {
		mdb_txn_abort(txn);
		return r;
	}
	return ag_lmdb_err(mdb_txn_commit(txn));
}

static int open_dbis(ag_store *s, bool create)
{
	MDB_txn *volatile txn = NULL;
	struct ag_guard g;
	ag_guard_push(&g);
	if (sigsetjmp(g.jb, 0)) {
		if (txn)
			mdb_txn_abort(txn);
		return -AG_EINDEX;
	}
	int r = open_dbis_txn(s, create, &txn);
	ag_guard_pop(&g);
	return r;
}

int ag_index_open(ag_store *s, bool create)
{
	int rc = mdb_env_create(&s->env);
	if (rc)
		return ag_lmdb_err(rc);
	ag_guard_install(s->env);
	mdb_env_set_maxdbs(s->env, 8);
	mdb_env_set_maxreaders(s->env, AG_MAX_READERS);
	mdb_env_set_mapsize(s->env, AG_MAP_SIZE);
	char dir[4096];
	if ((size_t)snprintf(dir, sizeof(dir), "%s/index", s->path) >= sizeof(dir))
		return -ENAMETOOLONG;
	unsigned fl = MDB_NOTLS | (s->writer ? 0 : MDB_RDONLY);
	rc = mdb_env_open(s->env, dir, fl, 0644);
	if (rc) {
		mdb_env_close(s->env);
		s->env = NULL;
		return rc == ENOENT ? -AG_ENOTSTORE : ag_lmdb_err(rc);
	}
	if (s->writer) {
		int dead;
		mdb_reader_check(s->env, &dead);
	}
	int r = open_dbis(s, create);
	if (r < 0) {
		mdb_env_close(s->env);
		s->env = NULL;
	}
	return r;
}

void ag_index_close(ag_store *s)
{
	if (s->env)
		mdb_env_close(s->env);
	s->env = NULL;
}

/* A full reader table is a moment of load, not a fault: wait a little for
 * a slot (up to about a second) before giving up with -EAGAIN. */
int ag_rtxn_begin(ag_store *s, MDB_txn **txn)
{
	int rc;
	for (int tries = 0;; tries++) {
		rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
		if (rc != MDB_READERS_FULL || tries >= 100)
			break;
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	}
	return ag_lmdb_err(rc);
}

static int count_reader(const char *msg, void *arg)
{
	(void)msg;
	(*(unsigned *)arg)++;
	return 0;
}

int ag_store_readers_free(ag_store *s, unsigned *nfree)
{
	unsigned max = 0, lines = 0;
	int rc = mdb_env_get_maxreaders(s->env, &max);
	if (rc)
		return ag_lmdb_err(rc);
	/* One line per reader in use, after a header line ("(no active readers)"
	 * alone when there are none). */
	rc = mdb_reader_list(s->env, count_reader, &lines);
	if (rc < 0)
		return ag_lmdb_err(rc);
	unsigned used = lines > 1 ? lines - 1 : 0;
	*nfree = used < max ? max - used : 0;
	return 0;
}

/* ---------- meta ---------- */

static int meta_get_str(MDB_txn *txn, ag_store *s, const char *key, char **out)
{
	MDB_val k = {strlen(key), (void *)key}, v;
	int rc = mdb_get(txn, s->dbi_meta, &k, &v);
	if (rc)
		return ag_lmdb_err(rc);
	*out = strndup(v.mv_data, v.mv_size);
	return *out ? 0 : -ENOMEM;
}

int ag_meta_get_u64(MDB_txn *txn, ag_store *s, const char *key, uint64_t *v)
{
	_cleanup_free_ char *str = NULL;
	int r = meta_get_str(txn, s, key, &str);
	if (r < 0)
		return r;
	char *end;
	errno = 0;
	unsigned long long x = strtoull(str, &end, 10);
	if (errno || *end || end == str)
		return -AG_ECORRUPT;
	*v = x;
	return 0;
}

int ag_meta_put_str(MDB_txn *txn, ag_store *s, const char *key, const char *value)
{
	MDB_val k = {strlen(key), (void *)key}, v = {strlen(value), (void *)value};
	return ag_lmdb_err(mdb_put(txn, s->dbi_meta, &k, &v, 0));
}

struct meta_get {
	ag_store *s;
	const char *key;
	char **value;
};

static int meta_get_txn(MDB_txn *txn, void *arg)
{
	struct meta_get *a = arg;
	return meta_get_str(txn, a->s, a->key, a->value);
}

int ag_meta_get(ag_store *s, const char *key, char **value)
{
	struct meta_get a = {s, key, value};
	return ag_read_guarded(s, meta_get_txn, &a);
}

static bool reserved_key(const char *key)
{
	return !strcmp(key, "format") || !strcmp(key, "current") || !strcmp(key, "previous") ||
	       !strcmp(key, "last_id") || !strcmp(key, "audit_seq") || !strcmp(key, "audit_end") ||
	       !strcmp(key, "audit_floor");
}

int ag_txn_meta_put(ag_txn *t, const char *key, const char *value)
{
	AG_TXN_GUARD(t);
	if (reserved_key(key))
		return -EPERM;
	return ag_meta_put_str(t->txn, t->s, key, value);
}

/* ---------- blob records ---------- */

static int decode_blob(const MDB_val *v, const ag_digest *d, ag_blob_info *info, bool check)
{
	struct ag_blob_rec rec;
	if (v->mv_size != sizeof(rec) + 32)
		return -AG_ECORRUPT;
	memcpy(&rec, v->mv_data, sizeof(rec));
	struct ag_verity_geometry g;
	if (rec.version != AG_BLOB_REC_VERSION || rec.block != AG_VERITY_BLOCK ||
	    rec.size > (uint64_t)INT64_MAX)
		return -AG_ECORRUPT;
	ag_verity_geometry(rec.size, &g);
	if (rec.tree_blocks != g.tree_blocks)
		return -AG_ECORRUPT;
	if (check) {
		uint8_t sum[32];
		ag_digest fd, root;
		ag_sha256_fast(v->mv_data, sizeof(rec), sum);
		memcpy(root.b, rec.root, 32);
		ag_verity_file_digest(&root, rec.size, &fd);
		if (memcmp(sum, (const uint8_t *)v->mv_data + sizeof(rec), 32) ||
		    memcmp(fd.b, rec.fsverity, 32))
			return -AG_ECORRUPT;
	}
	*info = (ag_blob_info){.digest = *d,
			       .size = rec.size,
			       .chunk_size = AG_VERITY_BLOCK,
			       .nchunks = (rec.size + AG_VERITY_BLOCK - 1) / AG_VERITY_BLOCK,
			       .created = rec.created,
			       .has_fsverity = true};
	memcpy(info->root.b, rec.root, 32);
	memcpy(info->fsverity.b, rec.fsverity, 32);
	return 0;
}

int ag_blob_rec1_decode(const MDB_val *v, const ag_digest *d, ag_blob_info *info)
{
	struct ag_blob_rec1 rec;
	if (v->mv_size < sizeof(rec))
		return -AG_ECORRUPT;
	memcpy(&rec, v->mv_data, sizeof(rec));
	if (rec.version != 1 || rec.size > (uint64_t)INT64_MAX || rec.chunk_size < 4096 ||
	    (rec.chunk_size & (rec.chunk_size - 1)) ||
	    v->mv_size != sizeof(rec) + (rec.npages + 1) * 32)
		return -AG_ECORRUPT;
	size_t body = sizeof(rec) + rec.npages * 32;
	uint8_t check[32];
	ag_sha256_fast(v->mv_data, body, check);
	if (memcmp(check, (const uint8_t *)v->mv_data + body, 32))
		return -AG_ECORRUPT;
	*info = (ag_blob_info){.digest = *d, .size = rec.size, .created = rec.created};
	return 0;
}

int ag_blob_rec_get(MDB_txn *txn, ag_store *s, const ag_digest *d, ag_blob_info *info, bool check)
{
	MDB_val k = {32, (void *)d->b}, v;
	int rc = mdb_get(txn, s->dbi_blobs, &k, &v);
	if (rc)
		return ag_lmdb_err(rc);
	return decode_blob(&v, d, info, check);
}

void ag_tree_key(const ag_digest *d, uint64_t blk, uint8_t key[40])
{
	memcpy(key, d->b, 32);
	for (int i = 7; i >= 0; i--, blk >>= 8)
		key[32 + i] = (uint8_t)blk;
}

struct tree_get {
	ag_store *s;
	const ag_digest *d;
	uint64_t blk, n;
	uint8_t **out;
};

static int tree_get_txn(MDB_txn *txn, void *arg)
{
	struct tree_get *a = arg;
	uint8_t kb[40];
	ag_tree_key(a->d, a->blk, kb);
	MDB_val k = {40, kb}, v;
	int r = ag_lmdb_err(mdb_get(txn, a->s->dbi_trees, &k, &v));
	if (r == -ENOENT) {
		/* The record promised this block.  Record gone too: the blob was
		 * deleted since it was opened (-ESTALE); record still there: the
		 * index lost the block (-AG_EINDEX).  Neither checked anything. */
		MDB_val rk = {32, (void *)a->d->b}, rv;
		int rc = mdb_get(txn, a->s->dbi_blobs, &rk, &rv);
		return rc == MDB_NOTFOUND ? -ESTALE : rc == 0 ? -AG_EINDEX : ag_lmdb_err(rc);
	}
	if (r < 0)
		return r;
	if (v.mv_size != AG_VERITY_BLOCK)
		return -EBADMSG; /* cannot hash to what its parent says */
	if (!(a->out[0] = malloc(AG_VERITY_BLOCK)))
		return -ENOMEM;
	memcpy(a->out[0], v.mv_data, AG_VERITY_BLOCK);
	/* The blocks after it, as far as they are there and whole (each is
	 * checked against its parent when used). */
	uint64_t got = 1;
	for (; got < a->n; got++) {
		ag_tree_key(a->d, a->blk + got, kb);
		MDB_val k2 = {40, kb}, v2;
		if (mdb_get(txn, a->s->dbi_trees, &k2, &v2) || v2.mv_size != AG_VERITY_BLOCK ||
		    !(a->out[got] = malloc(AG_VERITY_BLOCK)))
			break;
		memcpy(a->out[got], v2.mv_data, AG_VERITY_BLOCK);
	}
	return (int)got;
}

int ag_tree_blocks_get(ag_store *s, const ag_digest *d, uint64_t blk, uint64_t n, uint8_t **out)
{
	struct tree_get a = {s, d, blk, n, out};
	for (uint64_t i = 0; i < n; i++)
		out[i] = NULL;
	int r = ag_read_guarded(s, tree_get_txn, &a);
	if (r < 0) /* a fault part-way: nothing handed out */
		for (uint64_t i = 0; i < n; i++) {
			free(out[i]);
			out[i] = NULL;
		}
	return r;
}

static int tree_del(ag_txn *t, const ag_digest *d)
{
	MDB_cursor *cur;
	int rc = mdb_cursor_open(t->txn, t->s->dbi_trees, &cur);
	if (rc)
		return ag_lmdb_err(rc);
	uint8_t kb[40];
	ag_tree_key(d, 0, kb);
	MDB_val k = {40, kb}, v;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size == 40 && !memcmp(k.mv_data, d->b, 32)) {
		if ((rc = mdb_cursor_del(cur, 0)))
			break;
		k = (MDB_val){40, kb};
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	}
	mdb_cursor_close(cur);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : ag_lmdb_err(rc);
}

int ag_blob_rec_put(ag_txn *t, const ag_blob_info *info, const uint8_t *tree, uint64_t tree_blocks)
{
	struct ag_blob_rec rec = {.version = AG_BLOB_REC_VERSION,
				  .block = AG_VERITY_BLOCK,
				  .size = info->size,
				  .created = info->created,
				  .tree_blocks = tree_blocks};
	memcpy(rec.root, info->root.b, 32);
	memcpy(rec.fsverity, info->fsverity.b, 32);
	int r = tree_del(t, &info->digest); /* a damaged one's stray blocks */
	if (r < 0)
		return r;
	for (uint64_t b = 0; b < tree_blocks; b++) {
		uint8_t kb[40];
		ag_tree_key(&info->digest, b, kb);
		MDB_val k = {40, kb}, v = {AG_VERITY_BLOCK, (void *)(tree + b * AG_VERITY_BLOCK)};
		int rc = mdb_put(t->txn, t->s->dbi_trees, &k, &v, MDB_APPEND);
		if (rc == MDB_KEYEXIST) /* not the last keys: an ordinary put */
			rc = mdb_put(t->txn, t->s->dbi_trees, &k, &v, 0);
		if (rc)
			return ag_lmdb_err(rc);
	}
	uint8_t buf[sizeof(rec) + 32];
	memcpy(buf, &rec, sizeof(rec));
	ag_sha256_fast(buf, sizeof(rec), buf + sizeof(rec));
	MDB_val k = {32, (void *)info->digest.b}, v = {sizeof(buf), buf};
	return ag_lmdb_err(mdb_put(t->txn, t->s->dbi_blobs, &k, &v, 0));
}

int ag_tree_same(ag_txn *t, const ag_digest *d, const uint8_t *tree, uint64_t tree_blocks)
{
	for (uint64_t b = 0; b < tree_blocks; b++) {
		uint8_t kb[40];
		ag_tree_key(d, b, kb);
		MDB_val k = {40, kb}, v;
		int rc = mdb_get(t->txn, t->s->dbi_trees, &k, &v);
		if (rc == MDB_NOTFOUND)
			return 1;
		if (rc)
			return ag_lmdb_err(rc);
		if (v.mv_size != AG_VERITY_BLOCK ||
		    memcmp(v.mv_data, tree + b * AG_VERITY_BLOCK, AG_VERITY_BLOCK))
			return 1;
	}
	return 0;
}

struct lookup {
	ag_store *s;
	const ag_digest *d;
	ag_blob_info *out;
};

static int lookup_txn(MDB_txn *txn, void *arg)
{
	struct lookup *a = arg;
	return ag_blob_rec_get(txn, a->s, a->d, a->out, false);
}

int ag_blob_lookup(ag_store *s, const ag_digest *d, ag_blob_info *out)
{
	struct lookup a = {s, d, out};
	return ag_read_guarded(s, lookup_txn, &a);
}

struct foreach {
	ag_store *s;
	int (*cb)(const ag_blob_info *bi, void *arg);
	int (*cb_all)(const ag_blob_info *bi, int err, void *arg);
	void *arg;
};

static int foreach_txn(MDB_txn *txn, void *fa)
{
	struct foreach *a = fa;
	ag_store *s = a->s;
	int (*cb)(const ag_blob_info *, void *) = a->cb;
	void *arg = a->arg;
	MDB_cursor *cur;
	int r;
	if ((r = ag_lmdb_err(mdb_cursor_open(txn, s->dbi_blobs, &cur))) < 0)
		return r;
	MDB_val k, v;
	int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	while (rc == 0 && r == 0) {
		ag_digest d;
		ag_blob_info bi;
		if (k.mv_size != 32) {
			r = -AG_ECORRUPT;
			break;
		}
		memcpy(d.b, k.mv_data, 32);
		if ((r = decode_blob(&v, &d, &bi, false)) < 0)
			break;
		r = cb(&bi, arg);
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	if (r == 0 && rc != MDB_NOTFOUND)
		r = ag_lmdb_err(rc);
	mdb_cursor_close(cur);
	return r;
}

int ag_blob_foreach(ag_store *s, int (*cb)(const ag_blob_info *bi, void *arg), void *arg)
{
	struct foreach a = {.s = s, .cb = cb, .arg = arg};
	return ag_read_guarded(s, foreach_txn, &a);
}

static int foreach_all_txn(MDB_txn *txn, void *fa)
{
	struct foreach *a = fa;
	ag_store *s = a->s;
	int (*cb)(const ag_blob_info *, int, void *) = a->cb_all;
	void *arg = a->arg;
	MDB_cursor *cur;
	int r;
	if ((r = ag_lmdb_err(mdb_cursor_open(txn, s->dbi_blobs, &cur))) < 0)
		return r;
	MDB_val k, v;
	int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	while (rc == 0 && r == 0) {
		ag_blob_info bi = {0};
		int err = -AG_ECORRUPT;
		if (k.mv_size == 32) {
			memcpy(bi.digest.b, k.mv_data, 32);
			err = decode_blob(&v, &bi.digest, &bi, true);
			if (err < 0)
				bi = (ag_blob_info){.digest = bi.digest};
		}
		if (err == -ENOMEM)
			r = err;
		else
			r = cb(&bi, err, arg);
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	if (r == 0 && rc != MDB_NOTFOUND)
		r = ag_lmdb_err(rc);
	mdb_cursor_close(cur);
	return r;
}

int ag_blob_foreach_all(ag_store *s, int (*cb)(const ag_blob_info *bi, int err, void *arg),
			void *arg)
{
	struct foreach a = {.s = s, .cb_all = cb, .arg = arg};
	return ag_read_guarded(s, foreach_all_txn, &a);
}

/* ---------- write transactions ---------- */

static int txn_begin_guarded(ag_txn *t)
{
	AG_TXN_GUARD(t);
	return ag_lmdb_err(mdb_txn_begin(t->s->env, NULL, 0, &t->txn));
}

int ag_txn_begin(ag_store *s, ag_txn **out)
{
	if (!s->writer)
		return -EROFS;
	ag_txn *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->s = s;
	int r = txn_begin_guarded(t);
	if (r < 0) {
		free(t);
		return r;
	}
	*out = t;
	return 0;
}

int ag_txn_note_created(ag_txn *t, const ag_digest *d)
{
	if (t->ncreated == t->capcreated) {
		size_t cap = t->capcreated ? t->capcreated * 2 : 16;
		ag_digest *n = realloc(t->created, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		t->created = n;
		t->capcreated = cap;
	}
	t->created[t->ncreated++] = *d;
	return 0;
}

static int commit_guarded(ag_txn *t)
{
	AG_TXN_GUARD(t);
	return ag_lmdb_err(mdb_txn_commit(t->txn));
}

int ag_txn_sync(ag_txn *t)
{
	if (!t->unsynced)
		return 0;
	if (syncfs(t->s->dirfd) < 0)
		return ag_errno();
	t->unsynced = false;
	return 0;
}

int ag_txn_commit(ag_txn *t)
{
	int r = ag_txn_sync(t);
	if (r < 0) {
		ag_txn_abort(t);
		return r;
	}
	r = commit_guarded(t);
	if (!t->broken)
		t->txn = NULL; /* freed by LMDB, whatever the result */
	if (r < 0) {
		ag_txn_abort(t);
		return r;
	}
	free(t->created);
	free(t);
	return 0;
}

void ag_txn_abort(ag_txn *t)
{
	if (!t)
		return;
	if (t->txn) {
		struct ag_guard g;
		ag_guard_push(&g);
		if (sigsetjmp(g.jb, 0) == 0)
			mdb_txn_abort(t->txn);
		ag_guard_pop(&g);
	}
	/* Objects linked for this transaction are referenced by nothing now;
	 * a fan-out directory made for them goes too when it is left empty
	 * (the store stays exactly as it was). */
	for (size_t i = 0; i < t->ncreated; i++) {
		char rel[96];
		ag_object_unlink(t->s, &t->created[i]);
		ag_object_relpath(&t->created[i], rel, sizeof(rel));
		rel[sizeof("objects/sha256/ab") - 1] = '\0';
		unlinkat(t->s->dirfd, rel, AT_REMOVEDIR); /* fails when not empty */
	}
	free(t->created);
	free(t);
}

int ag_txn_blob_del(ag_txn *t, const ag_digest *d)
{
	AG_TXN_GUARD(t);
	ag_blob_info bi;
	int r = ag_blob_rec_get(t->txn, t->s, d, &bi, false);
	if (r < 0 && r != -AG_ECORRUPT)
		return r;
	/* Every block of this digest's tree, however many the record says. */
	if ((r = tree_del(t, d)) < 0)
		return r;
	MDB_val k = {32, (void *)d->b};
	return ag_lmdb_err(mdb_del(t->txn, t->s->dbi_blobs, &k, NULL));
}
