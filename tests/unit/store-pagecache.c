/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store/pagecache.c: a reader that drops behind it drops only the pages it
 * brought into the page cache.  A 40 MiB file (not a whole number of 16 MiB
 * windows) with 2 MiB in its middle read beforehand, then read through as
 * ag_object_hash_check does; read at one offset only; read ahead of the
 * reader by most of the file; a file smaller than a page.  Residency is
 * counted with mincore(2).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "store/internal.h"
#include "store/pagecache.h"
#include "tests/tap.h"

#define MIB (1u << 20)
static size_t page;

/* Resident pages of fd's [off, off + len). */
static size_t resident(int fd, uint64_t size, uint64_t off, uint64_t len)
{
	uint8_t *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	size_t np = (size + page - 1) / page, n = 0;
	uint8_t *vec = malloc(np);
	if (m == MAP_FAILED || !vec || mincore(m, size, vec) < 0)
		bail("mincore: %m");
	for (uint64_t p = off / page; p < (off + len + page - 1) / page && p < np; p++)
		n += vec[p] & 1;
	munmap(m, size);
	free(vec);
	return n;
}

static void evict(int fd)
{
	fdatasync(fd);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
}

static void touch(int fd, uint64_t off, uint64_t len)
{
	static uint8_t buf[MIB];
	for (uint64_t done = 0; done < len;) {
		size_t want = len - done < MIB ? (size_t)(len - done) : MIB;
		ssize_t n = pread(fd, buf, want, (off_t)(off + done));
		if (n <= 0)
			bail("pread: %m");
		done += (uint64_t)n;
	}
}

/* Someone else's read: exactly these pages, no read-ahead (which a
 * later look would count as theirs too). */
static void touch_only(int fd, uint64_t off, uint64_t len)
{
	posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
	touch(fd, off, len);
	posix_fadvise(fd, 0, 0, POSIX_FADV_NORMAL);
}

/* As ag_object_hash_check: note, read, drop 16 MiB behind; then fini. */
static void read_through(int fd, uint64_t size)
{
	struct ag_pagecache pc;
	ag_pagecache_init(&pc, fd, size);
	for (uint64_t off = 0; off < size; off += MIB) {
		uint64_t want = size - off < MIB ? size - off : MIB;
		if (off >= 16 * MIB)
			ag_pagecache_drop(&pc, off - 16 * MIB, want);
		ag_pagecache_note(&pc, off, want);
		touch(fd, off, want);
	}
	ag_pagecache_fini(&pc);
}

static int make_file(const char *dir, uint64_t size)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/agfs-pagecache.XXXXXX", dir);
	int fd = mkstemp(path);
	if (fd < 0)
		bail("mkstemp in %s: %m", dir);
	unlink(path);
	static uint8_t buf[MIB];
	memset(buf, 0x5a, sizeof(buf));
	for (uint64_t done = 0; done < size;) {
		size_t want = size - done < MIB ? (size_t)(size - done) : MIB;
		if (write(fd, buf, want) != (ssize_t)want)
			bail("write: %m");
		done += want;
	}
	return fd;
}

/* A file read beside each case: if its pages go too, the whole page cache
 * was dropped meanwhile (drop_caches by another test), and the case is run
 * again. */
static int sentinel = -1;

static void sentinel_read(void)
{
	touch_only(sentinel, 0, MIB);
}

static int sentinel_kept(void)
{
	if (resident(sentinel, MIB, 0, MIB) == MIB / page)
		return 1;
	diag("the page cache was dropped meanwhile: again");
	return 0;
}

int main(void)
{
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp";
	page = (size_t)sysconf(_SC_PAGESIZE);
	const uint64_t size = 40 * MIB + 1000;
	int fd = make_file(dir, size);
	evict(fd);
	if (resident(fd, size, 0, size) != 0)
		skip_all("the file system keeps a file's pages in memory (tmpfs?): set TMPDIR");

	sentinel = make_file(dir, MIB);
	evict(sentinel); /* clean: drop_caches takes it */
	size_t before = 0, mid = 0, all = 0;
	for (int i = 0; i < 5; i++) {
		evict(fd);
		sentinel_read();
		touch_only(fd, 20 * MIB, 2 * MIB);
		before = resident(fd, size, 0, size);
		read_through(fd, size);
		mid = resident(fd, size, 20 * MIB, 2 * MIB);
		all = resident(fd, size, 0, size);
		if (sentinel_kept())
			break;
	}
	is_int(before, 2 * MIB / page, "2 MiB read beforehand");
	is_int(mid, 2 * MIB / page, "read through: they stay");
	is_int(all, before, "and only they");

	evict(fd);
	read_through(fd, size);
	is_int(resident(fd, size, 0, size), 0, "nothing resident before: nothing after");

	/* one read in the middle: its window and those read-ahead reaches noted, nothing else */
	size_t got = 0;
	for (int i = 0; i < 5; i++) {
		evict(fd);
		sentinel_read();
		touch_only(fd, 0, page);
		struct ag_pagecache pc;
		ag_pagecache_init(&pc, fd, size);
		ag_pagecache_note(&pc, 30 * MIB, MIB);
		touch_only(fd, 30 * MIB, MIB);
		got = resident(fd, size, 30 * MIB, MIB);
		ag_pagecache_fini(&pc);
		all = resident(fd, size, 0, size);
		if (sentinel_kept())
			break;
	}
	is_int(got, MIB / page, "a read in the last window");
	is_int(all, 1, "dropped at the end; the first page (not noted) kept");

	/* read-ahead far past the reader before its next note (two windows of
	 * 2 x read_ahead_kb: 32 MiB with read_ahead_kb 8192): those pages are
	 * its own too */
	for (int i = 0; i < 5; i++) {
		evict(fd);
		sentinel_read();
		struct ag_pagecache pc;
		ag_pagecache_init(&pc, fd, size);
		ag_pagecache_note(&pc, 0, MIB);
		touch_only(fd, 0, size);
		ag_pagecache_fini(&pc);
		all = resident(fd, size, 0, size);
		if (sentinel_kept())
			break;
	}
	is_int(all, 0, "pages read ahead 40 MiB past a 1 MiB read: dropped with it");
	close(fd);

	fd = make_file(dir, 100);
	evict(fd);
	read_through(fd, 100);
	is_int(resident(fd, 100, 0, 100), 0, "100 bytes, not resident: dropped");
	for (int i = 0; i < 5; i++) {
		sentinel_read();
		touch_only(fd, 0, 100);
		read_through(fd, 100);
		all = resident(fd, 100, 0, 100);
		if (sentinel_kept())
			break;
	}
	is_int(all, 1, "resident: kept");
	close(fd);

	fd = make_file(dir, 0);
	read_through(fd, 0);
	ok(1, "an empty file: nothing to note or drop");
	close(fd);
	close(sentinel);
	return done_testing();
}
