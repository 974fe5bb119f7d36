/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The read-ahead (fs/readahead.c) driven directly, on a real blob in a real
 * store, so the order of its requests is exact: a request that spans two
 * segments after a window restart left a pinned segment overlapping the new
 * ones must be answered with the bytes at the offsets asked, and no more.
 *
 * ra_read() answers with fuse_reply_iov(); this program defines that symbol,
 * so the reply lands here instead of in libfuse (which needs a session): it
 * copies what would have been sent, and a reply of the "holder" thread
 * blocks until released, keeping its segment pinned for as long as the test
 * wants.  Everything else (the window, its workers, O_DIRECT fills, the tree
 * check of every block) is the daemon's own code.
 */
#include <errno.h>
#include <pthread.h>
#include <sys/uio.h>

#include "fs/agfs.h"
#include "tests/unit/store-common.h"

#define KiB 1024u
#define MiB (1024u * 1024u)

struct reply {
	uint8_t *bytes; /* what the reply carried, in order */
	size_t len;
	int calls;
};

static pthread_mutex_t hold_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cond = PTHREAD_COND_INITIALIZER;
static pthread_t holder;
static bool holder_set, holder_in, holder_go;

int fuse_reply_iov(fuse_req_t req, const struct iovec *iov, int count)
{
	struct reply *r = (struct reply *)(void *)req;
	size_t n = 0;
	for (int i = 0; i < count; i++)
		n += iov[i].iov_len;
	free(r->bytes);
	r->bytes = malloc(n ? n : 1);
	r->len = 0;
	for (int i = 0; r->bytes && i < count; i++) {
		memcpy(r->bytes + r->len, iov[i].iov_base, iov[i].iov_len);
		r->len += iov[i].iov_len;
	}
	r->calls++;
	pthread_mutex_lock(&hold_lock);
	if (holder_set && pthread_equal(pthread_self(), holder)) {
		/* the segments stay pinned while "the kernel" takes this reply */
		holder_in = true;
		pthread_cond_broadcast(&hold_cond);
		while (!holder_go)
			pthread_cond_wait(&hold_cond, &hold_lock);
	}
	pthread_mutex_unlock(&hold_lock);
	return 0;
}

static struct fs_ctx ctx;
static struct fs_stream *st;
static uint8_t *src;
static size_t src_len;

/* ra_read of [off, off+size) into r; true when the window answered. */
static bool req(struct reply *r, uint64_t off, size_t size)
{
	*r = (struct reply){0};
	return ra_read(&ctx, st, (fuse_req_t)(void *)r, off, size);
}

/* The window answered [off, off+size) with exactly the source's bytes there. */
static void check(const char *what, uint64_t off, size_t size)
{
	struct reply r;
	bool served = req(&r, off, size);
	size_t want = off + size <= src_len ? size : src_len - off;
	ok(served && r.calls == 1, "%s: [%llu K, +%zu K) answered from the window", what,
	   (unsigned long long)(off / KiB), size / KiB);
	is_int(r.len, want, "%s: the reply is as long as asked", what);
	ok(r.bytes && r.len == want && memcmp(r.bytes, src + off, want) == 0,
	   "%s: the reply carries the source's bytes at offset %llu", what,
	   (unsigned long long)off);
	free(r.bytes);
}

/* ra_read that the window does not answer (the caller would read directly). */
static void miss(uint64_t off, size_t size)
{
	struct reply r;
	bool served = req(&r, off, size);
	ok(!served && r.calls == 0, "[%llu K, +%zu K): not from the window, read directly",
	   (unsigned long long)(off / KiB), size / KiB);
	free(r.bytes);
}

static void *hold_main(void *arg)
{
	struct reply *r = arg;
	req(r, 256 * KiB, 128 * KiB);
	return NULL;
}

