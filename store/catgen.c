/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Catalogs and signatures of generations (store format 2, contract 9).
 * ag_txn_gen_add builds a generation's catalog (store/catalog.h) from the
 * generation and its blobs' records, stores the bytes as a blob and names
 * it in the generation record; a pulled generation keeps the ingest host's
 * catalog verbatim (ag_txn_gen_add_catalog).  A detached signature over the
 * catalog bytes is one more blob the record names (ag_txn_gen_sign).
 * Meta: catalog_serial (the last serial this store gave out) and
 * max_catalog_serial (the newest it accepted); neither is ever lowered.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/catalog.h"
#include "store/internal.h"

#define MAX_SIG_BYTES (1u << 20)

int ag_txn_put_bytes(ag_txn *t, const void *buf, size_t len, ag_digest *out)
{
	_cleanup_stage_ ag_stage *st = NULL;
	ag_blob_info bi;
	int r = ag_stage_begin(t->s, 0, &st);
	if (r == 0)
		r = ag_stage_write(st, buf, len);
	if (r == 0)
		r = ag_stage_end(st, &bi);
	if (r == 0)
		r = ag_stage_publish_ex(st, t, NULL, NULL);
	if (r == 0)
		*out = bi.digest;
	return r;
}

int ag_read_object_bytes(ag_store *s, const ag_digest *d, size_t max, char **bytes, size_t *len)
{
	_cleanup_close_ int fd = ag_object_open(s, d, O_RDONLY);
	if (fd < 0)
		return fd == -ENOENT ? -AG_ECORRUPT : fd; /* named by a record: missing is damage */
	struct stat st;
	if (fstat(fd, &st) < 0)
		return ag_errno();
	if ((uint64_t)st.st_size > max)
		return -AG_ECORRUPT;
	size_t n = (size_t)st.st_size;
	char *buf = malloc(n + 1);
	if (!buf)
		return -ENOMEM;
	ssize_t got = ag_pread_all(fd, buf, n, 0);
	if (got >= 0 && (size_t)got != n)
		got = -AG_ECORRUPT;
	ag_digest h;
	if (got >= 0) {
		ag_sha256(buf, n, &h);
		if (!ag_digest_eq(&h, d))
			got = -AG_EDIGEST;
	}
	if (got < 0) {
		free(buf);
		return (int)got;
	}
	buf[n] = '\0';
	if (bytes)
		*bytes = buf;
	else
		free(buf);
	if (len)
		*len = n;
	return 0;
}

static int meta_u64_or0(ag_txn *t, const char *key, uint64_t *v)
{
	*v = 0;
	int r = ag_meta_get_u64(t->txn, t->s, key, v);
	return r == -ENOENT ? 0 : r;
}

static int meta_put_u64(ag_txn *t, const char *key, uint64_t v)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	return ag_meta_put_str(t->txn, t->s, key, buf);
}

static int blob_entry(ag_txn *t, const ag_digest *d, struct ag_catalog_blob *out)
{
	ag_blob_info bi;
	int r = ag_blob_rec_get(t->txn, t->s, d, &bi, true);
	if (r < 0)
		return r;
	*out = (struct ag_catalog_blob){.digest = *d, .size = bi.size, .fsverity = bi.fsverity};
	return 0;
}

/* The catalog that describes g (serial and parent given), unsorted input
 * sorted; its blobs from their records. */
