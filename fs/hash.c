/* SPDX-License-Identifier: Apache-2.0 */
/*
 * verify=full without tying up the FUSE threads.  Hashing a multi-GB blob
 * whole takes seconds to minutes; done inside the open handler, a few such
 * opens took every thread and the mount stopped answering.  Instead the
 * open of a blob not yet hashed in this mount becomes a waiter on the one
 * job of its digest, and the FUSE thread returns at once (the low-level API
 * lets another thread answer a request later).  FS_HASHERS threads of our
 * own run the jobs, one hash per blob whatever the number of openers; when
 * it is done every waiter gets its answer.  Everything else (other files,
 * reads, listings) keeps being served meanwhile.
 */
#include <errno.h>
#include <string.h>
#include <syslog.h>

#include "fs/agfs.h"

struct waiter {
	fuse_req_t req;
	struct fuse_file_info fi;
	void *h;
};

struct job {
	struct node *n;
	struct waiter *w;
	size_t nw, cap;
	bool running;
	struct job *next;
};

struct fs_hashers {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *jobs;
	bool stop;
	unsigned n;
	pthread_t tids[FS_MAX_THREADS];
};

static struct job *take_job(struct fs_hashers *hs)
{
	for (struct job *j = hs->jobs; j; j = j->next)
		if (!j->running)
			return j;
	return NULL;
}

static void unlink_job(struct fs_hashers *hs, struct job *j)
{
	for (struct job **p = &hs->jobs; *p; p = &(*p)->next) {
		if (*p == j) {
			*p = j->next;
			return;
		}
	}
}

static void answer(struct fs_ctx *c, struct job *j, int r, uint64_t bad)
{
	for (size_t i = 0; i < j->nw; i++)
		ops_open_hashed(c, j->w[i].req, &j->w[i].fi, j->n, j->w[i].h, r, bad);
	free(j->w);
	free(j);
}

static void *hasher_main(void *arg)
{
	struct fs_ctx *c = arg;
	struct fs_hashers *hs = c->hashers;
	pthread_mutex_lock(&hs->lock);
	while (!hs->stop) {
		struct job *j = take_job(hs);
		if (!j) {
			pthread_cond_wait(&hs->cond, &hs->lock);
			continue;
		}
		j->running = true;
		pthread_mutex_unlock(&hs->lock);
		struct fs_blob *fb = NULL;
		uint64_t bad = UINT64_MAX;
		int r = blobs_open(c, j->n, true, &fb, &bad); /* hashes it whole */
		if (r == 0 && blobs_release(&c->blobs, fb))
			lease_sync(c);
		pthread_mutex_lock(&hs->lock);
		unlink_job(hs, j); /* waiters that came meanwhile are in j too */
		pthread_mutex_unlock(&hs->lock);
		answer(c, j, r, bad);
		pthread_mutex_lock(&hs->lock);
	}
	pthread_mutex_unlock(&hs->lock);
	return NULL;
}

int hash_start(struct fs_ctx *c)
{
	struct fs_hashers *hs = calloc(1, sizeof(*hs));
	if (!hs)
		return -ENOMEM;
	pthread_mutex_init(&hs->lock, NULL);
	pthread_cond_init(&hs->cond, NULL);
	c->hashers = hs;
	unsigned want = FS_HASHERS(c->opt.threads);
	for (; hs->n < want; hs->n++) {
		int r = pthread_create(&hs->tids[hs->n], NULL, hasher_main, c);
		if (r != 0) {
			hash_stop(c);
			return -r;
		}
	}
	return 0;
}

void hash_stop(struct fs_ctx *c)
{
	struct fs_hashers *hs = c->hashers;
	if (!hs)
		return;
	pthread_mutex_lock(&hs->lock);
	hs->stop = true;
	pthread_cond_broadcast(&hs->cond);
	pthread_mutex_unlock(&hs->lock);
	for (unsigned i = 0; i < hs->n; i++)
		pthread_join(hs->tids[i], NULL);
	while (hs->jobs) {
		struct job *j = hs->jobs;
		hs->jobs = j->next;
		answer(c, j, -EIO, UINT64_MAX);
	}
	pthread_cond_destroy(&hs->cond);
	pthread_mutex_destroy(&hs->lock);
	free(hs);
	c->hashers = NULL;
}

void hash_open(struct fs_ctx *c, fuse_req_t req, struct fuse_file_info *fi, struct node *n, void *h)
{
	struct fs_hashers *hs = c->hashers;
	pthread_mutex_lock(&hs->lock);
	struct job *j = hs->jobs;
	while (j && j->n != n && !ag_digest_eq(&j->n->digest, &n->digest))
		j = j->next;
	if (!j && (j = calloc(1, sizeof(*j)))) {
		j->n = n;
		j->next = hs->jobs;
		hs->jobs = j;
		pthread_cond_signal(&hs->cond);
	}
	int r = j ? 0 : -ENOMEM;
	if (j && j->nw == j->cap) {
		size_t cap = j->cap ? j->cap * 2 : 4;
		struct waiter *w = realloc(j->w, cap * sizeof(*w));
		if (w) {
			j->w = w;
			j->cap = cap;
		} else {
			r = -ENOMEM;
		}
	}
	if (r == 0)
		j->w[j->nw++] = (struct waiter){req, *fi, h};
	pthread_mutex_unlock(&hs->lock);
	if (r < 0)
		ops_open_hashed(c, req, fi, n, h, r, UINT64_MAX);
}
