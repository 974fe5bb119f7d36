/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agfs internals: the read-only FUSE view of a store as Ollama's models tree.
 *
 *   tree.c     nodes, the inode table and the Ollama layout built from a generation
 *   watch.c    the poll thread: follows the current generation and the generation list
 *   blobs.c    verified reads: one shared ag_blob per digest, per-thread buffers
 *   events.c   log lines and audit records (MODEL_OPEN, VERIFY_FAILURE)
 *   lease.c    the mount's lease: what gc must keep for it
 *   metrics.c  -o metrics=: the Prometheus textfile (metrics.h)
 *   journal.c  log lines: journald's native protocol under systemd, else syslog
 *   ops.c      the FUSE low-level operations
 *   options.c  agfs's -o options (a pure parser)
 *   trust.c    -o keyring=: signed catalogs decide what is shown and how blobs are checked
 *   daemon.c   daemonizing, readiness (parent pipe, sd_notify), bdi read-ahead
 *   main.c     the program
 */
#ifndef AGFS_FS_H
#define AGFS_FS_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <fuse_lowlevel.h>

#include "store/store.h"

/* Seconds on CLOCK_MONOTONIC, for every duration and deadline the daemon
 * keeps (the grace period, re-reads of rejected generations, rate limits,
 * stuck-reader windows, the metrics file's period, remembered bad chunks):
 * setting the wall clock back or forward moves none of them.  Counted from
 * FS_MONO_BASE, so that 0 (a slot never used, a window never opened) lies as
 * far in the past as it does for time(NULL).  Times shown or recorded
 * (mtimes, ages, audit records) stay on the wall clock. */
#define FS_MONO_BASE INT64_C(1000000000)
static inline int64_t fs_mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return FS_MONO_BASE + (int64_t)ts.tv_sec;
}

/* ---------- options ---------- */

enum fs_verify { FS_VERIFY_CHUNKS, FS_VERIFY_FULL };

#define FS_MAX_SIGNERS 16

struct fs_options {
	uint64_t generation; /* 0 = follow the current generation */
	enum fs_verify verify;
	int allow_other; /* -1 = default (on when run as root) */
	unsigned threads;
	uint64_t cache;	 /* bytes for the daemon's read buffers, all threads together */
	bool kill_stuck; /* SIGKILL a reader stuck re-reading a corrupt chunk (stuck=kill) */
	bool buffered;	 /* backing=buffered: page-cache reads with drop-behind, not O_DIRECT */
	unsigned grace;	 /* seconds the previous generation's blobs stay reachable */
	char *keyring;	 /* keyring=: show only generations whose catalog it verifies */
	char *signers[FS_MAX_SIGNERS]; /* signer=: allowed keys (with keyring=) */
	size_t nsigners;
	char *metrics;	    /* metrics=PATH: the Prometheus file (NULL: the default) */
	bool metrics_off;   /* metrics=none */
	uint64_t readahead; /* readahead=: bytes verified ahead of a sequential reader */
};

#define FS_DEFAULT_THREADS 8u
#define FS_MAX_THREADS	   64u
#define FS_DEFAULT_CACHE   (32ull << 20)
#define FS_MIN_CACHE	   (1ull << 20)
#define FS_MAX_CACHE	   (4ull << 30)
#define FS_MAX_REQUEST	   (1u << 20) /* largest read the kernel sends (max_pages 256) */
#define FS_BAD_MEMORY_S	   5	      /* a chunk that failed fails again at once for this long */
#define FS_DEFAULT_GRACE   600u	      /* -o grace=: 10 minutes */
#define FS_MAX_GRACE	   86400u

#define FS_DEFAULT_READAHEAD (4ull << 20) /* -o readahead=: per sequential reader */
#define FS_MAX_READAHEAD     (16ull << 20)
#define FS_RA_STREAMS	     4u /* sequential readers served from a window at once */

