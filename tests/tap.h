/* SPDX-License-Identifier: Apache-2.0 */
/* A tiny TAP producer for C unit tests: ok(), is_int(), skip_all(), done_testing(). */
#ifndef AGFS_TAP_H
#define AGFS_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed;

static inline int tap_ok(int cond, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static inline int tap_ok(int cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	printf("%sok %d - ", cond ? "" : "not ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!cond) {
		tap_failed++;
		printf("#   Failed at %s line %d\n", file, line);
	}
	fflush(stdout);
	return cond;
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...)                                           \
	do {                                                             \
		long long g_ = (long long)(got), w_ = (long long)(want); \
		if (!tap_ok(g_ == w_, __FILE__, __LINE__, __VA_ARGS__))  \
			printf("#   got %lld, want %lld\n", g_, w_);     \
	} while (0)
#define diag(...)                    \
	do {                         \
		printf("# ");        \
		printf(__VA_ARGS__); \
		printf("\n");        \
	} while (0)
/* Aborts the whole test file: a broken precondition, not a test result. */
#define bail(...)                     \
	do {                          \
		printf("Bail out! "); \
		printf(__VA_ARGS__);  \
		printf("\n");         \
		exit(255);            \
	} while (0)

static inline void skip_all(const char *why)
{
	printf("1..0 # skip %s\n", why);
	exit(0);
}

static inline int done_testing(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
