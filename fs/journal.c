/* SPDX-License-Identifier: Apache-2.0 */
/*
 * journald's native protocol (systemd's "Native Journal Protocol"): one
 * datagram to /run/systemd/journal/socket, made of KEY=value lines; a value
 * holding a newline is KEY, a newline, its length as 64-bit little endian,
 * the bytes, a newline.  No library: a socket and sendto(2).  When the
 * journal cannot take a line (too large, gone), it goes to syslog instead.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include "fs/journal.h"

static const char *const msg_ids[] = {
	[FS_MSG_VERIFY_FAILURE] = "d85ae217131a4d60a74132b46ed99542",
	[FS_MSG_VERIFY_ERROR] = "f361eaf092094231a6eca347ff4d4971",
	[FS_MSG_READER_KILLED] = "e205614c92124d9fb75dcb476e665a95",
	[FS_MSG_CATALOG_REJECTED] = "cc1b8bec80b24cf0b1fb8dfa7d09c048",
	[FS_MSG_GENERATION_SWITCH] = "41bf04351e9f42018c6fe04e9a396ed6",
	[FS_MSG_STORE_ERROR] = "e769590fa3cf445f88a1ec8553006990",
	[FS_MSG_MOUNT_START] = "b6ead00aac204d05b6221dbd5080d904",
	[FS_MSG_MOUNT_STOP] = "c4bbf3bb1e294e179dc4cd91b96ea8cd",
};

const char *fs_msg_id(enum fs_msg id)
{
	if ((size_t)id >= sizeof(msg_ids) / sizeof(msg_ids[0]))
		return NULL;
	return msg_ids[id];
}

struct out {
	char *buf;
	size_t len, off;
};

static void put(struct out *o, const void *p, size_t n)
{
	if (o->off < o->len)
		memcpy(o->buf + o->off, p, o->off + n <= o->len ? n : o->len - o->off);
	o->off += n;
}

static void field(struct out *o, const char *key, const char *val)
{
	size_t n = strlen(val);
	put(o, key, strlen(key));
	if (!memchr(val, '\n', n)) {
		put(o, "=", 1);
		put(o, val, n);
	} else {
		uint8_t le[8];
		for (int i = 0; i < 8; i++)
			le[i] = (uint8_t)((uint64_t)n >> (8 * i));
		put(o, "\n", 1);
		put(o, le, sizeof(le));
		put(o, val, n);
	}
	put(o, "\n", 1);
}

size_t fs_journal_format(char *buf, size_t len, int prio, enum fs_msg id, uint64_t gen,
			 const char *digest_hex, const char *message, long pid)
{
	struct out o = {buf, len, 0};
	char num[32];
	field(&o, "MESSAGE", message);
	snprintf(num, sizeof(num), "%d", prio & 7);
	field(&o, "PRIORITY", num);
	field(&o, "SYSLOG_IDENTIFIER", "agfs");
	snprintf(num, sizeof(num), "%ld", pid);
	field(&o, "SYSLOG_PID", num);
	if (fs_msg_id(id))
		field(&o, "MESSAGE_ID", fs_msg_id(id));
	if (gen) {
		snprintf(num, sizeof(num), "%" PRIu64, gen);
		field(&o, "AGFS_GENERATION", num);
	}
	if (digest_hex && *digest_hex) {
		char d[80];
		snprintf(d, sizeof(d), "sha256:%s", digest_hex);
		field(&o, "AGFS_DIGEST", d);
	}
	return o.off;
}

static int jfd = -1;
static struct sockaddr_un jaddr;
static socklen_t jaddr_len;
static bool also_stderr;

/* JOURNAL_STREAM="dev:ino" names stderr when it is connected to the journal. */
static bool stderr_is_journal(const char *js)
{
	unsigned long long dev, ino;
	struct stat st;
	return js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
	       (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void journal_start(bool foreground)
{
	const char *test = getenv("AGFS_JOURNAL_SOCKET"); /* tests only */
	const char *js = getenv("JOURNAL_STREAM");
	const char *path = NULL;
	if (test && *test)
		path = test;
	else if (js || getenv("INVOCATION_ID"))
		path = FS_JOURNAL_SOCKET;
	if (!path || strlen(path) >= sizeof(jaddr.sun_path))
		return;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	memset(&jaddr, 0, sizeof(jaddr));
	jaddr.sun_family = AF_UNIX;
	memcpy(jaddr.sun_path, path, strlen(path) + 1);
	jaddr_len = (socklen_t)sizeof(jaddr);
	/* usable: a socket we may write to */
	struct stat st;
	if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode) || access(path, W_OK) < 0) {
		close(fd);
		return;
	}
	jfd = fd;
	also_stderr = foreground && !stderr_is_journal(js);
}

void journal_stop(void)
{
	if (jfd >= 0)
		close(jfd);
	jfd = -1;
}

bool journal_active(void)
{
	return jfd >= 0;
}

void fs_log(int prio, enum fs_msg id, uint64_t gen, const char *digest_hex, const char *fmt, ...)
{
	char msg[2048], dgram[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (jfd >= 0) {
		size_t n = fs_journal_format(dgram, sizeof(dgram), prio, id, gen, digest_hex, msg,
					     (long)getpid());
		if (n <= sizeof(dgram) &&
		    sendto(jfd, dgram, n, MSG_NOSIGNAL, (struct sockaddr *)&jaddr, jaddr_len) ==
			    (ssize_t)n) {
			if (also_stderr)
				fprintf(stderr, "agfs[%ld]: %s\n", (long)getpid(), msg);
			return;
		}
	}
	syslog(prio, "%s", msg);
}
