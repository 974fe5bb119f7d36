/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Generations: immutable snapshots of which models exist.  Stored in the
 * "gens" database under an 8-byte big-endian id as versioned JSON:
 *   {"v":1,"id":N,"created":T,"label":..,"operator":..,"source":..,
 *    "signer":..,"source_sha256":hex,"report":"<json text>",
 *    "models":[{"name":..,"manifest":hex,"manifest_size":N,"added":T,
 *               "config":{"mediaType":..,"digest":hex,"size":N},"layers":[..]}],
 *    "bundle_files":{"<path>":hex,..}, "catalog":hex, "signature":hex}
 * (the last three in format 2, each only when there is one).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store/catalog.h"
#include "store/internal.h"

#define MAX_GEN_JSON (256u << 20)

ag_gen *ag_gen_new(void)
{
	return calloc(1, sizeof(ag_gen));
}

static void layer_clear(ag_layer *l)
{
	free(l->media_type);
	l->media_type = NULL;
}

void ag_model_clear(ag_model *m)
{
	free(m->name);
	layer_clear(&m->config);
	for (size_t i = 0; i < m->nlayers; i++)
		layer_clear(&m->layers[i]);
	free(m->layers);
	memset(m, 0, sizeof(*m));
}

void ag_gen_free(ag_gen *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->nmodels; i++)
		ag_model_clear(&g->models[i]);
	free(g->models);
	for (size_t i = 0; i < g->nbundle_files; i++)
		free(g->bundle_files[i].name);
	free(g->bundle_files);
	free(g->label);
	free(g->operator_name);
	free(g->source);
	free(g->signer);
	free(g->report);
	free(g);
}

static int layer_copy(ag_layer *dst, const ag_layer *src)
{
	*dst = *src;
	dst->media_type = src->media_type ? strdup(src->media_type) : NULL;
	return !src->media_type || dst->media_type ? 0 : -ENOMEM;
}

int ag_model_copy(ag_model *dst, const ag_model *src)
{
	*dst = (ag_model){.manifest = src->manifest,
			  .manifest_size = src->manifest_size,
			  .added = src->added};
	int r = 0;
	dst->name = strdup(src->name ? src->name : "");
	if (!dst->name || layer_copy(&dst->config, &src->config) < 0)
		r = -ENOMEM;
	if (r == 0 && src->nlayers) {
		dst->layers = calloc(src->nlayers, sizeof(ag_layer));
		if (!dst->layers)
			r = -ENOMEM;
		for (size_t i = 0; r == 0 && i < src->nlayers; i++, dst->nlayers++)
			r = layer_copy(&dst->layers[i], &src->layers[i]);
	}
	if (r < 0)
		ag_model_clear(dst);
	return r;
}

