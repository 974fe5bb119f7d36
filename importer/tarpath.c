/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Member path checks: a path from an archive header or a directory walk is
 * untrusted.  It is accepted only when it is relative, has no "..", no NUL or
 * control characters, and stays within the length and depth limits; its
 * normal form drops "./" prefixes, empty and "." parts and a trailing "/".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "importer/import.h"

static int check_part(const char *p, size_t n, const char **why)
{
	if (n == 2 && p[0] == '.' && p[1] == '.') {
		*why = "its path contains \"..\"";
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x20 || c == 0x7f) {
			*why = "its path contains a control character";
			return -EINVAL;
		}
	}
	return 0;
}

static int append_part(char *out, size_t *olen, const char *p, size_t n, size_t *depth,
		       const char **why)
{
	if (n == 0 || (n == 1 && p[0] == '.'))
		return 0;
	int r = check_part(p, n, why);
	if (r < 0)
		return r;
	if (++*depth > IMP_MAX_DEPTH) {
		*why = "its path is too deep";
		return -EINVAL;
	}
	if (*olen)
		out[(*olen)++] = '/';
	memcpy(out + *olen, p, n);
	*olen += n;
	out[*olen] = '\0';
	return 0;
}

int imp_tarpath_check(const char *buf, size_t len, char **norm, const char **why)
{
	size_t olen = 0, depth = 0, start = 0;
	char *out;

	*norm = NULL;
	*why = "its path is empty";
	if (len == 0)
		return -EINVAL;
	if (len > IMP_MAX_PATH) {
		*why = "its path is too long";
		return -EINVAL;
	}
	if (memchr(buf, '\0', len)) {
		*why = "its path contains a NUL byte";
		return -EINVAL;
	}
	if (buf[0] == '/') {
		*why = "its path is absolute";
		return -EINVAL;
	}
	out = malloc(len + 1);
	if (!out)
		return -ENOMEM;
	out[0] = '\0';
	for (size_t i = 0; i <= len; i++) {
		if (i < len && buf[i] != '/')
			continue;
		int r = append_part(out, &olen, buf + start, i - start, &depth, why);
		if (r < 0) {
			free(out);
			return r;
		}
		start = i + 1;
	}
	if (olen == 0) {
		free(out);
		*why = "its path names the bundle root";
		return -EINVAL;
	}
	*norm = out;
	*why = NULL;
	return 0;
}
