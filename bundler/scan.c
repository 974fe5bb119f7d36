/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The inputs of a bundle, walked and checked before a byte is written.
 *
 * The models directory is walked without following symbolic links, each
 * directory's entries in byte order (what `tar --sort=name` does), and becomes
 * models/models/... as `cp -r ~/.ollama/models models/` makes it.  Only
 * directories and regular files may be in it: a symbolic link (looping,
 * dangling or not: cp -r would copy it as a link, which agimport refuses), a
 * FIFO, socket or device, or a file that cannot be opened refuses the
 * bundle.  Every manifest is parsed with the importer's parser and every
 * blob it names must be there with the size it gives (or, in a delta, be one
 * the previous bundle carried).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundler/bundle.h"

#define TREE "models/models/"

struct bnd_member *bnd_add(struct bnd_set *s, const char *path)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct bnd_member *m = realloc(s->m, cap * sizeof(*m));
		if (!m)
			return NULL;
		s->m = m;
		s->cap = cap;
	}
	struct bnd_member *m = &s->m[s->n];
	memset(m, 0, sizeof(*m));
	m->dirfd = -1;
	m->mode = 0644;
	if (!(m->path = strdup(path)))
		return NULL;
	s->n++;
	return m;
}

void bnd_set_free(struct bnd_set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->m[i].path);
		free(s->m[i].src);
		free(s->m[i].data);
	}
	free(s->m);
	memset(s, 0, sizeof(*s));
}

static int add_dir(struct bnd_set *s, const char *path)
{
	struct bnd_member *m = bnd_add(s, path);

	if (!m)
		return -ENOMEM;
	m->is_dir = true;
	m->mode = 0755;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* ---------- the models tree ---------- */

struct walk {
	struct bnd_set *set;
	const char *models; /* as given, for messages */
	int rootfd;
	size_t files;
	struct imp_error *e;
};

static int refuse(struct walk *w, const char *rel, int rc, const char *why)
{
	char path[IMP_MAX_PATH + 256];

	snprintf(path, sizeof(path), "%s/%s", w->models, rel);
	return imp_fail(w->e, IMP_REFUSED, rc, path, "%s", why);
}

static const char *link_refusal(int dfd, const char *name)
{
	struct stat st;

	if (fstatat(dfd, name, &st, 0) < 0)
		return errno == ELOOP ? "it is a symbolic link that loops"
				      : "it is a dangling symbolic link";
	return "it is a symbolic link (cp -r copies it as a link, which a bundle cannot carry)";
}

/* Sorted entry names of dfd; distinguishes a read error from the end. */
static int list_dir(int dfd, char ***names, size_t *n)
{
	int fd = dup(dfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	size_t cap = 0;
	struct dirent *de;
	int r = 0;

	*names = NULL;
	*n = 0;
	if (!d) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		return r;
	}
	rewinddir(d);
	for (errno = 0; (de = readdir(d)); errno = 0) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (*n == cap) {
			char **nn = realloc(*names, (cap = cap ? cap * 2 : 32) * sizeof(char *));
			if (!nn)
				break;
			*names = nn;
		}
		if (!((*names)[*n] = strdup(de->d_name)))
			break;
		(*n)++;
	}
	r = errno ? -errno : 0;
	closedir(d);
	if (r == 0)
		qsort(*names, *n, sizeof(char *), cmp_str);
	return r;
}

static int walk_dir(struct walk *w, int dfd, const char *rel, int depth);

/* A name agimport would refuse (control characters, too long, too deep). */
static int path_refusal(struct walk *w, const char *sub, const char *mpath)
{
	_cleanup_free_ char *norm = NULL;
	const char *why = NULL;
	char msg[300];
	int r = imp_tarpath_check(mpath, strlen(mpath), &norm, &why);

	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		snprintf(msg, sizeof(msg), "its name cannot go into a bundle: %s", why);
		return refuse(w, sub, r, msg);
	}
	return 0;
}

