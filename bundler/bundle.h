/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agbundle internals: the low side's bundle, built exactly as the site's
 * shell procedure lays it out (README "Low side", bundle-format.md), but in
 * one read of every input, reproducibly, and optionally as a delta.
 *
 *   scan.c     the inputs: the Ollama models tree walked and checked (only
 *              regular files, every blob a manifest names present), the
 *              binaries, images and packages, the member table in tar order
 *   delta.c    --since: which blobs a previous bundle already carried
 *   tarout.c   the tar stream (GNU format, fixed owners/modes/mtimes),
 *              compressed in parallel blocks, written to a temporary file
 *   create.c   the create command: members streamed and hashed, the
 *              signatures/ lists, bundle.json, its signature, the rename
 *   sign.c     gpgme: an armored detached signature with one secret key
 *   verify.c   the verify command: agimport's verification without a store
 *
 * Functions return 0 or a negative errno / -AG_E*; what refused the input is
 * recorded in a struct imp_error (the importer's), so main.c reports one
 * sentence naming the file and the reason.
 */
#ifndef AGFS_BUNDLE_H
#define AGFS_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "importer/import.h"

#define BND_MAX_FILES 1000000 /* files under the models directory */

/* One member of the bundle, in the order it is written. */
struct bnd_member {
	char *path;	  /* member path, no trailing "/" */
	bool is_dir;	  /* a directory entry ("path/") */
	mode_t mode;	  /* 0755 for directories and binaries, else 0644 */
	int dirfd;	  /* the directory src is relative to (not owned), or -1 */
	char *src;	  /* the input file (relative to dirfd, else as given) */
	char *data;	  /* generated or pre-read bytes (manifests, lists) */
	uint64_t size;	  /* from the scan; the file must still have it */
	ag_digest digest; /* computed while writing */
	bool hashed;
	bool omitted;	      /* a delta leaves this blob out */
	bool has_name_digest; /* a blob: its name gives its digest */
	ag_digest name_digest;
};

struct bnd_set {
	struct bnd_member *m;
	size_t n, cap;
};
struct bnd_member *bnd_add(struct bnd_set *s, const char *path);
void bnd_set_free(struct bnd_set *s);

struct bnd_delta;

/* The inputs of "agbundle create". */
struct bnd_inputs {
	const char *models;
	char **binaries, **images, **packages;
	size_t nbinaries, nimages, npackages;
	const char *since; /* a previous bundle.json, or NULL */
};

/*
 * Walks everything and fills set in the bundle's member order: binaries/,
 * images/, models/ (the tree as models/models/...), packages/; signatures/
 * and manifest/ are added later by create.c.  Refuses (cls IMP_REFUSED)
 * symbolic links, FIFOs and other non-regular files, unreadable files, a
 * models directory without manifests/ and blobs/, a manifest naming a blob
 * that is missing or of another size.  models_dirfd is kept open for the
 * streaming pass (caller closes).  delta may be NULL.
 */
int bnd_scan(const struct bnd_inputs *in, struct bnd_delta *delta, struct bnd_set *set,
	     int *models_dirfd, struct imp_error *e);

/* ---------- delta.c ---------- */

/* Reads the previous bundle.json; refuses one without "files". */
int bnd_delta_load(const char *path, struct bnd_delta **out, struct imp_error *e);
/* Whether the previous bundle carried (or itself omitted) the blob d. */
bool bnd_delta_has(const struct bnd_delta *d, const ag_digest *dg);
/* The "delta" object for bundle.json; omitted: the blob members left out. */
json_t *bnd_delta_json(const struct bnd_delta *d, const struct bnd_set *set);
void bnd_delta_free(struct bnd_delta *d);

/* ---------- tarout.c ---------- */

enum bnd_comp { BND_GZIP, BND_ZSTD };
struct bnd_out;
/* A temporary file in dir (".<final>.XXXXXX") receiving the compressed tar;
 * nthreads compressors (0: one per online CPU). */
int bnd_out_open(int dirfd, const char *final, enum bnd_comp comp, unsigned nthreads,
		 struct bnd_out **out);
/* A member header; size for a regular file, mtime for every member. */
int bnd_out_header(struct bnd_out *o, const struct bnd_member *m, int64_t mtime);
int bnd_out_data(struct bnd_out *o, const void *buf, size_t len);
/* Ends the archive and fsyncs; *digest is the SHA-256 of the file's bytes. */
int bnd_out_finish(struct bnd_out *o, ag_digest *digest, uint64_t *bytes);
/* Renames the temporary file to its final name (refusing to replace an
 * existing file unless replace); -EEXIST. */
int bnd_out_commit(struct bnd_out *o, bool replace);
/* Removes the temporary file if not committed; accepts NULL. */
void bnd_out_free(struct bnd_out *o);
/* Removes ".airgap-bundle-*" temporaries no live run holds (locked); the
 * number removed. */
int bnd_remove_stale(int dirfd);
/* Writes len bytes to dir/final through a temporary file and a rename. */
int bnd_write_file_atomic(int dirfd, const char *final, const void *buf, size_t len, bool replace);

/* Signing bundle.json: sig/sig.h (sig_signer_open, sig_sign). */

/* ---------- create.c, verify.c ---------- */

struct bnd_create_opts {
	struct bnd_inputs in;
	const char *sign_key;
	const char *homedir;
	const char *label;
	const char *creator;
	const char *host;
	const char *outdir;
	enum bnd_comp comp;
	unsigned threads;
	bool force;
	bool json;
	int64_t mtime; /* SOURCE_DATE_EPOCH or the label's midnight UTC */
};
/* Builds the bundle; *summary (for --json and the report line) on success. */
int bnd_create(const struct bnd_create_opts *o, json_t **summary, struct imp_error *e);

struct bnd_verify_opts {
	const char *bundle;
	const char *keyring;
	char **signers;
	size_t nsigners;
	bool has_sha256;
	ag_digest sha256;
};
int bnd_verify(const struct bnd_verify_opts *o, json_t **report, struct imp_error *e);

/* Label YYYYMMDD (a real date) into its midnight UTC; -EINVAL. */
int bnd_label_time(const char *label, int64_t *t);
/* "<hex>" or "<hex>  name" lines of a sha256sum file; prefers the line
 * naming base.  -ENOENT when none parses. */
int bnd_read_sha256_file(const char *file, const char *base, ag_digest *out);

#endif
