/* SPDX-License-Identifier: Apache-2.0 */
/* Dropping behind a reader only the pages it brought in (store/pagecache.h). */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "store/pagecache.h"

/* Noted at a time. */
#define WIN (16u << 20)
/* How far past a read the windows are noted before it: as far as the
 * kernel's read-ahead may already have put pages in the cache (present
 * there, to mincore, as soon as their read is issued).  An asynchronous
 * read-ahead window starts where the last one ends, so the pipeline runs
 * up to two windows ahead of the reader; a window is twice read_ahead_kb
 * after POSIX_FADV_SEQUENTIAL: four times read_ahead_kb, and no less than
 * AHEAD (the file system's device may not be known: overlayfs, btrfs).
 * One window noted ahead, as before, left the last ones of a 40 MiB object
 * undropped on virtio disks with read_ahead_kb 8192. */
#define AHEAD (64u << 20)

/* Four times read_ahead_kb of fd's device, or 0 if it cannot be read. */
static uint64_t readahead_reach(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return 0;
	/* a partition has no queue of its own: its disk's is one level up */
	for (int up = 0; up < 2; up++) {
		char path[96];
		snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%squeue/read_ahead_kb",
			 major(st.st_dev), minor(st.st_dev), up ? "../" : "");
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		unsigned long kb = 0;
		int got = fscanf(f, "%lu", &kb);
		fclose(f);
		if (got == 1)
			return (uint64_t)kb * 1024 * 4;
	}
	return 0;
}

static bool bit(const uint8_t *v, uint64_t i)
{
	return v[i / 8] & (1u << (i % 8));
}

static void set_bit(uint8_t *v, uint64_t i)
{
	v[i / 8] |= (uint8_t)(1u << (i % 8));
}

void ag_pagecache_init(struct ag_pagecache *pc, int fd, uint64_t size)
{
	long ps = sysconf(_SC_PAGESIZE);
	memset(pc, 0, sizeof(*pc));
	pc->fd = fd;
	pc->size = size;
	pc->page = ps > 0 ? (size_t)ps : 4096;
	if (size == 0 || size > SIZE_MAX || WIN % pc->page)
		return;
	uint64_t npages = (size + pc->page - 1) / pc->page, nwin = (size + WIN - 1) / WIN;
	void *m = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return;
	pc->before = calloc((size_t)(npages + 7) / 8, 1);
	pc->noted = calloc((size_t)(nwin + 7) / 8, 1);
	pc->vec = malloc(WIN / pc->page);
	if (!pc->before || !pc->noted || !pc->vec) {
		munmap(m, (size_t)size);
		free(pc->before);
		free(pc->noted);
		free(pc->vec);
		pc->before = pc->noted = pc->vec = NULL;
		return;
	}
	pc->map = m;
	uint64_t reach = readahead_reach(fd);
	pc->ahead = reach > AHEAD ? reach : AHEAD;
}

void ag_pagecache_note(struct ag_pagecache *pc, uint64_t off, uint64_t len)
{
	if (!pc->map || off >= pc->size)
		return;
	uint64_t end = len > pc->size - off ? pc->size : off + len;
	end = pc->size - end < pc->ahead ? pc->size
					 : end + pc->ahead; /* and those read-ahead reaches */
	for (uint64_t w = off / WIN; w * WIN < end; w++) {
		if (bit(pc->noted, w))
			continue;
		uint64_t start = w * WIN, n = pc->size - start < WIN ? pc->size - start : WIN;
		size_t np = (size_t)((n + pc->page - 1) / pc->page);
		if (mincore(pc->map + start, (size_t)n, pc->vec) < 0)
			memset(pc->vec, 1, np); /* cannot tell: someone's, kept */
		for (size_t i = 0; i < np; i++)
			if (pc->vec[i] & 1)
				set_bit(pc->before, start / pc->page + i);
		set_bit(pc->noted, w);
	}
}

/* Whether page p may be dropped: noted, and not resident then. */
static bool ours(const struct ag_pagecache *pc, uint64_t p)
{
	return bit(pc->noted, p * pc->page / WIN) && !bit(pc->before, p);
}

void ag_pagecache_drop(struct ag_pagecache *pc, uint64_t off, uint64_t len)
{
	if (!pc->map || off >= pc->size)
		return;
	uint64_t end = len > pc->size - off ? pc->size : off + len;
	uint64_t p = off / pc->page, last = (end + pc->page - 1) / pc->page;
	while (p < last) {
		while (p < last && !ours(pc, p))
			p++;
		uint64_t run = p;
		while (p < last && ours(pc, p))
			p++;
		if (p > run)
			posix_fadvise(pc->fd, (off_t)(run * pc->page),
				      (off_t)((p - run) * pc->page), POSIX_FADV_DONTNEED);
	}
}

void ag_pagecache_fini(struct ag_pagecache *pc)
{
	ag_pagecache_drop(pc, 0, pc->size);
	if (pc->map)
		munmap(pc->map, (size_t)pc->size);
	free(pc->before);
	free(pc->noted);
	free(pc->vec);
	memset(pc, 0, sizeof(*pc));
	pc->fd = -1;
}
