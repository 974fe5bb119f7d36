/* SPDX-License-Identifier: Apache-2.0 */
/* ISO-8601 UTC times (store/isotime.h). */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <time.h>

#include "store/isotime.h"

/* Reads exactly n digits at *p into *v. */
static int digits(const char **p, int n, int *v)
{
	int x = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -EINVAL;
		x = x * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*v = x;
	return 0;
}

static int expect(const char **p, char c)
{
	if (**p != c)
		return -EINVAL;
	(*p)++;
	return 0;
}

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int check_date(int y, int mo, int d)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int max;

	if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1)
		return -EINVAL;
	max = mdays[mo - 1] + (mo == 2 && leap(y));
	return d <= max ? 0 : -EINVAL;
}

/* The time part after 'T' or ' ': HH:MM[:SS][Z]. */
static int parse_clock(const char *p, int *h, int *mi, int *s)
{
	*s = 0;
	if (digits(&p, 2, h) < 0 || expect(&p, ':') < 0 || digits(&p, 2, mi) < 0)
		return -EINVAL;
	if (*p == ':' && (p++, digits(&p, 2, s) < 0))
		return -EINVAL;
	if (*p == 'Z' || *p == 'z')
		p++;
	if (*p != '\0')
		return -EINVAL;
	if (*h > 23 || *mi > 59 || *s > 60)
		return -EINVAL;
	return 0;
}

int ag_parse_time(const char *s, int64_t *out)
{
	const char *p = s;
	int y, mo, d, h = 0, mi = 0, sec = 0;
	struct tm tm = {0};

	if (!s || digits(&p, 4, &y) < 0 || expect(&p, '-') < 0 || digits(&p, 2, &mo) < 0 ||
	    expect(&p, '-') < 0 || digits(&p, 2, &d) < 0)
		return -EINVAL;
	if (check_date(y, mo, d) < 0)
		return -EINVAL;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		if (parse_clock(p + 1, &h, &mi, &sec) < 0)
			return -EINVAL;
	} else if (*p != '\0') {
		return -EINVAL;
	}
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	*out = (int64_t)timegm(&tm);
	return 0;
}
