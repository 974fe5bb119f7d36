/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Writing objects, the way git writes loose objects: stage into tmp/ while
 * hashing (SHA-256 of the whole and its fs-verity tree, one pass), rename into
 * objects/sha256/ab/<hex>.  An existing object is deduplication.  Every
 * object is durable before the transaction that references it commits.
 *
 * The fsync order: a large staged object (AG_SYNC_EACH_MIN and more) is
 * fsynced when its staging ends (its writeback started every few MiB while
 * it was written); a smaller one, the new directory entries and fan-out
 * directories are not synced one by one: the transaction that publishes
 * them marks itself unsynced, and ag_txn_sync() makes them all durable with
 * one syncfs() of the store's file system before the audit record is
 * written and before LMDB commits.  A power loss before that leaves objects
 * no record names, possibly torn: strays for gc, and re-hashed (and
 * replaced) by the next import that meets one.  A damaged object is only
 * ever replaced by fsynced bytes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/internal.h"

struct ag_stage {
	ag_store *s;
	int fd;
	char name[32]; /* in tmp/ */
	struct ag_treebuf tb;
	uint8_t *tree; /* kernel layout, after ag_stage_end */
	uint64_t tree_blocks;
	uint64_t flushed; /* bytes handed to writeback so far */
	ag_blob_info info;
	bool ended, published;
	bool unsynced; /* small: made durable by the publishing txn's syncfs */
	bool direct;   /* fd is in O_DIRECT mode now */
	bool buffered; /* O_DIRECT refused here: buffered writes only */
};

/* Objects below this size are made durable by their transaction's one
 * syncfs() instead of an fsync each. */
#define AG_SYNC_EACH_MIN (4u << 20)

void ag_object_relpath(const ag_digest *d, char *out, size_t outlen)
{
	char hex[AG_HEX_LEN + 1];
	ag_digest_hex(d, hex);
	snprintf(out, outlen, "objects/sha256/%.2s/%s", hex, hex);
}

/*
 * Every object open: never blocks (a FIFO put in an object's place would
 * otherwise hang the opener), never follows a symlink, and hands out only a
 * regular file.  Anything else in an object's place is tampering:
 * -AG_ECORRUPT.  -ENOENT when there is nothing there.
 */
int ag_object_open_rel(ag_store *s, const char *rel, int flags)
{
	int fd = openat(s->dirfd, rel, flags | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ELOOP || errno == ENXIO ? -AG_ECORRUPT : ag_errno();
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int r = ag_errno();
		close(fd);
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return -AG_ECORRUPT;
	}
	return fd;
}

int ag_object_open(ag_store *s, const ag_digest *d, int flags)
{
	char rel[96];
	ag_object_relpath(d, rel, sizeof(rel));
	return ag_object_open_rel(s, rel, flags);
}

/* The whole file hashed: 0 when it is size bytes that hash to d, -AG_EDIGEST
 * or -AG_ECORRUPT when not, another error when it could not be read. */
int ag_object_hash_check(int fd, uint64_t size, const ag_digest *d)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return ag_errno();
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != size)
		return -AG_ECORRUPT;
	size_t bufsz = 1u << 20;
	_cleanup_free_ uint8_t *buf = malloc(bufsz);
	ag_hash *h = ag_hash_new();
	if (!buf || !h) {
		ag_hash_free(h);
		return -ENOMEM;
	}
	uint64_t off = 0;
	int r = 0;
	/* The kernel reads ahead while we hash; what was hashed is dropped a
	 * little behind (pages just read may still sit in per-CPU batches),
	 * but only the pages this call brought in: a mount may be serving the
	 * others (store/pagecache.h). */
	struct ag_pagecache pc;
	ag_pagecache_init(&pc, fd, size);
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	while (off < size) {
		size_t want = size - off < bufsz ? (size_t)(size - off) : bufsz;
		if (off >= (16u << 20)) /* as read.c's read_span: the piece 16 MiB back */
			ag_pagecache_drop(&pc, off - (16u << 20), want);
		ag_pagecache_note(&pc, off, want);
		ssize_t n = ag_pread_all(fd, buf, want, off);
		if (n < 0) {
			r = (int)n;
			break;
		}
		if ((size_t)n != want) {
			r = -AG_ECORRUPT; /* shrank under us */
			break;
		}
		ag_hash_update(h, buf, want);
		off += want;
	}
	ag_digest got;
	ag_hash_final(h, &got);
	ag_hash_free(h);
	if (r == 0 && !ag_digest_eq(&got, d))
		r = -AG_EDIGEST;
	ag_pagecache_fini(&pc);
	return r;
}

