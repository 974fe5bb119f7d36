#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Delta bundles: agbundle create --since carries only the blobs the previous
# bundle did not, and says so in the signed bundle.json; agimport accepts it
# on a store holding the base (each omitted blob re-hashed there), refuses it
# naming the missing blobs on an empty store or one where an omitted blob is
# damaged, the store left exactly as it was; --since refuses a bundle.json
# without "files".
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
. "$TESTS_DIR/lib-fixtures.sh"
need_cmd gpg tar gzip sha256sum jq
AGBUNDLE=$AGFS_BUILD/agbundle
[ -x "$AGBUNDLE" ] || skip_all "agbundle not built"
[ -x "$MKGGUF" ] || skip_all "tests/helpers/mkgguf not built"

make_gpg_key
M=$T/ollama/models
make_ollama_tree "$M" --model tiny:latest --model ns/other:7b
bundle() { # bundle LABEL OUTDIR [options]
	local label=$1 out=$2
	shift 2
	mkdir -p "$out"
	"$AGBUNDLE" create --models "$M" --sign-key "$KEY_FPR" --label "$label" -o "$out" "$@"
}
blobs_of() { tar tzf "$1" | sed -n 's|^models/models/blobs/\(sha256-[0-9a-f]*\)$|\1|p' | sort; }

bundle 20261101 "$T/base" >/dev/null 2>"$T/err"
ok $? "the base bundle" || cat "$T/err"
BASE=$T/base/airgap-bundle-20261101.tar.gz
tar xzf "$BASE" -O manifest/bundle.json >"$T/base.json"
ls "$M/blobs" | sort >"$T/blobs-before"

make_ollama_tree "$M" --model fresh:1b --seed 7
ls "$M/blobs" | sort >"$T/blobs-after"
comm -13 "$T/blobs-before" "$T/blobs-after" >"$T/new-blobs"
[ -s "$T/new-blobs" ]
ok $? "adding one model brings new blobs ($(wc -l <"$T/new-blobs"))"

bundle 20261115 "$T/delta" --since "$T/base.json" --json >"$T/out" 2>"$T/err"
ok $? "a delta bundle --since the base's bundle.json" || cat "$T/err"
DELTA=$T/delta/airgap-bundle-20261115.tar.gz
blobs_of "$DELTA" >"$T/carried"
diff "$T/carried" "$T/new-blobs" >/dev/null
ok $? "it carries exactly the new model's blobs" || diff "$T/carried" "$T/new-blobs"
is "$(tar tzf "$DELTA" | grep -c '^models/models/manifests/.*[^/]$')" 3 "and every manifest"
tar xzf "$DELTA" -O manifest/bundle.json >"$T/delta.json"
jq -r '.delta.omitted_blobs[]' "$T/delta.json" | sed 's/^/sha256-/' | sort >"$T/omitted"
diff "$T/omitted" "$T/blobs-before" >/dev/null
ok $? "its signed delta.omitted_blobs lists every blob of the base"
is "$(jq -r .delta.since_bundle_json_sha256 "$T/delta.json")" "$(sha256sum <"$T/base.json" | cut -d' ' -f1)" \
	"delta.since_bundle_json_sha256 is the base bundle.json's SHA-256"
is "$(jq -r .delta.since_bundle_version "$T/delta.json")" 20261101 "delta.since_bundle_version"
is "$(jq -r .omitted_blobs "$T/out")" "$(wc -l <"$T/blobs-before")" "--json counts the omitted blobs"
bundle 20261115 "$T/delta-tgz" --since "$BASE" >/dev/null 2>"$T/err"
ok $? "--since the base's tarball" || cat "$T/err"
tar xzf "$T/delta-tgz/airgap-bundle-20261115.tar.gz" -O manifest/bundle.json | cmp -s - "$T/delta.json"
ok $? "gives the same bundle.json as --since its bundle.json"
run_fail bundle 20261115 "$T/delta-none" --since "$T/blobs-before"
is "$rc" 1 "--since a file that is neither a bundle.json nor a bundle is refused"
[ "$(stat -c %s "$DELTA")" -lt "$(stat -c %s "$BASE")" ]
ok $? "the delta is smaller than the base"
"$AGBUNDLE" verify "$DELTA" --keyring "$T/pubkey.asc" >"$T/out" 2>"$T/err"
ok $? "agbundle verify accepts the delta without a store" || cat "$T/err"
grep -q "delta" "$T/out"
ok $? "and says it is a delta"

