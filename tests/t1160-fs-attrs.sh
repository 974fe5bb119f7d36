#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Attributes (issue 11 #9): df reports the store's file system (not 100%
# used); a blob shared by generations has one inode number and st_nlink > 1
# (du counts it once); versions/ carries the newest generation's time, not
# the mount's; the manifests of one import have distinct, stable mtimes with
# nanoseconds; inode numbers survive a remount after live imports; an empty
# store shows manifests/.keep but no blobs/.keep; the daemon raised its
# descriptor limit.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fs.sh"
need_root_fuse
need_cmd df du

tree=$T/tree store=$T/store mnt=$T/mnt
fs_model "$tree" registry.ollama.ai/library/shared/latest $((4 * 1024 * 1024))
shared=$FS_MODEL_HEX
fs_model "$tree" registry.ollama.ai/library/second/latest 10000
fs_model "$tree" registry.ollama.ai/library/third/latest 10000
fs_store "$store" "$tree" >/dev/null || bail "fs-mkstore failed"
fs_model "$tree" registry.ollama.ai/library/fourth/latest 10000
fs_store "$store" "$tree" >/dev/null || bail "fs-mkstore failed"
sleep 1.2
before=$(date +%s)
mount_agfs "$store" "$mnt" || bail "agfs did not mount"

is "$(stat -f -c '%b %S' "$mnt")" "$(stat -f -c '%b %S' "$store")" "statfs: the store's file system size"
pcent=$(df --output=pcent "$mnt" | tail -1 | tr -d ' %')
[ "$pcent" -lt 100 ]
ok $? "df does not show the mount 100% used ($pcent%)"
i1=$(stat -c %i "$mnt/versions/1/blobs/sha256-$shared")
i2=$(stat -c %i "$mnt/versions/2/blobs/sha256-$shared")
is "$i1" "$i2" "a blob in two generations has one inode number"
[ "$(stat -c %h "$mnt/versions/1/blobs/sha256-$shared")" -gt 1 ]
ok $? "and st_nlink > 1"
total=$(du -sb "$mnt/versions/1" "$mnt/versions/2" | awk '{s += $1} END {print s}')
[ "$total" -lt $((2 * 4 * 1024 * 1024)) ]
ok $? "du over both generations counts the shared blob once ($total bytes)"
[ "$(stat -c %Y "$mnt/versions")" -lt "$before" ]
ok $? "versions/ has the newest generation's time, not the mount's"
m=registry.ollama.ai/library
stat -c %y "$mnt/manifests/$m/second/latest" "$mnt/manifests/$m/third/latest" "$mnt/manifests/$m/fourth/latest" >"$T/mtimes"
is "$(sort -u "$T/mtimes" | wc -l)" 3 "the manifests of one import have distinct mtimes"
! grep -q '\.000000000 ' "$T/mtimes"
ok $? "with nanoseconds"
pid=$(pgrep -f "agfs $store $mnt\$" | head -1)
soft=$(awk '/Max open files/ {print $4}' /proc/"$pid"/limits)
hard=$(awk '/Max open files/ {print $5}' /proc/"$pid"/limits)
is "$soft" "$hard" "the daemon raised its descriptor limit to the hard one ($soft)"
umount_agfs "$mnt"
mount_agfs "$store" "$mnt" || bail "agfs did not mount again"
stat -c %y "$mnt/manifests/$m/second/latest" "$mnt/manifests/$m/third/latest" "$mnt/manifests/$m/fourth/latest" >"$T/mtimes2"
cmp -s "$T/mtimes" "$T/mtimes2"
ok $? "the same mtimes after a remount"
# inode numbers after a live import are the ones a fresh mount gives
fs_model "$tree" registry.ollama.ai/library/fifth/latest 10000
fs_store "$store" "$tree" >/dev/null || bail "fs-mkstore failed"
fs_wait_for 5 test -e "$mnt/versions/3" || bail "the live import did not show"
inos() { (cd "$mnt" && find . -path ./versions/current -prune -o -printf '%i %p\n' | sort -k2); }
inos >"$T/inos1"
umount_agfs "$mnt"
mount_agfs "$store" "$mnt" || bail "agfs did not mount again"
inos >"$T/inos2"
diff "$T/inos1" "$T/inos2" >"$T/inos.diff"
ok $? "inode numbers after live imports are the same after a remount ($(wc -l <"$T/inos1") paths)"
head -3 "$T/inos.diff" | while read -r l; do diag "$l"; done
umount_agfs "$mnt"

"$HELPERS/fs-mkstore" --init "$T/empty" || bail "cannot make an empty store"
mount_agfs "$T/empty" "$mnt" || bail "agfs did not mount the empty store"
is "$(ls -A "$mnt/manifests")" ".keep" "an empty store: manifests/ holds .keep (never empty)"
is "$(ls -A "$mnt/blobs" 2>&1; echo "rc=$?")" "rc=0" "but blobs/ holds no .keep for Ollama's prune to trip on"
mountpoint -q "$mnt" && ls "$mnt/versions" >/dev/null
ok $? "and the mount still answers"
done_testing
