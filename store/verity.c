/* SPDX-License-Identifier: Apache-2.0 */
/* The fs-verity Merkle tree: geometry, a streaming builder, file digests. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <libfsverity.h>

#include "store/internal.h"
#include "store/sha4k.h"
#include "store/verity.h"

_Static_assert(AG_VERITY_ARITY == 128, "SHA-256 in 4 KiB blocks: 128 hashes a block");

void ag_verity_geometry(uint64_t size, struct ag_verity_geometry *g)
{
	memset(g, 0, sizeof(*g));
	if (size == 0)
		return;
	/* One data block has no tree: its own hash is the root. */
	uint64_t blocks = (size + AG_VERITY_BLOCK - 1) / AG_VERITY_BLOCK;
	while (blocks > 1) {
		blocks = (blocks + AG_VERITY_ARITY - 1) / AG_VERITY_ARITY;
		g->nblocks[g->nlevels++] = blocks;
	}
	/* The kernel's layout stores the top level first. */
	uint64_t at = 0;
	for (unsigned l = g->nlevels; l-- > 0;) {
		g->first_block[l] = at;
		at += g->nblocks[l];
	}
	g->tree_blocks = at;
}

struct ag_verity {
	ag_hash *h;
	ag_verity_emit emit;
	void *arg;
	int err;			      /* first error of emit, returned from then on */
	uint64_t size;			      /* data bytes so far */
	size_t dfill;			      /* bytes in the current data block */
	uint8_t *data;			      /* the current data block */
	size_t fill[AG_VERITY_MAX_LEVELS];    /* bytes in each level's current block */
	uint64_t count[AG_VERITY_MAX_LEVELS]; /* blocks each level has completed */
	uint8_t *level[AG_VERITY_MAX_LEVELS]; /* each level's current block, made on first use */
};

int ag_verity_new(ag_verity_emit emit, void *arg, ag_verity **out)
{
	ag_verity *v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->emit = emit;
	v->arg = arg;
	v->h = ag_hash_new();
	v->data = malloc(AG_VERITY_BLOCK);
	if (!v->h || !v->data) {
		ag_verity_free(v);
		return -ENOMEM;
	}
	*out = v;
	return 0;
}

void ag_verity_free(ag_verity *v)
{
	if (!v)
		return;
	ag_hash_free(v->h);
	free(v->data);
	for (unsigned l = 0; l < AG_VERITY_MAX_LEVELS; l++)
		free(v->level[l]);
	free(v);
}

/* Completes level l's current block (zero-padded) and pushes its hash up. */
static int push_hash(ag_verity *v, unsigned l, const ag_digest *d);

static int close_block(ag_verity *v, unsigned l)
{
	ag_digest d;
	memset(v->level[l] + v->fill[l], 0, AG_VERITY_BLOCK - v->fill[l]);
	if (v->emit) {
		int rc = v->emit(v->arg, l, v->count[l], v->level[l]);
		if (rc)
			return v->err = rc;
	}
	ag_hash_update(v->h, v->level[l], AG_VERITY_BLOCK);
	ag_hash_final(v->h, &d);
	v->count[l]++;
	v->fill[l] = 0;
	return push_hash(v, l + 1, &d);
}

static int push_hash(ag_verity *v, unsigned l, const ag_digest *d)
{
	if (l >= AG_VERITY_MAX_LEVELS)
		return v->err = -EFBIG;
	if (!v->level[l] && !(v->level[l] = malloc(AG_VERITY_BLOCK))) /* a small blob uses one */
		return v->err = -ENOMEM;
	memcpy(v->level[l] + v->fill[l], d->b, sizeof(d->b));
	v->fill[l] += sizeof(d->b);
	return v->fill[l] == AG_VERITY_BLOCK ? close_block(v, l) : 0;
}

static int data_block(ag_verity *v, const uint8_t *block)
{
	ag_digest d;
	ag_hash_update(v->h, block, AG_VERITY_BLOCK);
	ag_hash_final(v->h, &d);
	return push_hash(v, 0, &d);
}

