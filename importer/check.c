/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Verifying a source once it has been read, before anything is published:
 * the outer hash, the signature over manifest/bundle.json, bundle.json
 * itself, its artifact hashes, every line of every signatures/ .sha256 list,
 * the signed models_directory_hash, the models (models.c), and anti-rollback.
 * The first failure refuses the source; the report says what bound each
 * member.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "importer/import.h"

#define BUNDLE_JSON "manifest/bundle.json"
#define BUNDLE_SIG  "manifest/bundle.json.asc"

static bool has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

static int check_outer(struct imp_source *src, const struct imp_options *o, struct imp_error *e)
{
	char got[AG_HEX_LEN + 1], want[AG_HEX_LEN + 1];

	if (!o->has_sha256)
		return 0;
	if (!src->has_outer)
		return imp_fail(e, IMP_USAGE, -EINVAL, "",
				"it is a directory, and --sha256 applies to a tarball");
	ag_digest_hex(&src->outer, got);
	ag_digest_hex(&o->sha256, want);
	if (!ag_digest_eq(&src->outer, &o->sha256))
		return imp_fail(e, IMP_REFUSED, -AG_EDIGEST, "",
				"its SHA-256 is %s, not the expected %s", got, want);
	return 0;
}

static int check_signature(struct imp_source *src, const struct imp_options *o,
			   struct sig_keyring *ks, struct imp_result *res, struct imp_error *e)
{
	struct imp_member *bj = imp_member_find(src, BUNDLE_JSON);
	struct imp_member *sig = imp_member_find(src, BUNDLE_SIG);
	_cleanup_free_ char *why = NULL;

	if (!bj)
		return imp_fail(e, IMP_REFUSED, -ENOENT, BUNDLE_JSON,
				"it is missing, so the source is not a bundle");
	if (!bj->data)
		return imp_fail(e, IMP_REFUSED, -E2BIG, BUNDLE_JSON, "it is too large");
	if (!sig) {
		if (o->no_signature)
			return 0;
		return imp_fail(e, IMP_REFUSED, -ENOENT, BUNDLE_SIG,
				"it is missing, so the bundle is unsigned (--no-signature "
				"accepts that)");
	}
	if (!ks)
		return 0;
	if (!sig->data)
		return imp_fail(e, IMP_REFUSED, -E2BIG, BUNDLE_SIG, "it is too large");
	int r = sig_verify_detached(ks, bj->data, bj->size, sig->data, sig->size, &res->signer,
				    &why);
	if (r < 0)
		return imp_fail(e, r == -AG_EDIGEST ? IMP_REFUSED : IMP_IO, r, BUNDLE_SIG, "%s",
				why ? why : "it is not valid");
	bj->bound |= IMP_BIND_SIGNATURE;
	sig->bound |= IMP_BIND_SIGNATURE;
	return 0;
}

/*
 * The two artifacts the bundle format names bind a path each: the file the
 * format's own commands put there (bundle-format.md), not "any member with
 * that content".  Other keys bind nothing this importer could check, so a
 * signed claim about them refuses the bundle ("files" binds any path).
 */
static const struct {
	const char *key, *path;
} artifact_paths[] = {
	{"ollama_binary", "binaries/ollama-linux-amd64"},
	{"open_webui_image", "images/open-webui.tar"},
};

static const char *artifact_path(const char *key)
{
	for (size_t i = 0; i < sizeof(artifact_paths) / sizeof(artifact_paths[0]); i++)
		if (strcmp(artifact_paths[i].key, key) == 0)
			return artifact_paths[i].path;
	return NULL;
}

static int check_artifacts(struct imp_source *src, struct imp_result *res, struct imp_error *e)
{
	for (size_t a = 0; a < res->bundle.nartifacts; a++) {
		const struct imp_artifact *art = &res->bundle.artifacts[a];
		const char *path = artifact_path(art->key);
		struct imp_member *mb = path ? imp_member_find(src, path) : NULL;
		if (!path)
			return imp_fail(
				e, IMP_REFUSED, -EINVAL, BUNDLE_JSON,
				"its artifact \"%s\" names no file this importer knows "
				"(ollama_binary, open_webui_image; \"files\" binds any path)",
				art->key);
		if (!mb)
			return imp_fail(e, IMP_REFUSED, -ENOENT, path,
					"it is missing, and the signed artifact \"%s\" names it",
					art->key);
		if (!ag_digest_eq(&mb->digest, &art->digest))
			return imp_fail(e, IMP_REFUSED, -AG_EDIGEST, path,
					"its SHA-256 differs from the signed artifact \"%s\"",
					art->key);
		mb->bound |= IMP_BIND_ARTIFACT;
	}
	return 0;
}

