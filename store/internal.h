/* SPDX-License-Identifier: Apache-2.0 */
/* libagstore internals: shared by the files of store/ only. */
#ifndef AGFS_STORE_INTERNAL_H
#define AGFS_STORE_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>
#include <setjmp.h>

#include "store/pagecache.h"
#include "store/store.h"

#define AG_MAP_SIZE (64ull << 30) /* virtual; the file grows as needed */
/* LMDB reader slots, shared by every process: each mount thread, each fsck
 * thread and each tool holds at most one at a time (MDB_NOTLS, one short read
 * transaction per call).  Sized for several mounts of hundreds of threads plus
 * fsck's 256; 64 bytes each in index/lock.mdb.  The table's size is set by
 * the first process to open the environment. */
#define AG_MAX_READERS	    4096u
#define AG_BLOB_REC_VERSION 2 /* 1: format 1's chunk-table record (migration reads it) */
#define AG_GEN_REC_VERSION  1

struct ag_store {
	char *path;
	int dirfd;
	int lockfd; /* -1 for readers */
	bool writer;
	MDB_env *env;
	MDB_dbi dbi_meta, dbi_blobs, dbi_gens, dbi_trees;
	MDB_dbi dbi_tables; /* format 1 only (opened for migration) */
	unsigned format;    /* 1 (AG_FORMAT1_OK, migration only) or 2 */
	bool format1_ok;
};

/* Format 1 (read by migration only): chunk hashes per page of a chunk
 * table, and the record's fixed header, followed by npages * 32 bytes of page
 * hashes and the record's own SHA-256. */
#define AG_PAGE_CHUNKS 1024u
struct ag_blob_rec1 {
	uint32_t version;
	uint32_t chunk_size;
	uint64_t size;
	int64_t created;
	uint64_t nchunks;
	uint64_t npages;
};

/* Format 2 blob record (host byte order), followed by 32 bytes of SHA-256
 * over it (the record's own check).  The hash tree's blocks live in the
 * "trees" database under digest + 8-byte big-endian block number in the
 * kernel's layout (top level first). */
struct ag_blob_rec {
	uint32_t version; /* 2 */
	uint32_t block;	  /* 4096 */
	uint64_t size;
	int64_t created;
	uint64_t tree_blocks;
	uint8_t root[32];
	uint8_t fsverity[32];
};

/* Verified tree blocks of one open blob kept at most (level 0; the levels
 * above stay): 256 blocks cover 128 MiB of data in 1 MiB. */
#define AG_TREE_CACHE 256u
/* Level-0 tree blocks fetched together (from one read transaction, checked
 * when used): 16 cover 8 MiB of data, so a reader streaming a blob that gc
 * deletes meanwhile goes on that far at least. */
#define AG_TREE_READAHEAD 16u

struct ag_txn {
	ag_store *s;
	MDB_txn *txn;
	ag_digest *created; /* objects this txn linked into objects/ */
	size_t ncreated, capcreated;
	uint64_t gen_added; /* the generation ag_txn_gen_add stored in this txn, or 0 */
	bool broken;	    /* an index read faulted inside it: it can only be aborted */
	bool unsynced;	    /* objects or directories it placed wait for ag_txn_sync */
};
/* Makes everything the transaction placed under objects/ durable with one
 * syncfs() of the store's file system; before any commit (index.c, audit.c). */
int ag_txn_sync(ag_txn *t);

struct ag_blob {
	ag_store *s;
	ag_blob_info info;
	unsigned nlevels;
	uint64_t nblocks[8], first_block[8]; /* geometry (store/verity.h) */
	uint8_t **tree;	  /* tree blocks by kernel-layout number, loaded on use */
	uint8_t *checked; /* per tree block: checked against its parent */
	uint64_t ncached0;
	bool root_bad;	 /* root + size do not give the expected fs-verity digest */
	int fd;		 /* O_DIRECT when asked and allowed */
	int fd_buffered; /* fallback, opened lazily; -1 until then */
	pthread_mutex_t lock;
	bool direct;
	bool dropbehind;
	/* With dropbehind: what was resident before, under pc_lock, not lock:
	 * its mincore and fadvise calls do not hold up other readers' tree
	 * walks. */
	struct ag_pagecache pc;
	pthread_mutex_t pc_lock;
};

