/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Store format 2 (issue 12): per-blob fs-verity trees and verified reads at
 * every block and level boundary; tampered data, tree blocks and records;
 * a consistent forgery caught only by a catalog's digest; catalogs for every
 * generation (serial, parent, blobs), signatures, verbatim catalogs, and the
 * format-1 refusal.
 */
#include <errno.h>
#include <lmdb.h>

#include "store/catalog.h"
#include "store/internal.h"
#include "store/verity.h"
#include "tests/unit/store-common.h"

#define B 4096u

static ag_blob_info put(ag_store *s, const uint8_t *buf, size_t size)
{
	ag_blob_info bi;
	int r = ag_put_buf(s, buf, size, 0, NULL, &bi);
	if (r < 0)
		bail("put %zu bytes: %s", size, ag_strerror(r));
	return bi;
}

static int read_at(ag_blob *b, uint64_t off, size_t len, const uint8_t *want, uint64_t *bad)
{
	size_t bs = ag_blob_bufsize(b, len);
	void *abuf;
	if (posix_memalign(&abuf, AG_ALIGN, bs))
		bail("memalign");
	const uint8_t *p = NULL;
	ssize_t n = ag_blob_read(b, off, len, abuf, bs, &p, bad);
	int r = n < 0 ? (int)n : (n == (ssize_t)len && !memcmp(p, want + off, len)) ? 0 : -1;
	free(abuf);
	return r;
}

/* Reads straddling every block boundary and every level-0 tree block
 * boundary of a blob, plus the first and last bytes; all must verify. */
static void test_boundaries(void)
{
	ag_store *s = new_store("bounds");
	static const size_t sizes[] = {
		0, 1, B - 1, B, B + 1, 128 * B, 128 * B + 1, 128 * 128 * B, 128 * 128 * B + 1};
	size_t max = 128 * 128 * B + 1;
	uint8_t *buf = malloc(max);
	fill_bytes(buf, max, 5);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t size = sizes[i];
		ag_blob_info bi = put(s, buf, size);
		char rel[96];
		ag_object_relpath(&bi.digest, rel, sizeof(rel));
		int fd = openat(ag_store_dirfd(s), rel, O_RDONLY);
		ag_digest lib;
		ok(fd >= 0 && ag_verity_digest_fd(fd, size, &lib) == 0 && bi.has_fsverity &&
			   ag_digest_eq(&lib, &bi.fsverity),
		   "%zu bytes: the record's fs-verity digest is libfsverity's", size);
		close(fd);
		ok(bi.chunk_size == B && bi.nchunks == (size + B - 1) / B,
		   "%zu bytes: 4 KiB blocks, %llu of them", size, (unsigned long long)bi.nchunks);
		ag_blob *b;
		if (ag_blob_open(s, &bi.digest, 0, &b) < 0)
			bail("open");
		int bad = 0, reads = 0;
		for (uint64_t k = 1; k * B <= size + B; k++) {
			uint64_t edge = k * B;
			bool level = edge % (128 * B) == 0;
			if (!level && k > 4 && edge + 4 * B < size)
				continue; /* every block near the ends, every tree-block edge */
			for (int d = -2; d <= 1; d++) {
				uint64_t off = edge + (uint64_t)d;
				if (off >= size)
					continue;
				size_t len = size - off < 5 ? size - off : 5;
				reads++;
				bad += read_at(b, off, len, buf, NULL) != 0;
			}
		}
		if (size > 0) {
			reads += 2;
			bad += read_at(b, 0, size, buf, NULL) != 0;
			bad += read_at(b, size - 1, 1, buf, NULL) != 0;
		}
		is_int(bad, 0, "%zu bytes: %d reads across block and tree-block boundaries verify",
		       size, reads);
		is_int(ag_blob_verify_full(b, NULL), 0, "%zu bytes: full verification", size);
		ag_blob_close(b);
	}
	free(buf);
	ag_store_close(s);
}

