/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fs-mutate OP PATH [PATH2]: tries one mutating operation and prints the
 * errno name it failed with ("ok" if it succeeded).  OPs: create mknod mkdir
 * unlink rmdir rename link symlink chmod chown truncate utimes setxattr
 * removexattr fallocate open-write open-rdwr open-trunc open-append.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

static int try_open(const char *p, int flags)
{
	int fd = open(p, flags | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int do_fallocate(const char *p)
{
	int fd = open(p, O_RDWR | O_CLOEXEC); /* as fallocate(1) does */
	if (fd < 0)
		return -1;
	int r = fallocate(fd, 0, 0, 4096);
	int e = errno;
	close(fd);
	errno = e;
	return r;
}

static int run(const char *op, const char *p, const char *q)
{
	if (!strcmp(op, "create"))
		return try_open(q, O_WRONLY | O_CREAT | O_EXCL);
	if (!strcmp(op, "mknod"))
		return mknod(q, S_IFIFO | 0644, 0);
	if (!strcmp(op, "mkdir"))
		return mkdir(q, 0755);
	if (!strcmp(op, "unlink"))
		return unlink(p);
	if (!strcmp(op, "rmdir"))
		return rmdir(p);
	if (!strcmp(op, "rename"))
		return rename(p, q);
	if (!strcmp(op, "link"))
		return link(p, q);
	if (!strcmp(op, "symlink"))
		return symlink(p, q);
	if (!strcmp(op, "chmod"))
		return chmod(p, 0600);
	if (!strcmp(op, "chown"))
		return chown(p, 1, 1);
	if (!strcmp(op, "truncate"))
		return truncate(p, 0);
	if (!strcmp(op, "utimes"))
		return utimensat(AT_FDCWD, p, NULL, 0);
	if (!strcmp(op, "setxattr"))
		return setxattr(p, "user.agfs", "1", 1, 0);
	if (!strcmp(op, "removexattr"))
		return removexattr(p, "user.agfs");
	if (!strcmp(op, "fallocate"))
		return do_fallocate(p);
	if (!strcmp(op, "open-write"))
		return try_open(p, O_WRONLY);
	if (!strcmp(op, "open-rdwr"))
		return try_open(p, O_RDWR);
	if (!strcmp(op, "open-trunc"))
		return try_open(p, O_RDONLY | O_TRUNC);
	if (!strcmp(op, "open-append"))
		return try_open(p, O_WRONLY | O_APPEND);
	errno = EINVAL;
	return -2;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: fs-mutate OP PATH [PATH2]\n");
		return 2;
	}
	int r = run(argv[1], argv[2], argc > 3 ? argv[3] : argv[2]);
	if (r == -2)
		return 2;
	printf("%s\n", r == 0 ? "ok" : strerrorname_np(errno));
	return 0;
}
