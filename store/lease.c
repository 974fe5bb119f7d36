/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Leases and pins: what live readers of the store still need, so gc keeps it
 * (store.h explains the guard and the ordering).
 *
 *   $STORE/leases/.guard            flock()ed: holders shared, gc exclusive
 *   $STORE/leases/<name>.lock       flock()ed by the holder for its whole life
 *   $STORE/leases/<name>            the content, replaced by rename:
 *                                     agfs-lease 1
 *                                     holder <what> pid <pid>
 *                                     gen <id>            (any number)
 *                                     blob <64 hex>       (any number)
 *
 * A lease is never fsynced: it only matters while its holder lives, and a
 * crash (of the holder or the machine) makes it stale anyway.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/internal.h"

#define LEASE_DIR   "leases"
#define LEASE_GUARD "leases/.guard"
#define LEASE_MAGIC "agfs-lease 1\n"
#define LEASE_MAX   (64u << 20) /* a lease larger than this is junk */

struct ag_lease {
	ag_store *s;
	char name[64]; /* leases/<name> */
	int lockfd;
};

static int lease_dir(ag_store *s)
{
	if (mkdirat(s->dirfd, LEASE_DIR, 0755) < 0 && errno != EEXIST)
		return ag_errno();
	return 0;
}

int ag_lease_guard(ag_store *s, bool exclusive, int *fd)
{
	int r = lease_dir(s);
	if (r < 0)
		return r;
	int g = openat(s->dirfd, LEASE_GUARD, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (g < 0)
		return ag_errno();
	while (flock(g, exclusive ? LOCK_EX : LOCK_SH) < 0) {
		if (errno != EINTR) {
			r = ag_errno();
			close(g);
			return r;
		}
	}
	*fd = g;
	return 0;
}

void ag_lease_unguard(int fd)
{
	if (fd >= 0)
		close(fd); /* drops the flock */
}

int ag_lease_open(ag_store *s, const char *what, ag_lease **out)
{
	int r = lease_dir(s);
	if (r < 0)
		return r;
	ag_lease *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->s = s;
	snprintf(l->name, sizeof(l->name), "%s-%ld-%lx", what, (long)getpid(),
		 (unsigned long)ag_now() ^ (unsigned long)(uintptr_t)l);
	/* locked under a name gc ignores, then renamed into place: gc never sees
	 * the lock file unlocked (it would take it for a dead holder's) */
	char lock[96], tmp[112];
	snprintf(lock, sizeof(lock), LEASE_DIR "/%s.lock", l->name);
	snprintf(tmp, sizeof(tmp), LEASE_DIR "/.%s.lock.tmp", l->name);
	l->lockfd = openat(s->dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (l->lockfd < 0 || flock(l->lockfd, LOCK_EX | LOCK_NB) < 0 ||
	    renameat(s->dirfd, tmp, s->dirfd, lock) < 0) {
		r = ag_errno();
		if (l->lockfd >= 0) {
			unlinkat(s->dirfd, tmp, 0);
			close(l->lockfd);
		}
		free(l);
		return r;
	}
	if ((r = ag_lease_set(l, NULL, 0, NULL, 0)) < 0) {
		ag_lease_close(l);
		return r;
	}
	*out = l;
	return 0;
}

int ag_lease_set(ag_lease *l, const uint64_t *gens, size_t ngens, const ag_digest *blobs,
		 size_t nblobs)
{
	char *buf = NULL, tmp[112], final[96], hex[AG_HEX_LEN + 1];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	fprintf(f, LEASE_MAGIC "holder %s\n", l->name);
	for (size_t i = 0; i < ngens; i++)
		fprintf(f, "gen %" PRIu64 "\n", gens[i]);
	for (size_t i = 0; i < nblobs; i++) {
		ag_digest_hex(&blobs[i], hex);
		fprintf(f, "blob %s\n", hex);
	}
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	snprintf(final, sizeof(final), LEASE_DIR "/%s", l->name);
	snprintf(tmp, sizeof(tmp), LEASE_DIR "/.%s.tmp", l->name);
	int fd = openat(l->s->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
			0644);
	int r = fd < 0 ? ag_errno() : ag_write_all(fd, buf, len);
	free(buf);
	if (fd >= 0 && close(fd) < 0 && r == 0)
		r = ag_errno();
	if (r == 0 && renameat(l->s->dirfd, tmp, l->s->dirfd, final) < 0)
		r = ag_errno();
	if (r < 0)
		unlinkat(l->s->dirfd, tmp, 0);
	return r;
}

void ag_lease_close(ag_lease *l)
{
	if (!l)
		return;
	char path[112];
	snprintf(path, sizeof(path), LEASE_DIR "/%s", l->name);
	unlinkat(l->s->dirfd, path, 0);
	snprintf(path, sizeof(path), LEASE_DIR "/%s.lock", l->name);
	unlinkat(l->s->dirfd, path, 0);
	close(l->lockfd);
	free(l);
}

/* ---------- reading (gc) ---------- */

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int dg_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(ag_digest));
}

