/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fs-timing: small timers for bench/b-fs.sh (prints microseconds).
 *   fs-timing first FILE              open + read of the first byte
 *   fs-timing pread FILE COUNT SEED   COUNT preads of 4 KiB at random aligned offsets
 *   fs-timing mmap FILE               mmap with MAP_POPULATE (as llama.cpp maps weights),
 *                                     then one byte of every page read, then munmap
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int first(const char *path)
{
	char c;
	uint64_t t0 = now_us();
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, &c, 1) != 1) {
		fprintf(stderr, "fs-timing: %s: %s\n", path, strerror(errno));
		return 1;
	}
	uint64_t t1 = now_us();
	close(fd);
	printf("%" PRIu64 "\n", t1 - t0);
	return 0;
}

static int preads(const char *path, unsigned long count, uint64_t seed)
{
	static char buf[4096];
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < 4096) {
		fprintf(stderr, "fs-timing: %s: %s\n", path, strerror(errno));
		return 1;
	}
	uint64_t pages = (uint64_t)st.st_size / 4096, x = seed * 0x9e3779b97f4a7c15ull + 1;
	uint64_t t0 = now_us();
	for (unsigned long i = 0; i < count; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		if (pread(fd, buf, sizeof(buf), (off_t)((x % pages) * 4096)) != sizeof(buf)) {
			fprintf(stderr, "fs-timing: %s: pread: %s\n", path, strerror(errno));
			return 1;
		}
	}
	printf("%" PRIu64 "\n", now_us() - t0);
	close(fd);
	return 0;
}

static volatile unsigned sink; /* keeps the page-touching loop */

static int populate(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size == 0) {
		fprintf(stderr, "fs-timing: %s: %s\n", path,
			fd < 0 ? strerror(errno) : "empty or unreadable");
		return 1;
	}
	uint64_t t0 = now_us();
	const volatile unsigned char *p =
		mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "fs-timing: %s: mmap: %s\n", path, strerror(errno));
		return 1;
	}
	unsigned sum = 0;
	for (off_t o = 0; o < st.st_size; o += 4096)
		sum += p[o];
	munmap((void *)p, (size_t)st.st_size);
	printf("%" PRIu64 "\n", now_us() - t0);
	close(fd);
	sink = sum;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "first"))
		return first(argv[2]);
	if (argc == 5 && !strcmp(argv[1], "pread"))
		return preads(argv[2], strtoul(argv[3], NULL, 10), strtoull(argv[4], NULL, 10));
	if (argc == 3 && !strcmp(argv[1], "mmap"))
		return populate(argv[2]);
	fprintf(stderr, "usage: fs-timing first FILE | fs-timing pread FILE COUNT SEED | "
			"fs-timing mmap FILE\n");
	return 2;
}
