/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agimport --registry URL: pull a generation that `agstore push` published
 * (DESIGN.md "Distribution to production nodes").
 *
 *   1. agfs/catalog:<gen-N|latest>: the generation index (oci.h) and, from
 *      a format-2 ingest store, the catalog bytes and their signature, each
 *      checked against the digest the artifact's manifest names;
 *   2. the catalog's signature verified with the pinned keyring (sig/), as a
 *      bundle's; a serial below meta max_catalog_serial is refused
 *      (anti-rollback), so is an index that does not name the catalog's
 *      models;
 *   3. every model's manifest by digest (bytes checked against the index),
 *      parsed as the importer parses a bundle's; each blob it names must be
 *      in the catalog with its size; the bundle's files the catalog lists;
 *   4. only the blobs the store lacks, --jobs at a time, each streamed into
 *      staging (SHA-256 and tree computed as the bytes arrive) and checked
 *      against the manifest's digest and size; a dropped connection resumes
 *      with a Range request (oci_blob_get);
 *   5. one write transaction: objects published, the generation added with
 *      the catalog verbatim (ag_txn_gen_add_catalog checks it describes the
 *      generation, fs-verity digests included) and its signature, made
 *      current, REGISTRY_PULL audited (ag_txn_commit_audit): all or nothing.
 *      After a transport failure the blobs already fetched and verified are
 *      kept (no generation names them; the next run does not fetch them
 *      again, gc removes them if it never comes).
 *
 * An ingest store of format 1 publishes no catalog: its index can be pulled
 * with --no-signature only (anti-rollback by generation number, meta
 * registry_generation), trusting the registry's TLS identity.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "importer/import.h"
#include "importer/registry.h"
#include "oci/oci.h"
#include "sig/sig.h"
#include "store/catalog.h"

#define MAX_JOBS	 64
#define ACCEPT_MANIFESTS OCI_DOCKER_MANIFEST ", " OCI_IMAGE_MANIFEST

struct fetch {
	const char *repo;
	ag_digest digest;
	uint64_t size;
	ag_stage *st;
	bool done;
};

struct pull {
	const char *url, *store_path, *keyring, *operator_name;
	char ref[32];
	char **signers;
	size_t nsigners;
	struct oci_opts o;
	unsigned jobs;
	bool json, no_signature;

	ag_store *s;
	oci *c;
	ag_digest idx_digest;
	struct oci_index x;
	ag_gen *g;
	struct fetch *f;
	size_t nf, next;
	pthread_mutex_t mu;
	uint64_t fetched, fetched_bytes, present, requests;
	uint64_t gen_id;
	bool up_to_date, transport, kept_partial;
	struct imp_error err;

	/* Format 2: the signed catalog and what the index artifact's layers name. */
	struct layer {
		ag_digest digest;
		uint64_t size;
		bool present;
	} cat_l, sig_l;
	char *cat, *asc, *fpr;
	size_t catlen, asclen;
	struct ag_catalog cg;
};

enum {
	O_REGISTRY = 256,
	O_STORE,
	O_GEN,
	O_KEYRING,
	O_SIGNER,
	O_JOBS,
	O_CA,
	O_CERT,
	O_KEY,
	O_TOKEN,
	O_INSECURE,
	O_TIMEOUT,
	O_OPERATOR,
	O_JSON,
	O_NOSIG,
};