static size_t uniq(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
	if (n == 0)
		return 0;
	qsort(base, n, size, cmp);
	size_t w = 1;
	for (size_t i = 1; i < n; i++) {
		char *cur = (char *)base + i * size, *last = (char *)base + (w - 1) * size;
		if (cmp(cur, last) != 0)
			memmove((char *)base + w++ * size, cur, size);
	}
	return w;
}

static int push(void **arr, size_t *n, size_t *cap, size_t size, const void *v)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 32;
		void *na = realloc(*arr, nc * size);
		if (!na)
			return -ENOMEM;
		*arr = na;
		*cap = nc;
	}
	memcpy((char *)*arr + *n * size, v, size);
	(*n)++;
	return 0;
}

struct acc {
	ag_leases *out;
	size_t gcap, bcap;
};

/* Adds what one lease's text lists; junk lines are ignored. */
static int parse_lease(struct acc *a, char *text)
{
	if (strncmp(text, LEASE_MAGIC, strlen(LEASE_MAGIC)) != 0)
		return 0;
	int r = 0;
	for (char *line = text, *nl; r == 0 && line && *line; line = nl ? nl + 1 : NULL) {
		if ((nl = strchr(line, '\n')))
			*nl = '\0';
		if (!strncmp(line, "gen ", 4)) {
			char *end;
			errno = 0;
			uint64_t id = strtoull(line + 4, &end, 10);
			if (!errno && *end == '\0' && end != line + 4)
				r = push((void **)&a->out->gens, &a->out->ngens, &a->gcap,
					 sizeof(uint64_t), &id);
		} else if (!strncmp(line, "blob ", 5)) {
			ag_digest d;
			if (ag_digest_parse(line + 5, strlen(line + 5), &d) == 0)
				r = push((void **)&a->out->blobs, &a->out->nblobs, &a->bcap,
					 sizeof(ag_digest), &d);
		}
	}
	return r;
}

static int read_text(int dirfd, const char *name, char **out)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return ag_errno();
	struct stat st;
	int r = fstat(fd, &st) < 0 ? ag_errno() : 0;
	if (r == 0 && (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > LEASE_MAX))
		r = -AG_ECORRUPT;
	char *buf = r == 0 ? malloc((size_t)st.st_size + 1) : NULL;
	if (r == 0 && !buf)
		r = -ENOMEM;
	ssize_t n = r == 0 ? ag_pread_all(fd, buf, (size_t)st.st_size, 0) : 0;
	if (r == 0 && n < 0)
		r = (int)n;
	close(fd);
	if (r < 0) {
		free(buf);
		return r;
	}
	buf[n] = '\0';
	*out = buf;
	return 0;
}

