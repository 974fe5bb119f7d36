/* SPDX-License-Identifier: Apache-2.0 */
/* Blobs: single-pass put, dedup, hash trees, verified reads, corruption. */
#include <errno.h>
#include <lmdb.h>

#include "tests/unit/store-common.h"

static void fail_open(const char *how)
{
	ok(0, "open with %s", how);
}

static void check_roundtrip(ag_store *s, size_t size, uint32_t cs, uint64_t seed)
{
	uint8_t *buf = malloc(size + 1), *back = malloc(size + 1);
	fill_bytes(buf, size, seed);
	ag_digest want;
	ag_sha256(buf, size, &want);
	ag_blob_info bi;
	int r = ag_put_buf(s, buf, size, cs, &want, &bi);
	ok(r == 0, "put %zu bytes with chunk %u: %s", size, cs, ag_strerror(r));
	ok(ag_digest_eq(&bi.digest, &want) && bi.size == size && bi.chunk_size == cs &&
		   bi.nchunks == (size + cs - 1) / cs,
	   "record of %zu bytes: digest, size, chunk size and %llu chunks", size,
	   (unsigned long long)bi.nchunks);
	ag_blob *b = NULL;
	r = ag_blob_open(s, &want, AG_BLOB_DIRECT, &b);
	ok(r == 0, "open %zu-byte blob", size);
	if (b) {
		ssize_t n = ag_blob_pread(b, back, size + 1, 0, NULL);
		ok(n == (ssize_t)size && memcmp(buf, back, size) == 0,
		   "verified read returns the %zu bytes", size);
		ok(ag_blob_verify_full(b, NULL) == 0, "full verification of %zu bytes", size);
		ag_blob_close(b);
	}
	if (ag_blob_open(s, &want, AG_BLOB_STREAM, &b) == 0) {
		memset(back, 0, size + 1);
		ssize_t n = ag_blob_pread(b, back, size + 1, 0, NULL);
		ok(n == (ssize_t)size && memcmp(buf, back, size) == 0,
		   "buffered drop-behind read returns the %zu bytes", size);
		ag_blob_close(b);
	} else {
		fail_open("AG_BLOB_STREAM");
	}
	free(buf);
	free(back);
}

static void test_sizes(void)
{
	ag_store *s = new_store("sizes");
	check_roundtrip(s, 0, AG_DEFAULT_CHUNK, 1);
	for (uint32_t cs = AG_MIN_CHUNK; cs <= AG_MAX_CHUNK; cs *= 4) {
		check_roundtrip(s, (size_t)cs * 3, cs, cs);	    /* exactly N chunks */
		check_roundtrip(s, (size_t)cs * 3 + 1, cs, cs + 7); /* N chunks + 1 byte */
	}
	check_roundtrip(s, 1, AG_MIN_CHUNK, 99);
	ag_blob_info bi;
	ok(ag_put_buf(s, "x", 1, 3000, NULL, &bi) == -EINVAL,
	   "chunk size not a power of two refused");
	ok(ag_put_buf(s, "x", 1, 8u << 20, NULL, &bi) == -EINVAL, "chunk size over 4 MiB refused");
	ok(ag_put_buf(s, "x", 1, 64u << 10, NULL, &bi) == -EINVAL,
	   "format 2: a 64 KiB chunk size is refused (4 KiB blocks only)");
	ag_store_close(s);
}

static void test_dedup(void)
{
	ag_store *s = new_store("dedup");
	uint8_t buf[10000];
	fill_bytes(buf, sizeof(buf), 5);
	ag_blob_info a, b;
	ok(ag_put_buf(s, buf, sizeof(buf), 0, NULL, &a) == 0, "first put");
	int before = count_objects(s);
	sleep(1);
	ok(ag_put_buf(s, buf, sizeof(buf), 0, NULL, &b) == 0, "second put of the same bytes");
	is_int(count_objects(s), before, "dedup: no new object");
	is_int(b.created, a.created, "dedup keeps the first-import time");
	is_int(count_dir_entries(ag_store_path(s), "tmp"), 0, "nothing left in tmp/");
	ag_store_close(s);
}

static void test_expected_mismatch(void)
{
	ag_store *s = new_store("mismatch");
	uint8_t buf[5000];
	fill_bytes(buf, sizeof(buf), 6);
	ag_digest wrong;
	memset(&wrong, 0xab, sizeof(wrong));
	ag_blob_info bi;
	int r = ag_put_buf(s, buf, sizeof(buf), 0, &wrong, &bi);
	is_int(r, -AG_EDIGEST, "put with a wrong expected digest fails");
	is_int(count_objects(s), 0, "no object left behind");
	is_int(count_dir_entries(ag_store_path(s), "tmp"), 0, "no staging file left behind");
	ag_digest real;
	ag_sha256(buf, sizeof(buf), &real);
	is_int(ag_blob_lookup(s, &real, &bi), -ENOENT, "no record left behind");
	ag_store_close(s);
}

