/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agstore verify --keyring FILE [--signer FPR...] [--bundle-keyring FILE]
 *                [GEN | --all]
 *
 * Replays a generation's trust chain from the store alone, in this order,
 * and names the first link that breaks:
 *   signature  the catalog's detached signature, against the pinned keyring
 *   catalog    the catalog's bytes: the digest the generation names, the
 *              canonical form, this generation's number
 *   index      the generation record agrees with the catalog (models, bundle
 *              files), and each blob record's size and fs-verity digest
 *   manifest   every model's manifest (its bytes) names only blobs the
 *              catalog lists, with their sizes
 *   bytes      every object file: SHA-256 of its bytes = its name, size and
 *              fs-verity file digest (libfsverity) = the catalog's
 *   bundle     the source bundle's own signature (bundle.json + .asc kept as
 *              blobs) and its models_directory_hash, replayed from the kept
 *              bundle.json "files" or signatures/ lists: every signed model
 *              file is in the catalog
 * The LMDB index is not trusted: the objects are read by name from
 * objects/, the catalog from its blob.  Exit 0 only when every chain holds;
 * 1 when one breaks; 4 when something could not be read (not a verdict).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "importer/import.h"
#include "sig/sig.h"
#include "store/catalog.h"
#include "store/verity.h"
#include "tools/tool.h"

enum { OPT_KEYRING = OPT_FIRST_CMD, OPT_SIGNER, OPT_BUNDLE_KEYRING, OPT_ALL };

struct vopts {
	const char *keyring, *bundle_keyring;
	char **signers;
	size_t nsigners;
	bool all;
};

struct vrun {
	struct tool *t;
	ag_store *s;
	struct sig_keyring *ks, *bks;
	/* the generation being checked */
	uint64_t id;
	struct ag_catalog cat;
	ag_gen *g;
	char *signer, *bundle_signer;
	const char *bundle_note;
	uint64_t bytes;
	/* the first break */
	const char *link;
	char reason[1024];
	int io; /* a could-not-check error (not a verdict) */
	/* every generation's catalog serial (those whose catalog parses) */
	struct idser {
		uint64_t id, serial;
	} * sers;
	size_t nsers;
};

