/* SPDX-License-Identifier: Apache-2.0 */
/* A generation's catalog: canonical JSON out, strict canonical JSON in. */
#include <errno.h>
#include <string.h>

#include <jansson.h>

#include "store/catalog.h"
#include "store/isotime.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)

static json_t *hex_json(const ag_digest *d)
{
	char hex[AG_HEX_LEN + 1];
	ag_digest_hex(d, hex);
	return json_string(hex);
}

static bool str_ok(const char *s)
{
	return s && strlen(s) <= AG_CATALOG_MAX_STR;
}

/* name -> hex object; every digest must be a listed blob. */
static json_t *entries_json(const struct ag_catalog *c, const struct ag_catalog_entry *e, size_t n)
{
	json_t *o = json_object();
	for (size_t i = 0; o && i < n; i++) {
		if (!str_ok(e[i].name) || !e[i].name[0] || json_object_get(o, e[i].name) ||
		    !ag_catalog_blob(c, &e[i].digest) ||
		    json_object_set_new(o, e[i].name, hex_json(&e[i].digest)) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

static json_t *catalog_json(const struct ag_catalog *c)
{
	if (c->nmodels > AG_CATALOG_MAX_MODELS || c->nblobs > AG_CATALOG_MAX_BLOBS ||
	    !str_ok(c->created) || (c->label && !str_ok(c->label)) ||
	    c->nfiles > AG_CATALOG_MAX_MODELS || (c->nfiles && !c->has_bundle) ||
	    c->generation > INT64_MAX || c->serial > INT64_MAX)
		return NULL;
	json_t *blobs = json_object();
	for (size_t i = 0; blobs && i < c->nblobs; i++) {
		char hex[AG_HEX_LEN + 1];
		ag_digest_hex(&c->blobs[i].digest, hex);
		if (c->blobs[i].size > INT64_MAX || json_object_get(blobs, hex) ||
		    json_object_set_new(blobs, hex,
					json_pack("{s:o,s:I}", "fsverity",
						  hex_json(&c->blobs[i].fsverity), "size",
						  (json_int_t)c->blobs[i].size)) < 0) {
			json_decref(blobs);
			return NULL;
		}
	}
	json_t *models = entries_json(c, c->models, c->nmodels);
	json_t *files = c->has_bundle ? entries_json(c, c->files, c->nfiles) : NULL;
	if (!blobs || !models || (c->has_bundle && !files)) {
		json_decref(blobs), json_decref(models), json_decref(files);
		return NULL;
	}
	json_t *bundle = json_null();
	if (c->has_bundle)
		bundle =
			json_pack("{s:o,s:o}", "files", files, "sha256",
				  c->has_bundle_sha256 ? hex_json(&c->bundle_sha256) : json_null());
	return json_pack("{s:o,s:o,s:i,s:s,s:I,s:o,s:o,s:o,s:I}", "blobs", blobs, "bundle", bundle,
			 "catalog", AG_CATALOG_VERSION, "created", c->created, "generation",
			 (json_int_t)c->generation, "label",
			 c->label ? json_string(c->label) : json_null(), "models", models, "parent",
			 c->has_parent ? hex_json(&c->parent) : json_null(), "serial",
			 (json_int_t)c->serial);
}

static int cmp_blob(const void *a, const void *b)
{
	return memcmp(((const struct ag_catalog_blob *)a)->digest.b,
		      ((const struct ag_catalog_blob *)b)->digest.b, sizeof(ag_digest));
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct ag_catalog_entry *)a)->name,
		      ((const struct ag_catalog_entry *)b)->name);
}

void ag_catalog_sort(struct ag_catalog *c)
{
	if (c->nblobs)
		qsort(c->blobs, c->nblobs, sizeof(*c->blobs), cmp_blob);
	if (c->nmodels)
		qsort(c->models, c->nmodels, sizeof(*c->models), cmp_entry);
	if (c->nfiles)
		qsort(c->files, c->nfiles, sizeof(*c->files), cmp_entry);
}

const struct ag_catalog_blob *ag_catalog_blob(const struct ag_catalog *c, const ag_digest *d)
{
	struct ag_catalog_blob key = {.digest = *d};
	if (!c->nblobs)
		return NULL;
	return bsearch(&key, c->blobs, c->nblobs, sizeof(key), cmp_blob);
}

