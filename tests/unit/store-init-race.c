/* SPDX-License-Identifier: Apache-2.0 */
/* Twenty processes creating the same new store at once (two first imports,
 * issue 10 #12): every one opens a whole store, and the log holds exactly
 * one STORE_INIT. */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>

#include "tests/unit/store-common.h"

#define NPROC  20
#define ROUNDS 5

static int count_event(const char *store, const char *event)
{
	char p[700], want[64];
	snprintf(p, sizeof(p), "%s/audit.log", store);
	snprintf(want, sizeof(want), "\"event\":\"%s\"", event);
	FILE *f = fopen(p, "r");
	char *line = NULL;
	size_t cap = 0;
	int n = 0;
	while (f && getline(&line, &cap, f) > 0)
		n += strstr(line, want) != NULL;
	free(line);
	if (f)
		fclose(f);
	return n;
}

int main(void)
{
	for (int round = 0; round < ROUNDS; round++) {
		char name[32];
		snprintf(name, sizeof(name), "race%d", round);
		char path[600];
		snprintf(path, sizeof(path), "%s", temp_store_path(name));
		if (round % 2) /* an existing empty directory, or none at all */
			mkdir(path, 0755);
		int go[2];
		if (pipe(go) < 0)
			bail("pipe");
		pid_t pids[NPROC];
		for (int i = 0; i < NPROC; i++) {
			pids[i] = fork();
			if (pids[i] == 0) {
				char c;
				close(go[1]);
				if (read(go[0], &c, 1) < 0)
					_exit(99);
				ag_store *s;
				int r = ag_store_open(path, AG_WRITE | AG_CREATE, &s);
				if (r < 0) {
					fprintf(stderr, "# child %d: %s\n", i, ag_strerror(r));
					_exit(1);
				}
				ag_gen *g = NULL;
				r = ag_gen_get(s, 0, &g); /* a whole store: no current yet */
				ag_gen_free(g);
				ag_store_close(s);
				_exit(r == -ENOENT ? 0 : 2);
			}
		}
		close(go[0]);
		close(go[1]); /* all start now */
		int failed = 0;
		for (int i = 0; i < NPROC; i++) {
			int st;
			waitpid(pids[i], &st, 0);
			failed += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
		}
		is_int(failed, 0, "round %d: %d concurrent creations all open a whole store", round,
		       NPROC);
		is_int(count_event(path, "STORE_INIT"), 1, "round %d: exactly one STORE_INIT",
		       round);
		ag_store *s;
		int r = ag_store_open(path, AG_RDONLY, &s);
		ok(r == 0, "round %d: the store opens for reading", round);
		uint64_t bad = 0;
		char *why = NULL;
		ok(r == 0 && ag_audit_verify(s, &bad, &why) == 0, "round %d: audit chain whole",
		   round);
		free(why);
		ag_store_close(s);
	}

	/* A writer that died leaves directories in tmp/ too (a private GnuPG
	 * home): the next writer removes them, and opens. */
	char p[700];
	const char *path = temp_store_path("race0");
	snprintf(p, sizeof(p), "%s/tmp/gnupg-dead", path);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/tmp/gnupg-dead/private-keys-v1.d", path);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/tmp/gnupg-dead/private-keys-v1.d/k.key", path);
	FILE *f = fopen(p, "w");
	if (f)
		fclose(f);
	ag_store *s;
	int r = ag_store_open(path, AG_WRITE, &s);
	is_int(r, 0, "a writer opens a store whose tmp/ holds a directory tree");
	is_int(count_dir_entries(path, "tmp"), 0, "and empties tmp/");
	if (r == 0)
		ag_store_close(s);
	return done_testing();
}