int ag_gen_add_model(ag_gen *g, const ag_model *m)
{
	ag_model *n = realloc(g->models, (g->nmodels + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	g->models = n;
	int r = ag_model_copy(&g->models[g->nmodels], m);
	if (r == 0)
		g->nmodels++;
	return r;
}

int ag_gen_add_bundle_file(ag_gen *g, const char *path, const ag_digest *d)
{
	struct ag_catalog_entry *n =
		realloc(g->bundle_files, (g->nbundle_files + 1) * sizeof(*g->bundle_files));
	if (!n)
		return -ENOMEM;
	g->bundle_files = n;
	if (!(n[g->nbundle_files].name = strdup(path)))
		return -ENOMEM;
	n[g->nbundle_files++].digest = *d;
	return 0;
}

int ag_gen_foreach_extra_blob(const ag_gen *g, int (*cb)(const ag_digest *d, void *arg), void *arg)
{
	int r = 0;
	for (size_t i = 0; r == 0 && i < g->nbundle_files; i++)
		r = cb(&g->bundle_files[i].digest, arg);
	if (r == 0 && g->has_catalog)
		r = cb(&g->catalog, arg);
	if (r == 0 && g->has_signature)
		r = cb(&g->signature, arg);
	return r;
}

static int model_cmp(const void *a, const void *b)
{
	return strcmp(((const ag_model *)a)->name, ((const ag_model *)b)->name);
}

void ag_gen_sort(ag_gen *g)
{
	if (g->nmodels > 1)
		qsort(g->models, g->nmodels, sizeof(ag_model), model_cmp);
}

ag_model *ag_gen_find(const ag_gen *g, const char *name)
{
	ag_model key = {.name = (char *)name};
	return bsearch(&key, g->models, g->nmodels, sizeof(ag_model), model_cmp);
}

/* ---------- JSON encoding ---------- */

static json_t *hex_json(const ag_digest *d)
{
	char hex[AG_HEX_LEN + 1];
	ag_digest_hex(d, hex);
	return json_string(hex);
}

static json_t *layer_json(const ag_layer *l)
{
	return json_pack("{s:s?,s:o,s:I}", "mediaType", l->media_type, "digest",
			 hex_json(&l->digest), "size", (json_int_t)l->size);
}

static json_t *model_json(const ag_model *m)
{
	json_t *layers = json_array();
	for (size_t i = 0; layers && i < m->nlayers; i++)
		json_array_append_new(layers, layer_json(&m->layers[i]));
	return json_pack("{s:s,s:o,s:I,s:I,s:o,s:o}", "name", m->name, "manifest",
			 hex_json(&m->manifest), "manifest_size", (json_int_t)m->manifest_size,
			 "added", (json_int_t)m->added, "config", layer_json(&m->config), "layers",
			 layers);
}

char *ag_gen_encode(const ag_gen *g)
{
	json_t *models = json_array();
	for (size_t i = 0; models && i < g->nmodels; i++)
		json_array_append_new(models, model_json(&g->models[i]));
	json_t *o = json_pack("{s:i,s:I,s:I,s:s?,s:s?,s:s?,s:s?,s:s?,s:o}", "v", AG_GEN_REC_VERSION,
			      "id", (json_int_t)g->id, "created", (json_int_t)g->created, "label",
			      g->label, "operator", g->operator_name, "source", g->source, "signer",
			      g->signer, "report", g->report, "models", models);
	if (!o)
		return NULL;
	if (g->has_source_sha256)
		json_object_set_new(o, "source_sha256", hex_json(&g->source_sha256));
	if (g->has_catalog)
		json_object_set_new(o, "catalog", hex_json(&g->catalog));
	if (g->has_signature)
		json_object_set_new(o, "signature", hex_json(&g->signature));
	if (g->nbundle_files) {
		json_t *f = json_object();
		for (size_t i = 0; f && i < g->nbundle_files; i++)
			json_object_set_new(f, g->bundle_files[i].name,
					    hex_json(&g->bundle_files[i].digest));
		json_object_set_new(o, "bundle_files", f);
	}
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

static int get_digest(json_t *o, const char *key, ag_digest *d)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? ag_digest_parse(s, strlen(s), d) : -AG_ECORRUPT;
}

static int dup_str(json_t *o, const char *key, char **out)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return -AG_ECORRUPT;
	*out = strdup(json_string_value(v));
	return *out ? 0 : -ENOMEM;
}

static int layer_decode(json_t *o, ag_layer *l)
{
	if (!json_is_object(o) || get_digest(o, "digest", &l->digest) < 0 ||
	    !json_is_integer(json_object_get(o, "size")) ||
	    json_integer_value(json_object_get(o, "size")) < 0)
		return -AG_ECORRUPT;
	l->size = (uint64_t)json_integer_value(json_object_get(o, "size"));
	return dup_str(o, "mediaType", &l->media_type);
}

static int model_decode(json_t *o, ag_model *m)
{
	json_t *layers = json_object_get(o, "layers");
	if (!json_is_object(o) || !json_is_array(layers) ||
	    get_digest(o, "manifest", &m->manifest) < 0 ||
	    json_integer_value(json_object_get(o, "manifest_size")) < 0)
		return -AG_ECORRUPT;
	m->manifest_size = (uint64_t)json_integer_value(json_object_get(o, "manifest_size"));
	m->added = json_integer_value(json_object_get(o, "added"));
	int r = dup_str(o, "name", &m->name);
	if (r == 0 && (!m->name || !*m->name))
		r = -AG_ECORRUPT;
	if (r == 0)
		r = layer_decode(json_object_get(o, "config"), &m->config);
	size_t n = json_array_size(layers);
	if (r == 0 && n && !(m->layers = calloc(n, sizeof(ag_layer))))
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < n; i++, m->nlayers++)
		r = layer_decode(json_array_get(layers, i), &m->layers[i]);
	return r;
}