/* One "<name>.lock": live (its content is added), or stale (removed if asked). */
static int one_lease(ag_store *s, int dfd, const char *lockname, bool remove_stale, struct acc *a)
{
	char name[256];
	size_t len = strlen(lockname) - 5;
	if (len >= sizeof(name))
		return 0;
	memcpy(name, lockname, len);
	name[len] = '\0';
	int lfd = openat(dfd, lockname, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (lfd < 0)
		return errno == ENOENT ? 0 : ag_errno();
	if (flock(lfd, LOCK_SH | LOCK_NB) == 0) {
		/* nobody holds it: its holder is gone */
		a->out->nstale++;
		if (remove_stale && s->writer) {
			unlinkat(dfd, name, 0);
			unlinkat(dfd, lockname, 0);
		}
		close(lfd);
		return 0;
	}
	close(lfd);
	if (errno != EWOULDBLOCK)
		return ag_errno();
	a->out->nlive++;
	_cleanup_free_ char *text = NULL;
	int r = read_text(dfd, name, &text);
	if (r == -ENOENT)
		return 0; /* alive, nothing written yet */
	return r < 0 ? r : parse_lease(a, text);
}

int ag_leases_read(ag_store *s, bool remove_stale, ag_leases *out)
{
	memset(out, 0, sizeof(*out));
	int dfd = openat(s->dirfd, LEASE_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (dfd < 0)
		return errno == ENOENT ? 0 : ag_errno();
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return ag_errno();
	}
	struct acc a = {out, 0, 0};
	int r = 0;
	for (;;) {
		errno = 0;
		struct dirent *e = readdir(d);
		if (!e) {
			if (errno)
				r = ag_errno();
			break;
		}
		size_t nl = strlen(e->d_name);
		if (e->d_name[0] == '.' || nl <= 5 || strcmp(e->d_name + nl - 5, ".lock"))
			continue;
		if ((r = one_lease(s, dirfd(d), e->d_name, remove_stale, &a)) < 0)
			break;
	}
	closedir(d);
	if (r < 0) {
		ag_leases_clear(out);
		return r;
	}
	out->ngens = uniq(out->gens, out->ngens, sizeof(uint64_t), u64_cmp);
	out->nblobs = uniq(out->blobs, out->nblobs, sizeof(ag_digest), dg_cmp);
	return 0;
}

void ag_leases_clear(ag_leases *l)
{
	free(l->gens);
	free(l->blobs);
	memset(l, 0, sizeof(*l));
}

bool ag_leases_has_gen(const ag_leases *l, uint64_t id)
{
	return l->ngens && bsearch(&id, l->gens, l->ngens, sizeof(uint64_t), u64_cmp);
}

bool ag_leases_has_blob(const ag_leases *l, const ag_digest *d)
{
	return l->nblobs && bsearch(d, l->blobs, l->nblobs, sizeof(ag_digest), dg_cmp);
}

/* ---------- pins ---------- */

#define PINS_KEY "pins"

/* "3,7,12" -> sorted ids; junk is -AG_ECORRUPT. */
static int parse_pins(const char *v, uint64_t **ids, size_t *n)
{
	uint64_t *a = NULL;
	size_t cnt = 0, cap = 0;
	for (const char *p = v; *p;) {
		char *end;
		errno = 0;
		uint64_t id = strtoull(p, &end, 10);
		if (errno || end == p || id == 0 || (*end && *end != ',')) {
			free(a);
			return -AG_ECORRUPT;
		}
		if (push((void **)&a, &cnt, &cap, sizeof(uint64_t), &id) < 0) {
			free(a);
			return -ENOMEM;
		}
		p = *end ? end + 1 : end;
	}
	*ids = a;
	*n = uniq(a, cnt, sizeof(uint64_t), u64_cmp);
	return 0;
}

int ag_pins(ag_store *s, uint64_t **ids, size_t *n)
{
	_cleanup_free_ char *v = NULL;
	*ids = NULL;
	*n = 0;
	int r = ag_meta_get(s, PINS_KEY, &v);
	if (r == -ENOENT)
		return 0;
	return r < 0 ? r : parse_pins(v, ids, n);
}

bool ag_pins_has(const uint64_t *ids, size_t n, uint64_t id)
{
	return n && bsearch(&id, ids, n, sizeof(uint64_t), u64_cmp);
}

int ag_txn_pin(ag_txn *t, uint64_t id, bool pin)
{
	_cleanup_free_ uint64_t *ids = NULL;
	size_t n = 0;
	int r = ag_pins(t->s, &ids, &n); /* the store lock keeps it from changing */
	if (r < 0)
		return r;
	bool has = ag_pins_has(ids, n, id);
	if (pin && !has) {
		_cleanup_gen_ ag_gen *g = NULL;
		if ((r = ag_txn_gen_get(t, id, &g)) < 0)
			return r;
	}
	if (!pin && !has)
		return -ENOENT;
	if (pin == has)
		return 0;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	bool first = true;
	for (size_t i = 0; i <= n; i++) {
		uint64_t v = i < n ? ids[i] : id;
		if ((i < n && v == id) || (i == n && !pin))
			continue; /* unpinned, or nothing to add */
		fprintf(f, "%s%" PRIu64, first ? "" : ",", v);
		first = false;
	}
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	r = ag_txn_meta_put(t, PINS_KEY, buf);
	free(buf);
	return r;
}