static int walk_entry(struct walk *w, int dfd, const char *rel, const char *name, int depth)
{
	char sub[IMP_MAX_PATH + 1], mpath[IMP_MAX_PATH + 32];
	struct stat st;
	int r;

	if ((size_t)snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", name) >= sizeof(sub))
		return refuse(w, rel, -ENAMETOOLONG, "a path under it is too long");
	snprintf(mpath, sizeof(mpath), TREE "%s", sub);
	if ((r = path_refusal(w, sub, mpath)) < 0)
		return r;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return refuse(w, sub, -errno, "it cannot be read");
	if (S_ISLNK(st.st_mode))
		return refuse(w, sub, -ELOOP, link_refusal(dfd, name));
	if (S_ISDIR(st.st_mode)) {
		int cfd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cfd < 0)
			return refuse(w, sub, -errno, "the directory cannot be opened");
		r = add_dir(w->set, mpath);
		if (r == 0)
			r = walk_dir(w, cfd, sub, depth + 1);
		close(cfd);
		return r;
	}
	if (!S_ISREG(st.st_mode))
		return refuse(w, sub, -EINVAL,
			      "it is a FIFO, socket or device, not a regular file");
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return refuse(w, sub, -errno, "it cannot be opened for reading");
	close(fd);
	if (++w->files > BND_MAX_FILES)
		return refuse(w, "", -E2BIG, "it holds too many files");
	struct bnd_member *m = bnd_add(w->set, mpath);
	if (!m || !(m->src = strdup(sub)))
		return -ENOMEM;
	m->dirfd = w->rootfd;
	m->size = (uint64_t)st.st_size;
	return 0;
}

static int walk_dir(struct walk *w, int dfd, const char *rel, int depth)
{
	char **names;
	size_t n;
	int r;

	if (depth > IMP_MAX_DEPTH)
		return refuse(w, rel, -ELOOP, "it is nested too deeply");
	if ((r = list_dir(dfd, &names, &n)) < 0)
		return refuse(w, *rel ? rel : ".", r, "the directory cannot be read");
	for (size_t i = 0; r == 0 && i < n; i++)
		r = walk_entry(w, dfd, rel, names[i], depth);
	free_names(names, n);
	return r;
}

/* ---------- manifests and the blobs they name ---------- */

static struct bnd_member *find_member(struct bnd_set *s, size_t from, size_t to, const char *path)
{
	/* Members of one directory are in byte order; the tree is depth-first,
	 * so a plain scan of the models range is simplest and still linear. */
	for (size_t i = from; i < to; i++)
		if (strcmp(s->m[i].path, path) == 0)
			return &s->m[i];
	return NULL;
}

static void name_digests(struct bnd_set *s, size_t from, size_t to, struct bnd_delta *delta)
{
	for (size_t i = from; i < to; i++) {
		struct bnd_member *m = &s->m[i];
		const char *p = m->path + strlen(TREE "blobs/");
		if (m->is_dir || strncmp(m->path, TREE "blobs/", strlen(TREE "blobs/")) != 0 ||
		    strchr(p, '/') || (strncmp(p, "sha256-", 7) && strncmp(p, "sha256:", 7)) ||
		    ag_digest_parse(p + 7, strlen(p + 7), &m->name_digest) < 0)
			continue;
		m->has_name_digest = true;
		m->omitted = delta && bnd_delta_has(delta, &m->name_digest);
	}
}

/* Blob members by digest, for the manifests' references. */
struct blobidx {
	const ag_digest *d;
	struct bnd_member *m;
};
static int cmp_blobidx(const void *a, const void *b)
{
	return memcmp(((const struct blobidx *)a)->d, ((const struct blobidx *)b)->d,
		      sizeof(ag_digest));
}