int ag_catalog_encode(const struct ag_catalog *c, char **out, size_t *len)
{
	unsigned long nomem = ag_json_alloc_failures();
	json_t *o = catalog_json(c);
	if (!o) /* a limit broken, or memory ran out building it */
		return ag_json_alloc_failures() != nomem ? -ENOMEM : -EINVAL;
	char *s = json_dumps(o, DUMP_FLAGS);
	json_decref(o);
	if (!s)
		return -ENOMEM;
	*out = s;
	*len = strlen(s);
	return 0;
}

/* ---------- parsing ---------- */

static int fail(const char **why, const char *clause)
{
	if (why)
		*why = clause;
	return -AG_ECORRUPT;
}

static bool get_hex(json_t *v, ag_digest *d)
{
	const char *s = json_string_value(v);
	return s && ag_digest_parse(s, json_string_length(v), d) == 0;
}

static bool get_u64(json_t *v, uint64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (uint64_t)json_integer_value(v);
	return true;
}

static int parse_entries(json_t *o, struct ag_catalog_entry **out, size_t *n, size_t max)
{
	if (!json_is_object(o) || json_object_size(o) > max)
		return -1;
	*out = calloc(json_object_size(o) + 1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v)
	{
		struct ag_catalog_entry *e = &(*out)[*n];
		if (!get_hex(v, &e->digest))
			return -1;
		if (!(e->name = strdup(k)))
			return -ENOMEM;
		(*n)++;
	}
	return 0;
}

static int parse_blobs(json_t *o, struct ag_catalog *c)
{
	if (!json_is_object(o) || json_object_size(o) > AG_CATALOG_MAX_BLOBS)
		return -1;
	c->blobs = calloc(json_object_size(o) + 1, sizeof(*c->blobs));
	if (!c->blobs)
		return -ENOMEM;
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v)
	{
		struct ag_catalog_blob *b = &c->blobs[c->nblobs];
		if (ag_digest_parse(k, strlen(k), &b->digest) < 0 || !json_is_object(v) ||
		    json_object_size(v) != 2 ||
		    !get_hex(json_object_get(v, "fsverity"), &b->fsverity) ||
		    !get_u64(json_object_get(v, "size"), &b->size))
			return -1;
		c->nblobs++;
	}
	return 0;
}

/* A part that failed: -ENOMEM as it is, anything else the clause. */
static int part_failed(int r, const char **why, const char *clause)
{
	return r == -ENOMEM ? r : fail(why, clause);
}

static int parse_fields(json_t *o, struct ag_catalog *c, const char **why)
{
	json_t *v;
	int r;
	if (!json_is_object(o) || json_object_size(o) != 9)
		return fail(why, "it is not a catalog object of exactly nine fields");
	if (!json_is_integer(json_object_get(o, "catalog")) ||
	    json_integer_value(json_object_get(o, "catalog")) != AG_CATALOG_VERSION)
		return fail(why, "its catalog version is not 1");
	if (!get_u64(json_object_get(o, "generation"), &c->generation) ||
	    !get_u64(json_object_get(o, "serial"), &c->serial))
		return fail(why, "its generation or serial is not a non-negative integer");
	v = json_object_get(o, "created");
	if (!json_is_string(v))
		return fail(why, "its created time is not a string");
	if (!(c->created = strdup(json_string_value(v))))
		return -ENOMEM;
	v = json_object_get(o, "label");
	if (!json_is_null(v) && !json_is_string(v))
		return fail(why, "its label is neither a string nor null");
	if (json_is_string(v) && !(c->label = strdup(json_string_value(v))))
		return -ENOMEM;
	v = json_object_get(o, "parent");
	if (!json_is_null(v) && !(c->has_parent = get_hex(v, &c->parent)))
		return fail(why, "its parent is neither a digest nor null");
	if ((r = parse_blobs(json_object_get(o, "blobs"), c)) < 0)
		return part_failed(r, why, "its blob list is malformed");
	if ((r = parse_entries(json_object_get(o, "models"), &c->models, &c->nmodels,
			       AG_CATALOG_MAX_MODELS)) < 0)
		return part_failed(r, why, "its model list is malformed");
	v = json_object_get(o, "bundle");
	if (json_is_null(v))
		return 0;
	c->has_bundle = true;
	if (!json_is_object(v) || json_object_size(v) != 2)
		return fail(why, "its bundle is malformed");
	if ((r = parse_entries(json_object_get(v, "files"), &c->files, &c->nfiles,
			       AG_CATALOG_MAX_MODELS)) < 0)
		return part_failed(r, why, "its bundle is malformed");
	json_t *h = json_object_get(v, "sha256");
	if (!json_is_null(h) && !(c->has_bundle_sha256 = get_hex(h, &c->bundle_sha256)))
		return fail(why, "its bundle SHA-256 is neither a digest nor null");
	return 0;
}

