#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A daemon out of file descriptors (its soft RLIMIT_NOFILE lowered under it
# with prlimit): opening a blob it has not open fails with "Too many open
# files", which is "could not check", not a verdict: one LOG_ERR line per
# blob and at most 20 such lines a minute in all, no VERIFY_FAILURE, nothing
# remembered as bad, and a blob already open keeps reading.  With
# descriptors back every blob reads right.  Stopped while still out of
# descriptors, agfs exits with status 0 and unmounts: glibc loads libgcc_s
# when libfuse cancels its worker threads at unmount, and aborted (SIGABRT,
# a dead mount) when it could not open it.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fs.sh"
need_root_fuse
need_cmd prlimit

tree=$T/tree store=$T/store mnt=$T/mnt
# 16 models: 33 blobs (a model layer and a config each, one shared template)
for i in $(seq 1 16); do
	fs_model "$tree" registry.ollama.ai/library/m$i/latest $((i * 4099))
done
held=$FS_MODEL_HEX
fs_store "$store" "$tree" >/dev/null || bail "fs-mkstore failed"
fs_mount_fg "$store" "$mnt"
soft=$(prlimit --pid "$agfs_pid" --nofile --raw --noheadings -o SOFT)
# nofile N: the daemon's soft descriptor limit (its hard limit unchanged)
nofile() { prlimit --pid "$agfs_pid" --nofile="$1": || bail "prlimit failed"; }

exec 5<"$mnt/blobs/sha256-$held"
nofile 3
failed=0 n=0
for b in "$mnt"/blobs/sha256-*; do
	[ "$b" = "$mnt/blobs/sha256-$held" ] && continue
	n=$((n + 1))
	cat "$b" >/dev/null 2>>"$T/cat.err" || failed=$((failed + 1))
done
is "$n/$failed" "32/32" "out of descriptors: every blob not open fails to open"
is "$(grep -c 'Too many open files' "$T/cat.err")" 32 "with 'Too many open files'"
cmp -s <(cat <&5) "$tree/blobs/sha256-$held"
ok $? "a blob open before reads right through its open descriptor"
exec 5<&-
lines=$(grep -c 'cannot be read: Too many open files (not a verification failure)' "$T/agfs.log")
is "$lines" 20 "20 'cannot be read' lines (LOG_ERR) for 32 blobs: the budget of a minute"
is "$(grep 'cannot be read' "$T/agfs.log" | sort -u | wc -l)" 20 "one per blob"
! grep -q 'failed verification' "$T/agfs.log"
ok $? "no 'failed verification' line"
nofile "$soft"
! grep -q '"VERIFY_FAILURE"' "$store/audit.log"
ok $? "no VERIFY_FAILURE record"

is "$(fs_sha "$mnt")" "$(fs_sha "$tree")" "descriptors back: every blob reads right (nothing remembered as bad)"

fs_stop_fg "SIGTERM stops agfs -f with status 0"

# Stopped while out of descriptors.  LeakSanitizer cannot run then (it reads
# /proc at exit), so under ASan this daemon does without it; the one above,
# which took the same error paths, was checked for leaks.
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 fs_mount_fg "$store" "$mnt"
nofile 3
! cat "$mnt/blobs/sha256-$held" >/dev/null 2>&1
ok $? "out of descriptors again: no blob opens"
fs_stop_fg "out of descriptors, SIGTERM still stops agfs -f with status 0"
! mountpoint -q "$mnt"
ok $? "and the mount is gone"
grep -q "unmounted $mnt" "$T/agfs.log"
ok $? "logged: unmounted"
done_testing