static int check_ref(struct walk *w, struct blobidx *idx, size_t n, const char *man,
		     const ag_layer *l, struct bnd_delta *delta)
{
	struct blobidx key = {.d = &l->digest}, *hit;
	char hex[AG_HEX_LEN + 1], why[256];

	ag_digest_hex(&l->digest, hex);
	hit = bsearch(&key, idx, n, sizeof(*idx), cmp_blobidx);
	if (!hit && delta && bnd_delta_has(delta, &l->digest))
		return 0; /* carried by the previous bundle */
	if (!hit) {
		snprintf(why, sizeof(why), "it names blob sha256:%s, which is not in blobs/", hex);
		return refuse(w, man, -ENOENT, why);
	}
	if (hit->m->size != l->size) {
		snprintf(why, sizeof(why),
			 "it gives blob sha256:%.12s... %llu bytes, the file has %llu", hex,
			 (unsigned long long)l->size, (unsigned long long)hit->m->size);
		return refuse(w, man, -AG_EDIGEST, why);
	}
	return 0;
}

static int read_small(int dfd, const char *rel, uint64_t size, char **out)
{
	_cleanup_close_ int fd = openat(dfd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	char *buf;
	size_t got = 0;

	if (fd < 0)
		return -errno;
	if (size > IMP_MAX_SMALL)
		return -E2BIG;
	if (!(buf = malloc(size + 1)))
		return -ENOMEM;
	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);
		if (n <= 0) {
			free(buf);
			return n < 0 ? -errno : -EIO;
		}
		got += (size_t)n;
	}
	buf[size] = '\0';
	*out = buf;
	return 0;
}

static bool is_manifest_path(const char *p)
{
	int slashes = 0;
	size_t n = strlen(p);

	if (strncmp(p, TREE "manifests/", strlen(TREE "manifests/")) != 0)
		return false;
	for (const char *q = p + strlen(TREE "manifests/"); *q; q++)
		slashes += *q == '/';
	return slashes == 3 && !(n > 4 && strcmp(p + n - 4, ".sig") == 0);
}

static int check_manifest(struct walk *w, struct bnd_member *m, struct blobidx *idx, size_t n,
			  struct bnd_delta *delta)
{
	ag_model model = {0};
	const char *why;
	char msg[300];
	int r = read_small(w->rootfd, m->src, m->size, &m->data);

	if (r == -E2BIG)
		return refuse(w, m->src, r, "it is too large for a manifest");
	if (r < 0)
		return refuse(w, m->src, r, "it cannot be read");
	r = imp_manifest_parse(m->data, m->size, &model, &why);
	if (r < 0) {
		snprintf(msg, sizeof(msg), "it is not a valid manifest: %s", why);
		ag_model_clear(&model);
		return refuse(w, m->src, r, msg);
	}
	r = check_ref(w, idx, n, m->src, &model.config, delta);
	for (size_t i = 0; r == 0 && i < model.nlayers; i++)
		r = check_ref(w, idx, n, m->src, &model.layers[i], delta);
	ag_model_clear(&model);
	return r;
}

static int check_manifests(struct walk *w, size_t from, size_t to, struct bnd_delta *delta)
{
	struct bnd_set *s = w->set;
	struct blobidx *idx = calloc(to - from + 1, sizeof(*idx));
	size_t n = 0;
	int r = 0;

	if (!idx)
		return -ENOMEM;
	for (size_t i = from; i < to; i++)
		if (s->m[i].has_name_digest)
			idx[n++] = (struct blobidx){&s->m[i].name_digest, &s->m[i]};
	qsort(idx, n, sizeof(*idx), cmp_blobidx);
	for (size_t i = from; r == 0 && i < to; i++)
		if (!s->m[i].is_dir && is_manifest_path(s->m[i].path))
			r = check_manifest(w, &s->m[i], idx, n, delta);
	free(idx);
	return r;
}

