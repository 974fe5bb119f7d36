/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Verified reads.  Every open of a digest shares one ag_blob (so the chunk
 * table is loaded once, whatever the number of readers); reads go through
 * ag_blob_read() into a buffer that belongs to the calling thread (allocated
 * once, AG_ALIGN-aligned), so a reply is sent straight from the bytes that
 * were just hashed and matched.  A thread keeps its own buffer only for
 * reads up to FS_KEEP_READ; a larger one (up to 1 MiB) takes a buffer from
 * a small shared set until its reply is sent (blobs_read_done): with the
 * read-ahead on, large direct reads are few (a stream's first requests), and
 * a buffer of 1 MiB per FUSE thread would be most of the daemon's memory.  With verify=full, a
 * digest is hashed whole on its first open in this mount, remembered by the object file's identity
 * (device, inode, ctime) so a replaced object is hashed again.
 *
 * Backing reads use O_DIRECT (AG_BLOB_DIRECT) by default: the object's bytes
 * are read once, straight into the aligned buffer, and are not cached a
 * second time (unverified) beside the mount's verified pages; that costs the
 * least CPU per byte.  -o backing=buffered (AG_BLOB_STREAM) reads through the
 * page cache instead, with the kernel reading ahead on the object and the
 * pages dropped behind the reader, for storage where single O_DIRECT streams
 * are slow.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>

#include "fs/agfs.h"
#include "fs/metrics.h"

struct fs_blob {
	ag_digest digest;
	ag_blob *b;
	unsigned refs;
	_Atomic uint64_t bad;	   /* a chunk that failed verification lately (UINT64_MAX: none) */
	_Atomic int64_t bad_until; /* ... remembered until then (fs_mono_s()) */
};

struct tbuf {
	void *p; /* its own, for reads up to FS_KEEP_READ */
	size_t n;
	void *large; /* a large read's, from blobs_read to blobs_read_done */
	size_t large_n;
};

/* The size of a shared large buffer: the largest request and its block edges. */
#define LARGE_N ((size_t)FS_MAX_REQUEST + 2 * AG_ALIGN)

struct verified {
	ag_digest digest;
	dev_t dev;
	ino_t ino;
	struct timespec ctime;
};

static void tbuf_free(void *p)
{
	struct tbuf *tb = p;
	if (tb) {
		free(tb->p);
		if (tb->large)
			munmap(tb->large, tb->large_n);
		free(tb);
	}
}

int blobs_init(struct fs_blobs *bs)
{
	memset(bs, 0, sizeof(*bs));
	bs->open_flags = AG_BLOB_DIRECT;
	bs->keep_large = FS_KEEP_LARGE;
	int r = pthread_mutex_init(&bs->lock, NULL);
	if (r == 0)
		r = pthread_key_create(&bs->bufkey, tbuf_free);
	if (r == 0)
		return ra_init(bs);
	return -r;
}

void blobs_destroy(struct fs_blobs *bs)
{
	ra_destroy(bs); /* its workers read the blobs */
	for (size_t i = 0; i < bs->n; i++) {
		ag_blob_close(bs->tab[i]->b);
		free(bs->tab[i]);
	}
	free(bs->tab);
	free(bs->verified);
	for (unsigned i = 0; i < bs->nlarge; i++)
		munmap(bs->large[i], LARGE_N);
	tbuf_free(pthread_getspecific(bs->bufkey));
	pthread_setspecific(bs->bufkey, NULL);
	pthread_key_delete(bs->bufkey);
	pthread_mutex_destroy(&bs->lock);
}

/* With the lock held. */
static struct fs_blob *find(struct fs_blobs *bs, const ag_digest *d)
{
	for (size_t i = 0; i < bs->n; i++)
		if (ag_digest_eq(&bs->tab[i]->digest, d))
			return bs->tab[i];
	return NULL;
}

static int insert(struct fs_blobs *bs, struct fs_blob *fb)
{
	if (bs->n == bs->cap) {
		size_t cap = bs->cap ? bs->cap * 2 : 64;
		struct fs_blob **tab = realloc(bs->tab, cap * sizeof(*tab));
		if (!tab)
			return -ENOMEM;
		bs->tab = tab;
		bs->cap = cap;
	}
	bs->tab[bs->n++] = fb;
	return 0;
}

static int object_identity(ag_store *s, const ag_digest *d, struct verified *v)
{
	char rel[128];
	struct stat st;
	ag_object_relpath(d, rel, sizeof(rel));
	if (fstatat(ag_store_dirfd(s), rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	*v = (struct verified){*d, st.st_dev, st.st_ino, st.st_ctim};
	return 0;
}

static bool was_verified(struct fs_blobs *bs, const struct verified *v)
{
	bool hit = false;
	pthread_mutex_lock(&bs->lock);
	for (size_t i = 0; i < bs->nverified && !hit; i++) {
		const struct verified *w = (const struct verified *)bs->verified + i;
		hit = ag_digest_eq(&w->digest, &v->digest) && w->dev == v->dev &&
		      w->ino == v->ino && w->ctime.tv_sec == v->ctime.tv_sec &&
		      w->ctime.tv_nsec == v->ctime.tv_nsec;
	}
	pthread_mutex_unlock(&bs->lock);
	return hit;
}

static void remember_verified(struct fs_blobs *bs, const struct verified *v)
{
	pthread_mutex_lock(&bs->lock);
	if (bs->nverified == bs->verified_cap) {
		size_t cap = bs->verified_cap ? bs->verified_cap * 2 : 64;
		void *nv = realloc(bs->verified, cap * sizeof(struct verified));
		if (nv) {
			bs->verified = nv;
			bs->verified_cap = cap;
		}
	}
	if (bs->nverified < bs->verified_cap)
		((struct verified *)bs->verified)[bs->nverified++] = *v;
	pthread_mutex_unlock(&bs->lock);
}

/* verify=full: the whole object against its name, once per object identity. */
static int verify_whole(struct fs_blobs *bs, ag_store *s, ag_blob *b, const ag_digest *d,
			uint64_t *bad_chunk)
{
	struct verified v;
	int r = object_identity(s, d, &v);
	if (r < 0)
		return r;
	if (was_verified(bs, &v))
		return 0;
	if ((r = ag_blob_verify_full(b, bad_chunk)) < 0)
		return r;
	remember_verified(bs, &v);
	return 0;
}

bool blobs_verified(struct fs_ctx *c, const struct node *n)
{
	struct verified v;
	return object_identity(c->store, &n->digest, &v) == 0 && was_verified(&c->blobs, &v);
}

static struct fs_blob *share(struct fs_blobs *bs, const ag_digest *d)
{
	pthread_mutex_lock(&bs->lock);
	struct fs_blob *fb = find(bs, d);
	if (fb)
		fb->refs++;
	pthread_mutex_unlock(&bs->lock);
	return fb;
}

/* Opens the object under the lease guard, with the digest leased first. */
static int open_leased(struct fs_ctx *c, const ag_digest *d, ag_blob **b)
{
	int guard, r;
	if ((r = lease_blob(c, d, &guard)) < 0 && r != -EAGAIN)
		syslog(LOG_WARNING, "opening a blob this mount could not lease: %s",
		       ag_strerror(r));
	if (c->trust) {
		/* keyring=: the tree must end in the verified catalog's digest */
		ag_digest fsv;
		r = trust_expect(c, d, &fsv);
		if (r == 0)
			r = ag_blob_open_expect(c->store, d, &fsv, c->blobs.open_flags, b);
		else
			r = -AG_ECORRUPT; /* no verified catalog lists it */
	} else {
		r = ag_blob_open(c->store, d, c->blobs.open_flags, b);
	}
	lease_unguard(guard);
	return r;
}

static int open_new(struct fs_ctx *c, const struct node *n, bool full, struct fs_blob **out,
		    uint64_t *bad_chunk)
{
	struct fs_blobs *bs = &c->blobs;
	_cleanup_blob_ ag_blob *b = NULL;
	int r = open_leased(c, &n->digest, &b);
	if (r < 0)
		return r;
	if (ag_blob_get_info(b)->size != n->size)
		return -AG_ECORRUPT;
	if (full && (r = verify_whole(bs, c->store, b, &n->digest, bad_chunk)) < 0)
		return r;
	pthread_mutex_lock(&bs->lock);
	struct fs_blob *fb = find(bs, &n->digest);
	if (fb) {
		fb->refs++;
	} else if ((fb = calloc(1, sizeof(*fb)))) {
		*fb = (struct fs_blob){n->digest, TAKE_PTR(b), 1, UINT64_MAX, 0};
		if ((r = insert(bs, fb)) < 0) {
			b = fb->b;
			free(fb);
			fb = NULL;
		}
	}
	pthread_mutex_unlock(&bs->lock);
	*out = fb;
	return fb ? 0 : -ENOMEM;
}

int blobs_open(struct fs_ctx *c, const struct node *n, bool full, struct fs_blob **out,
	       uint64_t *bad_chunk)
{
	*bad_chunk = UINT64_MAX;
	if (!full && (*out = share(&c->blobs, &n->digest)))
		return 0;
	int r = open_new(c, n, full, out, bad_chunk);
	lease_blob_done(c, &n->digest); /* in the table now, or failed */
	if (r < 0)
		lease_sync(c);
	return r;
}

int blobs_digests(struct fs_blobs *bs, ag_digest **out, size_t *n)
{
	pthread_mutex_lock(&bs->lock);
	ag_digest *v = malloc((bs->n ? bs->n : 1) * sizeof(*v));
	for (size_t i = 0; v && i < bs->n; i++)
		v[i] = bs->tab[i]->digest;
	*n = v ? bs->n : 0;
	pthread_mutex_unlock(&bs->lock);
	*out = v;
	return v ? 0 : -ENOMEM;
}

bool blobs_release(struct fs_blobs *bs, struct fs_blob *fb)
{
	if (!fb)
		return false;
	pthread_mutex_lock(&bs->lock);
	if (--fb->refs == 0) {
		for (size_t i = 0; i < bs->n; i++) {
			if (bs->tab[i] == fb) {
				bs->tab[i] = bs->tab[--bs->n];
				break;
			}
		}
	} else {
		fb = NULL;
	}
	pthread_mutex_unlock(&bs->lock);
	if (fb) {
		ag_blob_close(fb->b);
		free(fb);
	}
	return fb != NULL;
}

uint32_t blobs_chunk_size(const struct fs_blob *fb)
{
	return ag_blob_get_info(fb->b)->chunk_size;
}

/* A large buffer of at least need bytes: a kept one, or a new mapping
 * (mapped, not malloc'd, so that giving it back returns the memory). */
static void *large_take(struct fs_blobs *bs, size_t need, size_t *size)
{
	void *p = NULL;
	if (need <= LARGE_N) {
		pthread_mutex_lock(&bs->lock);
		if (bs->nlarge)
			p = bs->large[--bs->nlarge];
		pthread_mutex_unlock(&bs->lock);
	}
	*size = need <= LARGE_N ? LARGE_N : (need + AG_ALIGN - 1) & ~(size_t)(AG_ALIGN - 1);
	if (!p) {
		p = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			p = NULL;
	}
	return p;
}

/* Keeps p for the next large read, or unmaps it. */
static void large_give(struct fs_blobs *bs, void *p, size_t n)
{
	if (n == LARGE_N) {
		pthread_mutex_lock(&bs->lock);
		if (bs->nlarge < bs->keep_large && bs->nlarge < FS_MAX_THREADS) {
			bs->large[bs->nlarge++] = p;
			p = NULL;
		}
		pthread_mutex_unlock(&bs->lock);
	}
	if (p)
		munmap(p, n);
}

void blobs_read_done(struct fs_blobs *bs)
{
	struct tbuf *tb = pthread_getspecific(bs->bufkey);
	if (tb && tb->large) {
		large_give(bs, tb->large, tb->large_n);
		tb->large = NULL;
	}
}

/* This thread's buffer, at least need bytes: its own for a small read, a
 * large one (until blobs_read_done) otherwise. */
static void *thread_buffer(struct fs_blobs *bs, size_t need, size_t *size)
{
	struct tbuf *tb = pthread_getspecific(bs->bufkey);
	if (!tb) {
		if (!(tb = calloc(1, sizeof(*tb))) || pthread_setspecific(bs->bufkey, tb) != 0) {
			free(tb);
			return NULL;
		}
	}
	blobs_read_done(bs); /* (a read whose done was not called) */
	if (need > FS_KEEP_READ + 2 * AG_ALIGN) {
		tb->large = large_take(bs, need, &tb->large_n);
		*size = tb->large_n;
		return tb->large;
	}
	if (tb->n < need) {
		size_t n = (need + AG_ALIGN - 1) & ~(size_t)(AG_ALIGN - 1);
		void *p = NULL;
		if (posix_memalign(&p, AG_ALIGN, n) != 0)
			return NULL;
		free(tb->p);
		tb->p = p;
		tb->n = n;
	}
	*size = tb->n;
	return tb->p;
}

/*
 * A client that retries a failing read in a loop (a loader re-faulting the
 * same page) should not make us re-read and re-hash the chunk every time:
 * for a few seconds after a mismatch, reads touching that chunk fail at once.
 */
static bool known_bad(struct fs_blob *fb, uint64_t off, size_t len, uint64_t *bad_chunk)
{
	uint64_t bad = atomic_load(&fb->bad), cs = ag_blob_get_info(fb->b)->chunk_size;
	if (bad == UINT64_MAX || len == 0 || atomic_load(&fb->bad_until) < fs_mono_s())
		return false;
	if (bad < off / cs || bad > (off + len - 1) / cs)
		return false;
	*bad_chunk = bad;
	return true;
}

static void remember_bad(struct fs_blob *fb, uint64_t chunk)
{
	atomic_store(&fb->bad, chunk);
	atomic_store(&fb->bad_until, fs_mono_s() + FS_BAD_MEMORY_S);
}

ssize_t blobs_read(struct fs_blobs *bs, struct fs_blob *fb, uint64_t off, size_t len,
		   const uint8_t **out, uint64_t *bad_chunk)
{
	size_t size;
	void *buf = thread_buffer(bs, ag_blob_bufsize(fb->b, len), &size);
	if (!buf)
		return -ENOMEM;
	*bad_chunk = UINT64_MAX;
	if (known_bad(fb, off, len, bad_chunk))
		return -EBADMSG;
	ssize_t r = ag_blob_read(fb->b, off, len, buf, size, out, bad_chunk);
	/* only "checked, and wrong" is remembered, never "could not check" */
	if (r == -EBADMSG && *bad_chunk != UINT64_MAX)
		remember_bad(fb, *bad_chunk);
	if (r > 0)
		blobs_count_served(fb, off, (size_t)r);
	return r;
}

void blobs_count_served(const struct fs_blob *fb, uint64_t off, size_t len)
{
	uint64_t cs = blobs_chunk_size(fb);
	atomic_fetch_add(&fs_counters.verified_bytes, (uint64_t)len);
	if (cs && len)
		atomic_fetch_add(&fs_counters.verified_blocks, (off + len - 1) / cs - off / cs + 1);
}

uint64_t blobs_size(const struct fs_blob *fb)
{
	return ag_blob_get_info(fb->b)->size;
}

ssize_t blobs_fill(struct fs_blob *fb, uint64_t off, size_t len, void *buf, size_t bufsize)
{
	const uint8_t *out;
	uint64_t bad;
	/* a block that failed lately is left to the reader's own read */
	if (known_bad(fb, off, len, &bad))
		return -EBADMSG;
	ssize_t r = ag_blob_read(fb->b, off, len, buf, bufsize, &out, &bad);
	/* ag_blob_read reads whole blocks: the range starts at buf when off is
	 * on a block (the read-ahead's segments are), else inside the first one */
	if (r > 0 && out != buf)
		memmove(buf, out, (size_t)r);
	return r;
}
