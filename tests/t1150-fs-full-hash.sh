#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# verify=full off the FUSE threads (issue 11 #10): 8 parallel first opens
# of a large blob hash it once, on a hashing thread of its own; meanwhile
# the mount (4 FUSE threads) keeps serving other files at once (small ones
# are hashed whole in their open).
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fs.sh"
need_root_fuse

tree=$T/tree store=$T/store mnt=$T/mnt
fs_model "$tree" registry.ollama.ai/library/big/latest $((384 * 1024 * 1024))
big=$FS_MODEL_HEX
fs_model "$tree" registry.ollama.ai/library/small/latest 100000
small=$FS_MODEL_HEX
fs_store "$store" "$tree" >/dev/null || bail "fs-mkstore failed"
rm -f "$tree/blobs/sha256-$big.copy"

mkdir -p "$mnt"
_mounts+=("$mnt")
"$AGFS" -f -o verify=full,threads=4 "$store" "$mnt" 2>"$T/agfs.log" &
agfs_pid=$!
fs_wait_for 10 test -d "$mnt/blobs" || bail "agfs -o verify=full did not mount"

drop_caches
start=$(date +%s%N)
pids=()
for i in $(seq 1 8); do
	head -c 4096 "$mnt/blobs/sha256-$big" >"$T/head.$i" 2>"$T/err.$i" &
	pids+=($!)
done
sleep 0.3
t0=$(date +%s%N)
cmp -s "$mnt/blobs/sha256-$small" "$tree/blobs/sha256-$small"
ok $? "another blob opens (verify=full) and reads while the big one is hashed"
ls "$mnt/manifests/registry.ollama.ai/library" >/dev/null
served=$((($(date +%s%N) - t0) / 1000000))
wait "${pids[@]}"
hashed=$((($(date +%s%N) - start) / 1000000))
diag "other files served in $served ms; the 8 opens of the big blob took $hashed ms"
[ "$served" -lt "$((hashed / 2))" ]
ok $? "they were served without waiting for the hash"
same=0
for i in $(seq 1 8); do
	cmp -s "$T/head.$i" <(head -c 4096 "$tree/blobs/sha256-$big") && same=$((same + 1))
done
is "$same" 8 "all 8 opens of the big blob succeeded, with the right bytes"
fs_stop_fg "agfs stops cleanly"
done_testing