static int scan_models(const struct bnd_inputs *in, struct bnd_delta *delta, struct bnd_set *set,
		       int *models_dirfd, struct imp_error *e)
{
	struct walk w = {.set = set, .models = in->models, .e = e};
	size_t from;
	int r;

	w.rootfd = open(in->models, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w.rootfd < 0)
		return imp_fail(e, errno == ENOENT || errno == ENOTDIR ? IMP_USAGE : IMP_IO, -errno,
				in->models, "it cannot be opened as a directory (%m)");
	*models_dirfd = w.rootfd;
	if (faccessat(w.rootfd, "manifests", F_OK, AT_SYMLINK_NOFOLLOW) < 0 ||
	    faccessat(w.rootfd, "blobs", F_OK, AT_SYMLINK_NOFOLLOW) < 0)
		return imp_fail(e, IMP_REFUSED, -ENOENT, in->models,
				"it is not an Ollama models directory (no manifests/ and blobs/)");
	if ((r = add_dir(set, "models")) < 0 || (r = add_dir(set, "models/models")) < 0)
		return r;
	from = set->n;
	if ((r = walk_dir(&w, w.rootfd, "", 0)) < 0)
		return r;
	name_digests(set, from, set->n, delta);
	return check_manifests(&w, from, set->n, delta);
}

/* ---------- binaries, images, packages ---------- */

static int scan_files(struct bnd_set *set, const char *dir, char **files, size_t n, mode_t mode,
		      struct imp_error *e)
{
	char *const *sorted = files; /* sorted by the caller, by name in the bundle */
	char path[IMP_MAX_PATH + 32];
	int r = add_dir(set, dir);

	for (size_t i = 0; r == 0 && i < n; i++) {
		struct stat st;
		char *copy = strdup(sorted[i]);
		if (!copy) {
			r = -ENOMEM;
			break;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, basename(copy));
		free(copy);
		int fd = open(sorted[i], O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0)
			r = imp_fail(e, IMP_REFUSED, -errno, sorted[i], "it cannot be read (%m)");
		else if (!S_ISREG(st.st_mode))
			r = imp_fail(e, IMP_REFUSED, -EINVAL, sorted[i],
				     "it is not a regular file");
		else if (find_member(set, set->n - i, set->n, path))
			r = imp_fail(e, IMP_USAGE, -EEXIST, sorted[i],
				     "another file would also be %s in the bundle", path);
		if (fd >= 0)
			close(fd);
		struct bnd_member *m = r == 0 ? bnd_add(set, path) : NULL;
		if (r == 0 && (!m || !(m->src = strdup(sorted[i]))))
			r = -ENOMEM;
		if (r == 0) {
			m->mode = mode;
			m->size = (uint64_t)st.st_size;
			m->dirfd = AT_FDCWD;
		}
	}
	return r;
}

static int cmp_member(const void *a, const void *b)
{
	return strcmp(((const struct bnd_member *)a)->path, ((const struct bnd_member *)b)->path);
}

static int scan_sorted(struct bnd_set *set, const char *dir, char **files, size_t n, mode_t mode,
		       struct imp_error *e)
{
	size_t from = set->n + 1;
	int r = scan_files(set, dir, files, n, mode, e);

	if (r == 0)
		qsort(set->m + from, set->n - from, sizeof(*set->m), cmp_member);
	return r;
}

int bnd_scan(const struct bnd_inputs *in, struct bnd_delta *delta, struct bnd_set *set,
	     int *models_dirfd, struct imp_error *e)
{
	int r;

	*models_dirfd = -1;
	if ((r = scan_sorted(set, "binaries", in->binaries, in->nbinaries, 0755, e)) < 0 ||
	    (r = scan_sorted(set, "images", in->images, in->nimages, 0644, e)) < 0 ||
	    (r = scan_models(in, delta, set, models_dirfd, e)) < 0 ||
	    (r = scan_sorted(set, "packages", in->packages, in->npackages, 0644, e)) < 0)
		return r;
	return 0;
}
