/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agstore push URL: publish a generation to an OCI distribution registry
 * (DESIGN.md "Distribution to production nodes").  Each model goes up as the
 * very manifest bytes Ollama uses (its own mediaType), its config and layers
 * as blobs with the same digests, under the repository oci_model_ref() names.
 * Then the generation's index goes up as an artifact in agfs/catalog, tagged
 * gen-N and latest: what `agimport --registry` starts from.
 *
 * Every blob is HEADed first and uploaded only when the registry lacks it;
 * a manifest whose tag already holds the same bytes is not written again, so
 * a second push of the same generation uploads nothing.  Bytes are read
 * through verified reads: a damaged object is refused, never published.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oci/oci.h"
#include "store/catalog.h"
#include "tools/tool.h"

static const char push_usage[] =
	"Usage: agstore [--store DIR] [--json] push URL [--generation N] [--ca-file F]\n"
	"         [--cert F --key F] [--token-file F] [--insecure-http] [--jobs N]\n"
	"         [--timeout SECONDS] [--chunk-size BYTES]\n"
	"Upload generation N (default: the current one) to the registry at URL\n"
	"(https://host[:port]): every model's manifest, config and layers under\n"
	"agfs/models/<host>/<namespace>/<model>:<tag>, and the generation's index\n"
	"as agfs/catalog:gen-N and :latest.  Blobs the registry has are not sent\n"
	"again; uploads go in chunks (default 16 MiB, one PATCH each) and resume\n"
	"where the registry says they stand after a dropped connection.\n";

enum {
	OPT_GEN = OPT_FIRST_CMD,
	OPT_CA,
	OPT_CERT,
	OPT_KEY,
	OPT_TOKEN,
	OPT_INSECURE,
	OPT_JOBS,
	OPT_TIMEOUT,
	OPT_CHUNK,
};

struct item {
	const char *repo;
	ag_digest digest;
	uint64_t size;
	bool done; /* in the registry under repo (for cross-repository mounts) */
};

struct push {
	struct tool *t;
	ag_store *s;
	const char *url;
	const char *gen_arg;
	struct oci_opts o;
	unsigned jobs;
	struct item *items;
	size_t nitems, next;
	pthread_mutex_t mu;
	uint64_t uploaded, present, bytes, requests, mounted;
	uint64_t manifests_put, manifests_same;
	int err;
	char why[1024];
};

static int push_opt(struct tool *t, int c, const char *arg, void *arg2)
{
	struct push *p = arg2;
	uint64_t v;

	switch (c) {
	case OPT_GEN:
		p->gen_arg = arg;
		return -1;
	case OPT_CA:
		p->o.ca_file = arg;
		return -1;
	case OPT_CERT:
		p->o.cert = arg;
		return -1;
	case OPT_KEY:
		p->o.key = arg;
		return -1;
	case OPT_TOKEN:
		p->o.token_file = arg;
		return -1;
	case OPT_INSECURE:
		p->o.insecure_http = true;
		return -1;
	case OPT_CHUNK:
		if (parse_u64(arg, 4096, 1ull << 30, &v) < 0)
			return tool_fail(t, EX_AG_USAGE,
					 "--chunk-size %s is not a byte count from 4096 to 1 GiB",
					 arg);
		p->o.chunk = v;
		return -1;
	case OPT_JOBS:
	case OPT_TIMEOUT:
		if (parse_u64(arg, 1, c == OPT_JOBS ? 64 : 86400, &v) < 0)
			return tool_fail(t, EX_AG_USAGE, "--%s %s is not a number in range",
					 c == OPT_JOBS ? "jobs" : "timeout", arg);
		if (c == OPT_JOBS)
			p->jobs = (unsigned)v;
		else
			p->o.timeout = (unsigned)v;
		return -1;
	default:
		return EX_AG_USAGE;
	}
}

