/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The progress line on a terminal: bytes read, rate and (when the source's
 * size is known) the time left, redrawn at most four times a second on
 * stderr.  Quiet when stderr is not a terminal: imp_progress_new() then
 * returns NULL and every call below accepts NULL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "importer/import.h"

struct imp_progress {
	const char *prog; /* the line's prefix: agimport, agbundle */
	uint64_t total, done;
	double start, last;
	bool drawn;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct imp_progress *imp_progress_new(const char *prog, uint64_t total)
{
	struct imp_progress *p;

	if (!isatty(STDERR_FILENO))
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->prog = prog;
	p->total = total;
	p->start = p->last = now();
	return p;
}

static void human(double v, char *out, size_t n)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	size_t u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(out, n, "%.1f %s", v, units[u]);
}

static void draw(struct imp_progress *p, double t)
{
	char done[32], total[32], rate[32];
	double el = t - p->start, r = el > 0 ? (double)p->done / el : 0;

	human((double)p->done, done, sizeof(done));
	human(r, rate, sizeof(rate));
	if (p->total && r > 0 && p->done <= p->total) {
		unsigned long eta = (unsigned long)((double)(p->total - p->done) / r);
		human((double)p->total, total, sizeof(total));
		fprintf(stderr, "\r%s: %s of %s, %s/s, ETA %lu:%02lu:%02lu\033[K", p->prog, done,
			total, rate, eta / 3600, eta / 60 % 60, eta % 60);
	} else {
		fprintf(stderr, "\r%s: %s, %s/s\033[K", p->prog, done, rate);
	}
	p->drawn = true;
}

void imp_progress_add(struct imp_progress *p, uint64_t bytes)
{
	double t;

	if (!p)
		return;
	p->done += bytes;
	t = now();
	if (t - p->last >= 0.25) {
		p->last = t;
		draw(p, t);
	}
}

void imp_progress_done(struct imp_progress *p)
{
	if (!p)
		return;
	if (p->drawn)
		fprintf(stderr, "\r\033[K");
	free(p);
}
