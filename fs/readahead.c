/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Read-ahead for sequential readers.  A FUSE read waits for its backing
 * read and then for its hash, one request after the other; the kernel keeps
 * only a request or two in flight.  So once a handle reads sequentially
 * (two requests in a row, each starting where the last one ended), it gets
 * a window of SEG-sized segments just ahead of it: RA_WORKERS threads read
 * them from the object (O_DIRECT, several in flight) and verify every 4 KiB
 * block against the tree (on the other core) with blobs_fill(), and the
 * reader's requests are answered from segments that are READY, straight from
 * their memory (fuse_reply_iov: the only copy is the kernel's into its page
 * cache).  A request the window does not hold, or that touches a segment
 * whose fill failed, is read directly by the caller (blobs_read), which
 * verifies again and reports a verdict exactly as without read-ahead: the
 * window never hands out a byte that did not match, and a fill that fails is
 * never reported by itself (no reader asked for those bytes yet).
 *
 * Memory: a window is readahead= bytes (default 4 MiB), one mmap'd region
 * per stream, 2 MiB-aligned and advised for huge pages (fewer pages to pin
 * per O_DIRECT read); at most FS_RA_STREAMS windows exist at once.  A window
 * is unmapped when its reader has had every byte to the blob's end or its
 * handle is released; one idle for IDLE_MS (a loader keeping its model
 * open) goes to the next sequential reader that finds none free.  Readers
 * without a window read directly.
 *
 * Locking: one mutex (ra->lock) for the job queue, every stream and every
 * segment state; it is never held across a backing read, a hash or a reply.
 * Workers signal ra->done when a fill ends; readers wait on it for a
 * segment that is being filled.  A segment a reader is replying from is
 * pinned and is neither refilled nor unmapped until unpinned.
 */
#include <assert.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>

#include "fs/agfs.h"

#define SEG	      (1u << 20) /* one fill; the largest request the kernel sends */
#define HUGE	      (2u << 20)
#define RA_WORKERS    2u
#define SEQ_START     2u   /* sequential requests in a row before a window is set up */
#define FRONT_WAIT_MS 50   /* a request past the window's front waits for it this long */
#define IDLE_MS	      1000 /* a window unused this long goes to a reader that needs one */

static_assert(FS_MAX_REQUEST <= SEG, "a request spans at most two segments");
static_assert(SEG % AG_ALIGN == 0, "segments start on verity blocks");

enum seg_state { S_EMPTY, S_QUEUED, S_FILLING, S_READY, S_FAILED };

struct seg {
	struct fs_stream *st;
	uint8_t *buf; /* SEG bytes */
	uint64_t off; /* the blob's bytes [off, off+len) */
	size_t len;
	enum seg_state state;
	size_t served;	  /* bytes of it replied so far */
	unsigned pins;	  /* readers replying from buf */
	struct seg *next; /* the job queue */
};

struct fs_stream {
	struct fs_blob *fb;
	uint64_t size;	   /* the blob's */
	uint64_t last_end; /* where the previous request ended */
	unsigned seq;	   /* requests in a row that began where the previous ended */
	unsigned misses;   /* sequential requests in a row the window did not hold */
	uint64_t next;	   /* where the next segment to fill starts */
	uint8_t *mem;	   /* NULL: no window (yet); nseg * SEG bytes */
	unsigned nseg;
	int64_t used; /* CLOCK_MONOTONIC ms of its last request */
	struct seg seg[FS_MAX_READAHEAD / SEG];
};

struct fs_ra {
	pthread_mutex_t lock;
	pthread_cond_t work, done;
	struct seg *head, *tail; /* queued fills, oldest first */
	pthread_t workers[RA_WORKERS];
	unsigned nworkers;
	struct fs_stream *owners[FS_RA_STREAMS]; /* the streams holding a window */
	unsigned windows;
	unsigned waiters; /* threads waiting on done */
	bool stopping;
};

int ra_init(struct fs_blobs *bs)
{
	struct fs_ra *ra = calloc(1, sizeof(*ra));
	if (!ra)
		return -ENOMEM;
	pthread_mutex_init(&ra->lock, NULL);
	pthread_cond_init(&ra->work, NULL);
	pthread_cond_init(&ra->done, NULL);
	bs->ra = ra;
	return 0;
}

