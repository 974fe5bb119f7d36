/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libagstore: an immutable, content-addressed blob store indexed by LMDB.
 *
 * On disk (format version 2; doc/store-format.md):
 *   $STORE/index/              LMDB environment
 *   $STORE/objects/sha256/ab/<hex>   blob bytes, mode 0444
 *   $STORE/tmp/                staging; garbage after a crash, removed by the next writer
 *   $STORE/audit.log           hash-chained audit journal, one JSON object per line
 *   $STORE/lock                flock()ed by every writer
 *
 * Conventions: functions return 0 (or a count) on success and a negative
 * errno or a negative AG_E* code on failure; ag_strerror() names both.
 * Library code never prints and never exits.  Every pointer returned through
 * an out parameter is owned by the caller unless said otherwise.
 */
#ifndef AGFS_STORE_H
#define AGFS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>

#include <jansson.h>

#define AG_FORMAT_VERSION 2
#define AG_DEFAULT_STORE  "/var/lib/agfs"
/* Format 2 verifies reads in fs-verity's 4 KiB blocks: every chunk_size
 * parameter must be 0 or 4096 (the block), and ag_blob_info reports 4096. */
#define AG_DEFAULT_CHUNK (4u * 1024u)
#define AG_MIN_CHUNK	 (4u * 1024u)
#define AG_MAX_CHUNK	 (4u * 1024u)
#define AG_ALIGN	 4096u /* buffers for ag_blob_read() are aligned to this */

/* Project error codes, returned negated like errno values. */
enum ag_error {
	AG_EBASE = 4200,
	AG_ENOTSTORE,  /* the directory is not an agfs store */
	AG_EFORMAT,    /* the store has a format version this build does not know */
	AG_EDIGEST,    /* bytes do not hash to the expected digest */
	AG_ECORRUPT,   /* an object or record is damaged (size, chunk hash, encoding) */
	AG_EBADNAME,   /* a model name or digest string is malformed */
	AG_ELOCKED,    /* another writer holds the store lock (AG_NOWAIT) */
	AG_ECHAIN,     /* the audit log's hash chain is broken */
	AG_EINDEX,     /* an LMDB read faulted or returned structurally invalid data */
	AG_EOLDFORMAT, /* a format-1 store: `agstore migrate` converts it */
	AG_ELAST
};
const char *ag_strerror(int err); /* err may be negative or positive */

/* ---------- digests and hashing ---------- */

typedef struct {
	uint8_t b[32];
} ag_digest;

#define AG_HEX_LEN 64
void ag_digest_hex(const ag_digest *d, char out[AG_HEX_LEN + 1]);
/* Exactly 64 hex digits (either case); -AG_EBADNAME otherwise. */
int ag_digest_parse(const char *hex, size_t len, ag_digest *out);
bool ag_digest_eq(const ag_digest *a, const ag_digest *b);

typedef struct ag_hash ag_hash; /* streaming SHA-256 (OpenSSL EVP) */
ag_hash *ag_hash_new(void);
void ag_hash_update(ag_hash *h, const void *buf, size_t len);
void ag_hash_final(ag_hash *h, ag_digest *out); /* also resets h for reuse */
void ag_hash_free(ag_hash *h);
void ag_sha256(const void *buf, size_t len, ag_digest *out);

/* ---------- the store ---------- */

typedef struct ag_store ag_store;

enum ag_open_flags {
	AG_RDONLY = 0,	   /* reader: never locks, never blocks on a writer */
	AG_WRITE = 1 << 0, /* writer: takes the store lock, cleans tmp/ */
	AG_CREATE =
		1 << 1, /* with AG_WRITE: initialise the store if the path is missing or empty */
	AG_NOWAIT =
		1 << 2, /* with AG_WRITE: fail with -AG_ELOCKED instead of waiting for the lock */
	AG_FORMAT1_OK = 1 << 3, /* with AG_WRITE: open a format-1 store (for ag_txn_migrate only) */
};

/* Creates an empty store at path (the directory may exist and be empty).
 * -EEXIST if it already is a store, -AG_ENOTSTORE if it holds something else. */
