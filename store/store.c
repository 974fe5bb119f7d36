/* SPDX-License-Identifier: Apache-2.0 */
/* Creating, opening and locking a store; cleaning tmp/ after a crash. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <pwd.h>
#include <unistd.h>

#include "store/internal.h"

static const char *const layout_dirs[] = {"index", "objects", "objects/sha256", "tmp"};

/* Is the directory empty (or only "lost+found")? */
static int dir_is_empty(int dfd)
{
	int fd = dup(dfd);
	if (fd < 0)
		return ag_errno();
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return ag_errno();
	}
	struct dirent *e;
	int empty = 1;
	while ((errno = 0, e = readdir(d))) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		    strcmp(e->d_name, "lost+found")) {
			empty = 0;
			break;
		}
	}
	if (!e && errno) /* a read error is not the end of the directory */
		empty = ag_errno();
	closedir(d);
	return empty;
}

static bool looks_like_store(int dfd)
{
	struct stat st;
	return fstatat(dfd, "index", &st, 0) == 0 && S_ISDIR(st.st_mode) &&
	       fstatat(dfd, "objects", &st, 0) == 0 && S_ISDIR(st.st_mode);
}

static int make_layout(int dfd)
{
	for (size_t i = 0; i < sizeof(layout_dirs) / sizeof(layout_dirs[0]); i++)
		if (mkdirat(dfd, layout_dirs[i], 0755) < 0 && errno != EEXIST)
			return ag_errno();
	for (const char *f = "lock"; f; f = strcmp(f, "lock") ? NULL : "audit.log") {
		int fd = openat(dfd, f, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0)
			return ag_errno();
		close(fd);
	}
	return 0;
}

static int take_lock(int dfd, bool nowait, int *out)
{
	int fd = openat(dfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return ag_errno();
	while (flock(fd, LOCK_EX | (nowait ? LOCK_NB : 0)) < 0) {
		if (errno == EINTR)
			continue;
		int r = errno == EWOULDBLOCK ? -AG_ELOCKED : ag_errno();
		close(fd);
		return r;
	}
	*out = fd;
	return 0;
}

int ag_store_init(const char *path)
{
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return ag_errno();
	_cleanup_close_ int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return ag_errno();
	/* Two processes creating the same store (two first imports) take turns
	 * on the directory itself: the second finds a whole store (-EEXIST),
	 * never a half-made one it would call "something else".  The flock is
	 * dropped when dfd is closed. */
	while (flock(dfd, LOCK_EX) < 0)
		if (errno != EINTR)
			return ag_errno();
	if (looks_like_store(dfd))
		return -EEXIST;
	int r = dir_is_empty(dfd);
	if (r < 0)
		return r;
	if (!r)
		return -AG_ENOTSTORE;
	_cleanup_close_ int lockfd = -1;
	if ((r = make_layout(dfd)) < 0 || (r = take_lock(dfd, false, &lockfd)) < 0)
		return r;
	ag_store s = {.path = (char *)path, .dirfd = dfd, .lockfd = lockfd, .writer = true};
	if ((r = ag_index_open(&s, true)) < 0)
		return r;
	ag_index_close(&s);
	if ((r = ag_fsync_dir(dfd, ".")) < 0)
		return r;
	/* The store is made by whoever runs this; no caller passes an operator. */
	struct passwd *pw = getpwuid(geteuid());
	return ag_audit_path(path, "STORE_INIT", pw ? pw->pw_name : NULL, NULL);
}

/* Everything inside the directory dfd/name, then the directory itself left
 * for the caller; depth bounds the recursion. */
static int remove_tree(int dfd, const char *name, int depth);

static int empty_dir(int fd, int depth)
{
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return ag_errno();
	}
	struct dirent *e;
	int r = 0;
	while ((errno = 0, e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		int rr = remove_tree(fd, e->d_name, depth);
		if (rr < 0 && r == 0)
			r = rr;
	}
	if (!e && errno && r == 0)
		r = ag_errno();
	closedir(d);
	return r;
}

static int remove_tree(int dfd, const char *name, int depth)
{
	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return ag_errno();
	if (depth <= 0)
		return -ELOOP;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? 0 : ag_errno();
	int r = empty_dir(fd, depth - 1);
	if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
		r = ag_errno();
	return r;
}

/* Staging files (and directories, such as private GnuPG homes) left by a
 * writer that died: nothing references them. */
static int clean_tmp(int dfd)
{
	int fd = openat(dfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return ag_errno();
	return empty_dir(fd, 16);
}

static int open_checked(const char *path, unsigned flags, ag_store *s)
{
	int r;
	/* Creating: always through ag_store_init, which waits for a concurrent
	 * creation to finish (-EEXIST then: a whole store to open). */
	if ((flags & AG_CREATE) && (flags & AG_WRITE) && (r = ag_store_init(path)) < 0 &&
	    r != -EEXIST)
		return r;
	s->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0)
		return ag_errno();
	if (!looks_like_store(s->dirfd))
		return -AG_ENOTSTORE;
	if (flags & AG_WRITE) {
		if ((r = take_lock(s->dirfd, flags & AG_NOWAIT, &s->lockfd)) < 0)
			return r;
		s->writer = true;
	}
	s->format1_ok = (flags & AG_FORMAT1_OK) != 0;
	if ((r = ag_index_open(s, false)) < 0)
		return r;
	if (s->writer && (r = clean_tmp(s->dirfd)) < 0)
		return r;
	/* A writer killed between an audited commit's record and its commit:
	 * say so in the log.  Best effort here (an unwritable log must not stop
	 * gc or fsck); ag_txn_commit_audit() repeats it and requires it. */
	if (s->writer)
		ag_audit_repair(s, NULL);
	return 0;
}

int ag_store_open(const char *path, unsigned flags, ag_store **out)
{
	ag_store *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->dirfd = s->lockfd = -1;
	s->path = strdup(path);
	int r = s->path ? open_checked(path, flags, s) : -ENOMEM;
	if (r < 0) {
		ag_store_close(s);
		return r;
	}
	*out = s;
	return 0;
}

void ag_store_close(ag_store *s)
{
	if (!s)
		return;
	ag_index_close(s);
	if (s->lockfd >= 0)
		close(s->lockfd); /* releases the flock */
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s->path);
	free(s);
}

const char *ag_store_path(const ag_store *s)
{
	return s->path;
}

int ag_store_dirfd(const ag_store *s)
{
	return s->dirfd;
}

bool ag_store_writable(const ag_store *s)
{
	return s->writer;
}

int ag_store_free_space(const ag_store *s, uint64_t *bytes)
{
	struct statvfs v;
	if (fstatvfs(s->dirfd, &v) < 0)
		return ag_errno();
	*bytes = (uint64_t)v.f_bavail * v.f_frsize;
	return 0;
}
