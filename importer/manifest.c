/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Ollama manifests (Docker distribution manifest v2 as Ollama writes it):
 *   {"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
 *    "config":{"mediaType":...,"digest":"sha256:<hex>","size":N},
 *    "layers":[{"mediaType":"application/vnd.ollama.image.model","digest":...,"size":N},...]}
 * Unknown fields are ignored, as Ollama ignores them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "importer/import.h"

#define MAX_MEDIA_TYPE 255

static const char *const manifest_types[] = {
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.oci.image.manifest.v1+json",
	NULL,
};
static const char *const config_types[] = {
	"application/vnd.docker.container.image.v1+json",
	"application/vnd.oci.image.config.v1+json",
	"application/vnd.ollama.image.config",
	NULL,
};
static const char *const layer_prefixes[] = {
	"application/vnd.ollama.image.",
	"application/vnd.oci.image.layer.",
	NULL,
};

static bool in_list(const char *s, const char *const *list, bool prefix)
{
	for (; *list; list++)
		if (prefix ? strncmp(s, *list, strlen(*list)) == 0 : strcmp(s, *list) == 0)
			return true;
	return false;
}

static bool media_type_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > MAX_MEDIA_TYPE)
		return false;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return false;
	return true;
}

int imp_digest_ref_parse(const char *s, ag_digest *out)
{
	if (strncmp(s, "sha256:", 7) != 0)
		return -AG_EBADNAME;
	return ag_digest_parse(s + 7, strlen(s + 7), out);
}

static int parse_layer(json_t *o, ag_layer *l, bool config, const char **why)
{
	json_t *mt = json_object_get(o, "mediaType"), *dg = json_object_get(o, "digest");
	json_t *sz = json_object_get(o, "size");

	*why = config ? "its config is malformed" : "a layer is malformed";
	if (!json_is_object(o) || !json_is_string(mt) || !json_is_string(dg) ||
	    !json_is_integer(sz) || json_integer_value(sz) < 0)
		return -EINVAL;
	if (strlen(json_string_value(mt)) != json_string_length(mt) ||
	    !media_type_ok(json_string_value(mt))) {
		*why = "a media type is malformed";
		return -EINVAL;
	}
	if (config ? !in_list(json_string_value(mt), config_types, false)
		   : !in_list(json_string_value(mt), layer_prefixes, true)) {
		*why = config ? "its config has an unknown media type"
			      : "a layer has an unknown media type";
		return -EINVAL;
	}
	if (imp_digest_ref_parse(json_string_value(dg), &l->digest) < 0) {
		*why = "a digest is not \"sha256:<64 hex digits>\"";
		return -EINVAL;
	}
	l->size = (uint64_t)json_integer_value(sz);
	l->media_type = strdup(json_string_value(mt));
	return l->media_type ? 0 : -ENOMEM;
}

static void free_layers(ag_model *m)
{
	free(m->config.media_type);
	m->config.media_type = NULL;
	for (size_t i = 0; i < m->nlayers; i++)
		free(m->layers[i].media_type);
	free(m->layers);
	m->layers = NULL;
	m->nlayers = 0;
}

static int parse_header(json_t *root, const char **why)
{
	json_t *sv = json_object_get(root, "schemaVersion"),
	       *mt = json_object_get(root, "mediaType");

	if (!json_is_object(root)) {
		*why = "it is not a JSON object";
		return -EINVAL;
	}
	if (!json_is_integer(sv) || json_integer_value(sv) != 2) {
		*why = "its schemaVersion is not 2";
		return -EINVAL;
	}
	if (mt && (!json_is_string(mt) || !in_list(json_string_value(mt), manifest_types, false))) {
		*why = "its mediaType is not a v2 image manifest";
		return -EINVAL;
	}
	return 0;
}

static int parse_doc(json_t *root, ag_model *m, const char **why)
{
	json_t *layers = json_object_get(root, "layers");
	int r = parse_header(root, why);

	if (r < 0)
		return r;
	if (!json_is_array(layers) || json_array_size(layers) > IMP_MAX_LAYERS) {
		*why = "its layers are missing or too many";
		return -EINVAL;
	}
	r = parse_layer(json_object_get(root, "config"), &m->config, true, why);
	if (r < 0)
		return r;
	m->layers = calloc(json_array_size(layers) + 1, sizeof(*m->layers));
	if (!m->layers)
		return -ENOMEM;
	for (size_t i = 0; i < json_array_size(layers); i++) {
		r = parse_layer(json_array_get(layers, i), &m->layers[i], false, why);
		if (r < 0)
			return r;
		m->nlayers++;
	}
	return 0;
}

int imp_manifest_parse(const char *buf, size_t len, ag_model *m, const char **why)
{
	json_error_t jerr;
	json_t *root;
	int r;

	memset(&m->config, 0, sizeof(m->config));
	m->layers = NULL;
	m->nlayers = 0;
	*why = "it is not valid JSON";
	if (len > IMP_MAX_SMALL) {
		*why = "it is too large";
		return -EINVAL;
	}
	root = ag_json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return errno == ENOMEM ? -ENOMEM : -EINVAL;
	r = parse_doc(root, m, why);
	json_decref(root);
	if (r < 0)
		free_layers(m);
	return r;
}
