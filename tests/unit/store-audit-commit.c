/* SPDX-License-Identifier: Apache-2.0 */
/* Audited commits (issue 10 #4): no generation without its record, no success
 * without the record, a writer killed between the two repaired by the next
 * one; and a failed append is cut back so the chain stays whole (issue 11 #10). */
#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "store/internal.h"
#include "tests/unit/store-common.h"

static ag_digest blob;

static ag_txn *txn_with_gen(ag_store *s, const char *label)
{
	ag_txn *t;
	if (ag_txn_begin(s, &t) < 0)
		bail("txn_begin");
	ag_gen *g = ag_gen_new();
	g->label = strdup(label);
	ag_model m = {.name = "registry.ollama.ai/library/audit/latest",
		      .manifest = blob,
		      .manifest_size = 5,
		      .config = {.digest = blob, .size = 5}};
	ag_gen_add_model(g, &m);
	if (ag_txn_gen_add(t, g) < 0 || ag_txn_set_current(t, g->id) < 0)
		bail("gen_add");
	ag_gen_free(g);
	return t;
}

static off_t file_size(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 ? st.st_size : -1;
}

struct find {
	const char *event;
	int count;
	json_t *last;
};

static int find_cb(uint64_t no, json_t *o, void *arg)
{
	struct find *f = arg;
	(void)no;
	const char *ev = json_string_value(json_object_get(o, "event"));
	if (ev && !strcmp(ev, f->event)) {
		f->count++;
		json_decref(f->last);
		f->last = json_incref(o);
	}
	return 0;
}

static struct find find_event(ag_store *s, const char *event)
{
	struct find f = {event, 0, NULL};
	ag_audit_foreach(s, find_cb, &f);
	return f;
}

static int count_event(ag_store *s, const char *event)
{
	struct find f = find_event(s, event);
	json_decref(f.last);
	return f.count;
}

static bool chain_ok(ag_store *s)
{
	uint64_t line = 0;
	char *why = NULL;
	int r = ag_audit_verify(s, &line, &why);
	if (r < 0)
		diag("audit verify: line %llu: %s", (unsigned long long)line, why ? why : "-");
	free(why);
	return r == 0;
}

static uint64_t ngens(ag_store *s)
{
	uint64_t *ids = NULL;
	size_t n = 0;
	ag_gen_list(s, &ids, &n);
	free(ids);
	return n;
}

static void die_now(void)
{
	_exit(0);
}