static void flip_object(ag_store *s, const ag_digest *d, uint64_t off)
{
	char rel[96];
	ag_object_relpath(d, rel, sizeof(rel));
	if (fchmodat(ag_store_dirfd(s), rel, 0644, 0) < 0)
		bail("chmod");
	int fd = openat(ag_store_dirfd(s), rel, O_RDWR);
	uint8_t c;
	if (fd < 0 || pread(fd, &c, 1, (off_t)off) != 1)
		bail("flip");
	c ^= 0x10;
	if (pwrite(fd, &c, 1, (off_t)off) != 1)
		bail("flip");
	close(fd);
}

/* Raw LMDB: flip byte `at` of the value under key in db. */
static void raw_flip(const char *store, const char *db, const uint8_t *key, size_t klen, size_t at)
{
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s/index", store);
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	mdb_env_create(&env);
	mdb_env_set_maxdbs(env, 8);
	mdb_env_set_mapsize(env, AG_MAP_SIZE);
	MDB_val k = {klen, (void *)key}, v;
	if (mdb_env_open(env, dir, 0, 0644) || mdb_txn_begin(env, NULL, 0, &txn) ||
	    mdb_dbi_open(txn, db, 0, &dbi) || mdb_get(txn, dbi, &k, &v))
		bail("raw LMDB %s", db);
	uint8_t *copy = malloc(v.mv_size);
	memcpy(copy, v.mv_data, v.mv_size);
	copy[at] ^= 0x01;
	MDB_val nv = {v.mv_size, copy};
	if (mdb_put(txn, dbi, &k, &nv, 0) || mdb_txn_commit(txn))
		bail("raw LMDB put");
	free(copy);
	mdb_env_close(env);
}

static void tamper_tree(const char *store, const ag_digest *d, uint64_t blk)
{
	uint8_t kb[40];
	ag_tree_key(d, blk, kb);
	raw_flip(store, "trees", kb, sizeof(kb), 77);
}

static void test_tampering(void)
{
	ag_store *s = new_store("tamper");
	char path[600];
	snprintf(path, sizeof(path), "%s", ag_store_path(s));
	const size_t size = 300 * B + 10; /* level 0: 3 blocks; level 1: the top */
	uint8_t *buf = malloc(size);
	fill_bytes(buf, size, 9);
	ag_blob_info bi = put(s, buf, size);
	ag_store_close(s);
	ag_blob *b;
	uint64_t bad = 0;

	/* A data block. */
	if (ag_store_open(path, AG_WRITE, &s) < 0)
		bail("reopen");
	flip_object(s, &bi.digest, 200 * B + 5);
	if (ag_blob_open(s, &bi.digest, 0, &b) < 0)
		bail("open");
	is_int(read_at(b, 200 * B, 10, buf, &bad), -EBADMSG, "a tampered data block: -EBADMSG");
	is_int(bad, 200, "... naming block 200");
	is_int(read_at(b, 199 * B, 10, buf, NULL), 0, "the block before still reads");
	is_int(read_at(b, 201 * B, 10, buf, NULL), 0, "the block after still reads");
	bad = 0;
	is_int(ag_object_check(s, &bi, &bad), -EBADMSG, "fsck's check finds it too");
	is_int(bad, 200, "... at block 200");
	ag_blob_close(b);
	flip_object(s, &bi.digest, 200 * B + 5); /* back */
	ag_store_close(s);

	/* A level-0 tree block (kernel layout: the top block is 0). */
	tamper_tree(path, &bi.digest, 1 + 1);
	if (ag_store_open(path, AG_RDONLY, &s) < 0 || ag_blob_open(s, &bi.digest, 0, &b) < 0)
		bail("reopen");
	is_int(read_at(b, 0, 10, buf, NULL), 0, "data under level-0 block 0 reads");
	is_int(read_at(b, 130 * B, 10, buf, &bad), -EBADMSG,
	       "data under the tampered level-0 block: -EBADMSG");
	is_int(read_at(b, 290 * B, 10, buf, NULL), 0, "data under level-0 block 2 reads");
	ag_blob_close(b);
	ag_store_close(s);
	tamper_tree(path, &bi.digest, 2); /* back */

	/* The top tree block: nothing verifies. */
	tamper_tree(path, &bi.digest, 0);
	if (ag_store_open(path, AG_RDONLY, &s) < 0 || ag_blob_open(s, &bi.digest, 0, &b) < 0)
		bail("reopen");
	is_int(read_at(b, 0, 10, buf, NULL), -EBADMSG, "a tampered top tree block: -EBADMSG");
	ag_blob_close(b);
	ag_store_close(s);
	tamper_tree(path, &bi.digest, 0);

	/* The record's root: fails its own check. */
	raw_flip(path, "blobs", bi.digest.b, 32, offsetof(struct ag_blob_rec, root));
	if (ag_store_open(path, AG_WRITE, &s) < 0)
		bail("reopen");
	is_int(ag_blob_open(s, &bi.digest, 0, &b), -AG_ECORRUPT,
	       "a tampered record: -AG_ECORRUPT at open");
	/* Deduplication repairs it, and keeps one tree per content. */
	ag_stage *st;
	enum ag_publish how;
	ag_txn *t;
	ag_stage_begin(s, 0, &st);
	ag_stage_write(st, buf, size);
	ag_stage_end(st, NULL);
	ag_txn_begin(s, &t);
	ok(ag_stage_publish_ex(st, t, NULL, &how) == 0 && how == AG_PUBLISH_REPAIRED &&
		   ag_txn_commit(t) == 0,
	   "publishing the same bytes repairs the record");
	ag_stage_free(st);
	ok(ag_blob_open(s, &bi.digest, 0, &b) == 0 && read_at(b, 0, size, buf, NULL) == 0,
	   "and the blob reads again");
	ag_blob_close(b);
	ag_store_close(s);
	free(buf);
}

