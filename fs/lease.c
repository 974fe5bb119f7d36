/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The mount's lease (store.h, "leases and pins"): the generations the root
 * serves (the current one, the previous one during its grace period, a
 * -o generation= pin, and the store's current one the watcher is about to
 * switch to) and every blob open or being opened.  agstore gc keeps all of
 * them, so a file already open keeps reading its verified bytes and a
 * pinned mount keeps its generation.
 *
 * Ordering: a blob is added to the lease, under the store's lease guard,
 * BEFORE ag_blob_open() reads its record; the watcher leases the
 * generations it is going to serve under the guard, in the same hold as the
 * snapshot that told it they exist.  gc reads the leases and deletes
 * records under the guard held exclusively, so either it sees the lease or
 * the mount sees the record gone (and answers ENOENT).
 */
#include <errno.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "fs/agfs.h"

void lease_start(struct fs_ctx *c)
{
	struct fs_lease *fl = &c->lease;
	pthread_mutex_init(&fl->lock, NULL);
	int r = ag_lease_open(c->store, "agfs", &fl->l);
	if (r < 0) {
		fl->l = NULL;
		syslog(LOG_WARNING,
		       "cannot hold a lease in %s/leases (%s): agstore gc will not know what "
		       "this mount serves",
		       c->store_path, ag_strerror(r));
	}
}

void lease_stop(struct fs_ctx *c)
{
	ag_lease_close(c->lease.l);
	c->lease.l = NULL;
	free(c->lease.gen_blobs);
	c->lease.gen_blobs = NULL;
	free(c->lease.written);
	c->lease.written = NULL;
	pthread_mutex_destroy(&c->lease.lock);
}

void lease_guard(struct fs_ctx *c, int *fd)
{
	*fd = -1;
	if (c->lease.l && ag_lease_guard(c->store, false, fd) < 0)
		*fd = -1;
}

void lease_unguard(int fd)
{
	ag_lease_unguard(fd);
}

static int dg_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(ag_digest));
}

/* With fl->lock held. */
static int write_lease(struct fs_ctx *c)
{
	struct fs_lease *fl = &c->lease;
	ag_digest *open = NULL;
	size_t n = 0;
	int r = blobs_digests(&c->blobs, &open, &n);
	if (r < 0)
		return r;
	size_t total = n + fl->npending + fl->ngen_blobs;
	ag_digest *all = realloc(open, (total + 1) * sizeof(*all));
	if (!all) {
		free(open);
		return -ENOMEM;
	}
	memcpy(all + n, fl->pending, fl->npending * sizeof(*all));
	if (fl->ngen_blobs)
		memcpy(all + n + fl->npending, fl->gen_blobs, fl->ngen_blobs * sizeof(*all));
	r = ag_lease_set(fl->l, fl->gens, fl->ngens, all, total);
	if (r < 0) {
		free(all);
		syslog(LOG_ERR, "cannot write this mount's lease in %s/leases: %s", c->store_path,
		       ag_strerror(r));
		return r;
	}
	qsort(all, total, sizeof(*all), dg_cmp);
	free(fl->written);
	fl->written = all;
	fl->nwritten = total;
	fl->dirty = false;
	return 0;
}

