/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the generation record decoder (what the index holds under
 * "gens").  Whatever it accepts must have a name for every model, sizes that
 * fit, and encode to a record that decodes to the same encoding again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ag_gen *g = NULL, *g2 = NULL, *g3 = NULL;
	if (ag_gen_decode(data, size, &g) != 0)
		return 0;
	for (size_t i = 0; i < g->nmodels; i++) {
		const ag_model *m = &g->models[i];
		if (!m->name || !*m->name || (m->nlayers && !m->layers))
			abort();
		if (i > 0 && strcmp(g->models[i - 1].name, m->name) > 0)
			abort(); /* sorted for ag_gen_find */
		if (ag_gen_find(g, m->name) == NULL)
			abort();
		if (m->config.size > INT64_MAX)
			abort();
		for (size_t j = 0; j < m->nlayers; j++)
			if (m->layers[j].size > INT64_MAX)
				abort();
	}
	char *enc = ag_gen_encode(g);
	if (!enc || ag_gen_decode(enc, strlen(enc), &g2) != 0)
		abort();
	char *enc2 = ag_gen_encode(g2);
	if (!enc2 || ag_gen_decode(enc2, strlen(enc2), &g3) != 0)
		abort();
	char *enc3 = ag_gen_encode(g3);
	if (!enc3 || strcmp(enc2, enc3) || g2->nmodels != g->nmodels)
		abort();
	free(enc);
	free(enc2);
	free(enc3);
	ag_gen_free(g);
	ag_gen_free(g2);
	ag_gen_free(g3);
	return 0;
}
