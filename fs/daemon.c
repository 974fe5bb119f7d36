/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Becoming a daemon that is ready when its parent returns.  agfs forks
 * before it touches the store or the mount; the parent waits on a pipe and
 * exits 0 only when the child reports that the kernel finished the FUSE
 * handshake (so `agfs STORE DIR && ls DIR` works), or with the child's own
 * exit status when setting up failed (the child has printed why).  Under
 * systemd (NOTIFY_SOCKET) the same moment sends READY=1.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fs/agfs.h"

#define EXIT_SYSTEM 4

/* The parent's side: wait for the child's word or its death. */
static _Noreturn void parent_wait(pid_t child, int fd)
{
	char ok;
	ssize_t n;
	do
		n = read(fd, &ok, 1);
	while (n < 0 && errno == EINTR);
	if (n == 1)
		_exit(0);
	int st;
	while (waitpid(child, &st, 0) < 0)
		if (errno != EINTR)
			_exit(EXIT_SYSTEM);
	_exit(WIFEXITED(st) && WEXITSTATUS(st) ? WEXITSTATUS(st) : EXIT_SYSTEM);
}

int daemon_fork(int *ready_fd)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (pid > 0) {
		close(p[1]);
		parent_wait(pid, p[0]);
	}
	close(p[0]);
	if (setsid() < 0 || chdir("/") < 0) {
		int e = errno;
		close(p[1]);
		return -e;
	}
	*ready_fd = p[1];
	return 0;
}

static void detach_stdio(void)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return;
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

void daemon_ready(struct fs_ctx *c)
{
	sd_notify_ready();
	if (c->ready_fd < 0)
		return;
	if (!c->foreground)
		detach_stdio();
	char ok = '0';
	if (write(c->ready_fd, &ok, 1) < 0) {
		/* the parent is gone; nobody to tell */
	}
	close(c->ready_fd);
	c->ready_fd = -1;
}

int daemon_raise_readahead(const char *mountpoint, unsigned kb)
{
	struct stat st;
	char path[96], val[32];
	if (stat(mountpoint, &st) < 0)
		return -errno;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", major(st.st_dev),
		 minor(st.st_dev));
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int len = snprintf(val, sizeof(val), "%u\n", kb);
	ssize_t n = write(fd, val, (size_t)len);
	int e = n < 0 ? errno : 0;
	close(fd);
	return -e;
}

int sd_notify_ready(void)
{
	const char *sock = getenv("NOTIFY_SOCKET");
	static const char msg[] = "READY=1";
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (!sock || !*sock)
		return 0;
	size_t len = strlen(sock);
	if ((sock[0] != '/' && sock[0] != '@') || len >= sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, sock, len);
	if (sock[0] == '@')
		sa.sun_path[0] = '\0'; /* an abstract socket name */
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	ssize_t n = sendto(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
	int e = n < 0 ? errno : 0;
	close(fd);
	return -e;
}