/* With fl->lock held: is d in the lease as written? */
static bool in_written(const struct fs_lease *fl, const ag_digest *d)
{
	return fl->nwritten && bsearch(d, fl->written, fl->nwritten, sizeof(*d), dg_cmp);
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The generations the root serves, with the tree's read lock held. */
static size_t served_ids(struct fs_ctx *c, uint64_t store_cur, uint64_t ids[FS_LEASE_GENS])
{
	struct fs_tree *t = &c->tree;
	/* the store's current one is leased so the root can switch to it; a
	 * -o generation= mount never switches */
	uint64_t cand[FS_LEASE_GENS] = {
		c->opt.generation ? 0 : store_cur, t->current ? t->current->id : 0,
		t->grace && fs_mono_s() < t->grace_until ? t->grace->id : 0, c->opt.generation};
	size_t n = 0;
	for (size_t i = 0; i < FS_LEASE_GENS; i++)
		if (cand[i])
			ids[n++] = cand[i];
	qsort(ids, n, sizeof(*ids), u64_cmp);
	size_t w = 0;
	for (size_t i = 0; i < n; i++)
		if (w == 0 || ids[w - 1] != ids[i])
			ids[w++] = ids[i];
	return w;
}

/* Every blob of those generations, with the tree's read lock held. */
static int served_blobs(struct fs_ctx *c, const uint64_t *ids, size_t n, ag_digest **out,
			size_t *nout)
{
	size_t cnt = 0, cap = 0;
	ag_digest *v = NULL;
	for (size_t i = 0; i < n; i++) {
		struct gtree *gt = tree_find_gen(&c->tree, ids[i]);
		const ag_gen *g = gt ? gt->gen : NULL;
		for (size_t m = 0; g && m < g->nmodels; m++) {
			for (size_t b = 0; b < ag_model_nblobs(&g->models[m]); b++) {
				if (cnt == cap) {
					cap = cap ? cap * 2 : 64;
					ag_digest *nv = realloc(v, cap * sizeof(*v));
					if (!nv) {
						free(v);
						return -ENOMEM;
					}
					v = nv;
				}
				v[cnt++] = *ag_model_blob(&g->models[m], b);
			}
		}
	}
	*out = v;
	*nout = cnt;
	return 0;
}

int lease_served(struct fs_ctx *c, uint64_t store_cur)
{
	struct fs_lease *fl = &c->lease;
	if (!fl->l)
		return 0;
	uint64_t ids[FS_LEASE_GENS];
	ag_digest *blobs = NULL;
	size_t nb = 0;
	pthread_rwlock_rdlock(&c->tree.lock);
	size_t n = served_ids(c, store_cur, ids);
	int r = served_blobs(c, ids, n, &blobs, &nb);
	pthread_rwlock_unlock(&c->tree.lock);
	if (r < 0)
		return r;
	pthread_mutex_lock(&fl->lock);
	bool same =
		n == fl->ngens && !memcmp(ids, fl->gens, n * sizeof(*ids)) && nb == fl->ngen_blobs;
	if (!same) {
		memcpy(fl->gens, ids, n * sizeof(*ids));
		fl->ngens = n;
		free(fl->gen_blobs);
		fl->gen_blobs = TAKE_PTR(blobs);
		fl->ngen_blobs = nb;
		r = write_lease(c);
	}
	pthread_mutex_unlock(&fl->lock);
	free(blobs);
	return r;
}

/*
 * Most opens need no write: the blobs of the generations the root serves
 * are in the lease already, and so is a blob closed less than a poll ago
 * (removals are written lazily by the watcher).  d stays pending until
 * lease_blob_done(), so a lazy rewrite cannot drop it meanwhile.
 */
int lease_blob(struct fs_ctx *c, const ag_digest *d, int *guard)
{
	struct fs_lease *fl = &c->lease;
	*guard = -1;
	if (!fl->l)
		return 0;
	pthread_mutex_lock(&fl->lock);
	if (fl->npending == FS_LEASE_PENDING) {
		pthread_mutex_unlock(&fl->lock);
		return -EAGAIN;
	}
	fl->pending[fl->npending++] = *d;
	bool need = !in_written(fl, d);
	pthread_mutex_unlock(&fl->lock);
	if (!need)
		return 0;
	lease_guard(c, guard); /* not under fl->lock: gc may hold it a while */
	pthread_mutex_lock(&fl->lock);
	int r = write_lease(c);
	pthread_mutex_unlock(&fl->lock);
	return r;
}

void lease_blob_done(struct fs_ctx *c, const ag_digest *d)
{
	struct fs_lease *fl = &c->lease;
	if (!fl->l)
		return;
	pthread_mutex_lock(&fl->lock);
	for (size_t i = 0; i < fl->npending; i++) {
		if (ag_digest_eq(&fl->pending[i], d)) {
			fl->pending[i] = fl->pending[--fl->npending];
			break;
		}
	}
	pthread_mutex_unlock(&fl->lock);
}

void lease_sync(struct fs_ctx *c)
{
	struct fs_lease *fl = &c->lease;
	if (!fl->l)
		return;
	pthread_mutex_lock(&fl->lock);
	fl->dirty = true; /* written by lease_flush(), from the watcher */
	pthread_mutex_unlock(&fl->lock);
}

void lease_flush(struct fs_ctx *c)
{
	struct fs_lease *fl = &c->lease;
	if (!fl->l)
		return;
	pthread_mutex_lock(&fl->lock);
	if (fl->dirty)
		write_lease(c);
	pthread_mutex_unlock(&fl->lock);
}
