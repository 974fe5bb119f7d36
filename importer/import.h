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

#include "sig/sig.h"
#include "store/store.h"

/* Hard limits on untrusted input. */
#define IMP_MAX_PATH	    4096	 /* bytes of a member path */
#define IMP_MAX_DEPTH	    64		 /* components of a member path */
#define IMP_MAX_MEMBERS	    1000000	 /* members of one source */
#define IMP_MAX_SMALL	    (1u << 20)	 /* metadata files kept in memory */
#define IMP_MAX_BUNDLE_JSON (64u << 20)	 /* bundle.json (its "files" may list 10^6 paths) */
#define IMP_MAX_META	    (192u << 20) /* all metadata kept in memory */
#define IMP_MAX_PATH_BYTES  (256u << 20) /* all member paths together */
#define IMP_MAX_HOLES	    (1ull << 30) /* sparse holes of all members together */
#define IMP_SPOOL_MAX	    (1u << 20)	 /* members up to this size are small: ... */
#define IMP_PARKED_MAX                                                                     \
	(64u << 20)			/* ... staged on their own while their stages hold \
					   this much memory, then in one spool file */
#define IMP_MAX_RATIO	 256		/* member bytes per raw byte read (a bomb's ratio) ... */
#define IMP_RATIO_SLACK	 (256ull << 20) /* ... beyond this many bytes */
#define IMP_REPORT_MAX	 10000		/* members listed one by one in the report */
#define IMP_MAX_LAYERS	 4096		/* layers of one manifest */
#define IMP_MAX_LINES	 1000000	/* lines of one .sha256 list */
#define IMP_MAX_JSON_STR 4096		/* bytes of a bundle.json string */

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
/*
 * Records the first failure only and returns rc (a negative code).  An rc of
 * -ENOMEM is always IMP_IO, "out of memory", whatever cls the caller gave.
 */