static const struct option reg_opts[] = {
	{"registry", required_argument, NULL, O_REGISTRY},
	{"store", required_argument, NULL, O_STORE},
	{"generation", required_argument, NULL, O_GEN},
	{"keyring", required_argument, NULL, O_KEYRING},
	{"signer", required_argument, NULL, O_SIGNER},
	{"jobs", required_argument, NULL, O_JOBS},
	{"ca-file", required_argument, NULL, O_CA},
	{"cert", required_argument, NULL, O_CERT},
	{"key", required_argument, NULL, O_KEY},
	{"token-file", required_argument, NULL, O_TOKEN},
	{"insecure-http", no_argument, NULL, O_INSECURE},
	{"timeout", required_argument, NULL, O_TIMEOUT},
	{"operator", required_argument, NULL, O_OPERATOR},
	{"json", no_argument, NULL, O_JSON},
	{"no-signature", no_argument, NULL, O_NOSIG},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

static const char reg_usage[] =
	"usage: agimport --registry URL [--generation N|latest] (--keyring F [--signer FPR] |\n"
	"                --no-signature) [--jobs N] [--ca-file F] [--cert F --key F]\n"
	"                [--token-file F] [--insecure-http] [--timeout S] [--store DIR]\n"
	"Pull a generation `agstore push` published: fetch only the blobs the store\n"
	"lacks, verify each while staging, publish all or nothing.\n";

bool imp_registry_wanted(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--registry") == 0 || strncmp(argv[i], "--registry=", 11) == 0)
			return true;
	return false;
}

/* One sentence on stderr, exit status 2 (fmt is a literal with one %s). */
#define usage_err(fmt, arg)                                                                 \
	(fprintf(stderr, "agimport: " fmt " (see agimport --registry URL --help).\n", arg), \
	 IMP_USAGE)

static int num_opt(const char *arg, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v = strtoul(arg, &end, 10);

	if (*arg < '0' || *arg > '9' || *end || v < 1 || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int set_opt(struct pull *p, int c, const char *arg)
{
	const char **str = c == O_REGISTRY   ? &p->url
			   : c == O_STORE    ? &p->store_path
			   : c == O_KEYRING  ? &p->keyring
			   : c == O_CA	     ? &p->o.ca_file
			   : c == O_CERT     ? &p->o.cert
			   : c == O_KEY	     ? &p->o.key
			   : c == O_TOKEN    ? &p->o.token_file
			   : c == O_OPERATOR ? &p->operator_name
					     : NULL;
	char **ns;

	if (str) {
		*str = arg;
		return 0;
	}
	switch (c) {
	case O_GEN:
		if (strcmp(arg, "latest") == 0 || (num_opt(arg, ~0u, &(unsigned){0}) == 0))
			return snprintf(p->ref, sizeof(p->ref), "%s%s",
					strcmp(arg, "latest") ? "gen-" : "", arg) > 0
				       ? 0
				       : IMP_USAGE;
		return usage_err("--generation %s is not a number or 'latest'", arg);
	case O_JOBS:
		return num_opt(arg, MAX_JOBS, &p->jobs) < 0
			       ? usage_err("--jobs %s is not a number from 1 to 64", arg)
			       : 0;
	case O_TIMEOUT:
		return num_opt(arg, 86400, &p->o.timeout) < 0
			       ? usage_err("--timeout %s is not a number of seconds", arg)
			       : 0;
	case O_SIGNER:
		if (!(ns = realloc(p->signers, (p->nsigners + 1) * sizeof(*ns))))
			return IMP_IO;
		p->signers = ns;
		p->signers[p->nsigners++] = (char *)arg;
		return 0;
	case O_INSECURE:
		p->o.insecure_http = true;
		return 0;
	case O_JSON:
		p->json = true;
		return 0;
	case O_NOSIG:
		p->no_signature = true;
		return 0;
	case 'h':
		fputs(reg_usage, stdout);
		exit(0);
	default:
		return IMP_USAGE;
	}
}

static int parse_args(struct pull *p, int argc, char **argv)
{
	int c, r;

	while ((c = getopt_long(argc, argv, "h", reg_opts, NULL)) != -1)
		if ((r = set_opt(p, c, optarg)) != 0)
			return r == IMP_USAGE && c == '?'
				       ? usage_err("unknown option %s", argv[optind - 1])
				       : r;
	if (optind < argc)
		return usage_err("--registry takes no SOURCE (%s)", argv[optind]);
	if (!p->keyring && !p->no_signature)
		return usage_err("%s needs --keyring to verify the catalog's signature, or "
				 "--no-signature",
				 p->url);
	if (!p->ref[0])
		snprintf(p->ref, sizeof(p->ref), "latest");
	if (!p->store_path)
		p->store_path = getenv("AGFS_STORE") && *getenv("AGFS_STORE") ? getenv("AGFS_STORE")
									      : AG_DEFAULT_STORE;
	return 0;
}

/* ---------- fetching into memory (index) ---------- */

struct membuf {
	char *buf;
	size_t len, max;
};

static int mem_sink(void *arg, const void *buf, size_t len)
{
	struct membuf *m = arg;

	if (m->len + len > m->max)
		return -EFBIG;
	memcpy(m->buf + m->len, buf, len);
	m->len += len;
	return 0;
}

static int oci_err(struct pull *p, int r, const char *member)
{
	p->transport = r == -ETIMEDOUT || r == -ECONNRESET || r == -ECONNREFUSED || r == -EIO ||
		       r == -EHOSTUNREACH;
	return imp_fail(&p->err,
			r == -ENOENT || r == -EACCES || r == -EPROTO ? IMP_REFUSED : IMP_IO, r,
			member, "%s", oci_error(p->c));
}

/* The catalog and signature layers of the index manifest (format 2). */
static int index_layers(struct pull *p, json_t *layers)
{
	json_t *l;
	size_t i;

	json_array_foreach(layers, i, l)
	{
		const char *mt = json_string_value(json_object_get(l, "mediaType"));
		const char *dig = json_string_value(json_object_get(l, "digest"));
		json_t *sz = json_object_get(l, "size");
		struct layer *to = !mt					 ? NULL
				   : strcmp(mt, OCI_CATALOG_TYPE) == 0	 ? &p->cat_l
				   : strcmp(mt, OCI_SIGNATURE_TYPE) == 0 ? &p->sig_l
									 : NULL;
		if (!to)
			continue;
		if (to->present || !dig || imp_digest_ref_parse(dig, &to->digest) < 0 ||
		    !json_is_integer(sz) || json_integer_value(sz) < 0 ||
		    json_integer_value(sz) > (json_int_t)AG_CATALOG_MAX_BYTES)
			return -EBADMSG;
		to->size = (uint64_t)json_integer_value(sz);
		to->present = true;
	}
	return 0;
}

/* The index manifest's config descriptor. */
static int index_config(struct pull *p, const char *body, size_t len, ag_digest *d, uint64_t *size)
{
	json_t *j = ag_json_loadb(body, len, 0, NULL);
	if (!j && errno == ENOMEM)
		return imp_fail(&p->err, IMP_IO, -ENOMEM, OCI_INDEX_REPO, "out of memory");
	json_t *cfg = json_object_get(j, "config");
	const char *mt = json_string_value(json_object_get(cfg, "mediaType"));
	const char *dig = json_string_value(json_object_get(cfg, "digest"));
	json_t *sz = json_object_get(cfg, "size");
	int r = 0;

	if (!mt || strcmp(mt, OCI_INDEX_TYPE) != 0 || !dig || imp_digest_ref_parse(dig, d) < 0 ||
	    !json_is_integer(sz) || json_integer_value(sz) < 0 ||
	    json_integer_value(sz) > (json_int_t)OCI_INDEX_MAX ||
	    index_layers(p, json_object_get(j, "layers")) < 0)
		r = imp_fail(&p->err, IMP_REFUSED, -EBADMSG, OCI_INDEX_REPO,
			     "its manifest %s does not name an agfs index (%s)", p->ref,
			     OCI_INDEX_TYPE);
	else
		*size = (uint64_t)json_integer_value(sz);
	json_decref(j);
	return r;
}

/* A small blob of the index repository into memory, checked against its
 * digest and size. */
static int fetch_small(struct pull *p, const char *member, const ag_digest *want, uint64_t size,
		       char **out)
{
	char dig[80], hex[AG_HEX_LEN + 1];
	struct membuf m = {0};
	uint64_t got;
	ag_digest d;
	int r;

	ag_digest_hex(want, hex);
	snprintf(dig, sizeof(dig), "sha256:%s", hex);
	if (!(m.buf = malloc(size + 1)))
		return imp_fail(&p->err, IMP_IO, -ENOMEM, "", "out of memory");
	m.max = size;
	r = oci_blob_get(p->c, OCI_INDEX_REPO, dig, 0, mem_sink, &m, &got);
	if (r == -EFBIG || (r == 0 && m.len != size))
		r = imp_fail(&p->err, IMP_REFUSED, -EBADMSG, member,
			     "it is not the %" PRIu64 " bytes the index manifest names", size);
	else if (r < 0)
		r = oci_err(p, r, member);
	if (r == 0) {
		ag_sha256(m.buf, m.len, &d);
		if (!ag_digest_eq(&d, want))
			r = imp_fail(&p->err, IMP_REFUSED, -AG_EDIGEST, member,
				     "its bytes do not hash to %s", dig);
	}
	if (r < 0) {
		free(m.buf);
		return r;
	}
	m.buf[m.len] = 0;
	*out = m.buf;
	return 0;
}

static int fetch_index(struct pull *p)
{
	_cleanup_free_ char *body = NULL, *mt = NULL, *idx = NULL;
	char member[128];
	uint64_t size = 0;
	const char *why;
	size_t len;
	int r;

	snprintf(member, sizeof(member), "%s:%s", OCI_INDEX_REPO, p->ref);
	if ((r = oci_manifest_get(p->c, OCI_INDEX_REPO, p->ref, OCI_IMAGE_MANIFEST, &body, &len,
				  &mt)) < 0)
		return oci_err(p, r, member);
	if ((r = index_config(p, body, len, &p->idx_digest, &size)) < 0 ||
	    (r = fetch_small(p, member, &p->idx_digest, size, &idx)) < 0)
		return r;
	if ((r = oci_index_parse(idx, size, &p->x, &why)) < 0)
		return imp_fail(&p->err, IMP_REFUSED, r, member, "the index is refused: %s", why);
	snprintf(member, sizeof(member), "%s:%s catalog", OCI_INDEX_REPO, p->ref);
	if (p->cat_l.present &&
	    (r = fetch_small(p, member, &p->cat_l.digest, p->cat_l.size, &p->cat)) < 0)
		return r;
	p->catlen = p->cat_l.size;
	snprintf(member, sizeof(member), "%s:%s signature", OCI_INDEX_REPO, p->ref);
	if (p->sig_l.present &&
	    (r = fetch_small(p, member, &p->sig_l.digest, p->sig_l.size, &p->asc)) < 0)
		return r;
	p->asclen = p->sig_l.size;
	return 0;
}

/* ---------- trust and anti-rollback ---------- */

/* The catalog's signature, checked with the keyring exactly as a bundle's. */
static int verify_catalog(struct pull *p)
{
	_cleanup_free_ char *parent = NULL, *why = NULL;
	struct sig_keyring *ks = NULL;
	int r;

	if (!p->asc)
		return imp_fail(&p->err, IMP_REFUSED, -AG_EDIGEST, OCI_INDEX_REPO,
				"the catalog of %s carries no signature", p->ref);
	if (asprintf(&parent, "%s/tmp", ag_store_path(p->s)) < 0)
		return imp_fail(&p->err, IMP_IO, -ENOMEM, "", "out of memory");
	sig_keyring_remove_stale(parent);
	if ((r = sig_keyring_open(p->keyring, p->signers, p->nsigners, parent, &ks, &why)) < 0)
		return imp_fail(&p->err, sig_keyring_err_is_input(r) ? IMP_USAGE : IMP_IO, r,
				p->keyring, "%s", why ? why : ag_strerror(r));
	r = sig_verify_detached(ks, p->cat, p->catlen, p->asc, p->asclen, &p->fpr, &why);
	sig_keyring_free(ks);
	if (r < 0 && r != -AG_EDIGEST)
		return imp_fail(&p->err, IMP_IO, r, OCI_INDEX_REPO, "%s",
				why ? why : ag_strerror(r));
	if (r < 0)
		return imp_fail(&p->err, IMP_REFUSED, r, OCI_INDEX_REPO,
				"the catalog's signature is refused: %s",
				why ? why : ag_strerror(r));
	return 0;
}

/* The index is a convenience: it must name exactly the catalog's models. */
static int index_matches_catalog(struct pull *p)
{
	if (p->x.nmodels != p->cg.nmodels)
		goto bad;
	for (size_t i = 0; i < p->x.nmodels; i++) {
		size_t j = 0;
		while (j < p->cg.nmodels && strcmp(p->cg.models[j].name, p->x.models[i].name) != 0)
			j++;
		if (j == p->cg.nmodels ||
		    !ag_digest_eq(&p->cg.models[j].digest, &p->x.models[i].manifest))
			goto bad;
	}
	return 0;
bad:
	return imp_fail(&p->err, IMP_REFUSED, -AG_ECORRUPT, OCI_INDEX_REPO,
			"the index does not name the signed catalog's models");
}

static int meta_u64(struct pull *p, const char *key, uint64_t *v)
{
	_cleanup_free_ char *s = NULL;
	int r = ag_meta_get(p->s, key, &s);

	*v = 0;
	if (r < 0 && r != -ENOENT)
		return imp_fail(&p->err, IMP_IO, r, "", "the store's meta data cannot be read (%s)",
				ag_strerror(r));
	if (s)
		*v = strtoull(s, NULL, 10);
	return 0;
}

static int check_catalog(struct pull *p)
{
	const char *why = NULL;
	uint64_t max;
	int r;

	if (!p->no_signature && (r = verify_catalog(p)) < 0)
		return r;
	if ((r = ag_catalog_parse(p->cat, p->catlen, &p->cg, &why)) < 0)
		return imp_fail(&p->err, IMP_REFUSED, r, OCI_INDEX_REPO,
				"the catalog is refused: %s", why ? why : ag_strerror(r));
	if ((r = meta_u64(p, "max_catalog_serial", &max)) < 0)
		return r;
	if (p->cg.serial < max)
		return imp_fail(&p->err, IMP_REFUSED, -ESTALE, OCI_INDEX_REPO,
				"the catalog's serial %" PRIu64 " is older than serial %" PRIu64
				" this store already accepted (anti-rollback)",
				p->cg.serial, max);
	return index_matches_catalog(p);
}

static int check_trust(struct pull *p)
{
	uint64_t have;
	int r;

	if (p->cat)
		return check_catalog(p);
	if (!p->no_signature)
		return imp_fail(&p->err, IMP_REFUSED, -ENOTSUP, OCI_INDEX_REPO,
				"the registry's generation carries no signed catalog (its store is "
				"format 1); pull with --no-signature to trust the registry's TLS "
				"identity alone");
	if ((r = meta_u64(p, "registry_generation", &have)) < 0)
		return r;
	if (p->x.generation < have)
		return imp_fail(&p->err, IMP_REFUSED, -ESTALE, OCI_INDEX_REPO,
				"generation %" PRIu64 " is older than generation %" PRIu64
				" this store already pulled (anti-rollback)",
				p->x.generation, have);
	return 0;
}

/* ---------- manifests ---------- */

static int stage_bytes(struct pull *p, const char *buf, size_t len, ag_stage **out)
{
	ag_blob_info bi;
	int r;

	if ((r = ag_stage_begin(p->s, 0, out)) < 0 || (r = ag_stage_write(*out, buf, len)) < 0 ||
	    (r = ag_stage_end(*out, &bi)) < 0)
		return imp_fail(&p->err, IMP_IO, r, "", "staging failed (%s)", ag_strerror(r));
	return 0;
}

static int add_fetch(struct pull *p, const char *repo, const ag_digest *d, uint64_t size)
{
	ag_blob_info bi;
	struct fetch *nf;

	bool have;

	for (size_t i = 0; i < p->nf; i++)
		if (ag_digest_eq(&p->f[i].digest, d))
			return 0;
	/* A blob the store has is listed too (done, nothing staged), so it is
	 * counted once however many models name it. */
	have = ag_blob_lookup(p->s, d, &bi) == 0 && bi.size == size;
	if (!(nf = realloc(p->f, (p->nf + 1) * sizeof(*nf))))
		return -ENOMEM;
	p->f = nf;
	p->f[p->nf++] = (struct fetch){.repo = repo, .digest = *d, .size = size, .done = have};
	p->present += have;
	return 0;
}

/* With a catalog: every blob a manifest names must be listed there with the
 * same size (its SHA-256 is the name; the fs-verity digest is checked by the
 * store at commit, ag_txn_gen_add_catalog). */
static int in_catalog(struct pull *p, const ag_model *m, const char *member)
{
	for (size_t j = 0; p->cat && j < ag_model_nblobs(m); j++) {
		const struct ag_catalog_blob *b = ag_catalog_blob(&p->cg, ag_model_blob(m, j));
		uint64_t size = j == 0	 ? m->manifest_size
				: j == 1 ? m->config.size
					 : m->layers[j - 2].size;
		if (!b || b->size != size) {
			char hex[AG_HEX_LEN + 1];
			ag_digest_hex(ag_model_blob(m, j), hex);
			return imp_fail(&p->err, IMP_REFUSED, -AG_ECORRUPT, member,
					"sha256:%s (%" PRIu64
					" bytes) is not in the signed catalog",
					hex, size);
		}
	}
	return 0;
}

/* The catalog's bundle files: kept with the generation, fetched when missing. */
static int bundle_files(struct pull *p)
{
	for (size_t i = 0; p->cat && i < p->cg.nfiles; i++) {
		const struct ag_catalog_entry *f = &p->cg.files[i];
		const struct ag_catalog_blob *b = ag_catalog_blob(&p->cg, &f->digest);
		if (!b || ag_gen_add_bundle_file(p->g, f->name, &f->digest) < 0 ||
		    add_fetch(p, OCI_INDEX_REPO, &f->digest, b->size) < 0)
			return imp_fail(&p->err, IMP_IO, -ENOMEM, "", "out of memory");
	}
	return 0;
}

static int fetch_manifest(struct pull *p, const struct oci_index_model *im)
{
	_cleanup_free_ char *body = NULL, *mt = NULL;
	char hex[AG_HEX_LEN + 1], dig[80], member[600];
	ag_model m = {0};
	const char *why = NULL;
	ag_digest d;
	size_t len;
	int r;

	ag_digest_hex(&im->manifest, hex);
	snprintf(dig, sizeof(dig), "sha256:%s", hex);
	snprintf(member, sizeof(member), "%s@%s", im->repo, dig);
	if ((r = oci_manifest_get(p->c, im->repo, dig, ACCEPT_MANIFESTS, &body, &len, &mt)) < 0)
		return oci_err(p, r, member);
	ag_sha256(body, len, &d);
	if (len != im->size || !ag_digest_eq(&d, &im->manifest))
		return imp_fail(&p->err, IMP_REFUSED, -AG_EDIGEST, member,
				"the manifest's bytes are not the ones the index names");
	if ((r = imp_manifest_parse(body, len, &m, &why)) < 0)
		return imp_fail(&p->err, IMP_REFUSED, r, member, "%s", why);
	m.name = strdup(im->name);
	m.manifest = d;
	m.manifest_size = len;
	m.added = im->added;
	if ((r = in_catalog(p, &m, member)) < 0) {
		ag_model_clear(&m);
		return r;
	}
	r = m.name ? ag_gen_add_model(p->g, &m) : -ENOMEM;
	for (size_t j = 1; r == 0 && j < ag_model_nblobs(&m); j++)
		r = add_fetch(p, im->repo, ag_model_blob(&m, j),
			      j == 1 ? m.config.size : m.layers[j - 2].size);
	ag_model_clear(&m);
	if (r < 0)
		return imp_fail(&p->err, IMP_IO, r, "", "out of memory");
	if (ag_blob_lookup(p->s, &d, &(ag_blob_info){0}) == 0)
		return 0;
	/* The manifest is a blob of the store too: staged from the verified bytes. */
	struct fetch *nf = realloc(p->f, (p->nf + 1) * sizeof(*nf));
	if (!nf)
		return imp_fail(&p->err, IMP_IO, -ENOMEM, "", "out of memory");
	p->f = nf;
	p->f[p->nf] = (struct fetch){.repo = im->repo, .digest = d, .size = len, .done = true};
	return stage_bytes(p, body, len, &p->f[p->nf++].st);
}

/* ---------- blobs, in parallel ---------- */

struct sinkctx {
	ag_stage *st;
	uint64_t left;
};

static int stage_sink(void *arg, const void *buf, size_t len)
{
	struct sinkctx *s = arg;

	if (len > s->left)
		return -EFBIG;
	s->left -= len;
	return ag_stage_write(s->st, buf, len);
}

static int fetch_one(struct pull *p, oci *c, struct fetch *f, struct imp_error *e, bool *transport)
{
	char hex[AG_HEX_LEN + 1], dig[80], member[600];
	struct sinkctx sc = {.left = f->size};
	ag_blob_info bi;
	uint64_t got;
	int r;

	ag_digest_hex(&f->digest, hex);
	snprintf(dig, sizeof(dig), "sha256:%s", hex);
	snprintf(member, sizeof(member), "%s@%s", f->repo, dig);
	if ((r = ag_stage_begin(p->s, 0, &sc.st)) < 0)
		return imp_fail(e, IMP_IO, r, "", "staging failed (%s)", ag_strerror(r));
	f->st = sc.st;
	r = oci_blob_get(c, f->repo, dig, 0, stage_sink, &sc, &got);
	pthread_mutex_lock(&p->mu);
	p->fetched_bytes += got;
	pthread_mutex_unlock(&p->mu);
	if (r == -EFBIG || (r == 0 && got != f->size))
		return imp_fail(e, IMP_REFUSED, -AG_ECORRUPT, member,
				"the registry served %s bytes, the manifest says %" PRIu64,
				r == -EFBIG ? "more" : "fewer", f->size);
	if (r < 0) {
		*transport = r == -ETIMEDOUT || r == -ECONNRESET || r == -ECONNREFUSED || r == -EIO;
		return imp_fail(e, r == -ENOENT || r == -EACCES ? IMP_REFUSED : IMP_IO, r, member,
				"%s", oci_error(c));
	}
	if ((r = ag_stage_end(sc.st, &bi)) < 0)
		return imp_fail(e, IMP_IO, r, member, "staging failed (%s)", ag_strerror(r));
	if (!ag_digest_eq(&bi.digest, &f->digest)) {
		ag_digest_hex(&bi.digest, hex);
		return imp_fail(e, IMP_REFUSED, -AG_EDIGEST, member,
				"the registry served bytes whose SHA-256 is %s", hex);
	}
	f->done = true;
	return 0;
}

static void *worker(void *arg)
{
	struct pull *p = arg;
	oci *c = NULL;
	struct imp_error e = {0};
	bool transport = false;
	int r = oci_open(p->url, &p->o, &c);

	if (r < 0)
		imp_fail(&e, IMP_IO, r, "", "%s", c ? oci_error(c) : "out of memory");
	while (r == 0) {
		pthread_mutex_lock(&p->mu);
		size_t i = p->err.cls != IMP_OK ? p->nf : p->next++;
		pthread_mutex_unlock(&p->mu);
		if (i >= p->nf)
			break;
		if (!p->f[i].done)
			r = fetch_one(p, c, &p->f[i], &e, &transport);
	}
	pthread_mutex_lock(&p->mu);
	if (c)
		p->requests += oci_stats(c)->requests;
	if (r < 0 && p->err.cls == IMP_OK) {
		p->err = e;
		p->transport = transport;
	}
	pthread_mutex_unlock(&p->mu);
	oci_close(c);
	return NULL;
}

static int fetch_blobs(struct pull *p)
{
	pthread_t th[MAX_JOBS];
	unsigned n = p->jobs ? p->jobs : 4, started = 0;

	for (size_t i = 0; i < p->nf; i++)
		if (!p->f[i].done)
			p->fetched++;
	if (n > p->nf)
		n = (unsigned)p->nf;
	for (unsigned i = 0; i < n; i++)
		if (pthread_create(&th[i], NULL, worker, p) == 0)
			started++;
	if (started == 0 && p->nf)
		worker(p);
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	return p->err.cls == IMP_OK ? 0 : -EIO;
}

/* ---------- publishing ---------- */

static json_t *pull_fields(struct pull *p)
{
	char hex[AG_HEX_LEN + 1];

	ag_digest_hex(&p->idx_digest, hex);
	json_t *f = json_pack("{s:s, s:s, s:I, s:s, s:b, s:I, s:I, s:I, s:s?}", "url", p->url,
			      "ref", p->ref, "remote_generation", (json_int_t)p->x.generation,
			      "index_sha256", hex, "unsigned", p->fpr == NULL, "blobs_fetched",
			      (json_int_t)p->fetched, "bytes_fetched", (json_int_t)p->fetched_bytes,
			      "blobs_present", (json_int_t)p->present, "signer", p->fpr);

	if (f && p->cat) {
		ag_digest_hex(&p->cat_l.digest, hex);
		json_object_set_new(f, "catalog_sha256", json_string(hex));
		json_object_set_new(f, "catalog_serial", json_integer((json_int_t)p->cg.serial));
	}
	return f;
}

static int publish_stages(struct pull *p, ag_txn *t, bool only_done)
{
	int r;

	for (size_t i = 0; i < p->nf; i++) {
		if (!p->f[i].st || (only_done && !p->f[i].done))
			continue;
		if ((r = ag_stage_publish_ex(p->f[i].st, t, &p->f[i].digest, NULL)) < 0)
			return imp_fail(&p->err, IMP_IO, r, "", "publishing a blob failed (%s)",
					ag_strerror(r));
	}
	return 0;
}

static int commit(struct pull *p)
{
	_cleanup_txn_ ag_txn *t = NULL;
	char gen[24];
	json_t *f;
	int r;

	if ((r = ag_txn_begin(p->s, &t)) < 0)
		return imp_fail(&p->err, IMP_IO, r, "", "the store cannot be written (%s)",
				ag_strerror(r));
	if ((r = publish_stages(p, t, false)) < 0)
		return r;
	p->g->label = p->x.label ? strdup(p->x.label) : NULL;
	p->g->source = strdup(p->url);
	p->g->operator_name = strdup(p->operator_name);
	p->g->signer = p->fpr ? strdup(p->fpr) : NULL;
	snprintf(gen, sizeof(gen), "%" PRIu64, p->x.generation);
	r = p->cat ? ag_txn_gen_add_catalog(t, p->g, p->cat, p->catlen) : ag_txn_gen_add(t, p->g);
	if (r == -AG_ECORRUPT || r == -ESTALE)
		return imp_fail(&p->err, IMP_REFUSED, r, OCI_INDEX_REPO,
				"the signed catalog does not describe what was fetched (%s)",
				r == -ESTALE ? "an older serial" : ag_strerror(r));
	if (r == 0 && p->cat && p->asc)
		r = ag_txn_gen_sign(t, p->g->id, p->asc, p->asclen);
	char now[24];
	snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
	if (r < 0 || (r = ag_txn_set_current(t, p->g->id)) < 0 ||
	    (r = ag_txn_meta_put(t, "registry_generation", gen)) < 0 ||
	    (r = ag_txn_meta_put(t, "last_pull", now)) < 0) /* agfs' metrics read it */
		return imp_fail(&p->err, IMP_IO, r, "", "the generation cannot be added (%s)",
				ag_strerror(r));
	if (!(f = pull_fields(p)))
		return imp_fail(&p->err, IMP_IO, -ENOMEM, "", "out of memory");
	json_object_set_new(f, "generation", json_integer((json_int_t)p->g->id));
	r = ag_txn_commit_audit(TAKE_PTR(t), "REGISTRY_PULL", p->operator_name, f);
	json_decref(f);
	if (r < 0)
		return imp_fail(&p->err, IMP_IO, r, "", "the commit failed (%s)", ag_strerror(r));
	p->gen_id = p->g->id;
	return 0;
}

/* After a transport failure: keep what was fetched and verified. */
static void keep_partial(struct pull *p)
{
	_cleanup_txn_ ag_txn *t = NULL;
	struct imp_error saved = p->err;
	size_t n = 0;
	json_t *f;

	for (size_t i = 0; i < p->nf; i++)
		n += p->f[i].done && p->f[i].st;
	if (!n || ag_txn_begin(p->s, &t) < 0 || publish_stages(p, t, true) < 0) {
		p->err = saved;
		return;
	}
	f = pull_fields(p);
	json_object_set_new(f, "reason", json_string(saved.reason));
	json_object_set_new(f, "blobs_kept", json_integer((json_int_t)n));
	if (ag_txn_commit_audit(TAKE_PTR(t), "REGISTRY_PULL_INCOMPLETE", p->operator_name, f) == 0)
		p->kept_partial = true;
	json_decref(f);
	p->err = saved;
}

/* The store's current generation already holds exactly the index's models
 * (names and manifest digests): nothing to fetch, not even a manifest. */
static bool same_as_current(struct pull *p)
{
	_cleanup_gen_ ag_gen *cur = NULL;
	ag_digest d;

	if (p->cat) /* the same catalog bytes: the same generation */
		return ag_gen_catalog(p->s, 0, &d, NULL, NULL) == 0 &&
		       ag_digest_eq(&d, &p->cat_l.digest);
	if (ag_gen_get(p->s, 0, &cur) < 0 || cur->nmodels != p->x.nmodels)
		return false;
	for (size_t i = 0; i < p->x.nmodels; i++) {
		const ag_model *m = ag_gen_find(cur, p->x.models[i].name);
		if (!m || !ag_digest_eq(&m->manifest, &p->x.models[i].manifest))
			return false;
	}
	return true;
}

static int run(struct pull *p)
{
	int r;

	if ((r = ag_store_open(p->store_path, AG_WRITE | AG_CREATE, &p->s)) < 0)
		return imp_fail(&p->err, IMP_IO, r, p->store_path,
				"the store cannot be opened (%s)", ag_strerror(r));
	if ((r = oci_open(p->url, &p->o, &p->c)) < 0)
		return imp_fail(&p->err, IMP_USAGE, r, "", "%s",
				p->c ? oci_error(p->c) : "out of memory");
	if ((r = oci_ping(p->c)) < 0)
		return oci_err(p, r, "");
	if ((r = fetch_index(p)) < 0 || (r = check_trust(p)) < 0)
		return r;
	if (same_as_current(p)) {
		p->up_to_date = true;
		return 0;
	}
	if (!(p->g = ag_gen_new()))
		return imp_fail(&p->err, IMP_IO, -ENOMEM, "", "out of memory");
	for (size_t i = 0; i < p->x.nmodels; i++)
		if ((r = fetch_manifest(p, &p->x.models[i])) < 0)
			return r;
	if ((r = bundle_files(p)) < 0)
		return r;
	if ((r = fetch_blobs(p)) < 0) {
		if (p->transport)
			keep_partial(p);
		return r;
	}
	return commit(p);
}

static void report(struct pull *p, int r)
{
	if (p->json) {
		json_t *j = r == 0 ? pull_fields(p)
				   : json_pack("{s:s, s:s, s:s, s:s}", "url", p->url, "result",
					       imp_result(p->err.cls), "member", p->err.member,
					       "reason", p->err.reason);
		if (r == 0)
			json_object_set_new(j, "generation", json_integer((json_int_t)p->gen_id)),
				json_object_set_new(j, "up_to_date", json_boolean(p->up_to_date));
		json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		fputc('\n', stdout);
		json_decref(j);
	} else if (r == 0 && p->up_to_date) {
		printf("agimport: %s generation %" PRIu64 " is already current; nothing to do.\n",
		       p->url, p->x.generation);
	} else if (r == 0) {
		printf("agimport: %s generation %" PRIu64 " pulled as generation %" PRIu64
		       " (%s, %zu models, %" PRIu64 " blobs fetched, %" PRIu64 " bytes, %" PRIu64
		       " already here).\n",
		       p->url, p->x.generation, p->gen_id, p->x.label ? p->x.label : "-",
		       p->x.nmodels, p->fetched, p->fetched_bytes, p->present);
	}
	/* As for a bundle: "refused" blames what the registry served. */
	if (r < 0)
		fprintf(stderr, "agimport: %s %s: %s%s%s.%s\n",
			imp_verdict(p->err.cls, "could not pull", "cannot pull"), p->url,
			p->err.member, p->err.member[0] ? ": " : "", p->err.reason,
			p->kept_partial ? " The blobs fetched and verified so far were kept; a "
					  "rerun fetches the rest."
					: "");
}

static void audit_reject(struct pull *p)
{
	json_t *f;

	if (!p->s)
		return;
	f = json_pack("{s:s, s:s, s:s, s:s}", "url", p->url, "ref", p->ref, "member", p->err.member,
		      "reason", p->err.reason);
	ag_audit(p->s, "REGISTRY_PULL_REJECTED", p->operator_name, f);
	json_decref(f);
}

int imp_registry_main(int argc, char **argv)
{
	struct pull p = {.jobs = 4};
	struct passwd *pw = getpwuid(geteuid());
	int r, cls;

	pthread_mutex_init(&p.mu, NULL);
	if ((r = parse_args(&p, argc, argv)) != 0)
		return r;
	if (!p.operator_name)
		p.operator_name = pw ? pw->pw_name : "unknown";
	r = run(&p);
	if (r < 0 && p.err.cls == IMP_OK)
		imp_fail(&p.err, IMP_IO, r, "", "%s", ag_strerror(r));
	cls = r < 0 ? p.err.cls : IMP_OK;
	report(&p, r);
	if (r < 0)
		audit_reject(&p);
	for (size_t i = 0; i < p.nf; i++)
		ag_stage_free(p.f[i].st);
	free(p.f);
	ag_gen_free(p.g);
	oci_index_clear(&p.x);
	ag_catalog_clear(&p.cg);
	free(p.cat);
	free(p.asc);
	free(p.fpr);
	oci_close(p.c);
	ag_store_close(p.s);
	free(p.signers);
	pthread_mutex_destroy(&p.mu);
	return cls;
}
