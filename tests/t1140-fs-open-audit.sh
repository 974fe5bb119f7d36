#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# MODEL_OPEN is aggregated per user and model (issue 11 #7): 2000 opens of
# a model layer by nobody (from 200 processes) write one record at the
# first open and one more with the count when the window ends (here: at
# unmount), not hundreds of fdatasync'ed lines.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fs.sh"
need_root_fuse
need_cmd setpriv
id nobody >/dev/null 2>&1 || skip_all "needs the user nobody"

chmod 755 "$T"
tree=$T/tree store=$T/store mnt=$T/mnt
fs_model "$tree" registry.ollama.ai/library/opened/latest 100000
hex=$FS_MODEL_HEX
fs_store "$store" "$tree" >/dev/null || bail "fs-mkstore failed"
mount_agfs "$store" "$mnt" -o allow_other || bail "agfs did not mount"

start=$(date +%s)
setpriv --reuid=nobody --regid=nogroup --clear-groups bash -c '
	for i in $(seq 1 200); do
		head -c 1 "$1" >/dev/null || exit 1
		for j in 1 2 3 4 5 6 7 8 9; do : <"$1" || exit 1; done
	done' _ "$mnt/blobs/sha256-$hex"
ok $? "nobody opened the model layer 2000 times, from 200 processes (in $(($(date +%s) - start)) s)"
sleep 0.5
n=$(grep '"MODEL_OPEN"' "$store/audit.log" | grep -c "\"digest\":\"$hex\"")
is "$n" 1 "one MODEL_OPEN record while the window is open"
grep '"MODEL_OPEN"' "$store/audit.log" | grep "\"digest\":\"$hex\"" | grep -q '"uid":65534'
ok $? "naming the user"
umount_agfs "$mnt"
records() { grep '"MODEL_OPEN"' "$store/audit.log" | grep -c "\"digest\":\"$hex\""; }
two() { [ "$(records)" -eq 2 ]; }
fs_wait_for 5 two
ok $? "at unmount, one more record for the folded opens"
sum=$(grep '"MODEL_OPEN"' "$store/audit.log" | grep "\"digest\":\"$hex\"" | grep -o '"count":[0-9]*' | awk -F: '{s += $2} END {print s}')
is "$sum" 2000 "the records' counts add up to the 2000 opens"
[ "$(stat -c %s "$store/audit.log")" -lt 8192 ]
ok $? "the audit log stays small ($(stat -c %s "$store/audit.log") bytes)"
done_testing