int ag_store_init(const char *path);
int ag_store_open(const char *path, unsigned flags, ag_store **out);
void ag_store_close(ag_store *s); /* accepts NULL */
const char *ag_store_path(const ag_store *s);
int ag_store_dirfd(const ag_store *s);
bool ag_store_writable(const ag_store *s);
/* Free bytes on the store's file system. */
int ag_store_free_space(const ag_store *s, uint64_t *bytes);
/* LMDB reader slots (shared by every process that has the store open) not
 * in use now: a thread pool that reads the index (fsck) sizes itself by it.
 * Each reading thread holds at most one slot at a time. */
int ag_store_readers_free(ag_store *s, unsigned *nfree);

/* ---------- blob records ---------- */

typedef struct {
	ag_digest digest;
	uint64_t size;
	uint32_t chunk_size; /* 4096: the fs-verity block */
	uint64_t nchunks;    /* ceil(size / 4096); 0 for the empty blob */
	int64_t created;     /* unix seconds of the first import */
	bool has_fsverity;   /* a format-2 record (always, once a store is format 2) */
	ag_digest fsverity;  /* fs-verity file digest (`fsverity digest` of the object) */
	ag_digest root;	     /* the hash tree's root hash */
} ag_blob_info;

/* -ENOENT if the store holds no record for the digest. */
int ag_blob_lookup(ag_store *s, const ag_digest *d, ag_blob_info *out);
/* Calls cb for every blob record, in digest order; a non-zero return from cb
 * stops the walk and is returned. */
int ag_blob_foreach(ag_store *s, int (*cb)(const ag_blob_info *bi, void *arg), void *arg);
/* For checkers: like ag_blob_foreach, but every record is checked in full
 * (its own hash too) and a damaged one does not stop the walk: cb gets
 * err < 0 (-AG_ECORRUPT) with only bi->digest set (zeros when even the key
 * is malformed), then the walk goes on. */
int ag_blob_foreach_all(ag_store *s, int (*cb)(const ag_blob_info *bi, int err, void *arg),
			void *arg);
/* Walks objects/ on disk.  d is NULL for a file whose name is not a valid
 * object name.  relpath is relative to the store root. */
int ag_object_foreach(ag_store *s,
		      int (*cb)(const char *relpath, const ag_digest *d, uint64_t size, void *arg),
		      void *arg);
/* "objects/sha256/ab/<hex>" into out (at least 90 bytes). */
void ag_object_relpath(const ag_digest *d, char *out, size_t outlen);
/* Writer only: removes the object file (not the record). -ENOENT if absent. */
int ag_object_unlink(ag_store *s, const ag_digest *d);
/* Writer only: removes a file under objects/ by relative path (for strays). */
int ag_object_unlink_path(ag_store *s, const char *relpath);

/* ---------- write transactions ---------- */

typedef struct ag_txn ag_txn;
int ag_txn_begin(ag_store *s, ag_txn **out); /* writer only: -EROFS otherwise */
int ag_txn_commit(ag_txn *t);		     /* frees t, whatever the result */
/*
 * Appends the audit record {event, operator, ...fields...} and commits t as
 * one unit: the record is appended and fdatasync'ed first (it carries
 * "index_txn", the number this commit will have), then t commits, storing
 * the record's seq in the meta key "audit_seq".  If the record cannot be
 * written, t is aborted and the error returned; if the commit fails after
 * the record was written, an INDEX_COMMIT_FAILED record follows it.  A
 * writer killed between the two steps is repaired by the next writer's
 * ag_store_open() (an INDEX_COMMIT_LOST record).  Frees t whatever the
 * result; fields may be NULL and is not stolen.
 */
int ag_txn_commit_audit(ag_txn *t, const char *event, const char *operator_name, json_t *fields);
void ag_txn_abort(ag_txn *t); /* frees t; unlinks objects this txn created */

/* ---------- staging: one pass, SHA-256 + chunk table as the bytes go by ---------- */

typedef struct ag_stage ag_stage;
/* chunk_size: a power of two in [AG_MIN_CHUNK, AG_MAX_CHUNK]; 0 = AG_DEFAULT_CHUNK. */
int ag_stage_begin(ag_store *s, uint32_t chunk_size, ag_stage **out);
int ag_stage_write(ag_stage *st, const void *buf, size_t len);
/* The three parts of ag_stage_write(), for a caller that runs them on
 * different threads (agimport's staging pipe): the bytes into the staged
 * file (large AG_ALIGN-aligned pieces are written with O_DIRECT), the whole
 * blob's SHA-256, its fs-verity tree.  Each part must be given every piece,
 * in order; different parts may run at the same time. */