static void set_err(struct push *p, int r, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(struct push *p, int r, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&p->mu);
	if (!p->err) {
		p->err = r;
		va_start(ap, fmt);
		vsnprintf(p->why, sizeof(p->why), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&p->mu);
}

static ssize_t blob_source(void *arg, uint64_t off, void *buf, size_t len)
{
	return ag_blob_pread(arg, buf, len, off, NULL);
}

static ssize_t buf_source(void *arg, uint64_t off, void *buf, size_t len)
{
	const char *s = arg;
	size_t n = strlen(s);

	if (off >= n)
		return 0;
	if (len > n - off)
		len = n - off;
	memcpy(buf, s + off, len);
	return (ssize_t)len;
}

/* Another repository the registry already has this blob in (NULL: none). */
static const char *mount_from(struct push *p, const struct item *it)
{
	const char *from = NULL;

	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; !from && i < p->nitems; i++)
		if (p->items[i].done && &p->items[i] != it &&
		    ag_digest_eq(&p->items[i].digest, &it->digest))
			from = p->items[i].repo;
	pthread_mutex_unlock(&p->mu);
	return from;
}

static void mark_done(struct push *p, struct item *it)
{
	pthread_mutex_lock(&p->mu);
	it->done = true;
	pthread_mutex_unlock(&p->mu);
}

static int push_one(struct push *p, oci *c, struct item *it)
{
	char dig[80];
	_cleanup_blob_ ag_blob *b = NULL;
	bool exists, mounted = false;
	int r;

	fmt_digest(&it->digest, dig, sizeof(dig));
	if ((r = oci_blob_head(c, it->repo, dig, &exists, NULL)) < 0) {
		set_err(p, r, "%s", oci_error(c));
		return r;
	}
	if (exists) {
		pthread_mutex_lock(&p->mu);
		p->present++;
		pthread_mutex_unlock(&p->mu);
		mark_done(p, it);
		return 0;
	}
	if ((r = ag_blob_open(p->s, &it->digest, AG_BLOB_STREAM, &b)) < 0) {
		set_err(p, r, "blob %s of %s cannot be read (%s)", dig, p->t->store_path,
			ag_strerror(r));
		return r;
	}
	if ((r = oci_blob_upload_from(c, it->repo, dig, it->size, blob_source, b, mount_from(p, it),
				      &mounted)) < 0) {
		set_err(p, r, "uploading %s to %s failed: %s", dig, it->repo, oci_error(c));
		return r;
	}
	pthread_mutex_lock(&p->mu);
	if (mounted) {
		p->mounted++;
	} else {
		p->uploaded++;
		p->bytes += it->size;
	}
	pthread_mutex_unlock(&p->mu);
	mark_done(p, it);
	return 0;
}

static void *worker(void *arg)
{
	struct push *p = arg;
	oci *c = NULL;
	int r = oci_open(p->url, &p->o, &c);

	if (r < 0)
		set_err(p, r, "%s", c ? oci_error(c) : "out of memory");
	while (r == 0) {
		pthread_mutex_lock(&p->mu);
		size_t i = p->err ? p->nitems : p->next++;
		pthread_mutex_unlock(&p->mu);
		if (i >= p->nitems)
			break;
		r = push_one(p, c, &p->items[i]);
	}
	if (c) {
		pthread_mutex_lock(&p->mu);
		p->requests += oci_stats(c)->requests;
		pthread_mutex_unlock(&p->mu);
	}
	oci_close(c);
	return NULL;
}

static int run_workers(struct push *p)
{
	pthread_t th[64];
	unsigned n = p->jobs < p->nitems ? p->jobs : (unsigned)p->nitems, started = 0;

	for (unsigned i = 0; i < n; i++)
		if (pthread_create(&th[i], NULL, worker, p) == 0)
			started++;
	if (started == 0 && p->nitems)
		worker(p);
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	return p->err;
}

static int add_item(struct push *p, const char *repo, const ag_digest *d, uint64_t size)
{
	struct item *ni;

	for (size_t i = 0; i < p->nitems; i++)
		if (strcmp(p->items[i].repo, repo) == 0 && ag_digest_eq(&p->items[i].digest, d))
			return 0;
	if (!(ni = realloc(p->items, (p->nitems + 1) * sizeof(*ni))))
		return -ENOMEM;
	p->items = ni;
	p->items[p->nitems++] = (struct item){.repo = repo, .digest = *d, .size = size};
	return 0;
}