/* Rewrites object d and its record and tree so they agree (what
 * tests/helpers/store-forge does for the shell tests). */
static void forge(ag_store *s, const ag_digest *d, uint64_t off)
{
	flip_object(s, d, off);
	ag_blob_info old, bi = {0};
	uint8_t *tree;
	uint64_t n;
	ag_txn *t;
	int fd = ag_object_open(s, d, O_RDONLY);
	if (fd < 0 || ag_blob_lookup(s, d, &old) < 0 || ag_treebuf_fd(fd, old.size, &bi, &tree, &n))
		bail("forge");
	close(fd);
	bi.digest = *d;
	if (ag_txn_begin(s, &t) < 0 || ag_blob_rec_put(t, &bi, tree, n) < 0 || ag_txn_commit(t) < 0)
		bail("forge commit");
	free(tree);
}

static void test_forgery(void)
{
	ag_store *s = new_store("forge");
	const size_t size = 200 * B;
	uint8_t *buf = malloc(size);
	fill_bytes(buf, size, 13);
	ag_blob_info bi = put(s, buf, size);
	forge(s, &bi.digest, 150 * B + 1);
	ag_blob *b;
	uint64_t bad = 0;
	uint8_t *forged = malloc(size);
	memcpy(forged, buf, size);
	forged[150 * B + 1] ^= 0x10;
	ok(ag_blob_open(s, &bi.digest, 0, &b) == 0 && read_at(b, 150 * B, 10, forged, NULL) == 0,
	   "a consistent forgery of object, record and tree reads through ag_blob_open");
	is_int(ag_blob_verify_full(b, NULL), -AG_EDIGEST, "(only the whole hash shows it)");
	ag_blob_close(b);
	ok(ag_blob_open_expect(s, &bi.digest, &bi.fsverity, 0, &b) == 0,
	   "ag_blob_open_expect with the catalog's digest opens");
	is_int(read_at(b, 150 * B, 10, forged, &bad), -EBADMSG, "and the forged block is -EBADMSG");
	is_int(read_at(b, 0, 10, buf, NULL), -EBADMSG,
	       "as is every block: the root is not trusted");
	is_int(ag_blob_verify_full(b, NULL), -EBADMSG, "full verification: -EBADMSG");
	ag_blob_close(b);
	ag_blob_info now;
	ag_blob_lookup(s, &bi.digest, &now);
	ok(ag_blob_open_expect(s, &bi.digest, &now.fsverity, 0, &b) == 0 &&
		   read_at(b, 0, 10, forged, NULL) == 0,
	   "ag_blob_open_expect with the record's own digest reads");
	ag_blob_close(b);
	ag_store_close(s);
	free(buf);
	free(forged);
}

