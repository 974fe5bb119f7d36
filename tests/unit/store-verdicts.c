/* SPDX-License-Identifier: Apache-2.0 */
/* "Checked, and wrong" kept apart from "could not check" (issue 11 #3): a
 * chunk-table page that cannot be loaded (its record deleted under an open
 * blob, LMDB's reader table full) is never a chunk mismatch; a full reader
 * table is waited out when a slot frees up. */
#include <errno.h>
#include <lmdb.h>
#include <signal.h>
#include <sys/wait.h>

#include "tests/unit/store-common.h"

#define CS   4096u
#define SIZE ((size_t)CS * 2500 + 123) /* 2501 blocks: 20 level-0 tree blocks */

static uint8_t *data;

static void put_blob(ag_store *s, ag_blob_info *bi)
{
	if (ag_put_buf(s, data, SIZE, CS, NULL, bi) < 0)
		bail("put");
}

static ssize_t read_chunk(ag_blob *b, uint64_t chunk, uint64_t *bad)
{
	static uint8_t back[CS];
	ssize_t n = ag_blob_pread(b, back, CS, chunk * CS, bad);
	if (n == CS && memcmp(back, data + chunk * CS, CS))
		return -1000; /* wrong bytes handed out */
	return n;
}

/* The child that owns a tiny reader table: opens the environment first
 * (so its 4 slots size index/lock.mdb), then takes and gives slots as the
 * parent says on the pipe. */
static void slot_holder(const char *path, int cmd, int ack)
{
	char dir[700];
	snprintf(dir, sizeof(dir), "%s/index", path);
	MDB_env *env;
	MDB_txn *txn[4] = {0};
	mdb_env_create(&env);
	mdb_env_set_maxreaders(env, 4);
	mdb_env_set_maxdbs(env, 8);
	if (mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0644))
		_exit(2);
	for (int i = 0; i < 3; i++)
		if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn[i]))
			_exit(3);
	char c;
	if (write(ack, "r", 1) != 1)
		_exit(4);
	while (read(cmd, &c, 1) == 1) {
		if (c == 'f') /* fill the last slot */
			mdb_txn_begin(env, NULL, MDB_RDONLY, &txn[3]);
		if (c == 'l') { /* let one go, a little later */
			usleep(300 * 1000);
			mdb_txn_abort(txn[3]);
		}
		if (write(ack, &c, 1) != 1)
			_exit(5);
	}
	_exit(0);
}

static void say(int fd, int ack, char c)
{
	char got;
	if (write(fd, &c, 1) != 1 || (c != 'l' && read(ack, &got, 1) != 1))
		bail("slot holder gone");
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	data = malloc(SIZE);
	fill_bytes(data, SIZE, 5);

	/* 1. The record deleted under an open blob (gc without leases). */
	ag_store *s = new_store("verdicts");
	char path[600];
	snprintf(path, sizeof(path), "%s", ag_store_path(s));
	ag_blob_info bi;
	put_blob(s, &bi);
	ag_store_close(s);
	if (ag_store_open(path, AG_RDONLY, &s) < 0)
		bail("open");
	ag_blob *b;
	if (ag_blob_open(s, &bi.digest, 0, &b) < 0)
		bail("blob open");
	uint64_t bad = UINT64_MAX;
	is_int((int)read_chunk(b, 3, &bad), (int)CS, "page 0 loads and verifies");
	pid_t pid = fork();
	if (pid == 0) {
		ag_store *w;
		ag_txn *t;
		if (ag_store_open(path, AG_WRITE, &w) < 0 || ag_txn_begin(w, &t) < 0 ||
		    ag_txn_blob_del(t, &bi.digest) < 0 || ag_txn_commit(t) < 0)
			_exit(1);
		_exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "another process deletes the blob's record");
	ssize_t n = read_chunk(b, 2100, &bad);
	ok(n < 0 && n != -EBADMSG && n != -AG_ECORRUPT && n != -AG_EDIGEST,
	   "a read needing an unloaded page now fails as could-not-check (%s), not a mismatch",
	   ag_strerror((int)n));
	is_int((int)n, -ESTALE, "-ESTALE: the blob was deleted since it was opened");
	ok(bad == UINT64_MAX, "no chunk is named bad");
	is_int((int)read_chunk(b, 5, &bad), (int)CS, "the loaded page still verifies");
	ag_blob_close(b);
	ag_store_close(s);

	/* 2. LMDB's reader table full. */
	if ((s = new_store("readers")) == NULL)
		bail("store");
	snprintf(path, sizeof(path), "%s", ag_store_path(s));
	put_blob(s, &bi);
	ag_store_close(s);
	char lock[700];
	snprintf(lock, sizeof(lock), "%s/index/lock.mdb", path);
	unlink(lock); /* nobody has it open: the holder sizes the new one */
	int cmd[2], ack[2];
	if (pipe(cmd) < 0 || pipe(ack) < 0)
		bail("pipe");
	pid = fork();
	if (pid == 0) {
		close(cmd[1]);
		close(ack[0]);
		slot_holder(path, cmd[0], ack[1]);
	}
	close(cmd[0]);
	close(ack[1]);
	char c;
	if (read(ack[0], &c, 1) != 1)
		bail("slot holder did not start");
	if (ag_store_open(path, AG_RDONLY, &s) < 0 || ag_blob_open(s, &bi.digest, 0, &b) < 0)
		bail("open with one free slot");
	unsigned nfree = 99;
	int rf = ag_store_readers_free(s, &nfree);
	ok(rf == 0 && nfree == 1, "one reader slot free (%u)", nfree);
	is_int((int)read_chunk(b, 1, &bad), (int)CS, "a read with one free slot works");
	say(cmd[1], ack[0], 'f');
	rf = ag_store_readers_free(s, &nfree);
	ok(rf == 0 && nfree == 0, "reader table full (%u free)", nfree);
	bad = UINT64_MAX;
	n = read_chunk(b, 2400, &bad); /* beyond the tree blocks read ahead */
	is_int((int)n, -EAGAIN, "a read needing a page with the table full: -EAGAIN (%s)",
	       ag_strerror((int)n));
	ok(bad == UINT64_MAX, "no chunk is named bad");
	say(cmd[1], ack[0], 'l'); /* a slot frees up 300 ms from now */
	n = read_chunk(b, 2401, &bad);
	is_int((int)n, (int)CS, "a slot freed while the read waits: the read succeeds");
	if (read(ack[0], &c, 1) != 1)
		diag("no ack");
	ag_blob_close(b);
	ag_store_close(s);
	close(cmd[1]);
	waitpid(pid, &st, 0);
	free(data);
	return done_testing();
}