enum { AG_STAGE_DATA = 1, AG_STAGE_DIGEST = 2, AG_STAGE_TREE = 4, AG_STAGE_ALL = 7 };
int ag_stage_write_parts(ag_stage *st, const void *buf, size_t len, unsigned parts);
/* Finishes hashing and makes the staged file durable (a small one with the
 * publishing transaction's syncfs, see ag_txn_commit); info->created is now. */
int ag_stage_end(ag_stage *st, ag_blob_info *info);
/* After ag_stage_end: if expected is given and differs, -AG_EDIGEST and nothing
 * is published.  Otherwise the object is linked into objects/ (an existing
 * object of the same size is deduplication), the directory is fsynced and the
 * blob record is put into t (an existing record keeps its first-import time).
 * *was_new (may be NULL) tells whether the object was new. */
int ag_stage_publish(ag_stage *st, ag_txn *t, const ag_digest *expected, bool *was_new);
/* How ag_stage_publish_ex() placed the object. */
enum ag_publish {
	AG_PUBLISH_NEW,	     /* no object of this name: linked */
	AG_PUBLISH_DEDUP,    /* an existing object hashed to the digest: kept */
	AG_PUBLISH_REPAIRED, /* an existing object (or its record) was damaged, missing
				bytes, not a regular file: replaced with the verified bytes */
};
/* Like ag_stage_publish(), but an existing object is re-hashed in whole (and
 * checked to be a regular file of the right size) before it counts as
 * deduplication; a damaged one is replaced atomically (rename over it, then
 * the directory fsynced).  how may be NULL. */
int ag_stage_publish_ex(ag_stage *st, ag_txn *t, const ag_digest *expected, enum ag_publish *how);
/* After ag_stage_end: closes the staged file's descriptor (made read-only
 * first) until it is published or freed, which find it by name, so any
 * number of staged files can wait for publishing.  What the stage still
 * holds in memory is mostly its fs-verity tree. */
int ag_stage_park(ag_stage *st);
/* After ag_stage_end: a new read-only descriptor of the staged bytes (for
 * copying verified non-model artifacts elsewhere).  Caller closes it. */
int ag_stage_open_read(ag_stage *st);
/* Removes the staged file unless it was published; accepts NULL. */
void ag_stage_free(ag_stage *st);

/* Conveniences: stage + publish + commit in a transaction of their own. */
int ag_put_fd(ag_store *s, int fd, uint32_t chunk_size, const ag_digest *expected,
	      ag_blob_info *out);
int ag_put_buf(ag_store *s, const void *buf, size_t len, uint32_t chunk_size,
	       const ag_digest *expected, ag_blob_info *out);

/* Writer, inside t: drop a blob record (gc). */
int ag_txn_blob_del(ag_txn *t, const ag_digest *d);

/* ---------- verified reads ---------- */

typedef struct ag_blob ag_blob;
enum ag_blob_flags {
	AG_BLOB_DIRECT = 1 << 0, /* read the object with O_DIRECT when the file system allows */
	AG_BLOB_STREAM =
		1 << 1, /* buffered reads, kernel read-ahead, dropped from the cache once read */
};
/* Like ag_blob_open(), but the blob's tree must end in the fs-verity file
 * digest fsverity (taken from a verified catalog) instead of the record's
 * own: when the record (root, size) does not, every read is -EBADMSG. */
int ag_blob_open_expect(ag_store *s, const ag_digest *d, const ag_digest *fsverity, unsigned flags,
			ag_blob **out);
/* Loads the record and chunk table and opens the object; checks the object's
 * size against the record (-AG_ECORRUPT) and the chunk table's shape.  Cost
 * does not depend on the blob's size beyond loading its table.  Thread-safe
 * to read from many threads at once. */
