/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A generation's catalog (store format 2, DESIGN.md "Trust chain"): the
 * document the high side signs, and the only thing a node needs to trust.
 * It names the generation, its parent catalog, the models (name -> manifest
 * digest), every blob (SHA-256 -> size and fs-verity file digest), and the
 * source bundle (its SHA-256 and the bundle's own files kept as blobs:
 * bundle.json, its .asc, the .sha256 lists, manifest .sig files), so the low
 * side's signature can be replayed too.
 *
 * The encoding is canonical JSON: keys sorted, no white space, ASCII only,
 * integers only, one byte form per content.  ag_catalog_parse() accepts only
 * that form (it re-encodes and compares), so the signed bytes and the parsed
 * meaning cannot drift apart.  No cryptography here: signatures are sig/'s.
 *
 *   {"blobs":{"<hex>":{"fsverity":"<hex>","size":N},...},
 *    "bundle":{"files":{"<path in the bundle>":"<hex>",...},"sha256":"<hex>"|null}|null,
 *    "catalog":1,"created":"YYYY-MM-DDTHH:MM:SSZ","generation":N,"label":"..."|null,
 *    "models":{"<host/namespace/model/tag>":"<hex>",...},
 *    "parent":"<hex of the parent catalog's bytes>"|null,"serial":N}
 */
#ifndef AGFS_STORE_CATALOG_H
#define AGFS_STORE_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define AG_CATALOG_VERSION    1
#define AG_CATALOG_MAX_BYTES  (256u << 20)
#define AG_CATALOG_MAX_MODELS 100000u
#define AG_CATALOG_MAX_BLOBS  1000000u
#define AG_CATALOG_MAX_STR    4096u

struct ag_catalog_blob {
	ag_digest digest; /* SHA-256 of the bytes (the blob's name) */
	uint64_t size;
	ag_digest fsverity; /* fs-verity file digest (what `fsverity digest` prints) */
};

struct ag_catalog_entry { /* a model (name -> manifest) or a bundle file (path -> blob) */
	char *name;
	ag_digest digest;
};

struct ag_catalog {
	uint64_t generation;
	uint64_t serial; /* monotonically increasing across an ingest host's catalogs */
	bool has_parent;
	ag_digest parent; /* SHA-256 of the parent catalog's bytes */
	char *created;	  /* "YYYY-MM-DDTHH:MM:SSZ" */
	char *label;	  /* may be NULL */
	size_t nmodels;
	struct ag_catalog_entry *models;
	size_t nblobs;
	struct ag_catalog_blob *blobs;
	bool has_bundle; /* false for a generation that no bundle brought */
	bool has_bundle_sha256;
	ag_digest bundle_sha256;
	size_t nfiles;
	struct ag_catalog_entry *files;
};

/* Canonical bytes of c (caller frees *out).  -EINVAL for a catalog that
 * breaks the limits, names a blob twice, or names a model or a bundle file
 * whose blob it does not list. */
int ag_catalog_encode(const struct ag_catalog *c, char **out, size_t *len);
/* Strict parse of canonical bytes; -AG_ECORRUPT for anything else (*why set
 * to a static clause when given). */
int ag_catalog_parse(const char *buf, size_t len, struct ag_catalog *out, const char **why);
void ag_catalog_clear(struct ag_catalog *c); /* frees what c holds; c may be reused */
/* Sorts the models, blobs and files (parsed catalogs already are). */
void ag_catalog_sort(struct ag_catalog *c);
/* The blob entry for digest d, by binary search in a sorted catalog. */
const struct ag_catalog_blob *ag_catalog_blob(const struct ag_catalog *c, const ag_digest *d);

#endif
