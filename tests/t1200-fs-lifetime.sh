#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Node lifetime (issue 11 #9, "memory of deleted generations is never
# freed"): cycles of import + switch + gc under a live mount, with a reader
# walking every generation, leave the daemon with as many live inodes as one
# generation needs (statfs f_files counts the daemon's live nodes; the
# metrics file has agfs_inodes and agfs_generation_trees), not one tree
# more per cycle.  What the kernel or a process still holds stays
# usable until let go: a shell whose working directory is inside a deleted
# generation, and a file open there, keep working; then they go too.  Inode
# numbers of what stays served do not change.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fs.sh"
need_root_fuse

store=$T/store mnt=$T/mnt tree=$T/tree
CYCLES=${AGFS_LIFETIME_CYCLES:-30}
as() { "$AGSTORE" --store "$store" "$@"; }
lib=registry.ollama.ai/library
inodes() { stat -f -c %c "$mnt"; }
rss() { awk '/VmRSS/ {print $2}' /proc/"$pid"/status; }

# a model every generation keeps, and one of its own per generation
fs_model "$tree" $lib/stays/latest 50000
stays=$FS_MODEL_HEX
fs_model "$tree" $lib/own0/latest 3000
fs_store "$store" "$tree" >/dev/null || bail "fs-mkstore failed"
prom=$T/agfs.prom
mount_agfs "$store" "$mnt" -o grace=0,metrics="$prom" || bail "agfs did not mount"
pid=$(pgrep -f "agfs -o grace=0,metrics=$prom $store $mnt\$" | head -1)
[ -n "$pid" ] || bail "no daemon"
ino_stays=$(stat -c %i "$mnt/blobs/sha256-$stays")

# one cycle: a new generation (with a new model of its own, the previous
# one's gone), seen by the mount, walked by a reader, the old one collected
prev=1
cycle() {
	local i=$1 id
	rm -rf "$tree/manifests/$lib/own$((i - 1))"
	fs_model "$tree" $lib/own$i/latest 3000
	id=$(fs_store "$store" "$tree") || return 1
	fs_wait_for 10 test -e "$mnt/manifests/$lib/own$i/latest" || return 1
	ls -laR "$mnt/versions/$id" "$mnt/manifests" "$mnt/blobs" >/dev/null || return 1
	cmp -s "$mnt/versions/$id/manifests/$lib/own$i/latest" "$tree/manifests/$lib/own$i/latest" ||
		return 1
	cat "$mnt/versions/$id/INFO" "$mnt/blobs/sha256-$FS_MODEL_HEX" >/dev/null || return 1
	as gc --keep 0 >/dev/null 2>&1 || return 1
	prev=$id
}

cycle 1 || bail "cycle 1 failed"
sleep 2.5 # the gc's deletion seen, the first generation's tree swept
base=$(inodes) rss0=$(rss)
diag "after one cycle: $base live inodes, RSS $rss0 KiB"

# something held across the deletion of its generation; a name it looks up
# there in vain once the generation is gone leaves a negative dentry in the
# kernel, which holds the directory until its name is invalidated too
held=$prev
mkdir -p "$T/fifo" && mkfifo "$T/fifo/go"
(cd "$mnt/versions/$held/manifests/$lib" && read -r _ <"$T/fifo/go" && ! test -e no-such-model &&
	ls >"$T/held.ls" 2>&1 && cmp -s stays/latest "$tree/manifests/$lib/stays/latest") &
cwd_pid=$!
exec 3<"$mnt/versions/$held/manifests/$lib/stays/latest"

start=$(date +%s)
fail_at=
for i in $(seq 2 "$CYCLES"); do
	cycle "$i" || {
		fail_at=$i
		break
	}
done
is "$fail_at" "" "$((CYCLES - 1)) cycles of import, switch, walk and gc ($(($(date +%s) - start)) s)"
as versions | grep -q "^ *$held " && bail "generation $held was not collected"
# the metrics file, written at the last switch: the new generation, the one
# before it (gc comes after the switch), the one still in use, and one or
# two the kernel had not forgotten yet (not one per cycle)
trees=$(awk '$1 == "agfs_generation_trees" {print $2}' "$prom")
[ -n "$trees" ] && [ "$trees" -le 5 ]
ok $? "agfs_generation_trees in the metrics file stays small (${trees:-none})"

echo go >"$T/fifo/go"
wait $cwd_pid
ok $? "a shell inside a deleted generation's directory still lists and reads it"
is "$(tr '\n' ' ' <"$T/held.ls")" "own1 stays " "with the names it had"
cmp -s - "$tree/manifests/$lib/stays/latest" <&3
ok $? "a file open under a deleted generation still reads"
exec 3<&-

# bounded: what one generation needs, not one tree per cycle (nor the
# directories a negative dentry holds)
settled() { [ "$(inodes)" -le $((base + 4)) ]; }
fs_wait_for 10 settled
ok $? "live inodes back to one generation's worth: $(inodes) (after one cycle: $base)"
diag "RSS $(rss) KiB after $CYCLES cycles (after one: $rss0 KiB)"
is "$(stat -c %i "$mnt/blobs/sha256-$stays")" "$ino_stays" \
	"a blob every generation kept has the same inode number throughout"
is "$(ls "$mnt/versions" | tr '\n' ' ')" "$prev current " "versions/ lists what the store holds"
diff -r "$tree/manifests" "$mnt/manifests" >/dev/null
ok $? "the mount serves the last generation's manifests"
cmp -s "$mnt/blobs/sha256-$stays" "$tree/blobs/sha256-$stays"
ok $? "and its shared blob reads"
umount_agfs "$mnt"
done_testing
