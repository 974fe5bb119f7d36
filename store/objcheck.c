/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fsck's check of one object with each byte hashed once: the SHA-256 of the
 * whole object (buffered reads, so the kernel's read-ahead overlaps the disk
 * with the hashing, as `openssl dgst` does) and then the stored fs-verity
 * tree on its own, every block against its parent's entry up to the
 * record's root (1/128 of the object's size).  The bytes are the ones the
 * digest names, and the tree is the one the root names; that the two
 * describe each other was established when both were computed from the same
 * bytes by the import.  Only when the digest differs is every data block
 * hashed against the tree (ag_object_check), to name the bad block.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "store/internal.h"
#include "store/verity.h"

#define BATCH 64u /* tree blocks loaded from one read transaction */

struct parent {
	ag_store *s;
	const ag_digest *d;
	uint64_t blk; /* kernel-layout number of the block in buf, or UINT64_MAX */
	uint8_t *buf;
};

/* The entry for child i of level l: in the parent block, or the root. */
static int want_hash(struct parent *p, const struct ag_verity_geometry *g, const ag_blob_info *bi,
		     unsigned l, uint64_t i, const uint8_t **want)
{
	if (l + 1 == g->nlevels) {
		*want = bi->root.b;
		return 0;
	}
	uint64_t blk = g->first_block[l + 1] + i / AG_VERITY_ARITY;
	if (p->blk != blk) {
		free(p->buf);
		p->buf = NULL;
		p->blk = UINT64_MAX;
		int r = ag_tree_blocks_get(p->s, p->d, blk, 1, &p->buf);
		if (r < 0)
			return r;
		p->blk = blk;
	}
	*want = p->buf + (i % AG_VERITY_ARITY) * 32;
	return 0;
}

/* Level l's blocks against their parents; -EBADMSG with *bad the first data
 * block the bad tree block covers. */
static int level_check(ag_store *s, const ag_blob_info *bi, const struct ag_verity_geometry *g,
		       unsigned l, uint64_t *bad)
{
	struct parent p = {s, &bi->digest, UINT64_MAX, NULL};
	uint8_t *got[BATCH];
	uint64_t cover = AG_VERITY_ARITY; /* data blocks under one block of level l */
	int r = 0;
	for (unsigned k = 0; k < l; k++)
		cover *= AG_VERITY_ARITY;
	for (uint64_t i = 0; r == 0 && i < g->nblocks[l];) {
		uint64_t n = g->nblocks[l] - i < BATCH ? g->nblocks[l] - i : BATCH;
		int cnt = ag_tree_blocks_get(s, &bi->digest, g->first_block[l] + i, n, got);
		if (cnt < 0) {
			r = cnt;
			break;
		}
		for (int k = 0; k < cnt; k++) {
			const uint8_t *want;
			uint8_t h[32];
			if (r == 0)
				r = want_hash(&p, g, bi, l, i + (uint64_t)k, &want);
			if (r == 0) {
				ag_sha256_fast(got[k], AG_VERITY_BLOCK, h);
				if (memcmp(h, want, 32)) {
					*bad = (i + (uint64_t)k) * cover;
					r = -EBADMSG;
				}
			}
			free(got[k]);
		}
		i += (uint64_t)cnt;
	}
	free(p.buf);
	return r;
}

static int tree_check(ag_store *s, const ag_blob_info *bi, uint64_t *bad_chunk)
{
	struct ag_verity_geometry g;
	uint64_t bad = UINT64_MAX; /* stays so for a tree block of the wrong size */
	int r = 0;
	ag_verity_geometry(bi->size, &g);
	/* Top down: a block is only trusted as a parent once checked. */
	for (unsigned l = g.nlevels; r == 0 && l-- > 0;)
		r = level_check(s, bi, &g, l, &bad);
	if (r == -EBADMSG && bad != UINT64_MAX && bad_chunk)
		*bad_chunk = bad;
	return r;
}

int ag_object_check_once(ag_store *s, const ag_blob_info *bi, uint64_t *bad_chunk)
{
	/* One block or none: no tree, the block's hash is the root; the full
	 * check costs the same. */
	if (bi->size <= AG_VERITY_BLOCK)
		return ag_object_check(s, bi, bad_chunk);
	int fd = ag_object_open(s, &bi->digest, O_RDONLY);
	if (fd < 0)
		return fd;
	int r = ag_object_hash_check(fd, bi->size, &bi->digest);
	close(fd);
	if (r == -AG_EDIGEST) /* which block: the full check names it */
		return ag_object_check(s, bi, bad_chunk);
	if (r < 0)
		return r;
	return tree_check(s, bi, bad_chunk);
}
