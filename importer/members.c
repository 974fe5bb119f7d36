/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The member table: every regular file a source holds, with its size,
 * SHA-256, staged bytes and (for small metadata files) its content.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "importer/import.h"

struct imp_member *imp_member_add(struct imp_source *src, const char *path)
{
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
	struct imp_member *mb = &src->m[src->n];
	memset(mb, 0, sizeof(*mb));
	mb->path = strdup(path);
	if (!mb->path)
		return NULL;
	src->n++;
	src->sorted = false;
	return mb;
}

static int cmp_member(const void *a, const void *b)
{
	return strcmp(((const struct imp_member *)a)->path, ((const struct imp_member *)b)->path);
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
	/* A file may not also be a directory of another member ("a" and "a/b"). */
	for (size_t i = 1; i < src->n; i++) {
		size_t n = strlen(src->m[i - 1].path);
		if (strncmp(src->m[i - 1].path, src->m[i].path, n) == 0 && src->m[i].path[n] == '/')
			return imp_fail(e, IMP_REFUSED, -EEXIST, src->m[i].path,
					"its parent is also a file in the bundle");
	}
	return 0;
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

bool imp_is_metadata(const char *path)
{
	size_t n = strlen(path);

	if (has_prefix(path, "manifest/") || has_prefix(path, "signatures/") ||
	    has_prefix(path, "manifests/") || strstr(path, "/manifests/"))
		return true;
	return n > 4 && (strcmp(path + n - 4, ".sig") == 0 || strcmp(path + n - 4, ".asc") == 0);
}
