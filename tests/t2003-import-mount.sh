#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# End to end: a bundle built as bundle-format.md builds it is imported, then
# mounted with agfs; the mount serves exactly the Ollama tree that went into
# the bundle (manifests and blobs, byte for byte), and a second bundle with
# the same label order shows up as a new generation.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
need_cmd gpg tar gzip sha256sum openssl diff
[ -x "$AGIMPORT" ] || skip_all "agimport not built"
[ -x "$AGFS" ] || skip_all "agfs not built (needed to mount and compare)"
need_root_fuse

make_gpg_key
TREE=$T/tree
make_random_ollama_tree "$TREE" 1000000
make_bundle "$TREE" "$T/out" 20260423
S=$T/store
"$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" --sha256-file "$T/out/airgap-bundle-final.sha256" \
	"$T/out/airgap-bundle-20260423.tar.gz" >/dev/null 2>"$T/err"
ok $? "the bundle is imported" || cat "$T/err"

M=$T/mnt
mount_agfs "$S" "$M" >"$T/mount.log" 2>&1 || skip_all "agfs does not mount here: $(head -1 "$T/mount.log")"
for i in 1 2 3 4 5 6 7 8 9 10; do
	[ -d "$M/manifests" ] && break
	sleep 0.5
done
[ -d "$M/manifests" ] || skip_all "the mount shows no manifests/"

diff -r "$TREE/manifests" "$M/manifests" >"$T/diff" 2>&1
ok $? "the mount's manifests/ equals the bundled tree's, byte for byte" || head "$T/diff"
diff -r "$TREE/blobs" "$M/blobs" >"$T/diff" 2>&1
ok $? "the mount's blobs/ equals the bundled tree's, byte for byte" || head "$T/diff"
is "$(ls "$M/blobs" | grep -c :)" 0 "no blob is shown with a colon name"

# A newer bundle with one more model: a new generation, the old one kept.
cp -r "$TREE" "$T/tree2"
make_model "$T/tree2" registry.ollama.ai/library/later/7b 20000 later
make_bundle "$T/tree2" "$T/out2" 20260424
"$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" "$T/out2/airgap-bundle-20260424.tar.gz" >/dev/null 2>"$T/err"
ok $? "a newer bundle is imported while mounted" || cat "$T/err"
for i in $(seq 1 20); do
	[ -f "$M/manifests/registry.ollama.ai/library/later/7b" ] && break
	sleep 0.25
done
cmp -s "$T/tree2/manifests/registry.ollama.ai/library/later/7b" "$M/manifests/registry.ollama.ai/library/later/7b"
ok $? "the running mount shows the new generation's model"
diff -r "$TREE/manifests" "$M/versions/1/manifests" >/dev/null 2>&1
ok $? "versions/1 still serves the first bundle"
umount_agfs "$M"
done_testing
