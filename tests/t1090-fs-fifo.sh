#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# An object replaced by a FIFO or a symlink (issue 11 #5): opening it never
# blocks a thread of the daemon; 16 parallel opens all get EIO at once,
# other files keep reading, and the tampering is alerted (VERIFY_FAILURE).
# The same with verify=full.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fs.sh"
need_root_fuse
need_cmd mkfifo timeout

tree=$T/tree store=$T/store mnt=$T/mnt
fs_model "$tree" registry.ollama.ai/library/fifo/latest 300000
fifo=$FS_MODEL_HEX
fs_model "$tree" registry.ollama.ai/library/link/latest 200000
link=$FS_MODEL_HEX
fs_model "$tree" registry.ollama.ai/library/good/latest 400000
good=$FS_MODEL_HEX
fs_store "$store" "$tree" >/dev/null || bail "fs-mkstore failed"

obj=$(fs_object "$store" "$fifo")
rm -f "$obj" && mkfifo -m 0444 "$obj" || bail "cannot make a FIFO"
lobj=$(fs_object "$store" "$link")
mv "$lobj" "$T/elsewhere" && ln -s "$T/elsewhere" "$lobj" || bail "cannot make a symlink"

for mode in chunks full; do
	mount_agfs "$store" "$mnt" -o verify=$mode,threads=4 || bail "agfs did not mount"
	start=$(date +%s)
	for i in $(seq 1 16); do
		timeout -k 1 10 cat "$mnt/blobs/sha256-$fifo" >/dev/null 2>"$T/err.$i" &
	done
	wait
	took=$(($(date +%s) - start))
	fails=0
	for i in $(seq 1 16); do grep -q "Input/output error" "$T/err.$i" && fails=$((fails + 1)); done
	is "$fails" 16 "verify=$mode: 16 parallel opens of a FIFO object all give EIO"
	[ "$took" -le 5 ]
	ok $? "verify=$mode: at once (took ${took}s), no thread blocked"
	cmp -s "$mnt/blobs/sha256-$good" "$tree/blobs/sha256-$good"
	ok $? "verify=$mode: another blob still reads as imported"
	timeout 10 cat "$mnt/blobs/sha256-$link" >/dev/null 2>"$T/err"
	grep -q "Input/output error" "$T/err"
	ok $? "verify=$mode: a symlinked object gives EIO"
	umount_agfs "$mnt"
done
grep '"VERIFY_FAILURE"' "$store/audit.log" | grep -q "\"digest\":\"$fifo\""
ok $? "the FIFO is alerted as a VERIFY_FAILURE"
grep '"VERIFY_FAILURE"' "$store/audit.log" | grep -q "\"digest\":\"$link\""
ok $? "the symlink is alerted as a VERIFY_FAILURE"
done_testing
