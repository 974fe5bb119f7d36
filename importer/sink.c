/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where a member's bytes go as they are read, in the same single pass:
 *   - a large member that may be published or copied: its own staging file
 *     in the store's tmp/ (SHA-256 and fs-verity tree computed by the store),
 *     written through the staging pipe;
 *   - a small model file (manifest or blob): its own staging file too,
 *     written and hashed on the stager thread (smallq.c), then parked (its
 *     descriptor closed) until it is published, so its bytes are written
 *     and hashed once;
 *   - a small model file once the parked stages hold IMP_PARKED_MAX of
 *     memory, a small other file (for --artifacts-dir), or a large one
 *     once the budget of descriptors is spent: the source's one
 *     spool file, hashed here, staged for real only when it is published,
 *     so a bundle of 1,000,000 files needs bounded memory and descriptors;
 *   - anything else (and everything in a dry run): only through a hash.
 * Small metadata files are also kept in memory for parsing.  What is staged
 * is bounded before it is written: the declared sizes of everything staged
 * must fit the free space found at the start, less a reserve.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "importer/import.h"
#include "importer/sink.h"

static int open_spool(ag_store *store)
{
	int dfd = ag_store_dirfd(store), fd;
	char name[64];

	fd = openat(dfd, "tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd < 0 ? -errno : fd;
	/* No O_TMPFILE here: a named file, unlinked at once (the next writer
	 * removes it from tmp/ if we die in between). */
	snprintf(name, sizeof(name), "tmp/agimport-spool.%ld", (long)getpid());
	fd = openat(dfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	unlinkat(dfd, name, 0);
	return fd;
}

int imp_staging_setup(struct imp_source *src, ag_store *store, struct imp_error *e)
{
	struct rlimit rl;
	struct statvfs vfs;
	uint64_t avail, reserve = 0;
	int r;

	/* Half of what is left of the descriptor limit, at most 512. */
	src->max_stages = 16;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 96)
		src->max_stages = (size_t)(rl.rlim_cur - 64) / 2;
	if (src->max_stages > 512)
		src->max_stages = 512;
	if ((r = ag_store_free_space(store, &avail)) < 0)
		return imp_fail(e, IMP_IO, r, ag_store_path(store),
				"its free space cannot be read (%s)", ag_strerror(r));
	if (fstatvfs(ag_store_dirfd(store), &vfs) == 0)
		reserve = (uint64_t)vfs.f_blocks * vfs.f_frsize / 50; /* 2 % */
	if (reserve > (256u << 20))
		reserve = 256u << 20;
	src->stage_avail = avail > reserve ? avail - reserve : 0;
	src->has_budget = true;
	if ((r = open_spool(store)) < 0)
		return imp_fail(e, IMP_IO, r, ag_store_path(store),
				"a spool file cannot be made in its tmp/ (%s)", ag_strerror(r));
	src->spool_fd = r;
	src->has_spool = true;
	return 0;
}

/* The declared size must fit what is left of the budget: checked before a
 * byte is staged, so a sparse bomb is refused by its header. */
static int charge(struct imp_source *src, struct imp_member *mb, int64_t hint, struct imp_error *e)
{
	uint64_t n = hint > 0 ? (uint64_t)hint : 0;

	if (!src->has_budget)
		return 0;
	if (src->staged_bytes + n > src->stage_avail)
		return imp_fail(e, IMP_IO, -ENOSPC, mb->path,
				"it declares %llu bytes, and with the %llu staged before it that "
				"exceeds the store's %llu free bytes (less a reserve)",
				(unsigned long long)n, (unsigned long long)src->staged_bytes,
				(unsigned long long)src->stage_avail);
	src->staged_bytes += n;
	return 0;
}

/* What a small member's parked stage holds in memory, at most: the stage
 * (and its job) and its fs-verity tree. */
static uint64_t parked_size(int64_t size)
{
	uint64_t n = size > 0 ? ((uint64_t)size + 4095) / 4096 : 0, blocks = 0;

	while (n > 1) {
		n = (n + 127) / 128;
		blocks += n;
	}
	return 1024 + blocks * 4096;
}

static int begin_stage(struct imp_sink *k, int64_t hint, struct imp_error *e)
{
	struct imp_source *src = k->src;
	struct imp_member *mb = k->mb;
	bool small = hint >= 0 && hint <= (int64_t)IMP_SPOOL_MAX;
	int r;

	if ((r = charge(src, mb, hint, e)) < 0)
		return r;
	/* Only what is to be published (models, or any file of an --ollama-dir)
	 * is staged on its own; a small other file an --artifacts-dir may
	 * receive is spooled: most such files are never used. */
	bool model =
		strncmp(mb->path, "models/", 7) == 0 || (src->ollama_root && !src->ollama_root[0]);
	if (small && model && src->parked_bytes < IMP_PARKED_MAX) {
		k->small = true;
		src->parked_bytes += parked_size(hint);
		if (k->rd->smallq) { /* gathered here, staged on the thread */
			k->qcap = hint > 0 ? (size_t)hint : 1;
			if (!(k->qbuf = malloc(k->qcap)))
				return imp_fail(e, IMP_IO, -ENOMEM, mb->path, "out of memory");
			return 0;
		}
		r = ag_stage_begin(k->rd->store, 0, &mb->stage);
		if (r < 0)
			return imp_fail(e, IMP_IO, r, mb->path, "staging failed (%s)",
					ag_strerror(r));
		return 0;
	}
	if (src->has_spool && (small || src->nstages >= src->max_stages)) {
		k->spool = true;
		mb->spooled = true;
		mb->spool_off = src->spool_len;
		return 0;
	}
	r = ag_stage_begin(k->rd->store, 0, &mb->stage);
	if (r < 0)
		return imp_fail(e, IMP_IO, r, mb->path, "staging failed (%s)", ag_strerror(r));
	src->nstages++;
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
	k->keep_max =
		strcmp(mb->path, "manifest/bundle.json") == 0 ? IMP_MAX_BUNDLE_JSON : IMP_MAX_SMALL;
	k->keep = imp_is_metadata(mb->path) && (size_hint < 0 || size_hint <= (int64_t)k->keep_max);
	if (rd->store && !rd->dry_run && imp_want_stage(src, mb->path)) {
		if ((r = begin_stage(k, size_hint, e)) < 0)
			return r;
		if (mb->stage || k->qbuf)
			return 0;
	}
	k->hash = ag_hash_new();
	if (!k->hash)
		return imp_fail(e, IMP_IO, -ENOMEM, mb->path, "out of memory");
	return 0;
}

static int keep_bytes(struct imp_sink *k, const void *buf, size_t len, struct imp_error *e)
{
	if (k->len + len > k->keep_max || k->src->meta_bytes + len > IMP_MAX_META) {
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

static int spool_write(struct imp_sink *k, const void *buf, size_t len)
{
	const char *p = buf;
	uint64_t off = k->mb->spool_off + k->size;

	while (len > 0) {
		ssize_t n = pwrite(k->src->spool_fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* A small member's bytes gathered for the staging thread; one that grows
 * beyond small after all is staged here from then on. */
static int gather(struct imp_sink *k, const void *buf, size_t len)
{
	size_t need = k->qlen + len;
	int r;

	if (need > k->qcap && need <= IMP_SPOOL_MAX) {
		size_t cap = k->qcap * 2 > need ? k->qcap * 2 : need;
		if (cap > IMP_SPOOL_MAX)
			cap = IMP_SPOOL_MAX;
		char *nb = realloc(k->qbuf, cap);
		if (!nb)
			return -ENOMEM;
		k->qbuf = nb;
		k->qcap = cap;
	}
	if (need <= k->qcap) {
		memcpy(k->qbuf + k->qlen, buf, len);
		k->qlen = need;
		return 0;
	}
	if ((r = ag_stage_begin(k->rd->store, 0, &k->mb->stage)) < 0 ||
	    (r = ag_stage_write(k->mb->stage, k->qbuf, k->qlen)) < 0)
		return r;
	free(k->qbuf);
	k->qbuf = NULL;
	return ag_stage_write(k->mb->stage, buf, len);
}

int imp_sink_write(struct imp_sink *k, const void *buf, size_t len, struct imp_error *e)
{
	int r = 0;

	if (len == 0)
		return 0;
	if (k->keep && (r = keep_bytes(k, buf, len, e)) < 0)
		return r;
	if (k->spool)
		r = spool_write(k, buf, len);
	else if (k->qbuf)
		r = gather(k, buf, len);
	else if (!k->hash)
		r = k->rd->pipe && !k->small ? imp_pipe_write(k->rd->pipe, k->mb->stage, buf, len)
					     : ag_stage_write(k->mb->stage, buf, len);
	if (r < 0)
		return imp_fail(e, IMP_IO, r, k->mb->path, "staging failed (%s)", ag_strerror(r));
	k->size += len;
	if (k->hash)
		ag_hash_update(k->hash, buf, len);
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
	if (k->spool)
		k->src->spool_len += k->size;
	if (k->hash) {
		ag_hash_final(k->hash, &mb->digest);
		ag_hash_free(k->hash);
		k->hash = NULL;
		return 0;
	}
	if (k->qbuf) {
		char *b = k->qbuf;
		k->qbuf = NULL;
		return imp_smallq_submit(k->rd->smallq, k->src, (size_t)(mb - k->src->m), b,
					 k->qlen, e);
	}
	ag_blob_info bi;
	int r = k->small ? 0 : imp_pipe_flush(k->rd->pipe);
	if (r == 0)
		r = ag_stage_end(mb->stage, &bi);
	if (r == 0 && k->small)
		r = ag_stage_park(mb->stage);
	if (r < 0)
		return imp_fail(e, IMP_IO, r, mb->path, "staging failed (%s)", ag_strerror(r));
	mb->digest = bi.digest;
	if (bi.size != k->size)
		return imp_fail(e, IMP_IO, -EIO, mb->path, "staging lost bytes");
	return 0;
}

void imp_sink_abort(struct imp_sink *k)
{
	if (!k->small)
		imp_pipe_flush(k->rd->pipe); /* the worker is done with the stage */
	ag_hash_free(k->hash);
	k->hash = NULL;
	free(k->data);
	k->data = NULL;
	free(k->qbuf);
	k->qbuf = NULL;
}

int imp_member_fill_fd(struct imp_member *mb, int fd, int64_t size, const struct imp_read *rd,
		       struct imp_source *src, struct imp_error *e)
{
	enum { BUFSZ = 1 << 20 };
	struct imp_sink k;
	_cleanup_free_ char *buf = malloc(BUFSZ);
	int r;

	if (!buf)
		return imp_fail(e, IMP_IO, -ENOMEM, mb->path, "out of memory");
	r = imp_sink_begin(&k, mb, rd, src, size, e);
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
