/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where a member's bytes go as they are read, in the same single pass:
 * into the store's staging (SHA-256 and chunk table computed by the store),
 * or only through a hash in a dry run; small metadata files are also kept in
 * memory for parsing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "importer/import.h"
#include "importer/sink.h"

static bool want_stage(const char *path)
{
	size_t n = strlen(path);

	if (strncmp(path, "manifest/", 9) == 0 || strncmp(path, "signatures/", 11) == 0)
		return false;
	return !(n > 4 && (strcmp(path + n - 4, ".sig") == 0 || strcmp(path + n - 4, ".asc") == 0));
}

static int check_space(const struct imp_read *rd, struct imp_member *mb, uint64_t size,
		       struct imp_error *e)
{
	uint64_t avail;
	int r;

	if (!rd->store)
		return 0;
	r = ag_store_free_space(rd->store, &avail);
	if (r < 0)
		return imp_fail(e, IMP_IO, r, mb->path, "the store's free space is unknown (%s)",
				ag_strerror(r));
	if (size > avail)
		return imp_fail(e, IMP_IO, -ENOSPC, mb->path,
				"it needs %llu bytes and the store has %llu free",
				(unsigned long long)size, (unsigned long long)avail);
	return 0;
}

int imp_sink_begin(struct imp_sink *k, struct imp_member *mb, const struct imp_read *rd,
		   struct imp_source *src, int64_t size_hint, struct imp_error *e)
{
	int r;

	memset(k, 0, sizeof(*k));
	k->mb = mb;
	k->src = src;
	k->rd = rd;
	if (size_hint > 0 && (r = check_space(rd, mb, (uint64_t)size_hint, e)) < 0)
		return r;
	k->keep = imp_is_metadata(mb->path) && (size_hint < 0 || size_hint <= IMP_MAX_SMALL);
	if (rd->store && !rd->dry_run && want_stage(mb->path)) {
		r = ag_stage_begin(rd->store, 0, &mb->stage);
		if (r < 0)
			return imp_fail(e, IMP_IO, r, mb->path, "staging failed (%s)",
					ag_strerror(r));
	} else {
		k->hash = ag_hash_new();
		if (!k->hash)
			return imp_fail(e, IMP_IO, -ENOMEM, mb->path, "out of memory");
	}
	return 0;
}

static int keep_bytes(struct imp_sink *k, const void *buf, size_t len, struct imp_error *e)
{
	if (k->len + len > IMP_MAX_SMALL || k->src->meta_bytes + len > IMP_MAX_META) {
		/* Too large to be metadata: hashed and staged, not parsed. */
		free(k->data);
		k->data = NULL;
		k->keep = false;
		return 0;
	}
	char *nd = realloc(k->data, k->len + len + 1);
	if (!nd)
		return imp_fail(e, IMP_IO, -ENOMEM, k->mb->path, "out of memory");
	memcpy(nd + k->len, buf, len);
	k->data = nd;
	k->len += len;
	k->data[k->len] = '\0';
	k->src->meta_bytes += len;
	return 0;
}

int imp_sink_write(struct imp_sink *k, const void *buf, size_t len, struct imp_error *e)
{
	int r;

	if (len == 0)
		return 0;
	if (k->keep && (r = keep_bytes(k, buf, len, e)) < 0)
		return r;
	k->size += len;
	if (k->hash) {
		ag_hash_update(k->hash, buf, len);
		return 0;
	}
	r = k->rd->pipe ? imp_pipe_write(k->rd->pipe, k->mb->stage, buf, len)
			: ag_stage_write(k->mb->stage, buf, len);
	if (r < 0)
		return imp_fail(e, IMP_IO, r, k->mb->path, "staging failed (%s)", ag_strerror(r));
	return 0;
}

int imp_sink_end(struct imp_sink *k, struct imp_error *e)
{
	struct imp_member *mb = k->mb;

	mb->size = k->size;
	if (k->keep) {
		if (!k->data)
			k->data = calloc(1, 1);
		mb->data = k->data;
		k->data = NULL;
	}
	if (k->hash) {
		ag_hash_final(k->hash, &mb->digest);
		ag_hash_free(k->hash);
		k->hash = NULL;
		return 0;
	}
	ag_blob_info bi;
	int r = imp_pipe_flush(k->rd->pipe);
	if (r == 0)
		r = ag_stage_end(mb->stage, &bi);
	if (r < 0)
		return imp_fail(e, IMP_IO, r, mb->path, "staging failed (%s)", ag_strerror(r));
	mb->digest = bi.digest;
	if (bi.size != k->size)
		return imp_fail(e, IMP_IO, -EIO, mb->path, "staging lost bytes");
	return 0;
}

void imp_sink_abort(struct imp_sink *k)
{
	imp_pipe_flush(k->rd->pipe); /* the worker is done with the stage */
	ag_hash_free(k->hash);
	k->hash = NULL;
	free(k->data);
	k->data = NULL;
}

int imp_member_fill_fd(struct imp_member *mb, int fd, const struct imp_read *rd,
		       struct imp_source *src, struct imp_error *e)
{
	enum { BUFSZ = 1 << 20 };
	struct imp_sink k;
	struct stat st;
	_cleanup_free_ char *buf = malloc(BUFSZ);
	int r;

	if (!buf)
		return imp_fail(e, IMP_IO, -ENOMEM, mb->path, "out of memory");
	if (fstat(fd, &st) < 0)
		return imp_fail(e, IMP_IO, -errno, mb->path, "it cannot be read (%m)");
	r = imp_sink_begin(&k, mb, rd, src, st.st_size, e);
	while (r == 0) {
		ssize_t n = read(fd, buf, BUFSZ);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = imp_fail(e, IMP_IO, -errno, mb->path, "it cannot be read (%m)");
		if (n <= 0)
			break;
		imp_progress_add(rd->progress, (uint64_t)n);
		r = imp_sink_write(&k, buf, (size_t)n, e);
	}
	if (r == 0)
		return imp_sink_end(&k, e);
	imp_sink_abort(&k);
	return r;
}
