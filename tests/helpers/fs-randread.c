/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fs-randread [-t THREADS] [-n READS] [-s SEED] FILE REFERENCE
 *
 * THREADS threads (default 16), each with its own descriptors, pread random
 * ranges (1 byte .. 1 MiB, random offsets, some across the end) of FILE and
 * REFERENCE and compare them.  Prints "ok N reads" or the first difference;
 * exit 0 only when every read matched (and no read failed).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

#define MAX_LEN (1u << 20)

static const char *file, *ref;
static unsigned nreads = 200, seed = 1;
static uint64_t size;
static atomic_uint failures, done;

static uint64_t next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int one(int a, int b, uint8_t *x, uint8_t *y, uint64_t *rng)
{
	uint64_t off = next(rng) % (size + 1024);
	size_t len = 1 + next(rng) % (next(rng) % 4 ? 65536 : MAX_LEN);
	if (next(rng) % 8 == 0)
		off &= ~(uint64_t)4095; /* page-aligned, like the kernel's own reads */
	ssize_t n = pread(a, x, len, (off_t)off), m = pread(b, y, len, (off_t)off);
	if (n < 0 || m < 0 || n != m || memcmp(x, y, (size_t)n)) {
		fprintf(stderr, "fs-randread: [%" PRIu64 ", +%zu): got %zd (%s), want %zd\n", off,
			len, n, n < 0 ? strerror(errno) : "bytes differ", m);
		return -1;
	}
	return 0;
}

static void *worker(void *arg)
{
	uint64_t rng = seed * 0x9e3779b97f4a7c15ull + (uintptr_t)arg * 7919 + 1;
	int a = open(file, O_RDONLY | O_CLOEXEC), b = open(ref, O_RDONLY | O_CLOEXEC);
	uint8_t *x = malloc(MAX_LEN), *y = malloc(MAX_LEN);
	if (a < 0 || b < 0 || !x || !y) {
		atomic_fetch_add(&failures, 1);
	} else {
		for (unsigned i = 0; i < nreads; i++) {
			if (one(a, b, x, y, &rng) < 0) {
				atomic_fetch_add(&failures, 1);
				break;
			}
			atomic_fetch_add(&done, 1);
		}
	}
	free(x);
	free(y);
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
	return NULL;
}

int main(int argc, char **argv)
{
	unsigned threads = 16;
	int ch;
	while ((ch = getopt(argc, argv, "t:n:s:")) != -1) {
		switch (ch) {
		case 't':
			threads = (unsigned)atoi(optarg);
			break;
		case 'n':
			nreads = (unsigned)atoi(optarg);
			break;
		case 's':
			seed = (unsigned)atoi(optarg);
			break;
		default:
			return 2;
		}
	}
	if (argc - optind != 2 || threads < 1 || threads > 256) {
		fprintf(stderr,
			"usage: fs-randread [-t THREADS] [-n READS] [-s SEED] FILE REFERENCE\n");
		return 2;
	}
	file = argv[optind];
	ref = argv[optind + 1];
	struct stat st;
	if (stat(ref, &st) < 0) {
		fprintf(stderr, "fs-randread: %s: %s\n", ref, strerror(errno));
		return 1;
	}
	size = (uint64_t)st.st_size;
	pthread_t t[256];
	for (unsigned i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i);
	for (unsigned i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	if (atomic_load(&failures))
		return 1;
	printf("ok %u reads\n", atomic_load(&done));
	return 0;
}