/* read.c: every tree block of bi's stored tree against its parent's entry
 * (the top one against the record's root), with the walk verified reads
 * use; -EBADMSG with *bad_chunk (may be NULL) the first data block the bad
 * tree block covers.  No data block is read. */
int ag_tree_check(ag_store *s, const ag_blob_info *bi, uint64_t *bad_chunk);

/* util.c */
int ag_errno(void); /* -errno, never 0 */
int ag_fsync_dir(int dirfd, const char *rel);
int64_t ag_now(void);
void ag_time_iso(int64_t t, char out[32]);
bool ag_chunk_size_ok(uint32_t cs);
uint64_t ag_nchunks(uint64_t size, uint32_t cs);
void ag_sha256_fast(const void *buf, size_t len, uint8_t out[32]);
ssize_t ag_pread_all(int fd, void *buf, size_t len, uint64_t off);

/* guard.c: LMDB reads under a fault guard (a damaged data.mdb gives
 * -AG_EINDEX, never a crash).  Use:
 *	struct ag_guard g;
 *	ag_guard_push(&g);
 *	if (sigsetjmp(g.jb, 0)) { ...clean up (volatile locals)...; return -AG_EINDEX; }
 *	...read the map...
 *	ag_guard_pop(&g);
 */
struct ag_guard {
	sigjmp_buf jb;
	struct ag_guard *prev;
};
void ag_guard_install(MDB_env *env);
void ag_guard_push(struct ag_guard *g);
void ag_guard_pop(struct ag_guard *g);
/* fn(txn, arg) in a read transaction of its own, under a guard. */
int ag_read_guarded(ag_store *s, int (*fn)(MDB_txn *txn, void *arg), void *arg);
static inline void ag_guard_popp(struct ag_guard *g)
{
	ag_guard_pop(g);
}
/* First statement of a function working in write transaction t: a fault in
 * the rest of it returns -AG_EINDEX and marks t broken (only abort is left). */
#define AG_TXN_GUARD(t)                                                        \
	struct ag_guard ag_txn_guard_ __attribute__((cleanup(ag_guard_popp))); \
	if ((t)->broken)                                                       \
		return -AG_EINDEX;                                             \
	ag_guard_push(&ag_txn_guard_);                                         \
	if (sigsetjmp(ag_txn_guard_.jb, 0)) {                                  \
		(t)->broken = true;                                            \
		return -AG_EINDEX;                                             \
	}

/* index.c */
int ag_index_open(ag_store *s, bool create);
void ag_index_close(ag_store *s);
int ag_lmdb_err(int rc);
int ag_rtxn_begin(ag_store *s, MDB_txn **txn);
/* The format-2 record of d; with check, its own hash is checked too. */
int ag_blob_rec_get(MDB_txn *txn, ag_store *s, const ag_digest *d, ag_blob_info *info, bool check);
/* Tree blocks blk, blk+1, ... (kernel layout) of d, at most n, from one
 * read transaction: out[i] malloc'ed, unchecked.  Returns how many (at
 * least 1), or an error (-ESTALE: the record is gone too). */
int ag_tree_blocks_get(ag_store *s, const ag_digest *d, uint64_t blk, uint64_t n, uint8_t **out);
/* Writes the record and its tree (tree_blocks blocks, kernel layout, in
 * tree; NULL when there are none). */
int ag_blob_rec_put(ag_txn *t, const ag_blob_info *info, const uint8_t *tree, uint64_t tree_blocks);
/* Compares d's stored tree with tree: 0 when equal, 1 when not (or a block
 * is missing). */
