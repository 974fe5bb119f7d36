/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which bundle brought each model: a model's manifest digest first appears
 * in generation K (the lowest id still in the store, up to the generation
 * asked about, whose models hold it), and K's label and source_sha256 name
 * the bundle.  A generation that merged the previous models with a new
 * bundle's thus names two bundles.  Read-only.
 */
#ifndef AGFS_STORE_PROVENANCE_H
#define AGFS_STORE_PROVENANCE_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* Among gens[0..n) (any order, NULL entries skipped), the generation with
 * the lowest id <= upto holding a model whose manifest is *manifest; NULL
 * when none does.  Pure. */
const ag_gen *ag_provenance_find(const ag_gen *const *gens, size_t n, uint64_t upto,
				 const ag_digest *manifest);

/* Every generation of s with id <= upto, ascending (a generation deleted
 * since the listing is skipped).  Free with ag_gens_free. */
int ag_gens_load(ag_store *s, uint64_t upto, ag_gen ***out, size_t *n);
void ag_gens_free(ag_gen **gens, size_t n);

#endif
