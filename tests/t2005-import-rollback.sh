#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Issue 10, items 3, 11, 15, 16: anti-rollback against the newest
# bundle_version the store ever accepted (meta max_bundle_version), whatever
# agstore rm / activate or an --ollama-dir import did since; --signer pinned
# to a subkey allows only that subkey; --sha256-file lines with sha256sum's
# "\" escape; output places checked before verifying, and a transfer record
# that cannot be written fails the import with the store unchanged.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
need_cmd gpg tar gzip sha256sum openssl python3
[ -x "$AGIMPORT" ] || skip_all "agimport not built"
[ -x "$AGSTORE" ] || skip_all "agstore not built"

make_gpg_key
TREE=$T/tree
make_random_ollama_tree "$TREE" 20000
make_bundle_dir "$TREE" "$T/v1" 20260423
cp -r "$TREE" "$T/tree2"
make_model "$T/tree2" registry.ollama.ai/library/fresh/1b 9000 fresh
make_bundle_dir "$T/tree2" "$T/v2" 20260424
imp() { "$AGIMPORT" --keyring "$T/pubkey.asc" "$@"; }

# --- 3. anti-rollback survives rm, --ollama-dir imports and activate ---
S=$T/s
imp --store "$S" "$T/v2" >/dev/null 2>"$T/err"
ok $? "bundle 20260424 is imported" || cat "$T/err"
"$AGSTORE" --store "$S" rm registry.ollama.ai/library/fresh/1b >/dev/null 2>"$T/err"
ok $? "agstore rm makes a new current generation" || cat "$T/err"
run_fail imp --store "$S" "$T/v1"
is "$rc" 1 "after agstore rm, the older signed bundle 20260423 is refused"
grep -q "its bundle_version 20260423 is older than 20260424, the newest this store has accepted" "$T/err"
ok $? "saying both versions" || cat "$T/err"
"$AGIMPORT" --store "$S" --no-signature --ollama-dir "$TREE" >/dev/null 2>"$T/err"
ok $? "an --ollama-dir import (label ollama-...)" || cat "$T/err"
run_fail imp --store "$S" "$T/v1"
is "$rc" 1 "after it, the older bundle is still refused"
"$AGSTORE" --store "$S" activate 1 >/dev/null 2>"$T/err"
ok $? "agstore activate 1" || cat "$T/err"
run_fail imp --store "$S" "$T/v1"
is "$rc" 1 "after activating the first generation, the older bundle is still refused"
imp --store "$S" --allow-downgrade "$T/v1" >"$T/out" 2>"$T/err"
ok $? "--allow-downgrade accepts it" || cat "$T/err"
grep -q "bundle_version 20260423 is older than 20260424, accepted (--allow-downgrade)" "$T/out"
ok $? "saying so" || cat "$T/out"
tail -1 "$S/audit.log" | grep -q '"downgrade":{"from":"20260424","to":"20260423"}'
ok $? "and auditing it with both versions"
run_fail imp --store "$S" "$T/v1"
is "$rc" 1 "a downgrade does not lower the mark: without the option it is refused again"
imp --store "$S" "$T/v2" >/dev/null 2>"$T/err"
ok $? "the newest bundle itself is accepted again" || cat "$T/err"

# --- 11. --signer pinned to one signing subkey ---
G="gpg --batch --quiet --no-auto-check-trustdb --pinentry-mode loopback --passphrase="
$G --quick-gen-key "Subkeys <subkeys@example.invalid>" ed25519 cert 0 2>/dev/null
PRI=$(gpg --batch --with-colons --list-keys Subkeys 2>/dev/null | awk -F: '/^fpr/ {print $10; exit}')
$G --quick-add-key "$PRI" ed25519 sign 0 2>/dev/null
$G --quick-add-key "$PRI" ed25519 sign 0 2>/dev/null
mapfile -t SUBS < <(gpg --batch --with-colons --with-subkey-fingerprints --list-keys "$PRI" 2>/dev/null |
	awk -F: '/^sub/ {s=1; next} /^fpr/ && s {print $10; s=0}')
