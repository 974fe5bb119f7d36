/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agimport internals: the pure parsers (bundle.json, .sha256 lists, Ollama
 * manifests, tar member paths), the member table a source is read into, and
 * the steps that verify and publish it.
 *
 * Every function returns 0 or a negative errno / -AG_E* code.  Functions that
 * refuse a source also record the member and a reason in an imp_error so that
 * the program can report one sentence.
 */
#ifndef AGFS_IMPORT_H
#define AGFS_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "store/store.h"

/* Hard limits on untrusted input. */
#define IMP_MAX_PATH	 4096	     /* bytes of a member path */
#define IMP_MAX_DEPTH	 64	     /* components of a member path */
#define IMP_MAX_MEMBERS	 1000000     /* members of one source */
#define IMP_MAX_SMALL	 (1u << 20)  /* metadata files kept in memory */
#define IMP_MAX_META	 (64u << 20) /* all metadata kept in memory */
#define IMP_MAX_LAYERS	 4096	     /* layers of one manifest */
#define IMP_MAX_LINES	 1000000     /* lines of one .sha256 list */
#define IMP_MAX_JSON_STR 4096	     /* bytes of a bundle.json string */

/* Exit classes, as the programs report them. */
enum imp_class {
	IMP_OK = 0,
	IMP_REFUSED = 1, /* verification failure or refused input */
	IMP_USAGE = 2,
	IMP_IO = 4,
};

