#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Generations under a running mount: a new current generation shows without
# a remount while readers keep going; files already open keep their bytes;
# rollback returns the same inodes; a deleted generation leaves versions/;
# generation=N pins the root to one generation.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fs.sh"
need_root_fuse

store=$T/store mnt=$T/mnt
name=registry.ollama.ai/library/tiny/latest
fs_model "$T/t1" $name 300000
hex1=$FS_MODEL_HEX
fs_model "$T/t1" registry.ollama.ai/library/kept/latest $((8 * 1024 * 1024))
kept=$FS_MODEL_HEX
fs_model "$T/t2" $name 400000
fs_model "$T/t2" registry.ollama.ai/library/newer/latest 100000
# generation 2 keeps "kept" (same manifest, same blobs)
cp "$T/t1/blobs/"* "$T/t2/blobs/"
rm "$T/t2/blobs/sha256-$hex1"
mkdir -p "$T/t2/manifests/registry.ollama.ai/library/kept"
cp "$T/t1/manifests/registry.ollama.ai/library/kept/latest" "$T/t2/manifests/registry.ollama.ai/library/kept/"
grep -q "$hex1" "$T/t2/manifests/registry.ollama.ai/library/tiny/latest" && bail "fixture clash"

fs_model "$T/t3" registry.ollama.ai/library/third/latest 100000
fs_store "$store" "$T/t1" >/dev/null || bail "fs-mkstore failed"
mount_agfs "$store" "$mnt" || bail "agfs did not mount"

ino1=$(stat -c %i "$mnt/manifests/$name")
exec 3<"$mnt/manifests/$name"
exec 4<"$mnt/blobs/sha256-$hex1"
# readers at random offsets, running until the switch has been seen
(
	n=0
	while [ ! -e "$T/stop" ] || [ $n -lt 2 ]; do
		"$HELPERS/fs-randread" -t 8 -n 50 -s $n "$mnt/blobs/sha256-$kept" \
			"$T/t1/blobs/sha256-$kept" >"$T/readers" 2>&1 || exit 1
		n=$((n + 1))
	done
) &
readers=$!

start=$(date +%s%N)
fs_store "$store" "$T/t2" >/dev/null || bail "fs-mkstore failed"
fs_wait_for 5 cmp -s "$mnt/manifests/$name" "$T/t2/manifests/$name"
ok $? "a new current generation shows in the running mount"
diag "seen after $((($(date +%s%N) - start) / 1000000)) ms (promised: within 2 s)"
diff -r "$T/t2/manifests" "$mnt/manifests" && diff -r "$T/t2/blobs" "$mnt/blobs"
ok $? "manifests/ and blobs/ are now exactly generation 2"
! ls "$mnt/blobs" | grep -q "$hex1"
ok $? "a blob only generation 1 used is no longer listed in blobs/"
cmp -s "$mnt/blobs/sha256-$hex1" "$T/t1/blobs/sha256-$hex1"
ok $? "but its name still opens during the grace period (-o grace=, 10 min)"
cmp -s "$mnt/versions/1/blobs/sha256-$hex1" "$T/t1/blobs/sha256-$hex1"
ok $? "but still reads under versions/1/"
cmp -s - "$T/t1/manifests/$name" <&3
ok $? "a manifest opened before the switch keeps reading its old bytes"
cmp -s - "$T/t1/blobs/sha256-$hex1" <&4
ok $? "a blob opened before the switch keeps reading"
exec 3<&- 4<&-
touch "$T/stop"
wait $readers
ok $? "8 readers at random offsets running across the switch read correct bytes throughout"
is "$(ls "$mnt/versions" | tr '\n' ' ')" "1 2 current " "versions/ lists the new generation"
is "$(readlink "$mnt/versions/current")" 2 "versions/current follows"
is "$(find "$mnt" -type d -empty)" "" "still no empty directory"

fs_activate "$store" 1
fs_wait_for 5 cmp -s "$mnt/manifests/$name" "$T/t1/manifests/$name"
ok $? "a rollback to generation 1 shows"
is "$(stat -c %i "$mnt/manifests/$name")" "$ino1" "with the same inode numbers as before"
is "$(readlink "$mnt/versions/current")" 1 "versions/current points back at 1"

"$MKSTORE" --delete 2 "$store" || bail "cannot delete generation 2"
fs_wait_for 5 test ! -e "$mnt/versions/2"
ok $? "a deleted generation leaves versions/"
is "$(ls "$mnt/versions" | tr '\n' ' ')" "1 current " "versions/ lists what the store holds"

fs_store "$store" "$T/t3" >/dev/null || bail "fs-mkstore failed"
pin=$T/pinned
mount_agfs "$store" "$pin" -o generation=1 || bail "agfs -o generation=1 did not mount"
diff -r "$T/t1/manifests" "$pin/manifests" && diff -r "$T/t1/blobs" "$pin/blobs"
ok $? "generation=1 serves generation 1 while 3 is current"
is "$(readlink "$pin/versions/current")" 3 "its versions/current still names the store's current one"
fs_activate "$store" 1
fs_activate "$store" 3
sleep 1.5
diff -r "$T/t1/manifests" "$pin/manifests" >/dev/null
ok $? "the pinned root does not move when the store's current generation does"
umount_agfs "$pin"
umount_agfs "$mnt"
ok $? "unmounts"
done_testing
