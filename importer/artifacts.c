/* SPDX-License-Identifier: Apache-2.0 */
/*
 * --artifacts-dir: non-model artifacts (binaries/, images/, packages/,
 * anything outside models/, manifest/ and signatures/) are copied from
 * staging for the site's internal repository:
 *   DIR/<label>/<path>             only what a signature binds (the two
 *                                  signed artifact paths, or "files")
 *   DIR/<label>/unverified/<path>  with --copy-unverified: what only the
 *                                  unsigned signatures/ lists cover
 *   DIR/<label>/.agimport.sha256   every copied file, sha256sum format
 * Files no hash covers are never copied.  The copy is made in a temporary
 * directory DIR/.agimport-tmp.<pid>.<label>.XXXXXX, fsynced, and renamed
 * into place only once the generation is committed, so a kill at any point
 * leaves DIR/<label> complete or absent; temporaries of dead runs are
 * removed by the next run.  A retry that finds DIR/<label> with the same
 * .agimport.sha256 takes it as done.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "importer/import.h"

enum kind { NOT_COPIED, VERIFIED, UNVERIFIED };

static enum kind artifact_kind(const struct imp_member *mb, bool signed_source)
{
	if (!strncmp(mb->path, "models/", 7) || !strncmp(mb->path, "manifest/", 9) ||
	    !strncmp(mb->path, "signatures/", 11) || (!mb->stage && !mb->spooled))
		return NOT_COPIED;
	if (signed_source && (mb->bound & (IMP_BIND_ARTIFACT | IMP_BIND_FILES)))
		return VERIFIED;
	if (mb->bound & (IMP_BIND_ARTIFACT | IMP_BIND_FILES | IMP_BIND_SUMLIST))
		return UNVERIFIED;
	return NOT_COPIED;
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

static int copy_range(int in, uint64_t off, uint64_t size, int out)
{
	enum { BUFSZ = 1 << 20 };
	_cleanup_free_ char *buf = malloc(BUFSZ);

	if (!buf)
		return -ENOMEM;
	while (size > 0) {
		ssize_t n = pread(in, buf, size < BUFSZ ? (size_t)size : BUFSZ, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		for (ssize_t w = 0; w < n;) {
			ssize_t k = write(out, buf + w, (size_t)(n - w));
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0)
				return -errno;
			w += k;
		}
		off += (uint64_t)n;
		size -= (uint64_t)n;
	}
	return fsync(out) < 0 ? -errno : 0;
}

static int copy_member(struct imp_source *src, int root, const char *rel, struct imp_member *mb)
{
	const char *base;
	_cleanup_close_ int dfd = open_parent(root, rel, &base);
	_cleanup_close_ int in = -1, out = -1;
	uint64_t off;

	if (dfd < 0)
		return dfd;
	in = imp_member_open_staged(src, mb, &off);
	if (in < 0)
		return in;
	out = openat(dfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (out < 0)
		return -errno;
	return copy_range(in, off, mb->size, out);
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

/* Temporaries ".agimport-tmp.<pid>.*" of runs that are gone. */
static void remove_stale(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		long pid;
		char *sub;
		if (sscanf(de->d_name, ".agimport-tmp.%ld.", &pid) != 1 || pid <= 0 ||
		    kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		if (asprintf(&sub, "%s/%s", dir, de->d_name) >= 0) {
			imp_remove_tree(sub);
			free(sub);
		}
	}
	closedir(d);
}

int imp_artifacts_dir_check(const char *dir, struct imp_error *e)
{
	_cleanup_free_ char *parent = strdup(dir);
	struct stat st;
	char *slash;

	if (!parent)
		return imp_fail(e, IMP_IO, -ENOMEM, dir, "out of memory");
	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return imp_fail(e, IMP_USAGE, -ENOTDIR, dir,
					"it is not a directory (--artifacts-dir)");
		if (access(dir, W_OK | X_OK) < 0)
			return imp_fail(e, IMP_IO, -errno, dir, "it is not writable (%m)");
		remove_stale(dir);
		return 0;
	}
	if (errno != ENOENT)
		return imp_fail(e, IMP_IO, -errno, dir, "it cannot be examined (%m)");
	/* Made when the copy starts, if its parent is there. */
	slash = strrchr(parent, '/');
	if (slash == parent)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(parent, ".");
	if (stat(parent, &st) < 0 || !S_ISDIR(st.st_mode))
		return imp_fail(e, IMP_USAGE, -ENOENT, dir,
				"neither it nor its parent directory exists (--artifacts-dir)");
	if (access(parent, W_OK | X_OK) < 0)
		return imp_fail(e, IMP_IO, -errno, dir, "it cannot be made (%m)");
	return 0;
}

/* The .agimport.sha256 of what is copied, in sha256sum's text format. */
static int add_sum(char **sums, size_t *len, const struct imp_member *mb, const char *rel)
{
	_cleanup_free_ char *line = imp_sumline_format(&mb->digest, rel);
	size_t n = line ? strlen(line) : 0;
	char *ns = line ? realloc(*sums, *len + n + 1) : NULL;

	if (!ns)
		return -ENOMEM;
	memcpy(ns + *len, line, n + 1);
	*sums = ns;
	*len += n;
	return 0;
}