/* The stored bytes of a blob, verified (manifests, small). */
static int push_read_blob(ag_store *s, const ag_digest *d, uint64_t max, char **out, size_t *len)
{
	_cleanup_blob_ ag_blob *b = NULL;
	_cleanup_free_ char *buf = NULL;
	uint64_t size;
	ssize_t n;
	int r;

	if ((r = ag_blob_open(s, d, 0, &b)) < 0)
		return r;
	size = ag_blob_get_info(b)->size;
	if (size > max)
		return -EFBIG;
	if (!(buf = malloc(size + 1)))
		return -ENOMEM;
	if ((n = ag_blob_pread(b, buf, size, 0, NULL)) < 0)
		return (int)n;
	if ((uint64_t)n != size)
		return -AG_ECORRUPT;
	buf[size] = 0;
	*len = size;
	*out = TAKE_PTR(buf);
	return 0;
}

/* PUT ref unless it already holds exactly these bytes. */
static int put_manifest(struct push *p, oci *c, const char *repo, const char *ref, const char *body,
			size_t len, const char *mt)
{
	_cleanup_free_ char *old = NULL, *oldmt = NULL;
	size_t oldlen = 0;
	int r = oci_manifest_get(c, repo, ref, mt, &old, &oldlen, &oldmt);

	if (r == 0 && oldlen == len && memcmp(old, body, len) == 0) {
		p->manifests_same++;
		return 0;
	}
	if (r < 0 && r != -ENOENT) {
		set_err(p, r, "%s", oci_error(c));
		return r;
	}
	if ((r = oci_manifest_put(c, repo, ref, body, len, mt)) < 0) {
		set_err(p, r, "%s", oci_error(c));
		return r;
	}
	p->manifests_put++;
	return 0;
}

static char *manifest_media_type(const char *body, size_t len)
{
	json_t *j = ag_json_loadb(body, len, 0, NULL);
	const char *mt = json_string_value(json_object_get(j, "mediaType"));
	char *out = strdup(mt ? mt : OCI_DOCKER_MANIFEST);

	json_decref(j);
	return out;
}

static int push_manifests(struct push *p, oci *c, const ag_gen *g, char **repos, char **tags)
{
	for (size_t i = 0; i < g->nmodels; i++) {
		_cleanup_free_ char *body = NULL, *mt = NULL;
		size_t len = 0;
		int r = push_read_blob(p->s, &g->models[i].manifest, OCI_MANIFEST_MAX, &body, &len);
		if (r < 0) {
			set_err(p, r, "the manifest of %s cannot be read (%s)", g->models[i].name,
				ag_strerror(r));
			return r;
		}
		if (!(mt = manifest_media_type(body, len)))
			return -ENOMEM;
		if ((r = put_manifest(p, c, repos[i], tags[i], body, len, mt)) < 0)
			return r;
	}
	return 0;
}

/* Uploads buf as a blob of the index repository unless it is there. */
static int put_small_blob(struct push *p, oci *c, const char *buf, size_t len, char dig[80])
{
	ag_digest d;
	bool exists;
	int r;

	ag_sha256(buf, len, &d);
	fmt_digest(&d, dig, 80);
	if ((r = oci_blob_head(c, OCI_INDEX_REPO, dig, &exists, NULL)) < 0)
		return r;
	if (exists) {
		p->present++;
		return 0;
	}
	if ((r = oci_blob_upload(c, OCI_INDEX_REPO, dig, len, buf_source, (void *)buf)) < 0)
		return r;
	p->uploaded++;
	p->bytes += len;
	return 0;
}

static int add_layer(json_t *layers, const char *mt, const char *dig, uint64_t size,
		     const char *title)
{
	json_t *l = json_pack("{s:s, s:s, s:I}", "mediaType", mt, "digest", dig, "size",
			      (json_int_t)size);

	if (l && title)
		json_object_set_new(l, "annotations", json_pack("{s:s}", OCI_TITLE, title));
	return l ? json_array_append_new(layers, l) : -1;
}

/* Format 2: the catalog, its signature and the bundle's files as layers
 * (the bundle files' blobs went up with the workers). */