/* "YYYY-MM-DDTHH:MM:SSZ" */
static bool time_ok(const char *t)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
	if (strlen(t) != sizeof(shape) - 1)
		return false;
	for (size_t i = 0; shape[i]; i++)
		if (shape[i] == 'd' ? (t[i] < '0' || t[i] > '9') : t[i] != shape[i])
			return false;
	int64_t when; /* and a real time: not 31 February, not 25:00 */
	return ag_parse_time(t, &when) == 0;
}

/* A relative path inside the bundle: no empty, "." or ".." part, no control
 * characters, no leading "/". */
static bool bundle_path_ok(const char *p)
{
	for (const char *part = p;;) {
		const char *end = strchr(part, '/');
		size_t n = end ? (size_t)(end - part) : strlen(part);
		if (n == 0 || (n == 1 && part[0] == '.') || (n == 2 && !strncmp(part, "..", 2)))
			return false;
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)part[i] < 0x20 || part[i] == 0x7f)
				return false;
		if (!end)
			return true;
		part = end + 1;
	}
}

static int check_names(const struct ag_catalog *c, const char **why)
{
	if (!time_ok(c->created))
		return fail(why,
			    "its created time is not a real time written YYYY-MM-DDTHH:MM:SSZ");
	for (size_t i = 0; i < c->nmodels; i++) {
		char *norm = NULL;
		const char *n = c->models[i].name;
		bool good = ag_name_parse(n, strlen(n), &norm) == 0 && strcmp(norm, n) == 0;
		free(norm);
		if (!good)
			return fail(why, "a model name is not in host/namespace/model/tag form");
	}
	for (size_t i = 0; i < c->nfiles; i++)
		if (!bundle_path_ok(c->files[i].name))
			return fail(why, "a bundle file name is not a relative path");
	return 0;
}

int ag_catalog_parse(const char *buf, size_t len, struct ag_catalog *out, const char **why)
{
	memset(out, 0, sizeof(*out));
	if (len > AG_CATALOG_MAX_BYTES)
		return fail(why, "it is larger than the catalog limit");
	json_t *o = ag_json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
	if (!o)
		return errno == ENOMEM ? -ENOMEM : fail(why, "it is not JSON");
	int rc = parse_fields(o, out, why);
	json_decref(o);
	if (rc == 0)
		rc = check_names(out, why);
	if (rc == 0) {
		ag_catalog_sort(
			out); /* one byte form per content: the input must be our encoding */
		char *again = NULL;
		size_t n = 0;
		int re = ag_catalog_encode(out, &again, &n);
		if (re < 0)
			rc = part_failed(re, why,
					 "it breaks a limit or names a blob it does not list");
		else if (n != len || memcmp(again, buf, len) != 0)
			rc = fail(why, "it is not in canonical form");
		free(again);
	}
	if (rc < 0)
		ag_catalog_clear(out);
	return rc;
}

static void entries_free(struct ag_catalog_entry *e, size_t n)
{
	for (size_t i = 0; e && i < n; i++)
		free(e[i].name);
	free(e);
}

void ag_catalog_clear(struct ag_catalog *c)
{
	free(c->created);
	free(c->label);
	entries_free(c->models, c->nmodels);
	entries_free(c->files, c->nfiles);
	free(c->blobs);
	memset(c, 0, sizeof(*c));
}
