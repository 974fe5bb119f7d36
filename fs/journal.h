/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's log lines: journald's native protocol with structured fields
 * (MESSAGE_ID per event kind, AGFS_GENERATION, AGFS_DIGEST) when it runs
 * under systemd, syslog(3) otherwise.  fs_journal_format() is pure (a unit
 * test checks the datagram).
 */
#ifndef AGFS_FS_JOURNAL_H
#define AGFS_FS_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum fs_msg {
	FS_MSG_NONE,
	FS_MSG_VERIFY_FAILURE,
	FS_MSG_VERIFY_ERROR,
	FS_MSG_READER_KILLED,
	FS_MSG_CATALOG_REJECTED,
	FS_MSG_GENERATION_SWITCH,
	FS_MSG_STORE_ERROR,
	FS_MSG_MOUNT_START,
	FS_MSG_MOUNT_STOP,
};

#define FS_JOURNAL_SOCKET "/run/systemd/journal/socket"

/* The 32-hex MESSAGE_ID of an event kind (NULL for FS_MSG_NONE). */
const char *fs_msg_id(enum fs_msg id);

/* One native-protocol datagram into buf: MESSAGE, PRIORITY,
 * SYSLOG_IDENTIFIER=agfs, SYSLOG_PID, MESSAGE_ID (unless FS_MSG_NONE),
 * AGFS_GENERATION (unless 0), AGFS_DIGEST=sha256:<hex> (unless NULL or "").
 * A value holding a newline is sent in the protocol's binary form.
 * Returns the length it needs (> len: buf was too small). */
size_t fs_journal_format(char *buf, size_t len, int prio, enum fs_msg id, uint64_t gen,
			 const char *digest_hex, const char *message, long pid);

/* Decides where log lines go: the journal when running under systemd
 * (JOURNAL_STREAM, or INVOCATION_ID and a usable journal socket) or when
 * the test-only AGFS_JOURNAL_SOCKET names a socket; else syslog.  With
 * foreground, lines also go to stderr unless stderr is the journal. */
void journal_start(bool foreground);
void journal_stop(void);
bool journal_active(void);

/* One log line (through the journal or syslog).  gen 0 and digest NULL:
 * no such field. */
void fs_log(int prio, enum fs_msg id, uint64_t gen, const char *digest_hex, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

#endif
