/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Format 1 -> format 2, in place, inside one write transaction: every
 * object re-hashed (SHA-256 and fs-verity tree in one pass) and checked
 * against its format-1 record, its tree and format-2 record written, the
 * chunk tables dropped, a catalog built for every generation, format = 2.
 * Any problem aborts the whole transaction: the store stays format 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "store/internal.h"

struct rec1 {
	ag_digest d;
	ag_blob_info bi;
	int err;
};

static int list_records(ag_txn *t, struct rec1 **out, size_t *n)
{
	MDB_cursor *cur;
	int r = ag_lmdb_err(mdb_cursor_open(t->txn, t->s->dbi_blobs, &cur));
	if (r < 0)
		return r;
	struct rec1 *v = NULL;
	size_t cnt = 0, cap = 0;
	MDB_val k, val;
	int rc;
	for (rc = mdb_cursor_get(cur, &k, &val, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &val, MDB_NEXT)) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 64;
			struct rec1 *nv = realloc(v, cap * sizeof(*nv));
			if (!nv) {
				rc = ENOMEM;
				break;
			}
			v = nv;
		}
		struct rec1 *e = &v[cnt++];
		memset(e, 0, sizeof(*e));
		if (k.mv_size != 32) {
			e->err = -AG_ECORRUPT;
			continue;
		}
		memcpy(e->d.b, k.mv_data, 32);
		e->err = ag_blob_rec1_decode(&val, &e->d, &e->bi);
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND) {
		free(v);
		return ag_lmdb_err(rc);
	}
	*out = v;
	*n = cnt;
	return 0;
}

static int migrate_blob(ag_txn *t, const struct rec1 *e)
{
	if (e->err < 0)
		return e->err;
	_cleanup_close_ int fd = ag_object_open(t->s, &e->d, O_RDONLY);
	if (fd < 0)
		return fd;
	ag_blob_info bi = {0};
	_cleanup_free_ uint8_t *tree = NULL;
	uint64_t nblocks = 0;
	int r = ag_treebuf_fd(fd, e->bi.size, &bi, &tree, &nblocks);
	if (r < 0)
		return r;
	off_t end = lseek(fd, 0, SEEK_END);
	if (end < 0 || (uint64_t)end != e->bi.size)
		return -AG_ECORRUPT;
	if (!ag_digest_eq(&bi.digest, &e->d))
		return -AG_EDIGEST;
	bi.created = e->bi.created;
	return ag_blob_rec_put(t, &bi, tree, nblocks);
}

int ag_txn_migrate(ag_txn *t, ag_digest *bad, void (*cb)(uint64_t done, uint64_t total, void *arg),
		   void *arg)
{
	AG_TXN_GUARD(t);
	ag_store *s = t->s;
	if (bad)
		memset(bad, 0, sizeof(*bad));
	if (s->format == AG_FORMAT_VERSION)
		return 0;
	if (s->format != 1)
		return -AG_EFORMAT;
	_cleanup_free_ struct rec1 *recs = NULL;
	size_t n = 0;
	int r = ag_lmdb_err(mdb_dbi_open(t->txn, "trees", MDB_CREATE, &s->dbi_trees));
	if (r == 0)
		r = list_records(t, &recs, &n);
	for (size_t i = 0; r == 0 && i < n; i++) {
		r = migrate_blob(t, &recs[i]);
		if (r < 0 && bad)
			*bad = recs[i].d;
		if (r == 0 && cb)
			cb(i + 1, n, arg);
	}
	if (r < 0)
		return r;
	if ((r = ag_lmdb_err(mdb_drop(t->txn, s->dbi_tables, 1))) < 0)
		return r;
	/* Every generation gets its catalog, in id order, each the parent of
	 * the next (format 1 kept no history of which was current when). */
	s->format = AG_FORMAT_VERSION; /* the blob records are format 2 now */
	_cleanup_free_ uint64_t *ids = NULL;
	size_t nids = 0;
	MDB_cursor *cur;
	if ((r = ag_lmdb_err(mdb_cursor_open(t->txn, s->dbi_gens, &cur))) < 0)
		goto out;
	MDB_val k, v;
	int rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint64_t *nv = realloc(ids, (nids + 1) * sizeof(*nv));
		if (!nv || k.mv_size != 8) {
			rc = nv ? MDB_CORRUPTED : ENOMEM;
			free(nv);
			ids = NULL;
			break;
		}
		ids = nv;
		uint64_t id = 0;
		for (int b = 0; b < 8; b++)
			id = id << 8 | ((const uint8_t *)k.mv_data)[b];
		ids[nids++] = id;
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND) {
		r = ag_lmdb_err(rc);
		goto out;
	}
	ag_digest parent;
	bool has_parent = false;
	for (size_t i = 0; r == 0 && i < nids; i++) {
		ag_gen *g = NULL;
		_cleanup_free_ char *bytes = NULL;
		size_t len = 0;
		if ((r = ag_txn_gen_get(t, ids[i], &g)) < 0)
			break;
		r = ag_catalog_build(t, g, i + 1, has_parent ? &parent : NULL, &bytes, &len);
		if (r == 0)
			r = ag_txn_put_bytes(t, bytes, len, &g->catalog);
		if (r == 0) {
			g->has_catalog = true;
			g->has_signature = false;
			r = ag_gen_put_txn(t, g, true);
		}
		parent = g->catalog;
		has_parent = true;
		ag_gen_free(g);
	}
	char serial[24];
	snprintf(serial, sizeof(serial), "%zu", nids);
	if (r == 0 && nids)
		r = ag_meta_put_str(t->txn, s, "catalog_serial", serial);
	if (r == 0 && nids)
		r = ag_meta_put_str(t->txn, s, "max_catalog_serial", serial);
	if (r == 0)
		r = ag_meta_put_str(t->txn, s, "format", "2");
out:
	if (r < 0)
		s->format = 1;
	return r;
}
