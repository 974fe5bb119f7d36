/* SPDX-License-Identifier: Apache-2.0 */
/* Publishing over an existing object: deduplication re-hashes it and a damaged
 * one is replaced (issue 10 #8).  And every object open refuses what is not a
 * regular file without blocking on it (issue 11 #5). */
#include <errno.h>
#include <signal.h>

#include "tests/unit/store-common.h"

#define SIZE (300u * 1024u + 17u)

static uint8_t data[SIZE];
static ag_digest want;

/* Stages data and publishes it in a transaction of its own. */
static int publish(ag_store *s, const ag_digest *expected, enum ag_publish *how)
{
	ag_txn *t = NULL;
	ag_stage *st = NULL;
	int r = ag_txn_begin(s, &t);
	if (r == 0)
		r = ag_stage_begin(s, 0, &st);
	if (r == 0)
		r = ag_stage_write(st, data, SIZE);
	if (r == 0)
		r = ag_stage_end(st, NULL);
	if (r == 0)
		r = ag_stage_publish_ex(st, t, expected, how);
	if (r == 0)
		r = ag_txn_commit(TAKE_PTR(t));
	if (t)
		ag_txn_abort(t);
	ag_stage_free(st);
	return r;
}

static bool object_sound(ag_store *s)
{
	ag_blob_info bi;
	uint64_t bad;
	return ag_blob_lookup(s, &want, &bi) == 0 && ag_object_check(s, &bi, &bad) == 0;
}

static void replace_with(ag_store *s, const char *what)
{
	char p[1024];
	object_path(s, &want, p, sizeof(p));
	chmod(p, 0644);
	if (!strcmp(what, "flip")) {
		int fd = open(p, O_WRONLY);
		if (pwrite(fd, "\xff", 1, 70000) != 1)
			diag("pwrite: %s", strerror(errno));
		close(fd);
	} else if (!strcmp(what, "truncate")) {
		if (truncate(p, SIZE - 100) < 0)
			diag("truncate: %s", strerror(errno));
	} else {
		unlink(p);
		if (!strcmp(what, "fifo"))
			mkfifo(p, 0644);
		else if (!strcmp(what, "symlink")) {
			if (symlink("/etc/passwd", p) < 0)
				diag("symlink: %s", strerror(errno));
		} else if (!strcmp(what, "directory"))
			mkdir(p, 0755);
	}
}

static void repair(ag_store *s, const char *what)
{
	enum ag_publish how = AG_PUBLISH_NEW;
	replace_with(s, what);
	alarm(20); /* a blocking open of a FIFO would hang here */
	int r = publish(s, &want, &how);
	alarm(0);
	ok(r == 0 && how == AG_PUBLISH_REPAIRED, "%s object: re-publishing repairs it (%s, how=%d)",
	   what, ag_strerror(r), (int)how);
	ok(object_sound(s), "%s object: the object checks out afterwards", what);
}

/* Opens of an object that is a FIFO or a symlink: tampering, no hang. */
static void open_refused(ag_store *s, const char *what)
{
	ag_blob_info bi;
	uint64_t bad;
	ag_blob *b = NULL;
	replace_with(s, what);
	alarm(20);
	int r1 = ag_blob_open(s, &want, 0, &b);
	int r2 = ag_blob_open(s, &want, AG_BLOB_DIRECT, &b);
	int r3 = ag_blob_lookup(s, &want, &bi) == 0 ? ag_object_check(s, &bi, &bad) : -1;
	alarm(0);
	is_int(r1, -AG_ECORRUPT, "%s in an object's place: ag_blob_open says corrupt", what);
	is_int(r2, -AG_ECORRUPT, "%s in an object's place: ag_blob_open(DIRECT) says corrupt",
	       what);
	is_int(r3, -AG_ECORRUPT, "%s in an object's place: ag_object_check says corrupt", what);
	ag_blob_close(b);
	publish(s, &want, NULL); /* put it back */
}

int main(void)
{
	fill_bytes(data, SIZE, 42);
	ag_sha256(data, SIZE, &want);
	ag_store *s = new_store("publish");
	enum ag_publish how = AG_PUBLISH_REPAIRED;

	int r = publish(s, &want, &how);
	ok(r == 0 && how == AG_PUBLISH_NEW, "first publish links a new object (%d)", (int)how);
	r = publish(s, &want, &how);
	ok(r == 0 && how == AG_PUBLISH_DEDUP, "second publish deduplicates (%d)", (int)how);
	ag_digest other = want;
	other.b[0] ^= 1;
	is_int(publish(s, &other, &how), -AG_EDIGEST, "a wrong expected digest publishes nothing");

	repair(s, "flip");
	repair(s, "truncate");
	repair(s, "fifo");
	repair(s, "symlink");
	r = publish(s, &want, &how);
	ok(r == 0 && how == AG_PUBLISH_DEDUP, "after the repairs: deduplication again");

	bool was_new = true;
	ag_stage *st = NULL;
	ag_txn *t = NULL;
	ag_txn_begin(s, &t);
	ag_stage_begin(s, 0, &st);
	ag_stage_write(st, data, SIZE);
	ag_stage_end(st, NULL);
	r = ag_stage_publish(st, t, NULL, &was_new);
	ok(r == 0 && !was_new, "ag_stage_publish still says was_new=false for a dedup");
	ag_txn_commit(t);
	ag_stage_free(st);

	open_refused(s, "fifo");
	open_refused(s, "symlink");
	ok(object_sound(s), "object restored");

	ag_store_close(s);
	return done_testing();
}
