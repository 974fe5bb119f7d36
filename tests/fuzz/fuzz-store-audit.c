/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the audit log's line parsers (the hash-chain check of
 * `agstore audit verify` and the scan the next writer makes for audited
 * commits that never landed).  A break is always named: a line number
 * inside the log and a reason. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t bad = 0, lines = 0;
	char *why = NULL;
	size_t pending = 0;
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	if (size && data[size - 1] != '\n')
		lines++;
	uint64_t seq = size ? data[0] % 4 : 0; /* the index's audit_seq */
	int r = ag_audit_check_buf((const char *)data, size, seq, &bad, &why, &pending);
	if (r == -AG_ECHAIN) {
		if (!why || bad < 1 || bad > lines)
			abort();
	} else if (r != 0 && r != -ENOMEM) {
		abort();
	}
	if (pending > lines)
		abort();
	free(why);
	return 0;
}