int imp_fail(struct imp_error *e, int cls, int rc, const char *member, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/*
 * How a failure of class cls is reported: imp_result() gives --json's
 * "result" ("failed", "usage" or "refused"); imp_verdict() the words of the
 * message, could_not ("could not import") for IMP_IO, cannot ("cannot
 * import") for IMP_USAGE, "refused" otherwise.  Only "refused" blames the
 * source.
 */
const char *imp_result(int cls);
const char *imp_verdict(int cls, const char *could_not, const char *cannot);

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
/* A signed per-path hash: "files": {"<path>": "<hex>"} (every member file
 * but manifest/bundle.json and its .asc). */
struct imp_file {
	char *path;
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
	bool has_files;
	struct imp_file *files; /* sorted by path */
	size_t nfiles;
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
	IMP_BIND_FILES = 1 << 5,       /* its path and hash in bundle.json "files" */
};
/* What a signature binds (when the source is signed). */
#define IMP_BIND_SIGNED                                                                      \
	(IMP_BIND_SIGNATURE | IMP_BIND_ARTIFACT | IMP_BIND_MODELS_HASH | IMP_BIND_MANIFEST | \
	 IMP_BIND_FILES)

struct imp_member {
	char *path;
	uint64_t size;
	ag_digest digest;
	ag_stage *stage; /* staged bytes, own file (NULL in a dry run or when spooled) */
	bool spooled;	 /* staged bytes at spool_off in the source's spool file */
	uint64_t spool_off;
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
	bool has_spool;
	int spool_fd; /* small members' bytes, one file in the store's tmp/ */
	uint64_t spool_len;
	size_t nstages;	       /* large members staged in a file of their own (one fd each) */
	uint64_t parked_bytes; /* memory held by small members' parked stages */
	bool has_budget;       /* imp_staging_setup() ran: the three below hold */
	size_t max_stages;     /* ... at most this many */
	uint64_t staged_bytes; /* declared sizes of everything staged so far */
	uint64_t stage_avail;  /* free space at the start, less a reserve */
	uint64_t hole_bytes;   /* sparse holes read so far */
	uint64_t data_bytes;   /* member bytes (not holes) read so far */
	uint64_t path_bytes;
	bool stage_all; /* stage members outside models/ too (--artifacts-dir) */
};

struct imp_member *imp_member_add(struct imp_source *src, const char *path);
/* Sorts by path and refuses duplicates (-EEXIST, e set). */
int imp_members_seal(struct imp_source *src, struct imp_error *e);
struct imp_member *imp_member_find(struct imp_source *src, const char *path);
void imp_source_free(struct imp_source *src);
/* Whether a file at path is metadata kept in memory. */
bool imp_is_metadata(const char *path);
/* Whether a member at path may ever be published or copied, so is staged. */
bool imp_want_stage(const struct imp_source *src, const char *path);
/* Whether bytes a signature binds could be these (src signed). */
bool imp_member_signed(const struct imp_member *mb, bool signed_source);
/* A new read descriptor positioned at the member's staged bytes (spooled
 * members: the spool file at spool_off); -EINVAL if not staged. */
int imp_member_open_staged(struct imp_source *src, struct imp_member *mb, uint64_t *off);

/* ---------- reading a source (archive.c, dirsource.c, ollamadir.c) ---------- */

struct imp_progress;
struct imp_pipe;
struct imp_read {
	ag_store *store; /* NULL: hash only (dry run) */
	bool dry_run;
	struct imp_progress *progress;
	struct imp_pipe *pipe;	   /* staging thread, or NULL to stage inline */
	struct imp_smallq *smallq; /* small members' staging thread, or NULL: inline */
};

/* ---------- the staging thread (pipe.c) ---------- */

int imp_pipe_new(struct imp_pipe **out);
/* Queues bytes for ag_stage_write(st, ...); returns an earlier write's error. */
int imp_pipe_write(struct imp_pipe *p, ag_stage *st, const void *buf, size_t len);
/* Waits until everything queued is written; the first error since the last
 * flush, or 0.  Accepts NULL. */
int imp_pipe_flush(struct imp_pipe *p);
void imp_pipe_free(struct imp_pipe *p); /* accepts NULL */

/* ---------- small members' staging thread (smallq.c) ---------- */

struct imp_smallq;
int imp_smallq_new(ag_store *store, struct imp_smallq **out);
/* Stages member idx of src from buf (len bytes; buf is taken over and
 * freed): begins its stage (mb->stage) and hashes the bytes here, then the
 * thread writes them, builds the tree, ends and parks the stage.  Collects
 * the members staged so far (their digest into src); their first failure,
 * or 0.  Waits while too much is in flight. */
int imp_smallq_submit(struct imp_smallq *q, struct imp_source *src, size_t idx, char *buf,
		      size_t len, struct imp_error *e);
/* Waits for every member, collects them all, stops the thread and frees q:
 * called before anything reads a member's stage or digest.  Accepts NULL. */
int imp_smallq_finish(struct imp_smallq *q, struct imp_source *src, struct imp_error *e);

/* Reads a (compressed) tar stream from fd in one pass. */
int imp_read_archive(int fd, const struct imp_read *rd, struct imp_source *src,
		     struct imp_error *e);
/* Reads an extracted bundle directory. */
int imp_read_dir(int dirfd, const struct imp_read *rd, struct imp_source *src, struct imp_error *e);
/* Reads a plain Ollama models tree: manifests, then the blobs they name. */
int imp_read_ollama_dir(int dirfd, const struct imp_read *rd, struct imp_source *src,
			struct imp_error *e);
/* Streams one regular file's bytes from fd into a member (stage + hash);
 * size: its size when it was examined (the staging budget's charge). */
int imp_member_fill_fd(struct imp_member *mb, int fd, int64_t size, const struct imp_read *rd,
		       struct imp_source *src, struct imp_error *e);
/* Sets the staging budget (fds, free space less a reserve) and opens the
 * spool file in the store's tmp/ (an O_TMPFILE: gone with the process). */
int imp_staging_setup(struct imp_source *src, ag_store *store, struct imp_error *e);

/* ---------- progress line (progress.c) ---------- */

struct imp_progress *imp_progress_new(const char *prog, uint64_t total);
void imp_progress_add(struct imp_progress *p, uint64_t bytes);
void imp_progress_done(struct imp_progress *p);

/* ---------- signatures: sig/sig.h (struct sig_keyring, sig_verify_detached) ---------- */

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
	bool copy_unverified;
	int transfer_fd;	   /* opened before verifying; -1 without --transfer-log */
	const char *sign_key;	   /* --sign-key: sign the new generation's catalog */
	const char *sign_homedir;  /* --sign-homedir (NULL: $GNUPGHOME) */
	struct sig_signer *signer; /* opened before the source is read */
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
	char *max_version;  /* the newest bundle_version the store accepted, or NULL */
	bool downgrade;	    /* older than max_version, accepted by --allow-downgrade */
	json_t *repaired;   /* blobs whose damaged object this import replaced */
	json_t *artifacts;  /* paths copied to --artifacts-dir (verified) */
	json_t *unverified; /* paths copied to .../unverified/ (--copy-unverified) */
};

