/* SPDX-License-Identifier: Apache-2.0 */
/*
 * -o keyring=FILE[,signer=FPR...]: the mount shows only generations whose
 * catalog (store/catalog.h) carries a good signature by a key of FILE, and
 * reads every blob against the fs-verity digest that a verified catalog
 * gives for it, not the one in the (unsigned) LMDB record.  So a record or
 * tree forged in the index is EIO and VERIFY_FAILURE, never bytes.
 *
 * A generation is checked when the mount first sees it and again whenever
 * its record names another catalog or signature (agstore sign, a forgery),
 * in particular at every switch of the current generation.  One that fails
 * (no catalog, unsigned, a key not in FILE or not allowed, a catalog that
 * does not describe the generation record) is not shown: the mount keeps
 * serving the last good one, logs LOG_CRIT and audits CATALOG_REJECTED once
 * per (generation, catalog, signature).
 *
 * Without keyring= the mount trusts the index, as before, and says so once
 * at start.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "fs/agfs.h"
#include "fs/journal.h"
#include "fs/metrics.h"
#include "sig/sig.h"
#include "store/catalog.h"

struct fsv {
	ag_digest d, fsv;
};

struct rejected {
	uint64_t id;
	bool has_cat, has_sig;
	ag_digest cat, sig;
};

struct idser {
	uint64_t id, serial;
};

struct fs_trust {
	struct sig_keyring *ks;
	pthread_mutex_t lock; /* ks (one gpg at a time) and both tables */
	struct fsv *map;      /* digest -> fs-verity digest from verified catalogs, sorted */
	size_t n, cap;
	struct rejected *rej;
	size_t nrej, rejcap;
	struct idser *sers; /* serials of the generations verified so far */
	size_t nsers, sercap;
};

int trust_start(struct fs_ctx *c, char **why)
{
	*why = NULL;
	if (!c->opt.keyring) {
		syslog(LOG_NOTICE,
		       "no keyring= given: generations are shown and blobs read as the store's "
		       "index describes them, without checking a signed catalog");
		return 0;
	}
	struct fs_trust *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	int r = sig_keyring_open(c->opt.keyring, c->opt.signers, c->opt.nsigners, NULL, &t->ks,
				 why);
	if (r < 0) {
		pthread_mutex_destroy(&t->lock);
		free(t);
		return r;
	}
	c->trust = t;
	syslog(LOG_INFO, "keyring=%s: only generations whose catalog it verifies are shown",
	       c->opt.keyring);
	return 0;
}

void trust_stop(struct fs_ctx *c)
{
	struct fs_trust *t = c->trust;
	if (!t)
		return;
	sig_keyring_free(t->ks);
	free(t->map);
	free(t->rej);
	free(t->sers);
	pthread_mutex_destroy(&t->lock);
	free(t);
	c->trust = NULL;
}

static int cmp_fsv(const void *a, const void *b)
{
	return memcmp(((const struct fsv *)a)->d.b, ((const struct fsv *)b)->d.b, 32);
}

static struct fsv *map_find(struct fs_trust *t, const ag_digest *d)
{
	struct fsv key = {.d = *d};
	return t->n ? bsearch(&key, t->map, t->n, sizeof(*t->map), cmp_fsv) : NULL;
}

/* With the lock held: every blob of a verified catalog. */
static int map_add(struct fs_trust *t, const struct ag_catalog *cat)
{
	if (t->n + cat->nblobs > t->cap) {
		size_t cap = (t->n + cat->nblobs) * 2;
		struct fsv *m = realloc(t->map, cap * sizeof(*m));
		if (!m)
			return -ENOMEM;
		t->map = m;
		t->cap = cap;
	}
	size_t n0 = t->n;
	for (size_t i = 0; i < cat->nblobs; i++)
		if (!map_find(t, &cat->blobs[i].digest))
			t->map[t->n++] = (struct fsv){cat->blobs[i].digest, cat->blobs[i].fsverity};
	if (t->n != n0)
		qsort(t->map, t->n, sizeof(*t->map), cmp_fsv);
	return 0;
}

