/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A staging thread: the reader (decompression and the outer hash) runs on
 * one core while the store hashes, chunk-tables and writes the member's
 * bytes on another.  The reader copies each block of a member into a ring
 * of slots; the worker hands them to ag_stage_write() in order.  A member
 * is flushed (the ring drained) before it is ended, aborted or freed, so the
 * worker never touches a stage the reader is done with.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "importer/import.h"

#define NSLOTS	  4
#define SLOT_SIZE (1u << 20)

struct slot {
	char *buf;
	size_t len;
	ag_stage *st;
};

struct imp_pipe {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct slot slots[NSLOTS];
	size_t w, r, count; /* next to fill, next to write, filled slots */
	int err;
	bool stop;
};

static void *worker(void *arg)
{
	struct imp_pipe *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->count == 0 && !p->stop)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->count == 0)
			break;
		struct slot *s = &p->slots[p->r % NSLOTS];
		bool skip = p->err != 0;
		pthread_mutex_unlock(&p->mu);
		int r = skip ? 0 : ag_stage_write(s->st, s->buf, s->len);
		pthread_mutex_lock(&p->mu);
		if (r < 0 && !p->err)
			p->err = r;
		s->len = 0;
		p->r++;
		p->count--;
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int imp_pipe_new(struct imp_pipe **out)
{
	struct imp_pipe *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < NSLOTS; i++)
		if (!(p->slots[i].buf = malloc(SLOT_SIZE)))
			goto nomem;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (pthread_create(&p->th, NULL, worker, p) != 0) {
		pthread_mutex_destroy(&p->mu);
		pthread_cond_destroy(&p->cv);
		goto nomem;
	}
	*out = p;
	return 0;
nomem:
	for (size_t i = 0; i < NSLOTS; i++)
		free(p->slots[i].buf);
	free(p);
	return -ENOMEM;
}

/* Hands the slot being filled to the worker; waits for a free one. */
static void submit(struct imp_pipe *p)
{
	pthread_mutex_lock(&p->mu);
	p->w++;
	p->count++;
	pthread_cond_broadcast(&p->cv);
	while (p->count == NSLOTS)
		pthread_cond_wait(&p->cv, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

int imp_pipe_write(struct imp_pipe *p, ag_stage *st, const void *buf, size_t len)
{
	const char *b = buf;

	while (len > 0) {
		struct slot *s = &p->slots[p->w % NSLOTS];
		size_t n = SLOT_SIZE - s->len < len ? SLOT_SIZE - s->len : len;
		s->st = st;
		memcpy(s->buf + s->len, b, n);
		s->len += n;
		b += n;
		len -= n;
		if (s->len == SLOT_SIZE)
			submit(p);
	}
	return __atomic_load_n(&p->err, __ATOMIC_RELAXED);
}

int imp_pipe_flush(struct imp_pipe *p)
{
	int err;

	if (!p)
		return 0;
	if (p->slots[p->w % NSLOTS].len > 0)
		submit(p);
	pthread_mutex_lock(&p->mu);
	while (p->count > 0)
		pthread_cond_wait(&p->cv, &p->mu);
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
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->th, NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	for (size_t i = 0; i < NSLOTS; i++)
		free(p->slots[i].buf);
	free(p);
}
