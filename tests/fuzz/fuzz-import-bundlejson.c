/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: bundle.json parser; a parsed document has a plain label. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "importer/import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imp_bundle_json b;
	const char *why;

	if (imp_bundle_json_parse((const char *)data, size, &b, &why) != 0)
		return 0;
	if (!b.bundle_version || strchr(b.bundle_version, '/') || !b.bundle_version[0])
		abort();
	for (size_t i = 0; i < b.nartifacts; i++)
		if (!b.artifacts[i].key)
			abort();
	imp_bundle_json_free(&b);
	return 0;
}
