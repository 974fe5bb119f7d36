/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The staging pipe: the reader (decompression and the outer hash) fills a
 * ring of aligned 1 MiB slots with a member's bytes; three workers take
 * every slot in order, each doing one part of the store's staging
 * (ag_stage_write_parts): writing the bytes into the staged file (large
 * aligned writes, O_DIRECT), the whole blob's SHA-256, and its fs-verity
 * tree.  So no byte is hashed twice on one thread, and the reader never
 * waits for a hash.  A slot is refilled once all three are done with it.  A
 * member is flushed (the ring drained) before it is ended, aborted or freed,
 * so no worker touches a stage the reader is done with.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "importer/import.h"

#define NSLOTS	  8
#define SLOT_SIZE (1u << 20)
#define NWORKERS  3

static const unsigned part_of[NWORKERS] = {AG_STAGE_DATA, AG_STAGE_DIGEST, AG_STAGE_TREE};

struct slot {
	char *buf; /* AG_ALIGN-aligned */
	size_t len;
	ag_stage *st;
};

struct imp_pipe;
struct worker {
	struct imp_pipe *p;
	pthread_t th;
	unsigned idx;
	size_t r; /* next slot this worker takes (a count, not an index) */
};

struct imp_pipe {
	pthread_mutex_t mu;
	pthread_cond_t work; /* a slot was submitted, or stop */
	pthread_cond_t done; /* a worker finished a slot */
	struct slot slots[NSLOTS];
	struct worker w[NWORKERS];
	unsigned nthreads;
	size_t filled; /* slots submitted so far (a count) */
	/* The slot being filled (slots[filled % NSLOTS]): the reader's alone. */
	size_t cur_len;
	ag_stage *cur_st;
	int err;
	bool stop;
};

/* The oldest slot some worker still needs. */
static size_t oldest(const struct imp_pipe *p)
{
	size_t m = p->filled;
	for (unsigned i = 0; i < p->nthreads; i++)
		if (p->w[i].r < m)
			m = p->w[i].r;
	return m;
}

static void *worker(void *arg)
{
	struct worker *w = arg;
	struct imp_pipe *p = w->p;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (w->r == p->filled && !p->stop)
			pthread_cond_wait(&p->work, &p->mu);
		if (w->r == p->filled)
			break;
		struct slot *s = &p->slots[w->r % NSLOTS];
		bool skip = p->err != 0;
		pthread_mutex_unlock(&p->mu);
		int r = skip ? 0 : ag_stage_write_parts(s->st, s->buf, s->len, part_of[w->idx]);
		pthread_mutex_lock(&p->mu);
		if (r < 0 && !p->err)
			p->err = r;
		w->r++;
		pthread_cond_broadcast(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void pipe_stop(struct imp_pipe *p)
{
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->w[i].th, NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	for (size_t i = 0; i < NSLOTS; i++)
		free(p->slots[i].buf);
	free(p);
}

int imp_pipe_new(struct imp_pipe **out)
{
	struct imp_pipe *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	for (size_t i = 0; i < NSLOTS; i++)
		if (posix_memalign((void **)&p->slots[i].buf, AG_ALIGN, SLOT_SIZE) != 0) {
			p->slots[i].buf = NULL;
			pipe_stop(p);
			return -ENOMEM;
		}
	for (unsigned i = 0; i < NWORKERS; i++) {
		p->w[i] = (struct worker){.p = p, .idx = i};
		if (pthread_create(&p->w[i].th, NULL, worker, &p->w[i]) != 0) {
			pipe_stop(p);
			return -EAGAIN;
		}
		p->nthreads++;
	}
	*out = p;
	return 0;
}

/* Hands the slot being filled to the workers; waits until the next one is
 * free. */
static void submit(struct imp_pipe *p)
{
	struct slot *s = &p->slots[p->filled % NSLOTS];

	pthread_mutex_lock(&p->mu);
	s->len = p->cur_len;
	s->st = p->cur_st;
	p->cur_len = 0;
	p->filled++;
	pthread_cond_broadcast(&p->work);
	while (p->filled - oldest(p) == NSLOTS)
		pthread_cond_wait(&p->done, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

int imp_pipe_write(struct imp_pipe *p, ag_stage *st, const void *buf, size_t len)
{
	const char *b = buf;

	if (p->cur_len > 0 && p->cur_st != st)
		submit(p); /* never two stages in one slot */
	p->cur_st = st;
	while (len > 0) {
		/* No worker is on the slot being filled: submit() waited until
		 * every one was done with its previous use. */
		char *dst = p->slots[p->filled % NSLOTS].buf;
		size_t n = SLOT_SIZE - p->cur_len < len ? SLOT_SIZE - p->cur_len : len;
		memcpy(dst + p->cur_len, b, n);
		p->cur_len += n;
		b += n;
		len -= n;
		if (p->cur_len == SLOT_SIZE)
			submit(p);
	}
	return __atomic_load_n(&p->err, __ATOMIC_RELAXED);
}

int imp_pipe_flush(struct imp_pipe *p)
{
	int err;

	if (!p)
		return 0;
	if (p->cur_len > 0)
		submit(p);
	pthread_mutex_lock(&p->mu);
	while (oldest(p) != p->filled)
		pthread_cond_wait(&p->done, &p->mu);
	err = p->err;
	p->err = 0;
	pthread_mutex_unlock(&p->mu);
	return err;
}

void imp_pipe_free(struct imp_pipe *p)
{
	if (!p)
		return;
	imp_pipe_flush(p);
	pipe_stop(p);
}
