/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Model names -> repository names and tags the distribution spec allows
 * (see oci_model_ref in oci.h).  Pure functions, unit-tested
 * (tests/unit/oci-name.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oci/oci.h"
#include "store/store.h"

static bool lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* */
static bool component_valid(const char *s, size_t n)
{
	size_t i = 0;

	if (n == 0 || !lower_alnum(s[0]) || !lower_alnum(s[n - 1]))
		return false;
	while (i < n) {
		size_t run = 0;
		while (i < n && lower_alnum(s[i]))
			i++, run++;
		if (run == 0 || i == n)
			return run > 0;
		if (s[i] == '.' || (s[i] == '_' && (i + 1 >= n || s[i + 1] != '_')))
			i++;
		else if (s[i] == '_')
			i += 2;
		else if (s[i] == '-')
			while (i < n && s[i] == '-')
				i++;
		else
			return false;
	}
	return true;
}

bool oci_repo_valid(const char *repo)
{
	size_t len = strlen(repo);
	const char *p = repo;

	if (len == 0 || len > 255)
		return false;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (!component_valid(p, n))
			return false;
		if (!slash)
			return true;
		p = slash + 1;
	}
}

static bool tag_valid(const char *s, size_t n)
{
	if (n == 0 || n > 128 || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

/* s[0..n) as itself when valid, else lower-cased with runs of other
 * characters as '-', and "-x<8 hex of SHA-256(s)>" after it. */
static int append_mapped(char *out, size_t cap, size_t *pos, const char *s, size_t n, bool tag)
{
	ag_digest d;
	char hex[AG_HEX_LEN + 1];
	size_t start = *pos;
	bool dash = false;

	if (tag ? tag_valid(s, n) : component_valid(s, n)) {
		if (*pos + n >= cap)
			return -ENAMETOOLONG;
		memcpy(out + *pos, s, n);
		*pos += n;
		return 0;
	}
	for (size_t i = 0; i < n && *pos + 1 < cap; i++) {
		char c = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
		if (lower_alnum(c)) {
			out[(*pos)++] = c;
			dash = false;
		} else if (!dash && *pos > start) {
			out[(*pos)++] = '-';
			dash = true;
		}
	}
	ag_sha256(s, n, &d);
	ag_digest_hex(&d, hex);
	if (*pos + 11 >= cap)
		return -ENAMETOOLONG;
	*pos += (size_t)snprintf(out + *pos, cap - *pos, "%sx%.8s",
				 dash || *pos == start ? "" : "-", hex);
	return 0;
}

int oci_model_ref(const char *path, char **repo, char **tag)
{
	const char *part[4], *p = path;
	size_t len[4], pos = 0, tpos = 0;
	char r[512] = "agfs/models", t[160];
	int rc;

	for (int i = 0; i < 4; i++) {
		const char *slash = strchr(p, '/');
		if ((i < 3) != (slash != NULL))
			return -EINVAL;
		part[i] = p;
		len[i] = slash ? (size_t)(slash - p) : strlen(p);
		if (len[i] == 0)
			return -EINVAL;
		p = slash ? slash + 1 : p;
	}
	pos = strlen(r);
	for (int i = 0; i < 3; i++) {
		r[pos++] = '/';
		if ((rc = append_mapped(r, sizeof(r), &pos, part[i], len[i], false)) < 0)
			return rc;
	}
	r[pos] = 0;
	if ((rc = append_mapped(t, sizeof(t), &tpos, part[3], len[3], true)) < 0)
		return rc;
	t[tpos] = 0;
	if (pos > 255)
		return -ENAMETOOLONG;
	*repo = strdup(r);
	*tag = strdup(t);
	if (!*repo || !*tag) {
		free(*repo);
		free(*tag);
		return -ENOMEM;
	}
	return 0;
}