static bool is_bundle_file(const char *p)
{
	return strcmp(p, BUNDLE_JSON) == 0 || strcmp(p, BUNDLE_SIG) == 0;
}

/* "files" (contract 6): every listed file present with its hash, and no
 * member file unlisted. */
static int check_files(struct imp_source *src, struct imp_result *res, struct imp_error *e)
{
	const struct imp_bundle_json *b = &res->bundle;

	if (!b->has_files)
		return 0;
	for (size_t i = 0; i < b->nfiles; i++) {
		struct imp_member *mb = imp_member_find(src, b->files[i].path);
		if (!mb)
			return imp_fail(e, IMP_REFUSED, -ENOENT, b->files[i].path,
					"it is listed in the signed \"files\" of %s but is not "
					"in the bundle",
					BUNDLE_JSON);
		if (!ag_digest_eq(&mb->digest, &b->files[i].digest))
			return imp_fail(e, IMP_REFUSED, -AG_EDIGEST, mb->path,
					"its SHA-256 differs from the signed \"files\" of %s",
					BUNDLE_JSON);
		mb->bound |= IMP_BIND_FILES;
	}
	for (size_t i = 0; i < src->n; i++)
		if (!(src->m[i].bound & IMP_BIND_FILES) && !is_bundle_file(src->m[i].path))
			return imp_fail(e, IMP_REFUSED, -EPERM, src->m[i].path,
					"it is not listed in the signed \"files\" of %s",
					BUNDLE_JSON);
	return 0;
}

static int check_sumlist(struct imp_source *src, struct imp_member *list, struct imp_error *e)
{
	struct imp_sumlist l;
	size_t bad;
	int r;

	if (!list->data)
		return imp_fail(e, IMP_REFUSED, -E2BIG, list->path, "it is too large");
	r = imp_sumlist_parse(list->data, list->size, &l, &bad);
	if (r < 0)
		return imp_fail(e, IMP_REFUSED, r, list->path, "line %zu is malformed", bad);
	for (size_t i = 0; r == 0 && i < l.n; i++) {
		_cleanup_free_ char *norm = NULL;
		const char *why;
		struct imp_member *mb = NULL;
		int rp = imp_tarpath_check(l.lines[i].path, strlen(l.lines[i].path), &norm, &why);
		if (rp == 0)
			mb = imp_member_find(src, norm);
		if (rp == -ENOMEM)
			r = imp_fail(e, IMP_IO, rp, list->path, "out of memory");
		else if (!mb)
			r = imp_fail(e, IMP_REFUSED, -ENOENT, l.lines[i].path,
				     "it is listed in %s but is not in the bundle", list->path);
		else if (!ag_digest_eq(&mb->digest, &l.lines[i].digest))
			r = imp_fail(e, IMP_REFUSED, -AG_EDIGEST, mb->path,
				     "its SHA-256 differs from line %zu of %s", l.lines[i].lineno,
				     list->path);
		else
			mb->bound |= IMP_BIND_SUMLIST;
	}
	imp_sumlist_free(&l);
	return r;
}