static ag_gen *gen_of(const ag_digest *m, const ag_digest *c, const char *name)
{
	ag_gen *g = ag_gen_new();
	ag_model mod = {.name = (char *)name, .manifest = *m, .config = {.digest = *c}};
	ag_gen_add_model(g, &mod);
	return g;
}

static void test_catalogs(void)
{
	ag_store *s = new_store("catalogs");
	ag_blob_info m = put(s, (const uint8_t *)"{\"manifest\":1}", 14);
	uint8_t big[3 * B];
	fill_bytes(big, sizeof(big), 3);
	ag_blob_info c = put(s, big, sizeof(big));
	ag_blob_info f = put(s, (const uint8_t *)"bundle.json bytes", 17);
	ag_digest prev = {{0}};
	ag_txn *t;
	for (uint64_t i = 1; i <= 3; i++) {
		ag_gen *g = gen_of(&m.digest, &c.digest, "registry.ollama.ai/library/a/latest");
		ag_gen_add_bundle_file(g, "manifest/bundle.json", &f.digest);
		g->has_source_sha256 = true;
		ag_txn_begin(s, &t);
		int r = ag_txn_gen_add(t, g);
		ag_digest d;
		char *bytes = NULL;
		size_t len = 0;
		ok(r == 0 && ag_txn_gen_catalog(t, g->id, &d, &bytes, &len) == 0,
		   "generation %llu: its catalog is readable inside the transaction",
		   (unsigned long long)i);
		free(bytes);
		ag_txn_set_current(t, g->id);
		if (ag_txn_commit(t) < 0)
			bail("commit");
		ag_gen_free(g);
		struct ag_catalog cat;
		const char *why = NULL;
		bytes = NULL;
		ok(ag_gen_catalog(s, 0, &d, &bytes, &len) == 0 &&
			   ag_catalog_parse(bytes, len, &cat, &why) == 0,
		   "generation %llu: a canonical catalog (%s)", (unsigned long long)i,
		   why ? why : "ok");
		is_int(cat.serial, i, "... serial %llu", (unsigned long long)i);
		ok(i == 1 ? !cat.has_parent : cat.has_parent && ag_digest_eq(&cat.parent, &prev),
		   "... parent: the catalog of the generation current before");
		const struct ag_catalog_blob *cb = ag_catalog_blob(&cat, &c.digest);
		ok(cat.nblobs == 3 && cb && cb->size == c.size &&
			   ag_digest_eq(&cb->fsverity, &c.fsverity),
		   "... every blob with its size and the record's fs-verity digest");
		ok(cat.has_bundle && cat.nfiles == 1 &&
			   !strcmp(cat.files[0].name, "manifest/bundle.json"),
		   "... and the bundle's files");
		prev = d;
		ag_catalog_clear(&cat);
		free(bytes);
	}
	char *v = NULL;
	ag_meta_get(s, "max_catalog_serial", &v);
	ok(v && !strcmp(v, "3"), "max_catalog_serial is 3");
	free(v);

	/* Signing: a blob the record names; gc's walk sees it. */
	char *asc = NULL;
	size_t alen;
	is_int(ag_gen_signature(s, 2, &asc, &alen), -ENOENT, "unsigned: -ENOENT");
	ag_txn_begin(s, &t);
	ok(ag_txn_gen_sign(t, 2, "-----BEGIN PGP SIGNATURE-----\n", 30) == 0 &&
		   ag_txn_commit(t) == 0,
	   "sign generation 2");
	ok(ag_gen_signature(s, 2, &asc, &alen) == 0 && alen == 30 && !memcmp(asc, "-----BEGIN", 10),
	   "its signature reads back");
	free(asc);
	ag_gen *g2;
	ag_gen_get(s, 2, &g2);
	ok(g2->has_catalog && g2->has_signature && g2->nbundle_files == 1,
	   "the generation record names catalog, signature and bundle files");

	/* A pulled generation keeps its catalog verbatim. */
	char *cat2 = NULL;
	size_t cat2len;
	ag_gen_catalog(s, 2, NULL, &cat2, &cat2len);
	ag_gen *g = gen_of(&m.digest, &c.digest, "registry.ollama.ai/library/a/latest");
	ag_gen_add_bundle_file(g, "manifest/bundle.json", &f.digest);
	ag_txn_begin(s, &t);
	is_int(ag_txn_gen_add_catalog(t, g, cat2, cat2len), -ESTALE,
	       "a catalog older than max_catalog_serial: -ESTALE");
	ag_txn_abort(t);
	ag_gen_free(g);
	struct ag_catalog cat;
	ag_catalog_parse(cat2, cat2len, &cat, NULL);
	cat.serial = 10;
	char *cat10;
	size_t cat10len;
	ag_catalog_encode(&cat, &cat10, &cat10len);
	g = gen_of(&m.digest, &c.digest, "registry.ollama.ai/library/a/latest");
	ag_gen_add_bundle_file(g, "manifest/bundle.json", &f.digest);
	ag_txn_begin(s, &t);
	ok(ag_txn_gen_add_catalog(t, g, cat10, cat10len) == 0 && ag_txn_commit(t) == 0,
	   "a newer catalog that describes the generation is kept");
	char *back;
	size_t backlen;
	ok(ag_gen_catalog(s, g->id, NULL, &back, &backlen) == 0 && backlen == cat10len &&
		   !memcmp(back, cat10, backlen),
	   "byte for byte");
	free(back);
	ag_gen_free(g);
	cat.blobs[0].size++;
	cat.serial = 11;
	free(cat10);
	ag_catalog_encode(&cat, &cat10, &cat10len);
	g = gen_of(&m.digest, &c.digest, "registry.ollama.ai/library/a/latest");
	ag_gen_add_bundle_file(g, "manifest/bundle.json", &f.digest);
	ag_txn_begin(s, &t);
	is_int(ag_txn_gen_add_catalog(t, g, cat10, cat10len), -AG_ECORRUPT,
	       "a catalog that does not describe the generation: -AG_ECORRUPT");
	ag_txn_abort(t);
	ag_gen_free(g);
	ag_gen_free(g2);
	ag_catalog_clear(&cat);
	free(cat10);
	free(cat2);
	ag_store_close(s);
}

