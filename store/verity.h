/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fs-verity Merkle tree of a blob (SHA-256, 4 KiB blocks, no salt): the
 * same tree and digest the Linux kernel's fs-verity and fsverity-utils
 * compute, so one digest serves our userspace check, `fsverity digest FILE`
 * for auditors and, later, a kernel-verified read path.
 *
 * Geometry: the data is cut into 4 KiB blocks (the last one zero-padded);
 * level 0 of the tree holds the SHA-256 of every data block, 128 to a 4 KiB
 * tree block (the last one zero-padded); each higher level hashes the blocks
 * of the level below the same way, up to the first level that fits in one
 * block.  The root hash is the SHA-256 of that top block; a blob of one data
 * block has no tree and its block's hash is the root; the empty blob's root
 * is all zeros.  The fs-verity file digest is the SHA-256 of the 256-byte
 * fsverity_descriptor that holds the root hash and the data size.  In the
 * kernel's layout the tree is stored top level first.
 *
 * This is the building block of store format 2 (see DESIGN.md); format 1
 * stores do not use it yet.
 */
#ifndef AGFS_STORE_VERITY_H
#define AGFS_STORE_VERITY_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define AG_VERITY_BLOCK	     4096u
#define AG_VERITY_ARITY	     (AG_VERITY_BLOCK / 32u) /* hashes per tree block */
#define AG_VERITY_MAX_LEVELS 8u			     /* 128^8 blocks: far beyond any file size */

struct ag_verity_geometry {
	unsigned nlevels;			    /* 0 for a blob of at most... 0 bytes */
	uint64_t nblocks[AG_VERITY_MAX_LEVELS];	    /* tree blocks of each level, 0 = bottom */
	uint64_t first_block[AG_VERITY_MAX_LEVELS]; /* its first block in the kernel layout */
	uint64_t tree_blocks;			    /* all tree blocks */
};
/* The tree's shape for a blob of size bytes (pure arithmetic). */
void ag_verity_geometry(uint64_t size, struct ag_verity_geometry *g);

/*
 * Streaming builder: feed the blob's bytes in any pieces, in order, while
 * they go by (the import's single pass); ag_verity_final() gives the root
 * hash and the fs-verity file digest.  When emit is given, it receives every
 * tree block as it is completed (level 0 = bottom, index within the level);
 * a non-zero return stops the build and is returned by the next call.
 * Memory: one block per level.
 */
typedef int (*ag_verity_emit)(void *arg, unsigned level, uint64_t index, const uint8_t *block);
typedef struct ag_verity ag_verity;
int ag_verity_new(ag_verity_emit emit, void *arg, ag_verity **out);
int ag_verity_update(ag_verity *v, const void *buf, size_t len);
int ag_verity_final(ag_verity *v, ag_digest *root, ag_digest *file_digest);
void ag_verity_free(ag_verity *v); /* accepts NULL */

/* The fs-verity file digest (what `fsverity digest` prints) for a root hash
 * and a data size. */
void ag_verity_file_digest(const ag_digest *root, uint64_t size, ag_digest *out);

/* The fs-verity file digest of an open file's bytes [0, size), computed by
 * libfsverity (an implementation independent of the builder above, for
 * checkers and tests). */
int ag_verity_digest_fd(int fd, uint64_t size, ag_digest *out);

#endif