void fs_options_init(struct fs_options *o);
void fs_options_clear(struct fs_options *o);
/* Parses one -o argument (a comma list) into o.  On an error returns -EINVAL
 * and sets *bad (caller frees) to the offending option. */
int fs_options_parse(struct fs_options *o, const char *buf, size_t len, char **bad);
/* "64M", "1G", "4096" -> bytes; -EINVAL on junk or overflow. */
int fs_parse_size(const char *s, uint64_t *out);
/* Largest read request to ask the kernel for, given the buffer budget. */
unsigned fs_max_read(const struct fs_options *o);

/* ---------- nodes ---------- */

enum node_kind {
	N_ROOT,	    /* the mount's root: manifests, blobs, versions */
	N_VERSIONS, /* versions/: one dir per generation + current */
	N_DIR,	    /* a directory with a fixed list of children */
	N_BLOB,	    /* a regular file backed by a store object */
	N_TEXT,	    /* a regular file held in memory (INFO, .keep) */
	N_LINK,	    /* a symlink (versions/current) */
};

struct node;
struct dent {
	char *name;
	struct node *node;
};

struct node_group;

struct node {
	fuse_ino_t ino;
	enum node_kind kind;
	struct node *parent; /* directories only; NULL for blobs shared by many dirs */
	/* the generation tree it was made with and goes away with; NULL for the
	 * fixed nodes and for regular files shared across generations */
	struct node_group *group;
	/* the kernel's lookup count plus open handles: while not 0 the node is
	 * never freed (the kernel may still name its inode number) */
	_Atomic uint64_t refs;
	uint64_t size;
	int64_t mtime;
	uint32_t mtime_ns;
	uint32_t nlink; /* files: how many directories of live trees list it */
	/* N_DIR */
	size_t nchild, childcap;
	struct dent *child; /* sorted by name */
	unsigned nsubdirs;
	/* N_BLOB */
	ag_digest digest;
	bool is_model;	 /* a layer of media type application/vnd.ollama.image.model */
	bool root_blobs; /* N_DIR: a generation's blobs/ at the root (grace look-ups) */
	bool orphan;	 /* a shared file on fs_tree.orphans */
	bool unsorted;	 /* N_DIR being built: children not in name order (yet) */
	/* N_TEXT, N_LINK */
	char *text;
};

/*
 * The nodes of one generation's tree (its versions/<id>/, or its manifests/
 * and blobs/ at the root), made together and freed together by tree_sweep()
 * once no path the mount serves leads into it and none of its nodes is known
 * to the kernel or held by an open handle (refs, the sum of its nodes').
 */
#define GROUP_MISSES 16

struct node_group {
	_Atomic uint64_t refs;
	struct node **nodes;
	size_t n, cap;
	/* The last names looked up in its directories and not found (under
	 * fs_tree.miss_lock): the kernel keeps a negative dentry for each, which
	 * holds its directory, and only its name can drop it once the
	 * directory is no longer reachable (tree_held_entries). */
	struct {
		struct node *dir;
		char *name;
	} miss[GROUP_MISSES];
	unsigned nmiss, next_miss;
};

/* One generation as seen through the mount. */
struct gtree {
	uint64_t id;
	ag_gen *gen;
	struct node_group *vgroup; /* versions/<id>/ and the link (NULL once freed) */
	struct node_group *rgroup; /* its tree at the root (NULL: not built, or freed) */
	struct node *cur_manifests, *cur_blobs; /* in rgroup */
	struct node *vdir;			/* versions/<id>/, in vgroup */
	struct node *link;			/* a versions/current symlink pointing at it */
	bool listed;				/* the store still has it (gc drops it) */
	bool rejected; /* keyring=: its catalog failed a later check; not served */
};

#define FS_FIXED_NODES 8

/*
 * Lock order and lifetimes: lock (write) for every change of the tree's
 * shape (adding, switching, sweeping); lock (read) for looking up and for
 * node_ref/node_unref, which are atomic.  Nodes are freed only by
 * tree_sweep(), under the write lock, and only when their refs are 0: a
 * reference taken under the read lock keeps a node (and its group) alive
 * until it is dropped.
 */
