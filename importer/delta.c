/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Delta bundles (agbundle create --since): bundle.json may carry, signed,
 *   "delta": {"since_bundle_json_sha256": "<hex of the previous bundle.json>",
 *             "since_bundle_version": "YYYYMMDD",
 *             "omitted_blobs": ["<hex>", ...]}
 * The manifests are all carried; the blobs listed are not, and must already
 * be in the store.  Each is verified there (its object re-hashed against its
 * record: ag_object_check) before the import may count on it; when any is
 * missing or damaged the bundle is refused naming them, before anything is
 * staged for publishing.  A blob the bundle carries may not also be listed.
 * agbundle verify, which has no store, checks everything else and reports
 * the omitted blobs as "not checked (no store)".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "importer/import.h"

#define BUNDLE_JSON "manifest/bundle.json"
#define MAX_NAMED   5 /* missing digests named in the one-sentence refusal */

struct imp_delta {
	bool storeless; /* no store to check against (agbundle verify) */
	bool present;
	ag_digest *omitted; /* sorted */
	uint64_t *sizes;    /* each one's size in the store (verified) */
	size_t n;
	char *since_version;
	char since_sha[AG_HEX_LEN + 1];
	json_t *missing; /* hex digests the store lacks or holds damaged */
};

int imp_delta_allow_storeless(struct imp_source *src)
{
	if (!src->delta && !(src->delta = calloc(1, sizeof(*src->delta))))
		return -ENOMEM;
	src->delta->storeless = true;
	return 0;
}

void imp_delta_free(struct imp_delta *d)
{
	if (!d)
		return;
	free(d->omitted);
	free(d->sizes);
	free(d->since_version);
	json_decref(d->missing);
	free(d);
}

static int cmp_digest(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(ag_digest));
}

static ssize_t find(const struct imp_delta *d, const ag_digest *dg)
{
	const ag_digest *hit = bsearch(dg, d->omitted, d->n, sizeof(ag_digest), cmp_digest);

	return hit ? hit - d->omitted : -1;
}

static int bad(struct imp_error *e, const char *why)
{
	return imp_fail(e, IMP_REFUSED, -EINVAL, BUNDLE_JSON, "its \"delta\" is malformed: %s",
			why);
}

static int parse(struct imp_delta *d, json_t *j, struct imp_error *e)
{
	json_t *sha = json_object_get(j, "since_bundle_json_sha256");
	json_t *ver = json_object_get(j, "since_bundle_version");
	json_t *om = json_object_get(j, "omitted_blobs"), *v;
	ag_digest tmp;
	size_t i;

	if (!json_is_object(j))
		return bad(e, "it is not an object");
	if (!json_is_string(sha) ||
	    ag_digest_parse(json_string_value(sha), json_string_length(sha), &tmp) < 0)
		return bad(e, "since_bundle_json_sha256 is not a SHA-256 hex digest");
	if (!json_is_string(ver) || json_string_length(ver) == 0 || json_string_length(ver) > 64)
		return bad(e, "since_bundle_version is not a label");
	if (!json_is_array(om) || json_array_size(om) > IMP_MAX_MEMBERS)
		return bad(e, "omitted_blobs is not an array of digests");
	ag_digest_hex(&tmp, d->since_sha);
	if (!(d->since_version = strdup(json_string_value(ver))) ||
	    !(d->omitted = calloc(json_array_size(om) + 1, sizeof(ag_digest))) ||
	    !(d->sizes = calloc(json_array_size(om) + 1, sizeof(uint64_t))))
		return -ENOMEM;
	json_array_foreach(om, i, v)
	{
		if (!json_is_string(v) ||
		    ag_digest_parse(json_string_value(v), json_string_length(v), &d->omitted[i]) <
			    0)
			return bad(e, "an omitted_blobs entry is not a SHA-256 hex digest");
	}
	qsort(d->omitted, json_array_size(om), sizeof(ag_digest), cmp_digest);
	for (i = 0; i < json_array_size(om); i++) /* without repeats */
		if (d->n == 0 || !ag_digest_eq(&d->omitted[i], &d->omitted[d->n - 1]))
			d->omitted[d->n++] = d->omitted[i];
	d->present = true;
	return 0;
}