# --- on a store holding the base ---
S=$T/store
"$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" "$BASE" >/dev/null 2>"$T/err"
ok $? "the base imports" || cat "$T/err"
"$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" --json "$DELTA" >"$T/out" 2>"$T/err"
ok $? "the delta imports on a store holding the base" || cat "$T/err"
jq -e '.delta.omitted_blobs_in_store == "verified"' "$T/out" >/dev/null
ok $? "the report says the omitted blobs were verified in the store"
"$AGSTORE" --store "$S" ls >"$T/ls" 2>&1
grep -q fresh "$T/ls" && grep -q tiny "$T/ls" && grep -q other "$T/ls"
ok $? "the new generation has the base's models and the new one" || cat "$T/ls"

# --- on an empty store: refused, naming the missing blobs ---
E=$T/empty
"$AGIMPORT" --store "$E" --keyring "$T/pubkey.asc" "$DELTA" >/dev/null 2>&1 # creates it
snap "$E" >"$T/snap1"
run_fail "$AGIMPORT" --store "$E" --keyring "$T/pubkey.asc" "$DELTA"
is "$rc" 1 "the delta is refused on an empty store"
named=0
for h in $(head -5 "$T/omitted" | sed 's/^sha256-//'); do
	grep -q "sha256:$h" "$T/err" && named=$((named + 1))
done
is "$named" "$(head -5 "$T/omitted" | wc -l)" "the refusal names the missing blobs" || cat "$T/err"
grep -q "lacks $(wc -l <"$T/omitted") of the blobs" "$T/err"
ok $? "and counts them"
snap "$E" >"$T/snap2"
cmp -s "$T/snap1" "$T/snap2"
ok $? "the store is left exactly as it was"
"$AGIMPORT" --store "$E" --keyring "$T/pubkey.asc" --dry-run "$DELTA" >/dev/null 2>&1
is $? 1 "--dry-run refuses it too"

# --- a store whose copy of an omitted blob is damaged ---
D=$T/damaged
"$AGIMPORT" --store "$D" --keyring "$T/pubkey.asc" "$BASE" >/dev/null 2>&1
victim=$(sed -n 's/^sha256-//p' "$T/omitted" | head -1)
obj=$D/objects/sha256/${victim:0:2}/$victim
chmod u+w "$obj" 2>/dev/null
printf 'X' | dd of="$obj" bs=1 seek=3 conv=notrunc status=none
snap "$D" >"$T/snap1"
run_fail "$AGIMPORT" --store "$D" --keyring "$T/pubkey.asc" "$DELTA"
is "$rc" 1 "a delta whose omitted blob is damaged in the store is refused"
grep -q "sha256:$victim" "$T/err"
ok $? "naming that blob" || cat "$T/err"
snap "$D" >"$T/snap2"
cmp -s "$T/snap1" "$T/snap2"
ok $? "the store is left exactly as it was"

# --- a delta on a delta ---
make_ollama_tree "$M" --model third:2b --seed 11
bundle 20261120 "$T/delta2" --since "$T/delta.json" >/dev/null 2>"$T/err"
ok $? "a delta --since a delta" || cat "$T/err"
is "$(blobs_of "$T/delta2/airgap-bundle-20261120.tar.gz" | wc -l)" \
	"$(comm -13 "$T/blobs-after" <(ls "$M/blobs" | sort) | wc -l)" \
	"carries only the third model's blobs (the first delta's omissions count as carried)"
"$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" "$T/delta2/airgap-bundle-20261120.tar.gz" >/dev/null 2>"$T/err"
ok $? "and imports on the store holding base and first delta" || cat "$T/err"

# --- --since a bundle.json without "files" ---
make_bundle_dir "$M" "$T/manual" 20261101 >/dev/null 2>&1
run_fail bundle 20261116 "$T/bad" --since "$T/manual/manifest/bundle.json"
is "$rc" 1 "--since a hand-made bundle.json is refused"
grep -q 'no "files" field' "$T/err"
ok $? "saying it has no \"files\" field" || cat "$T/err"
is "$(ls -A "$T/bad")" "" "and nothing is written"
run_fail bundle 20261116 "$T/bad" --since "$T/nonexistent.json"
is "$rc" 2 "--since a missing file is a usage error"

# --- a tampered delta: a carried blob also listed as omitted ---
jq --arg h "$(head -1 "$T/new-blobs" | sed 's/^sha256-//')" '.delta.omitted_blobs += [$h]' \
	"$T/delta.json" >"$T/tamper.json"
mkdir -p "$T/tx" && tar xzf "$DELTA" -C "$T/tx" && cp "$T/tamper.json" "$T/tx/manifest/bundle.json" &&
	_sign "$T/tx/manifest/bundle.json"
run_fail "$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" --dry-run "$T/tx"
is "$rc" 1 "a delta listing a blob it carries as omitted is refused"
grep -q "lists it as omitted" "$T/err"
ok $? "with the reason" || cat "$T/err"

done_testing
