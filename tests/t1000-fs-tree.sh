#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# agfs serves the imported Ollama tree byte for byte: manifests/, blobs/,
# versions/N/ with INFO, versions/current; stat fields; no empty directory,
# no colon in a blob name; every listed name stats; stable inode numbers.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fs.sh"
need_root_fuse

tree=$T/tree store=$T/store mnt=$T/mnt
fs_model "$tree" registry.ollama.ai/library/tiny/latest 300000
fs_model "$tree" registry.ollama.ai/library/tiny/q8 70000
fs_model "$tree" hf.co/someone/Other-GGUF/Q4_K_M 1000000
ADDED=1700000000
gen=$(fs_store "$store" "$tree" --label "first import" --added $ADDED) || bail "fs-mkstore failed"
is "$gen" 1 "the fixture is generation 1"

mount_agfs "$store" "$mnt"
ok $? "agfs mounts the store (daemonized) and returns"
mountpoint -q "$mnt"
ok $? "the mount is up when agfs returns"
grep -q " $mnt fuse.agfs ro," /proc/mounts
ok $? "mounted read-only as fuse.agfs"
grep " $mnt " /proc/mounts | grep -q allow_other
ok $? "allow_other by default when run as root"
grep -q "^agfs:$store $mnt " /proc/mounts
ok $? "fsname names the store"

is "$(ls "$mnt" | tr '\n' ' ')" "blobs manifests versions " "the root holds blobs, manifests, versions"
diff -r "$tree/manifests" "$mnt/manifests"
ok $? "manifests/ equals the imported tree byte for byte"
diff -r "$tree/blobs" "$mnt/blobs"
ok $? "blobs/ equals the imported tree byte for byte"
bad=0
while read -r hex path; do
	[ "sha256-$hex" = "$(basename "$path")" ] || { bad=1; diag "$path hashes to $hex"; }
done < <(fs_sha "$mnt")
ok $bad "sha256sum of every blob through the mount equals its name"
is "$(fs_sha "$mnt" | wc -l)" "$(ls "$tree/blobs" | wc -l)" "one blob per referenced digest"

is "$(cd "$mnt" && find manifests blobs | sort)" "$(cd "$tree" && find manifests blobs | sort)" \
	"find lists exactly the imported names"
ls -lR "$mnt" >"$T/lslR" 2>"$T/lserr"
ok $? "ls -lR walks the whole mount without an error"
is "$(cat "$T/lserr")" "" "ls -lR printed no error"
empty=$(find "$mnt" -type d -empty)
is "$empty" "" "no directory is empty"
is "$(find "$mnt" -name '*:*' | wc -l)" 0 "no name holds a colon"

# stat fields
m=$mnt/manifests/registry.ollama.ai/library/tiny/latest
is "$(stat -c '%F %a %s %Y' "$m")" "regular file 444 $(stat -c %s "$tree/manifests/registry.ollama.ai/library/tiny/latest") $ADDED" \
	"a manifest: regular, 0444, exact size, mtime = when the model entered the store"
b=$(ls "$mnt/blobs" | head -1)
is "$(stat -c '%F %a %s' "$mnt/blobs/$b")" "regular file 444 $(stat -c %s "$tree/blobs/$b")" \
	"a blob: regular, 0444, exact size"
is "$(stat -c '%F %a' "$mnt/manifests/hf.co")" "directory 555" "directories are 0555"
is "$(stat -c '%h' "$mnt/manifests")" 4 "a directory's link count counts its subdirectories"
i1=$(stat -c %i "$m")
sleep 1.2
echo 2 >/proc/sys/vm/drop_caches
is "$(stat -c %i "$m")" "$i1" "inode numbers are stable"
is "$(stat -c %i "$mnt/versions/1/manifests/registry.ollama.ai/library/tiny/latest")" "$i1" \
	"a file of the same generation shares its inode between the root and versions/"

# every name readdir lists also stats
bad=0
while IFS= read -r -d '' p; do
	stat "$p" >/dev/null 2>&1 || { bad=1; diag "cannot stat $p"; }
done < <(find "$mnt" -print0)
ok $bad "every entry readdir lists also stats"

# versions/
is "$(ls "$mnt/versions" | tr '\n' ' ')" "1 current " "versions/ lists the generation and current"
is "$(readlink "$mnt/versions/current")" 1 "versions/current points at the current generation"
diff -r "$tree/manifests" "$mnt/versions/1/manifests" && diff -r "$tree/blobs" "$mnt/versions/1/blobs"
ok $? "versions/1 is a complete Ollama tree"
info=$mnt/versions/1/INFO
grep -qx 'id: 1' "$info" && grep -qx 'label: first import' "$info" && grep -qx 'models: 3' "$info" &&
	grep -qx 'operator: fs-mkstore' "$info" && grep -qE '^created: [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$' "$info" &&
	grep -q '^source_sha256: ' "$info" && grep -q '^signer: ' "$info" && grep -q '^source: ' "$info"
ok $? "versions/1/INFO has id, created, label, operator, source, source_sha256, signer, models"
mh=$(sha256sum "$tree/manifests/hf.co/someone/Other-GGUF/Q4_K_M" | cut -d' ' -f1)
grep -q "^model: hf.co/someone/Other-GGUF:Q4_K_M sha256:$mh" "$info"
ok $? "INFO names every model with its manifest digest"
is "$(stat -c %s "$info")" "$(wc -c <"$info")" "INFO's size is exact"

umount_agfs "$mnt"
ok $? "fusermount3 -u unmounts"
! mountpoint -q "$mnt"
ok $? "the mount is gone"
done_testing