static int catalog_of(ag_txn *t, const ag_gen *g, struct ag_catalog *c)
{
	char created[32];
	ag_time_iso(g->created, created);
	memset(c, 0, sizeof(*c));
	c->generation = g->id;
	c->created = strdup(created);
	c->label = g->label ? strdup(g->label) : NULL;
	size_t nb = g->nbundle_files;
	for (size_t i = 0; i < g->nmodels; i++)
		nb += ag_model_nblobs(&g->models[i]);
	c->blobs = calloc(nb + 1, sizeof(*c->blobs));
	c->models = calloc(g->nmodels + 1, sizeof(*c->models));
	c->files = calloc(g->nbundle_files + 1, sizeof(*c->files));
	if (!c->created || (g->label && !c->label) || !c->blobs || !c->models || !c->files)
		return -ENOMEM;
	int r = 0;
	for (size_t i = 0; r == 0 && i < g->nmodels; i++) {
		const ag_model *m = &g->models[i];
		if (!(c->models[i].name = strdup(m->name)))
			return -ENOMEM;
		c->models[i].digest = m->manifest;
		c->nmodels++;
		for (size_t j = 0; r == 0 && j < ag_model_nblobs(m); j++)
			r = blob_entry(t, ag_model_blob(m, j), &c->blobs[c->nblobs++]);
	}
	for (size_t i = 0; r == 0 && i < g->nbundle_files; i++) {
		if (!(c->files[i].name = strdup(g->bundle_files[i].name)))
			return -ENOMEM;
		c->files[i].digest = g->bundle_files[i].digest;
		c->nfiles++;
		r = blob_entry(t, &g->bundle_files[i].digest, &c->blobs[c->nblobs++]);
	}
	if (r < 0)
		return r;
	c->has_bundle = g->nbundle_files > 0 || g->has_source_sha256;
	c->has_bundle_sha256 = g->has_source_sha256;
	c->bundle_sha256 = g->source_sha256;
	ag_catalog_sort(c);
	size_t w = 0; /* one entry per blob */
	for (size_t i = 0; i < c->nblobs; i++)
		if (w == 0 || !ag_digest_eq(&c->blobs[w - 1].digest, &c->blobs[i].digest))
			c->blobs[w++] = c->blobs[i];
	c->nblobs = w;
	return 0;
}

int ag_catalog_build(ag_txn *t, ag_gen *g, uint64_t serial, const ag_digest *parent, char **bytes,
		     size_t *len)
{
	struct ag_catalog c;
	int r = catalog_of(t, g, &c);
	c.serial = serial;
	if (parent) {
		c.has_parent = true;
		c.parent = *parent;
	}
	if (r == 0)
		r = ag_catalog_encode(&c, bytes, len);
	ag_catalog_clear(&c);
	return r;
}

/* The catalog digest of the generation current now, if it has one. */
static int current_catalog(ag_txn *t, ag_digest *d, bool *has)
{
	uint64_t cur = 0;
	*has = false;
	int r = ag_meta_get_u64(t->txn, t->s, "current", &cur);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	ag_gen *g = NULL;
	if ((r = ag_txn_gen_get(t, cur, &g)) < 0)
		return r == -ENOENT ? 0 : r;
	*has = g->has_catalog;
	*d = g->catalog;
	ag_gen_free(g);
	return 0;
}

static int raise_serials(ag_txn *t, uint64_t serial, bool own)
{
	uint64_t max = 0, mine = 0;
	int r = meta_u64_or0(t, "max_catalog_serial", &max);
	if (r == 0)
		r = meta_u64_or0(t, "catalog_serial", &mine);
	if (r == 0 && serial > max)
		r = meta_put_u64(t, "max_catalog_serial", serial);
	if (r == 0 && own && serial > mine)
		r = meta_put_u64(t, "catalog_serial", serial);
	return r;
}

int ag_txn_gen_add(ag_txn *t, ag_gen *g)
{
	AG_TXN_GUARD(t);
	int r = ag_gen_prepare(t, g);
	if (r < 0)
		return r;
	uint64_t mine = 0, max = 0;
	ag_digest parent;
	bool has_parent;
	if ((r = meta_u64_or0(t, "catalog_serial", &mine)) < 0 ||
	    (r = meta_u64_or0(t, "max_catalog_serial", &max)) < 0 ||
	    (r = current_catalog(t, &parent, &has_parent)) < 0)
		return r;
	uint64_t serial = (mine > max ? mine : max) + 1;
	_cleanup_free_ char *bytes = NULL;
	size_t len = 0;
	if ((r = ag_catalog_build(t, g, serial, has_parent ? &parent : NULL, &bytes, &len)) < 0)
		return r;
	if ((r = ag_txn_put_bytes(t, bytes, len, &g->catalog)) < 0)
		return r;
	g->has_catalog = true;
	g->has_signature = false;
	if ((r = ag_gen_store_new(t, g)) < 0)
		return r;
	return raise_serials(t, serial, true);
}

static bool entries_equal(const struct ag_catalog_entry *a, size_t na,
			  const struct ag_catalog_entry *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i].name, b[i].name) || !ag_digest_eq(&a[i].digest, &b[i].digest))
			return false;
	return true;
}

