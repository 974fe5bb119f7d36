/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fs-loader [-t SECONDS] [-n THREADS] MOUNT: loads models the way Ollama
 * does, over and over: glob manifests/HOST/NS/MODEL/TAG, read a manifest,
 * then open every blob it names under blobs/ and read its first 64 KiB.
 * Also checks that manifests/ is never empty and versions/current always
 * resolves.  Prints "loads L enoent E errors X empty M nocurrent C" and
 * exits 0 (the test judges the counts); 2 on usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *mount_dir;
static time_t deadline;
static atomic_long loads, enoent, errors, empty, nocurrent;

static void note(int err)
{
	if (err == ENOENT)
		atomic_fetch_add(&enoent, 1);
	else
		atomic_fetch_add(&errors, 1);
}

static void load_blob(const char *hex)
{
	char path[4096];
	static __thread char buf[65536];
	snprintf(path, sizeof(path), "%s/blobs/sha256-%.64s", mount_dir, hex);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		note(errno);
		return;
	}
	if (read(fd, buf, sizeof(buf)) < 0)
		note(errno);
	close(fd);
}

static void load_manifest(const char *path)
{
	char text[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		note(errno);
		return;
	}
	ssize_t n = read(fd, text, sizeof(text) - 1);
	int e = errno;
	close(fd);
	if (n < 0) {
		note(e);
		return;
	}
	text[n] = '\0';
	for (char *p = strstr(text, "sha256:"); p; p = strstr(p + 7, "sha256:"))
		if (strlen(p + 7) >= 64)
			load_blob(p + 7);
	atomic_fetch_add(&loads, 1);
}

static void *run(void *arg)
{
	char pattern[4096], link[64], cur[4096];
	snprintf(pattern, sizeof(pattern), "%s/manifests/*/*/*/*", mount_dir);
	snprintf(cur, sizeof(cur), "%s/versions/current", mount_dir);
	(void)arg;
	while (time(NULL) < deadline) {
		glob_t g;
		int r = glob(pattern, 0, NULL, &g);
		if (r == GLOB_NOMATCH)
			atomic_fetch_add(&empty, 1);
		for (size_t i = 0; r == 0 && i < g.gl_pathc; i++)
			load_manifest(g.gl_pathv[i]);
		if (r == 0)
			globfree(&g);
		if (readlink(cur, link, sizeof(link)) < 0)
			atomic_fetch_add(&nocurrent, 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	long secs = 10, threads = 4;
	int ch;
	while ((ch = getopt(argc, argv, "t:n:")) != -1) {
		if (ch == 't')
			secs = strtol(optarg, NULL, 10);
		else if (ch == 'n')
			threads = strtol(optarg, NULL, 10);
		else
			return 2;
	}
	if (optind != argc - 1 || threads < 1 || threads > 64) {
		fprintf(stderr, "usage: fs-loader [-t SECONDS] [-n THREADS] MOUNT\n");
		return 2;
	}
	mount_dir = argv[optind];
	deadline = time(NULL) + secs;
	pthread_t tid[64];
	for (long i = 0; i < threads; i++)
		pthread_create(&tid[i], NULL, run, NULL);
	for (long i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	printf("loads %ld enoent %ld errors %ld empty %ld nocurrent %ld\n", atomic_load(&loads),
	       atomic_load(&enoent), atomic_load(&errors), atomic_load(&empty),
	       atomic_load(&nocurrent));
	return 0;
}