static int catalog_layers(struct push *p, oci *c, const ag_gen *g, json_t *layers)
{
	_cleanup_free_ char *cat = NULL, *asc = NULL;
	size_t clen = 0, alen = 0;
	char dig[80];
	ag_digest cd;
	int r = ag_gen_catalog(p->s, g->id, &cd, &cat, &clen);

	if (r == -ENOENT)
		return 0;
	if (r < 0 || (r = put_small_blob(p, c, cat, clen, dig)) < 0 ||
	    add_layer(layers, OCI_CATALOG_TYPE, dig, clen, NULL) < 0)
		return r < 0 ? r : -ENOMEM;
	r = ag_gen_signature(p->s, g->id, &asc, &alen);
	if (r == 0 && ((r = put_small_blob(p, c, asc, alen, dig)) < 0 ||
		       add_layer(layers, OCI_SIGNATURE_TYPE, dig, alen, NULL) < 0))
		return r < 0 ? r : -ENOMEM;
	if (r < 0 && r != -ENOENT)
		return r;
	for (size_t i = 0; i < g->nbundle_files; i++) {
		ag_blob_info bi;
		if ((r = ag_blob_lookup(p->s, &g->bundle_files[i].digest, &bi)) < 0)
			return r;
		fmt_digest(&bi.digest, dig, sizeof(dig));
		if (add_layer(layers, OCI_BUNDLE_FILE_TYPE, dig, bi.size, g->bundle_files[i].name) <
		    0)
			return -ENOMEM;
	}
	return 0;
}

/* The index artifact: config = the index JSON; layers: the catalog, its
 * signature and the bundle's files when the store has them (format 2). */
static int push_index(struct push *p, oci *c, const ag_gen *g)
{
	_cleanup_free_ char *idx = NULL, *man = NULL;
	_cleanup_json_ json_t *doc = NULL, *layers = json_array();
	char dig[80], tag[40];
	int r;

	if ((r = oci_index_encode(g, &idx)) < 0) {
		set_err(p, r, "the index of generation %" PRIu64 " cannot be made (%s)", g->id,
			strerror(-r));
		return r;
	}
	if ((r = put_small_blob(p, c, idx, strlen(idx), dig)) < 0) {
		set_err(p, r, "%s", oci_error(c));
		return r;
	}
	if (!layers || (r = catalog_layers(p, c, g, layers)) < 0) {
		set_err(p, r, "the catalog of generation %" PRIu64 " cannot be pushed (%s)", g->id,
			oci_error(c)[0] ? oci_error(c) : ag_strerror(r));
		return r;
	}
	doc = json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:O}", "schemaVersion", 2, "mediaType",
			OCI_IMAGE_MANIFEST, "config", "mediaType", OCI_INDEX_TYPE, "digest", dig,
			"size", (json_int_t)strlen(idx), "layers", layers);
	if (!doc || !(man = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS)))
		return -ENOMEM;
	snprintf(tag, sizeof(tag), "gen-%" PRIu64, g->id);
	if ((r = put_manifest(p, c, OCI_INDEX_REPO, tag, man, strlen(man), OCI_IMAGE_MANIFEST)) < 0)
		return r;
	return put_manifest(p, c, OCI_INDEX_REPO, "latest", man, strlen(man), OCI_IMAGE_MANIFEST);
}

static int collect(struct push *p, const ag_gen *g, char **repos, char **tags)
{
	int r;

	for (size_t i = 0; i < g->nmodels; i++) {
		const ag_model *m = &g->models[i];
		if ((r = oci_model_ref(m->name, &repos[i], &tags[i])) < 0)
			return tool_fail_err(p->t, r, "model %s has no repository name", m->name);
		if ((r = add_item(p, repos[i], &m->config.digest, m->config.size)) < 0)
			return tool_fail_err(p->t, r, "out of memory");
		for (size_t j = 0; j < m->nlayers; j++)
			if ((r = add_item(p, repos[i], &m->layers[j].digest, m->layers[j].size)) <
			    0)
				return tool_fail_err(p->t, r, "out of memory");
	}
	for (size_t i = 0; i < g->nbundle_files; i++) { /* the bundle's own files (format 2) */
		ag_blob_info bi;
		if ((r = ag_blob_lookup(p->s, &g->bundle_files[i].digest, &bi)) < 0 ||
		    (r = add_item(p, OCI_INDEX_REPO, &bi.digest, bi.size)) < 0)
			return tool_fail_err(p->t, r, "bundle file %s of generation %" PRIu64,
					     g->bundle_files[i].name, g->id);
	}
	return EX_AG_OK;
}