static int check_sumlists(struct imp_source *src, struct imp_error *e)
{
	for (size_t i = 0; i < src->n; i++) {
		const char *p = src->m[i].path;
		size_t n = strlen(p);
		if (!has_prefix(p, "signatures/") || strchr(p + 11, '/') || n < 7 ||
		    strcmp(p + n - 7, ".sha256") != 0)
			continue;
		int r = check_sumlist(src, &src->m[i], e);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The signed models_directory_hash is always recomputed and compared, over
 * whatever is under models/, the empty set included. */
static int check_models_hash(struct imp_source *src, struct imp_result *res, struct imp_error *e,
			     const char **order)
{
	size_t nmodels = 0;

	*order = NULL;
	for (size_t i = 0; i < src->n; i++)
		nmodels += has_prefix(src->m[i].path, "models/");
	if (!res->bundle.has_models_hash) {
		if (nmodels == 0 || res->bundle.has_files)
			return 0;
		return imp_fail(e, IMP_REFUSED, -ENOENT, BUNDLE_JSON,
				"it has no models_directory_hash, so nothing binds models/");
	}
	int r = imp_models_hash_check(src, &res->bundle.models_hash, order);
	if (r == -AG_EDIGEST && nmodels == 0)
		return imp_fail(e, IMP_REFUSED, r, "models/",
				"it is missing or empty, and the signed models_directory_hash "
				"says otherwise");
	if (r == -AG_EDIGEST)
		return imp_fail(e, IMP_REFUSED, r, "models/",
				"its files do not match the signed models_directory_hash (in byte "
				"or locale order)");
	if (r < 0)
		return imp_fail(e, IMP_IO, r, "models/", "%s", ag_strerror(r));
	for (size_t i = 0; i < src->n; i++)
		if (has_prefix(src->m[i].path, "models/"))
			src->m[i].bound |= IMP_BIND_MODELS_HASH;
	return 0;
}

/* Anti-rollback against the newest bundle_version the store ever accepted
 * (kept by rm, activate, rollback and gc), not the current label. */
static int check_rollback(const struct imp_options *o, ag_store *store, struct imp_result *res,
			  struct imp_error *e)
{
	const char *v = res->bundle.bundle_version;
	int r;

	if (!v || !store)
		return 0;
	if ((r = imp_store_max_version(store, &res->max_version)) < 0)
		return imp_fail(e, IMP_IO, r, "",
				"the store's newest bundle_version cannot be read (%s)",
				ag_strerror(r));
	if (!res->max_version || imp_label_cmp(v, res->max_version) >= 0)
		return 0;
	if (o->allow_downgrade) {
		res->downgrade = true;
		return 0;
	}
	return imp_fail(e, IMP_REFUSED, -ERANGE, BUNDLE_JSON,
			"its bundle_version %s is older than %s, the newest this store has "
			"accepted (--allow-downgrade accepts that)",
			v, res->max_version);
}

static const char *binding_text(unsigned b, bool signed_source)
{
	if (b & IMP_BIND_SIGNED)
		return signed_source ? "signed" : "hash-listed, not signed";
	if (b & IMP_BIND_SUMLIST)
		return "hash-listed, not signed";
	return "not covered by any hash";
}

static json_t *bound_by(unsigned b)
{
	static const char *const names[] = {"signature",
					    "artifact hash in bundle.json",
					    "models_directory_hash",
					    "sha256 list",
					    "manifest digest",
					    "files in bundle.json"};
	json_t *a = json_array();

	for (size_t i = 0; a && i < sizeof(names) / sizeof(names[0]); i++)
		if (b & (1u << i))
			json_array_append_new(a, json_string(names[i]));
	return a;
}

static json_t *member_report(const struct imp_member *mb, bool signed_source)
{
	char hex[AG_HEX_LEN + 1];

	ag_digest_hex(&mb->digest, hex);
	return json_pack("{s:s, s:I, s:s, s:o, s:s}", "path", mb->path, "size",
			 (json_int_t)mb->size, "sha256", hex, "bound_by", bound_by(mb->bound),
			 "result", binding_text(mb->bound, signed_source));
}

/* Members a hash covers, one by one (at most IMP_REPORT_MAX); the ones no
 * hash covers only as a count, their bytes and the first few paths, so junk
 * cannot inflate the report (it is stored with the generation). */
static json_t *members_report(struct imp_source *src, bool signed_source, json_t **uncovered)
{
	json_t *members = json_array(), *first = json_array();
	uint64_t nun = 0, bun = 0, nomitted = 0;

	for (size_t i = 0; members && first && i < src->n; i++) {
		const struct imp_member *mb = &src->m[i];
		if (mb->bound == IMP_BIND_NONE) {
			nun++;
			bun += mb->size;
			if (json_array_size(first) < 20)
				json_array_append_new(first, json_string(mb->path));
		} else if (json_array_size(members) < IMP_REPORT_MAX) {
			json_array_append_new(members, member_report(mb, signed_source));
		} else {
			nomitted++;
		}
	}
	*uncovered = json_pack("{s:I, s:I, s:o, s:I}", "count", (json_int_t)nun, "bytes",
			       (json_int_t)bun, "first", first, "covered_not_listed",
			       (json_int_t)nomitted);
	return members;
}

static json_t *models_report(const struct imp_result *res)
{
	json_t *a = json_array();
	char hex[AG_HEX_LEN + 1];

	for (size_t i = 0; a && i < res->nmodels; i++) {
		const struct imp_model *im = &res->models[i];
		ag_digest_hex(&im->model.manifest, hex);
		json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:s?}", "name", im->model.name,
						   "manifest", hex, "path", im->manifest->path,
						   "signature", im->sig_status));
	}
	return a;
}

/* bundle.json as signed, but a "files" map only as its size (it may list
 * a million paths; the members report says what each bound). */
static json_t *bundle_summary(const struct imp_bundle_json *b)
{
	json_t *j = json_deep_copy(b->raw);

	if (j && b->has_files)
		json_object_set_new(j, "files", json_sprintf("%zu files", b->nfiles));
	return j;
}

static json_t *build_report(struct imp_source *src, const struct imp_options *o,
			    struct imp_result *res, const char *order)
{
	char hex[AG_HEX_LEN + 1];
	bool signed_source = res->signer != NULL;
	json_t *uncovered = NULL, *members = members_report(src, signed_source, &uncovered), *r;

