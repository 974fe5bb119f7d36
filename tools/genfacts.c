/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Facts about generations that several commands need and the store does not
 * keep as fields: how old a generation's data is (the signed bundle's
 * creation_date, carried through `agstore rm`), which generation a mount
 * serves, and the tags a store holds (for "unknown tag" messages).
 * Read-only: nothing here writes to the store.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/tool.h"

/* How many `agstore rm` steps back the data date is looked for. */
#define DATA_DATE_MAX_HOPS 256

/* The bundle's creation_date recorded in g's verification report. */
static int bundle_date(const ag_gen *g, int64_t *when, bool *is_signed)
{
	_cleanup_json_ json_t *rep = NULL;
	const char *cd, *sig;

	if (!g->report)
		return -ENOENT;
	rep = ag_json_loads(g->report, 0, NULL);
	cd = json_string_value(json_object_get(json_object_get(rep, "bundle"), "creation_date"));
	if (!cd || ag_parse_time(cd, when) < 0)
		return -ENOENT;
	sig = json_string_value(json_object_get(rep, "signature"));
	*is_signed = sig && strcmp(sig, "good") == 0;
	return 0;
}

/* Every MODELS_REMOVED record's (generation, from), read in one pass. */
struct rm_links {
	struct rm_link {
		uint64_t gen, from;
	} * v;
	size_t n, cap;
};

static int collect_rm(uint64_t lineno, json_t *o, void *arg)
{
	struct rm_links *l = arg;
	const char *ev = json_string_value(json_object_get(o, "event"));
	json_int_t gen = json_integer_value(json_object_get(o, "generation"));
	json_int_t from = json_integer_value(json_object_get(o, "from"));

	if (!ev || strcmp(ev, "MODELS_REMOVED") != 0 || gen <= 0 || from <= 0)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct rm_link *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = (struct rm_link){(uint64_t)gen, (uint64_t)from};
	return 0;
}

static uint64_t rm_source(const struct rm_links *l, uint64_t gen)
{
	for (size_t i = l->n; i > 0; i--)
		if (l->v[i - 1].gen == gen)
			return l->v[i - 1].from;
	return 0;
}

void gen_data_date(ag_store *s, const ag_gen *g, struct data_date *dd)
{
	_cleanup_gen_ ag_gen *cur = NULL;
	struct rm_links links = {0};
	bool scanned = false;
	const ag_gen *at = g;

	dd->when = g->created;
	dd->from = DATE_CREATED;
	dd->via_gen = g->id;
	for (int hop = 0; hop < DATA_DATE_MAX_HOPS; hop++) {
		bool is_signed = false;
		uint64_t from;
		int64_t when;

		if (bundle_date(at, &when, &is_signed) == 0) {
			dd->when = when;
			dd->from = is_signed ? DATE_SIGNED_BUNDLE : DATE_UNSIGNED_BUNDLE;
			dd->via_gen = at->id;
			break;
		}
		/* `agstore rm` made at from another generation: its data is that one's. */
		if (!at->source || strcmp(at->source, "agstore rm") != 0)
			break;
		if (!scanned && ag_audit_foreach(s, collect_rm, &links) < 0)
			break;
		scanned = true;
		from = rm_source(&links, at->id);
		if (from == 0 || from >= at->id)
			break;
		ag_gen_free(cur);
		cur = NULL;
		if (ag_gen_get(s, from, &cur) < 0)
			break;
		at = cur;
	}
	free(links.v);
}

const char *data_date_source(enum data_date_from f)
{
	switch (f) {
	case DATE_SIGNED_BUNDLE:
		return "signed bundle creation_date";
	case DATE_UNSIGNED_BUNDLE:
		return "unsigned bundle creation_date";
	default:
		return "generation created (no bundle creation_date)";
	}
}

/* ---------- which generation a mount serves ---------- */

/* Reads a small file under dirfd into a NUL-terminated buffer. */
static int read_small(int dirfd, const char *path, char **out, size_t *len)
{
	_cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	_cleanup_free_ char *buf = NULL;
	size_t n = 0, cap = 4096;
	ssize_t k;

	if (fd < 0)
		return -errno;
	buf = malloc(cap + 1);
	if (!buf)
		return -ENOMEM;
	while ((k = read(fd, buf + n, cap - n)) > 0) {
		n += (size_t)k;
		if (n == cap) {
			char *nb = cap >= (1u << 24) ? NULL : realloc(buf, cap * 2 + 1);
			if (!nb)
				return -EFBIG;
			buf = nb;
			cap *= 2;
		}
	}
	if (k < 0)
		return -errno;
	buf[n] = '\0';
	*len = n;
	*out = TAKE_PTR(buf);
	return 0;
}

struct walk {
	const ag_gen *g;
	size_t seen;
	char *why; /* first mismatch, a sentence */
};

static int walk_manifests(int dirfd, const char *rel, int depth, struct walk *w);

