/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fault injection for the store's tests (tests/t33*):
 *   store-faults readers STORE MAX HOLD
 *       be the first to open STORE's index (remove index/lock.mdb before, with
 *       nothing else open) with a reader table of MAX slots, hold HOLD read
 *       transactions, print "ready" and wait for standard input to close.
 *   store-faults damage-record STORE HEX
 *       overwrite the blob record of HEX with bytes that fail its check.
 *   store-faults break-record STORE HEX
 *       flip a byte of the version of HEX's blob record: every read of the
 *       record fails, even a lookup that does not check its sum.
 *   store-faults audited-gen STORE
 *       copy the current generation into a new one and make it current with
 *       an audited commit (ag_txn_commit_audit, event TEST_COMMIT).
 *   store-faults audited-put STORE FILE
 *       stage FILE, publish it, and commit a generation whose one model uses
 *       it as manifest and config, with an audited commit (TEST_PUT).
 */
#include <fcntl.h>
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"
#include "tests/helpers/lib/store-raw.h"

static int readers(const char *store, int max, int hold)
{
	char dir[4096];
	MDB_env *env;
	snprintf(dir, sizeof(dir), "%s/index", store);
	int rc = mdb_env_create(&env);
	if (!rc)
		rc = mdb_env_set_maxreaders(env, (unsigned)max);
	if (!rc)
		rc = mdb_env_set_maxdbs(env, 8);
	if (!rc)
		rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0644);
	if (rc)
		return th_die(dir, rc);
	MDB_txn **held = calloc((size_t)hold + 1, sizeof(*held));
	for (int i = 0; i < hold; i++)
		if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &held[i])))
			return th_die("holding a reader slot", rc);
	printf("ready\n");
	fflush(stdout);
	char buf[64];
	while (read(STDIN_FILENO, buf, sizeof(buf)) > 0)
		;
	for (int i = 0; i < hold; i++)
		mdb_txn_abort(held[i]);
	free(held);
	mdb_env_close(env);
	return 0;
}

static int damage_record(const char *store, const char *hex, long at)
{
	ag_digest d;
	int rc;
	if (ag_digest_parse(hex, strlen(hex), &d) < 0)
		return th_die(hex, -AG_EBADNAME);
	/* Same length, one byte flipped: of the record's own check (-1), or of
	 * its version (0). */
	if ((rc = th_index_flip(store, "blobs", d.b, 32, at)))
		return th_die("damaging the record", rc);
	return 0;
}

static int audited_gen(const char *store)
{
	ag_store *s;
	ag_txn *t;
	ag_gen *g;
	int r = ag_store_open(store, AG_WRITE, &s);
	if (r == 0)
		r = ag_txn_begin(s, &t);
	if (r < 0)
		return th_die(store, r);
	/* An empty generation: its catalog needs no blob record (some may be
	 * damaged on purpose by then). */
	g = ag_gen_new();
	if ((r = ag_txn_gen_add(t, g)) < 0 || (r = ag_txn_set_current(t, g->id)) < 0)
		return th_die("adding the generation", r);
	if ((r = ag_txn_commit_audit(t, "TEST_COMMIT", "store-faults", NULL)) < 0)
		return th_die("audited commit", r);
	printf("%llu\n", (unsigned long long)g->id);
	ag_gen_free(g);
	ag_store_close(s);
	return 0;
}

static int audited_put(const char *store, const char *file)
{
	ag_store *s;
	ag_txn *t;
	ag_stage *st;
	ag_blob_info bi;
	char buf[65536];
	ssize_t n;
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return th_die(file, -errno);
	int r = ag_store_open(store, AG_WRITE | AG_CREATE, &s);
	if (r == 0)
		r = ag_txn_begin(s, &t);
	if (r == 0)
		r = ag_stage_begin(s, 0, &st);
	while (r == 0 && (n = read(fd, buf, sizeof(buf))) > 0)
		r = ag_stage_write(st, buf, (size_t)n);
	if (r == 0)
		r = ag_stage_end(st, &bi);
	if (r == 0)
		r = ag_stage_publish_ex(st, t, NULL, NULL);
	if (r < 0)
		return th_die("staging", r);
	ag_gen *g = ag_gen_new();
	ag_model m = {.name = "registry.ollama.ai/library/put/latest",
		      .manifest = bi.digest,
		      .manifest_size = bi.size,
		      .config = {.digest = bi.digest, .size = bi.size}};
	if ((r = ag_gen_add_model(g, &m)) < 0 || (r = ag_txn_gen_add(t, g)) < 0 ||
	    (r = ag_txn_set_current(t, g->id)) < 0 ||
	    (r = ag_txn_commit_audit(t, "TEST_PUT", "store-faults", NULL)) < 0)
		return th_die("commit", r);
	ag_stage_free(st);
	ag_gen_free(g);
	ag_store_close(s);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "audited-put"))
		return audited_put(argv[2], argv[3]);
	if (argc == 5 && !strcmp(argv[1], "readers"))
		return readers(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (argc == 4 && !strcmp(argv[1], "damage-record"))
		return damage_record(argv[2], argv[3], -1);
	if (argc == 4 && !strcmp(argv[1], "break-record"))
		return damage_record(argv[2], argv[3], 0);
	if (argc == 3 && !strcmp(argv[1], "audited-gen"))
		return audited_gen(argv[2]);
	fprintf(stderr, "usage: store-faults readers STORE MAX HOLD | damage-record STORE HEX | "
			"break-record STORE HEX | "
			"audited-gen STORE\n");
	return 2;
}
