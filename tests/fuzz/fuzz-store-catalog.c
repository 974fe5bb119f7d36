/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the catalog parser; whatever it accepts must encode back to
 * exactly the input bytes (one byte form per content). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/catalog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ag_catalog c;
	const char *why = NULL;
	if (ag_catalog_parse((const char *)data, size, &c, &why) == 0) {
		char *again = NULL;
		size_t n = 0;
		if (ag_catalog_encode(&c, &again, &n) != 0 || n != size || memcmp(again, data, n))
			abort();
		for (size_t i = 0; i < c.nblobs; i++)
			if (ag_catalog_blob(&c, &c.blobs[i].digest) != &c.blobs[i])
				abort();
		free(again);
		ag_catalog_clear(&c);
	} else if (!why) {
		abort(); /* every refusal names its reason */
	}
	return 0;
}