static int gen_fields(json_t *o, ag_gen *g)
{
	int r;
	if (json_integer_value(json_object_get(o, "v")) != AG_GEN_REC_VERSION)
		return -AG_ECORRUPT;
	g->id = (uint64_t)json_integer_value(json_object_get(o, "id"));
	g->created = json_integer_value(json_object_get(o, "created"));
	if ((r = dup_str(o, "label", &g->label)) < 0 ||
	    (r = dup_str(o, "operator", &g->operator_name)) < 0 ||
	    (r = dup_str(o, "source", &g->source)) < 0 ||
	    (r = dup_str(o, "signer", &g->signer)) < 0 ||
	    (r = dup_str(o, "report", &g->report)) < 0)
		return r;
	if (json_object_get(o, "source_sha256")) {
		if (get_digest(o, "source_sha256", &g->source_sha256) < 0)
			return -AG_ECORRUPT;
		g->has_source_sha256 = true;
	}
	if (json_object_get(o, "catalog")) {
		if (get_digest(o, "catalog", &g->catalog) < 0)
			return -AG_ECORRUPT;
		g->has_catalog = true;
	}
	if (json_object_get(o, "signature")) {
		if (get_digest(o, "signature", &g->signature) < 0)
			return -AG_ECORRUPT;
		g->has_signature = true;
	}
	json_t *files = json_object_get(o, "bundle_files");
	if (files && !json_is_object(files))
		return -AG_ECORRUPT;
	const char *k;
	json_t *v;
	json_object_foreach(files, k, v)
	{
		ag_digest d;
		const char *hex = json_string_value(v);
		if (!hex || ag_digest_parse(hex, strlen(hex), &d) < 0)
			return -AG_ECORRUPT;
		if ((r = ag_gen_add_bundle_file(g, k, &d)) < 0)
			return r;
	}
	return 0;
}

int ag_gen_decode(const void *data, size_t len, ag_gen **out)
{
	json_error_t err;
	json_t *o = ag_json_loadb(data, len, 0, &err);
	if (!o)
		return errno == ENOMEM ? -ENOMEM : -AG_ECORRUPT;
	ag_gen *g = ag_gen_new();
	json_t *models = json_object_get(o, "models");
	int r = !g ? -ENOMEM : json_is_array(models) ? gen_fields(o, g) : -AG_ECORRUPT;
	size_t n = json_array_size(models);
	if (r == 0 && n && !(g->models = calloc(n, sizeof(ag_model))))
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < n; i++, g->nmodels++)
		r = model_decode(json_array_get(models, i), &g->models[i]);
	json_decref(o);
	if (r < 0) {
		ag_gen_free(g);
		return r;
	}
	ag_gen_sort(g);
	*out = g;
	return 0;
}

/* ---------- reading ---------- */

static void gen_key(uint64_t id, uint8_t k[8])
{
	for (int i = 7; i >= 0; i--, id >>= 8)
		k[i] = (uint8_t)id;
}

static int gen_get_txn(MDB_txn *txn, ag_store *s, uint64_t id, ag_gen **out)
{
	int r;
	if (id == 0 && (r = ag_meta_get_u64(txn, s, "current", &id)) < 0)
		return r;
	uint8_t kb[8];
	gen_key(id, kb);
	MDB_val k = {8, kb}, v;
	if ((r = ag_lmdb_err(mdb_get(txn, s->dbi_gens, &k, &v))) < 0)
		return r;
	if (v.mv_size > MAX_GEN_JSON)
		return -AG_ECORRUPT;
	if ((r = ag_gen_decode(v.mv_data, v.mv_size, out)) < 0)
		return r;
	if ((*out)->id != id) { /* a record that is not the one its key names */
		ag_gen_free(*out);
		*out = NULL;
		return -AG_ECORRUPT;
	}
	return 0;
}