static int vbreak(struct vrun *v, const char *link, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int vbreak(struct vrun *v, const char *link, const char *fmt, ...)
{
	va_list ap;

	v->link = link;
	va_start(ap, fmt);
	vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
	va_end(ap);
	return -AG_EDIGEST;
}

/* A could-not-check error: reported, exit 4, never a verdict. */
static int cant(struct vrun *v, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int cant(struct vrun *v, int err, const char *fmt, ...)
{
	va_list ap;
	int n;

	v->link = "read";
	v->io = err;
	va_start(ap, fmt);
	n = vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(v->reason))
		snprintf(v->reason + n, sizeof(v->reason) - (size_t)n, " (%s)", ag_strerror(err));
	return err;
}

static bool verdict(int err)
{
	return err == -AG_EDIGEST || err == -AG_ECORRUPT || err == -EBADMSG;
}

static void hexof(const ag_digest *d, char out[AG_HEX_LEN + 1])
{
	ag_digest_hex(d, out);
}

static int open_object(struct vrun *v, const ag_digest *d)
{
	char rel[128];

	ag_object_relpath(d, rel, sizeof(rel));
	int fd = openat(ag_store_dirfd(v->s), rel, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static ssize_t pread_full(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* An object's bytes into memory, checked against its name (small files:
 * catalogs, signatures, manifests, bundle files). */
static int read_object(struct vrun *v, const char *link, const char *what, const ag_digest *d,
		       size_t max, char **buf, size_t *len)
{
	char hex[AG_HEX_LEN + 1];
	struct stat st;
	ag_digest got;
	int fd = open_object(v, d);

	hexof(d, hex);
	*buf = NULL;
	if (fd == -ENOENT || fd == -ELOOP)
		return vbreak(v, link, "%s (object sha256:%s) is missing from objects/", what, hex);
	if (fd < 0)
		return cant(v, fd, "%s (object sha256:%s) cannot be opened", what, hex);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		close(fd);
		return vbreak(v, link,
			      "%s (object sha256:%s) is not a regular file of a plausible size",
			      what, hex);
	}
	*len = (size_t)st.st_size;
	if (!(*buf = malloc(*len + 1))) {
		close(fd);
		return cant(v, -ENOMEM, "%s cannot be read", what);
	}
	ssize_t n = pread_full(fd, *buf, *len);
	close(fd);
	if (n < 0 || (size_t)n != *len) {
		free(*buf);
		*buf = NULL;
		return cant(v, n < 0 ? (int)n : -EIO, "%s (object sha256:%s) cannot be read", what,
			    hex);
	}
	(*buf)[*len] = '\0';
	ag_sha256(*buf, *len, &got);
	if (!ag_digest_eq(&got, d)) {
		free(*buf);
		*buf = NULL;
		return vbreak(v, link, "%s: the object sha256:%s does not hash to its name", what,
			      hex);
	}
	return 0;
}

/* ---------- signature and catalog ---------- */

static int check_catalog(struct vrun *v)
{
	_cleanup_free_ char *cat = NULL, *asc = NULL, *why = NULL;
	size_t len = 0, asclen = 0;
	const char *pwhy = NULL;
	int r;

	if (!v->g->has_catalog)
		return vbreak(v, "catalog", "generation %" PRIu64 " has no catalog", v->id);
	if (!v->g->has_signature)
		return vbreak(v, "signature", "generation %" PRIu64 "'s catalog is not signed",
			      v->id);
	if ((r = read_object(v, "signature", "the catalog's signature", &v->g->signature, 1u << 20,
			     &asc, &asclen)) < 0 ||
	    (r = read_object(v, "catalog", "the catalog", &v->g->catalog, AG_CATALOG_MAX_BYTES,
			     &cat, &len)) < 0)
		return r;
	r = sig_verify_detached(v->ks, cat, len, asc, asclen, &v->signer, &why);
	if (r < 0 && r != -AG_EDIGEST)
		return cant(v, r, "the catalog's signature cannot be checked");
	if (r < 0)
		return vbreak(v, "signature", "the catalog's signature: %s",
			      why ? why : "it is not valid");
	if ((r = ag_catalog_parse(cat, len, &v->cat, &pwhy)) < 0)
		return r == -ENOMEM
			       ? cant(v, r, "the catalog cannot be parsed")
			       : vbreak(v, "catalog", "the signed catalog is not canonical (%s)",
					pwhy ? pwhy : "malformed");
	/* Generation numbers are local (a pulled generation keeps the ingest
	 * host's catalog, numbered there); serials only grow with local ids, so
	 * an older catalog replayed in a newer generation's place breaks their
	 * order. */
	for (size_t i = 0; i < v->nsers; i++) {
		const struct idser *o = &v->sers[i];
		if (o->id == v->id ||
		    (o->id < v->id ? o->serial < v->cat.serial : o->serial > v->cat.serial))
			continue;
		return vbreak(v, "catalog",
			      "its serial %" PRIu64 " is not %s generation %" PRIu64
			      "'s serial %" PRIu64
			      ": an older catalog replayed (catalog of generation %" PRIu64 ")",
			      v->cat.serial, o->id < v->id ? "above" : "below", o->id, o->serial,
			      v->cat.generation);
	}
	return 0;
}

/* Reads every generation's catalog serial once (damaged ones are named by
 * their own check). */
static int load_serials(struct vrun *v)
{
	_cleanup_free_ uint64_t *ids = NULL;
	size_t n = 0;
	int r = ag_gen_list(v->s, &ids, &n);

	if (r < 0)
		return r;
	if (!(v->sers = calloc(n ? n : 1, sizeof(*v->sers))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *buf = NULL;
		struct ag_catalog c = {0};
		size_t len = 0;
		if ((r = ag_gen_catalog(v->s, ids[i], NULL, &buf, &len)) < 0) {
			if (r == -ENOMEM)
				return r;
			continue; /* its own check names what is wrong with it */
		}
		if ((r = ag_catalog_parse(buf, len, &c, NULL)) == 0)
			v->sers[v->nsers++] = (struct idser){ids[i], c.serial};
		ag_catalog_clear(&c);
		if (r == -ENOMEM)
			return r;
	}
	return 0;
}

/* Another generation's catalog replayed: a serial not above its parent's. */
static int check_parent(struct vrun *v)
{
	_cleanup_free_ uint64_t *ids = NULL;
	size_t n = 0;
	int r;

	if (!v->cat.has_parent)
		return 0;
	if ((r = ag_gen_list(v->s, &ids, &n)) < 0)
		return cant(v, r, "the generations cannot be listed");
	for (size_t i = 0; i < n; i++) {
		_cleanup_gen_ ag_gen *p = NULL;
		_cleanup_free_ char *buf = NULL;
		struct ag_catalog pc;
		size_t len;
		if (ids[i] == v->id || ag_gen_get(v->s, ids[i], &p) < 0 || !p->has_catalog ||
		    !ag_digest_eq(&p->catalog, &v->cat.parent))
			continue;
		if (read_object(v, "catalog", "the parent catalog", &p->catalog,
				AG_CATALOG_MAX_BYTES, &buf, &len) < 0) {
			v->link = NULL; /* the parent's own check names its damage */
			v->io = 0;
			continue;
		}
		if ((r = ag_catalog_parse(buf, len, &pc, NULL)) < 0) {
			ag_catalog_clear(&pc);
			if (r == -ENOMEM)
				return cant(v, r, "the parent catalog cannot be parsed");
			continue;
		}
		uint64_t ps = pc.serial;
		ag_catalog_clear(&pc);
		if (ps >= v->cat.serial)
			return vbreak(v, "catalog",
				      "its serial %" PRIu64 " is not above its parent's %" PRIu64
				      " (generation %" PRIu64 "): an older catalog replayed",
				      v->cat.serial, ps, ids[i]);
	}
	return 0;
}

/* ---------- the index against the catalog ---------- */

static int check_index(struct vrun *v)
{
	const ag_gen *g = v->g;
	const struct ag_catalog *c = &v->cat;
	char hex[AG_HEX_LEN + 1];

	for (size_t i = 0; i < c->nmodels; i++) {
		const ag_model *m = ag_gen_find(g, c->models[i].name);
		if (!m)
			return vbreak(v, "index",
				      "the catalog's model %s is not in the generation record",
				      c->models[i].name);
		if (!ag_digest_eq(&m->manifest, &c->models[i].digest))
			return vbreak(
				v, "index",
				"model %s: the generation record names another manifest than the "
				"catalog",
				c->models[i].name);
	}
	if (g->nmodels != c->nmodels)
		return vbreak(v, "index",
			      "the generation record has %zu models and the signed catalog %zu",
			      g->nmodels, c->nmodels);
	for (size_t i = 0; i < c->nblobs; i++) {
		ag_blob_info bi;
		hexof(&c->blobs[i].digest, hex);
		int r = ag_blob_lookup(v->s, &c->blobs[i].digest, &bi);
		if (r == -ENOENT)
			return vbreak(v, "index", "blob sha256:%s has no record in the index", hex);
		if (r < 0 && verdict(r))
			return vbreak(v, "index", "the record of blob sha256:%s is damaged (%s)",
				      hex, ag_strerror(r));
		if (r < 0)
			return cant(v, r, "the record of blob sha256:%s cannot be read", hex);
		if (bi.size != c->blobs[i].size || !bi.has_fsverity ||
		    !ag_digest_eq(&bi.fsverity, &c->blobs[i].fsverity))
			return vbreak(
				v, "index",
				"the record of blob sha256:%s does not match the signed catalog "
				"(size or fs-verity digest): the index was changed",
				hex);
	}
	return 0;
}

/* ---------- manifests ---------- */

static int check_layer(struct vrun *v, const char *model, const ag_layer *l)
{
	const struct ag_catalog_blob *b = ag_catalog_blob(&v->cat, &l->digest);
	char hex[AG_HEX_LEN + 1];

	hexof(&l->digest, hex);
	if (!b)
		return vbreak(v, "manifest",
			      "%s's manifest names blob sha256:%s the catalog does not list", model,
			      hex);
	if (b->size != l->size)
		return vbreak(v, "manifest",
			      "%s's manifest gives blob sha256:%s %" PRIu64
			      " bytes, the catalog %" PRIu64,
			      model, hex, l->size, b->size);
	return 0;
}

static int check_manifests(struct vrun *v)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < v->cat.nmodels; i++) {
		const struct ag_catalog_entry *e = &v->cat.models[i];
		_cleanup_free_ char *buf = NULL;
		ag_model m = {0};
		const char *why = NULL;
		size_t len;
		char what[512];

		snprintf(what, sizeof(what), "%s's manifest", e->name);
		if (!ag_catalog_blob(&v->cat, &e->digest))
			return vbreak(v, "manifest", "%s is not among the catalog's blobs", what);
		if ((r = read_object(v, "bytes", what, &e->digest, IMP_MAX_SMALL, &buf, &len)) < 0)
			return r;
		if ((r = imp_manifest_parse(buf, len, &m, &why)) == -ENOMEM)
			return cant(v, r, "%s cannot be parsed", what);
		if (r < 0)
			return vbreak(v, "manifest", "%s is not a valid manifest (%s)", what,
				      why ? why : "malformed");
		r = check_layer(v, e->name, &m.config);
		for (size_t j = 0; r == 0 && j < m.nlayers; j++)
			r = check_layer(v, e->name, &m.layers[j]);
		ag_model_clear(&m);
	}
	return r;
}

/* ---------- bytes ---------- */

static int check_object(struct vrun *v, const struct ag_catalog_blob *b)
{
	enum { BUFSZ = 1 << 20 };
	char hex[AG_HEX_LEN + 1];
	_cleanup_free_ char *buf = malloc(BUFSZ);
	struct stat st;
	ag_digest sha, fsv;
	uint64_t off = 0;
	int fd, r = 0;

	hexof(&b->digest, hex);
	if (!buf)
		return cant(v, -ENOMEM, "blob sha256:%s cannot be read", hex);
	fd = open_object(v, &b->digest);
	if (fd == -ENOENT || fd == -ELOOP)
		return vbreak(v, "bytes", "blob sha256:%s is missing from objects/", hex);
	if (fd < 0)
		return cant(v, fd, "blob sha256:%s cannot be opened", hex);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		r = vbreak(v, "bytes", "blob sha256:%s is not a regular file", hex);
	else if ((uint64_t)st.st_size != b->size)
		r = vbreak(v, "bytes", "blob sha256:%s is %lld bytes, the catalog says %" PRIu64,
			   hex, (long long)st.st_size, b->size);
	ag_hash *h = r == 0 ? ag_hash_new() : NULL;
	if (r == 0 && !h)
		r = cant(v, -ENOMEM, "blob sha256:%s cannot be hashed", hex);
	while (r == 0 && off < b->size) {
		ssize_t n = pread(fd, buf, BUFSZ, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = cant(v, n < 0 ? -errno : -EIO, "blob sha256:%s cannot be read", hex);
			break;
		}
		ag_hash_update(h, buf, (size_t)n);
		off += (uint64_t)n;
	}
	if (h && r == 0) {
		ag_hash_final(h, &sha);
		if (!ag_digest_eq(&sha, &b->digest))
			r = vbreak(v, "bytes", "blob sha256:%s: its bytes hash to sha256:%.16s...",
				   hex, (ag_digest_hex(&sha, buf), buf));
	}
	ag_hash_free(h);
	if (r == 0 && (r = ag_verity_digest_fd(fd, b->size, &fsv)) < 0)
		r = cant(v, r, "the fs-verity digest of blob sha256:%s cannot be computed", hex);
	else if (r == 0 && !ag_digest_eq(&fsv, &b->fsverity))
		r = vbreak(v, "bytes",
			   "blob sha256:%s: its fs-verity digest differs from the catalog's", hex);
	close(fd);
	v->bytes += r == 0 ? b->size : 0;
	return r;
}

static int check_bytes(struct vrun *v)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < v->cat.nblobs; i++)
		r = check_object(v, &v->cat.blobs[i]);
	return r;
}

