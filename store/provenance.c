/* SPDX-License-Identifier: Apache-2.0 */
/* Which generation (so which bundle) first brought a model: see provenance.h. */
#include <errno.h>
#include <stdlib.h>

#include "store/provenance.h"

static bool holds(const ag_gen *g, const ag_digest *manifest)
{
	for (size_t i = 0; i < g->nmodels; i++)
		if (ag_digest_eq(&g->models[i].manifest, manifest))
			return true;
	return false;
}

const ag_gen *ag_provenance_find(const ag_gen *const *gens, size_t n, uint64_t upto,
				 const ag_digest *manifest)
{
	const ag_gen *best = NULL;
	for (size_t i = 0; i < n; i++) {
		const ag_gen *g = gens[i];
		if (g && g->id <= upto && (!best || g->id < best->id) && holds(g, manifest))
			best = g;
	}
	return best;
}

void ag_gens_free(ag_gen **gens, size_t n)
{
	for (size_t i = 0; gens && i < n; i++)
		ag_gen_free(gens[i]);
	free(gens);
}

int ag_gens_load(ag_store *s, uint64_t upto, ag_gen ***out, size_t *n)
{
	uint64_t *ids = NULL;
	size_t nids = 0, k = 0;
	*out = NULL;
	*n = 0;
	int r = ag_gen_list(s, &ids, &nids);
	if (r < 0)
		return r;
	ag_gen **gens = calloc(nids ? nids : 1, sizeof(*gens));
	if (!gens) {
		free(ids);
		return -ENOMEM;
	}
	for (size_t i = 0; i < nids && ids[i] <= upto; i++) {
		r = ag_gen_get(s, ids[i], &gens[k]);
		if (r == -ENOENT)
			continue; /* deleted by a gc since the listing */
		if (r < 0) {
			ag_gens_free(gens, k);
			free(ids);
			return r;
		}
		k++;
	}
	free(ids);
	*out = gens;
	*n = k;
	return 0;
}
