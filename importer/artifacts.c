/* SPDX-License-Identifier: Apache-2.0 */
/*
 * --artifacts-dir: verified non-model artifacts (binaries/, images/,
 * packages/, anything outside models/, manifest/ and signatures/ that a hash
 * binds) are copied from staging into DIR/<label>/ for the site's internal
 * repository.  The copy is written into a temporary directory beside it,
 * fsynced, and renamed into place, so DIR/<label> is either complete or
 * absent.  Files no hash covers are not copied.
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

static bool is_artifact(const struct imp_member *mb)
{
	if (!strncmp(mb->path, "models/", 7) || !strncmp(mb->path, "manifest/", 9) ||
	    !strncmp(mb->path, "signatures/", 11))
		return false;
	return mb->stage && (mb->bound & (IMP_BIND_ARTIFACT | IMP_BIND_SUMLIST));
}

/* Opens (creating) the parent directories of rel under root; returns a dir fd. */
static int open_parent(int root, const char *rel, const char **base)
{
	char part[IMP_MAX_PATH + 1];
	int fd = fcntl(root, F_DUPFD_CLOEXEC, 3);
	const char *p = rel, *slash;

	while (fd >= 0 && (slash = strchr(p, '/'))) {
		snprintf(part, sizeof(part), "%.*s", (int)(slash - p), p);
		if (mkdirat(fd, part, 0755) < 0 && errno != EEXIST) {
			close(fd);
			return -errno;
		}
		int sub = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int err = errno;
		close(fd);
		if (sub < 0)
			return -err;
		fd = sub;
		p = slash + 1;
	}
	*base = p;
	return fd < 0 ? -errno : fd;
}

static int copy_fd(int in, int out)
{
	enum { BUFSZ = 1 << 20 };
	_cleanup_free_ char *buf = malloc(BUFSZ);
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	while ((n = read(in, buf, BUFSZ)) > 0)
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));
			if (w < 0)
				return -errno;
			off += w;
		}
	if (n < 0)
		return -errno;
	return fsync(out) < 0 ? -errno : 0;
}

static int copy_member(int root, struct imp_member *mb)
{
	const char *base;
	_cleanup_close_ int dfd = open_parent(root, mb->path, &base);
	_cleanup_close_ int in = -1, out = -1;

	if (dfd < 0)
		return dfd;
	in = ag_stage_open_read(mb->stage);
	if (in < 0)
		return in;
	out = openat(dfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (out < 0)
		return -errno;
	return copy_fd(in, out);
}

void imp_remove_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;

	if (!d) {
		unlink(path);
		return;
	}
	while ((de = readdir(d))) {
		char *sub;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (asprintf(&sub, "%s/%s", path, de->d_name) < 0)
			break;
		if (de->d_type == DT_DIR)
			imp_remove_tree(sub);
		else
			unlink(sub);
		free(sub);
	}
	closedir(d);
	rmdir(path);
}

int imp_copy_artifacts(struct imp_source *src, const char *dir, const char *label, char **made,
		       struct imp_error *e)
{
	_cleanup_free_ char *tmp = NULL, *final = NULL;
	_cleanup_close_ int root = -1;
	int r = 0;

	*made = NULL;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return imp_fail(e, IMP_IO, -errno, dir, "it cannot be made (%m)");
	if (asprintf(&tmp, "%s/.%s.tmp.XXXXXX", dir, label) < 0 ||
	    asprintf(&final, "%s/%s", dir, label) < 0)
		return imp_fail(e, IMP_IO, -ENOMEM, dir, "out of memory");
	if (access(final, F_OK) == 0)
		return imp_fail(e, IMP_IO, -EEXIST, final, "it already exists");
	if (!mkdtemp(tmp) || (root = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return imp_fail(e, IMP_IO, -errno, dir,
				"a temporary directory cannot be made (%m)");
	for (size_t i = 0; r == 0 && i < src->n; i++)
		if (is_artifact(&src->m[i]) && (r = copy_member(root, &src->m[i])) < 0)
			imp_fail(e, IMP_IO, r, src->m[i].path, "copying it to %s failed (%s)", dir,
				 ag_strerror(r));
	if (r == 0 && (fsync(root) < 0 || rename(tmp, final) < 0))
		r = imp_fail(e, IMP_IO, -errno, final, "it cannot be put into place (%m)");
	if (r < 0) {
		imp_remove_tree(tmp);
		return r;
	}
	*made = TAKE_PTR(final);
	return 0;
}