/* ---------- the bundle's own signature ---------- */

static const struct ag_catalog_entry *bundle_file(const struct ag_catalog *c, const char *path)
{
	for (size_t i = 0; i < c->nfiles; i++)
		if (strcmp(c->files[i].name, path) == 0)
			return &c->files[i];
	return NULL;
}

/* The model files the bundle's signature binds, as (path, digest) members:
 * from bundle.json "files", else from the kept signatures/ lists. */
static int signed_model_files(struct vrun *v, const struct imp_bundle_json *bj,
			      struct imp_source *src)
{
	for (size_t i = 0; bj->has_files && i < bj->nfiles; i++) {
		if (strncmp(bj->files[i].path, "models/", 7) != 0)
			continue;
		struct imp_member *mb = imp_member_add(src, bj->files[i].path);
		if (!mb)
			return cant(v, -ENOMEM, "the bundle's file list cannot be read");
		mb->digest = bj->files[i].digest;
	}
	for (size_t i = 0; !bj->has_files && i < v->cat.nfiles; i++) {
		const struct ag_catalog_entry *e = &v->cat.files[i];
		_cleanup_free_ char *buf = NULL;
		struct imp_sumlist l = {0};
		size_t len, bad;
		int r;
		if (strncmp(e->name, "signatures/", 11) != 0)
			continue;
		if ((r = read_object(v, "bundle", e->name, &e->digest, IMP_MAX_BUNDLE_JSON, &buf,
				     &len)) < 0)
			return r;
		if (imp_sumlist_parse(buf, len, &l, &bad) < 0)
			continue; /* not a list: binds nothing */
		for (size_t j = 0; j < l.n; j++) {
			if (strncmp(l.lines[j].path, "models/", 7) != 0 ||
			    imp_member_find(src, l.lines[j].path))
				continue;
			src->sorted = false;
			struct imp_member *mb = imp_member_add(src, l.lines[j].path);
			if (!mb) {
				imp_sumlist_free(&l);
				return cant(v, -ENOMEM, "the bundle's lists cannot be read");
			}
			mb->digest = l.lines[j].digest;
		}
		imp_sumlist_free(&l);
	}
	return 0;
}