int ag_txn_gen_add_catalog(ag_txn *t, ag_gen *g, const char *catalog, size_t len)
{
	AG_TXN_GUARD(t);
	struct ag_catalog got, want;
	memset(&want, 0, sizeof(want));
	int r = ag_catalog_parse(catalog, len, &got, NULL);
	if (r < 0)
		return r;
	uint64_t max = 0;
	if ((r = ag_gen_prepare(t, g)) == 0 &&
	    (r = meta_u64_or0(t, "max_catalog_serial", &max)) == 0 && got.serial < max)
		r = -ESTALE; /* older than the newest this store accepted */
	if (r == 0)
		r = catalog_of(t, g, &want);
	/* It must describe g: the same models, blobs (size, fs-verity digest)
	 * and bundle files.  Its generation number, time and label are the
	 * ingest host's. */
	if (r == 0 &&
	    (!entries_equal(got.models, got.nmodels, want.models, want.nmodels) ||
	     !entries_equal(got.files, got.nfiles, want.files, want.nfiles) ||
	     got.nblobs != want.nblobs ||
	     (want.nblobs && memcmp(got.blobs, want.blobs, want.nblobs * sizeof(*want.blobs)))))
		r = -AG_ECORRUPT;
	if (r == 0)
		r = ag_txn_put_bytes(t, catalog, len, &g->catalog);
	if (r == 0) {
		g->has_catalog = true;
		g->has_signature = false;
		r = ag_gen_store_new(t, g);
	}
	if (r == 0)
		r = raise_serials(t, got.serial, false);
	ag_catalog_clear(&got);
	ag_catalog_clear(&want);
	return r;
}

static int gen_blob_bytes(ag_store *s, const ag_gen *g, bool sig, char **bytes, size_t *len,
			  ag_digest *digest)
{
	if (sig ? !g->has_signature : !g->has_catalog)
		return -ENOENT;
	if (digest)
		*digest = sig ? g->signature : g->catalog;
	if (!bytes && !len)
		return 0;
	return ag_read_object_bytes(s, sig ? &g->signature : &g->catalog,
				    sig ? MAX_SIG_BYTES : AG_CATALOG_MAX_BYTES, bytes, len);
}

int ag_gen_catalog(ag_store *s, uint64_t id, ag_digest *digest, char **bytes, size_t *len)
{
	_cleanup_gen_ ag_gen *g = NULL;
	int r = ag_gen_get(s, id, &g);
	return r < 0 ? r : gen_blob_bytes(s, g, false, bytes, len, digest);
}

int ag_txn_gen_catalog(ag_txn *t, uint64_t id, ag_digest *digest, char **bytes, size_t *len)
{
	_cleanup_gen_ ag_gen *g = NULL;
	int r = ag_txn_gen_get(t, id, &g);
	return r < 0 ? r : gen_blob_bytes(t->s, g, false, bytes, len, digest);
}

int ag_gen_signature(ag_store *s, uint64_t id, char **asc, size_t *len)
{
	_cleanup_gen_ ag_gen *g = NULL;
	int r = ag_gen_get(s, id, &g);
	return r < 0 ? r : gen_blob_bytes(s, g, true, asc, len, NULL);
}

int ag_txn_gen_signature(ag_txn *t, uint64_t id, char **asc, size_t *len)
{
	_cleanup_gen_ ag_gen *g = NULL;
	int r = ag_txn_gen_get(t, id, &g);
	return r < 0 ? r : gen_blob_bytes(t->s, g, true, asc, len, NULL);
}

int ag_txn_gen_sign(ag_txn *t, uint64_t id, const char *asc, size_t len)
{
	_cleanup_gen_ ag_gen *g = NULL;
	if (len == 0 || len > MAX_SIG_BYTES)
		return -EINVAL;
	int r = ag_txn_gen_get(t, id, &g);
	if (r < 0)
		return r;
	if (!g->has_catalog)
		return -ENOENT;
	if ((r = ag_txn_put_bytes(t, asc, len, &g->signature)) < 0)
		return r;
	g->has_signature = true;
	AG_TXN_GUARD(t);
	return ag_gen_put_txn(t, g, true);
}

int ag_store_format(ag_store *s, unsigned *version)
{
	*version = s->format;
	return 0;
}