int ag_blob_open(ag_store *s, const ag_digest *d, unsigned flags, ag_blob **out);
void ag_blob_close(ag_blob *b); /* accepts NULL */
const ag_blob_info *ag_blob_get_info(const ag_blob *b);
/* Bytes of buffer ag_blob_read() needs for a read of len bytes at any offset. */
size_t ag_blob_bufsize(const ag_blob *b, size_t len);
/*
 * Verified read of [off, off+len) clipped to the blob's size.  Reads every
 * chunk the range touches into buf (AG_ALIGN-aligned, bufsize bytes, at least
 * ag_blob_bufsize(b, len)), hashes each and compares it with the chunk table
 * before anything is handed out.  On success returns the number of bytes
 * (0 at or past the end) and sets *out to the first of them inside buf.
 *
 * Errors of the verified reads (ag_blob_read, ag_blob_pread,
 * ag_blob_verify_full, ag_object_check) come in two classes:
 *   checked, and wrong: -EBADMSG (a chunk hashed differently from its table
 *     entry, *bad_chunk set, may be NULL; or a chunk-table page that does not
 *     match the hash in its record), -AG_EDIGEST (the whole blob), and
 *     -AG_ECORRUPT (size mismatch, a record that fails its own check, an
 *     object that is not a regular file: FIFO, symlink, device).
 *   could not check: anything else (-ENOMEM; -EAGAIN, LMDB's reader table is
 *     full; -EIO from the disk; -AG_EINDEX, the index faulted or is
 *     structurally damaged; ...).  Report and retry; never a verdict on the
 *     blob's bytes.
 */
ssize_t ag_blob_read(ag_blob *b, uint64_t off, size_t len, void *buf, size_t bufsize,
		     const uint8_t **out, uint64_t *bad_chunk);
/* Copying convenience around ag_blob_read(): may return fewer bytes only at EOF. */
ssize_t ag_blob_pread(ag_blob *b, void *dst, size_t len, uint64_t off, uint64_t *bad_chunk);
/* Hashes the whole object: every chunk against the table and the whole
 * against the digest.  -EBADMSG with *bad_chunk set, or -AG_EDIGEST. */
int ag_blob_verify_full(ag_blob *b, uint64_t *bad_chunk);

/* Re-hash an object file from scratch (fsck): SHA-256 and chunk table
 * compared with the record.  Returns 0, -AG_ECORRUPT (size, not a regular
 * file), -EBADMSG (a chunk, *bad_chunk set; or a table page), -AG_EDIGEST,
 * -ENOENT (object missing), or a could-not-check error (see above). */
int ag_object_check(ag_store *s, const ag_blob_info *bi, uint64_t *bad_chunk);
/* The same verdicts with each byte hashed once (fsck's default; objcheck.c):
 * the whole object against its digest, every tree block against its parent
 * up to the record's root; only when the digest differs, every block against
 * the tree (ag_object_check) to name the bad one.  What it does not see: a
 * record and tree rewritten together (their own check recomputed) for the
 * right bytes, which makes verified reads fail (never pass wrong bytes);
 * ag_object_check sees that too. */
int ag_object_check_once(ag_store *s, const ag_blob_info *bi, uint64_t *bad_chunk);

/* ---------- generations ---------- */

typedef struct {
	char *media_type;
	ag_digest digest;
	uint64_t size;
} ag_layer;

typedef struct {
	char *name;	    /* path form: "host/namespace/model/tag" */
	ag_digest manifest; /* SHA-256 of the manifest bytes (a blob too) */
	uint64_t manifest_size;
	int64_t added; /* unix seconds this manifest entered the store */
	ag_layer config;
	size_t nlayers;
	ag_layer *layers;
} ag_model;

struct ag_catalog_entry; /* store/catalog.h: { char *name; ag_digest digest; } */

typedef struct {
	uint64_t id;	 /* 1, 2, 3, ... assigned by ag_txn_gen_add */
	int64_t created; /* unix seconds; 0 = now at add */
	char *label;	 /* each string may be NULL */
	char *operator_name;
	char *source;
	char *signer; /* fingerprint of the key that signed the source */
	bool has_source_sha256;
	ag_digest source_sha256;
	char *report; /* verification report, JSON text */
	size_t nmodels;
	ag_model *models; /* sorted by name */
	/* The source bundle's own files kept as blobs (bundle.json, .asc, .sha256
	 * lists, manifest .sig): path in the bundle -> digest.  Every digest must
	 * have a blob record (like the models' blobs). */
	size_t nbundle_files;
	struct ag_catalog_entry *bundle_files;
	/* Set by the store (format 2): the catalog blob (ag_txn_gen_add) and the
	 * detached signature blob over it (ag_txn_gen_sign). */
	bool has_catalog;
	ag_digest catalog;
	bool has_signature;
	ag_digest signature;
} ag_gen;