static int check_models_hash(struct vrun *v, const struct imp_bundle_json *bj)
{
	struct imp_source src = {0};
	struct imp_error e = {0};
	const char *order = NULL;
	char hex[AG_HEX_LEN + 1];
	int r;

	if (!bj->has_models_hash) {
		v->bundle_note = "bundle.json has no models_directory_hash";
		return 0;
	}
	if ((r = signed_model_files(v, bj, &src)) < 0)
		goto out;
	if (src.n == 0) {
		r = vbreak(
			v, "bundle",
			"models_directory_hash cannot be replayed: the store keeps no list of the "
			"bundle's model files");
		goto out;
	}
	if ((r = imp_members_seal(&src, &e)) < 0) {
		r = vbreak(v, "bundle", "the bundle's lists name %s twice", e.member);
		goto out;
	}
	if ((r = imp_models_hash_check(&src, &bj->models_hash, &order)) < 0) {
		r = r == -ENOMEM ? cant(v, r, "models_directory_hash cannot be computed")
				 : vbreak(v, "bundle",
					  "models_directory_hash does not match the bundle's model "
					  "files as the store keeps them");
		goto out;
	}
	for (size_t i = 0; i < src.n; i++) {
		const char *p = src.m[i].path;
		if (!strstr(p, "/manifests/") && !strstr(p, "/blobs/"))
			continue;
		if (ag_catalog_blob(&v->cat, &src.m[i].digest))
			continue;
		hexof(&src.m[i].digest, hex);
		r = vbreak(v, "bundle",
			   "%s (sha256:%s), signed by the bundle, is not in the catalog", p, hex);
		goto out;
	}
	r = 0;
out:
	imp_source_free(&src);
	return r;
}

