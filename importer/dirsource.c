/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading a source that is a directory: an extracted bundle (every regular
 * file is a member) or a plain Ollama models tree (the manifests, then only
 * the blobs they name).  Every path is opened relative to its directory with
 * O_NOFOLLOW; a symbolic link or special file refuses the source.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "importer/import.h"

static int add_file(int dfd, const char *name, const char *path, const struct imp_read *rd,
		    struct imp_source *src, struct imp_error *e)
{
	/* O_NONBLOCK: a file swapped for a FIFO or device after the directory
	 * was read must not hang or poke the open; checked again on the fd. */
	_cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	struct stat st;

	if (fd < 0 && errno == ELOOP) /* became a link since the directory was read */
		return imp_fail(e, IMP_REFUSED, -EINVAL, path, "it is a symbolic link");
	if (fd < 0)
		return imp_fail(e, IMP_IO, -errno, path, "it cannot be opened (%m)");
	if (fstat(fd, &st) < 0)
		return imp_fail(e, IMP_IO, -errno, path, "it cannot be examined (%m)");
	if (!S_ISREG(st.st_mode))
		return imp_fail(e, IMP_REFUSED, -EINVAL, path, "it is not a regular file");
	struct imp_member *mb = imp_member_add(src, path);
	if (!mb && errno != E2BIG)
		return imp_fail(e, IMP_IO, -ENOMEM, path, "out of memory");
	if (!mb)
		return imp_fail(e, IMP_REFUSED, -E2BIG, path, "the source has too many files");
	return imp_member_fill_fd(mb, fd, st.st_size, rd, src, e);
}

static int walk(int dfd, const char *prefix, int depth, const struct imp_read *rd,
		struct imp_source *src, struct imp_error *e);

/* dtype: the directory entry's d_type; a regular file (DT_REG) is opened
 * without a separate fstatat (add_file checks the descriptor). */
static int walk_entry(int dfd, const char *name, unsigned char dtype, const char *prefix, int depth,
		      const struct imp_read *rd, struct imp_source *src, struct imp_error *e)
{
	struct stat st;
	_cleanup_free_ char *path = NULL;

	if (asprintf(&path, "%s%s%s", prefix, prefix[0] ? "/" : "", name) < 0)
		return imp_fail(e, IMP_IO, -ENOMEM, name, "out of memory");
	if (strlen(path) > IMP_MAX_PATH)
		return imp_fail(e, IMP_REFUSED, -EINVAL, name, "its path is too long");
	if (dtype == DT_REG)
		return add_file(dfd, name, path, rd, src, e);
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return imp_fail(e, IMP_IO, -errno, path, "it cannot be examined (%m)");
	if (S_ISLNK(st.st_mode))
		return imp_fail(e, IMP_REFUSED, -EINVAL, path, "it is a symbolic link");
	if (S_ISDIR(st.st_mode)) {
		_cleanup_close_ int sub =
			openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			return imp_fail(e, IMP_IO, -errno, path, "it cannot be opened (%m)");
		return walk(sub, path, depth + 1, rd, src, e);
	}
	if (!S_ISREG(st.st_mode))
		return imp_fail(e, IMP_REFUSED, -EINVAL, path, "it is a device, FIFO or socket");
	return add_file(dfd, name, path, rd, src, e);
}

static int walk(int dfd, const char *prefix, int depth, const struct imp_read *rd,
		struct imp_source *src, struct imp_error *e)
{
	int dup = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (depth > IMP_MAX_DEPTH)
		return imp_fail(e, IMP_REFUSED, -EINVAL, prefix, "it is nested too deep");
	if (dup < 0 || !(d = fdopendir(dup))) {
		if (dup >= 0)
			close(dup);
		return imp_fail(e, IMP_IO, -errno, prefix, "it cannot be listed (%m)");
	}
	while (r == 0 && (errno = 0, de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		r = walk_entry(dfd, de->d_name, de->d_type, prefix, depth, rd, src, e);
	}
	if (r == 0 && errno)
		r = imp_fail(e, IMP_IO, -errno, prefix, "it cannot be listed (%m)");
	closedir(d);
	return r;
}

int imp_read_dir(int dirfd, const struct imp_read *rd, struct imp_source *src, struct imp_error *e)
{
	return walk(dirfd, "", 0, rd, src, e);
}

/* ---------- plain Ollama trees ---------- */

static int blob_name(const char *name, ag_digest *d)
{
	if (strncmp(name, "sha256-", 7) != 0 && strncmp(name, "sha256:", 7) != 0)
		return -EINVAL;
	return ag_digest_parse(name + 7, strlen(name + 7), d);
}

/* The digests the manifests read so far name (config and layers), sorted. */
struct wanted {
	ag_digest *d;
	size_t n;
};

static int cmp_digest(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(ag_digest));
}

