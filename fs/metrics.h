/* SPDX-License-Identifier: Apache-2.0 */
/*
 * -o metrics=PATH: the mount's counters in Prometheus' text format, for
 * node_exporter's textfile collector.  fs_metrics_format() is pure (a unit
 * test checks it); the counters are bumped where fs/ already handles the
 * events; metrics_write() (watch.c's thread only) writes the file atomically.
 */
#ifndef AGFS_FS_METRICS_H
#define AGFS_FS_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FS_METRICS_DEFAULT_DIR "/var/lib/prometheus/node-exporter"
#define FS_METRICS_DEFAULT     FS_METRICS_DEFAULT_DIR "/agfs.prom"
#define FS_METRICS_EVERY_S     15

struct fs_metrics {
	uint64_t generation;	  /* served id, 0: none */
	bool has_age;		  /* generation_age_seconds known */
	int64_t generation_age_s; /* now - the bundle's creation_date (or the generation's created)
				   */
	uint64_t verified_bytes;
	uint64_t verified_blocks;
	uint64_t verify_failures;
	uint64_t verify_errors;
	uint64_t readers_killed;
	uint64_t open_blobs;
	uint64_t catalog_rejections;
	bool has_last_pull;
	int64_t last_pull;	   /* unix seconds of the last registry pull that published */
	uint64_t generation_trees; /* generations whose trees are in memory */
	uint64_t inodes;	   /* nodes in memory */
};

/* The counters, process-wide (one mount per process). */
struct fs_counters {
	_Atomic uint64_t verified_bytes, verified_blocks, verify_failures, verify_errors,
		readers_killed, catalog_rejections;
};
extern struct fs_counters fs_counters;

/* Formats m into buf (NUL-terminated); returns the length it needs (as
 * snprintf), so a result >= len means buf was too small. */
size_t fs_metrics_format(const struct fs_metrics *m, char *buf, size_t len);

/* The bundle's creation_date ("YYYY-MM-DD[THH:MM[:SS][Z]]", read by
 * ag_parse_time() as agstore reads it) from a generation's verification
 * report (JSON text); -ENOENT when it has none or not a real date. */
int fs_report_creation_date(const char *report, int64_t *when);

struct fs_ctx;
/* Rewrites the metrics file (temp file + rename) if -o metrics= asks for one. */
void metrics_write(struct fs_ctx *c);

#endif