if [ "${#SUBS[@]}" -eq 2 ]; then
	gpg --batch --armor --export "$PRI" >"$T/subkeys.asc"
	cp -a "$T/v2" "$T/sk" && (cd "$T/sk" && SIGN_KEY="${SUBS[0]}!" _sign manifest/bundle.json)
	run_fail "$AGIMPORT" --store "$T/s11" --keyring "$T/subkeys.asc" --signer "${SUBS[1]}" "$T/sk"
	is "$rc" 1 "signed by subkey A, --signer pinned to subkey B: refused"
	grep -q "is not an allowed signer" "$T/err"
	ok $? "as not an allowed signer" || cat "$T/err"
	"$AGIMPORT" --store "$T/s11" --keyring "$T/subkeys.asc" --signer "${SUBS[0]}" --dry-run "$T/sk" \
		>/dev/null 2>"$T/err"
	ok $? "--signer pinned to subkey A accepts subkey A's signature" || cat "$T/err"
	"$AGIMPORT" --store "$T/s11" --keyring "$T/subkeys.asc" --signer "$PRI" --dry-run "$T/sk" \
		>/dev/null 2>"$T/err"
	ok $? "--signer naming the primary key accepts its subkeys" || cat "$T/err"
else
	bail "gpg did not make a key with two signing subkeys"
fi

# --- 15. --sha256-file with sha256sum's "\" escape ---
bundle_tar "$T/v2" "$T/plain.tgz"
cp "$T/plain.tgz" "$T/air\\gap.tgz"
echo other >"$T/other.tgz"
(cd "$T" && sha256sum other.tgz 'air\gap.tgz' >sums)
grep -q '^\\' "$T/sums" || bail "sha256sum did not escape the name"
imp --store "$T/s15" --dry-run --sha256-file "$T/sums" "$T/air\\gap.tgz" >/dev/null 2>"$T/err"
ok $? "an escaped sha256sum line is read right (the one naming the source)" || cat "$T/err"
run_fail imp --store "$T/s15" --dry-run --sha256-file "$T/sums" "$T/plain.tgz"
is "$rc" 2 "several lines, none naming the source: usage error"
run_fail imp --store "$T/s15" --dry-run --sha256-file "$T/no-such.sha256" "$T/plain.tgz"
is "$rc" 2 "a --sha256-file that does not exist: usage error"
grep -q "sha256-file $T/no-such.sha256 does not exist" "$T/err"
ok $? "  saying that it does not exist" || cat "$T/err"
: >"$T/empty.sha256"
run_fail imp --store "$T/s15" --dry-run --sha256-file "$T/empty.sha256" "$T/plain.tgz"
grep -q "sha256-file $T/empty.sha256 holds no SHA-256 line" "$T/err"
ok $? "an empty one holds no SHA-256 line" || cat "$T/err"

# --- 16. output places are checked before verifying ---
S=$T/s16
imp --store "$S" "$T/v1" >/dev/null 2>&1 || bail "the first import failed"
before=$(snap "$S")
nrec=$(wc -l <"$S/audit.log")
run_fail imp --store "$S" --artifacts-dir "$T/missing/arts" "$T/v2"
is "$rc" 2 "a missing --artifacts-dir (and parent): usage error (2)"
grep -q "$T/missing/arts: neither it nor its parent directory exists" "$T/err"
ok $? "naming it" || cat "$T/err"
run_fail imp --store "$S" --transfer-log "$T/missing/transfer.log" "$T/v2"
is "$rc" 2 "a --transfer-log in a missing directory: usage error (2)"
is "$(wc -l <"$S/audit.log")" "$nrec" "neither is recorded as BUNDLE_REJECTED against the bundle"
run_fail imp --store "$S" --transfer-log /dev/full "$T/v2"
is "$rc" 4 "a transfer record that cannot be written fails the import (4)"
grep -q "the transfer record cannot be written" "$T/err"
ok $? "saying so" || cat "$T/err"
is "$(snap "$S")" "$before" "and the store has no new generation"
imp --store "$S" --transfer-log "$T/transfer.log" "$T/v2" >/dev/null 2>"$T/err"
ok $? "with a writable transfer log the import works" || cat "$T/err"
grep -q "BUNDLE_INGEST .* bundle_20260424 sha256=" "$T/transfer.log"
ok $? "and the record is there"
done_testing