int ag_verity_update(ag_verity *v, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	int rc = v->err;
	v->size += len;
	while (rc == 0 && len > 0) {
		if (v->dfill == 0 && len >= AG_VERITY_BLOCK) { /* whole blocks: no copy */
			enum { BATCH = 32 };		       /* hashed several at once */
			uint8_t out[BATCH][32];
			size_t n = len / AG_VERITY_BLOCK < BATCH ? len / AG_VERITY_BLOCK : BATCH;
			ag_sha256_4k(p, n, out);
			for (size_t i = 0; rc == 0 && i < n; i++) {
				ag_digest d;
				memcpy(d.b, out[i], sizeof(d.b));
				rc = push_hash(v, 0, &d);
			}
			p += n * AG_VERITY_BLOCK;
			len -= n * AG_VERITY_BLOCK;
			continue;
		}
		size_t n = AG_VERITY_BLOCK - v->dfill < len ? AG_VERITY_BLOCK - v->dfill : len;
		memcpy(v->data + v->dfill, p, n);
		v->dfill += n;
		p += n;
		len -= n;
		if (v->dfill == AG_VERITY_BLOCK) {
			v->dfill = 0;
			rc = data_block(v, v->data);
		}
	}
	return rc;
}

int ag_verity_final(ag_verity *v, ag_digest *root, ag_digest *file_digest)
{
	int rc = v->err;
	if (rc == 0 && v->dfill > 0) {
		memset(v->data + v->dfill, 0, AG_VERITY_BLOCK - v->dfill);
		v->dfill = 0;
		rc = data_block(v, v->data);
	}
	memset(root, 0, sizeof(*root)); /* the empty blob has an all-zero root */
	if (rc == 0 && v->size > 0 && v->size <= AG_VERITY_BLOCK) /* no tree */
		memcpy(root->b, v->level[0], sizeof(root->b));
	/* Otherwise close each level bottom-up; the first that has exactly one
	 * block is the top, and its hash (now alone in the level above) is the
	 * root. */
	for (unsigned l = 0; rc == 0 && v->size > AG_VERITY_BLOCK; l++) {
		if (v->fill[l] > 0 && (rc = close_block(v, l)) != 0)
			break;
		if (v->count[l] == 1) {
			memcpy(root->b, v->level[l + 1], sizeof(root->b));
			break;
		}
	}
	if (rc == 0 && file_digest)
		ag_verity_file_digest(root, v->size, file_digest);
	return rc;
}

void ag_verity_file_digest(const ag_digest *root, uint64_t size, ag_digest *out)
{
	/* struct fsverity_descriptor (linux/fsverity.h), little-endian. */
	uint8_t desc[256] = {0};
	desc[0] = 1;  /* version */
	desc[1] = 1;  /* FS_VERITY_HASH_ALG_SHA256 */
	desc[2] = 12; /* log2 of the block size */
	desc[3] = 0;  /* salt size; bytes 4-7: sig_size, 0 */
	for (int i = 0; i < 8; i++)
		desc[8 + i] = (uint8_t)(size >> (8 * i));
	memcpy(desc + 16, root->b, sizeof(root->b)); /* root_hash[64], SHA-256 fills 32 */
	ag_sha256(desc, sizeof(desc), out);
}

struct fd_reader {
	int fd;
	uint64_t off;
};

static int read_fd(void *arg, void *buf, size_t count)
{
	struct fd_reader *r = arg;
	uint8_t *p = buf;
	while (count > 0) {
		ssize_t n = pread(r->fd, p, count, (off_t)r->off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* shorter than the size asked for */
		p += n;
		count -= (size_t)n;
		r->off += (uint64_t)n;
	}
	return 0;
}

int ag_verity_digest_fd(int fd, uint64_t size, ag_digest *out)
{
	struct libfsverity_merkle_tree_params params = {
		.version = 1,
		.hash_algorithm = FS_VERITY_HASH_ALG_SHA256,
		.file_size = size,
		.block_size = AG_VERITY_BLOCK,
	};
	struct fd_reader r = {.fd = fd};
	struct libfsverity_digest *d = NULL;
	int rc = libfsverity_compute_digest(&r, read_fd, &params, &d);
	if (rc < 0)
		return rc;
	if (d->digest_algorithm != FS_VERITY_HASH_ALG_SHA256 || d->digest_size != sizeof(out->b)) {
		free(d);
		return -EINVAL;
	}
	memcpy(out->b, d->digest, sizeof(out->b));
	free(d);
	return 0;
}