struct fs_tree {
	pthread_rwlock_t lock;
	size_t ninodes;	    /* live nodes */
	struct node **imap; /* ino -> node (open addressing, linear probing) */
	size_t imap_cap;
	struct node *root, *versions;
	struct gtree **gens; /* ascending id: listed, served, or still referenced */
	size_t ngens;
	size_t nlisted;		     /* how many of gens are listed */
	struct gtree *current;	     /* served at the root */
	struct gtree *store_current; /* the store's current one (versions/current) */
	struct gtree *grace;	     /* the previous root, its blobs still reachable */
	int64_t grace_until;	     /* ... until then (fs_mono_s()) */
	struct node *empty_manifests, *empty_blobs; /* served while there is no generation */
	struct node *keep;			    /* the empty placeholder file .keep */
	struct node *fixed[FS_FIXED_NODES];	    /* the nodes that live as long as the tree */
	size_t nfixed;
	/* blob and manifest file nodes, shared across generations: */
	struct node **files;
	size_t nfiles, files_cap;
	struct node **orphans; /* shared files no live directory lists (nlink 0) */
	size_t norphans, orphans_cap;
	struct node_group *building; /* where node_new puts what it makes */
	pthread_mutex_t miss_lock;   /* node_group.miss under the read lock */
};

int tree_init(struct fs_tree *t);
void tree_destroy(struct fs_tree *t);
/* Adds generation g (taken over) unless known; builds versions/<id>.
 * With the write lock held. */
int tree_add_gen(struct fs_tree *t, ag_store *s, ag_gen *g, struct gtree **out);
struct gtree *tree_find_gen(struct fs_tree *t, uint64_t id);
/* Makes gt the generation at the root (NULL: none).  With the write lock held. */
int tree_set_current(struct fs_tree *t, ag_store *s, struct gtree *gt);
/* Marks which generations the store still lists (ids ascending).  With the
 * write lock held. */
void tree_set_listed(struct fs_tree *t, const uint64_t *ids, size_t n);
/* Frees every generation tree and shared file nothing can reach any more:
 * not served at the root or under versions/ and with refs 0.  With the write
 * lock held; now: fs_mono_s() (the end of the grace period). */
void tree_sweep(struct fs_tree *t, int64_t now);
/* An entry for the kernel to drop: the name of a child of directory parent. */
struct fs_inval {
	fuse_ino_t parent;
	char *name;
};
/* The entries of nodes the kernel still holds in trees no longer served,
 * and the names last looked up in vain in their held directories (at most
 * max; caller frees the names and *out).  Invalidated once the lock is let
 * go, the kernel drops each as soon as its last user lets go, forgets its
 * inode, and the tree can be freed.  With the lock held. */
size_t tree_held_entries(struct fs_tree *t, struct fs_inval **out, size_t max);
/* A reference to n (k kernel lookups, or an open handle), and its end.
 * With the read (or write) lock held. */
void node_ref(struct node *n, uint64_t k);
void node_unref(struct node *n, uint64_t k);
/* The node for ino, or NULL.  With the read lock held. */
struct node *tree_node(struct fs_tree *t, fuse_ino_t ino);
/* Child lookup in any directory kind.  With the read lock held. */
struct node *tree_lookup(struct fs_tree *t, struct node *dir, const char *name);
/* Notes that name was not found in dir (a directory of a generation's tree),
 * for tree_held_entries.  With the read lock held. */
void tree_note_miss(struct fs_tree *t, struct node *dir, const char *name);
/* A snapshot of a directory's entries; free with free() (names are not owned).
 * With the read lock held. */
int tree_list(struct fs_tree *t, struct node *dir, struct dent **out, size_t *n);
/* The display names of every model (in any known generation) that uses the
 * digest, comma separated, into a new string.  With the read lock held. */