int main(void)
{
	signal(SIGXFSZ, SIG_IGN);
	const char *path = temp_store_path("auditcommit");
	ag_store *s = new_store("auditcommit");
	char log[700];
	snprintf(log, sizeof(log), "%s/audit.log", path);
	ag_blob_info bi;
	if (ag_put_buf(s, "hello", 5, 0, NULL, &bi) < 0)
		bail("put");
	blob = bi.digest;

	/* 1. The plain case. */
	json_t *fields = json_pack("{s:s}", "source", "unit");
	int r = ag_txn_commit_audit(txn_with_gen(s, "one"), "BUNDLE_INGEST", "tester", fields);
	is_int(r, 0, "audited commit succeeds");
	struct find f = find_event(s, "BUNDLE_INGEST");
	ok(f.count == 1 && json_integer_value(json_object_get(f.last, "index_generation")) == 1 &&
		   json_object_get(f.last, "index_txn") &&
		   !strcmp(json_string_value(json_object_get(f.last, "source")), "unit"),
	   "its record names the generation and the index transaction");
	char *v = NULL;
	ag_meta_get(s, "audit_seq", &v);
	ok(v && f.last &&
		   strtoull(v, NULL, 10) ==
			   (uint64_t)json_integer_value(json_object_get(f.last, "seq")),
	   "the index's audit_seq is the record's seq (%s)", v ? v : "none");
	free(v);
	json_decref(f.last);
	is_int((int)ngens(s), 1, "one generation");

	/* 2. The record cannot be written (the file size limit tears the append
	 *    after a few bytes): nothing committed, the log cut back. */
	off_t before = file_size(log);
	struct rlimit old, lim;
	/* The generation (and its catalog blob) first: only the append is limited. */
	ag_txn *two = txn_with_gen(s, "two");
	getrlimit(RLIMIT_FSIZE, &old);
	lim = old;
	lim.rlim_cur = (rlim_t)before + 20;
	setrlimit(RLIMIT_FSIZE, &lim);
	r = ag_txn_commit_audit(two, "BUNDLE_INGEST", "tester", fields);
	setrlimit(RLIMIT_FSIZE, &old);
	ok(r < 0, "audited commit fails when the record cannot be appended: %s", ag_strerror(r));
	is_int((int)ngens(s), 1, "... and commits nothing");
	ok(file_size(log) == before, "... and cuts audit.log back to its length (%lld, was %lld)",
	   (long long)file_size(log), (long long)before);
	ok(chain_ok(s), "... so its chain is whole");

	/* 3. A plain ag_audit torn the same way: cut back, sequence continues. */
	lim.rlim_cur = (rlim_t)before + 20;
	setrlimit(RLIMIT_FSIZE, &lim);
	r = ag_audit(s, "TEST", "tester", fields);
	setrlimit(RLIMIT_FSIZE, &old);
	ok(r < 0 && file_size(log) == before, "a torn ag_audit append is cut back (%s)",
	   ag_strerror(r));
	is_int(ag_audit(s, "TEST", "tester", fields), 0, "the next append works");
	ok(chain_ok(s), "and the chain is whole");

	/* 3b. A torn tail left by a writer killed inside write(): cut off by
	 *     the next append, which says so; the chain stays whole. */
	FILE *lf = fopen(log, "a");
	fputs("{\"seq\":99,\"time\":\"2026-", lf);
	fclose(lf);
	uint64_t tl = 0;
	char *twhy = NULL;
	int tr = ag_audit_verify(s, &tl, &twhy);
	ok(tr == -AG_ECHAIN && twhy && strstr(twhy, "incomplete"),
	   "audit verify names a torn tail as an incomplete append: line %llu: %s",
	   (unsigned long long)tl, twhy ? twhy : "-");
	free(twhy);
	is_int(ag_audit(s, "TEST", "tester", fields), 0, "the next append works");
	ok(chain_ok(s), "and the chain is whole again");
	struct find tf = find_event(s, "TEST");
	ok(tf.last && json_integer_value(json_object_get(tf.last, "torn_tail_removed")) == 23,
	   "the record says how many bytes of torn tail it removed");
	json_decref(tf.last);

	/* 4. Killed between the record and the commit. */
	ag_store_close(s);
	pid_t pid = fork();
	if (pid == 0) {
		ag_store *c;
		if (ag_store_open(path, AG_WRITE, &c) < 0)
			_exit(3);
		ag_test_before_commit = die_now;
		ag_txn_commit_audit(txn_with_gen(c, "killed"), "BUNDLE_INGEST", "tester", NULL);
		_exit(4);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer died between record and commit");
	if (ag_store_open(path, AG_RDONLY, &s) < 0)
		bail("open");
	f = find_event(s, "BUNDLE_INGEST");
	is_int(f.count, 2, "its record is in the log");
	json_int_t lost_seq = json_integer_value(json_object_get(f.last, "seq"));
	json_decref(f.last);
	is_int((int)ngens(s), 1, "its generation is not in the index");
	is_int(count_event(s, "INDEX_COMMIT_LOST"), 0, "a reader repairs nothing");
	ag_store_close(s);
	if (ag_store_open(path, AG_WRITE, &s) < 0)
		bail("open");
	f = find_event(s, "INDEX_COMMIT_LOST");
	ok(f.count == 1 && json_integer_value(json_object_get(f.last, "for_seq")) == lost_seq,
	   "the next writer's open appends INDEX_COMMIT_LOST for record %lld", (long long)lost_seq);
	json_decref(f.last);
	ok(chain_ok(s), "chain whole after the repair");
	ag_store_close(s);
	if (ag_store_open(path, AG_WRITE, &s) < 0)
		bail("open");
	is_int(count_event(s, "INDEX_COMMIT_LOST"), 1, "a second open repairs nothing more");
	r = ag_txn_commit_audit(txn_with_gen(s, "three"), "BUNDLE_INGEST", "tester", fields);
	is_int(r, 0, "the next audited commit succeeds");
	is_int((int)ngens(s), 2, "two generations");
	is_int(count_event(s, "INDEX_COMMIT_LOST"), 1, "still one INDEX_COMMIT_LOST");
	ok(chain_ok(s), "chain whole at the end");
	json_decref(fields);
	ag_store_close(s);
	return done_testing();
}
