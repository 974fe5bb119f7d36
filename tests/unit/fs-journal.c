/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the journald datagram (fs/journal.c): the native protocol's
 * KEY=value lines, the binary form of a value holding a newline, the fixed
 * MESSAGE_IDs. */
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "fs/journal.h"
#include "tests/tap.h"

static const char hex[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static void test_plain(void)
{
	char buf[1024];
	size_t n = fs_journal_format(buf, sizeof(buf), LOG_CRIT, FS_MSG_VERIFY_FAILURE, 7, hex,
				     "blob sha256:x failed verification", 42);
	const char want[] = "MESSAGE=blob sha256:x failed verification\n"
			    "PRIORITY=2\n"
			    "SYSLOG_IDENTIFIER=agfs\n"
			    "SYSLOG_PID=42\n"
			    "MESSAGE_ID=d85ae217131a4d60a74132b46ed99542\n"
			    "AGFS_GENERATION=7\n"
			    "AGFS_DIGEST=sha256:0123456789abcdef0123456789abcdef0123456789abcdef01"
			    "23456789abcdef\n";
	is_int(n, sizeof(want) - 1, "the datagram's length");
	ok(n == sizeof(want) - 1 && !memcmp(buf, want, n), "KEY=value lines, in order");

	n = fs_journal_format(buf, sizeof(buf), LOG_INFO, FS_MSG_NONE, 0, NULL, "hello", 1);
	const char want2[] = "MESSAGE=hello\nPRIORITY=6\nSYSLOG_IDENTIFIER=agfs\nSYSLOG_PID=1\n";
	ok(n == sizeof(want2) - 1 && !memcmp(buf, want2, n),
	   "no MESSAGE_ID, AGFS_GENERATION or AGFS_DIGEST when they do not apply");
}

static void test_binary(void)
{
	char buf[256];
	size_t n = fs_journal_format(buf, sizeof(buf), LOG_ERR, FS_MSG_NONE, 0, "", "a\nb", 5);
	const char want[] = "MESSAGE\n\x03\0\0\0\0\0\0\0a\nb\nPRIORITY=3\n";
	ok(n > sizeof(want) - 1 && !memcmp(buf, want, sizeof(want) - 1),
	   "a value with a newline: KEY, newline, 64-bit LE length, bytes, newline");
	ok(strstr(buf + sizeof(want) - 1, "AGFS_DIGEST") == NULL, "an empty digest is no field");
}

static void test_small(void)
{
	char buf[16];
	memset(buf, 'x', sizeof(buf));
	size_t n = fs_journal_format(buf, 10, LOG_ERR, FS_MSG_STORE_ERROR, 3, hex, "m", 1);
	ok(n > 10, "too small a buffer: the needed length (%zu)", n);
	ok(buf[10] == 'x', "nothing written past the buffer");
}

static void test_ids(void)
{
	int good = 0, distinct = 1;
	for (int i = FS_MSG_VERIFY_FAILURE; i <= FS_MSG_MOUNT_STOP; i++) {
		const char *a = fs_msg_id((enum fs_msg)i);
		good += a && strlen(a) == 32 && strspn(a, "0123456789abcdef") == 32;
		for (int j = FS_MSG_VERIFY_FAILURE; j < i; j++)
			distinct &= strcmp(a ? a : "", fs_msg_id((enum fs_msg)j)) != 0;
	}
	is_int(good, 8, "eight event kinds, each a 128-bit id in 32 hex digits");
	ok(distinct, "all different");
	ok(fs_msg_id(FS_MSG_NONE) == NULL, "a plain line has none");
}

int main(void)
{
	test_plain();
	test_binary();
	test_small();
	test_ids();
	return done_testing();
}