void ra_destroy(struct fs_blobs *bs)
{
	struct fs_ra *ra = bs->ra;
	if (!ra)
		return;
	pthread_mutex_lock(&ra->lock);
	ra->stopping = true;
	pthread_cond_broadcast(&ra->work);
	pthread_mutex_unlock(&ra->lock);
	for (unsigned i = 0; i < ra->nworkers; i++)
		pthread_join(ra->workers[i], NULL);
	pthread_cond_destroy(&ra->work);
	pthread_cond_destroy(&ra->done);
	pthread_mutex_destroy(&ra->lock);
	free(ra);
	bs->ra = NULL;
}

/* Wakes the threads waiting for a fill, a free segment or an unpin (each
 * checks its own condition again).  With ra->lock held. */
static void wake(struct fs_ra *ra)
{
	if (ra->waiters)
		pthread_cond_broadcast(&ra->done);
}

static void wait_done(struct fs_ra *ra)
{
	ra->waiters++;
	pthread_cond_wait(&ra->done, &ra->lock);
	ra->waiters--;
}

/* Takes s off the job queue.  With ra->lock held. */
static void dequeue(struct fs_ra *ra, struct seg *s)
{
	struct seg *prev = NULL;
	for (struct seg **p = &ra->head; *p; prev = *p, p = &(*p)->next) {
		if (*p == s) {
			*p = s->next;
			if (ra->tail == s)
				ra->tail = prev;
			break;
		}
	}
	s->next = NULL;
}

/* Takes s off the queue and fills it: with ra->lock held, dropped meanwhile. */
static void fill(struct fs_ra *ra, struct seg *s)
{
	dequeue(ra, s);
	s->state = S_FILLING;
	pthread_mutex_unlock(&ra->lock);
	ssize_t r = blobs_fill(s->st->fb, s->off, s->len, s->buf, SEG);
	pthread_mutex_lock(&ra->lock);
	s->state = r == (ssize_t)s->len ? S_READY : S_FAILED;
	wake(ra);
}

static void *worker_main(void *arg)
{
	struct fs_ra *ra = arg;
	pthread_mutex_lock(&ra->lock);
	for (;;) {
		while (!ra->stopping && !ra->head)
			pthread_cond_wait(&ra->work, &ra->lock);
		if (ra->stopping)
			break;
		fill(ra, ra->head);
	}
	pthread_mutex_unlock(&ra->lock);
	return NULL;
}

/* With ra->lock held. */
static int start_workers(struct fs_ra *ra)
{
	while (ra->nworkers < RA_WORKERS) {
		int r = pthread_create(&ra->workers[ra->nworkers], NULL, worker_main, ra);
		if (r)
			return ra->nworkers ? 0 : -r;
		ra->nworkers++;
	}
	return 0;
}

struct fs_stream *ra_open(struct fs_ctx *c, struct fs_blob *fb)
{
	if (!c->blobs.ra || c->opt.readahead < SEG)
		return NULL;
	struct fs_stream *st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	st->fb = fb;
	st->size = blobs_size(fb);
	st->nseg = (unsigned)(c->opt.readahead / SEG);
	if (st->nseg > FS_MAX_READAHEAD / SEG)
		st->nseg = FS_MAX_READAHEAD / SEG;
	return st;
}

