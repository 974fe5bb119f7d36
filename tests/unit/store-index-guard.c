/* SPDX-License-Identifier: Apache-2.0 */
/* A damaged index gives -AG_EINDEX, never a crash (issue 11 #4): the fault
 * guard itself (armed only around index reads; faults elsewhere reach the
 * handler installed before it), and a sweep that damages every page of a
 * real data.mdb in turn and reads everything back in a child process. */
#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "store/internal.h"
#include "tests/unit/store-common.h"

static int touch_bad(MDB_txn *txn, void *arg)
{
	(void)txn;
	return *(volatile int *)arg;
}

static volatile sig_atomic_t prev_called;
static void prev_handler(int sig)
{
	(void)sig;
	prev_called = 1;
	_exit(42);
}

static int run_child(void (*fn)(void *), void *arg)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		fn(arg);
		_exit(0);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	return st;
}

/* Outside any guard, a fault goes to the handler installed before ours. */
static volatile int *no_access; /* a PROT_NONE page */

static void fault_unguarded(void *arg)
{
	(void)arg;
	*no_access = 1;
}

struct sweep {
	const char *path;
	int eindex; /* calls that returned -AG_EINDEX after a successful open */
};

static int count_cb(const ag_blob_info *bi, int err, void *arg)
{
	(void)bi, (void)err;
	(*(int *)arg)++;
	return 0;
}

/* Everything a tool does with the index; exits with the number of calls
 * that said -AG_EINDEX (open included). */
static void read_everything(void *arg)
{
	const char *path = arg;
	ag_store *s;
	int eindex = 0, r = ag_store_open(path, AG_RDONLY, &s);
	if (r < 0)
		_exit(r == -AG_EINDEX ? 1 : 0);
	int n = 0;
	eindex += ag_blob_foreach_all(s, count_cb, &n) == -AG_EINDEX;
	uint64_t *ids = NULL;
	size_t nids = 0;
	eindex += ag_gen_list(s, &ids, &nids) == -AG_EINDEX;
	for (size_t i = 0; i < nids; i++) {
		ag_gen *g = NULL;
		eindex += ag_gen_get(s, ids[i], &g) == -AG_EINDEX;
		for (size_t j = 0; g && j < g->nmodels; j++)
			for (size_t k = 0; k < ag_model_nblobs(&g->models[j]); k++) {
				ag_blob *b = NULL;
				uint8_t buf[8192];
				ag_blob_info bi;
				eindex += ag_blob_lookup(s, ag_model_blob(&g->models[j], k), &bi) ==
					  -AG_EINDEX;
				r = ag_blob_open(s, ag_model_blob(&g->models[j], k), 0, &b);
				eindex += r == -AG_EINDEX;
				if (r == 0)
					eindex += ag_blob_pread(b, buf, sizeof(buf), 0, NULL) ==
						  -AG_EINDEX;
				ag_blob_close(b);
			}
		ag_gen_free(g);
	}
	free(ids);
	char *v = NULL;
	eindex += ag_meta_get(s, "last_id", &v) == -AG_EINDEX;
	free(v);
	ag_store_close(s);
	_exit(eindex > 100 ? 100 : eindex);
}

static void copy_file(const char *from, const char *to)
{
	FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
	char buf[65536];
	size_t n;
	while (a && b && (n = fread(buf, 1, sizeof(buf), a)) > 0)
		fwrite(buf, 1, n, b);
	if (a)
		fclose(a);
	if (b)
		fclose(b);
}