static void flip_byte(ag_store *s, const ag_digest *d, uint64_t off)
{
	char p[1024];
	object_path(s, d, p, sizeof(p));
	chmod(p, 0644);
	int fd = open(p, O_RDWR);
	uint8_t c;
	if (fd < 0 || pread(fd, &c, 1, (off_t)off) != 1)
		bail("cannot open object %s", p);
	c ^= 0x01;
	if (pwrite(fd, &c, 1, (off_t)off) != 1)
		bail("cannot write object");
	fsync(fd);
	close(fd);
}

static void test_corruption(void)
{
	ag_store *s = new_store("corrupt");
	const uint32_t cs = 4096;
	const size_t size = cs * 8 + 100;
	uint8_t *buf = malloc(size), *back = malloc(size);
	fill_bytes(buf, size, 7);
	ag_blob_info bi;
	int pr = ag_put_buf(s, buf, size, cs, NULL, &bi);
	if (pr < 0)
		bail("put failed: %s", ag_strerror(pr));
	flip_byte(s, &bi.digest, cs * 5 + 17); /* inside chunk 5 */
	ag_blob *b;
	if (ag_blob_open(s, &bi.digest, 0, &b) < 0)
		bail("open failed");
	int bad_reads = 0, good_reads = 0, wrong = 0;
	uint64_t bad = 999;
	for (uint64_t off = 0; off < size; off += 1000) {
		size_t len = off + 1500 > size ? size - off : 1500;
		bool touches = off < cs * 6 && off + len > cs * 5;
		ssize_t n = ag_blob_pread(b, back, len, off, &bad);
		if (touches) {
			bad_reads += n == -EBADMSG && bad == 5;
			wrong += n != -EBADMSG;
		} else {
			good_reads += n == (ssize_t)len && !memcmp(back, buf + off, len);
			wrong += n != (ssize_t)len;
		}
	}
	ok(bad_reads > 0 && wrong == 0,
	   "every read touching chunk 5 fails with -EBADMSG naming it (%d)", bad_reads);
	ok(good_reads > 0, "every other range still reads correctly (%d)", good_reads);
	uint64_t badc = 0;
	is_int(ag_blob_verify_full(b, &badc), -EBADMSG, "full verification fails");
	is_int(badc, 5, "and names chunk 5");
	is_int(ag_object_check(s, &bi, &badc), -EBADMSG, "object check finds it too");
	ag_blob_close(b);

	/* A truncated object is refused at open. */
	char p[1024];
	object_path(s, &bi.digest, p, sizeof(p));
	if (truncate(p, (off_t)size - 1) < 0)
		bail("truncate");
	is_int(ag_blob_open(s, &bi.digest, 0, &b), -AG_ECORRUPT,
	       "object of the wrong size refused");
	unlink(p);
	is_int(ag_blob_open(s, &bi.digest, 0, &b), -ENOENT, "missing object reported");
	free(buf);
	free(back);
	ag_store_close(s);
}

static void test_read_api(void)
{
	ag_store *s = new_store("readapi");
	const size_t size = 200000;
	uint8_t *buf = malloc(size);
	fill_bytes(buf, size, 8);
	ag_blob_info bi;
	if (ag_put_buf(s, buf, size, 0, NULL, &bi) < 0)
		bail("put failed");
	ag_blob *b;
	if (ag_blob_open(s, &bi.digest, AG_BLOB_DIRECT, &b) < 0)
		bail("open");
	size_t bs = ag_blob_bufsize(b, 50000);
	void *abuf;
	if (posix_memalign(&abuf, AG_ALIGN, bs))
		bail("memalign");
	const uint8_t *p;
	ssize_t n = ag_blob_read(b, 12345, 50000, abuf, bs, &p, NULL);
	ok(n == 50000 && !memcmp(p, buf + 12345, 50000), "zero-copy read at an unaligned offset");
	n = ag_blob_read(b, size - 10, 50000, abuf, bs, &p, NULL);
	ok(n == 10 && !memcmp(p, buf + size - 10, 10), "read clipped at the end");
	is_int(ag_blob_read(b, size, 10, abuf, bs, &p, NULL), 0, "read at EOF returns 0");
	is_int(ag_blob_read(b, 0, 50000, abuf, bs / 2, &p, NULL), -EINVAL,
	       "too small buffer refused");
	free(abuf);
	ag_blob_close(b);
	free(buf);
	ag_store_close(s);
}