/* Verifies everything; fills res.  ks may be NULL (--no-signature). */
int imp_verify_source(struct imp_source *src, const struct imp_options *o, struct sig_keyring *ks,
		      ag_store *store, struct imp_result *res, struct imp_error *e);
/* The models part: manifests in the Ollama tree, their blobs, .sig files. */
int imp_verify_models(struct imp_source *src, struct sig_keyring *ks, ag_store *store,
		      struct imp_result *res, struct imp_error *e);
/* The blob member named by d in the Ollama tree (sha256-<hex> or sha256:<hex>). */
struct imp_member *imp_find_blob(struct imp_source *src, const ag_digest *d);
/* models_directory_hash over members under models/; sets *order. */
int imp_models_hash_check(struct imp_source *src, const ag_digest *want, const char **order);
/* Anti-rollback: <0 when version is older than current. */
int imp_label_cmp(const char *version, const char *current);
/* Whether s looks like a bundle_version (starts with a digit). */
bool imp_version_like(const char *s);
/* The newest bundle_version the store ever accepted: its meta key
 * max_bundle_version, else the newest over its generations (bundle_version
 * in the report, else a version-like label).  *out NULL when none. */
int imp_store_max_version(ag_store *store, char **out);
/* Whether buf holds an OpenPGP signature (armored or a binary packet). */
bool imp_is_pgp_signature(const char *buf, size_t len);
void imp_result_free(struct imp_result *r);

/* ---------- publishing (publish.c, artifacts.c) ---------- */

/* Publishes the objects, then commits the generation, the max_bundle_version
 * mark, the transfer line and the audit record (fields, with "generation",
 * "new_objects" and "repaired" added) as one unit.  hex: the transfer
 * line's sha256. */
int imp_publish(struct imp_source *src, const struct imp_options *o, ag_store *store,
		struct imp_result *res, json_t *fields, const char *hex, uint64_t *gen_id,
		struct imp_error *e);
/* Test-only: AGIMPORT_TEST_KILL=point kills the run at that point. */
void imp_test_kill(const char *point);
/* Copies verified non-model artifacts (and, with --copy-unverified, the
 * hash-listed ones into unverified/) into a temporary directory beside
 * dir/<label>/; *tmp (caller frees) names it.  imp_artifacts_place() renames
 * it into place once the generation is committed. */
int imp_copy_artifacts(struct imp_source *src, const struct imp_options *o, struct imp_result *res,
		       char **tmp, struct imp_error *e);
int imp_artifacts_place(const char *tmp, const char *dir, const char *label, struct imp_error *e);
/* Checks dir is a writable directory and removes temporaries of dead runs. */
int imp_artifacts_dir_check(const char *dir, struct imp_error *e);
void imp_remove_tree(const char *path);
/* Appends the site's transfer line to fd (fsynced); *old_len is the length
 * before, for imp_transfer_undo() if the commit then fails. */
int imp_transfer_log(int fd, const char *operator_name, const char *label, const char *hex,
		     off_t *old_len);
void imp_transfer_undo(int fd, off_t old_len);

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