	if (src->has_outer)
		ag_digest_hex(&src->outer, hex);
	r = json_pack("{s:s, s:s, s:s?, s:s, s:s, s:s?, s:o, s:o, s:O?, s:s}", "source", src->name,
		      "kind", o->ollama_dir ? "ollama-dir" : "bundle", "source_sha256",
		      src->has_outer ? hex : NULL, "outer_hash",
		      o->has_sha256 ? "matched" : "not given", "signature",
		      signed_source	? "good"
		      : o->no_signature ? "not checked (--no-signature)"
					: "not checked",
		      "signer", res->signer, "members", members, "models", models_report(res),
		      "unreferenced_blobs", src->skipped, "label", res->label);
	if (r)
		json_object_set_new(r, "uncovered", uncovered);
	else
		json_decref(uncovered);
	if (r && res->has_bundle)
		json_object_set_new(r, "bundle", bundle_summary(&res->bundle));
	if (r && res->downgrade)
		json_object_set_new(r, "downgrade",
				    json_pack("{s:s, s:s}", "from", res->max_version, "to",
					      res->bundle.bundle_version));
	if (r && order)
		json_object_set_new(r, "models_directory_hash",
				    json_sprintf("matched (%s)", order));
	if (r)
		json_object_set_new(r, "result", json_string("verified"));
	return r;
}

static int make_label(const struct imp_options *o, struct imp_result *res)
{
	char buf[64];
	time_t t = time(NULL);
	struct tm tm;

	if (o->label)
		res->label = strdup(o->label);
	else if (res->bundle.bundle_version)
		res->label = strdup(res->bundle.bundle_version);
	else {
		strftime(buf, sizeof(buf), "ollama-%Y%m%dT%H%M%SZ", gmtime_r(&t, &tm));
		res->label = strdup(buf);
	}
	return res->label ? 0 : -ENOMEM;
}

static int verify_bundle(struct imp_source *src, const struct imp_options *o,
			 struct sig_keyring *ks, struct imp_result *res, struct imp_error *e,
			 const char **order)
{
	struct imp_member *bj;
	const char *why;
	int r;

	if ((r = check_signature(src, o, ks, res, e)) < 0)
		return r;
	bj = imp_member_find(src, BUNDLE_JSON);
	r = imp_bundle_json_parse(bj->data, bj->size, &res->bundle, &why);
	if (r < 0)
		return imp_fail(e, IMP_REFUSED, r, BUNDLE_JSON, "it is malformed: %s", why);
	res->has_bundle = true;
	if ((r = check_artifacts(src, res, e)) < 0 || (r = check_files(src, res, e)) < 0 ||
	    (r = check_sumlists(src, e)) < 0)
		return r;
	return check_models_hash(src, res, e, order);
}

int imp_verify_source(struct imp_source *src, const struct imp_options *o, struct sig_keyring *ks,
		      ag_store *store, struct imp_result *res, struct imp_error *e)
{
	const char *order = NULL;
	int r;

	if ((r = imp_members_seal(src, e)) < 0 || (r = check_outer(src, o, e)) < 0)
		return r;
	if (!o->ollama_dir && (r = verify_bundle(src, o, ks, res, e, &order)) < 0)
		return r;
	if (!o->ollama_dir && (r = imp_delta_check(src, store, res, e)) < 0) /* delta.c */
		return r;
	if ((r = imp_verify_models(src, ks, store, res, e)) < 0)
		return r;
	if (o->ollama_dir && res->nmodels == 0)
		return imp_fail(e, IMP_REFUSED, -ENOENT, "manifests/",
				"it holds no manifest at host/namespace/model/tag");
	if ((r = check_rollback(o, store, res, e)) < 0)
		return r;
	if ((r = make_label(o, res)) < 0)
		return imp_fail(e, IMP_IO, r, "", "out of memory");
	res->report = build_report(src, o, res, order);
	if (res->report && src->delta)
		json_object_set_new(res->report, "delta", imp_delta_report(src));
	if (!res->report)
		return imp_fail(e, IMP_IO, -ENOMEM, "", "out of memory");
	return 0;
}

void imp_result_free(struct imp_result *r)
{
	imp_bundle_json_free(&r->bundle);
	free(r->signer);
	free(r->label);
	for (size_t i = 0; i < r->nmodels; i++) {
		ag_model_clear(&r->models[i].model);
		free(r->models[i].sig_status);
	}
	free(r->models);
	json_decref(r->report);
	free(r->max_version);
	json_decref(r->repaired);
	json_decref(r->artifacts);
	json_decref(r->unverified);
	memset(r, 0, sizeof(*r));
}
