/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: Ollama manifest parser; layers are bounded and typed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "importer/import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ag_model m;
	const char *why;

	memset(&m, 0, sizeof(m));
	if (imp_manifest_parse((const char *)data, size, &m, &why) != 0) {
		if (m.layers || m.config.media_type)
			abort(); /* nothing leaks out of a refusal */
		return 0;
	}
	if (m.nlayers > IMP_MAX_LAYERS || !m.config.media_type)
		abort();
	for (size_t i = 0; i < m.nlayers; i++) {
		if (!m.layers[i].media_type)
			abort();
		free(m.layers[i].media_type);
	}
	free(m.layers);
	free(m.config.media_type);
	return 0;
}