/* Appends a copy of (path, digest) to g's bundle files. */
int ag_gen_add_bundle_file(ag_gen *g, const char *path, const ag_digest *d);
/* Every blob a generation keeps besides its models' (for gc's mark, fsck's
 * reference check): its bundle files, its catalog and its signature.  cb's
 * non-zero return stops the walk and is returned. */
int ag_gen_foreach_extra_blob(const ag_gen *g, int (*cb)(const ag_digest *d, void *arg), void *arg);

/* Every blob a model needs, by index: 0 the manifest, 1 the config, then the
 * layers.  For walks such as gc's mark or fsck's reference check. */
static inline size_t ag_model_nblobs(const ag_model *m)
{
	return m->nlayers + 2;
}
static inline const ag_digest *ag_model_blob(const ag_model *m, size_t i)
{
	return i == 0 ? &m->manifest : i == 1 ? &m->config.digest : &m->layers[i - 2].digest;
}

/* id 0 = the current generation.  -ENOENT if there is none. */
int ag_gen_get(ag_store *s, uint64_t id, ag_gen **out);
/* All generation ids, ascending. */
int ag_gen_list(ag_store *s, uint64_t **ids, size_t *n);
/* -ENOENT when the store has no current generation yet. */
int ag_current(ag_store *s, uint64_t *id);
/* The generation that was current before the current one (for rollback). */
int ag_previous(ag_store *s, uint64_t *id);
/* The generation ids (ascending) and the current id (0: none) read in one
 * transaction, so the two always agree. */
int ag_gen_snapshot(ag_store *s, uint64_t **ids, size_t *n, uint64_t *current);
ag_gen *ag_gen_new(void);
void ag_gen_free(ag_gen *g); /* accepts NULL */
/* Binary search by name (the models must be sorted: ag_gen_sort). */
ag_model *ag_gen_find(const ag_gen *g, const char *name);
void ag_gen_sort(ag_gen *g);
/* Appends a deep copy of m to g's models (unsorted). */
int ag_gen_add_model(ag_gen *g, const ag_model *m);
int ag_model_copy(ag_model *dst, const ag_model *src);
void ag_model_clear(ag_model *m);

/* Writer, inside t.  Assigns g->id (last id + 1) and g->created if 0, sorts
 * the models, and stores g.  Every manifest, config and layer it names must
 * have a blob record in the store or in t (-ENOENT otherwise).  Does not
 * change the current generation.  Builds g's catalog (store/catalog.h):
 * serial = max(meta catalog_serial, max_catalog_serial) + 1, parent = the
 * catalog of the generation current now (null when there is none), every
 * blob with its record's fs-verity digest; stored as a blob and named by the
 * generation record (g->has_catalog, g->catalog set). */
int ag_txn_gen_add(ag_txn *t, ag_gen *g);
/* Like ag_txn_gen_add(), but g's catalog is the given bytes verbatim (a
 * generation pulled from a registry: the signature is over them).  They must
 * parse as a canonical catalog that describes g: the same models (name ->
 * manifest), every blob of g listed with its record's size and fs-verity
 * digest, every listed blob present with those, the same bundle files
 * (-AG_ECORRUPT otherwise); a serial below meta max_catalog_serial is
 * -ESTALE (anti-rollback).  Raises max_catalog_serial. */
int ag_txn_gen_add_catalog(ag_txn *t, ag_gen *g, const char *catalog, size_t len);
/* The catalog of generation id (0 = current): its digest and bytes (checked
 * against the digest; caller frees *bytes; bytes/len may be NULL).  -ENOENT
 * for a generation without one (a format-1 store). */
int ag_gen_catalog(ag_store *s, uint64_t id, ag_digest *digest, char **bytes, size_t *len);
int ag_txn_gen_catalog(ag_txn *t, uint64_t id, ag_digest *digest, char **bytes, size_t *len);
/* Stores a detached armored signature over generation id's catalog bytes
 * (as a blob) and names it in the generation record, replacing an earlier
 * one.  -ENOENT when id has no catalog. */