int main(void)
{
	/* 1. The guard. */
	ag_store *s = new_store("guard");
	no_access = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	volatile int *wild = no_access;
	is_int(ag_read_guarded(s, touch_bad, (void *)wild), -AG_EINDEX,
	       "a fault inside a guarded read is -AG_EINDEX");
	int ok1 = 7;
	is_int(ag_read_guarded(s, touch_bad, &ok1), 7, "a guarded read that does not fault");
	is_int(ag_read_guarded(s, touch_bad, (void *)wild), -AG_EINDEX, "and again");
	int st = run_child(fault_unguarded, s);
	/* Killed by SIGSEGV, or stopped by the sanitizer's own handler (which
	 * ours chains to) with a non-zero status. */
	ok((WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV) || (WIFEXITED(st) && WEXITSTATUS(st) != 0),
	   "a fault outside the guard still kills the process (status %#x)", st);
	/* A program's own handler, installed after the store's: the next
	 * open puts the guard back in front and chains to it. */
	char gpath[600];
	snprintf(gpath, sizeof(gpath), "%s", ag_store_path(s));
	ag_store_close(s);
	signal(SIGSEGV, prev_handler);
	if (ag_store_open(gpath, AG_RDONLY, &s) < 0)
		bail("reopen");
	is_int(ag_read_guarded(s, touch_bad, (void *)wild), -AG_EINDEX,
	       "after the program installed its own handler, the guard still works");
	st = run_child(fault_unguarded, NULL);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 42,
	   "and a fault outside the guard reaches the program's handler (status %#x)", st);
	ag_store_close(s);
	signal(SIGSEGV, SIG_DFL);

	/* 2. Every page of a real index damaged in turn. */
	s = new_store("sweep");
	ag_txn *t;
	ag_gen *g = ag_gen_new();
	if (ag_txn_begin(s, &t) < 0)
		bail("txn");
	for (int i = 0; i < 300; i++) {
		uint8_t buf[5000];
		fill_bytes(buf, sizeof(buf), (uint64_t)i);
		ag_stage *st2;
		ag_blob_info bi;
		if (ag_stage_begin(s, 4096, &st2) < 0 ||
		    ag_stage_write(st2, buf, sizeof(buf)) < 0 || ag_stage_end(st2, &bi) < 0 ||
		    ag_stage_publish(st2, t, NULL, NULL) < 0)
			bail("stage");
		ag_stage_free(st2);
		char name[80];
		snprintf(name, sizeof(name), "registry.ollama.ai/library/m%d/latest", i);
		ag_model m = {.name = name,
			      .manifest = bi.digest,
			      .manifest_size = bi.size,
			      .config = {.digest = bi.digest, .size = bi.size}};
		ag_gen_add_model(g, &m);
	}
	if (ag_txn_gen_add(t, g) < 0 || ag_txn_set_current(t, g->id) < 0 || ag_txn_commit(t) < 0)
		bail("commit");
	ag_gen_free(g);
	char path[600], data[700], good[700];
	snprintf(path, sizeof(path), "%s", ag_store_path(s));
	ag_store_close(s);
	snprintf(data, sizeof(data), "%s/index/data.mdb", path);
	snprintf(good, sizeof(good), "%s/data.mdb.good", path);
	copy_file(data, good);
	struct stat sb;
	stat(good, &sb);
	long npages = sb.st_size / 4096;
	int crashed = 0, open_refused = 0, later = 0;
	for (long p = 2; p < npages; p++) {
		for (int variant = 0; variant < 2; variant++) {
			copy_file(good, data);
			int fd = open(data, O_WRONLY);
			/* ff ff over the page's lower bound, or over its first node's
			 * page number / size */
			off_t off = p * 4096 + (variant ? 16 : 12);
			if (pwrite(fd, "\xff\xff", 2, off) != 2)
				bail("pwrite");
			close(fd);
			st = run_child((void (*)(void *))read_everything, path);
			if (WIFSIGNALED(st)) {
				crashed++;
				diag("page %ld variant %d: killed by signal %d", p, variant,
				     WTERMSIG(st));
			} else if (WEXITSTATUS(st) == 1) {
				open_refused++;
			} else if (WEXITSTATUS(st) > 1) {
				later++;
			}
		}
	}
	copy_file(good, data);
	diag("%ld pages: open refused %d times, a later read said damaged %d times", npages - 2,
	     open_refused, later);
	is_int(crashed, 0, "no damaged page crashes a reader");
	ok(open_refused + later > 0, "the damage is reported as -AG_EINDEX");
	return done_testing();
}
