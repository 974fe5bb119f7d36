/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A client of the OCI distribution API (the one home of libcurl, DESIGN.md
 * "Where the next code goes"): ping, blobs by digest (HEAD, GET with Range
 * resume, chunked resumable uploads), manifests by tag or digest.  Used by
 * `agstore push` and `agimport --registry`.
 *
 * One oci handle is one connection and is used by one thread at a time;
 * parallel transfers open one handle each (oci_open again).  Functions
 * return 0 or -errno; the sentence saying what went wrong is oci_error().
 * Errors: -ENOENT (404 / blob or manifest unknown), -ETIMEDOUT, -ECONNREFUSED
 * or -EHOSTUNREACH (no connection), -EACCES (401/403), -EPROTO (a registry
 * answer that breaks the protocol or a TLS failure), -EIO (5xx after the
 * retries), or what a callback returned.
 */
#ifndef AGFS_OCI_H
#define AGFS_OCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store/store.h"

#define OCI_MANIFEST_MAX    (4u << 20) /* the distribution spec's manifest limit */
#define OCI_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define OCI_IMAGE_MANIFEST  "application/vnd.oci.image.manifest.v1+json"

struct oci_opts {
	const char *ca_file;	/* PEM CA bundle (default: the system's) */
	const char *cert, *key; /* client certificate and key (PEM) */
	const char *token_file; /* "user:password" -> basic, else a bearer token */
	bool insecure_http;	/* allow http:// URLs */
	unsigned timeout;	/* seconds: connect, and no byte for this long (default 30) */
	unsigned retries;	/* attempts after the first (default 4), with back-off */
	uint64_t chunk;		/* upload chunk size (default 16 MiB) */
};

typedef struct oci oci;

/* url: "https://host[:port]" (a trailing "/" is ignored).  Checks the URL and
 * the options; does not connect (oci_ping does). */
int oci_open(const char *url, const struct oci_opts *o, oci **out);
void oci_close(oci *c); /* accepts NULL */
const char *oci_error(const oci *c);
const char *oci_url(const oci *c);

/* Statistics of the handle: requests made, and blob bytes sent and received. */
struct oci_stats {
	uint64_t requests, sent, received, retries;
};
const struct oci_stats *oci_stats(const oci *c);

/* GET /v2/: the registry answers as a distribution registry. */
int oci_ping(oci *c);

/* digest: "sha256:<64 hex>".  *size: the registry's Content-Length. */
int oci_blob_head(oci *c, const char *repo, const char *digest, bool *exists, uint64_t *size);

/* Receives the blob's bytes from offset on, in order; on a dropped connection
 * it asks again with a Range from where it got to (the sink never sees a
 * byte twice).  A non-zero return from sink stops the transfer and is
 * returned.  *got: bytes delivered to sink. */
typedef int (*oci_sink)(void *arg, const void *buf, size_t len);
int oci_blob_get(oci *c, const char *repo, const char *digest, uint64_t offset, oci_sink sink,
		 void *arg, uint64_t *got);

/* Uploads size bytes read by src (at a given offset: it may be asked again
 * for a range after a failed chunk) as the blob digest: POST, one PATCH per
 * chunk, PUT ?digest=.  After a failed chunk the upload's status (GET)
 * says where to go on; Docker Distribution keeps that state in the signed
 * _state of its last answer, so when a chunk broke off or its answer was
 * lost it answers 404, and the upload starts again in a new session.
 * Retries are bounded per stall (reset only by progress past the furthest
 * offset reached); a PUT whose answer was lost is checked with a HEAD. */
typedef ssize_t (*oci_source)(void *arg, uint64_t off, void *buf, size_t len);
int oci_blob_upload(oci *c, const char *repo, const char *digest, uint64_t size, oci_source src,
		    void *arg);
/* The same, first asking the registry to link the blob from repository from
 * (POST ?mount=&from=, no bytes sent: *mounted set); a registry that will
 * not gets the bytes. */
int oci_blob_upload_from(oci *c, const char *repo, const char *digest, uint64_t size,
			 oci_source src, void *arg, const char *from, bool *mounted);

/* ref: a tag or a digest.  *body is NUL-terminated (caller frees); the media
 * type (caller frees) is the Content-Type the registry gave. */
int oci_manifest_get(oci *c, const char *repo, const char *ref, const char *accept, char **body,
		     size_t *len, char **media_type);
int oci_manifest_put(oci *c, const char *repo, const char *ref, const char *body, size_t len,
		     const char *media_type);

/*
 * The repository a model is pushed to.  path: the store's model path
 * "host/namespace/model/tag".  Repository: "agfs/models/<host>/<namespace>/<model>",
 * each component kept when it already matches the distribution spec's grammar
 * ([a-z0-9]+ separated by one '.', '_', "__" or '-'s), else lower-cased, every
 * run of other characters turned into '-', and "-x" plus the first 8 hex of
 * the component's SHA-256 appended (so "Llama" and "llama" stay apart).
 * Tag: the model's tag when it matches [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}, else
 * the same treatment.  Caller frees both.
 */
int oci_model_ref(const char *path, char **repo, char **tag);

/* Repository name check (the distribution spec's grammar). */
bool oci_repo_valid(const char *repo);

/*
 * The generation index: what `agstore push` puts in OCI_INDEX_REPO (tagged
 * gen-N and latest) as the config blob of an OCI image manifest with no
 * layers, and what `agimport --registry` starts from.  Canonical JSON
 * (jansson, keys sorted, compact):
 *   {"agfs_index":1,"created":<unix s>,"generation":N,"label":"..."|null,
 *    "models":{"<host/namespace/model/tag>":{"added":<unix s>,
 *       "manifest":"sha256:<hex>","repository":"agfs/models/...","size":N},...},
 *    "signer":"<fpr>"|null,"source":"..."|null,"source_sha256":"<hex>"|null}
 */
/* Layers of the index artifact (store format 2): the generation's catalog
 * bytes verbatim, the detached signature over them, and the source bundle's
 * own files the catalog lists (annotation org.opencontainers.image.title =
 * the path in the bundle). */
#define OCI_CATALOG_TYPE     "application/vnd.agfs.catalog.v1+json"
#define OCI_SIGNATURE_TYPE   "application/pgp-signature"
#define OCI_BUNDLE_FILE_TYPE "application/vnd.agfs.bundle-file.v1"
#define OCI_TITLE	     "org.opencontainers.image.title"
#define OCI_INDEX_REPO	     "agfs/catalog"
#define OCI_INDEX_TYPE	     "application/vnd.agfs.index.v1+json"
#define OCI_INDEX_MAX	     (64u << 20)
#define OCI_INDEX_MAX_MODELS 100000u

struct oci_index_model {
	char *name; /* store path form */
	char *repo;
	char *tag;
	ag_digest manifest;
	uint64_t size;
	int64_t added;
};
struct oci_index {
	uint64_t generation;
	int64_t created;
	char *label, *signer, *source;
	bool has_source_sha256;
	ag_digest source_sha256;
	size_t nmodels;
	struct oci_index_model *models;
};
int oci_index_encode(const ag_gen *g, char **out);
/* Strict: every model's repository must be the one oci_model_ref() gives its
 * name, names must parse as model paths; -EBADMSG otherwise (*why set). */
int oci_index_parse(const char *buf, size_t len, struct oci_index *out, const char **why);
void oci_index_clear(struct oci_index *x);

#endif