/* Why a source was refused: the member (may be empty) and one clause. */
struct imp_error {
	int cls;
	char member[512];
	char reason[512];
};
/* Records the first failure only and returns rc (a negative code). */
int imp_fail(struct imp_error *e, int cls, int rc, const char *member, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* ---------- tar member paths (tarpath.c) ---------- */

/*
 * Checks a member path from an archive or directory walk and writes its
 * normal form (no leading "./", no trailing "/", no empty or "." parts) into
 * a new string.  Refuses (-EINVAL, *why set to a static clause) absolute
 * paths, "..", NUL bytes, control characters, and paths beyond the limits.
 */
int imp_tarpath_check(const char *buf, size_t len, char **norm, const char **why);

/* ---------- .sha256 lists (sha256list.c) ---------- */

struct imp_sumline {
	ag_digest digest;
	char *path; /* unescaped, as written (relative to the bundle root) */
	bool binary;
	size_t lineno;
};
struct imp_sumlist {
	struct imp_sumline *lines;
	size_t n;
};
/* Parses GNU sha256sum output (text "  " and binary " *" forms, "\"-escaped
 * names).  On a malformed line returns -EINVAL with *bad_line set (1-based). */
int imp_sumlist_parse(const char *buf, size_t len, struct imp_sumlist *out, size_t *bad_line);
void imp_sumlist_free(struct imp_sumlist *l);
/* One line as GNU sha256sum writes it in text mode, with escaping. */
char *imp_sumline_format(const ag_digest *d, const char *path);

/* ---------- bundle.json (bundle.c) ---------- */

struct imp_artifact {
	char *key;
	ag_digest digest;
};
struct imp_bundle_json {
	char *bundle_version;
	char *creator;
	char *creation_date;
	char *low_side_host;
	bool has_models_hash;
	ag_digest models_hash;
	struct imp_artifact *artifacts; /* every other entry of "artifacts" */
	size_t nartifacts;
	json_t *raw; /* the parsed document */
};
/* -EINVAL with *why (static clause) on a malformed document. */
int imp_bundle_json_parse(const char *buf, size_t len, struct imp_bundle_json *out,
			  const char **why);
void imp_bundle_json_free(struct imp_bundle_json *b);

/* ---------- Ollama manifests (manifest.c) ---------- */

/* Fills m's config and layers (m->name untouched).  -EINVAL with *why. */
int imp_manifest_parse(const char *buf, size_t len, ag_model *m, const char **why);
/* "sha256:<hex>" into a digest. */
int imp_digest_ref_parse(const char *s, ag_digest *out);

/* ---------- the member table (members.c) ---------- */

enum imp_binding {
	IMP_BIND_NONE = 0,
	IMP_BIND_SIGNATURE = 1 << 0,   /* bundle.json or a manifest .sig itself */
	IMP_BIND_ARTIFACT = 1 << 1,    /* a signed artifacts hash in bundle.json */
	IMP_BIND_MODELS_HASH = 1 << 2, /* signed models_directory_hash */
	IMP_BIND_SUMLIST = 1 << 3,     /* a line of a signatures/ .sha256 list */
	IMP_BIND_MANIFEST = 1 << 4,    /* a layer digest of a verified manifest */
};

struct imp_member {
	char *path;
	uint64_t size;
	ag_digest digest;
	ag_stage *stage; /* staged bytes (NULL in a dry run or for metadata) */
	char *data;	 /* the bytes, for small metadata files */
	unsigned bound;	 /* enum imp_binding */
	bool referenced; /* a model blob some manifest names */
	bool published;
};

struct imp_source {
	char *name; /* as given on the command line */
	struct imp_member *m;
	size_t n, cap;
	bool sorted;
	bool has_outer;
	ag_digest outer; /* SHA-256 of the raw stream */
	uint64_t raw_bytes;
	uint64_t meta_bytes;
	char *ollama_root; /* "" for --ollama-dir, else the tree inside models/ */
	json_t *skipped;   /* blobs read by name only, never imported */
	/* a delta bundle's omitted blobs (delta.c) */
	struct imp_delta *delta;
};

struct imp_member *imp_member_add(struct imp_source *src, const char *path);
/* Sorts by path and refuses duplicates (-EEXIST, e set). */
int imp_members_seal(struct imp_source *src, struct imp_error *e);
struct imp_member *imp_member_find(struct imp_source *src, const char *path);
void imp_source_free(struct imp_source *src);
/* Whether a file at path is metadata kept in memory. */
bool imp_is_metadata(const char *path);

/* ---------- reading a source (archive.c, dirsource.c, ollamadir.c) ---------- */

struct imp_progress;
struct imp_pipe;
struct imp_read {
	ag_store *store; /* NULL: hash only (dry run) */
	bool dry_run;
	struct imp_progress *progress;
	struct imp_pipe *pipe; /* staging thread, or NULL to stage inline */
};

/* ---------- the staging thread (pipe.c) ---------- */

int imp_pipe_new(struct imp_pipe **out);
/* Queues bytes for ag_stage_write(st, ...); returns an earlier write's error. */
int imp_pipe_write(struct imp_pipe *p, ag_stage *st, const void *buf, size_t len);
/* Waits until everything queued is written; the first error since the last
 * flush, or 0.  Accepts NULL. */
int imp_pipe_flush(struct imp_pipe *p);
void imp_pipe_free(struct imp_pipe *p); /* accepts NULL */

/* Reads a (compressed) tar stream from fd in one pass. */
int imp_read_archive(int fd, const struct imp_read *rd, struct imp_source *src,
		     struct imp_error *e);
/* Reads an extracted bundle directory. */
int imp_read_dir(int dirfd, const struct imp_read *rd, struct imp_source *src, struct imp_error *e);
/* Reads a plain Ollama models tree: manifests, then the blobs they name. */
int imp_read_ollama_dir(int dirfd, const struct imp_read *rd, struct imp_source *src,
			struct imp_error *e);
/* Streams one regular file's bytes from fd into a member (stage + hash). */
int imp_member_fill_fd(struct imp_member *mb, int fd, const struct imp_read *rd,
		       struct imp_source *src, struct imp_error *e);

/* ---------- progress line (progress.c) ---------- */

struct imp_progress *imp_progress_new(uint64_t total);
void imp_progress_add(struct imp_progress *p, uint64_t bytes);
void imp_progress_done(struct imp_progress *p);

/* ---------- signatures (verify.c) ---------- */

struct imp_keyring;
/* A private temporary GNUPGHOME holding only the keys from path (a key file
 * or a GnuPG home).  signers: allow-list of fingerprints (may be empty). */
int imp_keyring_open(const char *path, char *const *signers, size_t nsigners,
		     struct imp_keyring **out, char **why);
void imp_keyring_free(struct imp_keyring *k);
/* Verifies a detached signature.  Returns 0 and the signer's primary key
 * fingerprint, or -AG_EDIGEST (bad, unknown key, expired, revoked, not
 * allowed) with *why. */
int imp_verify_detached(struct imp_keyring *k, const char *data, size_t len, const char *sig,
			size_t siglen, char **fpr, char **why);

/* ---------- verification (check.c, models.c) ---------- */

struct imp_options {
	const char *store_path;
	const char *keyring;
	char **signers;
	size_t nsigners;
	bool has_sha256;
	ag_digest sha256;
	const char *label;
	bool replace;
	bool allow_downgrade;
	const char *artifacts_dir;
	const char *transfer_log;
	const char *operator_name;
	bool dry_run;
	bool json;
	bool no_signature;
	bool ollama_dir;
};

struct imp_model {
	ag_model model;
	struct imp_member *manifest;
	char *sig_status; /* "verified", "absent", ... */
};

struct imp_result {
	struct imp_bundle_json bundle;
	bool has_bundle;
	bool require_manifest_sig; /* --ollama-dir with --keyring */
	char *signer;
	char *label;
	struct imp_model *models;
	size_t nmodels;
	json_t *report;
};

/* Verifies everything; fills res.  ks may be NULL (--no-signature). */
int imp_verify_source(struct imp_source *src, const struct imp_options *o, struct imp_keyring *ks,
		      ag_store *store, struct imp_result *res, struct imp_error *e);
/* The models part: manifests in the Ollama tree, their blobs, .sig files. */
int imp_verify_models(struct imp_source *src, struct imp_keyring *ks, ag_store *store,
		      struct imp_result *res, struct imp_error *e);
/* The blob member named by d in the Ollama tree (sha256-<hex> or sha256:<hex>). */
struct imp_member *imp_find_blob(struct imp_source *src, const ag_digest *d);
/* models_directory_hash over members under models/; sets *order. */
int imp_models_hash_check(struct imp_source *src, const ag_digest *want, const char **order);
/* Anti-rollback: <0 when version is older than current. */
int imp_label_cmp(const char *version, const char *current);
void imp_result_free(struct imp_result *r);

/* ---------- publishing (publish.c, artifacts.c) ---------- */

int imp_publish(struct imp_source *src, const struct imp_options *o, ag_store *store,
		struct imp_result *res, uint64_t *gen_id, struct imp_error *e);
/* Copies verified non-model artifacts into dir/<label>/ (a temporary
 * directory renamed into place).  *made (caller frees) names it, to be
 * removed if publishing fails later. */
int imp_copy_artifacts(struct imp_source *src, const char *dir, const char *label, char **made,
		       struct imp_error *e);
void imp_remove_tree(const char *path);
int imp_transfer_log(const char *path, const char *operator_name, const char *label,
		     const char *hex);

/* ---------- delta bundles (delta.c) ---------- */

/* bundle.json's signed "delta" (contract 7): every blob in omitted_blobs
 * must be in store, verified (its object re-hashed), or the bundle is
 * refused naming the missing ones.  After verify_bundle, before the models. */
int imp_delta_check(struct imp_source *src, ag_store *store, struct imp_result *res,
		    struct imp_error *e);
/* Whether the delta omits blob d of that size and it was found in the store. */
bool imp_delta_omits(const struct imp_source *src, const ag_digest *d, uint64_t size);
/* No store to check against (agbundle verify): omitted blobs are taken as
 * they are listed, and the report says they were not checked. */
int imp_delta_allow_storeless(struct imp_source *src);
json_t *imp_delta_report(const struct imp_source *src); /* NULL: not a delta */
void imp_delta_free(struct imp_delta *d);

#endif
