/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fsck's check of one object with each byte hashed once: the SHA-256 of the
 * whole object (buffered reads, so the kernel's read-ahead overlaps the disk
 * with the hashing, as `openssl dgst` does) and then the stored fs-verity
 * tree on its own, every block against its parent's entry up to the
 * record's root (1/128 of the object's size), by the walk verified reads
 * use (read.c: ag_tree_check).  The bytes are the ones the digest names,
 * and the tree is the one the root names; that the two describe each other
 * was established when both were computed from the same bytes by the
 * import.  Only when the digest differs is every data block hashed against
 * the tree (ag_object_check), to name the bad block.
 */
#include <fcntl.h>
#include <unistd.h>

#include "store/internal.h"
#include "store/verity.h"

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
	return ag_tree_check(s, bi, bad_chunk);
}
