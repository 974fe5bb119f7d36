#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Provenance: `agstore ls`, `agstore show` (and their --json) and the mount's
# versions/N/INFO say which bundle (label, SHA-256 of the tarball) brought
# each model.  A second bundle imported the default way merges: its
# generation holds the first bundle's models (named as from the first
# bundle) and its own; with --replace it holds only its own.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
need_cmd gpg tar gzip sha256sum openssl jq
[ -x "$AGIMPORT" ] || skip_all "agimport not built"

make_gpg_key
S=$T/store
mkdir -p "$T/t1/manifests" "$T/t1/blobs" "$T/t2/manifests" "$T/t2/blobs" "$T/t3/manifests" "$T/t3/blobs"
make_model "$T/t1" registry.ollama.ai/library/first/1b 40000 first
make_model "$T/t2" registry.ollama.ai/library/second/2b 30000 second
make_model "$T/t3" registry.ollama.ai/library/third/3b 20000 third
make_bundle "$T/t1" "$T/o1" 20260401 || bail "make_bundle failed"
make_bundle "$T/t2" "$T/o2" 20260402 || bail "make_bundle failed"
make_bundle "$T/t3" "$T/o3" 20260403 || bail "make_bundle failed"
b1=$T/o1/airgap-bundle-20260401.tar.gz b2=$T/o2/airgap-bundle-20260402.tar.gz b3=$T/o3/airgap-bundle-20260403.tar.gz
sha1=$(sha256sum "$b1" | cut -d' ' -f1) sha2=$(sha256sum "$b2" | cut -d' ' -f1) sha3=$(sha256sum "$b3" | cut -d' ' -f1)

"$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" "$b1" >/dev/null 2>"$T/err" || bail "import 1: $(cat "$T/err")"
"$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" "$b2" >/dev/null 2>"$T/err" || bail "import 2: $(cat "$T/err")"
label1=$("$AGSTORE" --store "$S" --json versions | jq -r '.[0].label')
label2=$("$AGSTORE" --store "$S" --json versions | jq -r '.[1].label')
src2=$("$AGSTORE" --store "$S" --json versions | jq -r '.[1].source_sha256')
[ "$src2" = "sha256:$sha2" ]
ok $? "generation 2 records bundle 2's SHA-256 (as the source)"

# --- ls ---
"$AGSTORE" --store "$S" ls >"$T/ls"
ok $? "ls"
grep -q "^first:1b .* $label1 (gen 1)$" "$T/ls"
ok $? "ls: first:1b came in bundle $label1 (generation 1), merged into generation 2"
grep -q "^second:2b .* $label2 (gen 2)$" "$T/ls"
ok $? "ls: second:2b came in bundle $label2 (generation 2)"
"$AGSTORE" --store "$S" --json ls >"$T/ls.json"
is "$(jq -c '[.[] | {name, bundle_label, bundle_sha256, from_generation}]' "$T/ls.json")" \
	"[{\"name\":\"first:1b\",\"bundle_label\":\"$label1\",\"bundle_sha256\":\"sha256:$sha1\",\"from_generation\":1},{\"name\":\"second:2b\",\"bundle_label\":\"$label2\",\"bundle_sha256\":\"sha256:$sha2\",\"from_generation\":2}]" \
	"ls --json: bundle_label, bundle_sha256, from_generation per model"
"$AGSTORE" --store "$S" --json ls 1 | jq -e 'length == 1 and .[0].from_generation == 1' >/dev/null
ok $? "ls 1: generation 1 knows only its own bundle"

# --- show ---
"$AGSTORE" --store "$S" show first:1b >"$T/show"
grep -q "^bundle: *$label1 sha256:$sha1 (generation 1)$" "$T/show"
ok $? "show: the bundle's label and SHA-256 and the generation that brought it"
"$AGSTORE" --store "$S" --json show second:2b >"$T/show.json"
is "$(jq -r '"\(.bundle_label) \(.bundle_sha256) \(.from_generation)"' "$T/show.json")" \
	"$label2 sha256:$sha2 2" "show --json: bundle_label, bundle_sha256, from_generation"

# --- --replace: only the new bundle's models, all from it ---
"$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" --replace "$b3" >/dev/null 2>"$T/err" || bail "import 3: $(cat "$T/err")"
is "$("$AGSTORE" --store "$S" --json ls | jq -c '[.[] | [.name, .from_generation, .bundle_sha256]]')" \
	"[[\"third:3b\",3,\"sha256:$sha3\"]]" "--replace: the generation holds only bundle 3's model"

# --- the mount's INFO ---
if [ "$(id -u)" -eq 0 ] && [ -c /dev/fuse ] && command -v fusermount3 >/dev/null && [ -x "$AGFS" ]; then
	M=$T/mnt
	mount_agfs "$S" "$M" || bail "agfs did not mount"
	for i in $(seq 1 40); do [ -f "$M/versions/2/INFO" ] && break; sleep 0.25; done
	grep -q "^model: first:1b sha256:[0-9a-f]\{64\} [0-9TZ:-]* from bundle $label1 sha256:$sha1$" "$M/versions/2/INFO"
	ok $? "versions/2/INFO: first:1b from bundle $label1 with its SHA-256"
	grep -q "^model: second:2b sha256:[0-9a-f]\{64\} [0-9TZ:-]* from bundle $label2 sha256:$sha2$" "$M/versions/2/INFO"
	ok $? "versions/2/INFO: second:2b from bundle $label2"
	grep -q "^model: third:3b .* from bundle [^ ]* sha256:$sha3$" "$M/versions/3/INFO"
	ok $? "versions/3/INFO: third:3b from bundle 3"
	umount_agfs "$M"
else
	skip "needs root and FUSE to mount (versions/N/INFO)"
	skip "needs root and FUSE to mount (versions/N/INFO)"
	skip "needs root and FUSE to mount (versions/N/INFO)"
fi
done_testing
