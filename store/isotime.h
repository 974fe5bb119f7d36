/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one parser of ISO-8601 UTC times, for agstore's operands (--since,
 * the bundle date of `agstore status`) and the mount's metrics (the age of
 * the served generation), so both read the same dates the same way.
 */
#ifndef AGFS_STORE_ISOTIME_H
#define AGFS_STORE_ISOTIME_H

#include <stdint.h>

/* "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM[:SS][Z]" (a space also separates date
 * and time; no offset: UTC), a real calendar day from 1970 to 9999, into
 * unix seconds.  -EINVAL if malformed. */
int ag_parse_time(const char *s, int64_t *out);

#endif
