/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Staging small members on a thread of their own: the reader reads a small
 * member whole into a buffer, begins its stage and hashes it (the whole
 * blob's SHA-256, AG_STAGE_DIGEST), hands stage and buffer over and goes on
 * to the next file, while the stager makes the staging file, writes it,
 * builds its fs-verity tree (AG_STAGE_DATA | AG_STAGE_TREE), ends and parks
 * it.  A bundle of many small files so keeps both cores busy, each with
 * about half of the work.
 *
 * The stager never touches the member table (the reader may grow it): each
 * job carries its member's index, and the reader copies the digest (and
 * any failure) into the table when it collects the job (as it submits
 * more, and at imp_smallq_finish, before anything reads a digest).  What is
 * in flight is bounded (SMALLQ_JOBS jobs, SMALLQ_BYTES bytes).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "importer/import.h"

#define SMALLQ_JOBS  256
#define SMALLQ_BYTES (16u << 20)

struct job {
	struct job *next;
	size_t idx; /* in src->m */
	char *buf;
	size_t len;
	ag_stage *st; /* the member's (it frees it); parked when done without err */
	ag_digest digest;
	int err;
	bool done;
};

struct imp_smallq {
	ag_store *store;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t work;	 /* a job was queued, or stop */
	pthread_cond_t done;	 /* a job was done */
	struct job *head, *tail; /* in submission order; done ones first */
	struct job *next;	 /* the next job for the stager */
	size_t njobs, nbytes;	 /* queued and not yet collected */
	bool stop;
	bool failed; /* a job failed: the reader stops at its next submit */
};

static void stage_job(struct job *j)
{
	ag_blob_info bi = {0};
	int r = ag_stage_write_parts(j->st, j->buf, j->len, AG_STAGE_DATA | AG_STAGE_TREE);

	if (r == 0)
		r = ag_stage_end(j->st, &bi);
	if (r == 0 && bi.size != j->len)
		r = -EIO;
	if (r == 0)
		r = ag_stage_park(j->st);
	j->digest = bi.digest;
	j->err = r;
	free(j->buf);
	j->buf = NULL;
}

static void *stager(void *arg)
{
	struct imp_smallq *q = arg;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (!q->next && !q->stop)
			pthread_cond_wait(&q->work, &q->mu);
		struct job *j = q->next;
		if (!j)
			break;
		q->next = j->next;
		pthread_mutex_unlock(&q->mu);
		stage_job(j);
		pthread_mutex_lock(&q->mu);
		j->done = true;
		q->failed |= j->err < 0;
		pthread_cond_broadcast(&q->done);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

int imp_smallq_new(ag_store *store, struct imp_smallq **out)
{
	struct imp_smallq *q = calloc(1, sizeof(*q));

	if (!q)
		return -ENOMEM;
	q->store = store;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->work, NULL);
	pthread_cond_init(&q->done, NULL);
	if (pthread_create(&q->th, NULL, stager, q) != 0) {
		pthread_mutex_destroy(&q->mu);
		pthread_cond_destroy(&q->work);
		pthread_cond_destroy(&q->done);
		free(q);
		return -EAGAIN;
	}
	*out = q;
	return 0;
}

/* Copies the results of the done jobs at the head into the member table
 * (called with q->mu held; the table is the reader's alone). */
static int collect(struct imp_smallq *q, struct imp_source *src, struct imp_error *e)
{
	int r = 0;

	while (q->head && q->head->done) {
		struct job *j = q->head;
		struct imp_member *mb = &src->m[j->idx];
		q->head = j->next;
		if (!q->head)
			q->tail = NULL;
		q->njobs--;
		q->nbytes -= j->len;
		mb->digest = j->digest;
		if (j->err < 0 && r == 0)
			r = imp_fail(e, IMP_IO, j->err, mb->path, "staging failed (%s)",
				     ag_strerror(j->err));
		free(j);
	}
	return r;
}

int imp_smallq_submit(struct imp_smallq *q, struct imp_source *src, size_t idx, char *buf,
		      size_t len, struct imp_error *e)
{
	struct job *j = calloc(1, sizeof(*j));
	struct imp_member *mb = &src->m[idx];
	int r = j ? ag_stage_begin(q->store, 0, &mb->stage) : -ENOMEM;

	if (r == 0)
		r = ag_stage_write_parts(mb->stage, buf, len, AG_STAGE_DIGEST);
	if (r < 0) {
		free(j);
		free(buf);
		return imp_fail(e, IMP_IO, r, mb->path, "staging failed (%s)", ag_strerror(r));
	}
	j->st = mb->stage;
	j->idx = idx;
	j->buf = buf;
	j->len = len;
	pthread_mutex_lock(&q->mu);
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	if (!q->next)
		q->next = j;
	q->njobs++;
	q->nbytes += len;
	pthread_cond_signal(&q->work);
	while (!q->failed && (q->njobs > SMALLQ_JOBS || q->nbytes > SMALLQ_BYTES) &&
	       !(q->head && q->head->done))
		pthread_cond_wait(&q->done, &q->mu);
	r = collect(q, src, e);
	pthread_mutex_unlock(&q->mu);
	return r;
}

int imp_smallq_finish(struct imp_smallq *q, struct imp_source *src, struct imp_error *e)
{
	int r;

	if (!q)
		return 0;
	pthread_mutex_lock(&q->mu);
	while (q->tail && !q->tail->done) /* done in order: the last one is the last done */
		pthread_cond_wait(&q->done, &q->mu);
	r = collect(q, src, e);
	q->stop = true;
	pthread_cond_broadcast(&q->work);
	pthread_mutex_unlock(&q->mu);
	pthread_join(q->th, NULL);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->work);
	pthread_cond_destroy(&q->done);
	free(q);
	return r;
}