static void test_format1_refused(void)
{
	ag_store *s = new_store("fmt1");
	char path[600];
	snprintf(path, sizeof(path), "%s", ag_store_path(s));
	ag_store_close(s);
	char dir[700];
	snprintf(dir, sizeof(dir), "%s/index", path);
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	mdb_env_create(&env);
	mdb_env_set_maxdbs(env, 8);
	MDB_val k = {6, "format"}, v = {1, "1"};
	if (mdb_env_open(env, dir, 0, 0644) || mdb_txn_begin(env, NULL, 0, &txn) ||
	    mdb_dbi_open(txn, "meta", 0, &dbi) || mdb_put(txn, dbi, &k, &v, 0) ||
	    mdb_txn_commit(txn))
		bail("raw LMDB");
	mdb_env_close(env);
	is_int(ag_store_open(path, AG_RDONLY, &s), -AG_EOLDFORMAT,
	       "a format-1 store is refused for reading");
	is_int(ag_store_open(path, AG_WRITE, &s), -AG_EOLDFORMAT, "and for writing");
	ok(strstr(ag_strerror(-AG_EOLDFORMAT), "agstore migrate") != NULL,
	   "the error names agstore migrate");
}

int main(void)
{
	test_boundaries();
	test_tampering();
	test_forgery();
	test_catalogs();
	test_format1_refused();
	return done_testing();
}
