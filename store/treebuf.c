/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A blob's whole fs-verity tree built in the same pass as its SHA-256 (the
 * import's staging, migration): the builder (verity.c) hands over each tree
 * block as it completes; they are kept by level and laid out in the kernel's
 * order (top level first) at the end.  About 1/128 of the blob's size.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "store/internal.h"
#include "store/pagecache.h"
#include "store/verity.h"

static int keep_block(void *arg, unsigned level, uint64_t index, const uint8_t *block)
{
	struct ag_treebuf *tb = arg;
	if (level >= 8 || index != tb->count[level])
		return -EINVAL;
	if (tb->count[level] == tb->cap[level]) {
		uint64_t cap = tb->cap[level] ? tb->cap[level] * 2 : 4;
		uint8_t *n = realloc(tb->level[level], cap * AG_VERITY_BLOCK);
		if (!n)
			return -ENOMEM;
		tb->level[level] = n;
		tb->cap[level] = cap;
	}
	memcpy(tb->level[level] + tb->count[level]++ * AG_VERITY_BLOCK, block, AG_VERITY_BLOCK);
	return 0;
}

int ag_treebuf_init(struct ag_treebuf *tb)
{
	memset(tb, 0, sizeof(*tb));
	tb->whole = ag_hash_new();
	if (!tb->whole)
		return -ENOMEM;
	return ag_verity_new(keep_block, tb, &tb->v);
}

void ag_treebuf_update_whole(struct ag_treebuf *tb, const void *buf, size_t len)
{
	ag_hash_update(tb->whole, buf, len);
	tb->whole_size += len;
}

int ag_treebuf_update_tree(struct ag_treebuf *tb, const void *buf, size_t len)
{
	tb->size += len;
	return ag_verity_update(tb->v, buf, len);
}

int ag_treebuf_update(struct ag_treebuf *tb, const void *buf, size_t len)
{
	ag_treebuf_update_whole(tb, buf, len);
	return ag_treebuf_update_tree(tb, buf, len);
}

int ag_treebuf_final(struct ag_treebuf *tb, ag_blob_info *info, uint8_t **tree, uint64_t *nblocks)
{
	if (tb->whole_size != tb->size)
		return -EIO; /* a part missed a piece */
	int r = ag_verity_final(tb->v, &info->root, &info->fsverity);
	if (r < 0)
		return r;
	ag_hash_final(tb->whole, &info->digest);
	info->size = tb->size;
	info->has_fsverity = true;
	info->chunk_size = AG_VERITY_BLOCK;
	info->nchunks = (tb->size + AG_VERITY_BLOCK - 1) / AG_VERITY_BLOCK;
	struct ag_verity_geometry g;
	ag_verity_geometry(tb->size, &g);
	*tree = NULL;
	*nblocks = g.tree_blocks;
	if (!g.tree_blocks)
		return 0;
	uint8_t *t = malloc(g.tree_blocks * AG_VERITY_BLOCK);
	if (!t)
		return -ENOMEM;
	for (unsigned l = 0; l < g.nlevels; l++) {
		if (tb->count[l] != g.nblocks[l]) {
			free(t);
			return -EINVAL;
		}
		memcpy(t + g.first_block[l] * AG_VERITY_BLOCK, tb->level[l],
		       g.nblocks[l] * AG_VERITY_BLOCK);
	}
	*tree = t;
	return 0;
}

void ag_treebuf_free(struct ag_treebuf *tb)
{
	for (unsigned l = 0; l < 8; l++)
		free(tb->level[l]);
	ag_verity_free(tb->v);
	ag_hash_free(tb->whole);
	memset(tb, 0, sizeof(*tb));
}

int ag_treebuf_fd(int fd, uint64_t size, ag_blob_info *info, uint8_t **tree, uint64_t *nblocks)
{
	struct ag_treebuf tb;
	int r = ag_treebuf_init(&tb);
	size_t bufsz = 1u << 20;
	uint8_t *buf = r == 0 ? malloc(bufsz) : NULL;
	if (r == 0 && !buf)
		r = -ENOMEM;
	/* dropped afterwards: only the pages this call brought in (a mount
	 * may be serving the others, store/pagecache.h) */
	struct ag_pagecache pc;
	ag_pagecache_init(&pc, fd, size);
	for (uint64_t off = 0; r == 0 && off < size;) {
		size_t want = size - off < bufsz ? (size_t)(size - off) : bufsz;
		ag_pagecache_note(&pc, off, want);
		ssize_t n = ag_pread_all(fd, buf, want, off);
		if (n < 0)
			r = (int)n;
		else if ((size_t)n != want)
			r = -AG_ECORRUPT; /* shorter than its record */
		else
			r = ag_treebuf_update(&tb, buf, want);
		off += want;
	}
	if (r == 0)
		r = ag_treebuf_final(&tb, info, tree, nblocks);
	free(buf);
	ag_treebuf_free(&tb);
	ag_pagecache_fini(&pc);
	return r;
}