struct gen_get {
	ag_store *s;
	uint64_t id;
	ag_gen **out;
};

static int gen_get_fn(MDB_txn *txn, void *arg)
{
	struct gen_get *a = arg;
	return gen_get_txn(txn, a->s, a->id, a->out);
}

int ag_gen_get(ag_store *s, uint64_t id, ag_gen **out)
{
	struct gen_get a = {s, id, out};
	return ag_read_guarded(s, gen_get_fn, &a);
}

int ag_txn_gen_get(ag_txn *t, uint64_t id, ag_gen **out)
{
	AG_TXN_GUARD(t);
	return gen_get_txn(t->txn, t->s, id, out);
}

static int gen_ids(MDB_txn *txn, ag_store *s, uint64_t **ids, size_t *n)
{
	MDB_cursor *cur;
	int r = ag_lmdb_err(mdb_cursor_open(txn, s->dbi_gens, &cur));
	if (r < 0)
		return r;
	uint64_t *v = NULL;
	size_t cnt = 0, cap = 0;
	MDB_val k, d;
	int rc;
	for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
		if (k.mv_size != 8)
			continue;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			uint64_t *nv = realloc(v, cap * sizeof(*nv));
			if (!nv) {
				rc = ENOMEM;
				break;
			}
			v = nv;
		}
		uint64_t id = 0;
		for (int i = 0; i < 8; i++)
			id = id << 8 | ((const uint8_t *)k.mv_data)[i];
		v[cnt++] = id;
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND) {
		free(v);
		return ag_lmdb_err(rc);
	}
	*ids = v;
	*n = cnt;
	return 0;
}

struct gen_list {
	ag_store *s;
	uint64_t **ids;
	size_t *n;
};

static int gen_list_fn(MDB_txn *txn, void *arg)
{
	struct gen_list *a = arg;
	return gen_ids(txn, a->s, a->ids, a->n);
}

int ag_gen_list(ag_store *s, uint64_t **ids, size_t *n)
{
	struct gen_list a = {s, ids, n};
	return ag_read_guarded(s, gen_list_fn, &a);
}

/* "Which generations exist" and "which is current" in one read transaction:
 * a reader following the store never sees a current id its listing lacks. */
struct gen_snap {
	ag_store *s;
	uint64_t **ids;
	size_t *n;
	uint64_t *current;
};

static int gen_snap_fn(MDB_txn *txn, void *arg)
{
	struct gen_snap *a = arg;
	int r = gen_ids(txn, a->s, a->ids, a->n);
	if (r < 0)
		return r;
	r = ag_meta_get_u64(txn, a->s, "current", a->current);
	if (r == -ENOENT) {
		*a->current = 0;
		r = 0;
	}
	if (r < 0) {
		free(*a->ids);
		*a->ids = NULL;
		*a->n = 0;
	}
	return r;
}

int ag_gen_snapshot(ag_store *s, uint64_t **ids, size_t *n, uint64_t *current)
{
	struct gen_snap a = {s, ids, n, current};
	*ids = NULL;
	*n = 0;
	return ag_read_guarded(s, gen_snap_fn, &a);
}

struct meta_u64_get {
	ag_store *s;
	const char *key;
	uint64_t *v;
};

static int meta_u64_fn(MDB_txn *txn, void *arg)
{
	struct meta_u64_get *a = arg;
	return ag_meta_get_u64(txn, a->s, a->key, a->v);
}

static int meta_u64(ag_store *s, const char *key, uint64_t *id)
{
	struct meta_u64_get a = {s, key, id};
	return ag_read_guarded(s, meta_u64_fn, &a);
}

int ag_current(ag_store *s, uint64_t *id)
{
	return meta_u64(s, "current", id);
}

int ag_previous(ag_store *s, uint64_t *id)
{
	return meta_u64(s, "previous", id);
}

int ag_txn_current(ag_txn *t, uint64_t *id)
{
	AG_TXN_GUARD(t);
	return ag_meta_get_u64(t->txn, t->s, "current", id);
}

/* ---------- writing ---------- */

static int check_ref(ag_txn *t, const ag_digest *d)
{
	ag_blob_info bi;
	return ag_blob_rec_get(t->txn, t->s, d, &bi, false);
}

