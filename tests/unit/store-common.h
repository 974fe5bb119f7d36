/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the store unit tests: temp stores and deterministic bytes. */
#ifndef AGFS_TEST_STORE_COMMON_H
#define AGFS_TEST_STORE_COMMON_H

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"
#include "tests/tap.h"

static char test_root[256];

static inline int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	chmod(p, 0755);
	return remove(p);
}

static inline void cleanup_root(void)
{
	if (test_root[0] && !getenv("AGFS_KEEP_TMP"))
		nftw(test_root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh temp directory; returns a path inside it for a store. */
static inline const char *temp_store_path(const char *name)
{
	static char path[512];
	if (!test_root[0]) {
		const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
		snprintf(test_root, sizeof(test_root), "%s/agfs-unit.XXXXXX", tmp);
		if (!mkdtemp(test_root))
			bail("mkdtemp: %s", strerror(errno));
		atexit(cleanup_root);
	}
	snprintf(path, sizeof(path), "%s/%s", test_root, name);
	return path;
}

static inline ag_store *new_store(const char *name)
{
	ag_store *s;
	int r = ag_store_open(temp_store_path(name), AG_WRITE | AG_CREATE, &s);
	if (r < 0)
		bail("cannot create store %s: %s", name, ag_strerror(r));
	return s;
}

/* Deterministic pseudo-random bytes (xorshift). */
static inline void fill_bytes(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

static inline int count_dir_entries(const char *store, const char *sub)
{
	char p[1024];
	snprintf(p, sizeof(p), "%s/%s", store, sub);
	DIR *d = opendir(p);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static inline int count_objects_cb(const char *rel, const ag_digest *d, uint64_t size, void *arg)
{
	(void)rel, (void)d, (void)size;
	(*(int *)arg)++;
	return 0;
}

static inline int count_objects(ag_store *s)
{
	int n = 0;
	if (ag_object_foreach(s, count_objects_cb, &n) < 0)
		return -1;
	return n;
}

static inline void object_path(ag_store *s, const ag_digest *d, char *out, size_t len)
{
	char rel[96];
	ag_object_relpath(d, rel, sizeof(rel));
	snprintf(out, len, "%s/%s", ag_store_path(s), rel);
}

#endif
