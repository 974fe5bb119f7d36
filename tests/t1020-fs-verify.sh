#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Verification on the read path: a byte flipped in an object makes exactly
# the 4 KiB block that holds it unreadable (EIO) while the rest of the blob still
# reads; the failure is logged at LOG_CRIT naming blob, chunk and models and
# recorded as a VERIFY_FAILURE audit event.  A truncated or missing object
# fails at open; verify=full refuses a damaged blob at its first open.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fs.sh"
need_root_fuse

tree=$T/tree store=$T/store mnt=$T/mnt
fs_model "$tree" registry.ollama.ai/library/tiny/latest $((2 * 1024 * 1024 + 1234))
hex=$FS_MODEL_HEX
fs_model "$tree" registry.ollama.ai/library/other/latest 500000
other=$FS_MODEL_HEX
fs_store "$store" "$tree" >/dev/null || bail "fs-mkstore failed"
obj=$(fs_object "$store" "$hex")
blob=$mnt/blobs/sha256-$hex
src=$tree/blobs/sha256-$hex

# foreground, so the daemon's syslog lines are also on its stderr
fs_mount_fg "$store" "$mnt"

cmp -s "$blob" "$src"
ok $? "the intact blob reads as imported"

# flip one byte in 4 KiB block 80 (the first of the 64 KiB region 5) of the object
off=$((5 * 65536 + 777))
printf '\x5a' | cmp -s - <(dd if="$obj" bs=1 skip=$off count=1 2>/dev/null) && flip='\xa5' || flip='\x5a'
printf "$flip" | dd of="$obj" bs=1 seek=$off conv=notrunc 2>/dev/null
drop_caches || skip "cannot drop caches"

dd if="$blob" of=/dev/null bs=4096 skip=80 count=1 2>"$T/err"
rc=$?
[ $rc -ne 0 ] && grep -q "Input/output error" "$T/err"
ok $? "the damaged block 80 gives EIO"
for page in 79 81; do
	dd if="$blob" bs=4096 skip=$page count=1 2>/dev/null | cmp -s - <(dd if="$src" bs=4096 skip=$page count=1 2>/dev/null)
	ok $? "its neighbour, block $page, still reads correctly (no 64 KiB amplification)"
done
for chunk in 0 4 6 31 32; do
	dd if="$blob" bs=65536 skip=$chunk count=1 2>/dev/null | cmp -s - <(dd if="$src" bs=65536 skip=$chunk count=1 2>/dev/null)
	ok $? "chunk $chunk still reads correctly"
done
head -c $((5 * 65536)) "$blob" | cmp -s - <(head -c $((5 * 65536)) "$src")
ok $? "everything before the damaged block reads as one sequential stream"
tail -c +$((81 * 4096 + 1)) "$blob" | cmp -s - <(tail -c +$((81 * 4096 + 1)) "$src")
ok $? "everything after it too"
cat "$blob" >/dev/null 2>"$T/err"
[ $? -ne 0 ] && grep -q "Input/output error" "$T/err"
ok $? "reading the whole blob fails with EIO"
# (under ASan, let the signal kill the reader as it would without it)
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_sigbus=0 "$HELPERS/fs-mmap" "$blob" >"$T/out" 2>/dev/null
rc=$?
is "$rc" 135 "a shared mmap reader touching the damaged chunk gets SIGBUS"
is "$(cat "$T/out")" "" "and no digest of wrong bytes"
# MAP_POPULATE: the kernel retries a page whose read fails until a fatal
# signal arrives; agfs sees the same chunk fail again and again for the same
# process and kills it (stuck=kill) instead of leaving it spinning.
timeout -k 5 60 env ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_sigbus=0 \
	"$HELPERS/fs-mmap" --populate "$blob" >"$T/out" 2>/dev/null
rc=$?
is "$rc" 137 "a MAP_POPULATE reader stuck on the damaged chunk is killed, not left hanging"
is "$(cat "$T/out")" "" "and it printed no digest of wrong bytes"
fs_wait_for 3 grep -q '"READER_KILLED"' "$store/audit.log"
ok $? "a READER_KILLED audit event is written"

fs_wait_for 3 grep -q '"VERIFY_FAILURE"' "$store/audit.log"
ok $? "a VERIFY_FAILURE audit event is written"
ev=$(grep '"VERIFY_FAILURE"' "$store/audit.log" | head -1)
echo "$ev" | grep -q "\"digest\":\"$hex\"" && echo "$ev" | grep -q '"chunk":80' &&
	echo "$ev" | grep -q '"models":\["tiny:latest"\]'
ok $? "the audit event names the blob, the chunk and the model"
grep -q "blob sha256:$hex chunk 80 failed verification .*tiny:latest" "$T/agfs.log"
ok $? "the daemon logs blob, chunk and models (LOG_CRIT)"

# a truncated object and a missing one fail at open
cfg=$(grep -o '"config":{[^}]*}' "$tree/manifests/registry.ollama.ai/library/other/latest" | grep -o '[0-9a-f]\{64\}')
truncate -s 10 "$(fs_object "$store" "$cfg")"
cat "$mnt/blobs/sha256-$cfg" >/dev/null 2>"$T/err"
grep -q "Input/output error" "$T/err"
ok $? "a truncated object gives EIO at open"
rm -f "$(fs_object "$store" "$other")"
cat "$mnt/blobs/sha256-$other" >/dev/null 2>"$T/err"
grep -q "Input/output error" "$T/err"
ok $? "a missing object gives EIO"
ls -l "$mnt/blobs" >/dev/null 2>&1
ok $? "listing blobs/ still works"

fs_stop_fg "SIGTERM stops agfs -f with status 0"
! mountpoint -q "$mnt"
ok $? "and unmounts"

# verify=full: the whole blob is hashed at its first open
mount_agfs "$store" "$mnt" -o verify=full || bail "agfs -o verify=full did not mount"
cat "$blob" >/dev/null 2>"$T/err"
grep -q "Input/output error" "$T/err"
ok $? "verify=full: the damaged blob cannot even be opened"
dd if="$src" of="$obj" bs=1 skip=$off seek=$off count=1 conv=notrunc 2>/dev/null # repair
cmp -s "$blob" "$src"
ok $? "verify=full: once repaired, the blob opens and reads as imported"
tmpl=$(ls "$tree/blobs" | while read -r b; do [ "$(stat -c %s "$tree/blobs/$b")" = 13 ] && echo "$b"; done | head -1)
cmp -s "$mnt/blobs/$tmpl" "$tree/blobs/$tmpl"
ok $? "verify=full: an intact blob reads"
done_testing