int trust_expect(struct fs_ctx *c, const ag_digest *d, ag_digest *fsv)
{
	struct fs_trust *t = c->trust;
	pthread_mutex_lock(&t->lock);
	struct fsv *e = map_find(t, d);
	if (e)
		*fsv = e->fsv;
	pthread_mutex_unlock(&t->lock);
	return e ? 0 : -ENOENT;
}

static bool same_rejected(const struct rejected *r, const ag_gen *g)
{
	return r->id == g->id && r->has_cat == g->has_catalog && r->has_sig == g->has_signature &&
	       (!r->has_cat || ag_digest_eq(&r->cat, &g->catalog)) &&
	       (!r->has_sig || ag_digest_eq(&r->sig, &g->signature));
}

/* With the lock held.  Generation numbers are local (a pulled generation
 * keeps the ingest host's catalog), but serials only grow with local ids:
 * an older catalog replayed in a newer generation's place breaks the order. */
static const char *serial_order(struct fs_trust *t, uint64_t id, uint64_t serial, char *buf,
				size_t len)
{
	for (size_t i = 0; i < t->nsers; i++) {
		const struct idser *o = &t->sers[i];
		if (o->id == id || (o->id < id ? o->serial < serial : o->serial > serial))
			continue;
		snprintf(buf, len,
			 "its catalog's serial %" PRIu64 " is not %s generation %" PRIu64
			 "'s (%" PRIu64 "): an older catalog replayed",
			 serial, o->id < id ? "above" : "below", o->id, o->serial);
		return buf;
	}
	return NULL;
}