static int check_refs(ag_txn *t, const ag_gen *g)
{
	int r = 0;
	for (size_t i = 0; r == 0 && i < g->nmodels; i++) {
		const ag_model *m = &g->models[i];
		if (!m->name || !*m->name)
			return -EINVAL;
		for (size_t j = 0; r == 0 && j < ag_model_nblobs(m); j++)
			r = check_ref(t, ag_model_blob(m, j));
	}
	for (size_t i = 0; r == 0 && i < g->nbundle_files; i++)
		r = check_ref(t, &g->bundle_files[i].digest);
	return r;
}

/* The largest id in use: the last key of the gens database. */
static int last_gen_id(ag_txn *t, uint64_t *id)
{
	MDB_cursor *cur;
	int r = ag_lmdb_err(mdb_cursor_open(t->txn, t->s->dbi_gens, &cur));
	if (r < 0)
		return r;
	MDB_val k, v;
	int rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	*id = 0;
	if (rc == 0 && k.mv_size == 8)
		for (int i = 0; i < 8; i++)
			*id = *id << 8 | ((const uint8_t *)k.mv_data)[i];
	mdb_cursor_close(cur);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : ag_lmdb_err(rc);
}

int ag_gen_put_txn(ag_txn *t, const ag_gen *g, bool overwrite)
{
	_cleanup_free_ char *json = ag_gen_encode(g);
	if (!json)
		return -ENOMEM;
	uint8_t kb[8];
	gen_key(g->id, kb);
	MDB_val k = {8, kb}, v = {strlen(json), json};
	return ag_lmdb_err(
		mdb_put(t->txn, t->s->dbi_gens, &k, &v, overwrite ? 0 : MDB_NOOVERWRITE));
}

int ag_gen_prepare(ag_txn *t, ag_gen *g)
{
	int r = check_refs(t, g);
	if (r < 0)
		return r;
	/* last_id outlives deleted generations, so ids are never reused. */
	uint64_t last = 0, in_use = 0;
	if ((r = ag_meta_get_u64(t->txn, t->s, "last_id", &last)) < 0 && r != -ENOENT)
		return r;
	if ((r = last_gen_id(t, &in_use)) < 0)
		return r;
	if (in_use > last)
		last = in_use;
	g->id = last + 1;
	if (!g->created)
		g->created = ag_now();
	ag_gen_sort(g);
	return 0;
}

int ag_gen_store_new(ag_txn *t, ag_gen *g)
{
	int r;
	if ((r = ag_gen_put_txn(t, g, false)) < 0)
		return r;
	char idbuf[24];
	snprintf(idbuf, sizeof(idbuf), "%llu", (unsigned long long)g->id);
	if ((r = ag_meta_put_str(t->txn, t->s, "last_id", idbuf)) < 0)
		return r;
	t->gen_added = g->id;
	return 0;
}

int ag_txn_set_current(ag_txn *t, uint64_t id)
{
	AG_TXN_GUARD(t);
	uint8_t kb[8];
	gen_key(id, kb);
	MDB_val k = {8, kb}, v;
	int r = ag_lmdb_err(mdb_get(t->txn, t->s->dbi_gens, &k, &v));
	if (r < 0)
		return r;
	uint64_t cur = 0;
	if ((r = ag_txn_current(t, &cur)) < 0 && r != -ENOENT)
		return r;
	char buf[24];
	if (r == 0 && cur != id) {
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)cur);
		if ((r = ag_meta_put_str(t->txn, t->s, "previous", buf)) < 0)
			return r;
	}
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)id);
	return ag_meta_put_str(t->txn, t->s, "current", buf);
}

int ag_txn_gen_del(ag_txn *t, uint64_t id)
{
	AG_TXN_GUARD(t);
	uint64_t cur = 0;
	int r = ag_txn_current(t, &cur);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r == 0 && cur == id)
		return -EBUSY;
	uint8_t kb[8];
	gen_key(id, kb);
	MDB_val k = {8, kb};
	return ag_lmdb_err(mdb_del(t->txn, t->s->dbi_gens, &k, NULL));
}
