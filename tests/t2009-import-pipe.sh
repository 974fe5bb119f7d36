#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Issue 13: members larger than the spool limit go through the staging pipe,
# where three threads write the bytes (large aligned pieces with O_DIRECT),
# hash the whole blob and build its fs-verity tree.  Sizes around the slot
# (1 MiB) and block (4 KiB) boundaries, on the store's file system and on a
# tmpfs (which may refuse O_DIRECT), must give the exact bytes, the right
# digest and tree: fsck re-checks both, and the mount serves the bytes.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
need_cmd gpg tar gzip zstd sha256sum openssl
[ -x "$AGIMPORT" ] || skip_all "agimport not built"
[ -x "$AGSTORE" ] || skip_all "agstore not built"

make_gpg_key
TREE=$T/tree
mkdir -p "$TREE"
sizes="1048577 4194304 5255245 9437183"
for n in $sizes; do
	make_model "$TREE" "registry.ollama.ai/library/p$n/latest" "$n" "p$n"
done
make_bundle_dir "$TREE" "$T/b" 20260701
bundle_tar "$T/b" "$T/b.tzst" --zstd

check_store() { # check_store STORE WHERE
	local s=$1 where=$2 bad=0 f h
	for f in "$TREE"/blobs/sha256-*; do
		h=${f##*sha256-}
		cmp -s "$f" "$s/objects/sha256/${h:0:2}/$h" || bad=$((bad + 1))
	done
	is "$bad" 0 "$where: every object holds exactly the blob's bytes"
	"$AGSTORE" --store "$s" fsck >"$T/fsck" 2>&1
	ok $? "$where: fsck finds every digest and tree right" || cat "$T/fsck"
}

"$AGIMPORT" --store "$T/s" --keyring "$T/pubkey.asc" "$T/b.tzst" >/dev/null 2>"$T/err"
ok $? "a bundle with blobs of $sizes bytes imports" || cat "$T/err"
check_store "$T/s" "on $(stat -f -c %T "$T")"

if [ "$(id -u)" -eq 0 ] && mkdir -p "$T/tmpfs" && mount -t tmpfs -o size=256m tmpfs "$T/tmpfs" 2>/dev/null; then
	_mounts+=("$T/tmpfs")
	"$AGIMPORT" --store "$T/tmpfs/s" --keyring "$T/pubkey.asc" "$T/b.tzst" >/dev/null 2>"$T/err"
	ok $? "the same bundle imports into a store on a tmpfs" || cat "$T/err"
	check_store "$T/tmpfs/s" "on a tmpfs"
	umount "$T/tmpfs"
else
	skip "not root: no tmpfs to try"
fi
done_testing
