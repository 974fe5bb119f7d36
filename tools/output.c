/* SPDX-License-Identifier: Apache-2.0 */
/* agstore output: aligned tables for people, one JSON document for programs. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/tool.h"

struct table {
	size_t ncols;
	size_t nrows; /* data rows, not counting the header */
	size_t cap;
	char **cells; /* (nrows + 1) * ncols, row 0 is the header */
	bool *right;
};

struct table *table_new(size_t ncols, const char *const *headers)
{
	struct table *tb = calloc(1, sizeof(*tb));

	if (!tb)
		return NULL;
	tb->ncols = ncols;
	tb->right = calloc(ncols, sizeof(bool));
	tb->cap = 16;
	tb->cells = calloc(tb->cap * ncols, sizeof(char *));
	if (!tb->right || !tb->cells) {
		table_free(tb);
		return NULL;
	}
	for (size_t i = 0; i < ncols; i++) {
		const char *h = headers[i];
		if (h[0] == '>') {
			tb->right[i] = true;
			h++;
		}
		tb->cells[i] = strdup(h);
		if (!tb->cells[i]) {
			table_free(tb);
			return NULL;
		}
	}
	return tb;
}

int table_add(struct table *tb, const char *const *cells)
{
	size_t row = tb->nrows + 1;

	if (row + 1 > tb->cap) {
		size_t ncap = tb->cap * 2;
		char **n = realloc(tb->cells, ncap * tb->ncols * sizeof(char *));
		if (!n)
			return -ENOMEM;
		memset(n + tb->cap * tb->ncols, 0, (ncap - tb->cap) * tb->ncols * sizeof(char *));
		tb->cells = n;
		tb->cap = ncap;
	}
	for (size_t i = 0; i < tb->ncols; i++) {
		char *c = strdup(cells[i] ? cells[i] : "-");
		if (!c)
			return -ENOMEM;
		tb->cells[row * tb->ncols + i] = c;
	}
	tb->nrows++;
	return 0;
}

void table_print(const struct table *tb, FILE *f)
{
	size_t width[16] = {0};
	size_t ncols = tb->ncols < 16 ? tb->ncols : 16;

	for (size_t r = 0; r <= tb->nrows; r++)
		for (size_t i = 0; i < ncols; i++) {
			size_t w = strlen(tb->cells[r * tb->ncols + i]);
			if (w > width[i])
				width[i] = w;
		}
	for (size_t r = 0; r <= tb->nrows; r++) {
		for (size_t i = 0; i < ncols; i++) {
			const char *c = tb->cells[r * tb->ncols + i];
			bool last = i + 1 == ncols;
			if (tb->right[i])
				fprintf(f, "%*s", (int)width[i], c);
			else if (last)
				fputs(c, f);
			else
				fprintf(f, "%-*s", (int)width[i], c);
			fputs(last ? "\n" : "  ", f);
		}
	}
}

void table_free(struct table *tb)
{
	if (!tb)
		return;
	if (tb->cells)
		for (size_t i = 0; i < tb->cap * tb->ncols; i++)
			free(tb->cells[i]);
	free(tb->cells);
	free(tb->right);
	free(tb);
}

int out_json(json_t *doc)
{
	int r;

	if (!doc)
		return -ENOMEM;
	r = json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (r < 0)
		return -EIO;
	fputc('\n', stdout);
	return 0;
}

void fmt_time(int64_t t, char out[TOOL_TIME_LEN])
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (t == 0 || !gmtime_r(&tt, &tm)) {
		snprintf(out, TOOL_TIME_LEN, "-");
		return;
	}
	strftime(out, TOOL_TIME_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void fmt_size(uint64_t n, char out[TOOL_SIZE_LEN])
{
	static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	double v = (double)n;
	size_t u = 0;

	if (n < 1024) {
		snprintf(out, TOOL_SIZE_LEN, "%" PRIu64 " B", n);
		return;
	}
	v /= 1024.0;
	while (v >= 1024.0 && u + 1 < sizeof(unit) / sizeof(unit[0])) {
		v /= 1024.0;
		u++;
	}
	snprintf(out, TOOL_SIZE_LEN, "%.1f %s", v, unit[u]);
}

void fmt_digest(const ag_digest *d, char *out, size_t outlen)
{
	char hex[AG_HEX_LEN + 1];

	ag_digest_hex(d, hex);
	snprintf(out, outlen, "sha256:%s", hex);
}

void fmt_digest_short(const ag_digest *d, char out[13])
{
	char hex[AG_HEX_LEN + 1];

	ag_digest_hex(d, hex);
	memcpy(out, hex, 12);
	out[12] = '\0';
}

json_t *json_time(int64_t t)
{
	char buf[TOOL_TIME_LEN];

	if (t == 0)
		return json_null();
	fmt_time(t, buf);
	return json_string(buf);
}

json_t *json_digest(const ag_digest *d)
{
	char buf[80];

	fmt_digest(d, buf, sizeof(buf));
	return json_string(buf);
}

json_t *json_str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}
