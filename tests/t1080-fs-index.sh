#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A damaged index under a live mount (issue 11 #4): two bytes (ff ff at
# offset 12, the page's lower bound) of the first branch page of
# index/data.mdb.  Reads that need the index answer EIO and the daemon
# alerts; it never crashes (the mount keeps answering).  A new mount of the
# damaged store is refused with a clear error.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fs.sh"
need_root_fuse
need_cmd od awk

tree=$T/tree store=$T/store mnt=$T/mnt
# enough records for LMDB to need branch pages
for i in $(seq 1 120); do
	fs_model "$tree" "registry.ollama.ai/library/m$i/latest" 5000
done
fs_store "$store" "$tree" --chunk 4096 >/dev/null || bail "fs-mkstore failed"

# pages (4096 bytes) whose flags (u16 at offset 10) say P_BRANCH
branches=$(od -v -A n -t u2 -w4096 "$store/index/data.mdb" | awk '$6 % 2 == 1 && NR > 2 {print NR - 1}')
[ -n "$branches" ] || bail "no branch page in index/data.mdb"
diag "branch pages: $(echo $branches)"

fs_mount_fg "$store" "$mnt"
ls "$mnt/blobs" | grep sha256- >"$T/names"
is "$(wc -l <"$T/names")" 241 "the mount serves every blob"

for branch in $branches; do
	printf '\xff\xff' | dd of="$store/index/data.mdb" bs=1 seek=$((branch * 4096 + 12)) conv=notrunc 2>/dev/null
done
ok $? "two bytes (ff ff at offset 12) of every branch page are overwritten"

fails=0 reads=0
while read -r b; do
	reads=$((reads + 1))
	cat "$mnt/blobs/$b" >/dev/null 2>>"$T/err" || fails=$((fails + 1))
	[ $reads -ge 40 ] && break
done <"$T/names"
diag "$fails of $reads reads failed"
! grep -v "Input/output error" "$T/err" | grep -q .
ok $? "every failed read is EIO (no ENOTCONN)"
kill -0 $agfs_pid
ok $? "the daemon is alive"
ls "$mnt/versions/1/manifests" >/dev/null && mountpoint -q "$mnt"
ok $? "the mount still answers"
if [ $fails -gt 0 ]; then
	grep -q "index is damaged" "$T/agfs.log"
	ok $? "the daemon says the index is damaged"
	fs_wait_for 3 grep -q '"STORE_ERROR"' "$store/audit.log"
	ok $? "and writes a STORE_ERROR audit record"
	is "$(grep -c '"STORE_ERROR"' "$store/audit.log")" 1 "only one, however many reads failed"
else
	skip "no read needed the damaged page"
fi
kill -TERM $agfs_pid
wait $agfs_pid

"$AGFS" "$store" "$mnt" >"$T/out" 2>&1
rc=$?
mountpoint -q "$mnt" && umount_agfs "$mnt"
is "$rc" 1 "a new mount of the damaged store is refused (exit 1)"
grep -Eq "(index|record).*(damaged|corrupt).*refusing to mount" "$T/out"
ok $? "with a clear error"
diag "$(head -2 "$T/out")"
! mountpoint -q "$mnt"
ok $? "nothing is mounted"
done_testing
