/* SPDX-License-Identifier: Apache-2.0 */
/* Ollama model references <-> the store's path form "host/namespace/model/tag". */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store/internal.h"

#define DEFAULT_HOST "registry.ollama.ai"
#define DEFAULT_NS   "library"
#define DEFAULT_TAG  "latest"
#define MAX_PART     128
#define MAX_NAME     512

static bool part_ok(const char *p, size_t len, bool host)
{
	if (len == 0 || len > MAX_PART)
		return false;
	if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
		return false;
	if (p[0] == '.' || p[0] == '-')
		return false; /* no dot-files, no option look-alikes */
	for (size_t i = 0; i < len; i++) {
		char c = p[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
			  (host && c == ':');
		if (!ok)
			return false;
	}
	return true;
}

int ag_name_parse(const char *s, size_t len, char **path_out)
{
	const char *part[5];
	size_t plen[5], n = 0;
	if (len == 0 || len > MAX_NAME || memchr(s, '\0', len))
		return -AG_EBADNAME;
	for (size_t i = 0, start = 0; i <= len; i++) {
		if (i == len || s[i] == '/') {
			if (n == 4)
				return -AG_EBADNAME;
			part[n] = s + start;
			plen[n++] = i - start;
			start = i + 1;
		}
	}
	/* A tag after ':' in the last part (not in a host part). */
	const char *tag = DEFAULT_TAG;
	size_t taglen = strlen(DEFAULT_TAG);
	const char *colon = n < 4 ? memchr(part[n - 1], ':', plen[n - 1]) : NULL;
	if (colon) {
		tag = colon + 1;
		taglen = (size_t)(part[n - 1] + plen[n - 1] - tag);
		plen[n - 1] = (size_t)(colon - part[n - 1]);
	}
	const char *h = DEFAULT_HOST, *ns = DEFAULT_NS, *m;
	size_t hl = strlen(h), nl = strlen(ns), ml;
	switch (n) {
	case 4:
		h = part[0], hl = plen[0], ns = part[1], nl = plen[1];
		m = part[2], ml = plen[2], tag = part[3], taglen = plen[3];
		break;
	case 3:
		h = part[0], hl = plen[0];
		/* fall through */
	case 2:
		ns = part[n - 2], nl = plen[n - 2];
		/* fall through */
	default:
		m = part[n - 1], ml = plen[n - 1];
	}
	if (!part_ok(h, hl, true) || !part_ok(ns, nl, false) || !part_ok(m, ml, false) ||
	    !part_ok(tag, taglen, false))
		return -AG_EBADNAME;
	if (asprintf(path_out, "%.*s/%.*s/%.*s/%.*s", (int)hl, h, (int)nl, ns, (int)ml, m,
		     (int)taglen, tag) < 0)
		return -ENOMEM;
	return 0;
}

char *ag_name_display(const char *path)
{
	const char *slash[3];
	const char *p = path;
	for (int i = 0; i < 3; i++) {
		slash[i] = strchr(p, '/');
		if (!slash[i])
			return strdup(path);
		p = slash[i] + 1;
	}
	const char *model = slash[1] + 1;
	int mlen = (int)(slash[2] - model);
	const char *tag = slash[2] + 1;
	bool default_host = (size_t)(slash[0] - path) == strlen(DEFAULT_HOST) &&
			    !strncmp(path, DEFAULT_HOST, strlen(DEFAULT_HOST));
	bool default_ns = slash[1] - slash[0] - 1 == (long)strlen(DEFAULT_NS) &&
			  !strncmp(slash[0] + 1, DEFAULT_NS, strlen(DEFAULT_NS));
	char *out = NULL;
	int r;
	if (default_host && default_ns)
		r = asprintf(&out, "%.*s:%s", mlen, model, tag);
	else if (default_host)
		r = asprintf(&out, "%.*s:%s", (int)(slash[2] - slash[0] - 1), slash[0] + 1, tag);
	else
		r = asprintf(&out, "%.*s:%s", (int)(slash[2] - path), path, tag);
	return r < 0 ? NULL : out;
}