int ag_tree_same(ag_txn *t, const ag_digest *d, const uint8_t *tree, uint64_t tree_blocks);
void ag_tree_key(const ag_digest *d, uint64_t blk, uint8_t key[40]);
/* Format 1 record (migration). */
int ag_blob_rec1_decode(const MDB_val *v, const ag_digest *d, ag_blob_info *info);
int ag_meta_get_u64(MDB_txn *txn, ag_store *s, const char *key, uint64_t *v);
int ag_meta_put_str(MDB_txn *txn, ag_store *s, const char *key, const char *value);
int ag_txn_note_created(ag_txn *t, const ag_digest *d);

/* audit.c */
/* Writer: an INDEX_COMMIT_LOST record for every audited commit whose record
 * was written but whose transaction never landed; *repaired counts them. */
int ag_audit_repair(ag_store *s, int *repaired);
/* Test seam: called between the record's append and the LMDB commit. */
extern void (*ag_test_before_commit)(void);

/* gen.c: a generation record's JSON (fuzzed by tests/fuzz/fuzz-store-gen.c).
 * Decoding checks types, digests and non-negative sizes; -AG_ECORRUPT. */
char *ag_gen_encode(const ag_gen *g);
int ag_gen_decode(const void *data, size_t len, ag_gen **out);
/* audit.c: checks an audit log held in memory the way ag_audit_verify and the
 * repair scan read the file (fuzzed by tests/fuzz/fuzz-store-audit.c):
 * returns 0 or -AG_ECHAIN (*bad_line, *why set); *npending counts records of
 * audited commits above audit_seq that nothing resolved. */
int ag_audit_check_buf(const char *buf, size_t len, uint64_t audit_seq, uint64_t *bad_line,
		       char **why, size_t *npending);

/* object.c */
/* O_NONBLOCK | O_NOFOLLOW, then fstat: not a regular file = -AG_ECORRUPT. */
int ag_object_open(ag_store *s, const ag_digest *d, int flags);
int ag_object_open_rel(ag_store *s, const char *rel, int flags);
int ag_object_hash_check(int fd, uint64_t size, const ag_digest *d);

/* treebuf.c: a whole tree built in one pass beside the SHA-256 (staging,
 * migration): tree blocks gathered by level, then laid out the kernel's way. */
struct ag_treebuf {
	uint8_t *level[8];
	uint64_t count[8], cap[8];
	struct ag_verity *v;
	ag_hash *whole;
	uint64_t size;	     /* bytes given to the tree */
	uint64_t whole_size; /* bytes given to the whole digest */
};
int ag_treebuf_init(struct ag_treebuf *tb);
int ag_treebuf_update(struct ag_treebuf *tb, const void *buf, size_t len);
/* The two halves of ag_treebuf_update(), safe to run at the same time. */
void ag_treebuf_update_whole(struct ag_treebuf *tb, const void *buf, size_t len);
int ag_treebuf_update_tree(struct ag_treebuf *tb, const void *buf, size_t len);
/* Finishes: info gets digest, size, root, fsverity; *tree (caller frees)
 * the blocks in kernel layout, *nblocks their number. */
int ag_treebuf_final(struct ag_treebuf *tb, ag_blob_info *info, uint8_t **tree, uint64_t *nblocks);
void ag_treebuf_free(struct ag_treebuf *tb);
/* Hashes an object file in one pass (open by the object-open rule). */
int ag_treebuf_fd(int fd, uint64_t size, ag_blob_info *info, uint8_t **tree, uint64_t *nblocks);

/* gen.c: g checked (its blobs have records), sorted, given its id and
 * creation time; then stored as a new generation (its id remembered). */
int ag_gen_prepare(ag_txn *t, ag_gen *g);
int ag_gen_store_new(ag_txn *t, ag_gen *g);

/* catgen.c */
int ag_txn_put_bytes(ag_txn *t, const void *buf, size_t len, ag_digest *out);
int ag_gen_put_txn(ag_txn *t, const ag_gen *g, bool overwrite);
int ag_catalog_build(ag_txn *t, ag_gen *g, uint64_t serial, const ag_digest *parent, char **bytes,
		     size_t *len);
int ag_read_object_bytes(ag_store *s, const ag_digest *d, size_t max, char **bytes, size_t *len);

#endif