static int write_file(int dfd, const char *name, const char *text, size_t len)
{
	_cleanup_close_ int fd =
		openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);

	if (fd < 0)
		return -errno;
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		off += (size_t)n;
	}
	return fsync(fd) < 0 ? -errno : 0;
}

static char *read_sums(const char *final)
{
	_cleanup_free_ char *path = NULL;
	char *buf = NULL;
	size_t cap = 0;
	FILE *f;

	if (asprintf(&path, "%s/.agimport.sha256", final) < 0 || !(f = fopen(path, "re")))
		return NULL;
	ssize_t n = getdelim(&buf, &cap, '\0', f);
	fclose(f);
	if (n < 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static int copy_all(struct imp_source *src, const struct imp_options *o, struct imp_result *res,
		    int root, char **sums, size_t *slen, struct imp_error *e)
{
	bool signed_source = res->signer != NULL;
	int r = 0;

	res->artifacts = json_array();
	res->unverified = json_array();
	if (!res->artifacts || !res->unverified)
		return imp_fail(e, IMP_IO, -ENOMEM, "", "out of memory");
	for (size_t i = 0; r == 0 && i < src->n; i++) {
		struct imp_member *mb = &src->m[i];
		enum kind k = artifact_kind(mb, signed_source);
		_cleanup_free_ char *rel = NULL;
		if (k == NOT_COPIED || (k == UNVERIFIED && !o->copy_unverified))
			continue;
		if (k == VERIFIED && o->copy_unverified && !strncmp(mb->path, "unverified/", 11))
			return imp_fail(e, IMP_REFUSED, -EEXIST, mb->path,
					"it would be copied into the unverified/ folder that "
					"--copy-unverified fills");
		if (asprintf(&rel, "%s%s", k == UNVERIFIED ? "unverified/" : "", mb->path) < 0)
			return imp_fail(e, IMP_IO, -ENOMEM, "", "out of memory");
		if ((r = copy_member(src, root, rel, mb)) < 0 ||
		    (r = add_sum(sums, slen, mb, rel)) < 0)
			return imp_fail(e, IMP_IO, r, mb->path, "copying it to %s failed (%s)",
					o->artifacts_dir, ag_strerror(r));
		json_array_append_new(k == VERIFIED ? res->artifacts : res->unverified,
				      json_string(mb->path));
	}
	return 0;
}

int imp_copy_artifacts(struct imp_source *src, const struct imp_options *o, struct imp_result *res,
		       char **tmpout, struct imp_error *e)
{
	const char *dir = o->artifacts_dir;
	_cleanup_free_ char *tmp = NULL, *final = NULL, *sums = NULL, *have = NULL;
	_cleanup_close_ int root = -1;
	size_t slen = 0;
	int r;

	*tmpout = NULL;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return imp_fail(e, IMP_IO, -errno, dir, "it cannot be made (%m)");
	if (asprintf(&tmp, "%s/.agimport-tmp.%ld.%s.XXXXXX", dir, (long)getpid(), res->label) < 0 ||
	    asprintf(&final, "%s/%s", dir, res->label) < 0 || !(sums = strdup("")))
		return imp_fail(e, IMP_IO, -ENOMEM, dir, "out of memory");
	if (!mkdtemp(tmp) || (root = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return imp_fail(e, IMP_IO, -errno, dir,
				"a temporary directory cannot be made (%m)");
	r = copy_all(src, o, res, root, &sums, &slen, e);
	if (r == 0 && (r = write_file(root, ".agimport.sha256", sums, slen)) < 0)
		imp_fail(e, IMP_IO, r, final, "its .agimport.sha256 cannot be written (%s)",
			 ag_strerror(r));
	if (r == 0 && fsync(root) < 0)
		r = imp_fail(e, IMP_IO, -errno, tmp, "it cannot be synced (%m)");
	if (r == 0 && access(final, F_OK) == 0 &&
	    (!(have = read_sums(final)) || strcmp(have, sums) != 0))
		r = imp_fail(e, IMP_IO, -EEXIST, final, "it already exists, with other files");
	if (r < 0) {
		imp_remove_tree(tmp);
		return r;
	}
	*tmpout = TAKE_PTR(tmp);
	return 0;
}

int imp_artifacts_place(const char *tmp, const char *dir, const char *label, struct imp_error *e)
{
	_cleanup_free_ char *final = NULL;
	_cleanup_close_ int dfd = -1;

	if (asprintf(&final, "%s/%s", dir, label) < 0)
		return imp_fail(e, IMP_IO, -ENOMEM, dir, "out of memory");
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_NOREPLACE) < 0) {
		int err = errno;
		_cleanup_free_ char *have = NULL, *ours = NULL;
		if (err != EEXIST)
			return imp_fail(e, IMP_IO, -err, final, "it cannot be put into place (%s)",
					strerror(err));
		/* A retry: the same files are there (checked before the commit,
		 * and again here in case it appeared since). */
		if (!(have = read_sums(final)) || !(ours = read_sums(tmp)) || strcmp(have, ours))
			return imp_fail(e, IMP_IO, -EEXIST, final,
					"it appeared meanwhile, with other files");
		imp_remove_tree(tmp);
		return 0;
	}
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0)
		fsync(dfd);
	return 0;
}
