#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Mounting twice (issue 11 #8): a second agfs on a live agfs mount point is
# refused with a clear error and nothing is stacked; after the daemon was
# killed, its dead mount (ENOTCONN) is detached and the new mount says so.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fs.sh"
need_root_fuse

tree=$T/tree store=$T/store mnt=$T/mnt
fs_model "$tree" registry.ollama.ai/library/twice/latest 100000
hex=$FS_MODEL_HEX
fs_store "$store" "$tree" >/dev/null || bail "fs-mkstore failed"
count() { awk -v m="$mnt" '$5 == m' /proc/self/mountinfo | wc -l; }

mount_agfs "$store" "$mnt" || bail "agfs did not mount"
"$AGFS" "$store" "$mnt" >"$T/out" 2>&1
is "$?" 1 "a second agfs on a live agfs mount point exits 1"
grep -q "already live here; refusing to mount twice" "$T/out"
ok $? "saying why"
diag "$(cat "$T/out")"
is "$(count)" 1 "nothing was stacked"

pid=$(pgrep -f "agfs $store $mnt\$" | head -1)
[ -n "$pid" ] || bail "cannot find the daemon"
kill -9 "$pid"
sleep 0.3
stat "$mnt" >/dev/null 2>"$T/err"
grep -q "not connected" "$T/err"
ok $? "the killed daemon left a dead mount (ENOTCONN)"
"$AGFS" "$store" "$mnt" >"$T/out" 2>&1
is "$?" 0 "agfs mounts over the dead mount"
grep -q "recovered a dead mount" "$T/out"
ok $? "and says it recovered it"
cmp -s "$mnt/blobs/sha256-$hex" "$tree/blobs/sha256-$hex"
ok $? "the new mount serves"
is "$(count)" 1 "exactly one mount at the mount point"
done_testing