static int add_wanted(struct wanted *w, const ag_model *m)
{
	ag_digest *nd = realloc(w->d, (w->n + m->nlayers + 1) * sizeof(*nd));

	if (!nd)
		return -ENOMEM;
	w->d = nd;
	w->d[w->n++] = m->config.digest;
	for (size_t j = 0; j < m->nlayers; j++)
		w->d[w->n++] = m->layers[j].digest;
	return 0;
}

static int collect_wanted(struct imp_source *src, struct wanted *w)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < src->n; i++) {
		const char *why;
		ag_model m = {0};
		if (!src->m[i].data)
			continue;
		r = imp_manifest_parse(src->m[i].data, src->m[i].size, &m, &why);
		if (r == -ENOMEM)
			break;
		if (r < 0) {
			r = 0;
			continue; /* refused, with its reason, by the verification */
		}
		r = add_wanted(w, &m);
		free(m.config.media_type);
		for (size_t j = 0; j < m.nlayers; j++)
			free(m.layers[j].media_type);
		free(m.layers);
	}
	if (w->n)
		qsort(w->d, w->n, sizeof(*w->d), cmp_digest);
	return r;
}

static int read_blob_entry(int bfd, const char *name, unsigned char dtype,
			   const struct imp_read *rd, struct imp_source *src,
			   const struct wanted *w, struct imp_error *e)
{
	_cleanup_free_ char *path = NULL;
	ag_digest d;

	if (asprintf(&path, "blobs/%s", name) < 0)
		return imp_fail(e, IMP_IO, -ENOMEM, name, "out of memory");
	if (blob_name(name, &d) < 0 || w->n == 0 ||
	    !bsearch(&d, w->d, w->n, sizeof(*w->d), cmp_digest)) {
		json_array_append_new(src->skipped, json_string(path));
		return 0;
	}
	return walk_entry(bfd, name, dtype, "blobs", 1, rd, src, e);
}

/* blobs/ or manifests/ of the tree cannot be opened: missing, not a
 * directory or a link is the tree's fault (refused); anything else (no
 * permission, no descriptor, a disk error) is the host's (exit 4). */
static int open_failed(struct imp_error *e, const char *name)
{
	int err = errno;
	if (err == ENOENT)
		return imp_fail(e, IMP_REFUSED, -err, name, "the tree has no such directory");
	if (err == ENOTDIR || err == ELOOP)
		return imp_fail(e, IMP_REFUSED, -err, name, "it is not a directory");
	return imp_fail(e, IMP_IO, -err, name, "it cannot be opened (%s)", strerror(err));
}

static int read_blobs(int dirfd, const struct imp_read *rd, struct imp_source *src,
		      struct imp_error *e)
{
	_cleanup_close_ int bfd =
		openat(dirfd, "blobs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct wanted w = {0};
	struct dirent *de;
	DIR *d;
	int r = 0;

	if (bfd < 0)
		return open_failed(e, "blobs");
	if ((r = collect_wanted(src, &w)) < 0) {
		free(w.d);
		return imp_fail(e, IMP_IO, r, "manifests", "out of memory");
	}
	int dup = fcntl(bfd, F_DUPFD_CLOEXEC, 3);
	if (dup < 0 || !(d = fdopendir(dup))) {
		if (dup >= 0)
			close(dup);
		free(w.d);
		return imp_fail(e, IMP_IO, -errno, "blobs", "it cannot be listed (%m)");
	}
	while (r == 0 && (errno = 0, de = readdir(d))) {
		if (de->d_name[0] != '.')
			r = read_blob_entry(bfd, de->d_name, de->d_type, rd, src, &w, e);
	}
	if (r == 0 && errno) /* a read error is not the end of the directory */
		r = imp_fail(e, IMP_IO, -errno, "blobs", "it cannot be listed (%m)");
	closedir(d);
	free(w.d);
	return r;
}

int imp_read_ollama_dir(int dirfd, const struct imp_read *rd, struct imp_source *src,
			struct imp_error *e)
{
	_cleanup_close_ int mfd =
		openat(dirfd, "manifests", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int r;

	if (mfd < 0)
		return open_failed(e, "manifests");
	src->skipped = json_array();
	src->ollama_root = strdup("");
	if (!src->skipped || !src->ollama_root)
		return imp_fail(e, IMP_IO, -ENOMEM, "", "out of memory");
	r = walk(mfd, "manifests", 1, rd, src, e);
	if (r < 0)
		return r;
	return read_blobs(dirfd, rd, src, e);
}
