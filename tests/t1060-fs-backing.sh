#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# -o backing=buffered: objects read through the page cache with kernel
# read-ahead instead of O_DIRECT.  The same bytes, the same verification
# (EIO for a damaged chunk only), and no unverified copy left cached.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fs.sh"
need_root_fuse

tree=$T/tree store=$T/store mnt=$T/mnt
fs_model "$tree" registry.ollama.ai/library/tiny/latest $((40 * 1024 * 1024 + 77))
hex=$FS_MODEL_HEX
fs_store "$store" "$tree" >/dev/null || bail "fs-mkstore failed"
obj=$(fs_object "$store" "$hex")
blob=$mnt/blobs/sha256-$hex

run_fail "$AGFS" -o backing=sideways "$store" "$mnt"
is "$rc" 2 "an unknown backing mode is a usage error"

mount_agfs "$store" "$mnt" -o backing=buffered || bail "agfs -o backing=buffered did not mount"
drop_caches
is "$(sha256sum <"$blob" | cut -d' ' -f1)" "$hex" "the blob reads whole and hashes to its name"
if command -v fincore >/dev/null; then
	is "$(fincore -nb -o RES "$obj" | tr -d ' ')" 0 "the object's pages were dropped once read (no second, unverified copy)"
else
	skip "fincore (util-linux) is not installed"
fi
umount_agfs "$mnt"

# one byte of chunk 300 (64 KiB chunks) flipped
off=$((300 * 65536 + 5))
chmod u+w "$obj"
b=$(od -An -tu1 -j "$off" -N1 "$obj" | tr -d ' ')
printf "$(printf '\\%03o' $((b ^ 1)))" | dd of="$obj" bs=1 seek="$off" conv=notrunc status=none
drop_caches
mount_agfs "$store" "$mnt" -o backing=buffered || bail "remount failed"
dd if="$blob" of=/dev/null bs=65536 skip=300 count=1 2>"$T/err"
[ $? -ne 0 ] && grep -q "Input/output error" "$T/err"
ok $? "the damaged chunk gives EIO"
dd if="$blob" bs=65536 skip=299 count=1 2>/dev/null | cmp -s - <(dd if="$tree/blobs/sha256-$hex" bs=65536 skip=299 count=1 2>/dev/null)
ok $? "the chunk before it still reads correctly"
dd if="$blob" bs=65536 skip=301 count=1 2>/dev/null | cmp -s - <(dd if="$tree/blobs/sha256-$hex" bs=65536 skip=301 count=1 2>/dev/null)
ok $? "the chunk after it too"
done_testing
