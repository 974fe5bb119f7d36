/* SPDX-License-Identifier: Apache-2.0 */
/* A writer SIGKILLed at any moment leaves a store in which every record points
 * at a complete, correct object, and the next writer cleans tmp/. */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "tests/unit/store-common.h"

static void writer_loop(const char *path, uint64_t seed)
{
	ag_store *s;
	if (ag_store_open(path, AG_WRITE, &s) < 0)
		_exit(2);
	size_t size = 3u << 20;
	uint8_t *buf = malloc(size);
	for (uint64_t i = 0;; i++) {
		fill_bytes(buf, size, seed * 1000 + i);
		ag_txn *t;
		ag_stage *st;
		ag_blob_info bi;
		if (ag_txn_begin(s, &t) < 0 || ag_stage_begin(s, 0, &st) < 0)
			_exit(3);
		for (size_t off = 0; off < size; off += 65536)
			ag_stage_write(st, buf + off, 65536);
		if (ag_stage_end(st, &bi) < 0 || ag_stage_publish(st, t, NULL, NULL) < 0)
			_exit(4);
		ag_gen *g = ag_gen_new();
		ag_model m = {.name = "registry.ollama.ai/library/crash/latest",
			      .manifest = bi.digest,
			      .manifest_size = bi.size,
			      .config = {.digest = bi.digest, .size = bi.size}};
		ag_gen_add_model(g, &m);
		if (ag_txn_gen_add(t, g) < 0 || ag_txn_set_current(t, g->id) < 0 ||
		    ag_txn_commit(t) < 0)
			_exit(5);
		ag_gen_free(g);
		ag_stage_free(st);
	}
}

struct check {
	ag_store *s;
	int records, bad;
};

static int check_record(const ag_blob_info *bi, void *arg)
{
	struct check *c = arg;
	c->records++;
	uint64_t chunk;
	int r = ag_object_check(c->s, bi, &chunk);
	if (r < 0) {
		char hex[65];
		ag_digest_hex(&bi->digest, hex);
		diag("record %s: %s", hex, ag_strerror(r));
		c->bad++;
	}
	return 0;
}

static void check_store(const char *path, int round)
{
	ag_store *s;
	diag("round %d: %d staging files left by the killed writer", round,
	     count_dir_entries(path, "tmp"));
	int r = ag_store_open(path, AG_WRITE, &s);
	ok(r == 0, "round %d: the next writer opens the store: %s", round, ag_strerror(r));
	if (r < 0)
		return;
	is_int(count_dir_entries(path, "tmp"), 0, "round %d: tmp/ cleaned by the next writer",
	       round);
	struct check c = {s, 0, 0};
	ag_blob_foreach(s, check_record, &c);
	ok(c.bad == 0, "round %d: all %d records point at complete, correct objects", round,
	   c.records);
	ag_gen *g;
	r = ag_gen_get(s, 0, &g);
	if (r == 0) {
		ag_blob_info bi;
		ok(ag_blob_lookup(s, &g->models[0].manifest, &bi) == 0,
		   "round %d: the current generation's blobs have records", round);
		ag_gen_free(g);
	} else {
		ok(r == -ENOENT, "round %d: no generation yet is a clean state", round);
	}
	ag_store_close(s);
}

int main(void)
{
	const char *path = temp_store_path("crash");
	ag_store *s = new_store("crash");
	ag_store_close(s);
	srand((unsigned)time(NULL));
	for (int round = 1; round <= 8; round++) {
		pid_t pid = fork();
		if (pid == 0)
			writer_loop(path, (uint64_t)round);
		/* Kill somewhere between "just started" and "several commits in". */
		struct timespec ts = {0, (long)(rand() % 150 + 5) * 1000000L};
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		int status;
		waitpid(pid, &status, 0);
		ok(WIFSIGNALED(status), "round %d: writer killed after %ld ms", round,
		   ts.tv_nsec / 1000000L);
		check_store(path, round);
	}
	return done_testing();
}