char *tree_models_using(struct fs_tree *t, const ag_digest *d);
/* The INFO text of a generation (caller frees); each model line ends in the
 * bundle that brought it, looked for among gens (store/provenance.h). */
char *tree_info_text_from(const ag_gen *g, const ag_gen *const *gens, size_t ngens);
bool node_is_dir(const struct node *n);

/* ---------- verified reads ---------- */

struct fs_blob; /* one opened object, shared by every open of the digest */

struct fs_blobs {
	pthread_mutex_t lock;
	struct fs_blob **tab;
	size_t n, cap;
	ag_digest *verified; /* verify=full: digests already hashed whole in this mount */
	size_t nverified, verified_cap;
	pthread_key_t bufkey;
	unsigned open_flags; /* AG_BLOB_DIRECT, or AG_BLOB_STREAM with backing=buffered */
	struct fs_ra *ra;    /* readahead.c: its workers and windows */
	/* buffers for direct reads over FS_KEEP_READ, shared by the threads:
	 * at most keep_large kept between reads (threads=N without read-ahead,
	 * where every large read is direct; FS_KEEP_LARGE with it) */
	void *large[FS_MAX_THREADS];
	unsigned nlarge, keep_large;
};
#define FS_KEEP_READ  (128u << 10) /* a thread keeps its own buffer for reads up to this */
#define FS_KEEP_LARGE 2u

int blobs_init(struct fs_blobs *bs);
void blobs_destroy(struct fs_blobs *bs);
/* Opens (or shares) the object of n; checks its size against the node.
 * With full, also hashes it whole on the first open in this mount. */
struct fs_ctx;
int blobs_open(struct fs_ctx *c, const struct node *n, bool full, struct fs_blob **out,
	       uint64_t *bad_chunk);
/* verify=full: the object of n was hashed whole in this mount (as it is now). */
bool blobs_verified(struct fs_ctx *c, const struct node *n);
/* Every digest open now, for the lease (caller frees).  With no lock held. */
int blobs_digests(struct fs_blobs *bs, ag_digest **out, size_t *n);
/* True when this was the digest's last open (the lease should be rewritten). */
bool blobs_release(struct fs_blobs *bs, struct fs_blob *b);
/* Verified read into this thread's buffer; *out points into it until
 * blobs_read_done(), called once the reply is sent (whatever r was). */
ssize_t blobs_read(struct fs_blobs *bs, struct fs_blob *b, uint64_t off, size_t len,
		   const uint8_t **out, uint64_t *bad_chunk);
void blobs_read_done(struct fs_blobs *bs);
uint32_t blobs_chunk_size(const struct fs_blob *b);
uint64_t blobs_size(const struct fs_blob *b);
/* Verified read of [off, off+len) to the start of buf, for the read-ahead:
 * nothing reported or remembered; a failure is left to the reader's own
 * blobs_read().  buf is AG_ALIGN-aligned and holds every block the range
 * touches (ag_blob_bufsize(len) bytes; len when off and len are on blocks).
 * Returns len (less at EOF) or an error. */
ssize_t blobs_fill(struct fs_blob *b, uint64_t off, size_t len, void *buf, size_t bufsize);
/* Counts len verified bytes at off served to a reader (metrics). */
void blobs_count_served(const struct fs_blob *b, uint64_t off, size_t len);

/* ---------- read-ahead for sequential readers (readahead.c) ---------- */

struct fs_ra;	  /* the workers and the memory budget, one per mount */
struct fs_stream; /* one open handle: its access pattern and verified window */
int ra_init(struct fs_blobs *bs);
void ra_destroy(struct fs_blobs *bs); /* every stream closed first */
/* The stream of a new handle on b (NULL: read-ahead is off, or no memory). */
struct fs_stream *ra_open(struct fs_ctx *c, struct fs_blob *b);
/* Answers req with [off, off+size) from the stream's verified window and
 * returns true, or returns false: the caller reads directly (and reports). */