int ag_stage_begin(ag_store *s, uint32_t chunk_size, ag_stage **out)
{
	if (!s->writer)
		return -EROFS;
	if (chunk_size == 0)
		chunk_size = AG_DEFAULT_CHUNK;
	if (!ag_chunk_size_ok(chunk_size))
		return -EINVAL;
	ag_stage *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->s = s;
	st->fd = -1;
	int rc = ag_treebuf_init(&st->tb);
	if (rc < 0) {
		ag_stage_free(st);
		return rc;
	}
	*out = st;
	return 0;
}

/* The staged file is made when the first bytes are written (or at the end,
 * for an empty blob), so a caller may hash on one thread what another
 * writes (AG_STAGE_DIGEST, AG_STAGE_DATA) from the start. */
static int stage_create(ag_stage *st)
{
	for (int tries = 0; tries < 100; tries++) {
		uint64_t rnd = ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)st ^
			       (uint64_t)ag_now() * 2654435761u ^ (uint64_t)tries * 40503u;
		snprintf(st->name, sizeof(st->name), "tmp/stage-%016llx", (unsigned long long)rnd);
		st->fd = openat(st->s->dirfd, st->name,
				O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (st->fd >= 0 || errno != EEXIST)
			break;
	}
	if (st->fd < 0) {
		int r = ag_errno();
		st->name[0] = '\0';
		return r;
	}
	return 0;
}

/* Start writeback of what was written so far every few MiB, so the fsync
 * at the end of a multi-GB blob has little left to do. */
#define WRITEBACK_STEP (8u << 20)
static void start_writeback(ag_stage *st)
{
	uint64_t written = st->info.size;
	if (written - st->flushed < WRITEBACK_STEP)
		return;
	sync_file_range(st->fd, (off_t)st->flushed, (off_t)(written - st->flushed),
			SYNC_FILE_RANGE_WRITE);
	st->flushed = written;
}

/* Large aligned pieces go to the disk with O_DIRECT: no copy into the page
 * cache (and no pages to allocate and write back), the object's pages are
 * not needed again by the import.  Anything else, or a file system that
 * refuses O_DIRECT, is written through the page cache. */
#define DIRECT_MIN (256u << 10)
static bool set_direct(ag_stage *st, bool on)
{
	int fl = fcntl(st->fd, F_GETFL);
	if (fl < 0 || fcntl(st->fd, F_SETFL, on ? fl | O_DIRECT : fl & ~O_DIRECT) < 0)
		return false;
	st->direct = on;
	return true;
}