static void test_open_refusals(void)
{
	const char *p = temp_store_path("notastore");
	mkdir(p, 0755);
	char f[600];
	snprintf(f, sizeof(f), "%s/somefile", p);
	FILE *fp = fopen(f, "w");
	fclose(fp);
	ag_store *s = NULL;
	is_int(ag_store_open(p, AG_RDONLY, &s), -AG_ENOTSTORE, "a plain directory is not a store");
	is_int(ag_store_open(p, AG_WRITE | AG_CREATE, &s), -AG_ENOTSTORE,
	       "a non-empty plain directory is not turned into a store");
	is_int(ag_store_open(temp_store_path("missing"), AG_RDONLY, &s), -ENOENT,
	       "a missing store is reported");
	ag_store *w = new_store("ro");
	uint8_t x = 1;
	ag_store_close(w);
	ok(ag_store_open(temp_store_path("ro"), AG_RDONLY, &s) == 0, "reader opens");
	is_int(ag_put_buf(s, &x, 1, 0, NULL, NULL), -EROFS, "reader cannot write");
	ag_store *w2;
	ok(ag_store_open(temp_store_path("ro"), AG_WRITE, &w2) == 0,
	   "writer opens beside a reader");
	ag_store *w3;
	is_int(ag_store_open(temp_store_path("ro"), AG_WRITE | AG_NOWAIT, &w3), -AG_ELOCKED,
	       "a second writer is refused while the lock is held");
	ag_store_close(w2);
	ag_store_close(s);
	is_int(ag_store_init(temp_store_path("ro")), -EEXIST, "init of an existing store");
}

/* Flips one bit of the stored tree block `page` (kernel layout) of d,
 * behind the store's back, with LMDB directly. */
static void tamper_table_page(const char *store, const ag_digest *d, uint64_t page)
{
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s/index", store);
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	mdb_env_create(&env);
	mdb_env_set_maxdbs(env, 8);
	mdb_env_set_mapsize(env, 64ull << 30);
	if (mdb_env_open(env, dir, 0, 0644) || mdb_txn_begin(env, NULL, 0, &txn) ||
	    mdb_dbi_open(txn, "trees", 0, &dbi))
		bail("cannot open the index with LMDB");
	uint8_t kb[40];
	memcpy(kb, d->b, 32);
	for (int i = 7; i >= 0; i--, page >>= 8)
		kb[32 + i] = (uint8_t)page;
	MDB_val k = {40, kb}, v;
	if (mdb_get(txn, dbi, &k, &v))
		bail("no such tree block");
	uint8_t *copy = malloc(v.mv_size);
	memcpy(copy, v.mv_data, v.mv_size);
	copy[100] ^= 0x80;
	MDB_val nv = {v.mv_size, copy};
	if (mdb_put(txn, dbi, &k, &nv, 0) || mdb_txn_commit(txn))
		bail("cannot write the table page");
	free(copy);
	mdb_env_close(env);
}

/* Tree blocks (128 data blocks each) are loaded as reads reach them, each
 * checked against its parent and the root; a tampered one verifies nothing
 * it covers. */
static void test_table_pages(void)
{
	ag_store *s = new_store("pages");
	const uint32_t cs = 4096;
	const size_t size = (size_t)cs * 2500 + 123; /* 2501 blocks: 20 level-0 tree blocks */
	uint8_t *buf = malloc(size), *back = malloc(size);
	fill_bytes(buf, size, 11);
	ag_blob_info bi;
	int pr = ag_put_buf(s, buf, size, cs, NULL, &bi);
	if (pr < 0)
		bail("put failed: %s", ag_strerror(pr));
	ag_blob *b;
	ok(ag_blob_open(s, &bi.digest, 0, &b) == 0, "open a blob with a two-level tree");
	ok(ag_blob_pread(b, back, size, 0, NULL) == (ssize_t)size && !memcmp(back, buf, size),
	   "whole read across all pages");
	ag_blob_close(b);
	char path[600];
	snprintf(path, sizeof(path), "%s", ag_store_path(s));
	ag_store_close(s);
	tamper_table_page(path, &bi.digest, 1 + 1500 / 128); /* the top block comes first */
	if (ag_store_open(path, AG_RDONLY, &s) < 0 || ag_blob_open(s, &bi.digest, 0, &b) < 0)
		bail("reopen");
	uint64_t bad = 0;
	ok(ag_blob_pread(b, back, 4096, (uint64_t)cs * 10, NULL) == 4096 &&
		   !memcmp(back, buf + cs * 10, 4096),
	   "level-0 block 0 still verifies");
	is_int(ag_blob_pread(b, back, 4096, (uint64_t)cs * 1500, &bad), -EBADMSG,
	       "a read covered by the tampered tree block fails");
	is_int(bad, 1500, "naming the chunk");
	ok(ag_blob_pread(b, back, 4096, (uint64_t)cs * 2100, NULL) == 4096 &&
		   !memcmp(back, buf + cs * 2100, 4096),
	   "level-0 block 16 still verifies");
	ag_blob_close(b);
	ag_store_close(s);
	if (ag_store_open(path, AG_WRITE, &s) < 0)
		bail("reopen writer");
	ag_txn *t;
	ag_txn_begin(s, &t);
	ok(ag_txn_blob_del(t, &bi.digest) == 0 && ag_txn_commit(t) == 0, "delete the record");
	is_int(ag_blob_lookup(s, &bi.digest, &bi), -ENOENT, "record gone");
	ag_store_close(s);
	free(buf);
	free(back);
}

int main(void)
{
	test_table_pages();
	test_sizes();
	test_dedup();
	test_expected_mismatch();
	test_corruption();
	test_read_api();
	test_open_refusals();
	return done_testing();
}
