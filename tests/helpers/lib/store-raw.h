/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the store-* test helpers share (tests/helpers/lib/, linked into every
 * helper): their one-line failure, and raw LMDB access to a store's index for
 * the damage and the old formats the store library would never write.
 */
#ifndef AGFS_TESTS_STORE_RAW_H
#define AGFS_TESTS_STORE_RAW_H

#include <stddef.h>

#include <lmdb.h>

/* "PROGRAM: what: reason" on stderr; rc an LMDB code (> 0) or -errno /
 * -AG_E*.  Returns 1, the helpers' exit code for a failure. */
int th_die(const char *what, int rc);

/* STORE's index opened as the library opens it for writing (8 databases,
 * its map size), and one write transaction.  0 or an LMDB code (nothing
 * left open then). */
int th_index_begin(const char *store, MDB_env **env, MDB_txn **txn);

/* Flips one byte (xor 0x55) of the value at key in STORE's database db, in
 * a transaction of its own: byte at % its length, or counted from the end
 * when at < 0 (-1: the last).  0 or an LMDB code. */
int th_index_flip(const char *store, const char *db, const void *key, size_t klen, long at);

#endif
