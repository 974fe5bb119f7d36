/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fs-mmap [--populate] [--wait SECONDS] FILE: maps FILE shared and
 * read-only (as llama.cpp maps model weights; --populate adds MAP_POPULATE,
 * as llama.cpp does too), touches every page in a random order, and prints
 * the SHA-256 of the mapping's bytes in hex.  With --wait, the file stays
 * mapped and untouched for SECONDS first (so a test can change the store
 * under the mapping).  Exit 1 on any error (e.g. SIGBUS is fatal).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

int main(int argc, char **argv)
{
	int populate = argc >= 3 && !strcmp(argv[1], "--populate");
	argv += populate;
	argc -= populate;
	unsigned wait_s = 0;
	if (argc == 4 && !strcmp(argv[1], "--wait")) {
		wait_s = (unsigned)strtoul(argv[2], NULL, 10);
		argv += 2;
		argc -= 2;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: fs-mmap [--populate] [--wait SECONDS] FILE\n");
		return 2;
	}
	_cleanup_close_ int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "fs-mmap: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	size_t len = (size_t)st.st_size;
	const uint8_t *p =
		len ? mmap(NULL, len, PROT_READ, MAP_SHARED | (populate ? MAP_POPULATE : 0), fd, 0)
		    : NULL;
	if (len && p == MAP_FAILED) {
		fprintf(stderr, "fs-mmap: %s: mmap: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (wait_s)
		sleep(wait_s);
	/* fault the pages in a scattered order first, like a loader touching tensors */
	size_t pages = (len + 4095) / 4096;
	volatile uint8_t sink = 0;
	for (size_t i = 0, k = 0; i < pages; i++, k = (k + 7919) % pages)
		sink ^= p[k * 4096];
	(void)sink;
	ag_digest d;
	char hex[AG_HEX_LEN + 1];
	ag_sha256(p, len, &d);
	ag_digest_hex(&d, hex);
	printf("%s\n", hex);
	if (len)
		munmap((void *)p, len);
	return 0;
}