static int check_manifest(int dirfd, const char *name, const char *rel, struct walk *w)
{
	_cleanup_free_ char *buf = NULL, *path = NULL;
	ag_digest d;
	size_t len = 0;
	ag_model *m;
	int r;

	if (asprintf(&path, "%s/%s", rel, name) < 0)
		return -ENOMEM;
	m = ag_gen_find(w->g, path);
	if (!m)
		return asprintf(&w->why,
				"it serves manifests/%s, which generation %" PRIu64
				" does not hold",
				path, w->g->id) < 0
			       ? -ENOMEM
			       : 1;
	if ((r = read_small(dirfd, name, &buf, &len)) < 0)
		return asprintf(&w->why, "manifests/%s cannot be read (%s)", path, ag_strerror(r)) <
				       0
			       ? -ENOMEM
			       : 1;
	ag_sha256(buf, len, &d);
	if (!ag_digest_eq(&d, &m->manifest))
		return asprintf(&w->why, "its manifests/%s differs from generation %" PRIu64 "'s",
				path, w->g->id) < 0
			       ? -ENOMEM
			       : 1;
	w->seen++;
	return 0;
}

/* Walks manifests/host/ns/model/tag; returns 1 on the first mismatch. */
static int walk_manifests(int dirfd, const char *rel, int depth, struct walk *w)
{
	DIR *dir;
	struct dirent *de;
	int r = 0;
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || !(dir = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return asprintf(&w->why, "manifests/%s cannot be listed (%s)", rel,
				strerror(errno)) < 0
			       ? -ENOMEM
			       : 1;
	}
	for (errno = 0; r == 0 && (de = readdir(dir)); errno = 0) {
		_cleanup_free_ char *sub = NULL;
		int cfd;

		if (de->d_name[0] == '.')
			continue; /* ".", "..", and the ".keep" placeholder */
		if (depth == 3) {
			r = check_manifest(dirfd, de->d_name, rel, w);
			continue;
		}
		if (asprintf(&sub, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name) < 0) {
			r = -ENOMEM;
			break;
		}
		cfd = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (cfd < 0) {
			r = asprintf(&w->why, "manifests/%s is not a directory", sub) < 0 ? -ENOMEM
											  : 1;
			break;
		}
		r = walk_manifests(cfd, sub, depth + 1, w);
		close(cfd);
	}
	if (r == 0 && errno)
		r = asprintf(&w->why, "manifests/%s cannot be listed (%s)", rel, strerror(errno)) <
				    0
			    ? -ENOMEM
			    : 1;
	closedir(dir);
	return r;
}

int mount_serves(const char *dir, const ag_gen *g, uint64_t *shown_current, char **why)
{
	_cleanup_close_ int root = -1, man = -1;
	char link[64];
	struct walk w = {.g = g};
	ssize_t n;
	int r;

	*shown_current = 0;
	*why = NULL;
	root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return asprintf(why, "%s cannot be opened (%s)", dir, strerror(errno)) < 0 ? -ENOMEM
											   : 1;
	n = readlinkat(root, "versions/current", link, sizeof(link) - 1);
	if (n < 0)
		return asprintf(why,
				"%s/versions/current cannot be read (%s): not a live agfs mount",
				dir, strerror(errno)) < 0
			       ? -ENOMEM
			       : 1;
	link[n] = '\0';
	if (parse_u64(link, 1, UINT64_MAX, shown_current) < 0)
		return asprintf(why, "%s/versions/current points to '%s', not a generation", dir,
				link) < 0
			       ? -ENOMEM
			       : 1;
	if (*shown_current != g->id)
		return asprintf(why, "its versions/current is generation %" PRIu64,
				*shown_current) < 0
			       ? -ENOMEM
			       : 1;
	man = openat(root, "manifests", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (man < 0)
		return asprintf(why, "%s/manifests cannot be opened (%s)", dir, strerror(errno)) < 0
			       ? -ENOMEM
			       : 1;
	r = walk_manifests(man, "", 0, &w);
	if (r == 0 && w.seen != g->nmodels)
		r = asprintf(&w.why, "it serves %zu of the %zu models of generation %" PRIu64,
			     w.seen, g->nmodels, g->id) < 0
			    ? -ENOMEM
			    : 1;
	*why = w.why;
	return r;
}

/* ---------- tags, for "unknown tag" messages ---------- */

char *gen_names_list(const ag_gen *g, size_t max)
{
	size_t cap = 1, n = 0;
	char *s;

	for (size_t i = 0; i < g->nmodels && i < max; i++)
		cap += strlen(g->models[i].name) + 2;
	if (g->nmodels > max)
		cap += 16;
	s = malloc(cap);
	if (!s)
		return NULL;
	s[0] = '\0';
	for (size_t i = 0; i < g->nmodels && i < max; i++) {
		_cleanup_free_ char *d = ag_name_display(g->models[i].name);
		const char *nm = d ? d : g->models[i].name;
		n += (size_t)snprintf(s + n, cap - n, "%s%s", i ? ", " : "", nm);
	}
	if (g->nmodels > max)
		snprintf(s + n, cap - n, ", ...");
	return s;
}
