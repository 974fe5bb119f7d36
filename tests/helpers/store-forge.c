/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store-forge: tampering at the index level, for tests (issue 12).
 *
 *   store-forge forge STORE HEX OFFSET
 *	flips one byte of object HEX at OFFSET, then rewrites its format-2
 *	record and fs-verity tree in LMDB so that they agree with the new
 *	bytes: a consistent forgery that only a digest from elsewhere (a
 *	verified catalog) can show.  Prints the forged fs-verity digest.
 *   store-forge tree STORE HEX BLOCK
 *	flips one byte of tree block BLOCK (kernel layout) of HEX in LMDB.
 *   store-forge record STORE HEX
 *	flips one byte of HEX's record root hash (its own check then fails).
 *   store-forge fsverity STORE HEX
 *	prints HEX's record's fs-verity digest.
 *   store-forge catalog STORE GEN
 *	prints generation GEN's catalog bytes (0: the current one).
 *
 * Run with the store idle (no writer); a live mount may keep reading.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/internal.h"
#include "tests/helpers/lib/store-raw.h"

static void print_hex(const ag_digest *d)
{
	char hex[AG_HEX_LEN + 1];

	ag_digest_hex(d, hex);
	printf("%s\n", hex);
}

static int flip_file_byte(ag_store *s, const ag_digest *d, uint64_t off)
{
	char rel[96];
	ag_object_relpath(d, rel, sizeof(rel));
	if (fchmodat(ag_store_dirfd(s), rel, 0644, 0) < 0)
		return -errno;
	int fd = openat(ag_store_dirfd(s), rel, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	uint8_t c;
	int r = pread(fd, &c, 1, (off_t)off) == 1 ? 0 : -EINVAL;
	c ^= 0x5a;
	if (r == 0 && pwrite(fd, &c, 1, (off_t)off) != 1)
		r = -errno;
	fsync(fd);
	close(fd);
	if (fchmodat(ag_store_dirfd(s), rel, 0444, 0) < 0 && r == 0)
		r = -errno;
	return r;
}

static int forge(const char *store, const ag_digest *d, uint64_t off)
{
	ag_store *s;
	ag_txn *t = NULL;
	ag_blob_info old, bi = {0};
	uint8_t *tree = NULL;
	uint64_t nblocks = 0;
	int r = ag_store_open(store, AG_WRITE, &s);
	if (r < 0)
		return th_die("open", r);
	if ((r = ag_blob_lookup(s, d, &old)) < 0)
		return th_die("record", r);
	if ((r = flip_file_byte(s, d, off)) < 0)
		return th_die("object", r);
	int fd = ag_object_open(s, d, O_RDONLY);
	if (fd < 0)
		return th_die("object", fd);
	r = ag_treebuf_fd(fd, old.size, &bi, &tree, &nblocks);
	close(fd);
	if (r < 0)
		return th_die("hashing", r);
	bi.digest = *d; /* the name stays: only the record and tree change */
	bi.created = old.created;
	if ((r = ag_txn_begin(s, &t)) < 0 || (r = ag_blob_rec_put(t, &bi, tree, nblocks)) < 0 ||
	    (r = ag_txn_commit(t)) < 0)
		return th_die("rewriting the record and tree", r);
	print_hex(&bi.fsverity);
	free(tree);
	ag_store_close(s);
	return 0;
}

/* Raw LMDB for the damage the library would never write. */
static int raw_flip(const char *store, const char *db, const uint8_t *key, size_t klen, long at)
{
	int rc = th_index_flip(store, db, key, klen, at);

	return rc ? th_die(db, ag_lmdb_err(rc)) : 0;
}

int main(int argc, char **argv)
{
	ag_digest d;
	if (argc >= 4 && strcmp(argv[1], "catalog") &&
	    ag_digest_parse(argv[3], strlen(argv[3]), &d) < 0)
		return th_die(argv[3], -AG_EBADNAME);
	if (argc == 5 && !strcmp(argv[1], "forge"))
		return forge(argv[2], &d, strtoull(argv[4], NULL, 10));
	if (argc == 5 && !strcmp(argv[1], "tree")) {
		uint8_t kb[40];
		ag_tree_key(&d, strtoull(argv[4], NULL, 10), kb);
		return raw_flip(argv[2], "trees", kb, sizeof(kb), 100);
	}
	if (argc == 4 && !strcmp(argv[1], "record"))
		return raw_flip(argv[2], "blobs", d.b, 32, offsetof(struct ag_blob_rec, root));
	if (argc == 4 && !strcmp(argv[1], "fsverity")) {
		ag_store *s;
		ag_blob_info bi;
		int r = ag_store_open(argv[2], AG_RDONLY, &s);
		if (r == 0)
			r = ag_blob_lookup(s, &d, &bi);
		if (r < 0)
			return th_die("record", r);
		print_hex(&bi.fsverity);
		ag_store_close(s);
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "catalog")) {
		ag_store *s;
		char *bytes = NULL;
		size_t len = 0;
		int r = ag_store_open(argv[2], AG_RDONLY, &s);
		if (r == 0)
			r = ag_gen_catalog(s, strtoull(argv[3], NULL, 10), NULL, &bytes, &len);
		if (r < 0)
			return th_die("catalog", r);
		fwrite(bytes, 1, len, stdout);
		free(bytes);
		ag_store_close(s);
		return 0;
	}
	fprintf(stderr, "usage: store-forge forge STORE HEX OFFSET | tree STORE HEX BLOCK | "
			"record STORE HEX | fsverity STORE HEX | catalog STORE GEN\n");
	return 2;
}
