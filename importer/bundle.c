/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bundle.json, the one signed file of a bundle:
 *   {"bundle_version": "20260423", "creator": ..., "creation_date": ...,
 *    "low_side_host": ..., "artifacts": {"<name>": "<sha256 hex>", ...,
 *    "models_directory_hash": "<hex>"},
 *    "files": {"<path>": "<hex>", ...}}           (optional: signed per path)
 * Sites write it with a shell here-document; a "#" comment running to the
 * end of a line outside a string is tolerated (the documented template has
 * them).  Duplicate keys are refused.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "importer/import.h"

#define MAX_ARTIFACTS 1024

/* Blanks "#" comments that are outside JSON strings (in place). */
static void strip_comments(char *s, size_t len)
{
	bool in_str = false, esc = false, in_comment = false;

	for (size_t i = 0; i < len; i++) {
		if (in_comment) {
			if (s[i] == '\n')
				in_comment = false;
			else
				s[i] = ' ';
		} else if (in_str) {
			if (esc)
				esc = false;
			else if (s[i] == '\\')
				esc = true;
			else if (s[i] == '"')
				in_str = false;
		} else if (s[i] == '"') {
			in_str = true;
		} else if (s[i] == '#') {
			in_comment = true;
			s[i] = ' ';
		}
	}
}

static bool label_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64 || s[0] == '.' || s[0] == '-')
		return false;
	for (const char *p = s; *p; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
			    *p))
			return false;
	return true;
}

static int opt_string(json_t *root, const char *key, char **out, const char **why)
{
	json_t *v = json_object_get(root, key);

	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_string(v) || json_string_length(v) > IMP_MAX_JSON_STR ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		*why = "a field is not a plain string";
		return -EINVAL;
	}
	*out = strdup(json_string_value(v));
	return *out ? 0 : -ENOMEM;
}

static int parse_artifact(struct imp_bundle_json *b, const char *key, json_t *v, const char **why)
{
	ag_digest d;

	if (!json_is_string(v) ||
	    ag_digest_parse(json_string_value(v), json_string_length(v), &d)) {
		*why = "an artifacts value is not a SHA-256 hex digest";
		return -EINVAL;
	}
	if (strcmp(key, "models_directory_hash") == 0) {
		b->has_models_hash = true;
		b->models_hash = d;
		return 0;
	}
	if (strlen(key) > IMP_MAX_JSON_STR) {
		*why = "an artifacts key is too long";
		return -EINVAL;
	}
	struct imp_artifact *a = &b->artifacts[b->nartifacts];
	a->key = strdup(key);
	if (!a->key)
		return -ENOMEM;
	a->digest = d;
	b->nartifacts++;
	return 0;
}

static int parse_artifacts(struct imp_bundle_json *b, json_t *arts, const char **why)
{
	const char *key;
	json_t *v;

	if (!json_is_object(arts)) {
		*why = "\"artifacts\" is missing or not an object";
		return -EINVAL;
	}
	if (json_object_size(arts) > MAX_ARTIFACTS) {
		*why = "\"artifacts\" has too many entries";
		return -EINVAL;
	}
	b->artifacts = calloc(json_object_size(arts) + 1, sizeof(*b->artifacts));
	if (!b->artifacts)
		return -ENOMEM;
	json_object_foreach(arts, key, v)
	{
		int r = parse_artifact(b, key, v, why);
		if (r < 0)
			return r;
	}
	return 0;
}

static int cmp_file(const void *a, const void *b)
{
	return strcmp(((const struct imp_file *)a)->path, ((const struct imp_file *)b)->path);
}

/* "files": path (normal form, relative to the bundle root) -> SHA-256. */
static int parse_files(struct imp_bundle_json *b, json_t *files, const char **why)
{
	const char *key;
	json_t *v;

	if (!files)
		return 0;
	if (!json_is_object(files) || json_object_size(files) > IMP_MAX_MEMBERS) {
		*why = "\"files\" is not an object of at most a million paths";
		return -EINVAL;
	}
	b->has_files = true;
	b->files = calloc(json_object_size(files) + 1, sizeof(*b->files));
	if (!b->files)
		return -ENOMEM;
	json_object_foreach(files, key, v)
	{
		_cleanup_free_ char *norm = NULL;
		const char *pwhy;
		struct imp_file *f = &b->files[b->nfiles];
		int rp = imp_tarpath_check(key, strlen(key), &norm, &pwhy);
		if (rp == -ENOMEM)
			return rp;
		if (rp < 0 || strcmp(norm, key) || !strcmp(key, "manifest/bundle.json") ||
		    !strcmp(key, "manifest/bundle.json.asc")) {
			*why = "a \"files\" path is not a plain relative path of a member";
			return -EINVAL;
		}
		if (!json_is_string(v) ||
		    ag_digest_parse(json_string_value(v), json_string_length(v), &f->digest)) {
			*why = "a \"files\" value is not a SHA-256 hex digest";
			return -EINVAL;
		}
		if (!(f->path = strdup(key)))
			return -ENOMEM;
		b->nfiles++;
	}
	qsort(b->files, b->nfiles, sizeof(*b->files), cmp_file);
	return 0;
}

static int parse_root(struct imp_bundle_json *b, const char **why)
{
	int r;

	if (!json_is_object(b->raw)) {
		*why = "it is not a JSON object";
		return -EINVAL;
	}
	if ((r = opt_string(b->raw, "bundle_version", &b->bundle_version, why)) < 0 ||
	    (r = opt_string(b->raw, "creator", &b->creator, why)) < 0 ||
	    (r = opt_string(b->raw, "creation_date", &b->creation_date, why)) < 0 ||
	    (r = opt_string(b->raw, "low_side_host", &b->low_side_host, why)) < 0)
		return r;
	if (!b->bundle_version || !label_ok(b->bundle_version)) {
		*why = "\"bundle_version\" is missing or not a plain label";
		return -EINVAL;
	}
	if ((r = parse_artifacts(b, json_object_get(b->raw, "artifacts"), why)) < 0)
		return r;
	return parse_files(b, json_object_get(b->raw, "files"), why);
}

int imp_bundle_json_parse(const char *buf, size_t len, struct imp_bundle_json *out,
			  const char **why)
{
	json_error_t jerr;
	char *copy;
	int r;

	memset(out, 0, sizeof(*out));
	*why = "it is not valid JSON";
	if (len > IMP_MAX_BUNDLE_JSON) {
		*why = "it is too large";
		return -EINVAL;
	}
	copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, buf, len);
	copy[len] = '\0';
	strip_comments(copy, len);
	out->raw = ag_json_loadb(copy, len, JSON_REJECT_DUPLICATES, &jerr);
	int err = errno;
	free(copy);
	if (!out->raw)
		return err == ENOMEM ? -ENOMEM : -EINVAL;
	r = parse_root(out, why);
	if (r < 0)
		imp_bundle_json_free(out);
	return r;
}

void imp_bundle_json_free(struct imp_bundle_json *b)
{
	free(b->bundle_version);
	free(b->creator);
	free(b->creation_date);
	free(b->low_side_host);
	for (size_t i = 0; i < b->nartifacts; i++)
		free(b->artifacts[i].key);
	free(b->artifacts);
	for (size_t i = 0; i < b->nfiles; i++)
		free(b->files[i].path);
	free(b->files);
	json_decref(b->raw);
	memset(b, 0, sizeof(*b));
}
