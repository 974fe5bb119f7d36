/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store-replay: an older catalog replayed in place of a newer one, for tests
 * (issue 12).  Root on a node could do this with LMDB alone.
 *
 *   store-replay STORE OLD NEW
 *	rewrites generation NEW's record so that it names generation OLD's
 *	catalog and signature (both validly signed, just not NEW's), and
 *	gives NEW OLD's models, so the record and the catalog agree.
 *
 * Run with the store idle (no writer).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "store/internal.h"

int main(int argc, char **argv)
{
	ag_store *s = NULL;
	ag_txn *t = NULL;
	ag_gen *old = NULL, *new = NULL;
	int r;

	if (argc != 4) {
		fprintf(stderr, "usage: store-replay STORE OLD NEW\n");
		return 2;
	}
	r = ag_store_open(argv[1], AG_WRITE, &s);
	if (r == 0)
		r = ag_txn_begin(s, &t);
	if (r == 0)
		r = ag_txn_gen_get(t, strtoull(argv[2], NULL, 10), &old);
	if (r == 0)
		r = ag_txn_gen_get(t, strtoull(argv[3], NULL, 10), &new);
	if (r == 0) {
		uint64_t id = new->id;
		int64_t created = new->created;
		ag_gen_free(new);
		new = old;
		old = NULL;
		new->id = id;
		new->created = created;
		r = ag_gen_put_txn(t, new, true);
	}
	if (r == 0) {
		r = ag_txn_commit(t);
		t = NULL;
	}
	if (t)
		ag_txn_abort(t);
	ag_gen_free(old);
	ag_gen_free(new);
	ag_store_close(s);
	if (r < 0) {
		fprintf(stderr, "store-replay: %s\n", ag_strerror(r));
		return 1;
	}
	return 0;
}