/* A member .../blobs/sha256-<hex> (or sha256:<hex>) whose digest is listed. */
static int check_carried(struct imp_delta *d, struct imp_source *src, struct imp_error *e)
{
	ag_digest dg;

	for (size_t i = 0; i < src->n; i++) {
		const char *p = src->m[i].path, *b = strstr(p, "/blobs/sha256");
		if (strncmp(p, "models/", 7) != 0 || !b || (b[13] != '-' && b[13] != ':') ||
		    ag_digest_parse(b + 14, strlen(b + 14), &dg) < 0 || find(d, &dg) < 0)
			continue;
		return imp_fail(
			e, IMP_REFUSED, -EEXIST, p,
			"its blob is carried, and the signed \"delta\" lists it as omitted");
	}
	return 0;
}

/* 0 verified, 1 missing or damaged (named), <0 could not check. */
static int check_one(struct imp_delta *d, ag_store *store, size_t i)
{
	ag_blob_info bi;
	uint64_t bad_chunk;
	int r;

	if (!store)
		return 1;
	r = ag_blob_lookup(store, &d->omitted[i], &bi);
	if (r == -ENOENT)
		return 1;
	if (r < 0)
		return r;
	r = ag_object_check(store, &bi, &bad_chunk);
	if (r == -ENOENT || r == -EBADMSG || r == -AG_EDIGEST || r == -AG_ECORRUPT || r == -EIO)
		return 1;
	if (r < 0)
		return r;
	d->sizes[i] = bi.size;
	return 0;
}

static int refuse_missing(struct imp_delta *d, struct imp_error *e)
{
	char list[400] = "", hex[AG_HEX_LEN + 1];
	size_t n = json_array_size(d->missing), off = 0;

	for (size_t i = 0; i < n && i < MAX_NAMED; i++) {
		snprintf(hex, sizeof(hex), "%s", json_string_value(json_array_get(d->missing, i)));
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%ssha256:%s",
					i ? ", " : "", hex);
	}
	if (n > MAX_NAMED)
		snprintf(list + off, sizeof(list) - off, " and %zu more", n - MAX_NAMED);
	return imp_fail(e, IMP_REFUSED, -ENOENT, BUNDLE_JSON,
			"it is a delta on bundle %s and the store lacks %zu of the blobs it omits "
			"(or holds them damaged): %s",
			d->since_version, n, list);
}

int imp_delta_check(struct imp_source *src, ag_store *store, struct imp_result *res,
		    struct imp_error *e)
{
	json_t *j = res->has_bundle ? json_object_get(res->bundle.raw, "delta") : NULL;
	struct imp_delta *d;
	char hex[AG_HEX_LEN + 1];
	int r;

	if (!j)
		return 0;
	if (!src->delta && !(src->delta = calloc(1, sizeof(*src->delta))))
		return imp_fail(e, IMP_IO, -ENOMEM, "", "out of memory");
	d = src->delta;
	if ((r = parse(d, j, e)) < 0 || (r = check_carried(d, src, e)) < 0)
		return r == -ENOMEM ? imp_fail(e, IMP_IO, r, "", "out of memory") : r;
	if (d->storeless)
		return 0;
	if (!(d->missing = json_array()))
		return imp_fail(e, IMP_IO, -ENOMEM, "", "out of memory");
	for (size_t i = 0; i < d->n; i++) {
		r = check_one(d, store, i);
		ag_digest_hex(&d->omitted[i], hex);
		if (r < 0)
			return imp_fail(e, IMP_IO, r, BUNDLE_JSON,
					"blob sha256:%s, which the delta omits, cannot be checked "
					"in the store (%s)",
					hex, ag_strerror(r));
		if (r > 0)
			json_array_append_new(d->missing, json_string(hex));
	}
	return json_array_size(d->missing) ? refuse_missing(d, e) : 0;
}

bool imp_delta_omits(const struct imp_source *src, const ag_digest *dg, uint64_t size)
{
	const struct imp_delta *d = src->delta;
	ssize_t i;

	if (!d || !d->present || (i = find(d, dg)) < 0)
		return false;
	return d->storeless || d->sizes[i] == size;
}

json_t *imp_delta_report(const struct imp_source *src)
{
	const struct imp_delta *d = src->delta;

	if (!d || !d->present)
		return NULL;
	return json_pack("{s:s, s:s, s:I, s:s}", "since_bundle_version", d->since_version,
			 "since_bundle_json_sha256", d->since_sha, "omitted_blobs",
			 (json_int_t)d->n, "omitted_blobs_in_store",
			 d->storeless ? "not checked (no store)" : "verified");
}
