/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The metrics file (-o metrics=PATH): Prometheus' text exposition format,
 * base units, counters named *_total, every family with # HELP and # TYPE.
 * Written by the watch thread every FS_METRICS_EVERY_S seconds and at a
 * generation switch, never from a FUSE request: a temporary file in the same
 * directory, then rename(2), so node_exporter never reads half a file.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "fs/agfs.h"
#include "fs/metrics.h"
#include "store/isotime.h"

struct fs_counters fs_counters;

struct family {
	const char *name, *type, *help;
};

static const struct family families[] = {
	{"agfs_generation", "gauge", "Generation the mount serves at its root (0: none)."},
	{"agfs_generation_age_seconds", "gauge",
	 "Seconds since the signed creation_date of the bundle of the served generation."},
	{"agfs_verified_bytes_total", "counter", "Bytes read and verified against the store."},
	{"agfs_verified_blocks_total", "counter", "Chunks read and verified against the store."},
	{"agfs_verify_failures_total", "counter",
	 "Reads refused because the bytes failed verification."},
	{"agfs_verify_errors_total", "counter",
	 "Reads that failed because the store could not be checked (not a verdict)."},
	{"agfs_readers_killed_total", "counter",
	 "Readers killed while stuck re-reading a chunk that failed verification."},
	{"agfs_open_blobs", "gauge", "Blobs open through the mount now."},
	{"agfs_catalog_rejections_total", "counter",
	 "Generations not shown because their signed catalog was rejected (keyring=)."},
	{"agfs_last_pull_timestamp_seconds", "gauge",
	 "When agimport --registry last published a generation into the store."},
	{"agfs_generation_trees", "gauge",
	 "Generations whose trees the mount holds in memory: served, listed, or still in use."},
	{"agfs_inodes", "gauge", "Inodes (tree nodes) the mount holds in memory."},
};

size_t fs_metrics_format(const struct fs_metrics *m, char *buf, size_t len)
{
	const uint64_t vals[] = {m->generation,		0,
				 m->verified_bytes,	m->verified_blocks,
				 m->verify_failures,	m->verify_errors,
				 m->readers_killed,	m->open_blobs,
				 m->catalog_rejections, 0,
				 m->generation_trees,	m->inodes};
	_Static_assert(sizeof(vals) / sizeof(vals[0]) == sizeof(families) / sizeof(families[0]),
		       "one value for each family");
	size_t off = 0;
	if (len)
		buf[0] = '\0';
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		const struct family *f = &families[i];
		char val[32];
		if (i == 1) {
			if (!m->has_age)
				continue;
			snprintf(val, sizeof(val), "%" PRId64, m->generation_age_s);
		} else if (i == 9) {
			if (!m->has_last_pull)
				continue; /* a store that never pulled */
			snprintf(val, sizeof(val), "%" PRId64, m->last_pull);
		} else {
			snprintf(val, sizeof(val), "%" PRIu64, vals[i]);
		}
		int n = snprintf(off < len ? buf + off : NULL, off < len ? len - off : 0,
				 "# HELP %s %s\n# TYPE %s %s\n%s %s\n", f->name, f->help, f->name,
				 f->type, f->name, val);
		if (n < 0)
			return off;
		off += (size_t)n;
	}
	return off;
}

int fs_report_creation_date(const char *report, int64_t *when)
{
	if (!report)
		return -ENOENT;
	json_t *rep = ag_json_loads(report, 0, NULL);
	const char *p =
		json_string_value(json_object_get(json_object_get(rep, "bundle"), "creation_date"));
	/* the parser agstore status uses: both see the same date, or none */
	int r = p && ag_parse_time(p, when) == 0 ? 0 : -ENOENT;
	json_decref(rep);
	return r;
}

static void collect(struct fs_ctx *c, struct fs_metrics *m)
{
	memset(m, 0, sizeof(*m));
	int64_t born = 0;
	pthread_rwlock_rdlock(&c->tree.lock);
	struct gtree *gt = c->tree.current;
	if (gt) {
		m->generation = gt->id;
		if (fs_report_creation_date(gt->gen->report, &born) < 0)
			born = gt->gen->created;
	}
	m->generation_trees = c->tree.ngens;
	m->inodes = c->tree.ninodes;
	pthread_rwlock_unlock(&c->tree.lock);
	if (born > 0) {
		m->has_age = true;
		m->generation_age_s = (int64_t)time(NULL) - born;
	}
	pthread_mutex_lock(&c->blobs.lock);
	m->open_blobs = c->blobs.n;
	pthread_mutex_unlock(&c->blobs.lock);
	m->verified_bytes = atomic_load(&fs_counters.verified_bytes);
	m->verified_blocks = atomic_load(&fs_counters.verified_blocks);
	m->verify_failures = atomic_load(&fs_counters.verify_failures);
	m->verify_errors = atomic_load(&fs_counters.verify_errors);
	m->readers_killed = atomic_load(&fs_counters.readers_killed);
	m->catalog_rejections = atomic_load(&fs_counters.catalog_rejections);
	_cleanup_free_ char *pulled = NULL;
	if (ag_meta_get(c->store, "last_pull", &pulled) == 0 && pulled) {
		char *end;
		long long v = strtoll(pulled, &end, 10);
		if (*end == '\0' && v > 0)
			m->has_last_pull = true, m->last_pull = v;
	}
}

void metrics_write(struct fs_ctx *c)
{
	static int last_err;
	struct stat st;
	const char *path = c->opt.metrics;
	if (c->opt.metrics_off)
		return;
	if (!path && stat(FS_METRICS_DEFAULT_DIR, &st) == 0 && S_ISDIR(st.st_mode))
		path = FS_METRICS_DEFAULT;
	if (!path)
		return;
	struct fs_metrics m;
	char buf[4096], tmp[4200];
	collect(c, &m);
	size_t n = fs_metrics_format(&m, buf, sizeof(buf));
	if (n >= sizeof(buf) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid()) >= sizeof(tmp))
		return;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	int r = fd < 0 ? -errno : 0;
	if (r == 0 && write(fd, buf, n) != (ssize_t)n)
		r = -EIO;
	if (fd >= 0 && close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		if (r != last_err)
			syslog(LOG_WARNING, "cannot write the metrics file %s: %s", path,
			       strerror(-r));
	}
	last_err = r;
}
