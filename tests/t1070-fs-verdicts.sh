#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# "Could not check" is not "checked, and wrong" (issue 11 #3, #9): a chunk
# table page that cannot be loaded (its record gone under an open blob) gives
# EIO and a LOG_ERR line, but no VERIFY_FAILURE record, no LOG_CRIT, and the
# chunk is not remembered as bad.  A real mismatch still is a VERIFY_FAILURE,
# and a plain reader retrying its failed pread 40 times is not killed.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fs.sh"
need_root_fuse

tree=$T/tree store=$T/store mnt=$T/mnt
# 20 MiB: 5121 blocks, 41 level-0 tree blocks (a read fetches 16 of them)
fs_model "$tree" registry.ollama.ai/library/paged/latest $((20 * 1024 * 1024 + 99))
hex=$FS_MODEL_HEX
fs_model "$tree" registry.ollama.ai/library/flip/latest $((1024 * 1024))
flip=$FS_MODEL_HEX
fs_store "$store" "$tree" --chunk 4096 >/dev/null || bail "fs-mkstore failed"
blob=$mnt/blobs/sha256-$hex
src=$tree/blobs/sha256-$hex

fs_mount_fg "$store" "$mnt"

# a reader holds the blob open across the loss of its records, then reads
# block 4500: its tree block (level 0, number 35) was never loaded
late=$((4500 * 4096))
"$HELPERS/fs-retry" -w 3 -n 3 -o $late "$blob" >"$T/late" &
reader=$!
sleep 1
dd if="$blob" bs=4096 count=1 2>/dev/null | cmp -s - <(head -c 4096 "$src")
ok $? "the first block reads (its tree blocks loaded)"
"$HELPERS/fs-mkstore" --drop-blob "$hex" "$store"
ok $? "the blob's record and tree are deleted under the open blob"
wait $reader
is "$(cat "$T/late")" "eio 3" "a block whose tree block cannot be loaded gives EIO"
sleep 0.5
! grep -q '"VERIFY_FAILURE"' "$store/audit.log"
ok $? "no VERIFY_FAILURE record for what could not be checked"
! grep -q "failed verification" "$T/agfs.log"
ok $? "no 'failed verification' (LOG_CRIT) line"
grep -q "sha256:$hex cannot be read: .*(not a verification failure)" "$T/agfs.log"
ok $? "a LOG_ERR line says the blob could not be read"
is "$(grep -c "sha256:$hex cannot be read" "$T/agfs.log")" 1 "once, however many reads failed"
kill -0 $agfs_pid
ok $? "the daemon is alive"

# a real mismatch is still one
obj=$(fs_object "$store" "$flip")
off=$((3 * 4096 + 10))
printf '\x5a' | cmp -s - <(dd if="$obj" bs=1 skip=$off count=1 2>/dev/null) && b='\xa5' || b='\x5a'
printf "$b" | dd of="$obj" bs=1 seek=$off conv=notrunc 2>/dev/null
drop_caches
out=$("$HELPERS/fs-retry" -n 40 -o $((3 * 4096)) "$mnt/blobs/sha256-$flip")
rc=$?
is "$rc/$out" "0/eio 40" "a plain reader retrying a failed pread 40 times is not killed"
fs_wait_for 3 grep -q '"VERIFY_FAILURE"' "$store/audit.log"
ok $? "a chunk hash mismatch is a VERIFY_FAILURE"
grep '"VERIFY_FAILURE"' "$store/audit.log" | grep -q '"chunk":3'
ok $? "naming chunk 3"
! grep -q '"READER_KILLED"' "$store/audit.log"
ok $? "and no READER_KILLED record"

fs_stop_fg "SIGTERM stops agfs -f with status 0"
done_testing
