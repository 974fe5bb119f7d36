/* SPDX-License-Identifier: Apache-2.0 */
/* libagstore internals: shared by the files of store/ only. */
#ifndef AGFS_STORE_INTERNAL_H
#define AGFS_STORE_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>
#include <setjmp.h>

#include "store/store.h"

#define AG_MAP_SIZE (64ull << 30) /* virtual; the file grows as needed */
/* LMDB reader slots, shared by every process: each mount thread, each fsck
 * thread and each tool holds at most one at a time (MDB_NOTLS, one short read
 * transaction per call).  Sized for several mounts of hundreds of threads plus
 * fsck's 256; 64 bytes each in index/lock.mdb.  The table's size is set by
 * the first process to open the environment. */
#define AG_MAX_READERS	    4096u
#define AG_BLOB_REC_VERSION 1
#define AG_GEN_REC_VERSION  1

struct ag_store {
	char *path;
	int dirfd;
	int lockfd; /* -1 for readers */
	bool writer;
	MDB_env *env;
	MDB_dbi dbi_meta, dbi_blobs, dbi_gens, dbi_tables;
};

/* Chunk hashes per page of a chunk table (32 KiB of hashes; 64 MiB of blob
 * at the default chunk size).  Pages are loaded only when a read needs them,
 * so opening a blob costs the same whatever its size. */
#define AG_PAGE_CHUNKS 1024u

/* Fixed header of a blob record; followed by npages * 32 bytes (the SHA-256
 * of each page of the chunk table) and 32 bytes of SHA-256 over everything
 * before it (the record's own check).  The pages live in the "tables"
 * database under digest + 8-byte big-endian page number. */
struct ag_blob_rec {
	uint32_t version;
	uint32_t chunk_size;
	uint64_t size;
	int64_t created;
	uint64_t nchunks;
	uint64_t npages;
};

struct ag_txn {
	ag_store *s;
	MDB_txn *txn;
	ag_digest *created; /* objects this txn linked into objects/ */
	size_t ncreated, capcreated;
	uint64_t gen_added; /* the generation ag_txn_gen_add stored in this txn, or 0 */
	bool broken;	    /* an index read faulted inside it: it can only be aborted */
};

struct ag_blob {
	ag_store *s;
	ag_blob_info info;
	uint8_t *page_hashes; /* npages * 32, from the record */
	uint8_t **pages;      /* npages pointers, loaded on first use */
	uint64_t npages;
	int fd;		 /* O_DIRECT when asked and allowed */
	int fd_buffered; /* fallback, opened lazily; -1 until then */
	pthread_mutex_t lock;
	bool direct;
	bool dropbehind;
};

/* util.c */
int ag_errno(void); /* -errno, never 0 */
int ag_fsync_dir(int dirfd, const char *rel);
int64_t ag_now(void);
void ag_time_iso(int64_t t, char out[32]);
bool ag_chunk_size_ok(uint32_t cs);
uint64_t ag_nchunks(uint64_t size, uint32_t cs);
void ag_sha256_fast(const void *buf, size_t len, uint8_t out[32]);
int ag_write_all(int fd, const void *buf, size_t len);
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
int ag_blob_rec_get(MDB_txn *txn, ag_store *s, const ag_digest *d, ag_blob_info *info,
		    uint8_t **page_hashes, uint64_t *npages);
/* Loads page p of d's chunk table and checks it against its hash. */
int ag_table_page_get(ag_store *s, const ag_digest *d, uint64_t p, uint64_t nentries,
		      const uint8_t want[32], uint8_t **out);
int ag_blob_rec_put(ag_txn *t, const ag_blob_info *info, const uint8_t *table);
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

#endif
