/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fs-retry [-n N] [-o OFFSET] [-l LEN] [-w SECONDS] FILE: a plain reader
 * that retries a failing pread(2) of the same range N times (default 40),
 * as a careful program does.  With -w it first waits, the file open, for
 * SECONDS (so a test can change the store under an open descriptor), then
 * reads.  Prints "ok" or "eio N" (the failed reads); exits 0 unless the
 * file cannot be opened.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long n = 40, len = 4096, wait_s = 0;
	long long off = 0;
	int ch;
	while ((ch = getopt(argc, argv, "n:o:l:w:")) != -1) {
		switch (ch) {
		case 'n':
			n = strtol(optarg, NULL, 0);
			break;
		case 'o':
			off = strtoll(optarg, NULL, 0);
			break;
		case 'l':
			len = strtol(optarg, NULL, 0);
			break;
		case 'w':
			wait_s = strtol(optarg, NULL, 0);
			break;
		default:
			return 2;
		}
	}
	if (optind != argc - 1 || len <= 0 || n <= 0) {
		fprintf(stderr, "usage: fs-retry [-n N] [-o OFFSET] [-l LEN] [-w S] FILE\n");
		return 2;
	}
	int fd = open(argv[optind], O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "fs-retry: %s: %s\n", argv[optind], strerror(errno));
		return 1;
	}
	if (wait_s)
		sleep((unsigned)wait_s);
	char *buf = malloc((size_t)len);
	if (!buf)
		return 1;
	long failed = 0, other = 0;
	for (long i = 0; i < n; i++) {
		ssize_t r = pread(fd, buf, (size_t)len, (off_t)off);
		if (r < 0 && errno == EIO)
			failed++;
		else if (r < 0)
			other++;
		else
			break; /* read: done */
	}
	if (failed || other)
		printf("eio %ld%s\n", failed, other ? " (and other errors)" : "");
	else
		printf("ok\n");
	free(buf);
	close(fd);
	return 0;
}
