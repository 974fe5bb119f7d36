/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fs-verity Merkle tree builder against two independent implementations:
 * libfsverity (in process) and the fsverity tool of fsverity-utils (digest
 * and --out-merkle-tree, byte for byte), over sizes around every block and
 * level boundary, fed in irregular pieces.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/verity.h"
#include "tests/unit/store-common.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next_rand(void)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return (uint32_t)(rng >> 11);
}

/* The tree in the kernel's layout, filled by the builder's emit callback. */
struct tree {
	struct ag_verity_geometry g;
	uint8_t *bytes;
	int bad; /* a block outside the geometry */
};

static int collect(void *arg, unsigned level, uint64_t index, const uint8_t *block)
{
	struct tree *t = arg;
	if (level >= t->g.nlevels || index >= t->g.nblocks[level]) {
		t->bad++;
		return 0;
	}
	memcpy(t->bytes + (t->g.first_block[level] + index) * AG_VERITY_BLOCK, block,
	       AG_VERITY_BLOCK);
	return 0;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc(n > 0 ? (size_t)n : 1);
	*len = buf ? fread(buf, 1, (size_t)n, f) : 0;
	fclose(f);
	return buf;
}

static void check_size(const char *dir, uint64_t size, bool have_tool)
{
	char path[600], treepath[620], cmd[1400], line[256];
	snprintf(path, sizeof(path), "%s/data", dir);
	snprintf(treepath, sizeof(treepath), "%s/tree", dir);
	uint8_t *data = malloc(size ? size : 1);
	for (uint64_t i = 0; i < size; i++)
		data[i] = (uint8_t)next_rand();
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, size, f) != size || fclose(f))
		bail("writing %s", path);

	struct tree t = {0};
	ag_verity_geometry(size, &t.g);
	t.bytes = calloc(t.g.tree_blocks ? t.g.tree_blocks : 1, AG_VERITY_BLOCK);
	ag_verity *v;
	if (ag_verity_new(collect, &t, &v) < 0)
		bail("ag_verity_new");
	for (uint64_t off = 0; off < size;) { /* irregular pieces, some of whole blocks */
		uint64_t n =
			next_rand() % 3 ? next_rand() % 9000 : AG_VERITY_BLOCK * (next_rand() % 4);
		if (n > size - off)
			n = size - off;
		ag_verity_update(v, data + off, n);
		off += n;
	}
	ag_digest root, fd_digest, lib_digest;
	int rc = ag_verity_final(v, &root, &fd_digest);
	ag_verity_free(v);
	is_int(rc, 0, "size %llu: the builder finishes", (unsigned long long)size);
	is_int(t.bad, 0, "size %llu: every emitted block lies inside the geometry",
	       (unsigned long long)size);

	int fd = open(path, O_RDONLY);
	rc = ag_verity_digest_fd(fd, size, &lib_digest);
	close(fd);
	ok(rc == 0 && ag_digest_eq(&fd_digest, &lib_digest),
	   "size %llu: the digest equals libfsverity's", (unsigned long long)size);

	if (have_tool) {
		char hex[AG_HEX_LEN + 1];
		ag_digest_hex(&fd_digest, hex);
		snprintf(cmd, sizeof(cmd), "fsverity digest --out-merkle-tree='%s' '%s'", treepath,
			 path);
		FILE *p = popen(cmd, "r");
		line[0] = '\0';
		if (!p || !fgets(line, sizeof(line), p))
			line[0] = '\0';
		if (p)
			pclose(p);
		ok(strncmp(line, "sha256:", 7) == 0 && strncmp(line + 7, hex, AG_HEX_LEN) == 0,
		   "size %llu: the digest equals what `fsverity digest` prints",
		   (unsigned long long)size);
		size_t tlen = 0;
		char *tool_tree = slurp(treepath, &tlen);
		ok(tool_tree && tlen == t.g.tree_blocks * AG_VERITY_BLOCK &&
			   memcmp(tool_tree, t.bytes, tlen) == 0,
		   "size %llu: the tree (%llu blocks) equals fsverity's --out-merkle-tree",
		   (unsigned long long)size, (unsigned long long)t.g.tree_blocks);
		free(tool_tree);
	}
	free(t.bytes);
	free(data);
}

int main(void)
{
	const char *dir = temp_store_path("verity");
	if (mkdir(dir, 0700) < 0)
		bail("mkdir %s", dir);
	atexit(cleanup_root);
	bool have_tool = system("fsverity --version >/dev/null 2>&1") == 0;
	if (!have_tool)
		diag("skip: the fsverity tool (Debian package fsverity) is not installed; "
		     "comparing with libfsverity only");

	struct ag_verity_geometry g;
	ag_verity_geometry(0, &g);
	is_int(g.nlevels, 0, "the empty blob has no tree");
	ag_verity_geometry(4096, &g);
	is_int(g.nlevels, 0, "one data block has no tree (its hash is the root)");
	ag_verity_geometry(4097, &g);
	ok(g.nlevels == 1 && g.nblocks[0] == 1, "two data blocks: one level of one block");
	ag_verity_geometry(128ull * 4096 + 1, &g);
	ok(g.nlevels == 2 && g.nblocks[0] == 2 && g.nblocks[1] == 1 && g.first_block[1] == 0 &&
		   g.first_block[0] == 1 && g.tree_blocks == 3,
	   "129 data blocks: two levels, the top one first in the layout");
	ag_verity_geometry(8ull << 30, &g);
	ok(g.nlevels == 3 && g.nblocks[0] == 16384 && g.nblocks[1] == 128 && g.nblocks[2] == 1,
	   "8 GiB: three levels (16384, 128, 1 blocks)");

	/* Known answer: the empty file's digest as fsverity-utils 1.5 prints it. */
	ag_digest zero = {{0}}, d, want;
	ag_verity_file_digest(&zero, 0, &d);
	ag_digest_parse("3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95", 64,
			&want);
	ok(ag_digest_eq(&d, &want), "the empty blob's digest is fs-verity's");

	const uint64_t B = AG_VERITY_BLOCK, A = AG_VERITY_ARITY;
	const uint64_t sizes[] = {0,
				  1,
				  B - 1,
				  B,
				  B + 1,
				  3 * B + 17,
				  A * B - 1,
				  A * B,
				  A * B + 1,
				  (A + 1) * B,
				  A * A * B,
				  A * A * B + 1,
				  A * A * B + 5 * B + 3};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		check_size(dir, sizes[i], have_tool);
	return done_testing();
}
