/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the store-* test helpers (see store-raw.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store/internal.h"
#include "tests/helpers/lib/store-raw.h"

int th_die(const char *what, int rc)
{
	fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what,
		rc > 0 ? mdb_strerror(rc) : ag_strerror(rc));
	return 1;
}

int th_index_begin(const char *store, MDB_env **env, MDB_txn **txn)
{
	char dir[4096];
	int rc;

	snprintf(dir, sizeof(dir), "%s/index", store);
	if ((rc = mdb_env_create(env)))
		return rc;
	rc = mdb_env_set_maxdbs(*env, 8);
	if (!rc)
		rc = mdb_env_set_mapsize(*env, AG_MAP_SIZE);
	if (!rc)
		rc = mdb_env_open(*env, dir, 0, 0644);
	if (!rc)
		rc = mdb_txn_begin(*env, NULL, 0, txn);
	if (rc)
		mdb_env_close(*env);
	return rc;
}

static int flip(MDB_txn *txn, const char *db, const void *key, size_t klen, long at)
{
	MDB_dbi dbi;
	MDB_val k = {klen, (void *)key}, v;
	uint8_t *copy;
	int rc = mdb_dbi_open(txn, db, 0, &dbi);

	if (!rc)
		rc = mdb_get(txn, dbi, &k, &v);
	if (rc)
		return rc;
	if (!(copy = malloc(v.mv_size)))
		return ENOMEM;
	memcpy(copy, v.mv_data, v.mv_size);
	copy[at < 0 ? v.mv_size - (size_t)-at : (size_t)at % v.mv_size] ^= 0x55;
	v.mv_data = copy;
	rc = mdb_put(txn, dbi, &k, &v, 0);
	free(copy);
	return rc;
}

int th_index_flip(const char *store, const char *db, const void *key, size_t klen, long at)
{
	MDB_env *env;
	MDB_txn *txn;
	int rc = th_index_begin(store, &env, &txn);

	if (rc)
		return rc;
	if ((rc = flip(txn, db, key, klen, at)) == 0)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	mdb_env_close(env);
	return rc;
}
