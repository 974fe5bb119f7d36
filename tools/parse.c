/* SPDX-License-Identifier: Apache-2.0 */
/* agstore: pure parsers for command-line operands (numbers, digests; times:
 * store/isotime.c). */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tools/tool.h"

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0')
		return -EINVAL;
	if (errno == ERANGE || v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int parse_digest_arg(const char *s, ag_digest *out)
{
	size_t len;

	if (!s)
		return -AG_EBADNAME;
	if (strncmp(s, "sha256:", 7) == 0 || strncmp(s, "sha256-", 7) == 0)
		s += 7;
	len = strlen(s);
	if (len != AG_HEX_LEN)
		return -AG_EBADNAME;
	return ag_digest_parse(s, len, out);
}
