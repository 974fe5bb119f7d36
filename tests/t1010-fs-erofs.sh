#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Every mutating operation on the mount fails with EROFS, on files,
# directories and the root, and leaves the store exactly as it was.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fs.sh"
need_root_fuse

tree=$T/tree store=$T/store mnt=$T/mnt
fs_model "$tree" registry.ollama.ai/library/tiny/latest 100000
fs_store "$store" "$tree" >/dev/null || bail "fs-mkstore failed"
# (index/lock.mdb is LMDB's reader table: every reader writes it)
before=$(store_snapshot "$store" | grep -v lock.mdb)
mount_agfs "$store" "$mnt" || bail "agfs did not mount"

MUT=$HELPERS/fs-mutate
blob=$mnt/blobs/$(ls "$tree/blobs" | head -1)
man=$mnt/manifests/registry.ollama.ai/library/tiny/latest
dir=$mnt/manifests/registry.ollama.ai/library
for target in "$blob" "$man" "$mnt/versions/1/INFO"; do
	for op in unlink rename link symlink chmod chown truncate utimes setxattr removexattr \
		fallocate open-write open-rdwr open-trunc open-append; do
		is "$("$MUT" $op "$target" "$dir/new-name")" EROFS "$op on ${target#"$mnt"/} gives EROFS"
	done
done
for op in create mknod mkdir symlink; do
	is "$("$MUT" $op "$man" "$dir/new-name")" EROFS "$op in a directory gives EROFS"
	is "$("$MUT" $op "$man" "$mnt/new-name")" EROFS "$op at the root gives EROFS"
	is "$("$MUT" $op "$man" "$mnt/versions/new-name")" EROFS "$op in versions/ gives EROFS"
done
for d in "$dir" "$mnt/manifests" "$mnt/blobs" "$mnt/versions/1"; do
	is "$("$MUT" rmdir "$d")" EROFS "rmdir ${d#"$mnt"/} gives EROFS"
	is "$("$MUT" rename "$d" "$mnt/moved")" EROFS "rename ${d#"$mnt"/} gives EROFS"
	is "$("$MUT" chmod "$d")" EROFS "chmod ${d#"$mnt"/} gives EROFS"
done
is "$("$MUT" unlink "$mnt/versions/current")" EROFS "unlink versions/current gives EROFS"
( echo x >"$blob" ) 2>"$T/err"
grep -q "Read-only file system" "$T/err"
ok $? "a shell redirection says: Read-only file system"
cmp -s "$blob" "$tree/blobs/$(basename "$blob")"
ok $? "the blob still reads as imported"
is "$(store_snapshot "$store" | grep -v lock.mdb)" "$before" "the store is unchanged"
done_testing