static int report(struct push *p, const ag_gen *g)
{
	json_t *f = json_pack(
		"{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "url", p->url, "generation",
		(json_int_t)g->id, "models", (json_int_t)g->nmodels, "blobs_uploaded",
		(json_int_t)p->uploaded, "blobs_mounted", (json_int_t)p->mounted, "blobs_present",
		(json_int_t)p->present, "bytes_uploaded", (json_int_t)p->bytes, "manifests_written",
		(json_int_t)p->manifests_put, "manifests_unchanged", (json_int_t)p->manifests_same);

	if (!f)
		return tool_fail(p->t, EX_AG_IO, "out of memory");
	tool_audit(p->t, p->s, "REGISTRY_PUSH", json_incref(f));
	if (p->t->json)
		return out_json(f) < 0 ? EX_AG_IO : EX_AG_OK;
	printf("pushed generation %" PRIu64 " to %s: %zu models, %" PRIu64
	       " blobs uploaded (%" PRIu64 " bytes), %" PRIu64
	       " linked from another repository, %" PRIu64 " already there, %" PRIu64
	       " manifests written, %" PRIu64 " unchanged\n",
	       g->id, p->url, g->nmodels, p->uploaded, p->bytes, p->mounted, p->present,
	       p->manifests_put, p->manifests_same);
	json_decref(f);
	return EX_AG_OK;
}

static int push_gen(struct push *p, const ag_gen *g)
{
	_cleanup_free_ char **repos = calloc(g->nmodels + 1, sizeof(char *));
	_cleanup_free_ char **tags = calloc(g->nmodels + 1, sizeof(char *));
	oci *c = NULL;
	int r;

	if (!repos || !tags)
		return tool_fail(p->t, EX_AG_IO, "out of memory");
	r = collect(p, g, repos, tags);
	if (r == EX_AG_OK && (r = oci_open(p->url, &p->o, &c)) < 0)
		r = tool_fail(p->t, EX_AG_USAGE, "%s", c ? oci_error(c) : "out of memory");
	else if (r == EX_AG_OK && (r = oci_ping(c)) < 0)
		r = tool_fail(p->t, tool_exit_code(r), "the registry %s does not answer: %s",
			      p->url, oci_error(c));
	else if (r == EX_AG_OK && (run_workers(p) < 0 || push_manifests(p, c, g, repos, tags) < 0 ||
				   push_index(p, c, g) < 0))
		r = tool_fail(p->t,
			      p->err == -AG_ECORRUPT || p->err == -EBADMSG ? EX_AG_PROBLEM
									   : EX_AG_IO,
			      "push to %s failed: %s", p->url, p->why);
	else if (r == EX_AG_OK)
		r = report(p, g);
	for (size_t i = 0; i < g->nmodels; i++)
		free(repos[i]), free(tags[i]);
	oci_close(c);
	return r;
}

int cmd_push(struct tool *t, int argc, char **argv)
{
	static const struct option opts[] = {TOOL_COMMON_OPTIONS,
					     {"generation", required_argument, NULL, OPT_GEN},
					     {"ca-file", required_argument, NULL, OPT_CA},
					     {"cert", required_argument, NULL, OPT_CERT},
					     {"key", required_argument, NULL, OPT_KEY},
					     {"token-file", required_argument, NULL, OPT_TOKEN},
					     {"insecure-http", no_argument, NULL, OPT_INSECURE},
					     {"jobs", required_argument, NULL, OPT_JOBS},
					     {"timeout", required_argument, NULL, OPT_TIMEOUT},
					     {"chunk-size", required_argument, NULL, OPT_CHUNK},
					     {NULL, 0, NULL, 0}};
	struct push p = {.t = t, .jobs = 4, .gen_arg = "current"};
	_cleanup_gen_ ag_gen *g = NULL;
	int r;

	pthread_mutex_init(&p.mu, NULL);
	r = tool_getopt(t, argc, argv, opts, push_usage, push_opt, &p);
	if (r >= 0)
		return r;
	if (argc != optind + 1)
		return tool_fail(t, EX_AG_USAGE, "push takes one URL (see agstore push --help)");
	p.url = argv[optind];
	if ((r = tool_open(t, AG_RDONLY, &p.s)) > 0)
		return r;
	r = gen_arg_load(t, p.s, p.gen_arg, &g);
	if (r == EX_AG_OK)
		r = push_gen(&p, g);
	free(p.items);
	ag_store_close(p.s);
	pthread_mutex_destroy(&p.mu);
	return r;
}