static int check_bundle(struct vrun *v)
{
	const struct ag_catalog_entry *bje, *asce;
	_cleanup_free_ char *bj = NULL, *asc = NULL, *why = NULL;
	struct imp_bundle_json b = {0};
	const char *pwhy = NULL;
	size_t len, asclen;
	int r;

	if (!v->cat.has_bundle || !(bje = bundle_file(&v->cat, "manifest/bundle.json"))) {
		v->bundle_note = "no bundle (not imported from a signed bundle)";
		return 0;
	}
	if (!(asce = bundle_file(&v->cat, "manifest/bundle.json.asc"))) {
		v->bundle_note = "bundle.json is unsigned (imported with --no-signature)";
		return 0;
	}
	if ((r = read_object(v, "bundle", "bundle.json", &bje->digest, IMP_MAX_BUNDLE_JSON, &bj,
			     &len)) < 0 ||
	    (r = read_object(v, "bundle", "bundle.json.asc", &asce->digest, IMP_MAX_SMALL, &asc,
			     &asclen)) < 0)
		return r;
	r = sig_verify_detached(v->bks, bj, len, asc, asclen, &v->bundle_signer, &why);
	if (r < 0 && r != -AG_EDIGEST)
		return cant(v, r, "bundle.json's signature cannot be checked");
	if (r < 0)
		return vbreak(v, "bundle", "bundle.json's signature: %s",
			      why ? why : "it is not valid");
	if ((r = imp_bundle_json_parse(bj, len, &b, &pwhy)) == -ENOMEM)
		return cant(v, r, "bundle.json cannot be parsed");
	if (r < 0)
		return vbreak(v, "bundle", "bundle.json is malformed (%s)", pwhy ? pwhy : "?");
	r = check_models_hash(v, &b);
	imp_bundle_json_free(&b);
	return r;
}

