/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers shared by the importer: the refusal record and hex digests. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "importer/import.h"

int imp_fail(struct imp_error *e, int cls, int rc, const char *member, const char *fmt, ...)
{
	va_list ap;

	if (!e || e->cls != IMP_OK)
		return rc;
	e->cls = cls;
	snprintf(e->member, sizeof(e->member), "%s", member ? member : "");
	va_start(ap, fmt);
	vsnprintf(e->reason, sizeof(e->reason), fmt, ap);
	va_end(ap);
	/* Names come from untrusted input: keep the report one printable line. */
	for (char *p = e->member; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	for (char *p = e->reason; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return rc;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int imp_hex_parse(const char *hex, size_t len, ag_digest *out)
{
	if (len != AG_HEX_LEN)
		return -AG_EBADNAME;
	for (size_t i = 0; i < 32; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -AG_EBADNAME;
		out->b[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

void imp_hex(const ag_digest *d, char out[AG_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < 32; i++) {
		out[2 * i] = digits[d->b[i] >> 4];
		out[2 * i + 1] = digits[d->b[i] & 15];
	}
	out[AG_HEX_LEN] = '\0';
}
