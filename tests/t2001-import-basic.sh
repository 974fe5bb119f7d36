#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# agimport: plain Ollama trees and signed bundles (every container format, a
# directory, stdin) are verified and published as generations; re-imports
# deduplicate; --dry-run leaves the store untouched; merge and --replace;
# transfer log, artifacts, --json.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
need_cmd gpg tar gzip sha256sum openssl jq comm
[ -x "$AGIMPORT" ] || skip_all "agimport not built"

make_gpg_key
TREE=$T/tree
make_random_ollama_tree "$TREE"
nobj() { find "$1/objects" -type f | wc -l; }
# nmodel STORE TREE: how many of TREE's files the store holds as objects (a
# format-2 store also keeps each generation's catalog and the bundle's own
# files as blobs).
nmodel() {
	local f h n=0
	while IFS= read -r f; do
		h=$(sha256sum "$f" | cut -d' ' -f1)
		[ -f "$1/objects/sha256/${h:0:2}/$h" ] && n=$((n + 1))
	done < <(find "$2" -type f)
	echo "$n"
}

# --- a plain Ollama tree ---
S=$T/s1
"$AGIMPORT" --ollama-dir "$TREE" --store "$S" --no-signature >"$T/out" 2>"$T/err"
ok $? "--ollama-dir imports a plain Ollama tree into a new store" || cat "$T/err"
is "$(nmodel "$S" "$TREE")" "$(find "$TREE" -type f | wc -l)" "every blob and manifest became an object"
is "$(nobj "$S")" $(($(find "$TREE" -type f | wc -l) + 1)) "and the generation's catalog, nothing else"
for f in "$TREE"/blobs/*; do
	h=${f##*sha256-}
	cmp -s "$f" "$S/objects/sha256/${h:0:2}/$h" || break
done
ok $? "objects are byte-exact copies of the blobs"
grep -q '"event":"BUNDLE_INGEST"' "$S/audit.log"
ok $? "the import is audited"
run_fail "$AGIMPORT" --ollama-dir "$TREE" --store "$S"
is "$rc" 2 "--ollama-dir without --keyring or --no-signature is a usage error"

# unreferenced and sha256: blobs
TREE2=$T/tree2
cp -r "$TREE" "$TREE2"
echo stray >"$TREE2/blobs/sha256-$(printf %064d 0)"
f=$(ls "$TREE2"/blobs/sha256-* | grep -v 00000000 | head -1)
mv "$f" "${f/sha256-/sha256:}"
"$AGIMPORT" --ollama-dir "$TREE2" --store "$T/s2" --no-signature --json >"$T/out" 2>"$T/err"
ok $? "old-style sha256:<hex> blob names are accepted" || cat "$T/err"
grep -q "sha256-$(printf %064d 0)" "$T/out"
ok $? "an unreferenced blob is reported"
[ ! -e "$T/s2/objects/sha256/00/$(printf %064d 0)" ]
ok $? "and not imported"

# --- a signed bundle, as bundle-format.md builds it ---
make_bundle "$TREE" "$T/out1" 20260423
TGZ=$T/out1/airgap-bundle-20260423.tar.gz
S=$T/s3
"$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" --sha256-file "$T/out1/airgap-bundle-final.sha256" \
	--transfer-log "$T/transfer.log" --artifacts-dir "$T/arts" --operator bob "$TGZ" >"$T/out" 2>"$T/err"
ok $? "a signed .tar.gz bundle with its outer hash is imported" || cat "$T/err"
is "$(nmodel "$S" "$TREE")" "$(find "$TREE" -type f | wc -l)" "all model files are in the store"
grep -Eq "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z BUNDLE_INGEST bob bundle_20260423 sha256=$(cut -d' ' -f1 "$T/out1/airgap-bundle-final.sha256")\$" \
	"$T/transfer.log"
ok $? "the transfer log has the site's line"
cmp -s "$T/arts/20260423/binaries/ollama-linux-amd64" <(tar xzf "$TGZ" -O binaries/ollama-linux-amd64)
ok $? "verified artifacts are copied to the artifacts directory"
[ -f "$T/arts/20260423/images/open-webui.tar" ] && [ ! -e "$T/arts/20260423/models" ]
ok $? "images are copied, models are not"
tail -1 "$S/audit.log" | grep -q "\"signer\":\"$KEY_FPR\""
ok $? "the audit record names the signer"
tail -1 "$S/audit.log" | grep -q '"operator":"bob"'
ok $? "the audit record names the operator"

# re-import deduplicates
before=$(store_snapshot "$S" | grep objects)
"$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" "$TGZ" >"$T/out" 2>"$T/err"
ok $? "re-importing the same bundle works" || cat "$T/err"
is "$(comm -13 <(echo "$before") <(store_snapshot "$S" | grep objects) | grep -c '^objects/sha256/../[0-9a-f]*$')" 1 \
	"and adds no object but the new generation's catalog"
grep -q "0 new objects" "$T/out"
ok $? "and says so"

# --dry-run leaves the store untouched
before=$(snap "$S"; md5sum <"$S/audit.log")
"$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" --dry-run "$TGZ" >"$T/out" 2>"$T/err"
ok $? "--dry-run verifies" || cat "$T/err"
is "$(snap "$S"; md5sum <"$S/audit.log")" "$before" "--dry-run leaves the store untouched"
"$AGIMPORT" --store "$T/never" --keyring "$T/pubkey.asc" --dry-run "$TGZ" >"$T/out" 2>&1
ok $? "--dry-run works without a store"
[ ! -e "$T/never" ]
ok $? "and does not create one"

# --- a manifest signed on the high side, its .sig beside it ---
cp -r "$TREE" "$T/tree-sig"
(cd "$T/tree-sig/manifests/registry.ollama.ai/library/tiny" &&
	gpg --batch --quiet --no-auto-check-trustdb --pinentry-mode loopback --passphrase '' \
		--output latest.sig --detach-sig --armor latest)
make_bundle "$T/tree-sig" "$T/out-sig" 20260423
"$AGIMPORT" --store "$T/ssig" --keyring "$T/pubkey.asc" --json "$T/out-sig/airgap-bundle-20260423.tar.gz" \
	>"$T/out" 2>"$T/err"
ok $? "a bundle with a signed manifest is imported" || cat "$T/err"
grep -q "\"signature\": \"verified, signed by $KEY_FPR\"" "$T/out"
ok $? "the manifest's signature is verified and reported"
is "$(nmodel "$T/ssig" "$T/tree-sig")" $(($(find "$TREE" -type f | wc -l) + 1)) \
	"the .sig is kept (one of the bundle's own files)"
jq -e '[.models[].name] | length == 2 and all(endswith(".sig") | not)' "$T/out" >/dev/null
ok $? "but it is not a model"

# --- keyrings: a GnuPG home, a binary export; --signer allow-list ---
mkdir -p "$T/gtmp"
TMPDIR=$T/gtmp "$AGIMPORT" --store "$T/k1" --keyring "$GNUPGHOME" --dry-run "$TGZ" >/dev/null 2>"$T/err"
ok $? "a GnuPG home works as --keyring" || cat "$T/err"
gpg --batch --export "$KEY_FPR" >"$T/pub.gpg"
TMPDIR=$T/gtmp "$AGIMPORT" --store "$T/k1" --keyring "$T/pub.gpg" --signer "$KEY_FPR" --dry-run "$TGZ" \
	>/dev/null 2>"$T/err"
ok $? "a binary key file and an allowed --signer work" || cat "$T/err"
mkdir -p "$T/keydir" && cp "$T/pubkey.asc" "$T/keydir/site.asc"
TMPDIR=$T/gtmp "$AGIMPORT" --store "$T/k1" --keyring "$T/keydir" --dry-run "$TGZ" >/dev/null 2>"$T/err"
ok $? "a directory of key files works as --keyring" || cat "$T/err"
is "$(ls -A "$T/gtmp")" "" "no private GnuPG home is left behind"

# --- every container: .tar, .tar.zst, .tar.xz, a directory, stdin ---
make_bundle_dir "$TREE" "$T/bd" 20260424
bundle_tar "$T/bd" "$T/b.tar" ""
"$AGIMPORT" --store "$T/s4" --keyring "$T/pubkey.asc" "$T/b.tar" >/dev/null 2>"$T/err"
ok $? "a plain .tar bundle is imported" || cat "$T/err"
if command -v zstd >/dev/null; then
	bundle_tar "$T/bd" "$T/b.data" --zstd
	"$AGIMPORT" --store "$T/s5" --keyring "$T/pubkey.asc" --sha256 "$(sha256sum <"$T/b.data" | cut -d' ' -f1)" \
		"$T/b.data" >/dev/null 2>"$T/err"
	ok $? "a .tar.zst bundle is detected by content and imported" || cat "$T/err"
else
	skip "zstd not installed"
fi
bundle_tar "$T/bd" "$T/b.txz" J
"$AGIMPORT" --store "$T/s6" --keyring "$T/pubkey.asc" "$T/b.txz" >/dev/null 2>"$T/err"
ok $? "a .tar.xz bundle is imported" || cat "$T/err"
"$AGIMPORT" --store "$T/s7" --keyring "$T/pubkey.asc" "$T/bd" >/dev/null 2>"$T/err"
ok $? "an extracted bundle directory is imported" || cat "$T/err"
"$AGIMPORT" --store "$T/s8" --keyring "$T/pubkey.asc" --sha256-file "$T/out1/airgap-bundle-final.sha256" - \
	<"$TGZ" >/dev/null 2>"$T/err"
ok $? "a bundle on stdin is imported, with its outer hash" || cat "$T/err"
for s in s4 s6 s7 s8; do
	[ "$(store_snapshot "$T/$s" | grep -c objects/sha256/../)" = "$(find "$TREE" -type f | wc -l)" ] || break
done
ok $? "each holds every model file"

# --- --no-signature: the explicit, audited opt-out ---
cp -a "$T/bd" "$T/unsigned" && rm "$T/unsigned/manifest/bundle.json.asc"
"$AGIMPORT" --store "$T/s12" --no-signature "$T/unsigned" >/dev/null 2>"$T/err"
ok $? "--no-signature accepts an unsigned bundle" || cat "$T/err"
tail -1 "$T/s12/audit.log" | grep -q '"unsigned":true'
ok $? "and the audit record says it was unsigned"

# --- quirks: "./" member names, and models/{manifests,blobs} without models/models ---
(cd "$T/bd" && tar czf "$T/dot.tgz" .)
"$AGIMPORT" --store "$T/s10" --keyring "$T/pubkey.asc" "$T/dot.tgz" >/dev/null 2>"$T/err"
ok $? "a bundle tarred as ./... is imported" || cat "$T/err"
cp -a "$T/bd" "$T/flat"
(cd "$T/flat" && mv models/models/* models/ && rmdir models/models && resign_bundle .)
bundle_tar "$T/flat" "$T/flat.tgz"
"$AGIMPORT" --store "$T/s11" --keyring "$T/pubkey.asc" --json "$T/flat.tgz" >"$T/out" 2>"$T/err"
ok $? "an Ollama tree directly under models/ is found" || cat "$T/err"
grep -q '"registry.ollama.ai/library/tiny/latest"' "$T/out"
ok $? "and its models are imported"

# --- merge by default, --replace, anti-rollback with a newer label ---
TREE3=$T/tree3
mkdir -p "$TREE3"
make_model "$TREE3" registry.ollama.ai/library/other/2b 5000 other
S=$T/s9
"$AGIMPORT" --store "$S" --ollama-dir "$TREE" --no-signature --label 20260101 >/dev/null 2>&1
"$AGIMPORT" --store "$S" --ollama-dir "$TREE3" --no-signature --label 20260102 --json >"$T/j1" 2>&1
ok $? "a second import works"
if [ -x "$AGSTORE" ] && "$AGSTORE" --store "$S" ls >"$T/ls" 2>/dev/null; then
	grep -q tiny "$T/ls" && grep -q other "$T/ls"
	ok $? "by default the new generation keeps the current models and adds the new ones"
	"$AGIMPORT" --store "$S" --ollama-dir "$TREE3" --no-signature --replace --label 20260103 >/dev/null 2>&1
	"$AGSTORE" --store "$S" ls >"$T/ls" 2>/dev/null
	! grep -q tiny "$T/ls" && grep -q other "$T/ls"
	ok $? "--replace holds only this source's models"
else
	skip "agstore ls not available to list generations"
	skip "agstore ls not available to list generations"
fi
run_fail "$AGIMPORT" --store "$S" --ollama-dir "$TREE" --no-signature --label 20250101
is "$rc" 0 "--ollama-dir labels are not anti-rollback versions (only bundle_version is)"
done_testing
