/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The progress line on a terminal: bytes read of the total, rate and time
 * left, redrawn at most four times a second on stderr.  Off a terminal
 * bnd_progress_new() returns NULL and every call accepts NULL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "bundler/bundle.h"

struct bnd_progress {
	const char *prog;
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

struct bnd_progress *bnd_progress_new(const char *prog, uint64_t total)
{
	struct bnd_progress *p;

	if (!isatty(STDERR_FILENO) || !(p = calloc(1, sizeof(*p))))
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

	for (; v >= 1024 && u < 4; u++)
		v /= 1024;
	snprintf(out, n, "%.1f %s", v, units[u]);
}

void bnd_progress_add(struct bnd_progress *p, uint64_t bytes)
{
	char done[32], total[32], rate[32];
	double t, el, r;

	if (!p)
		return;
	p->done += bytes;
	t = now();
	if (t - p->last < 0.25)
		return;
	p->last = t;
	el = t - p->start;
	r = el > 0 ? (double)p->done / el : 0;
	human((double)p->done, done, sizeof(done));
	human((double)p->total, total, sizeof(total));
	human(r, rate, sizeof(rate));
	if (r > 0 && p->done <= p->total) {
		unsigned long eta = (unsigned long)((double)(p->total - p->done) / r);
		fprintf(stderr, "\r%s: %s of %s, %s/s, ETA %lu:%02lu:%02lu\033[K", p->prog, done,
			total, rate, eta / 3600, eta / 60 % 60, eta % 60);
	} else {
		fprintf(stderr, "\r%s: %s, %s/s\033[K", p->prog, done, rate);
	}
	p->drawn = true;
}

void bnd_progress_done(struct bnd_progress *p)
{
	if (!p)
		return;
	if (p->drawn)
		fprintf(stderr, "\r\033[K");
	free(p);
}