bool ra_read(struct fs_ctx *c, struct fs_stream *st, fuse_req_t req, uint64_t off, size_t size);
/* Drops the stream: its queued reads are cancelled, running ones awaited. */
void ra_close(struct fs_ctx *c, struct fs_stream *st); /* accepts NULL */

/* ---------- verify=full off the FUSE threads (hash.c) ---------- */

struct fs_hashers;
/* Starts FS_HASHERS(threads) hashing threads (verify=full only). */
int hash_start(struct fs_ctx *c);
void hash_stop(struct fs_ctx *c); /* answers EIO to what still waits */
/* Queues the open of n (not yet hashed whole) on the one job of its digest;
 * the open is answered when the hash is done.  h is taken over. */
void hash_open(struct fs_ctx *c, fuse_req_t req, struct fuse_file_info *fi, struct node *n,
	       void *h);
#define FS_HASHERS(threads) ((threads) / 4 ? (threads) / 4 : 1u)
#define FS_INLINE_HASH	    (16u << 20) /* smaller blobs are hashed in the open itself */
/* ops.c: answers an open that waited for its hash (err: the hash's result). */
void ops_open_hashed(struct fs_ctx *c, fuse_req_t req, struct fuse_file_info *fi, struct node *n,
		     void *h, int err, uint64_t bad_chunk);

/* ---------- events ---------- */

struct fs_ctx;
struct fs_auditq;
/* The MODEL_OPEN writer thread; stop drains its queue. */
int events_start(struct fs_ctx *c);
void events_stop(struct fs_ctx *c);
/* "Checked, and wrong" (-EBADMSG, -AG_EDIGEST, -AG_ECORRUPT, a missing or
 * symlinked object): LOG_CRIT and a VERIFY_FAILURE record (rate-limited). */
void event_verify_failure(struct fs_ctx *c, const struct node *n, uint64_t chunk, int err);
/* "Could not check" (anything else): LOG_ERR, rate-limited, no record; a
 * damaged index (-AG_EINDEX) is LOG_CRIT and a STORE_ERROR record.  n may be NULL. */
void event_store_error(struct fs_ctx *c, const struct node *n, int err);
/* True for the errors that are a verdict on the bytes (contract 1). */
static inline bool fs_is_verdict(int err)
{
	return err == -EBADMSG || err == -AG_EDIGEST || err == -AG_ECORRUPT || err == -ENOENT ||
	       err == -ELOOP;
}
/* Counts a failed read by thread tid; a process that keeps re-reading the same
 * bad chunk is stuck in the kernel's fault-retry loop and is killed (stuck=kill). */
void event_failed_read(struct fs_ctx *c, const struct node *n, uint64_t chunk, pid_t tid);
void event_model_open(struct fs_ctx *c, const struct node *n, const struct fuse_ctx *who);

/* ---------- the lease (lease.c) ---------- */

#define FS_LEASE_GENS	 4
#define FS_LEASE_PENDING (2 * FS_MAX_THREADS)

struct fs_lease {
	ag_lease *l;	      /* NULL: the store is not writable, nothing leased */
	pthread_mutex_t lock; /* after fs_tree.lock, before fs_blobs.lock */
	uint64_t gens[FS_LEASE_GENS];
	size_t ngens;
	ag_digest *gen_blobs; /* every blob of the leased generations the tree knows */
	size_t ngen_blobs;
	ag_digest pending[FS_LEASE_PENDING]; /* blobs being opened */
	size_t npending;
	ag_digest *written; /* every blob in the lease file now, sorted */
	size_t nwritten;
	bool dirty; /* a blob was closed: rewrite at the next flush */
};

struct fs_ctx;
/* Creates the mount's lease (a warning, not an error, when it cannot). */
void lease_start(struct fs_ctx *c);
void lease_stop(struct fs_ctx *c);
/* The guard (shared) around "lease, then check the store still has it";
 * *fd is -1 when nothing is leased. */