/* ---------- one generation ---------- */

static void reset(struct vrun *v)
{
	ag_catalog_clear(&v->cat);
	memset(&v->cat, 0, sizeof(v->cat));
	ag_gen_free(v->g);
	v->g = NULL;
	free(v->signer);
	free(v->bundle_signer);
	v->signer = v->bundle_signer = NULL;
	v->bundle_note = NULL;
	v->bytes = 0;
	v->link = NULL;
	v->reason[0] = '\0';
	v->io = 0;
}

static json_t *verify_gen(struct vrun *v, uint64_t id)
{
	char hex[AG_HEX_LEN + 1] = "", shex[AG_HEX_LEN + 1] = "";
	int r;

	reset(v);
	v->id = id;
	r = ag_gen_get(v->s, id, &v->g);
	if (r < 0 && verdict(r))
		vbreak(v, "index", "the record of generation %" PRIu64 " is damaged (%s)", id,
		       ag_strerror(r));
	else if (r < 0)
		cant(v, r, "generation %" PRIu64 " cannot be read", id);
	else if (check_catalog(v) == 0 && check_parent(v) == 0 && check_index(v) == 0 &&
		 check_manifests(v) == 0 && check_bytes(v) == 0)
		check_bundle(v);
	if (v->g && v->g->has_catalog)
		hexof(&v->g->catalog, hex);
	if (v->g && v->g->has_signature)
		hexof(&v->g->signature, shex);
	return json_pack("{s:I,s:b,s:b,s:s?,s:s?,s:s?,s:s?,s:I,s:s?,s:s?,s:I,s:I,s:I}",
			 "generation", (json_int_t)id, "ok", v->link == NULL, "checked", v->io == 0,
			 "break", v->io ? NULL : v->link, "reason", v->link ? v->reason : NULL,
			 "catalog", hex[0] ? hex : NULL, "signature", shex[0] ? shex : NULL,
			 "serial", (json_int_t)v->cat.serial, "signer", v->signer, "bundle_signer",
			 v->bundle_signer ? v->bundle_signer : v->bundle_note, "models",
			 (json_int_t)v->cat.nmodels, "blobs", (json_int_t)v->cat.nblobs, "bytes",
			 (json_int_t)v->bytes);
}

