#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# journald structured fields: under systemd the daemon sends its log lines
# to the journal's native socket with MESSAGE_ID, PRIORITY, AGFS_GENERATION
# and AGFS_DIGEST.  A temporary datagram socket stands in for journald,
# named by the test-only AGFS_JOURNAL_SOCKET; a flipped byte read back must
# arrive as a verify-failure entry naming the blob.  Without systemd (no
# JOURNAL_STREAM, no INVOCATION_ID) nothing is sent there: plain syslog.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fs.sh"
need_root_fuse
need_cmd python3

tree=$T/tree store=$T/store mnt=$T/mnt sock=$T/journal.sock log=$T/journal.txt
fs_model "$tree" registry.ollama.ai/library/tiny/latest $((512 * 1024 + 7))
hex=$FS_MODEL_HEX
fs_store "$store" "$tree" >/dev/null || bail "fs-mkstore failed"

# the stand-in journal: every datagram, then a line "--"
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "ab", buffering=0) as f:
    while True:
        d = s.recv(65536)
        f.write(d + b"--\n")
' "$sock" "$log" &
listener=$!
trap 'kill $listener 2>/dev/null; _cleanup' EXIT # lib.sh's cleanup too
fs_wait_for 10 test -S "$sock" || bail "the stand-in journal socket did not appear"
: >"$log"

unset JOURNAL_STREAM INVOCATION_ID
AGFS_JOURNAL_SOCKET=$sock mount_agfs "$store" "$mnt" || bail "agfs did not mount"
fs_wait_for 5 grep -q "^MESSAGE_ID=b6ead00aac204d05b6221dbd5080d904$" "$log"
ok $? "the mount's start is a journal entry with its MESSAGE_ID"
grep -q "^SYSLOG_IDENTIFIER=agfs$" "$log"
ok $? "SYSLOG_IDENTIFIER=agfs"

fs_flip_read "$store" "$hex" "$mnt/blobs/sha256-$hex" 2 3
ok $? "the flipped block gives EIO"

fs_wait_for 5 grep -q "^MESSAGE_ID=d85ae217131a4d60a74132b46ed99542$" "$log"
ok $? "a verify failure arrives with its MESSAGE_ID"
# the entry of the failure, as one block
awk -v RS='--\n' '/MESSAGE_ID=d85ae217131a4d60a74132b46ed99542/ { print; exit }' "$log" >"$T/entry"
grep -q "^AGFS_DIGEST=sha256:$hex$" "$T/entry"
ok $? "AGFS_DIGEST names the blob"
grep -q "^AGFS_GENERATION=1$" "$T/entry"
ok $? "AGFS_GENERATION names the served generation"
grep -q "^PRIORITY=2$" "$T/entry"
ok $? "PRIORITY=2 (LOG_CRIT)"
grep -q "^MESSAGE=blob sha256:$hex chunk 32 failed verification .*tiny:latest" "$T/entry"
ok $? "MESSAGE is the usual line (blob, chunk, model)"
umount_agfs "$mnt"
fs_wait_for 5 grep -q "^MESSAGE_ID=c4bbf3bb1e294e179dc4cd91b96ea8cd$" "$log"
ok $? "the unmount is a journal entry too"

# -f without systemd's stderr: the lines still reach stderr as well
mkdir -p "$mnt"
AGFS_JOURNAL_SOCKET=$sock "$AGFS" -f "$store" "$mnt" 2>"$T/stderr" &
fpid=$!
fs_wait_for 10 mountpoint -q "$mnt" || bail "agfs -f did not mount"
fs_wait_for 5 grep -q "mounted $store on" "$T/stderr"
ok $? "in the foreground, stderr still gets the line"
fusermount3 -u "$mnt"
wait $fpid
# the stand-in journal may read that daemon's last datagram (its unmount)
# a little later: wait for it before starting afresh
fs_wait_for 10 sh -c '[ "$(grep -c "^MESSAGE_ID=c4bbf3bb1e294e179dc4cd91b96ea8cd$" "$1")" -ge 2 ]' _ "$log" ||
	diag "the foreground daemon's unmount entry did not arrive"

# not under systemd: nothing goes to a journal socket
: >"$log"
mount_agfs "$store" "$mnt" || bail "agfs did not mount"
dd if="$mnt/blobs/sha256-$hex" of=/dev/null bs=4096 skip=32 count=1 2>/dev/null
umount_agfs "$mnt"
sleep 0.5
is "$(wc -c <"$log")" 0 "without JOURNAL_STREAM, INVOCATION_ID or the test socket: plain syslog"

done_testing
