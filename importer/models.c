/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The models part of a source: the Ollama tree (the directory holding both
 * manifests/ and blobs/), each manifest at depth four parsed and its config
 * and layers checked against the blobs' computed digests and sizes (or
 * against blobs already in the store), a manifest's ".sig" verified, and the
 * signed models_directory_hash recomputed over every file under models/.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "importer/import.h"

static bool has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

/* ---------- models_directory_hash ---------- */

static int cmp_bytes(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Roughly what glibc locales do: letters and digits first, case folded. */
static int cmp_locale(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;

	for (;;) {
		while (*x && !isalnum((unsigned char)*x))
			x++;
		while (*y && !isalnum((unsigned char)*y))
			y++;
		if (!*x || !*y || tolower((unsigned char)*x) != tolower((unsigned char)*y))
			break;
		x++;
		y++;
	}
	int d = tolower((unsigned char)*x) - tolower((unsigned char)*y);
	return d ? d : cmp_bytes(a, b);
}

static void hash_lines(char **lines, size_t n, ag_digest *out)
{
	ag_hash *h = ag_hash_new();

	for (size_t i = 0; i < n; i++)
		ag_hash_update(h, lines[i], strlen(lines[i]));
	ag_hash_final(h, out);
	ag_hash_free(h);
}

int imp_models_hash_check(struct imp_source *src, const ag_digest *want, const char **order)
{
	char **lines = calloc(src->n + 1, sizeof(char *));
	size_t n = 0;
	ag_digest got;
	int r = -AG_EDIGEST;

	if (!lines)
		return -ENOMEM;
	for (size_t i = 0; i < src->n; i++) {
		if (!has_prefix(src->m[i].path, "models/"))
			continue;
		if (!(lines[n++] = imp_sumline_format(&src->m[i].digest, src->m[i].path))) {
			r = -ENOMEM;
			goto out;
		}
	}
	qsort(lines, n, sizeof(*lines), cmp_bytes);
	hash_lines(lines, n, &got);
	if (ag_digest_eq(&got, want)) {
		*order = "byte order";
		r = 0;
		goto out;
	}
	qsort(lines, n, sizeof(*lines), cmp_locale);
	hash_lines(lines, n, &got);
	if (ag_digest_eq(&got, want)) {
		*order = "locale order";
		r = 0;
	}
out:
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
	return r;
}

/* ---------- anti-rollback ---------- */

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

int imp_label_cmp(const char *version, const char *current)
{
	if (all_digits(version) && all_digits(current)) {
		while (*version == '0' && version[1])
			version++;
		while (*current == '0' && current[1])
			current++;
		size_t a = strlen(version), b = strlen(current);
		if (a != b)
			return a < b ? -1 : 1;
		return strcmp(version, current);
	}
	if (!isdigit((unsigned char)*version) || !isdigit((unsigned char)*current))
		return 0; /* not comparable: e.g. an "ollama-..." label from --ollama-dir */
	return strverscmp(version, current);
}

bool imp_version_like(const char *s)
{
	return s && isdigit((unsigned char)*s);
}

/* The bundle_version a generation's report names; for a generation whose
 * report does not tell (none, or not agimport's), its label if that looks
 * like a version.  An --ollama-dir import has no bundle_version. */
static const char *gen_version(const ag_gen *g, json_t **doc)
{
	json_error_t jerr;
	const char *v = NULL, *kind = NULL;

	*doc = g->report ? ag_json_loads(g->report, 0, &jerr) : NULL;
	if (*doc) {
		v = json_string_value(
			json_object_get(json_object_get(*doc, "bundle"), "bundle_version"));
		kind = json_string_value(json_object_get(*doc, "kind"));
	}
	if (!v && !kind && imp_version_like(g->label))
		v = g->label;
	return imp_version_like(v) ? v : NULL;
}

int imp_store_max_version(ag_store *store, char **out)
{
	_cleanup_free_ uint64_t *ids = NULL;
	size_t n = 0;
	int r;

	*out = NULL;
	r = ag_meta_get(store, "max_bundle_version", out);
	if (r != -ENOENT)
		return r;
	/* A store from before the key: the newest over its generations. */
	if ((r = ag_gen_list(store, &ids, &n)) < 0)
		return r == -ENOENT ? 0 : r;
	for (size_t i = 0; i < n; i++) {
		_cleanup_gen_ ag_gen *g = NULL;
		json_t *doc = NULL;
		if ((r = ag_gen_get(store, ids[i], &g)) == -ENOENT)
			continue;
		if (r < 0)
			return r;
		const char *v = gen_version(g, &doc);
		if (v && (!*out || imp_label_cmp(v, *out) > 0)) {
			free(*out);
			*out = strdup(v);
		}
		json_decref(doc);
		if (v && !*out)
			return -ENOMEM;
	}
	return 0;
}

bool imp_is_pgp_signature(const char *buf, size_t len)
{
	static const char armor[] = "-----BEGIN PGP SIGNATURE-----";

	while (len > 0 && (*buf == ' ' || *buf == '\t' || *buf == '\r' || *buf == '\n')) {
		buf++;
		len--;
	}
	if (len >= sizeof(armor) - 1 && memcmp(buf, armor, sizeof(armor) - 1) == 0)
		return true;
	if (len < 2)
		return false;
	unsigned char b = (unsigned char)buf[0];
	/* A signature packet (tag 2), old or new packet format. */
	return ((b & 0xc0) == 0x80 && ((b >> 2) & 0x0f) == 2) || b == 0xc2;
}

/* ---------- the Ollama tree ---------- */

/* Whether some member's path starts with prefix (members sorted). */
static bool any_with_prefix(struct imp_source *src, const char *prefix)
{
	size_t lo = 0, hi = src->n, n = strlen(prefix);

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(src->m[mid].path, prefix) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < src->n && strncmp(src->m[lo].path, prefix, n) == 0;
}

/* The directory under models/ that holds both manifests/ and blobs/; two
 * such directories are an ambiguous layout and refuse the bundle. */
static int find_root(struct imp_source *src, struct imp_error *e)
{
	char probe[IMP_MAX_PATH + 16], *root = NULL;
	size_t nmodels = 0;
	int r = 0;

	for (size_t i = 0; r == 0 && i < src->n; i++) {
		const char *p = src->m[i].path;
		if (!has_prefix(p, "models/"))
			continue;
		nmodels++;
		for (const char *q = strstr(p, "/manifests/"); r == 0 && q;
		     q = strstr(q + 1, "/manifests/")) {
			snprintf(probe, sizeof(probe), "%.*s/blobs/", (int)(q - p), p);
			if (!any_with_prefix(src, probe))
				continue;
			probe[q - p + 1] = '\0';
			if (!root && !(root = strdup(probe)))
				r = -ENOMEM;
			else if (strcmp(root, probe) != 0)
				r = imp_fail(e, IMP_REFUSED, -EEXIST, "models/",
					     "it holds two Ollama trees, %smanifests/ and "
					     "%smanifests/, and which one is meant is ambiguous",
					     root, probe);
		}
	}
	if (r < 0) {
		free(root);
		return r;
	}
	if (!root)
		return nmodels ? imp_fail(e, IMP_REFUSED, -ENOENT, "models/",
					  "it holds no Ollama tree (a directory with both "
					  "manifests/ and blobs/)")
			       : 0;
	src->ollama_root = root;
	return 0;
}

struct imp_member *imp_find_blob(struct imp_source *src, const ag_digest *d)
{
	char hex[AG_HEX_LEN + 1], path[IMP_MAX_PATH + 100];
	struct imp_member *mb;

	ag_digest_hex(d, hex);
	snprintf(path, sizeof(path), "%sblobs/sha256-%s", src->ollama_root, hex);
	if ((mb = imp_member_find(src, path)))
		return mb;
	snprintf(path, sizeof(path), "%sblobs/sha256:%s", src->ollama_root, hex);
	return imp_member_find(src, path);
}

static int check_layer(struct imp_source *src, ag_store *store, struct imp_member *man,
		       const ag_layer *l, struct imp_error *e)
{
	struct imp_member *mb = imp_find_blob(src, &l->digest);
	char hex[AG_HEX_LEN + 1];
	ag_blob_info bi;

	ag_digest_hex(&l->digest, hex);
	if (!mb) {
		if (imp_delta_omits(src, &l->digest, l->size)) /* verified in the store: delta.c */
			return 0;
		int r = store ? ag_blob_lookup(store, &l->digest, &bi) : -ENOENT;
		if (r == 0 && bi.size == l->size)
			return 0;
		if (r == 0)
			return imp_fail(e, IMP_REFUSED, -AG_EDIGEST, man->path,
					"it gives blob sha256:%s %llu bytes, but the store holds "
					"that blob with %llu",
					hex, (unsigned long long)l->size,
					(unsigned long long)bi.size);
		if (r != -ENOENT) /* the store's fault, not the bundle's */
			return imp_fail(e, IMP_IO, r, man->path,
					"it names blob sha256:%s, which the bundle does not hold "
					"and whose record in the store cannot be read (%s)",
					hex, ag_strerror(r));
		return imp_fail(
			e, IMP_REFUSED, -ENOENT, man->path,
			"it names blob sha256:%s, which is neither in the bundle nor in the "
			"store",
			hex);
	}
	if (!ag_digest_eq(&mb->digest, &l->digest))
		return imp_fail(e, IMP_REFUSED, -AG_EDIGEST, mb->path,
				"its content does not hash to the digest its name and %s give",
				man->path);
	if (mb->size != l->size)
		return imp_fail(e, IMP_REFUSED, -AG_EDIGEST, mb->path,
				"it has %llu bytes but %s gives its size as %llu",
				(unsigned long long)mb->size, man->path,
				(unsigned long long)l->size);
	mb->referenced = true;
	mb->bound |= IMP_BIND_MANIFEST;
	return 0;
}

static int check_sig(struct imp_source *src, struct sig_keyring *ks, struct imp_model *im,
		     bool require, struct imp_error *e)
{
	char path[IMP_MAX_PATH + 8];
	struct imp_member *sig;
	_cleanup_free_ char *fpr = NULL, *why = NULL;

	snprintf(path, sizeof(path), "%s.sig", im->manifest->path);
	sig = imp_member_find(src, path);
	if (sig && !(sig->data && imp_is_pgp_signature(sig->data, sig->size)))
		sig = NULL; /* "<tag>.sig" holding a manifest: a model of its own */
	if (!sig && ks && require)
		return imp_fail(e, IMP_REFUSED, -ENOENT, im->manifest->path,
				"it has no signature (.sig) beside it");
	if (!sig)
		return (im->sig_status = strdup("absent")) ? 0 : -ENOMEM;
	if (!ks)
		return (im->sig_status = strdup("present, not checked (no keyring)")) ? 0 : -ENOMEM;
	if (!sig->data)
		return imp_fail(e, IMP_REFUSED, -E2BIG, path, "it is too large for a signature");
	int r = sig_verify_detached(ks, im->manifest->data, im->manifest->size, sig->data,
				    sig->size, &fpr, &why);
	if (r < 0)
		return imp_fail(e, r == -AG_EDIGEST ? IMP_REFUSED : IMP_IO, r, path, "%s",
				why ? why : "it is not valid");
	sig->bound |= IMP_BIND_SIGNATURE;
	im->manifest->bound |= IMP_BIND_SIGNATURE;
	return asprintf(&im->sig_status, "verified, signed by %s", fpr) < 0 ? -ENOMEM : 0;
}

static int add_model(struct imp_source *src, struct imp_member *mb, const char *rel,
		     ag_store *store, struct imp_result *res, struct imp_error *e)
{
	struct imp_model *im = &res->models[res->nmodels];
	const char *why;
	int r;

	memset(im, 0, sizeof(*im));
	if (ag_name_parse(rel, strlen(rel), &im->model.name) < 0)
		return imp_fail(e, IMP_REFUSED, -AG_EBADNAME, mb->path,
				"its path is not a valid model name");
	res->nmodels++;
	im->manifest = mb;
	if (!mb->data)
		return imp_fail(e, IMP_REFUSED, -E2BIG, mb->path, "it is too large for a manifest");
	r = imp_manifest_parse(mb->data, mb->size, &im->model, &why);
	if (r < 0)
		return imp_fail(e, IMP_REFUSED, r, mb->path, "it is not a valid manifest: %s", why);
	im->model.manifest = mb->digest;
	im->model.manifest_size = mb->size;
	r = check_layer(src, store, mb, &im->model.config, e);
	for (size_t i = 0; r == 0 && i < im->model.nlayers; i++)
		r = check_layer(src, store, mb, &im->model.layers[i], e);
	return r;
}

/* A file under manifests/ at depth four.  "<tag>.sig" is the signature of
 * "<tag>" only when "<tag>" is there too and it holds an OpenPGP signature;
 * otherwise it is a manifest with that tag (so are "v1.asc" and the like). */
static bool is_manifest(struct imp_source *src, const struct imp_member *mb, const char *rel)
{
	int slashes = 0;
	size_t n = strlen(mb->path);

	for (const char *p = rel; *p; p++)
		slashes += *p == '/';
	if (slashes != 3)
		return false;
	if (n > 4 && strcmp(mb->path + n - 4, ".sig") == 0) {
		char base[IMP_MAX_PATH + 1];
		snprintf(base, sizeof(base), "%.*s", (int)(n - 4), mb->path);
		return !imp_member_find(src, base) || !mb->data ||
		       !imp_is_pgp_signature(mb->data, mb->size);
	}
	return true;
}

static int check_blobs(struct imp_source *src, struct imp_error *e)
{
	char prefix[IMP_MAX_PATH + 16];
	ag_digest d;

	snprintf(prefix, sizeof(prefix), "%sblobs/", src->ollama_root);
	if (!src->skipped && !(src->skipped = json_array()))
		return -ENOMEM;
	for (size_t i = 0; i < src->n; i++) {
		struct imp_member *mb = &src->m[i];
		const char *name = mb->path + strlen(prefix);
		if (!has_prefix(mb->path, prefix) || mb->referenced)
			continue;
		if ((has_prefix(name, "sha256-") || has_prefix(name, "sha256:")) &&
		    ag_digest_parse(name + 7, strlen(name + 7), &d) == 0 &&
		    !ag_digest_eq(&d, &mb->digest))
			return imp_fail(e, IMP_REFUSED, -AG_EDIGEST, mb->path,
					"its content does not hash to the digest in its name");
		json_array_append_new(src->skipped, json_string(mb->path));
	}
	return 0;
}

int imp_verify_models(struct imp_source *src, struct sig_keyring *ks, ag_store *store,
		      struct imp_result *res, struct imp_error *e)
{
	char prefix[IMP_MAX_PATH + 16];
	int r = 0;

	if (!src->ollama_root && (r = find_root(src, e)) < 0)
		return r;
	if (!src->ollama_root)
		return 0;
	snprintf(prefix, sizeof(prefix), "%smanifests/", src->ollama_root);
	res->models = calloc(src->n + 1, sizeof(*res->models));
	if (!res->models)
		return -ENOMEM;
	for (size_t i = 0; r == 0 && i < src->n; i++) {
		struct imp_member *mb = &src->m[i];
		const char *rel = mb->path + strlen(prefix);
		if (!has_prefix(mb->path, prefix) || !is_manifest(src, mb, rel))
			continue;
		r = add_model(src, mb, rel, store, res, e);
		if (r == 0)
			r = check_sig(src, ks, &res->models[res->nmodels - 1],
				      res->require_manifest_sig, e);
	}
	return r < 0 ? r : check_blobs(src, e);
}
