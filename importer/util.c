/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers shared by the importer: the refusal record and hex digests. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "importer/import.h"

int imp_fail(struct imp_error *e, int cls, int rc, const char *member, const char *fmt, ...)
{
	va_list ap;

	if (!e || e->cls != IMP_OK)
		return rc;
	snprintf(e->member, sizeof(e->member), "%s", member ? member : "");
	/*
	 * Memory running out is the host's failure wherever it shows: never a
	 * refusal of the input or the admin's mistake, whatever the caller
	 * would have called a failure of that step.
	 */
	if (rc == -ENOMEM && cls != IMP_IO) {
		e->cls = IMP_IO;
		snprintf(e->reason, sizeof(e->reason), "out of memory");
		return rc;
	}
	e->cls = cls;
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

const char *imp_result(int cls)
{
	return cls == IMP_IO ? "failed" : cls == IMP_USAGE ? "usage" : "refused";
}

const char *imp_verdict(int cls, const char *could_not, const char *cannot)
{
	return cls == IMP_IO ? could_not : cls == IMP_USAGE ? cannot : "refused";
}
