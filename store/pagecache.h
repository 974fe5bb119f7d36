/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Dropping behind a reader only the pages it brought into the page cache.
 * fsck, an import's dedup check and buffered blob reads go through an
 * object once and drop what they read, so as not to fill memory with a
 * second copy nobody asked for; but a page that was in the cache before
 * they read it is someone else's (a mount serving the blob, a process with
 * the object open) and stays.  Which pages were resident is noted with
 * mincore(2) on a read-only mapping of the file, a window at a time just
 * before the reader (and its read-ahead) gets there; when that cannot be
 * told (no mapping, no memory, mincore refused) nothing is dropped.
 */
#ifndef AGFS_STORE_PAGECACHE_H
#define AGFS_STORE_PAGECACHE_H

#include <stddef.h>
#include <stdint.h>

struct ag_pagecache {
	int fd;
	uint64_t size;
	size_t page;
	uint64_t ahead;	 /* how far past a read its read-ahead may reach */
	uint8_t *map;	 /* PROT_READ mapping of the file; NULL: nothing is dropped */
	uint8_t *before; /* a bit per page: resident before the reader came */
	uint8_t *noted;	 /* a bit per window: its pages' bits are set */
	uint8_t *vec;	 /* mincore's vector for one window */
};

/* For fd, size bytes.  Cannot fail: without what it needs, it drops nothing. */
void ag_pagecache_init(struct ag_pagecache *pc, int fd, uint64_t size);
/* Before reading [off, off + len): notes which pages of its windows, and of
 * those the kernel's read-ahead may reach meanwhile, are resident now. */
void ag_pagecache_note(struct ag_pagecache *pc, uint64_t off, uint64_t len);
/* POSIX_FADV_DONTNEED for the pages of [off, off + len) that were noted
 * as not resident. */
void ag_pagecache_drop(struct ag_pagecache *pc, uint64_t off, uint64_t len);
/* Drops every such page of the file, then frees pc (fd stays open). */
void ag_pagecache_fini(struct ag_pagecache *pc);

#endif
