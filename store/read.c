/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Verified reads (store format 2).  A blob's fs-verity tree (SHA-256, 4 KiB
 * blocks, built in the same pass as the blob's digest) lives in the "trees"
 * database; its root hash and the fs-verity file digest are in the blob's
 * record.  Every read hashes each 4 KiB data block it touches and compares
 * it with its level-0 entry before handing out a single byte; each tree
 * block is checked against its parent's entry (the top one against the
 * root) when first loaded, then kept for the open blob (level 0 bounded, the
 * levels above kept), so a read costs one hash per data block and rarely
 * one per tree block, and opening costs the same whatever the size.
 *
 * Errors: -EBADMSG is a verdict (a data block or a tree block hashed
 * differently, or the record's root does not give the expected fs-verity
 * digest); -AG_ECORRUPT and -AG_EDIGEST too.  Everything else (no memory,
 * LMDB's reader table full, a disk error, a damaged index) means nothing
 * could be checked, and is returned as itself.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/internal.h"
#include "store/sha4k.h"
#include "store/verity.h"

#define BLK AG_VERITY_BLOCK
static_assert(AG_SHA4K_BLOCK == BLK, "data blocks are hashed 4 KiB at a time");

static int open_object_fd(ag_blob *b, bool direct)
{
	int fd = ag_object_open(b->s, &b->info.digest, O_RDONLY | (direct ? O_DIRECT : 0));
	if (fd == -EINVAL && direct) /* file system without O_DIRECT */
		return open_object_fd(b, false);
	if (fd >= 0)
		b->direct = direct && (fcntl(fd, F_GETFL) & O_DIRECT);
	return fd;
}

struct rec_get {
	ag_store *s;
	ag_blob_info *info;
};

static int rec_get_fn(MDB_txn *txn, void *arg)
{
	struct rec_get *a = arg;
	return ag_blob_rec_get(txn, a->s, &a->info->digest, a->info, true);
}

/* A blob for bi (a record read and checked) with its tree geometry and no
 * descriptor yet. */
static int blob_new(ag_store *s, const ag_blob_info *bi, ag_blob **out)
{
	ag_blob *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->s = s;
	b->fd = b->fd_buffered = -1;
	b->info = *bi;
	pthread_mutex_init(&b->lock, NULL);
	pthread_mutex_init(&b->pc_lock, NULL);
	struct ag_verity_geometry g;
	ag_verity_geometry(b->info.size, &g);
	b->nlevels = g.nlevels;
	memcpy(b->nblocks, g.nblocks, sizeof(b->nblocks));
	memcpy(b->first_block, g.first_block, sizeof(b->first_block));
	b->tree = calloc(g.tree_blocks + 1, sizeof(uint8_t *));
	b->checked = calloc(g.tree_blocks + 1, 1);
	if (!b->tree || !b->checked) {
		ag_blob_close(b);
		return -ENOMEM;
	}
	*out = b;
	return 0;
}

static int blob_open(ag_store *s, const ag_digest *d, const ag_digest *expect, unsigned flags,
		     ag_blob **out)
{
	ag_blob_info info = {.digest = *d};
	ag_blob *b = NULL;
	int r = ag_read_guarded(s, rec_get_fn, &(struct rec_get){s, &info});
	if (r == 0)
		r = blob_new(s, &info, &b);
	if (r < 0)
		return r;
	/* The record is sound (its own hash, and its root and size give its
	 * fs-verity digest); a verified catalog may still say the tree must
	 * end elsewhere: then nothing it holds is trusted. */
	if (expect && !ag_digest_eq(expect, &b->info.fsverity))
		b->root_bad = true;
	b->fd = open_object_fd(b, flags & AG_BLOB_DIRECT);
	r = b->fd < 0 ? b->fd : 0;
	struct stat st;
	if (r == 0 && fstat(b->fd, &st) < 0)
		r = ag_errno();
	if (r == 0 && (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != b->info.size))
		r = -AG_ECORRUPT;
	if (r == 0 && (flags & AG_BLOB_STREAM) && !b->direct) {
		posix_fadvise(b->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		ag_pagecache_init(&b->pc, b->fd, b->info.size);
		b->dropbehind = true;
	}
	if (r < 0) {
		ag_blob_close(b);
		return r;
	}
	*out = b;
	return 0;
}

int ag_blob_open(ag_store *s, const ag_digest *d, unsigned flags, ag_blob **out)
{
	return blob_open(s, d, NULL, flags, out);
}

int ag_blob_open_expect(ag_store *s, const ag_digest *d, const ag_digest *fsverity, unsigned flags,
			ag_blob **out)
{
	return blob_open(s, d, fsverity, flags, out);
}

void ag_blob_close(ag_blob *b)
{
	if (!b)
		return;
	if (b->dropbehind) /* the pages its reads brought in, no others */
		ag_pagecache_fini(&b->pc);
	if (b->fd >= 0)
		close(b->fd);
	if (b->fd_buffered >= 0)
		close(b->fd_buffered);
	pthread_mutex_destroy(&b->lock);
	pthread_mutex_destroy(&b->pc_lock);
	uint64_t n = b->nlevels ? b->first_block[0] + b->nblocks[0] : 0;
	for (uint64_t i = 0; b->tree && i < n; i++)
		free(b->tree[i]);
	free(b->tree);
	free(b->checked);
	free(b);
}

const ag_blob_info *ag_blob_get_info(const ag_blob *b)
{
	return &b->info;
}

size_t ag_blob_bufsize(const ag_blob *b, size_t len)
{
	(void)b;
	return (len + BLK - 1) / BLK * BLK + BLK;
}

/* A buffered descriptor for when O_DIRECT reads are refused. */
static int buffered_fd(ag_blob *b)
{
	pthread_mutex_lock(&b->lock);
	if (b->fd_buffered < 0)
		b->fd_buffered = ag_object_open(b->s, &b->info.digest, O_RDONLY);
	int fd = b->fd_buffered;
	pthread_mutex_unlock(&b->lock);
	return fd;
}

#define DROP_LAG (16u << 20)

static ssize_t read_span(ag_blob *b, void *buf, size_t len, uint64_t off)
{
	size_t want = len;
	if (b->direct)
		want = (len + AG_ALIGN - 1) / AG_ALIGN * AG_ALIGN;
	if (b->dropbehind) {
		pthread_mutex_lock(&b->pc_lock);
		ag_pagecache_note(&b->pc, off, want);
		pthread_mutex_unlock(&b->pc_lock);
	}
	ssize_t n = ag_pread_all(b->fd, buf, want, off);
	if (n == -EINVAL && b->direct) {
		int fd = buffered_fd(b);
		if (fd < 0)
			return fd;
		n = ag_pread_all(fd, buf, len, off);
	}
	/* The verified copy is what the mount caches; the object's pages would
	 * only be a second, unverified copy.  Drop them a little behind the
	 * reader: pages just read may still sit in per-CPU LRU batches, where
	 * DONTNEED cannot reach them.  Only those its reads brought in: another
	 * reader of the object (fsck, a second mount) keeps its own. */
	if (n > 0 && b->dropbehind && off >= DROP_LAG) {
		pthread_mutex_lock(&b->pc_lock);
		ag_pagecache_drop(&b->pc, off - DROP_LAG, (uint64_t)n);
		pthread_mutex_unlock(&b->pc_lock);
	}
	return n;
}

static void evict_level0(ag_blob *b)
{
	for (uint64_t i = 0; i < b->nblocks[0]; i++) {
		uint8_t **p = &b->tree[b->first_block[0] + i];
		free(*p);
		*p = NULL;
		b->checked[b->first_block[0] + i] = 0;
	}
	b->ncached0 = 0;
}

/* Tree block i of level l, checked against its parent's entry (the top one
 * against the root) when loaded.  Under b->lock.  -EBADMSG when it does not
 * match; any other error means it could not be loaded (nothing checked). */
static int tree_block(ag_blob *b, unsigned l, uint64_t i, const uint8_t **out)
{
	uint64_t blk = b->first_block[l] + i;
	if (b->tree[blk] && b->checked[blk]) {
		*out = b->tree[blk];
		return 0;
	}
	const uint8_t *want = b->info.root.b;
	if (l + 1 < b->nlevels) {
		const uint8_t *parent;
		int r = tree_block(b, l + 1, i / AG_VERITY_ARITY, &parent);
		if (r < 0)
			return r;
		want = parent + (i % AG_VERITY_ARITY) * 32;
	}
	if (!b->tree[blk]) {
		uint8_t *got[AG_TREE_READAHEAD];
		/* level 0: the next few too for a reader going on from the last
		 * one (its predecessor is loaded); one for a random read */
		uint64_t n = l == 0 && (i == 0 || b->tree[blk - 1]) ? b->nblocks[0] - i : 1;
		if (n > AG_TREE_READAHEAD)
			n = AG_TREE_READAHEAD;
		if (l == 0 && b->ncached0 + n > AG_TREE_CACHE)
			evict_level0(b);
		int r = ag_tree_blocks_get(b->s, &b->info.digest, blk, n, got);
		if (r < 0)
			return r;
		for (uint64_t k = 0; k < n; k++) {
			if (k < (uint64_t)r && !b->tree[blk + k]) {
				b->tree[blk + k] = got[k];
				b->ncached0 += l == 0;
			} else {
				free(got[k]);
			}
		}
	}
	uint8_t h[32];
	ag_sha256_fast(b->tree[blk], BLK, h);
	if (memcmp(h, want, 32)) {
		free(b->tree[blk]);
		b->tree[blk] = NULL;
		b->ncached0 -= l == 0;
		return -EBADMSG;
	}
	b->checked[blk] = 1;
	*out = b->tree[blk];
	return 0;
}

int ag_tree_check(ag_store *s, const ag_blob_info *bi, uint64_t *bad_chunk)
{
	_cleanup_blob_ ag_blob *b = NULL;
	int r = blob_new(s, bi, &b);
	if (r < 0)
		return r;
	pthread_mutex_lock(&b->lock);
	/* Top down, as a reader loads them: a block is only trusted as a
	 * parent once checked.  A level-l block covers ARITY^(l+1) data blocks. */
	for (unsigned l = b->nlevels; r == 0 && l-- > 0;) {
		uint64_t cover = AG_VERITY_ARITY;
		for (unsigned k = 0; k < l; k++)
			cover *= AG_VERITY_ARITY;
		for (uint64_t i = 0; r == 0 && i < b->nblocks[l]; i++) {
			const uint8_t *blk;
			r = tree_block(b, l, i, &blk);
			if (r == -EBADMSG && bad_chunk)
				*bad_chunk = i * cover;
		}
	}
	pthread_mutex_unlock(&b->lock);
	return r;
}

#define GROUP 64u

/* Checks data blocks first..first+n-1 held in buf (each BLK bytes, the last
 * one zero-padded).  On a verdict or failure, *at is the block. */
static int blocks_check(ag_blob *b, uint64_t first, uint64_t n, const uint8_t *buf, uint64_t *at)
{
	if (b->root_bad) {
		*at = first;
		return -EBADMSG;
	}
	uint8_t want[GROUP][32];
	for (uint64_t g = 0; g < n; g += GROUP) {
		uint64_t cnt = n - g < GROUP ? n - g : GROUP;
		int r = 0;
		uint64_t i = 0;
		if (b->nlevels == 0) { /* one block: its hash is the root */
			memcpy(want[0], b->info.root.b, 32);
		} else {
			pthread_mutex_lock(&b->lock);
			for (i = 0; i < cnt && r == 0; i++) {
				uint64_t c = first + g + i;
				const uint8_t *leaf;
				r = tree_block(b, 0, c / AG_VERITY_ARITY, &leaf);
				if (r == 0)
					memcpy(want[i], leaf + (c % AG_VERITY_ARITY) * 32, 32);
			}
			pthread_mutex_unlock(&b->lock);
			if (r < 0) {
				*at = first + g + i - 1;
				return r;
			}
		}
		uint8_t got[GROUP][32];
		ag_sha256_4k(buf + g * BLK, cnt, got);
		for (i = 0; i < cnt; i++) {
			if (memcmp(got[i], want[i], 32)) {
				*at = first + g + i;
				return -EBADMSG;
			}
		}
	}
	return 0;
}

ssize_t ag_blob_read(ag_blob *b, uint64_t off, size_t len, void *buf, size_t bufsize,
		     const uint8_t **out, uint64_t *bad_chunk)
{
	const uint64_t size = b->info.size;
	if (off >= size || len == 0)
		return 0;
	if (len > size - off)
		len = size - off;
	uint64_t first = off / BLK, last = (off + len - 1) / BLK;
	uint64_t start = first * BLK, end = (last + 1) * BLK;
	if (end > size)
		end = size;
	size_t span = (size_t)(end - start);
	/* the blocks the range touches, whole (ag_blob_bufsize() bounds it) */
	if (bufsize < (last - first + 1) * BLK || ((uintptr_t)buf % AG_ALIGN))
		return -EINVAL;
	ssize_t n = read_span(b, buf, span, start);
	if (n < 0)
		return n;
	uint64_t at = first;
	int r = 0;
	if ((size_t)n < span) {
		/* Fewer bytes than the record: the object shrank since it was opened. */
		at = first + (uint64_t)n / BLK;
		r = -AG_ECORRUPT;
	} else {
		size_t padded = (span + BLK - 1) / BLK * BLK;
		memset((uint8_t *)buf + span, 0, padded - span);
		r = blocks_check(b, first, last - first + 1, buf, &at);
	}
	if (r < 0) {
		if (bad_chunk && (r == -EBADMSG || r == -AG_ECORRUPT))
			*bad_chunk = at;
		return r;
	}
	*out = (const uint8_t *)buf + (off - start);
	return (ssize_t)len;
}

ssize_t ag_blob_pread(ag_blob *b, void *dst, size_t len, uint64_t off, uint64_t *bad_chunk)
{
	size_t step = (size_t)BLK * 64;
	size_t bufsize = ag_blob_bufsize(b, step);
	void *buf;
	if (posix_memalign(&buf, AG_ALIGN, bufsize))
		return -ENOMEM;
	size_t done = 0;
	ssize_t r = 0;
	while (done < len) {
		size_t want = len - done < step ? len - done : step;
		const uint8_t *p;
		r = ag_blob_read(b, off + done, want, buf, bufsize, &p, bad_chunk);
		if (r <= 0)
			break;
		memcpy((uint8_t *)dst + done, p, (size_t)r);
		done += (size_t)r;
	}
	free(buf);
	return r < 0 ? r : (ssize_t)done;
}

/* One pass over the object: every data block against the tree (so every
 * tree block against its parent, up to the root) and the whole against the
 * digest; each byte read once. */
int ag_blob_verify_full(ag_blob *b, uint64_t *bad_chunk)
{
	const size_t step = 1u << 20;
	void *buf;
	if (posix_memalign(&buf, AG_ALIGN, step + BLK))
		return -ENOMEM;
	ag_hash *h = ag_hash_new();
	int r = h ? 0 : -ENOMEM;
	uint64_t at = 0;
	for (uint64_t off = 0; r == 0 && off < b->info.size; off += step) {
		size_t want = b->info.size - off < step ? (size_t)(b->info.size - off) : step;
		ssize_t n = read_span(b, buf, want, off);
		if (n < 0) {
			r = (int)n;
			break;
		}
		if ((size_t)n < want) {
			at = (off + (uint64_t)n) / BLK;
			r = -AG_ECORRUPT;
			break;
		}
		size_t padded = (want + BLK - 1) / BLK * BLK;
		memset((uint8_t *)buf + want, 0, padded - want);
		r = blocks_check(b, off / BLK, padded / BLK, buf, &at);
		if (r == 0)
			ag_hash_update(h, buf, want);
	}
	if (r == 0 && b->root_bad) /* the empty blob reads no block */
		r = -EBADMSG;
	if (r < 0 && bad_chunk && (r == -EBADMSG || r == -AG_ECORRUPT))
		*bad_chunk = at;
	if (r == 0) {
		ag_digest d;
		ag_hash_final(h, &d);
		if (!ag_digest_eq(&d, &b->info.digest))
			r = -AG_EDIGEST;
	}
	ag_hash_free(h);
	free(buf);
	return r;
}

int ag_object_check(ag_store *s, const ag_blob_info *bi, uint64_t *bad_chunk)
{
	_cleanup_blob_ ag_blob *b = NULL;
	int r = ag_blob_open(s, &bi->digest, AG_BLOB_DIRECT, &b);
	if (r < 0)
		return r;
	return ag_blob_verify_full(b, bad_chunk);
}