int ag_txn_gen_sign(ag_txn *t, uint64_t id, const char *asc, size_t len);
/* The signature's bytes (caller frees); -ENOENT: unsigned. */
int ag_gen_signature(ag_store *s, uint64_t id, char **asc, size_t *len);
int ag_txn_gen_signature(ag_txn *t, uint64_t id, char **asc, size_t *len);

/*
 * Converts a format-1 store (opened with AG_WRITE | AG_FORMAT1_OK) to format
 * 2 inside t (the caller commits it, with its audit record): every object re-hashed and checked
 * against its record, its tree and format-2 record written, a catalog built for every generation
 * (ascending, serials 1, 2, ..., each the parent of the next), the chunk tables dropped, meta
 * format = 2.  All or nothing: on any problem the error is returned (abort t: the store stays as it
 * was) and *bad (may be NULL) names the object that failed (zeros when it was not an object).  0
 * when the store is format 2 already.  Progress: cb (may be NULL) after each object.
 */
int ag_txn_migrate(ag_txn *t, ag_digest *bad, void (*cb)(uint64_t done, uint64_t total, void *arg),
		   void *arg);
/* The store's format version (1 or 2). */
int ag_store_format(ag_store *s, unsigned *version);
/* Makes id current and remembers the one before it as "previous". */
int ag_txn_set_current(ag_txn *t, uint64_t id);
/* Deletes a generation; -EBUSY for the current one. */
int ag_txn_gen_del(ag_txn *t, uint64_t id);
/* Read a generation inside a write transaction (sees its own writes). */
int ag_txn_gen_get(ag_txn *t, uint64_t id, ag_gen **out);
int ag_txn_current(ag_txn *t, uint64_t *id);

/* Small string key/value metadata (e.g. "last_fsck"), not the format keys. */
int ag_meta_get(ag_store *s, const char *key, char **value);
int ag_txn_meta_put(ag_txn *t, const char *key, const char *value);

/* ---------- leases and pins (lease.c) ---------- */

/*
 * A live reader of the store (an agfs mount) holds a lease: the generations
 * it serves and the blobs it has open, in $STORE/leases/<name> (replaced
 * atomically: temp file + rename), alive while $STORE/leases/<name>.lock is
 * flock()ed by its holder.  A lease whose lock can be taken is stale (its
 * holder died) and is removed by gc.  gc keeps every leased generation and
 * blob, and every pinned generation.
 *
 * Ordering, so that gc and a lease holder never miss each other: both take
 * the guard $STORE/leases/.guard (holder shared, gc exclusive).  The holder
 * writes its lease BEFORE it opens a blob or starts serving a generation and
 * then, still under the guard, checks that the store still has it (reads
 * the record); gc, holding the guard, reads the leases, then deletes the
 * generations and the blob records nothing keeps in one transaction, and
 * commits before it lets go.  So either gc saw the lease, or the holder
 * sees the record gone.  Object files are unlinked after the commit, outside
 * the guard (nothing can lease them any more).
 */
typedef struct ag_lease ag_lease;
/* Creates a lease named after the process (the leases/ directory is made if
 * missing; needs a writable store directory). */
int ag_lease_open(ag_store *s, const char *what, ag_lease **out);
/* Replaces the lease's content. */
int ag_lease_set(ag_lease *l, const uint64_t *gens, size_t ngens, const ag_digest *blobs,
		 size_t nblobs);
void ag_lease_close(ag_lease *l); /* removes the lease; accepts NULL */
/* Takes the guard (see above); *fd for ag_lease_unguard. */
int ag_lease_guard(ag_store *s, bool exclusive, int *fd);
void ag_lease_unguard(int fd);

typedef struct {
	uint64_t *gens; /* sorted, unique */
	size_t ngens;
	ag_digest *blobs; /* sorted, unique */
	size_t nblobs;
	size_t nlive, nstale; /* leases read, stale ones found (removed if asked) */
} ag_leases;
/* Reads every live lease; with remove_stale, deletes the stale ones (writer). */
int ag_leases_read(ag_store *s, bool remove_stale, ag_leases *out);
void ag_leases_clear(ag_leases *l);
bool ag_leases_has_gen(const ag_leases *l, uint64_t id);
bool ag_leases_has_blob(const ag_leases *l, const ag_digest *d);