static void print_gen(const struct vrun *v)
{
	char size[TOOL_SIZE_LEN];

	if (v->io) { /* not a verdict: the chain was not followed to its end */
		printf("generation %" PRIu64 ": NOT CHECKED: %s\n", v->id, v->reason);
		return;
	}
	if (v->link) {
		printf("generation %" PRIu64 ": BROKEN at %s: %s\n", v->id, v->link, v->reason);
		return;
	}
	fmt_size(v->bytes, size);
	printf("generation %" PRIu64 ": the chain holds (catalog serial %" PRIu64
	       " signed by %s; %zu models, %zu blobs, %s checked; bundle: %s%s)\n",
	       v->id, v->cat.serial, v->signer, v->cat.nmodels, v->cat.nblobs, size,
	       v->bundle_signer ? "signed by " : "",
	       v->bundle_signer ? v->bundle_signer : v->bundle_note);
}

/* ---------- the command ---------- */

static const char verify_usage[] =
	"Usage: agstore [--store DIR] [--json] verify --keyring FILE [--signer FPR]...\n"
	"                [--bundle-keyring FILE] [GEN | --all]\n"
	"Replay the trust chain of generation GEN (default: the current one) or of\n"
	"every generation: catalog signature -> catalog -> manifests -> blobs ->\n"
	"bytes (SHA-256 and fs-verity digest), and the bundle's own signature ->\n"
	"models_directory_hash (against --bundle-keyring, default --keyring).\n"
	"Names the first break; exit 0 only when every chain holds.\n";

static int verify_opt(struct tool *t, int c, const char *arg, void *arg2)
{
	struct vopts *o = arg2;

	switch (c) {
	case OPT_KEYRING:
		o->keyring = arg;
		return -1;
	case OPT_BUNDLE_KEYRING:
		o->bundle_keyring = arg;
		return -1;
	case OPT_ALL:
		o->all = true;
		return -1;
	case OPT_SIGNER: {
		char **ns = realloc(o->signers, (o->nsigners + 1) * sizeof(*ns));
		if (!ns)
			return tool_fail(t, EX_AG_IO, "out of memory");
		o->signers = ns;
		o->signers[o->nsigners++] = (char *)arg;
		return -1;
	}
	default:
		return tool_fail(t, EX_AG_USAGE, "unknown option");
	}
}

static int open_keyrings(struct tool *t, const struct vopts *o, struct vrun *v)
{
	_cleanup_free_ char *why = NULL;
	int r = sig_keyring_open(o->keyring, o->signers, o->nsigners, NULL, &v->ks, &why);

	if (r < 0)
		return tool_fail(t, sig_keyring_err_is_input(r) ? EX_AG_USAGE : EX_AG_IO,
				 "--keyring %s: %s", o->keyring, why ? why : ag_strerror(r));
	if (!o->bundle_keyring) {
		free(TAKE_PTR(why));
		r = sig_keyring_open(o->keyring, NULL, 0, NULL, &v->bks, &why);
	} else {
		r = sig_keyring_open(o->bundle_keyring, NULL, 0, NULL, &v->bks, &why);
	}
	if (r < 0)
		return tool_fail(t, sig_keyring_err_is_input(r) ? EX_AG_USAGE : EX_AG_IO,
				 "--bundle-keyring %s: %s",
				 o->bundle_keyring ? o->bundle_keyring : o->keyring,
				 why ? why : ag_strerror(r));
	return 0;
}