void lease_guard(struct fs_ctx *c, int *fd);
void lease_unguard(int fd);
/* Leases what the root serves: the generations the tree serves (current,
 * grace, -o generation=) plus store_cur (0: none) and all their blobs, and
 * every open blob.  Under the guard. */
int lease_served(struct fs_ctx *c, uint64_t store_cur);
/* Adds d (a blob about to be opened) to the lease, writing it if d is not in
 * it yet, then under the guard (*guard, -1 when none was needed: release with
 * lease_unguard after ag_blob_open).  lease_blob_done() once d is in
 * fs_blobs' table or failed. */
int lease_blob(struct fs_ctx *c, const ag_digest *d, int *guard);
void lease_blob_done(struct fs_ctx *c, const ag_digest *d);
/* A blob's last close: the lease is rewritten at the next lease_flush()
 * (the watcher's, within a second). */
void lease_sync(struct fs_ctx *c);
void lease_flush(struct fs_ctx *c);

/* ---------- the mount ---------- */

/* A generation keyring= rejected when the mount first saw it (watch.c;
 * trust.c remembers the names its record had then). */
struct fs_rejected {
	uint64_t id;
	int64_t fetched; /* when its record was last read (fs_mono_s()) */
};
#define FS_REJECTED_MAX 64

struct fs_ctx {
	struct fs_options opt;
	char *store_path;
	char *mountpoint; /* absolute */
	char *operator_name;
	ag_store *store;
	struct fs_tree tree;
	struct fs_blobs blobs;
	struct fuse_session *se;
	bool foreground;
	int ready_fd; /* write end of the pipe to the waiting parent, -1 if none */
	atomic_bool initialized;
	atomic_bool stopping;
	pthread_t watcher;
	bool watcher_started;
	pthread_mutex_t ev_lock; /* the rate limiter of events.c */
	struct fs_auditq *auditq;
	struct fs_lease lease;
	struct fs_hashers *hashers;
	struct fs_trust *trust; /* keyring=; NULL without */
	/* keyring=: generations rejected when first seen (watch.c; only the
	 * watcher, or watch_load before it starts, touches them) */
	struct fs_rejected rejected[FS_REJECTED_MAX];
	size_t nrejected;
	/* the last "cannot check generation N's catalog" logged (watcher only):
	 * not again at every poll while the same error lasts */
	uint64_t uncheckable_id;
	int uncheckable_err;
};

/* trust.c: -o keyring=.  trust_start opens the keyring (or logs that there
 * is none); *why (caller frees) on failure. */
int trust_start(struct fs_ctx *c, char **why);
void trust_stop(struct fs_ctx *c);
/* 0: g's catalog is signed by an allowed key of the keyring and describes g
 * (its blobs' fs-verity digests are remembered); -EPERM: not shown (logged
 * LOG_CRIT and audited CATALOG_REJECTED once); other: could not check.
 * 0 without keyring=. */
int trust_check_gen(struct fs_ctx *c, const ag_gen *g);
/* The fs-verity digest a verified catalog gives for d; -ENOENT: none. */
int trust_expect(struct fs_ctx *c, const ag_digest *d, ag_digest *fsv);

extern const struct fuse_lowlevel_ops fs_ops;

/* watch.c: load the store's generations into the tree (before serving), and
 * the thread that follows changes every second. */
int watch_load(struct fs_ctx *c);
int watch_start(struct fs_ctx *c);
void watch_stop(struct fs_ctx *c);

/* daemon.c */
int daemon_fork(int *ready_fd); /* returns in the child only (0) or -errno */
void daemon_ready(struct fs_ctx *c);
int daemon_raise_readahead(const char *mountpoint, unsigned kb);
int sd_notify_ready(void);

#define FS_POLL_MS	  1000
#define FS_DYN_TIMEOUT	  1.0	  /* root and versions/: they change with the store */
#define FS_STATIC_TIMEOUT 86400.0 /* everything inside a generation is immutable */

#endif