/* Pinned generations (meta key "pins"): gc keeps them.  ascending ids. */
int ag_pins(ag_store *s, uint64_t **ids, size_t *n);
/* Writer, inside t: pin or unpin id.  Pinning needs the generation to exist
 * (-ENOENT); unpinning one that is not pinned is -ENOENT too. */
int ag_txn_pin(ag_txn *t, uint64_t id, bool pin);
bool ag_pins_has(const uint64_t *ids, size_t n, uint64_t id);

/* ---------- model names ---------- */

/*
 * Parses an Ollama model reference "[host/][namespace/]model[:tag]" into the
 * path form "host/namespace/model/tag" (defaults registry.ollama.ai, library,
 * latest).  A path form with four parts is accepted as it is.  Rejects empty
 * parts, "." and "..", and characters outside [A-Za-z0-9._-] (plus ':' in the
 * host's port), with -AG_EBADNAME.
 */
int ag_name_parse(const char *s, size_t len, char **path_out);
/* "host/namespace/model/tag" -> "host/namespace/model:tag" (caller frees). */
char *ag_name_display(const char *path);

/* ---------- audit journal ---------- */

/*
 * Appends one line to audit.log: {"seq":N,"time":"ISO-8601","event":event,
 * "operator":op, ...fields..., "prev":"<sha256 of the previous line>"}.
 * Any process may append (readers too, when the file is writable): the file
 * is flock()ed for the append.  fields may be NULL; it is not stolen.
 */
int ag_audit(ag_store *s, const char *event, const char *operator_name, json_t *fields);
/* Same, by store path, for a program that could not open the store. */
int ag_audit_path(const char *store_path, const char *event, const char *operator_name,
		  json_t *fields);
/* Checks the chain, that it starts with STORE_INIT and that it holds the
 * index's last audited commit where the index says (lines removed from its
 * end, a deleted log).  On a break returns -AG_ECHAIN with *bad_line (1-based;
 * 0 when the whole file is missing or empty)
 * and *why (a sentence, caller frees) set. */
int ag_audit_verify(ag_store *s, uint64_t *bad_line, char **why);
/* Calls cb with every line parsed (line numbers 1-based). */
int ag_audit_foreach(ag_store *s, int (*cb)(uint64_t lineno, json_t *obj, void *arg), void *arg);

/* json_loadb / json_loads that set errno when they return NULL: ENOMEM
 * when memory ran out while parsing, EINVAL when the input is not JSON (or
 * breaks a flag such as JSON_REJECT_DUPLICATES). */
json_t *ag_json_loadb(const void *buf, size_t len, size_t flags, json_error_t *err);
json_t *ag_json_loads(const char *s, size_t flags, json_error_t *err);
/* How many of jansson's allocations failed in this thread so far: a
 * function that builds JSON and returned NULL while it moved ran out of
 * memory. */
unsigned long ag_json_alloc_failures(void);

/* Writes all of buf (retrying short writes and EINTR): 0 or -errno. */
int ag_write_all(int fd, const void *buf, size_t len);

/* ---------- cleanup helpers (systemd style) ---------- */

static inline void ag_freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(ag_freep)
void ag_closep(int *fd);
#define _cleanup_close_ _cleanup_(ag_closep)
static inline void ag_store_closep(ag_store **s)
{
	ag_store_close(*s);
}
#define _cleanup_store_ _cleanup_(ag_store_closep)
static inline void ag_gen_freep(ag_gen **g)
{
	ag_gen_free(*g);
}
#define _cleanup_gen_ _cleanup_(ag_gen_freep)
static inline void ag_blob_closep(ag_blob **b)
{
	ag_blob_close(*b);
}
#define _cleanup_blob_ _cleanup_(ag_blob_closep)
static inline void ag_txn_abortp(ag_txn **t)
{
	if (*t)
		ag_txn_abort(*t);
}
#define _cleanup_txn_ _cleanup_(ag_txn_abortp)
static inline void ag_stage_freep(ag_stage **st)
{
	ag_stage_free(*st);
}
#define _cleanup_stage_ _cleanup_(ag_stage_freep)
static inline void *ag_take_ptr(void *pp)
{
	void **p = pp;
	void *v = *p;
	*p = NULL;
	return v;
}
#define TAKE_PTR(p) ag_take_ptr(&(p))

#endif
