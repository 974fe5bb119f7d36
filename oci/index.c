/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The generation index (see oci.h): encoded by `agstore push`, parsed by
 * `agimport --registry`.  Pure functions (tests/unit/oci-name.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "oci/oci.h"

static json_t *str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

int oci_index_encode(const ag_gen *g, char **out)
{
	json_t *models = json_object(), *doc;
	char hex[AG_HEX_LEN + 1], dig[AG_HEX_LEN + 8];
	int r = 0;

	for (size_t i = 0; models && r == 0 && i < g->nmodels; i++) {
		const ag_model *m = &g->models[i];
		_cleanup_free_ char *repo = NULL, *tag = NULL;
		if ((r = oci_model_ref(m->name, &repo, &tag)) < 0)
			break;
		ag_digest_hex(&m->manifest, hex);
		snprintf(dig, sizeof(dig), "sha256:%s", hex);
		r = json_object_set_new(models, m->name,
					json_pack("{s:I, s:s, s:s, s:I}", "added",
						  (json_int_t)m->added, "manifest", dig,
						  "repository", repo, "size",
						  (json_int_t)m->manifest_size)) < 0
			    ? -ENOMEM
			    : 0;
	}
	if (g->has_source_sha256)
		ag_digest_hex(&g->source_sha256, hex);
	doc = json_pack("{s:i, s:I, s:I, s:o, s:o, s:o, s:o, s:o}", "agfs_index", 1, "created",
			(json_int_t)g->created, "generation", (json_int_t)g->id, "label",
			str_or_null(g->label), "models", models ? models : json_null(), "signer",
			str_or_null(g->signer), "source", str_or_null(g->source), "source_sha256",
			g->has_source_sha256 ? json_string(hex) : json_null());
	if (r == 0 && (!doc || !models))
		r = -ENOMEM;
	if (r == 0 && !(*out = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS)))
		r = -ENOMEM;
	json_decref(doc);
	return r;
}

void oci_index_clear(struct oci_index *x)
{
	for (size_t i = 0; i < x->nmodels; i++) {
		free(x->models[i].name);
		free(x->models[i].repo);
		free(x->models[i].tag);
	}
	free(x->models);
	free(x->label);
	free(x->signer);
	free(x->source);
	*x = (struct oci_index){0};
}

static int dup_opt(json_t *v, char **out)
{
	if (json_is_null(v) || !v)
		return 0;
	if (!json_is_string(v))
		return -EBADMSG;
	return (*out = strdup(json_string_value(v))) ? 0 : -ENOMEM;
}

static int parse_digest(json_t *v, ag_digest *d)
{
	const char *s = json_string_value(v);

	if (!s || strncmp(s, "sha256:", 7) != 0)
		return -EBADMSG;
	return ag_digest_parse(s + 7, strlen(s + 7), d) < 0 ? -EBADMSG : 0;
}

static int parse_model(const char *name, json_t *v, struct oci_index_model *m, const char **why)
{
	_cleanup_free_ char *path = NULL;
	json_t *size = json_object_get(v, "size"), *added = json_object_get(v, "added");
	const char *repo = json_string_value(json_object_get(v, "repository"));
	int r;

	*why = "a model entry is malformed";
	if (!json_is_object(v) || !json_is_integer(size) || json_integer_value(size) < 0 ||
	    json_integer_value(size) > (json_int_t)OCI_MANIFEST_MAX || !json_is_integer(added) ||
	    !repo || parse_digest(json_object_get(v, "manifest"), &m->manifest) < 0)
		return -EBADMSG;
	*why = "a model name is not a model path";
	if (ag_name_parse(name, strlen(name), &path) < 0 || strcmp(path, name) != 0)
		return -EBADMSG;
	if (!(m->name = strdup(name)))
		return -ENOMEM;
	if ((r = oci_model_ref(name, &m->repo, &m->tag)) < 0)
		return r;
	*why = "a model's repository is not the one its name maps to";
	if (strcmp(m->repo, repo) != 0)
		return -EBADMSG;
	m->size = (uint64_t)json_integer_value(size);
	m->added = (int64_t)json_integer_value(added);
	return 0;
}

int oci_index_parse(const char *buf, size_t len, struct oci_index *x, const char **why)
{
	json_t *doc = ag_json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL), *models, *v;
	json_t *gen;
	const char *name;
	int r = -EBADMSG;

	*x = (struct oci_index){0};
	*why = "it is not JSON";
	if (!doc)
		return errno == ENOMEM ? -ENOMEM : -EBADMSG;
	models = json_object_get(doc, "models");
	gen = json_object_get(doc, "generation");
	*why = "it is not an agfs index (agfs_index 1, generation, models)";
	if (json_integer_value(json_object_get(doc, "agfs_index")) != 1 ||
	    !json_is_object(models) || !json_is_integer(gen) || json_integer_value(gen) < 1 ||
	    json_object_size(models) > OCI_INDEX_MAX_MODELS)
		goto out;
	x->generation = (uint64_t)json_integer_value(gen);
	x->created = (int64_t)json_integer_value(json_object_get(doc, "created"));
	if ((r = dup_opt(json_object_get(doc, "label"), &x->label)) < 0 ||
	    (r = dup_opt(json_object_get(doc, "signer"), &x->signer)) < 0 ||
	    (r = dup_opt(json_object_get(doc, "source"), &x->source)) < 0)
		goto out;
	v = json_object_get(doc, "source_sha256");
	if (json_is_string(v)) {
		x->has_source_sha256 = true;
		r = ag_digest_parse(json_string_value(v), strlen(json_string_value(v)),
				    &x->source_sha256) < 0
			    ? -EBADMSG
			    : 0;
	}
	if (r < 0 || !(x->models = calloc(json_object_size(models) + 1, sizeof(*x->models)))) {
		r = r < 0 ? r : -ENOMEM;
		goto out;
	}
	json_object_foreach(models, name, v)
	{
		if ((r = parse_model(name, v, &x->models[x->nmodels++], why)) < 0)
			goto out;
	}
	r = 0;
out:
	json_decref(doc);
	if (r < 0)
		oci_index_clear(x);
	return r;
}