static int remember_serial(struct fs_trust *t, uint64_t id, uint64_t serial)
{
	for (size_t i = 0; i < t->nsers; i++)
		if (t->sers[i].id == id) {
			t->sers[i].serial = serial;
			return 0;
		}
	if (t->nsers == t->sercap) {
		size_t cap = t->sercap ? t->sercap * 2 : 16;
		struct idser *n = realloc(t->sers, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		t->sers = n;
		t->sercap = cap;
	}
	t->sers[t->nsers++] = (struct idser){id, serial};
	return 0;
}

/* The tables are never pruned when generations are removed.  The serials
 * must stay: they are what tells an older catalog replayed in a later
 * generation, after gc removed the generations it should follow.  A
 * rejected entry is one small record per generation number ever rejected,
 * and map one per blob digest ever verified. */

/* With the lock held: true when g was rejected as it is now. */
static bool was_rejected(struct fs_trust *t, const ag_gen *g)
{
	for (size_t i = 0; i < t->nrej; i++)
		if (same_rejected(&t->rej[i], g))
			return true;
	return false;
}

static void remember_rejected(struct fs_trust *t, const ag_gen *g)
{
	for (size_t i = 0; i < t->nrej; i++)
		if (t->rej[i].id == g->id) {
			t->rej[i] = (struct rejected){g->id, g->has_catalog, g->has_signature,
						      g->catalog, g->signature};
			return;
		}
	if (t->nrej == t->rejcap) {
		size_t cap = t->rejcap ? t->rejcap * 2 : 16;
		struct rejected *r = realloc(t->rej, cap * sizeof(*r));
		if (!r)
			return;
		t->rej = r;
		t->rejcap = cap;
	}
	t->rej[t->nrej++] = (struct rejected){g->id, g->has_catalog, g->has_signature, g->catalog,
					      g->signature};
}

/* The catalog describes the generation record: the same models, and every
 * blob the record's models and bundle files name. */
static const char *describes(const struct ag_catalog *cat, const ag_gen *g)
{
	if (cat->nmodels != g->nmodels)
		return "the catalog lists other models than the generation record";
	for (size_t i = 0; i < cat->nmodels; i++) {
		const ag_model *m = ag_gen_find(g, cat->models[i].name);
		if (!m || !ag_digest_eq(&m->manifest, &cat->models[i].digest))
			return "the catalog lists other models than the generation record";
		for (size_t j = 0; j < ag_model_nblobs(m); j++) {
			const struct ag_catalog_blob *b = ag_catalog_blob(cat, ag_model_blob(m, j));
			if (!b || (j >= 1 &&
				   b->size != (j == 1 ? m->config.size : m->layers[j - 2].size)))
				return "the generation record names a blob the catalog does not "
				       "list (or gives it another size)";
		}
	}
	for (size_t i = 0; i < g->nbundle_files; i++)
		if (!ag_catalog_blob(cat, &g->bundle_files[i].digest))
			return "the generation record names a bundle file the catalog does not "
			       "list";
	return NULL;
}

static void reject(struct fs_ctx *c, const ag_gen *g, const char *why)
{
	atomic_fetch_add(&fs_counters.catalog_rejections, 1);
	fs_log(LOG_CRIT, FS_MSG_CATALOG_REJECTED, g->id, NULL,
	       "generation %" PRIu64 " is not shown: %s (keyring=%s)", g->id, why, c->opt.keyring);
	json_t *f = json_pack("{s:I,s:s,s:s}", "generation", (json_int_t)g->id, "reason", why,
			      "keyring", c->opt.keyring);
	if (f && ag_audit(c->store, "CATALOG_REJECTED", c->operator_name, f) < 0)
		syslog(LOG_ERR, "cannot append CATALOG_REJECTED to %s/audit.log", c->store_path);
	json_decref(f);
}

int trust_check_gen(struct fs_ctx *c, const ag_gen *g)
{
	struct fs_trust *t = c->trust;
	_cleanup_free_ char *cat = NULL, *asc = NULL, *fpr = NULL, *swhy = NULL;
	char why[512] = "";
	struct ag_catalog parsed = {0};
	size_t len = 0, asclen = 0;
	const char *pwhy = NULL;
	int r;

	if (!t)
		return 0;
	pthread_mutex_lock(&t->lock);
	bool known = was_rejected(t, g);
	pthread_mutex_unlock(&t->lock);
	if (known)
		return -EPERM;
	if (!g->has_catalog) {
		snprintf(why, sizeof(why), "it has no catalog");
		goto bad;
	}
	if (!g->has_signature) {
		snprintf(why, sizeof(why), "its catalog is not signed");
		goto bad;
	}
	r = ag_gen_catalog(c->store, g->id, NULL, &cat, &len);
	if (r == 0)
		r = ag_gen_signature(c->store, g->id, &asc, &asclen);
	if (r < 0 && fs_is_verdict(r)) {
		snprintf(why, sizeof(why), "its catalog or signature blob is damaged (%s)",
			 ag_strerror(r));
		goto bad;
	}
	if (r < 0)
		return r; /* could not check: try again at the next look */
	pthread_mutex_lock(&t->lock);
	r = sig_verify_detached(t->ks, cat, len, asc, asclen, &fpr, &swhy);
	pthread_mutex_unlock(&t->lock);
	if (r < 0 && r != -AG_EDIGEST)
		return r; /* gpg could not be run (no descriptor, no memory): not a verdict */
	if (r < 0) {
		snprintf(why, sizeof(why), "its catalog's signature: %s",
			 swhy ? swhy : "it is not valid");
		goto bad;
	}
	if ((r = ag_catalog_parse(cat, len, &parsed, &pwhy)) < 0) {
		ag_catalog_clear(&parsed);
		if (r == -ENOMEM)
			return r;
		snprintf(why, sizeof(why), "its signed catalog is not canonical (%s)",
			 pwhy ? pwhy : "malformed");
		goto bad;
	}
	const char *d = describes(&parsed, g);
	if (d) {
		snprintf(why, sizeof(why), "%s", d);
		ag_catalog_clear(&parsed);
		goto bad;
	}
	uint64_t serial = parsed.serial;
	char obuf[256];
	pthread_mutex_lock(&t->lock);
	d = serial_order(t, g->id, serial, obuf, sizeof(obuf));
	if (!d && (r = remember_serial(t, g->id, serial)) == 0)
		r = map_add(t, &parsed);
	pthread_mutex_unlock(&t->lock);
	ag_catalog_clear(&parsed);
	if (d) {
		snprintf(why, sizeof(why), "%s", d);
		goto bad;
	}
	if (r == 0)
		syslog(LOG_INFO, "generation %" PRIu64 ": catalog serial %" PRIu64 " signed by %s",
		       g->id, serial, fpr);
	return r;
bad:
	pthread_mutex_lock(&t->lock);
	remember_rejected(t, g);
	pthread_mutex_unlock(&t->lock);
	reject(c, g, why);
	return -EPERM;
}