/* The next segment to fill takes s (empty or done with): with ra->lock held. */
static void queue_fill(struct fs_ra *ra, struct fs_stream *st, struct seg *s)
{
	s->state = S_EMPTY;
	s->len = s->served = 0;
	if (st->next >= st->size)
		return;
	s->off = st->next;
	s->len = st->size - s->off < SEG ? (size_t)(st->size - s->off) : SEG;
	st->next += s->len;
	s->state = S_QUEUED;
	if (ra->tail)
		ra->tail->next = s;
	else
		ra->head = s;
	ra->tail = s;
	pthread_cond_signal(&ra->work);
	wake(ra); /* a reader may wait for this part */
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether something in the window will change (a fill end, an unpin). */
static bool any_busy(const struct fs_stream *st)
{
	for (unsigned i = 0; i < st->nseg; i++)
		if (st->seg[i].pins || st->seg[i].state == S_QUEUED ||
		    st->seg[i].state == S_FILLING)
			return true;
	return false;
}

/* Whether nothing uses st's window now: with ra->lock held. */
static bool window_quiet(const struct fs_stream *st)
{
	return st->mem && !any_busy(st);
}

/* Takes st's window away (its owner reads directly, or gets one again once
 * it reads on sequentially); returns the memory.  With ra->lock held. */
static uint8_t *window_take(struct fs_ra *ra, struct fs_stream *st)
{
	uint8_t *mem = st->mem;
	for (unsigned i = 0; i < ra->windows; i++) {
		if (ra->owners[i] == st) {
			ra->owners[i] = ra->owners[--ra->windows];
			break;
		}
	}
	st->mem = NULL;
	st->seq = 0;
	return mem;
}

/* Whether every segment up to the blob's end was filled and replied. */
static bool window_done(const struct fs_stream *st)
{
	if (st->next < st->size || !window_quiet(st))
		return false;
	for (unsigned i = 0; i < st->nseg; i++) {
		const struct seg *s = &st->seg[i];
		if (s->state != S_EMPTY && (s->state != S_READY || s->served < s->len))
			return false;
	}
	return true;
}

/* Gives st its window memory (nseg * SEG bytes at a): with ra->lock held. */
static void window_give(struct fs_ra *ra, struct fs_stream *st, uint8_t *a)
{
	st->mem = a;
	for (unsigned i = 0; i < st->nseg; i++)
		st->seg[i] = (struct seg){.st = st, .buf = a + (size_t)i * SEG, .state = S_EMPTY};
	ra->owners[ra->windows++] = st;
}

/* A window for st: a new mapping (2 MiB-aligned, huge pages advised), or,
 * when FS_RA_STREAMS exist, the one of a reader idle for IDLE_MS (a loader
 * that keeps its model open after reading it).  With ra->lock held. */
static int window_map(struct fs_ra *ra, struct fs_stream *st)
{
	size_t len = (size_t)st->nseg * SEG, maplen = len + HUGE;
	if (start_workers(ra) < 0)
		return -EBUSY;
	if (ra->windows >= FS_RA_STREAMS) {
		int64_t now = now_ms();
		for (unsigned i = 0; i < ra->windows; i++) {
			struct fs_stream *v = ra->owners[i];
			if (v->nseg == st->nseg && window_quiet(v) && now - v->used >= IDLE_MS) {
				window_give(ra, st, window_take(ra, v));
				return 0;
			}
		}
		return -EBUSY;
	}
	uint8_t *p = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	uint8_t *a = (uint8_t *)(((uintptr_t)p + HUGE - 1) & ~(uintptr_t)(HUGE - 1));
	if (a > p)
		munmap(p, (size_t)(a - p));
	if (a + len < p + maplen)
		munmap(a + len, (size_t)(p + maplen - (a + len)));
	madvise(a, len, MADV_HUGEPAGE);
	window_give(ra, st, a);
	return 0;
}

/* Starts filling the window at off (with ra->lock held); segments still in
 * use are skipped and start again once free. */
static void window_restart(struct fs_ra *ra, struct fs_stream *st, uint64_t off)
{
	st->next = off / AG_ALIGN * AG_ALIGN; /* where the reader goes on */
	st->misses = 0;
	for (unsigned i = 0; i < st->nseg; i++) {
		struct seg *s = &st->seg[i];
		if (s->pins == 0 && s->state != S_QUEUED && s->state != S_FILLING)
			queue_fill(ra, st, s);
	}
}

/* The segment holding byte off, or NULL.  With ra->lock held. */
static struct seg *seg_at(struct fs_stream *st, uint64_t off)
{
	for (unsigned i = 0; i < st->nseg; i++) {
		struct seg *s = &st->seg[i];
		if (s->state != S_EMPTY && off >= s->off && off - s->off < s->len)
			return s;
	}
	return NULL;
}

/* Refills the segments the reader is done with: every byte replied (the
 * kernel asks for each once; it has them cached after that), or left far
 * behind (the kernel found some elsewhere), or failed or empty and passed.
 * Requests the kernel sent together arrive in any order, so "behind the
 * latest request" alone would refill a segment an earlier request still
 * needs.  With ra->lock held. */
static void advance(struct fs_ra *ra, struct fs_stream *st, uint64_t off)
{
	for (unsigned i = 0; i < st->nseg; i++) {
		struct seg *s = &st->seg[i];
		if (s->pins || s->state == S_QUEUED || s->state == S_FILLING)
			continue;
		uint64_t end = s->off + s->len;
		bool used = s->state == S_READY && s->served >= s->len;
		bool left = end + (uint64_t)st->nseg * SEG <= off;
		bool passed = s->state != S_READY && end <= off;
		if (used || left || passed)
			queue_fill(ra, st, s);
	}
}

/* Counts [off, end) as replied (from the window or not) in the segments
 * that hold it.  With ra->lock held. */
static void consume(struct fs_stream *st, uint64_t off, uint64_t end)
{
	for (unsigned i = 0; i < st->nseg; i++) {
		struct seg *s = &st->seg[i];
		uint64_t a = off > s->off ? off : s->off;
		uint64_t b = end < s->off + s->len ? end : s->off + s->len;
		if (s->state != S_EMPTY && a < b)
			s->served += (size_t)(b - a);
	}
}

/* Whether off is outside the window (a seek): with ra->lock held. */
static bool outside(const struct fs_stream *st, uint64_t off)
{
	uint64_t low = st->next;
	for (unsigned i = 0; i < st->nseg; i++)
		if (st->seg[i].state != S_EMPTY && st->seg[i].off < low)
			low = st->seg[i].off;
	return off < low || off >= st->next;
}

/* Tracks the access pattern; true when the request is sequential. */
static bool note_request(struct fs_stream *st, uint64_t off, uint64_t end)
{
	bool seq = off == st->last_end && off > 0;
	st->seq = seq ? st->seq + 1 : off == 0;
	st->last_end = end;
	return seq;
}

static void unpin(struct fs_ra *ra, struct seg *s1, struct seg *s2);

/* The one or two segments holding [off, end).  A range that goes on at the
 * window's front (the kernel has sent several requests at once) waits for
 * a segment to be handed to it: the earlier requests free theirs.  With
 * ra->lock held. */
static bool find_range(struct fs_ra *ra, struct fs_stream *st, uint64_t off, uint64_t end,
		       struct seg **s1, struct seg **s2)
{
	/* Bounded: the request that would free a segment may not have been
	 * read from the kernel yet, every FUSE thread waiting here. */
	struct timespec until; /* set at the first wait: most requests never wait */
	bool timed = false;
	for (;;) {
		uint64_t at = off;
		*s2 = NULL;
		if ((*s1 = seg_at(st, off))) {
			at = (*s1)->off + (*s1)->len;
			if (end <= at)
				return true;
			if ((*s2 = seg_at(st, at)))
				return end <= (*s2)->off + (*s2)->len;
		}
		if (at < st->next || at - st->next >= (uint64_t)st->nseg * SEG || !any_busy(st))
			return false;
		if (!timed) {
			timed = true;
			clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_nsec += FRONT_WAIT_MS * 1000000L;
			until.tv_sec += until.tv_nsec / 1000000000L;
			until.tv_nsec %= 1000000000L;
		}
		ra->waiters++;
		int r = pthread_cond_clockwait(&ra->done, &ra->lock, CLOCK_MONOTONIC, &until);
		ra->waiters--;
		if (r == ETIMEDOUT || !st->mem) /* (given to another reader meanwhile) */
			return false;
		advance(ra, st, off);
	}
}

/* Pins the segments holding [off, end) once they are filled: 0 when they
 * are READY, -1 when the window does not hold the range or a fill failed.
 * With ra->lock held. */
static int pin_range(struct fs_ra *ra, struct fs_stream *st, uint64_t off, uint64_t end,
		     struct seg **s1, struct seg **s2)
{
	if (!find_range(ra, st, off, end, s1, s2))
		return -1;
	(*s1)->pins++;
	if (*s2)
		(*s2)->pins++;
	for (;;) {
		bool wait = false, failed = false;
		for (struct seg *s = *s1; s; s = s == *s1 ? *s2 : NULL) {
			wait |= s->state == S_QUEUED || s->state == S_FILLING;
			failed |= s->state == S_FAILED;
		}
		if (!failed && wait) {
			/* a part no worker has started yet: fill it here */
			if ((*s1)->state == S_QUEUED)
				fill(ra, *s1);
			else if (*s2 && (*s2)->state == S_QUEUED)
				fill(ra, *s2);
			else
				wait_done(ra);
			continue;
		}
		if (failed)
			unpin(ra, *s1, *s2);
		return failed ? -1 : 0;
	}
}

static void unpin(struct fs_ra *ra, struct seg *s1, struct seg *s2)
{
	s1->pins--;
	if (s2)
		s2->pins--;
	wake(ra); /* ra_close may wait for it */
}

bool ra_read(struct fs_ctx *c, struct fs_stream *st, fuse_req_t req, uint64_t off, size_t size)
{
	struct fs_ra *ra = c->blobs.ra;
	if (!st || off >= st->size || size == 0)
		return false;
	uint64_t end = off + size < st->size ? off + size : st->size;
	pthread_mutex_lock(&ra->lock);
	bool seq = note_request(st, off, end);
	st->used = now_ms();
	if (!st->mem) {
		if (st->seq >= SEQ_START && end < st->size && window_map(ra, st) == 0)
			window_restart(ra, st, end);
		pthread_mutex_unlock(&ra->lock);
		return false;
	}
	struct seg *s1, *s2;
	if (pin_range(ra, st, off, end, &s1, &s2) < 0) {
		/* a seek, a late request, or a fill that failed: read directly;
		 * a reader that goes on sequentially elsewhere gets the window */
		if (st->mem) {
			consume(st, off, end);
			advance(ra, st, off);
		}
		if (st->mem && seq && outside(st, off) && ++st->misses >= SEQ_START &&
		    end < st->size)
			window_restart(ra, st, end);
		pthread_mutex_unlock(&ra->lock);
		return false;
	}
	st->misses = 0;
	size_t n1 = (size_t)((s2 ? s1->off + s1->len : end) - off);
	consume(st, off, end);
	advance(ra, st, off);
	pthread_mutex_unlock(&ra->lock);

	struct iovec iov[2];
	iov[0] = (struct iovec){s1->buf + (off - s1->off), n1};
	if (s2) /* from where s1 ends: a segment left from before a restart may overlap it */
		iov[1] = (struct iovec){s2->buf + (off + n1 - s2->off), end - off - n1};
	blobs_count_served(st->fb, off, (size_t)(end - off));
	fuse_reply_iov(req, iov, s2 ? 2 : 1);

	/* Once unpinned and unlocked, st is not ours: the reply let the
	 * kernel finish the read, so a RELEASE may free st (ra_close) on
	 * another thread at once.  Everything needed of st is read first. */
	pthread_mutex_lock(&ra->lock);
	unpin(ra, s1, s2);
	uint8_t *mem = window_done(st) ? window_take(ra, st) : NULL;
	size_t memlen = (size_t)st->nseg * SEG;
	pthread_mutex_unlock(&ra->lock);
	if (mem) /* read to the end: the memory goes back now, not at close */
		munmap(mem, memlen);
	return true;
}

void ra_close(struct fs_ctx *c, struct fs_stream *st)
{
	struct fs_ra *ra = c->blobs.ra;
	if (!st)
		return;
	pthread_mutex_lock(&ra->lock);
	/* cancel what no worker has started; wait for what one has */
	for (unsigned i = 0; i < st->nseg; i++) {
		if (st->seg[i].state == S_QUEUED) {
			dequeue(ra, &st->seg[i]);
			st->seg[i].state = S_EMPTY;
		}
	}
	while (any_busy(st))
		wait_done(ra);
	uint8_t *mem = st->mem ? window_take(ra, st) : NULL;
	pthread_mutex_unlock(&ra->lock);
	if (mem)
		munmap(mem, (size_t)st->nseg * SEG);
	free(st);
}
