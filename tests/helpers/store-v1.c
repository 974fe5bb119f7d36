/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store-v1 STORE: rewrites a format-2 store as the format-1 code (7a7fca6)
 * wrote it, for migration tests that cannot build the old code: every blob
 * record becomes a format-1 record (64 KiB chunk table in "tables", page
 * hashes, own hash), the trees database is dropped, the generation records
 * lose their catalog, signature and bundle-file names, catalog and signature
 * blobs go (records and objects), the serial keys go, meta format = "1".
 * Raw LMDB, one transaction; run with the store idle.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "store/internal.h"
#include "tests/helpers/lib/store-raw.h"

#define CS (64u << 10)

/* STORE/objects/sha256/ab/<hex>: object d's file. */
static void object_path(const char *store, const ag_digest *d, char *path, size_t len)
{
	char rel[96];

	ag_object_relpath(d, rel, sizeof(rel));
	snprintf(path, len, "%s/%s", store, rel);
}

static void page_key(const ag_digest *d, uint64_t p, uint8_t key[40])
{
	memcpy(key, d->b, 32);
	for (int i = 7; i >= 0; i--, p >>= 8)
		key[32 + i] = (uint8_t)p;
}

/* The format-1 record and chunk table of object d. */
static int v1_blob(const char *store, MDB_txn *txn, MDB_dbi blobs, MDB_dbi tables,
		   const ag_digest *d, uint64_t size, int64_t created)
{
	char path[4200];
	object_path(store, d, path, sizeof(path));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	uint64_t nchunks = (size + CS - 1) / CS,
		 npages = (nchunks + AG_PAGE_CHUNKS - 1) / AG_PAGE_CHUNKS;
	uint8_t *table = calloc(nchunks + 1, 32), *buf = malloc(CS);
	for (uint64_t c = 0; c < nchunks; c++) {
		size_t n = size - c * CS < CS ? (size_t)(size - c * CS) : CS;
		if (pread(fd, buf, n, (off_t)(c * CS)) != (ssize_t)n)
			return -EIO;
		ag_sha256(buf, n, (ag_digest *)(table + c * 32));
	}
	close(fd);
	size_t reclen = sizeof(struct ag_blob_rec1) + (npages + 1) * 32;
	uint8_t *rec = calloc(1, reclen);
	struct ag_blob_rec1 h = {1, CS, size, created, nchunks, npages};
	memcpy(rec, &h, sizeof(h));
	for (uint64_t p = 0; p < npages; p++) {
		uint64_t n = nchunks - p * AG_PAGE_CHUNKS < AG_PAGE_CHUNKS
				     ? nchunks - p * AG_PAGE_CHUNKS
				     : AG_PAGE_CHUNKS;
		uint8_t kb[40];
		page_key(d, p, kb);
		MDB_val k = {40, kb}, v = {n * 32, table + p * AG_PAGE_CHUNKS * 32};
		int rc = mdb_put(txn, tables, &k, &v, 0);
		if (rc)
			return rc;
		ag_sha256(v.mv_data, v.mv_size, (ag_digest *)(rec + sizeof(h) + p * 32));
	}
	ag_sha256(rec, reclen - 32, (ag_digest *)(rec + reclen - 32));
	MDB_val k = {32, (void *)d->b}, v = {reclen, rec};
	int rc = mdb_put(txn, blobs, &k, &v, 0);
	free(rec);
	free(table);
	free(buf);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: store-v1 STORE\n");
		return 2;
	}
	const char *store = argv[1];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta, blobs, gens, trees, tables;
	int rc = th_index_begin(store, &env, &txn);
	if (!rc)
		rc = mdb_dbi_open(txn, "meta", 0, &meta);
	if (!rc)
		rc = mdb_dbi_open(txn, "blobs", 0, &blobs);
	if (!rc)
		rc = mdb_dbi_open(txn, "gens", 0, &gens);
	if (!rc)
		rc = mdb_dbi_open(txn, "trees", 0, &trees);
	if (!rc)
		rc = mdb_dbi_open(txn, "tables", MDB_CREATE, &tables);
	if (rc)
		return th_die("opening the index", rc);

	/* Generations: drop the format-2 names, remember the blobs to drop. */
	ag_digest drop[4096];
	size_t ndrop = 0;
	MDB_cursor *cur;
	MDB_val k, v;
	mdb_cursor_open(txn, gens, &cur);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		json_t *o = json_loadb(v.mv_data, v.mv_size, 0, NULL);
		if (!o)
			return th_die("a generation record", -AG_ECORRUPT);
		const char *keys[] = {"catalog", "signature"};
		for (int i = 0; i < 2; i++) {
			const char *hx = json_string_value(json_object_get(o, keys[i]));
			if (hx && ndrop < 4096 &&
			    ag_digest_parse(hx, strlen(hx), &drop[ndrop]) == 0)
				ndrop++;
			json_object_del(o, keys[i]);
		}
		json_object_del(o, "bundle_files");
		char *s = json_dumps(o, JSON_COMPACT);
		MDB_val nv = {strlen(s), s};
		if ((rc = mdb_cursor_put(cur, &k, &nv, MDB_CURRENT)))
			return th_die("rewriting a generation", rc);
		free(s);
		json_decref(o);
	}
	mdb_cursor_close(cur);
	for (size_t i = 0; i < ndrop; i++) {
		MDB_val dk = {32, drop[i].b};
		mdb_del(txn, blobs, &dk, NULL);
		char path[4200];
		object_path(store, &drop[i], path, sizeof(path));
		unlink(path);
	}

	/* Blob records: format 1. */
	mdb_cursor_open(txn, blobs, &cur);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct ag_blob_rec r2;
		ag_digest d;
		if (k.mv_size != 32 || v.mv_size != sizeof(r2) + 32)
			return th_die("a blob record", -AG_ECORRUPT);
		memcpy(d.b, k.mv_data, 32);
		memcpy(&r2, v.mv_data, sizeof(r2));
		int r = v1_blob(store, txn, blobs, tables, &d, r2.size, r2.created);
		if (r)
			return th_die("writing a format-1 record", r);
	}
	mdb_cursor_close(cur);
	MDB_val fk = {6, "format"}, fv = {1, "1"};
	MDB_val k1 = {14, "catalog_serial"}, k2 = {18, "max_catalog_serial"};
	mdb_del(txn, meta, &k1, NULL);
	mdb_del(txn, meta, &k2, NULL);
	if ((rc = mdb_put(txn, meta, &fk, &fv, 0)) || (rc = mdb_drop(txn, trees, 1)) ||
	    (rc = mdb_txn_commit(txn)))
		return th_die("committing", rc);
	mdb_env_close(env);
	return 0;
}
