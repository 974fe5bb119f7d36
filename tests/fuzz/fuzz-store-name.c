/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: model reference parser; a parsed name must re-parse to itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *out = NULL;
	if (ag_name_parse((const char *)data, size, &out) == 0) {
		char *again = NULL;
		if (ag_name_parse(out, strlen(out), &again) != 0 || strcmp(out, again))
			abort();
		char *disp = ag_name_display(out);
		free(disp);
		free(again);
		free(out);
	}
	ag_digest d;
	ag_digest_parse((const char *)data, size, &d);
	return 0;
}