static int stage_data(ag_stage *st, const uint8_t *buf, size_t len)
{
	int r;
	if (!st->name[0] && (r = stage_create(st)) < 0)
		return r;
	bool aligned = len >= DIRECT_MIN && len % AG_ALIGN == 0 && (uintptr_t)buf % AG_ALIGN == 0 &&
		       st->info.size % AG_ALIGN == 0;
	if (aligned && !st->direct && !st->buffered && !set_direct(st, true))
		st->buffered = true;
	if (!aligned && st->direct && !set_direct(st, false))
		return ag_errno();
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(st->fd, buf + done, len - done, (off_t)(st->info.size + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EINVAL && st->direct) { /* refused after all */
			if (!set_direct(st, false))
				return ag_errno();
			st->buffered = true;
			continue;
		}
		if (n < 0)
			return ag_errno();
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	st->info.size += len;
	if (!st->direct)
		start_writeback(st);
	return 0;
}

int ag_stage_write_parts(ag_stage *st, const void *buf, size_t len, unsigned parts)
{
	int r = 0;
	if (st->ended)
		return -EINVAL;
	if ((parts & AG_STAGE_DATA) && (r = stage_data(st, buf, len)) < 0)
		return r;
	if (parts & AG_STAGE_DIGEST)
		ag_treebuf_update_whole(&st->tb, buf, len);
	if (parts & AG_STAGE_TREE)
		r = ag_treebuf_update_tree(&st->tb, buf, len);
	return r;
}

int ag_stage_write(ag_stage *st, const void *buf, size_t len)
{
	return ag_stage_write_parts(st, buf, len, AG_STAGE_ALL);
}

int ag_stage_end(ag_stage *st, ag_blob_info *info)
{
	int r;
	if (st->ended)
		return -EINVAL;
	if (st->info.size != st->tb.size)
		return -EIO;				/* a part missed a piece */
	if (!st->name[0] && (r = stage_create(st)) < 0) /* an empty blob */
		return r;
	st->unsynced = st->info.size < AG_SYNC_EACH_MIN;
	if (!st->unsynced && fsync(st->fd) < 0)
		return ag_errno();
	if ((r = ag_treebuf_final(&st->tb, &st->info, &st->tree, &st->tree_blocks)) < 0)
		return r;
	ag_treebuf_free(&st->tb); /* the tree is in st->tree now */
	st->info.created = ag_now();
	st->ended = true;
	if (info)
		*info = st->info;
	return 0;
}

int ag_stage_park(ag_stage *st)
{
	if (!st->ended || st->published)
		return -EINVAL;
	if (st->fd >= 0) {
		if (fchmod(st->fd, 0444) < 0)
			return ag_errno();
		close(st->fd);
		st->fd = -1;
	}
	return 0;
}

int ag_stage_open_read(ag_stage *st)
{
	if (!st->ended || st->published)
		return -EINVAL;
	int fd = openat(st->s->dirfd, st->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	return fd < 0 ? ag_errno() : fd;
}

/* Moves the staged file to rel, never over an existing name: a rename
 * (one system call, no staging name left behind), or, where the file
 * system has no RENAME_NOREPLACE, a link and an unlink.  0, or -EEXIST,
 * -ENOENT (no fan-out directory yet) or another error.  The object is in
 * place once the link is made: should the unlink then fail, the staging
 * name left in tmp/ is swept by the next writer, as after a kill. */
static int place(ag_stage *st, const char *rel)
{
	int dfd = st->s->dirfd;
	if (renameat2(dfd, st->name, dfd, rel, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return ag_errno();
	if (linkat(dfd, st->name, dfd, rel, 0) < 0)
		return ag_errno();
	unlinkat(dfd, st->name, 0);
	return 0;
}

/* Places the staged file at rel: AG_PUBLISH_NEW, or, when an object of that
 * name exists, AG_PUBLISH_DEDUP if it hashes to the digest and
 * AG_PUBLISH_REPAIRED after replacing it with the verified staged bytes.
 * The fan-out directory objects/sha256/ab/ is made (durable once t is
 * synced) only when the first placing finds none, so the common case is
 * one system call. */
static int link_object(ag_stage *st, ag_txn *t, const char *rel)
{
	ag_store *s = st->s;
	int r = place(st, rel);
	if (r == -ENOENT) {
		char dir[32];
		snprintf(dir, sizeof(dir), "%.*s", (int)(strrchr(rel, '/') - rel), rel);
		if (mkdirat(s->dirfd, dir, 0755) == 0)
			t->unsynced = true;
		else if (errno != EEXIST)
			return ag_errno();
		r = place(st, rel);
	}
	if (r == 0) {
		st->name[0] = '\0'; /* moved: nothing left to remove in tmp/ */
		return AG_PUBLISH_NEW;
	}
	if (r != -EEXIST)
		return r;
	int fd = ag_object_open_rel(s, rel, O_RDONLY);
	r = fd;
	if (fd >= 0) {
		r = ag_object_hash_check(fd, st->info.size, &st->info.digest);
		close(fd);
	}
	if (r == 0)
		return AG_PUBLISH_DEDUP;
	/* Could not check it (no memory, a disk error): say so; the import
	 * fails and leaves the store as it was, never calls it damaged. */
	if (r != -AG_EDIGEST && r != -AG_ECORRUPT && r != -EBADMSG)
		return r;
	/* Damaged, truncated, or not a regular file: the staged bytes are
	 * verified, so they replace it atomically, durable before they do (the
	 * directory is synced with the transaction). */
	if (st->unsynced) {
		int sfd = st->fd >= 0 ? st->fd : ag_stage_open_read(st);
		r = sfd < 0 ? sfd : fsync(sfd) < 0 ? ag_errno() : 0;
		if (sfd >= 0 && sfd != st->fd)
			close(sfd);
		if (r < 0)
			return r;
	}
	st->unsynced = false;
	if (renameat(s->dirfd, st->name, s->dirfd, rel) < 0)
		return ag_errno();
	st->name[0] = '\0';
	return AG_PUBLISH_REPAIRED;
}

/* The blob record: an existing sound one whose tree is the staged one is
 * kept (first-import time stays; equal content, equal tree); a missing one
 * is written, a damaged one (record or tree) rewritten (1). */
static int record_blob(ag_stage *st, ag_txn *t)
{
	AG_TXN_GUARD(t);
	ag_blob_info old = {0};
	int r = ag_blob_rec_get(t->txn, t->s, &st->info.digest, &old, true);
	if (r == 0 && old.size == st->info.size && ag_digest_eq(&old.root, &st->info.root) &&
	    ag_digest_eq(&old.fsverity, &st->info.fsverity)) {
		r = ag_tree_same(t, &st->info.digest, st->tree, st->tree_blocks);
		if (r <= 0)
			return r;
		r = -EBADMSG; /* a tree block differs: rewrite it */
	} else if (r == 0) {
		r = -AG_ECORRUPT;
	}
	if (r != -ENOENT && r != -AG_ECORRUPT && r != -EBADMSG)
		return r;
	if (r != -ENOENT)
		st->info.created = old.created ? old.created : st->info.created;
	int put = ag_blob_rec_put(t, &st->info, st->tree, st->tree_blocks);
	return put < 0 ? put : r == -ENOENT ? 0 : 1;
}

int ag_stage_publish(ag_stage *st, ag_txn *t, const ag_digest *expected, bool *was_new)
{
	enum ag_publish how;
	int r = ag_stage_publish_ex(st, t, expected, &how);
	if (r == 0 && was_new)
		*was_new = how == AG_PUBLISH_NEW;
	return r;
}

int ag_stage_publish_ex(ag_stage *st, ag_txn *t, const ag_digest *expected, enum ag_publish *how)
{
	if (!st->ended || st->published || t->s != st->s)
		return -EINVAL;
	if (expected && !ag_digest_eq(expected, &st->info.digest))
		return -AG_EDIGEST;
	char rel[96];
	int r;
	if (st->fd >= 0 && fchmod(st->fd, 0444) < 0) /* a parked one is read-only already */
		return ag_errno();
	ag_object_relpath(&st->info.digest, rel, sizeof(rel));
	int placed = link_object(st, t, rel);
	if (placed < 0)
		return placed;
	if (st->name[0]) /* deduplicated: the staged copy is not needed */
		unlinkat(st->s->dirfd, st->name, 0);
	st->published = true;
	t->unsynced = true; /* the new entry (and a small object's bytes) */
	if (placed == AG_PUBLISH_NEW && (r = ag_txn_note_created(t, &st->info.digest)) < 0)
		return r;
	if ((r = record_blob(st, t)) < 0)
		return r;
	if (r == 1 && placed == AG_PUBLISH_DEDUP)
		placed = AG_PUBLISH_REPAIRED; /* the object was sound, its record was not */
	if (how)
		*how = (enum ag_publish)placed;
	return 0;
}

void ag_stage_free(ag_stage *st)
{
	if (!st)
		return;
	if (st->fd >= 0)
		close(st->fd);
	if (st->name[0] && !st->published)
		unlinkat(st->s->dirfd, st->name, 0);
	ag_treebuf_free(&st->tb);
	free(st->tree);
	free(st);
}

static int put_common(ag_store *s, ag_stage *st, const ag_digest *expected, ag_blob_info *out)
{
	_cleanup_txn_ ag_txn *t = NULL;
	int r = ag_stage_end(st, out);
	if (r < 0)
		return r;
	if (expected && !ag_digest_eq(expected, &st->info.digest))
		return -AG_EDIGEST;
	if ((r = ag_txn_begin(s, &t)) < 0)
		return r;
	if ((r = ag_stage_publish(st, t, expected, NULL)) < 0)
		return r;
	r = ag_txn_commit(TAKE_PTR(t));
	if (r == 0 && out)
		r = ag_blob_lookup(s, &st->info.digest, out);
	return r;
}

int ag_put_fd(ag_store *s, int fd, uint32_t chunk_size, const ag_digest *expected,
	      ag_blob_info *out)
{
	_cleanup_stage_ ag_stage *st = NULL;
	int r = ag_stage_begin(s, chunk_size, &st);
	if (r < 0)
		return r;
	size_t bufsz = 1 << 20;
	_cleanup_free_ uint8_t *buf = malloc(bufsz);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read(fd, buf, bufsz);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return ag_errno();
		if (n == 0)
			break;
		if ((r = ag_stage_write(st, buf, (size_t)n)) < 0)
			return r;
	}
	return put_common(s, st, expected, out);
}

int ag_put_buf(ag_store *s, const void *buf, size_t len, uint32_t chunk_size,
	       const ag_digest *expected, ag_blob_info *out)
{
	_cleanup_stage_ ag_stage *st = NULL;
	int r = ag_stage_begin(s, chunk_size, &st);
	if (r < 0 || (r = ag_stage_write(st, buf, len)) < 0)
		return r;
	return put_common(s, st, expected, out);
}

int ag_object_unlink(ag_store *s, const ag_digest *d)
{
	char rel[96];
	ag_object_relpath(d, rel, sizeof(rel));
	return ag_object_unlink_path(s, rel);
}

int ag_object_unlink_path(ag_store *s, const char *relpath)
{
	if (!s->writer)
		return -EROFS;
	if (strncmp(relpath, "objects/", 8) || strstr(relpath, ".."))
		return -EINVAL;
	if (unlinkat(s->dirfd, relpath, 0) < 0)
		return ag_errno();
	return 0;
}

static int walk_fanout(ag_store *s, const char *sub,
		       int (*cb)(const char *, const ag_digest *, uint64_t, void *), void *arg)
{
	char dir[64];
	snprintf(dir, sizeof(dir), "objects/sha256/%s", sub);
	int fd = openat(s->dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return ag_errno();
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return ag_errno();
	}
	struct dirent *e;
	int r = 0;
	/* errno = 0 before each readdir: NULL with errno set is a read error,
	 * not the end of the directory. */
	while (r == 0 && (errno = 0, e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char rel[400];
		snprintf(rel, sizeof(rel), "%s/%s", dir, e->d_name);
		struct stat st;
		if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT) /* removed meanwhile is fine */
				r = ag_errno();
			continue;
		}
		ag_digest dg;
		bool valid = S_ISREG(st.st_mode) &&
			     ag_digest_parse(e->d_name, strlen(e->d_name), &dg) == 0 &&
			     !strncmp(e->d_name, sub, 2) && strlen(sub) == 2;
		r = cb(rel, valid ? &dg : NULL, (uint64_t)st.st_size, arg);
	}
	if (r == 0 && !e && errno)
		r = ag_errno();
	closedir(d);
	return r;
}

int ag_object_foreach(ag_store *s,
		      int (*cb)(const char *relpath, const ag_digest *d, uint64_t size, void *arg),
		      void *arg)
{
	int fd =
		openat(s->dirfd, "objects/sha256", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return ag_errno();
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return ag_errno();
	}
	struct dirent *e;
	int r = 0;
	while (r == 0 && (errno = 0, e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT)
				r = ag_errno();
			continue;
		}
		if (S_ISDIR(st.st_mode) && strlen(e->d_name) < 32) {
			r = walk_fanout(s, e->d_name, cb, arg);
		} else {
			char rel[400];
			snprintf(rel, sizeof(rel), "objects/sha256/%s", e->d_name);
			r = cb(rel, NULL, (uint64_t)st.st_size, arg);
		}
	}
	if (r == 0 && !e && errno)
		r = ag_errno();
	closedir(d);
	return r;
}
