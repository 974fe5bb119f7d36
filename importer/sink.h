/* SPDX-License-Identifier: Apache-2.0 */
/* The member sink shared by the archive and directory readers (sink.c). */
#ifndef AGFS_IMPORT_SINK_H
#define AGFS_IMPORT_SINK_H

#include <sys/stat.h>

#include "importer/import.h"

struct imp_sink {
	struct imp_member *mb;
	struct imp_source *src;
	const struct imp_read *rd;
	ag_hash *hash; /* dry run, spooled or unstaged members */
	bool spool;    /* bytes go to the source's spool file */
	bool small;    /* a small member's own stage, parked at the end: */
	char *qbuf;    /* ... its bytes, for rd->smallq, or NULL: written here */
	size_t qlen, qcap;
	bool keep;
	size_t keep_max;
	char *data;
	size_t len;
	uint64_t size;
};

/* size_hint: the announced size, or -1. */
int imp_sink_begin(struct imp_sink *k, struct imp_member *mb, const struct imp_read *rd,
		   struct imp_source *src, int64_t size_hint, struct imp_error *e);
int imp_sink_write(struct imp_sink *k, const void *buf, size_t len, struct imp_error *e);
int imp_sink_end(struct imp_sink *k, struct imp_error *e);
void imp_sink_abort(struct imp_sink *k);

#endif