static int run_verify(struct tool *t, struct vrun *v, const uint64_t *ids, size_t n)
{
	json_t *arr = json_array();
	size_t nbroken = 0, nio = 0;

	if (!arr)
		return tool_fail(t, EX_AG_IO, "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_t *j = verify_gen(v, ids[i]);
		if (j)
			json_array_append_new(arr, j);
		if (!t->json)
			print_gen(v);
		nbroken += v->link && !v->io;
		nio += v->io != 0;
	}
	reset(v);
	if (t->json)
		out_json(json_pack("{s:b,s:o}", "ok", nbroken + nio == 0, "generations", arr));
	else
		json_decref(arr);
	if (nbroken)
		return tool_fail(t, EX_AG_PROBLEM,
				 "%zu of %zu generations do not verify (see above)", nbroken, n);
	if (nio)
		return tool_fail(t, EX_AG_IO, "%zu of %zu generations could not be checked", nio,
				 n);
	return EX_AG_OK;
}

int cmd_verify(struct tool *t, int argc, char **argv)
{
	static const struct option opts[] = {
		TOOL_COMMON_OPTIONS,
		{"keyring", required_argument, NULL, OPT_KEYRING},
		{"signer", required_argument, NULL, OPT_SIGNER},
		{"bundle-keyring", required_argument, NULL, OPT_BUNDLE_KEYRING},
		{"all", no_argument, NULL, OPT_ALL},
		{NULL, 0, NULL, 0}};
	struct vopts o = {0};
	struct vrun v = {.t = t};
	_cleanup_store_ ag_store *s = NULL;
	_cleanup_free_ uint64_t *ids = NULL;
	uint64_t one = 0;
	size_t n = 0;
	int r = tool_getopt(t, argc, argv, opts, verify_usage, verify_opt, &o);

	if (r >= 0)
		goto out;
	r = EX_AG_USAGE;
	if (!o.keyring) {
		r = tool_fail(t, EX_AG_USAGE,
			      "verify needs --keyring FILE (the signers' public keys)");
		goto out;
	}
	if (argc - optind > 1 || (o.all && argc - optind == 1)) {
		r = tool_fail(t, EX_AG_USAGE, "verify takes one generation or --all");
		goto out;
	}
	if (argc - optind == 1 && strcmp(argv[optind], "current") != 0 &&
	    parse_u64(argv[optind], 1, UINT64_MAX, &one) < 0) {
		r = tool_fail(t, EX_AG_USAGE, "'%s' is not a generation number (or 'current')",
			      argv[optind]);
		goto out;
	}
	if ((r = open_keyrings(t, &o, &v)) > 0 || (r = tool_open(t, AG_RDONLY, &s)) > 0)
		goto out;
	v.s = s;
	if ((r = load_serials(&v)) < 0) {
		r = tool_fail_err(t, r, "cannot read the catalogs of %s", t->store_path);
		goto out;
	}
	if (o.all) {
		r = ag_gen_list(s, &ids, &n);
	} else if (one == 0) {
		r = ag_current(s, &one);
		n = 1;
	} else {
		n = 1;
	}
	if (r == -ENOENT || (o.all && r == 0 && n == 0)) {
		r = tool_fail(t, EX_AG_PROBLEM, "the store %s has no generation to verify",
			      t->store_path);
		goto out;
	}
	if (r < 0) {
		r = tool_fail_err(t, r, "cannot list the generations of %s", t->store_path);
		goto out;
	}
	r = run_verify(t, &v, o.all ? ids : &one, n);
out:
	sig_keyring_free(v.ks);
	sig_keyring_free(v.bks);
	free(v.sers);
	free(o.signers);
	return r;
}
