#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The access patterns of model loaders: a shared read-only mmap of a blob
# (llama.cpp), 16 concurrent readers at random offsets, cold and warm, each
# compared with the source; MODEL_OPEN audit records for model layers.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fs.sh"
need_root_fuse

tree=$T/tree store=$T/store mnt=$T/mnt
fs_model "$tree" registry.ollama.ai/library/tiny/latest $((24 * 1024 * 1024 + 4321))
hex=$FS_MODEL_HEX
fs_store "$store" "$tree" --chunk 65536 >/dev/null || bail "fs-mkstore failed"
fs_model "$T/tree2" registry.ollama.ai/library/odd/latest $((3 * 1024 * 1024 + 5))
odd=$FS_MODEL_HEX
fs_store "$store" "$T/tree2" --chunk 16384 >/dev/null || bail "fs-mkstore failed"
mount_agfs "$store" "$mnt" -o threads=4 || bail "agfs did not mount"
blob=$mnt/versions/1/blobs/sha256-$hex
src=$tree/blobs/sha256-$hex

drop_caches
is "$("$HELPERS/fs-mmap" "$blob")" "$hex" "a shared read-only mmap of the blob (cold) hashes to its name"
is "$("$HELPERS/fs-mmap" "$blob")" "$hex" "and again from the page cache"
out=$("$HELPERS/fs-mmap" "$mnt/blobs/sha256-$odd")
is "$out" "$odd" "mmap of a blob with 16 KiB chunks and an odd size"

drop_caches
"$HELPERS/fs-randread" -t 16 -n 100 -s 1 "$blob" "$src" >"$T/out" 2>&1
ok $? "16 concurrent readers at random offsets (cold) read what was imported"
diag "$(cat "$T/out")"
"$HELPERS/fs-randread" -t 16 -n 100 -s 2 "$blob" "$src" >"$T/out" 2>&1
ok $? "16 concurrent readers at random offsets (warm) read what was imported"
drop_caches
"$HELPERS/fs-randread" -t 16 -n 60 -s 3 "$mnt/blobs/sha256-$odd" "$T/tree2/blobs/sha256-$odd" >"$T/out" 2>&1
ok $? "the same with 16 KiB chunks"

# a parallel sequential read of everything, as ollama's startup does
drop_caches
( cd "$mnt" && find blobs manifests -type f -print0 | xargs -0 -P 8 -n 1 cat >/dev/null ) 2>"$T/err"
is "$(cat "$T/err")" "" "8 parallel readers of every file: no error"

grep '"MODEL_OPEN"' "$store/audit.log" | grep "\"digest\":\"$hex\"" | grep -q '"command":"fs-mmap"'
ok $? "opening a model layer writes a MODEL_OPEN audit event with the command name"
ev=$(grep '"MODEL_OPEN"' "$store/audit.log" | grep "\"command\":\"fs-mmap\"" | head -1)
echo "$ev" | grep -q '"uid":0' && echo "$ev" | grep -q '"pid":[1-9]' && echo "$ev" | grep -q '"models":\["tiny:latest"\]' &&
	echo "$ev" | grep -q '"time":"'
ok $? "MODEL_OPEN records time, uid, pid, command, digest and model names"
tmpl=$(grep -o '"application/vnd.ollama.image.template","digest":"sha256:[0-9a-f]*' "$tree/manifests/registry.ollama.ai/library/tiny/latest" | grep -o '[0-9a-f]\{64\}')
cat "$mnt/blobs/sha256-$tmpl" >/dev/null
sleep 0.2
! grep '"MODEL_OPEN"' "$store/audit.log" | grep -q "\"digest\":\"$tmpl\""
ok $? "other layers (a template) write no MODEL_OPEN event"
done_testing
