/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fs-stress [-t SECONDS] [-n READERS] [-s SEED] MOUNT LIST: fsx-style
 * readers.  LIST has one "<64 hex> <source path>" line per blob.  Each
 * reader picks a blob at random, opens MOUNT/blobs/sha256-<hex> (ENOENT is
 * counted, not an error: the blob may not be in the generation served
 * now), then compares ranges of random offset and length (1 byte to 1 MiB)
 * read with pread(2), and now and then through a shared mmap, with the
 * source, until the time is up.  Prints "bytes B reads R mismatches M
 * errors E enoent N" and exits 1 if anything differed or failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_BLOBS 4096
#define MAX_LEN	  (1u << 20)

struct blob {
	char hex[65];
	char *src;
};

static struct blob blobs[MAX_BLOBS];
static size_t nblobs;
static const char *mnt;
static time_t deadline;
static unsigned seed0 = 1;
static atomic_ullong bytes, reads, mismatches, errors, enoent;

static void fail(const char *what, const char *path, int err)
{
	atomic_fetch_add(&errors, 1);
	fprintf(stderr, "fs-stress: %s %s: %s\n", what, path, strerror(err));
}

static void compare(int fd, int sfd, off_t size, unsigned *seed, const char *path, char *a, char *b)
{
	for (int k = 0; k < 16 && time(NULL) < deadline; k++) {
		size_t len = 1 + (size_t)rand_r(seed) % MAX_LEN;
		off_t off =
			size ? (off_t)((((uint64_t)rand_r(seed) << 31) ^ (uint64_t)rand_r(seed)) %
				       (uint64_t)size)
			     : 0;
		ssize_t n = pread(fd, a, len, off), m = pread(sfd, b, len, off);
		atomic_fetch_add(&reads, 1);
		if (n < 0) {
			fail("pread", path, errno);
			return;
		}
		if (n != m || memcmp(a, b, (size_t)n)) {
			atomic_fetch_add(&mismatches, 1);
			fprintf(stderr, "fs-stress: %s: %zd bytes at %lld differ\n", path, n,
				(long long)off);
			return;
		}
		atomic_fetch_add(&bytes, (unsigned long long)n);
	}
}

static void compare_mmap(int fd, int sfd, off_t size, const char *path, char *b)
{
	size_t len = size < (off_t)MAX_LEN ? (size_t)size : MAX_LEN;
	if (len == 0)
		return;
	const char *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		fail("mmap", path, errno);
		return;
	}
	if (pread(sfd, b, len, 0) != (ssize_t)len || memcmp(p, b, len)) {
		atomic_fetch_add(&mismatches, 1);
		fprintf(stderr, "fs-stress: %s: mapped bytes differ\n", path);
	} else {
		atomic_fetch_add(&bytes, len);
	}
	munmap((void *)p, len);
}

static void *reader(void *arg)
{
	unsigned seed = seed0 * 7919u + (unsigned)(uintptr_t)arg;
	char *a = malloc(MAX_LEN), *b = malloc(MAX_LEN), path[4096];
	while (a && b && time(NULL) < deadline) {
		const struct blob *bl = &blobs[(size_t)rand_r(&seed) % nblobs];
		snprintf(path, sizeof(path), "%s/blobs/sha256-%s", mnt, bl->hex);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT)
				atomic_fetch_add(&enoent, 1);
			else
				fail("open", path, errno);
			continue;
		}
		int sfd = open(bl->src, O_RDONLY | O_CLOEXEC);
		struct stat st;
		if (sfd < 0 || fstat(sfd, &st) < 0) {
			fail("open", bl->src, errno);
		} else {
			compare(fd, sfd, st.st_size, &seed, path, a, b);
			if (rand_r(&seed) % 4 == 0)
				compare_mmap(fd, sfd, st.st_size, path, b);
		}
		if (sfd >= 0)
			close(sfd);
		close(fd);
	}
	free(a);
	free(b);
	return NULL;
}

static int load_list(const char *file)
{
	FILE *f = fopen(file, "re");
	char line[4200];
	while (f && nblobs < MAX_BLOBS && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (strlen(line) < 66 || line[64] != ' ')
			continue;
		memcpy(blobs[nblobs].hex, line, 64);
		blobs[nblobs].hex[64] = '\0';
		if (!(blobs[nblobs].src = strdup(line + 65)))
			break;
		nblobs++;
	}
	if (f)
		fclose(f);
	return nblobs ? 0 : -1;
}

int main(int argc, char **argv)
{
	long secs = 10, n = 8;
	int ch;
	while ((ch = getopt(argc, argv, "t:n:s:")) != -1) {
		if (ch == 't')
			secs = strtol(optarg, NULL, 10);
		else if (ch == 'n')
			n = strtol(optarg, NULL, 10);
		else if (ch == 's')
			seed0 = (unsigned)strtoul(optarg, NULL, 10);
		else
			return 2;
	}
	if (argc - optind != 2 || n < 1 || n > 256) {
		fprintf(stderr,
			"usage: fs-stress [-t SECONDS] [-n READERS] [-s SEED] MOUNT LIST\n");
		return 2;
	}
	mnt = argv[optind];
	if (load_list(argv[optind + 1]) < 0) {
		fprintf(stderr, "fs-stress: %s: no blobs listed\n", argv[optind + 1]);
		return 2;
	}
	deadline = time(NULL) + secs;
	pthread_t tid[256];
	for (long i = 0; i < n; i++)
		pthread_create(&tid[i], NULL, reader, (void *)(uintptr_t)i);
	for (long i = 0; i < n; i++)
		pthread_join(tid[i], NULL);
	printf("bytes %llu reads %llu mismatches %llu errors %llu enoent %llu\n",
	       atomic_load(&bytes), atomic_load(&reads), atomic_load(&mismatches),
	       atomic_load(&errors), atomic_load(&enoent));
	return atomic_load(&mismatches) || atomic_load(&errors) ? 1 : 0;
}
