/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The member table: every regular file a source holds, with its size,
 * SHA-256, staged bytes and (for small metadata files) its content.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "importer/import.h"

struct imp_member *imp_member_add(struct imp_source *src, const char *path)
{
	size_t plen = strlen(path);

	if (src->n == src->cap) {
		if (src->n >= IMP_MAX_MEMBERS) {
			errno = E2BIG;
			return NULL;
		}
		size_t ncap = src->cap ? src->cap * 2 : 64;
		struct imp_member *nm = realloc(src->m, ncap * sizeof(*nm));
		if (!nm)
			return NULL;
		src->m = nm;
		src->cap = ncap;
	}
	if (src->path_bytes + plen > IMP_MAX_PATH_BYTES) {
		errno = E2BIG;
		return NULL;
	}
	struct imp_member *mb = &src->m[src->n];
	memset(mb, 0, sizeof(*mb));
	mb->path = strdup(path);
	if (!mb->path)
		return NULL;
	src->path_bytes += plen;
	src->n++;
	src->sorted = false;
	return mb;
}

static int cmp_member(const void *a, const void *b)
{
	return strcmp(((const struct imp_member *)a)->path, ((const struct imp_member *)b)->path);
}

/* A file may not also be a directory of another member ("x" and "x/z"),
 * whatever sorts between them ("x-y"): every parent of every path is
 * looked up. */
static int check_parents(struct imp_source *src, struct imp_error *e)
{
	char buf[IMP_MAX_PATH + 1];

	for (size_t i = 0; i < src->n; i++) {
		const char *p = src->m[i].path;
		for (const char *s = strchr(p, '/'); s; s = strchr(s + 1, '/')) {
			snprintf(buf, sizeof(buf), "%.*s", (int)(s - p), p);
			if (imp_member_find(src, buf))
				return imp_fail(e, IMP_REFUSED, -EEXIST, p,
						"its parent %s is also a file in the bundle", buf);
		}
	}
	return 0;
}

int imp_members_seal(struct imp_source *src, struct imp_error *e)
{
	if (src->n > 1)
		qsort(src->m, src->n, sizeof(*src->m), cmp_member);
	src->sorted = true;
	for (size_t i = 1; i < src->n; i++) {
		if (strcmp(src->m[i - 1].path, src->m[i].path) == 0)
			return imp_fail(e, IMP_REFUSED, -EEXIST, src->m[i].path,
					"it appears twice in the bundle");
	}
	return check_parents(src, e);
}

struct imp_member *imp_member_find(struct imp_source *src, const char *path)
{
	struct imp_member key = {.path = (char *)path};

	if (!src->sorted || src->n == 0)
		return NULL;
	return bsearch(&key, src->m, src->n, sizeof(*src->m), cmp_member);
}

void imp_source_free(struct imp_source *src)
{
	for (size_t i = 0; i < src->n; i++) {
		ag_stage_free(src->m[i].stage);
		free(src->m[i].path);
		free(src->m[i].data);
	}
	if (src->has_spool)
		close(src->spool_fd);
	free(src->m);
	free(src->name);
	free(src->ollama_root);
	json_decref(src->skipped);
	imp_delta_free(src->delta);
	memset(src, 0, sizeof(*src));
}

static bool has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

/* Kept in memory (bounded by IMP_MAX_META): bundle.json and its signature,
 * the .sha256 lists, and what may be a manifest or its .sig; nothing else,
 * so junk elsewhere costs no memory. */
bool imp_is_metadata(const char *path)
{
	return has_prefix(path, "manifest/") || has_prefix(path, "signatures/") ||
	       has_prefix(path, "manifests/") ||
	       (has_prefix(path, "models/") && strstr(path, "/manifests/"));
}

/*
 * Staged are only bytes that may be published or copied: under models/ the
 * Ollama tree's manifests and blobs (a manifest may be named "v1.sig"), in
 * an --ollama-dir every file read, and outside models/ only when an
 * --artifacts-dir may receive it.  Everything else is hashed and dropped.
 */
bool imp_want_stage(const struct imp_source *src, const char *path)
{
	if (src->ollama_root && !src->ollama_root[0])
		return true; /* --ollama-dir: manifests and the blobs they name */
	if (has_prefix(path, "models/"))
		return strstr(path, "/manifests/") || strstr(path, "/blobs/");
	if (has_prefix(path, "manifest/") || has_prefix(path, "signatures/"))
		return false;
	return src->stage_all;
}

bool imp_member_signed(const struct imp_member *mb, bool signed_source)
{
	return signed_source && (mb->bound & IMP_BIND_SIGNED);
}

int imp_member_open_staged(struct imp_source *src, struct imp_member *mb, uint64_t *off)
{
	*off = 0;
	if (mb->stage)
		return ag_stage_open_read(mb->stage);
	if (!mb->spooled || !src->has_spool)
		return -EINVAL;
	*off = mb->spool_off;
	int fd = fcntl(src->spool_fd, F_DUPFD_CLOEXEC, 3);
	return fd < 0 ? -errno : fd;
}