static void test_restart_overlap(void)
{
	/* the first window: segments at 256K, 1280K, 2304K, 3328K (1 MiB each) */
	miss(0, 128 * KiB);
	miss(128 * KiB, 128 * KiB);
	/* waits for each to be filled and verified (so the restart moves them) */
	check("fill of segment 1", 1280 * KiB, 4 * KiB);
	check("fill of segment 2", 2304 * KiB, 4 * KiB);
	check("fill of segment 3", 3328 * KiB, 4 * KiB);

	/* a reader replying from the segment at 256K keeps it pinned */
	struct reply held;
	pthread_t t;
	pthread_mutex_lock(&hold_lock);
	holder_set = false;
	if (pthread_create(&t, NULL, hold_main, &held) != 0)
		bail("pthread_create: %s", strerror(errno));
	holder = t;
	holder_set = true;
	pthread_cond_broadcast(&hold_cond);
	pthread_mutex_unlock(&hold_lock);
	pthread_mutex_lock(&hold_lock);
	while (!holder_in)
		pthread_cond_wait(&hold_cond, &hold_lock);
	pthread_mutex_unlock(&hold_lock);

	/* a sequential reader from 0: its third request restarts the window at
	 * 192K, which moves every segment but the pinned one: 192K, 1216K, 2240K */
	miss(0, 64 * KiB);
	miss(64 * KiB, 64 * KiB);
	miss(128 * KiB, 64 * KiB);

	/* [224K, 1248K): the new segment at 192K, then the pinned one at 256K
	 * (it holds 1216K): the second part starts 960K into it */
	check("new segment, then the pinned one", 224 * KiB, 1 * MiB);
	/* [1250K, 1300K): the pinned one (to 1280K), then the new one at 1216K */
	check("pinned segment, then a new one", 1250 * KiB, 50 * KiB);

	pthread_mutex_lock(&hold_lock);
	holder_go = true;
	pthread_cond_broadcast(&hold_cond);
	pthread_mutex_unlock(&hold_lock);
	pthread_join(t, NULL);
	ok(held.calls == 1 && held.len == 128 * KiB &&
		   memcmp(held.bytes, src + 256 * KiB, 128 * KiB) == 0,
	   "the held reply carried the source's bytes at 256K");
	free(held.bytes);

	/* and a reader going on sequentially to the end gets the right bytes
	 * from every request the window answers (most of them) */
	unsigned asked = 0, answered = 0, right = 0;
	for (uint64_t off = 1300 * KiB; off < src_len; off += 256 * KiB) {
		struct reply rr;
		size_t want = off + 256 * KiB <= src_len ? 256 * KiB : src_len - off;
		asked++;
		if (req(&rr, off, 256 * KiB)) {
			answered++;
			right += rr.len == want && memcmp(rr.bytes, src + off, want) == 0;
		}
		free(rr.bytes);
	}
	is_int(right, answered, "reading on to the end: every answer from the window is right");
	ok(answered >= asked / 2, "and the window answered %u of %u requests", answered, asked);
}

/* blobs_fill, which the window's workers call: the bytes at off, at buf,
 * wherever off is (on a block or not), and an error, never an overrun, when
 * the blocks the range touches do not fit in buf. */
static void test_fill(struct fs_blob *fb)
{
	static const struct {
		uint64_t off;
		size_t len;
	} cases[] = {
		{0, 4096},	     {4096, 1 * MiB},	  {1, 1},
		{4095, 2},	     {12345, 100000},	  {1 * MiB + 7, 4089},
		{8 * MiB + 1, 9999}, {8 * MiB + 4320, 5}, {3 * MiB - 1, 1 * MiB},
	};
	size_t bufsize = 1 * MiB + 2 * AG_ALIGN;
	uint8_t *buf = NULL;
	if (posix_memalign((void **)&buf, AG_ALIGN, bufsize) != 0)
		bail("out of memory");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t off = cases[i].off;
		size_t want = off + cases[i].len <= src_len ? cases[i].len : src_len - off;
		memset(buf, 0, bufsize);
		ssize_t r = blobs_fill(fb, off, cases[i].len, buf, bufsize);
		ok(r == (ssize_t)want && memcmp(buf, src + off, want) == 0,
		   "blobs_fill of [%llu, +%zu) puts the source's bytes there at buf (%zd)",
		   (unsigned long long)off, cases[i].len, r);
	}
	ok(blobs_fill(fb, 1, 1 * MiB, buf, 1 * MiB) == -EINVAL,
	   "a range whose blocks do not fit in buf is refused");
	free(buf);
}

int main(void)
{
	src_len = 8 * MiB + 4321;
	src = malloc(src_len);
	if (!src)
		bail("out of memory");
	fill_bytes(src, src_len, 1210);

	ag_store *s = new_store("ra");
	ag_blob_info bi;
	int r = ag_put_buf(s, src, src_len, 0, NULL, &bi);
	if (r < 0)
		bail("ag_put_buf: %s", ag_strerror(r));

	fs_options_init(&ctx.opt);
	ctx.opt.readahead = 4 * MiB;
	ctx.store = s;
	if (blobs_init(&ctx.blobs) < 0)
		bail("blobs_init");
	struct node n = {.kind = N_BLOB, .size = src_len, .digest = bi.digest};
	struct fs_blob *fb = NULL;
	uint64_t bad;
	r = blobs_open(&ctx, &n, false, &fb, &bad);
	if (r < 0)
		bail("blobs_open: %s", ag_strerror(r));
	st = ra_open(&ctx, fb);
	if (!st)
		bail("ra_open gave no stream");

	test_fill(fb);
	test_restart_overlap();

	ra_close(&ctx, st);
	blobs_release(&ctx.blobs, fb);
	blobs_destroy(&ctx.blobs);
	fs_options_clear(&ctx.opt);
	ag_store_close(s);
	free(src);
	return done_testing();
}
