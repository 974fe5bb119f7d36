/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tar stream, written reproducibly and compressed on every core.
 *
 * libarchive writes the tar itself (GNU format like `tar czf`, records of
 * 10240 bytes, owner root:root 0/0, the caller's modes and mtime) with no
 * compression filter; its output is cut into 4 MiB blocks that worker
 * threads compress, each into a gzip member (or a zstd frame) of its own, and
 * the main thread writes them out in order.  A gzip file of several members
 * is one valid gzip stream (RFC 1952, section 2.2: what gzip, tar and
 * libarchive read as the concatenation), so this is `tar czf`'s content
 * without its single-core compression.  The gzip headers carry no time.
 *
 * Everything goes to ".<name>.XXXXXX" in the output directory, fsynced,
 * and is renamed into place only when the bundle is complete; until then,
 * any failure unlinks it.
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundler/bundle.h"

#define BLOCK	    (4u << 20)
#define MAX_THREADS 16

enum slot_state { SLOT_FREE, SLOT_READY, SLOT_BUSY, SLOT_DONE };

struct slot {
	char *in;
	size_t inlen;
	char *out;
	size_t outlen, outcap;
	enum slot_state state;
	int err;
};

struct bnd_out {
	int dirfd, fd;
	char tmp[300], final[256];
	bool committed;
	enum bnd_comp comp;
	struct archive *a;
	ag_hash *hash;
	uint64_t bytes;
	int err; /* first write error */
	pthread_mutex_t mu;
	pthread_cond_t ready, done;
	pthread_t th[MAX_THREADS];
	unsigned nthreads;
	bool stop;
	struct slot *slots;
	size_t nslots;
	uint64_t filling, flushed; /* sequence numbers */
};

/* ---------- one block into one gzip member / zstd frame ---------- */

static la_ssize_t mem_write(struct archive *a, void *arg, const void *buf, size_t len)
{
	struct slot *s = arg;

	if (s->outlen + len > s->outcap) {
		size_t cap = (s->outlen + len) * 2;
		char *n = realloc(s->out, cap);
		if (!n) {
			archive_set_error(a, ENOMEM, "out of memory");
			return -1;
		}
		s->out = n;
		s->outcap = cap;
	}
	memcpy(s->out + s->outlen, buf, len);
	s->outlen += len;
	return (la_ssize_t)len;
}

static int compress_block(struct slot *s, enum bnd_comp comp)
{
	struct archive *a = archive_write_new();
	struct archive_entry *ae = archive_entry_new();
	int r = -ENOMEM;

	s->outlen = 0;
	if (!a || !ae)
		goto out;
	r = -EIO;
	if (archive_write_set_format_raw(a) != ARCHIVE_OK ||
	    (comp == BND_GZIP ? archive_write_add_filter_gzip(a)
			      : archive_write_add_filter_zstd(a)) != ARCHIVE_OK ||
	    (comp == BND_GZIP &&
	     archive_write_set_filter_option(a, "gzip", "timestamp", NULL) != ARCHIVE_OK) ||
	    archive_write_set_bytes_per_block(a, 0) != ARCHIVE_OK ||
	    archive_write_open(a, s, NULL, mem_write, NULL) != ARCHIVE_OK)
		goto out;
	archive_entry_set_pathname(ae, "block");
	archive_entry_set_filetype(ae, AE_IFREG);
	archive_entry_set_size(ae, (la_int64_t)s->inlen);
	if (archive_write_header(a, ae) != ARCHIVE_OK ||
	    archive_write_data(a, s->in, s->inlen) != (la_ssize_t)s->inlen ||
	    archive_write_close(a) != ARCHIVE_OK)
		goto out;
	r = 0;
out:
	archive_entry_free(ae);
	if (a)
		archive_write_free(a);
	return r;
}

static void *worker(void *arg)
{
	struct bnd_out *o = arg;

	pthread_mutex_lock(&o->mu);
	for (;;) {
		struct slot *s = NULL;
		for (uint64_t q = o->flushed; q < o->filling && !s; q++)
			if (o->slots[q % o->nslots].state == SLOT_READY)
				s = &o->slots[q % o->nslots];
		if (!s && o->stop)
			break;
		if (!s) {
			pthread_cond_wait(&o->ready, &o->mu);
			continue;
		}
		s->state = SLOT_BUSY;
		pthread_mutex_unlock(&o->mu);
		int r = compress_block(s, o->comp);
		pthread_mutex_lock(&o->mu);
		s->err = r;
		s->state = SLOT_DONE;
		pthread_cond_broadcast(&o->done);
	}
	pthread_mutex_unlock(&o->mu);
	return NULL;
}

/* ---------- ordered output ---------- */

static int write_all(struct bnd_out *o, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(o->fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		ag_hash_update(o->hash, buf, (size_t)n);
		o->bytes += (uint64_t)n;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Waits for the oldest block, writes it, frees its slot. */
static int drain_one(struct bnd_out *o)
{
	struct slot *s = &o->slots[o->flushed % o->nslots];
	int r;

	pthread_mutex_lock(&o->mu);
	while (s->state != SLOT_DONE)
		pthread_cond_wait(&o->done, &o->mu);
	pthread_mutex_unlock(&o->mu);
	r = s->err ? s->err : write_all(o, s->out, s->outlen);
	s->inlen = 0;
	pthread_mutex_lock(&o->mu);
	s->state = SLOT_FREE;
	o->flushed++;
	pthread_mutex_unlock(&o->mu);
	return r;
}

static int submit(struct bnd_out *o)
{
	struct slot *s = &o->slots[o->filling % o->nslots];

	if (s->inlen == 0)
		return 0;
	pthread_mutex_lock(&o->mu);
	s->state = SLOT_READY;
	o->filling++;
	pthread_cond_signal(&o->ready);
	pthread_mutex_unlock(&o->mu);
	if (o->filling - o->flushed == o->nslots)
		return drain_one(o);
	return 0;
}

/* libarchive's (uncompressed) output. */
static la_ssize_t tar_write(struct archive *a, void *arg, const void *buf, size_t len)
{
	struct bnd_out *o = arg;
	const char *p = buf;
	size_t left = len;

	while (left && o->err == 0) {
		struct slot *s = &o->slots[o->filling % o->nslots];
		size_t n = BLOCK - s->inlen < left ? BLOCK - s->inlen : left;
		memcpy(s->in + s->inlen, p, n);
		s->inlen += n;
		p += n;
		left -= n;
		if (s->inlen == BLOCK)
			o->err = submit(o);
	}
	if (o->err) {
		archive_set_error(a, -o->err, "write failed");
		return -1;
	}
	return (la_ssize_t)len;
}

/* ---------- the archive ---------- */

static int start_threads(struct bnd_out *o, unsigned n)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (n == 0)
		n = cpus > 0 ? (unsigned)cpus : 1;
	if (n > MAX_THREADS)
		n = MAX_THREADS;
	o->nslots = 2 * (size_t)n + 1;
	if (!(o->slots = calloc(o->nslots, sizeof(*o->slots))))
		return -ENOMEM;
	for (size_t i = 0; i < o->nslots; i++)
		if (!(o->slots[i].in = malloc(BLOCK)))
			return -ENOMEM;
	for (; o->nthreads < n; o->nthreads++)
		if (pthread_create(&o->th[o->nthreads], NULL, worker, o) != 0)
			return o->nthreads ? 0 : -EAGAIN;
	return 0;
}

/* ---------- a signal never leaves a half-written bundle ---------- */

static struct bnd_out *volatile pending; /* the temporary file to remove */

static void on_signal(int sig)
{
	struct bnd_out *o = pending;

	if (o)
		unlinkat(o->dirfd, o->tmp, 0); /* async-signal-safe */
	signal(sig, SIG_DFL);
	raise(sig);
}

static void watch_signals(struct bnd_out *o)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
	struct sigaction sa = {.sa_handler = on_signal};

	pending = o;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

int bnd_out_open(int dirfd, const char *final, enum bnd_comp comp, unsigned nthreads,
		 struct bnd_out **out)
{
	struct bnd_out *o = calloc(1, sizeof(*o));
	int r;

	if (!o)
		return -ENOMEM;
	o->fd = -1;
	o->dirfd = dirfd;
	o->comp = comp;
	pthread_mutex_init(&o->mu, NULL);
	pthread_cond_init(&o->ready, NULL);
	pthread_cond_init(&o->done, NULL);
	*out = o;
	snprintf(o->final, sizeof(o->final), "%s", final);
	snprintf(o->tmp, sizeof(o->tmp), ".%s.XXXXXX", final);
	for (int tries = 0; o->fd < 0 && tries < 100; tries++) {
		snprintf(o->tmp, sizeof(o->tmp), ".%s.%06x", final, (unsigned)random() & 0xffffff);
		o->fd = openat(dirfd, o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (o->fd < 0 && errno != EEXIST)
			return -errno;
	}
	if (o->fd < 0)
		return -EEXIST;
	flock(o->fd, LOCK_EX); /* held while alive: see bnd_remove_stale() */
	watch_signals(o);
	if (!(o->hash = ag_hash_new()) || !(o->a = archive_write_new()))
		return -ENOMEM;
	if ((r = start_threads(o, nthreads)) < 0)
		return r;
	if (archive_write_set_format_gnutar(o->a) != ARCHIVE_OK ||
	    archive_write_set_bytes_per_block(o->a, 10240) != ARCHIVE_OK ||
	    archive_write_open(o->a, o, NULL, tar_write, NULL) != ARCHIVE_OK)
		return -EIO;
	return 0;
}

int bnd_out_header(struct bnd_out *o, const struct bnd_member *m, int64_t mtime)
{
	struct archive_entry *ae = archive_entry_new();
	char path[IMP_MAX_PATH + 40];
	int r;

	if (!ae)
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s%s", m->path, m->is_dir ? "/" : "");
	archive_entry_set_pathname(ae, path);
	archive_entry_set_filetype(ae, m->is_dir ? AE_IFDIR : AE_IFREG);
	archive_entry_set_perm(ae, m->mode);
	archive_entry_set_size(ae, m->is_dir ? 0 : (la_int64_t)m->size);
	archive_entry_set_uid(ae, 0);
	archive_entry_set_gid(ae, 0);
	archive_entry_set_uname(ae, "root");
	archive_entry_set_gname(ae, "root");
	archive_entry_set_mtime(ae, (time_t)mtime, 0);
	r = archive_write_header(o->a, ae);
	archive_entry_free(ae);
	if (r != ARCHIVE_OK)
		return o->err ? o->err : -EIO;
	return 0;
}

int bnd_out_data(struct bnd_out *o, const void *buf, size_t len)
{
	la_ssize_t n = archive_write_data(o->a, buf, len);

	if (n != (la_ssize_t)len)
		return o->err ? o->err : -EIO;
	return 0;
}

static void stop_threads(struct bnd_out *o)
{
	pthread_mutex_lock(&o->mu);
	o->stop = true;
	pthread_cond_broadcast(&o->ready);
	pthread_mutex_unlock(&o->mu);
	for (unsigned i = 0; i < o->nthreads; i++)
		pthread_join(o->th[i], NULL);
	o->nthreads = 0;
}

int bnd_out_finish(struct bnd_out *o, ag_digest *digest, uint64_t *bytes)
{
	int r = 0;

	if (archive_write_close(o->a) != ARCHIVE_OK)
		r = o->err ? o->err : -EIO;
	if (r == 0)
		r = submit(o);
	while (o->flushed < o->filling) {
		int r2 = drain_one(o);
		r = r ? r : r2;
	}
	stop_threads(o);
	if (r == 0 && fsync(o->fd) < 0)
		r = -errno;
	ag_hash_final(o->hash, digest);
	*bytes = o->bytes;
	return r;
}

int bnd_out_commit(struct bnd_out *o, bool replace)
{
	int r = replace ? renameat(o->dirfd, o->tmp, o->dirfd, o->final)
			: renameat2(o->dirfd, o->tmp, o->dirfd, o->final, RENAME_NOREPLACE);

	if (r < 0)
		return -errno;
	o->committed = true;
	pending = NULL;
	return fsync(o->dirfd) < 0 ? -errno : 0;
}

void bnd_out_free(struct bnd_out *o)
{
	if (!o)
		return;
	o->err = o->err ? o->err : -ECANCELED; /* closing writes nothing more */
	if (o->nthreads) {
		/* an error path: let the workers finish what they hold */
		while (o->flushed < o->filling)
			drain_one(o);
		stop_threads(o);
	}
	if (o->a)
		archive_write_free(o->a); /* after the workers: no more callbacks */
	if (o->fd >= 0)
		close(o->fd);
	if (!o->committed && o->fd >= 0)
		unlinkat(o->dirfd, o->tmp, 0);
	pending = NULL;
	for (size_t i = 0; o->slots && i < o->nslots; i++) {
		free(o->slots[i].in);
		free(o->slots[i].out);
	}
	free(o->slots);
	ag_hash_free(o->hash);
	pthread_mutex_destroy(&o->mu);
	pthread_cond_destroy(&o->ready);
	pthread_cond_destroy(&o->done);
	free(o);
}

int bnd_write_file_atomic(int dirfd, const char *final, const void *buf, size_t len, bool replace)
{
	char tmp[300];
	int fd = -1, r = 0;

	for (int tries = 0; fd < 0 && tries < 100; tries++) {
		snprintf(tmp, sizeof(tmp), ".%s.%06x", final, (unsigned)random() & 0xffffff);
		fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0 && errno != EEXIST)
			return -errno;
	}
	if (fd < 0)
		return -EEXIST;
	flock(fd, LOCK_EX);
	for (size_t off = 0; r == 0 && off < len;) {
		ssize_t n = write(fd, (const char *)buf + off, len - off);
		if (n < 0 && errno != EINTR)
			r = -errno;
		else if (n > 0)
			off += (size_t)n;
	}
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r == 0 && (replace ? renameat(dirfd, tmp, dirfd, final)
			       : renameat2(dirfd, tmp, dirfd, final, RENAME_NOREPLACE)) < 0)
		r = -errno;
	if (r < 0)
		unlinkat(dirfd, tmp, 0);
	return r;
}

/* ".airgap-bundle-*" temporaries nobody holds a lock on: left by a run that
 * was killed (SIGKILL, power loss) before it could remove them. */
int bnd_remove_stale(int dirfd)
{
	int fd = dup(dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	int n = 0;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, ".airgap-bundle-", 15) != 0)
			continue;
		int tfd = openat(dirfd, de->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (tfd < 0)
			continue;
		struct stat st;
		if (fstat(tfd, &st) == 0 && S_ISREG(st.st_mode) &&
		    flock(tfd, LOCK_EX | LOCK_NB) == 0 && unlinkat(dirfd, de->d_name, 0) == 0)
			n++;
		close(tfd);
	}
	closedir(d);
	return n;
}
