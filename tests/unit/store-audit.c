/* SPDX-License-Identifier: Apache-2.0 */
/* The audit journal's hash chain: appends, and verify naming the first bad line. */
#include <errno.h>

#include "tests/unit/store-common.h"

static char **read_lines(const char *path, int *n)
{
	FILE *f = fopen(path, "r");
	char **v = calloc(64, sizeof(char *));
	char *line = NULL;
	size_t cap = 0;
	*n = 0;
	while (f && *n < 64 && getline(&line, &cap, f) > 0)
		v[(*n)++] = strdup(line);
	free(line);
	if (f)
		fclose(f);
	return v;
}

static void write_lines(const char *path, char **v, int n)
{
	FILE *f = fopen(path, "w");
	for (int i = 0; i < n; i++)
		fputs(v[i], f);
	fclose(f);
}

static void expect_break(ag_store *s, const char *what, uint64_t want_line)
{
	uint64_t line = 0;
	char *why = NULL;
	int r = ag_audit_verify(s, &line, &why);
	ok(r == -AG_ECHAIN && line == want_line, "%s is detected at line %llu (got %llu: %s)", what,
	   (unsigned long long)want_line, (unsigned long long)line, why ? why : "-");
	free(why);
}

int main(void)
{
	ag_store *s = new_store("audit");
	char path[600];
	snprintf(path, sizeof(path), "%s/audit.log", ag_store_path(s));
	for (int i = 0; i < 5; i++) {
		json_t *f = json_pack("{s:i,s:s}", "n", i, "what", "test event");
		ok(ag_audit(s, "TEST", "tester", f) == 0, "append event %d", i);
		json_decref(f);
	}
	int n;
	char **orig = read_lines(path, &n);
	is_int(n, 6, "store init + 5 events");
	ok(strstr(orig[0], "\"event\":\"STORE_INIT\"") != NULL, "first line is STORE_INIT");
	ok(strstr(orig[3], "\"seq\":4") && strstr(orig[3], "\"operator\":\"tester\"") &&
		   strstr(orig[3], "\"n\":2"),
	   "a line carries seq, operator and the fields");
	ok(ag_audit_verify(s, NULL, NULL) == 0, "intact chain verifies");

	/* Edited line 3. */
	char **v = read_lines(path, &n);
	char *p = strstr(v[2], "test event");
	memcpy(p, "TEST EVENT", 10);
	write_lines(path, v, n);
	expect_break(s, "an edited line", 3);
	/* Deleted line 4. */
	write_lines(path, orig, 3);
	FILE *f = fopen(path, "a");
	fputs(orig[4], f);
	fputs(orig[5], f);
	fclose(f);
	expect_break(s, "a deleted line", 4);
	/* Swapped lines 2 and 3. */
	char *tmp = orig[1];
	orig[1] = orig[2];
	orig[2] = tmp;
	write_lines(path, orig, n);
	expect_break(s, "swapped lines", 2);
	orig[2] = orig[1];
	orig[1] = tmp;
	write_lines(path, orig, n);
	ok(ag_audit_verify(s, NULL, NULL) == 0, "restored chain verifies again");
	for (int i = 0; i < n; i++)
		free(orig[i]), free(v[i]);
	free(orig);
	free(v);
	ag_store_close(s);
	return done_testing();
}
