/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GNU sha256sum lists, as `sha256sum` and `sha256sum -b` write them:
 *   <64 hex><space><space or '*'><file name>\n
 * A line starting with '\' has an escaped file name ("\\" for a backslash,
 * "\n" for a newline, "\r" for a carriage return).  Empty lines are skipped;
 * anything else that does not match is a malformed line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "importer/import.h"

static char *unescape(const char *p, size_t n, bool escaped)
{
	char *out = malloc(n + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (!escaped || p[i] != '\\') {
			*o++ = p[i];
			continue;
		}
		if (++i == n)
			goto bad;
		if (p[i] == '\\')
			*o++ = '\\';
		else if (p[i] == 'n')
			*o++ = '\n';
		else if (p[i] == 'r')
			*o++ = '\r';
		else
			goto bad;
	}
	*o = '\0';
	return out;
bad:
	free(out);
	errno = EINVAL;
	return NULL;
}

static int parse_line(const char *p, size_t n, struct imp_sumline *l)
{
	bool escaped = false;

	if (n > 0 && p[0] == '\\') {
		escaped = true;
		p++;
		n--;
	}
	if (n < AG_HEX_LEN + 3 || p[AG_HEX_LEN] != ' ')
		return -EINVAL;
	if (ag_digest_parse(p, AG_HEX_LEN, &l->digest) < 0)
		return -EINVAL;
	char mode = p[AG_HEX_LEN + 1];
	if (mode != ' ' && mode != '*')
		return -EINVAL;
	l->binary = mode == '*';
	const char *name = p + AG_HEX_LEN + 2;
	size_t nlen = n - AG_HEX_LEN - 2;
	if (nlen > 2 * IMP_MAX_PATH || memchr(name, '\0', nlen))
		return -EINVAL;
	l->path = unescape(name, nlen, escaped);
	if (!l->path)
		return errno == ENOMEM ? -ENOMEM : -EINVAL;
	if (strlen(l->path) > IMP_MAX_PATH) {
		free(l->path);
		l->path = NULL;
		return -EINVAL;
	}
	return 0;
}

static int grow(struct imp_sumlist *out, size_t *cap)
{
	if (out->n < *cap)
		return 0;
	if (out->n >= IMP_MAX_LINES)
		return -E2BIG;
	size_t ncap = *cap ? *cap * 2 : 16;
	struct imp_sumline *nl = realloc(out->lines, ncap * sizeof(*nl));
	if (!nl)
		return -ENOMEM;
	out->lines = nl;
	*cap = ncap;
	return 0;
}

int imp_sumlist_parse(const char *buf, size_t len, struct imp_sumlist *out, size_t *bad_line)
{
	size_t cap = 0, lineno = 0, pos = 0;

	out->lines = NULL;
	out->n = 0;
	*bad_line = 0;
	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - buf) : len;
		lineno++;
		if (end > pos) {
			int r = grow(out, &cap);
			if (r == 0)
				r = parse_line(buf + pos, end - pos, &out->lines[out->n]);
			if (r < 0) {
				*bad_line = lineno;
				imp_sumlist_free(out);
				return r == -ENOMEM ? r : -EINVAL;
			}
			out->lines[out->n++].lineno = lineno;
		}
		pos = end + 1;
	}
	return 0;
}

void imp_sumlist_free(struct imp_sumlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->lines[i].path);
	free(l->lines);
	l->lines = NULL;
	l->n = 0;
}

char *imp_sumline_format(const ag_digest *d, const char *path)
{
	bool esc = strpbrk(path, "\\\n\r") != NULL;
	size_t n = strlen(path);
	char hex[AG_HEX_LEN + 1];
	char *out = malloc(AG_HEX_LEN + 2 * n + 5), *o;

	if (!out)
		return NULL;
	ag_digest_hex(d, hex);
	o = out;
	if (esc)
		*o++ = '\\';
	o += sprintf(o, "%s  ", hex);
	for (const char *p = path; *p; p++) {
		if (esc && (*p == '\\' || *p == '\n' || *p == '\r')) {
			*o++ = '\\';
			*o++ = *p == '\\' ? '\\' : *p == '\n' ? 'n' : 'r';
		} else {
			*o++ = *p;
		}
	}
	*o++ = '\n';
	*o = '\0';
	return out;
}
