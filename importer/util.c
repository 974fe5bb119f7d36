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
