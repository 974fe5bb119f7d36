/* SPDX-License-Identifier: Apache-2.0 */
/* agstore cat: a blob's bytes on stdout, each chunk verified before it is written. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/tool.h"

static const char cat_usage[] =
	"Usage: agstore [--store DIR] cat DIGEST\n"
	"Write the blob DIGEST (sha256:<hex>, sha256-<hex> or <hex>) to standard\n"
	"output.  Every 4 KiB block is checked against the blob's fs-verity tree\n"
	"recorded at import before any of its bytes is written; a mismatch stops with\n"
	"exit status 1.\n";

#define CAT_STEP (1024u * 1024u)

static void aligned_freep(void *p)
{
	free(*(void **)p);
}

/* After a chunk mismatch at chunk bad: the verified bytes from off up to it. */
static ssize_t before_bad(ag_blob *b, uint64_t off, uint64_t bad, void *buf, size_t bufsize,
			  const uint8_t **p)
{
	uint64_t good = bad * ag_blob_get_info(b)->chunk_size;

	if (good <= off)
		return 0;
	return ag_blob_read(b, off, (size_t)(good - off), buf, bufsize, p, NULL);
}

/* Streams the whole blob; returns 0 or the first error (-AG_ECORRUPT with
 * *bad_chunk set for a chunk that does not match its hash). */
static int cat_stream(ag_blob *b, uint64_t *bad_chunk, bool *write_err)
{
	size_t bufsize = ag_blob_bufsize(b, CAT_STEP);
	__attribute__((cleanup(aligned_freep))) void *buf = NULL;
	uint64_t off = 0;

	if (posix_memalign(&buf, AG_ALIGN, bufsize) != 0)
		return -ENOMEM;
	for (;;) {
		const uint8_t *p;
		uint64_t bad = UINT64_MAX;
		ssize_t n = ag_blob_read(b, off, CAT_STEP, buf, bufsize, &p, &bad);
		bool mismatch = n == -EBADMSG && bad != UINT64_MAX;
		if (mismatch) {
			*bad_chunk = bad;
			n = before_bad(b, off, bad, buf, bufsize, &p);
		}
		if (n < 0)
			return (int)n;
		if (n == 0 && !mismatch)
			return 0;
		int r = ag_write_all(STDOUT_FILENO, p, (size_t)n);
		if (r < 0) {
			*write_err = true;
			return r;
		}
		if (mismatch)
			return -AG_ECORRUPT;
		off += (uint64_t)n;
	}
}

/* Opens the blob, or fails saying whether the record or only its object is missing. */
static int open_blob(struct tool *t, ag_store *s, const ag_digest *d, const char *dg, ag_blob **b)
{
	char rel[96];
	int r = ag_blob_open(s, d, AG_BLOB_DIRECT, b);

	if (r >= 0)
		return EX_AG_OK;
	if (r == -ENOENT && ag_blob_lookup(s, d, &(ag_blob_info){0}) == 0) {
		ag_object_relpath(d, rel, sizeof(rel));
		return tool_fail(t, EX_AG_PROBLEM, "%s/%s is missing: blob %s cannot be read",
				 t->store_path, rel, dg);
	}
	if (r == -ENOENT)
		return tool_fail(t, EX_AG_PROBLEM, "the store %s has no blob %s", t->store_path,
				 dg);
	return tool_fail_err(t, r, "cannot open blob %s in %s", dg, t->store_path);
}

int cmd_cat(struct tool *t, int argc, char **argv)
{
	static const struct option opts[] = {TOOL_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
	_cleanup_store_ ag_store *s = NULL;
	_cleanup_blob_ ag_blob *b = NULL;
	ag_digest d;
	char dg[80];
	uint64_t bad = 0;
	bool werr = false;
	int r;

	r = tool_getopt(t, argc, argv, opts, cat_usage, NULL, NULL);
	if (r >= 0)
		return r;
	if (argc - optind != 1)
		return tool_fail(t, EX_AG_USAGE, "cat takes one digest (see agstore cat --help)");
	if (parse_digest_arg(argv[optind], &d) < 0)
		return tool_fail(t, EX_AG_USAGE, "'%s' is not a SHA-256 digest", argv[optind]);
	fmt_digest(&d, dg, sizeof(dg));
	if ((r = tool_open(t, AG_RDONLY, &s)) > 0 || (r = open_blob(t, s, &d, dg, &b)) > 0)
		return r;
	r = cat_stream(b, &bad, &werr);
	if (r == -AG_ECORRUPT && !werr)
		return tool_fail(t, EX_AG_PROBLEM,
				 "blob %s in %s is corrupt: chunk %" PRIu64
				 " does not match its recorded hash",
				 dg, t->store_path, bad);
	if (r == -EPIPE)
		return EX_AG_IO; /* the reader went away: nothing to say */
	if (r < 0)
		return tool_fail_err(t, r, "%s %s",
				     werr ? "cannot write out blob" : "cannot read blob", dg);
	return EX_AG_OK;
}
