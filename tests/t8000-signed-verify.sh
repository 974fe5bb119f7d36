#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Signed generations (issue 12): agimport --sign-key signs the new
# generation's catalog inside its commit; agstore sign signs an existing one;
# gpg itself verifies the catalog and signature the store keeps; agstore
# verify replays the chain from the store alone (exit 0) and names the first
# break of each forgery: an unsigned generation, a re-signature by an
# untrusted key, a signer not allowed, a catalog edited by one byte, an older
# catalog replayed in place of a newer one, an object byte flipped, a forged
# consistent record+tree, a bundle.json whose signature fails.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
need_cmd gpg tar gzip sha256sum openssl jq
[ -x "$AGIMPORT" ] && [ -x "$AGSTORE" ] || skip_all "agimport/agstore not built"
[ -x "$HELPERS/store-forge" ] && [ -x "$HELPERS/store-replay" ] || skip_all "test helpers not built"

make_gpg_key
ALICE=$KEY_FPR
gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
	--quick-gen-key "Mallory <mallory@example.invalid>" ed25519 sign 0 2>/dev/null || bail "gpg: no second key"
MALLORY=$(gpg --batch --with-colons --list-keys Mallory 2>/dev/null | awk -F: '/^fpr/ {print $10; exit}')
gpg --batch --armor --export "$ALICE" "$MALLORY" >"$T/both.asc"
trap 'gpgconf --kill gpg-agent 2>/dev/null; _cleanup' EXIT

TREE=$T/tree
make_random_ollama_tree "$TREE" 200000
make_bundle "$TREE" "$T/b1" 20260501
S=$T/store

# A key that cannot sign is refused before anything is read; the store stays as it was.
run_fail "$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" --sign-key 0123456789ABCDEF0123456789ABCDEF01234567 \
	"$T/b1/airgap-bundle-20260501.tar.gz"
is "$rc" 2 "agimport --sign-key with a missing key: exit 2"
grep -q "has no secret key" "$T/err"
ok $? "and says the key has no secret key: $(head -1 "$T/err")"
[ ! -e "$S/index" ] || [ "$("$AGSTORE" --store "$S" versions 2>/dev/null | grep -c .)" -le 1 ]
ok $? "no generation was made"

"$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" --sign-key "$ALICE" \
	"$T/b1/airgap-bundle-20260501.tar.gz" >"$T/out.log" 2>"$T/err"
ok $? "agimport --sign-key imports generation 1" || cat "$T/err"
grep '"BUNDLE_INGEST"' "$S/audit.log" | tail -1 | jq -e --arg k "$ALICE" '.catalog_signer == $k and (.catalog | length) == 64' >/dev/null
ok $? "its BUNDLE_INGEST record names the catalog and its signer"

"$AGSTORE" --store "$S" verify --keyring "$T/pubkey.asc" >"$T/v.out" 2>"$T/err"
ok $? "agstore verify: the chain of the current generation holds (exit 0)" || cat "$T/v.out" "$T/err"
grep -q "generation 1: the chain holds.*bundle: signed by $ALICE" "$T/v.out"
ok $? "including the bundle's own signature and models_directory_hash" || cat "$T/v.out"

# gpg itself, on the exact bytes the store keeps.
"$AGSTORE" --store "$S" --json verify --keyring "$T/pubkey.asc" 1 >"$T/v.json"
CAT=$(jq -r '.generations[0].catalog' "$T/v.json")
SIG=$(jq -r '.generations[0].signature' "$T/v.json")
"$AGSTORE" --store "$S" cat "$CAT" >"$T/catalog.json" && "$AGSTORE" --store "$S" cat "$SIG" >"$T/catalog.json.asc"
ok $? "the catalog and its signature are blobs of the store"
gpg --batch --verify "$T/catalog.json.asc" "$T/catalog.json" 2>"$T/gpg.err"
ok $? "gpg --verify catalog.json.asc catalog.json" || cat "$T/gpg.err"
jq -e '.generation == 1 and .serial >= 1 and (.bundle.files["manifest/bundle.json"] | length) == 64' "$T/catalog.json" >/dev/null
ok $? "the catalog names generation 1, its serial and the kept bundle.json"

# A second bundle imported unsigned: verify names the missing signature.
cp -r "$TREE" "$T/tree2"
make_model "$T/tree2" registry.ollama.ai/library/later/7b 30000 later
make_bundle "$T/tree2" "$T/b2" 20260502
"$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" "$T/b2/airgap-bundle-20260502.tar.gz" >/dev/null 2>"$T/err"
ok $? "a second bundle is imported without --sign-key" || cat "$T/err"
run_fail "$AGSTORE" --store "$S" verify --keyring "$T/pubkey.asc" 2
is "$rc" 1 "verify of the unsigned generation 2: exit 1"
grep -q "generation 2: BROKEN at signature: .*not signed" "$T/out"
ok $? "names the break: $(head -1 "$T/out")"

"$AGSTORE" --store "$S" sign 2 --sign-key "$ALICE" >"$T/out" 2>"$T/err"
ok $? "agstore sign 2 --sign-key signs it" || cat "$T/err"
grep -q "generation 2: catalog sha256:.* signed by $ALICE" "$T/out"
ok $? "and says so: $(cat "$T/out")"
grep '"CATALOG_SIGNED"' "$S/audit.log" | tail -1 | jq -e '.generation == 2' >/dev/null
ok $? "with a CATALOG_SIGNED audit record"
"$AGSTORE" --store "$S" verify --keyring "$T/pubkey.asc" --all >"$T/out" 2>"$T/err"
ok $? "verify --all: both chains hold" || cat "$T/out" "$T/err"
"$AGSTORE" --store "$S" audit verify >/dev/null 2>&1
ok $? "the audit chain holds"
run_fail "$AGSTORE" --store "$S" sign 2 --sign-key 0123456789ABCDEF0123456789ABCDEF01234567
is "$rc" 2 "agstore sign with a missing key: exit 2"

# Signing that fails inside the import's transaction (the key needs a
# passphrase nobody can enter): nothing is published, not even unsigned.
G2=$T/g2
mkdir -p "$G2" && chmod 700 "$G2"
gpg --homedir "$G2" --batch --quiet --pinentry-mode loopback --passphrase secret \
	--quick-gen-key "Locked <locked@example.invalid>" ed25519 sign 0 2>/dev/null || bail "gpg: no locked key"
LOCKED=$(gpg --homedir "$G2" --batch --with-colons --list-keys Locked 2>/dev/null | awk -F: '/^fpr/ {print $10; exit}')
gpgconf --homedir "$G2" --kill gpg-agent 2>/dev/null
echo "pinentry-program /bin/false" >"$G2/gpg-agent.conf"
files() { (cd "$S" && find objects index -type f ! -name lock.mdb -print0 | sort -z | xargs -0r sha256sum); }
before=$(files)
run_fail timeout 60 "$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" --sign-key "$LOCKED" --sign-homedir "$G2" \
	"$T/b2/airgap-bundle-20260502.tar.gz"
is "$rc" 4 "a catalog that cannot be signed fails the import (exit 4)"
grep -q "the catalog cannot be signed" "$T/err"
ok $? "saying so: $(head -1 "$T/err")"
is "$(files)" "$before" "and nothing was published: no generation, no object, no half-signed catalog"
gpgconf --homedir "$G2" --kill gpg-agent 2>/dev/null

# Forgeries, each on a copy of the good store.
forgery() { rm -rf "$T/f"; cp -a "$S" "$T/f"; }
expect_break() { # expect_break GEN LINK PATTERN DESCRIPTION [verify args]
	local gen=$1 link=$2 pat=$3 desc=$4
	shift 4
	run_fail "$AGSTORE" --store "$T/f" verify --keyring "$T/pubkey.asc" "$@" "$gen"
	is "$rc" 1 "$desc: verify exits 1"
	grep -q "generation $gen: BROKEN at $link: .*$pat" "$T/out"
	ok $? "$desc: names the break: $(head -1 "$T/out")"
}

forgery
"$AGSTORE" --store "$T/f" sign 2 --sign-key "$MALLORY" >/dev/null 2>&1
expect_break 2 signature "not in the trusted keyring" "re-signed by an untrusted key"
run_fail "$AGSTORE" --store "$T/f" verify --keyring "$T/both.asc" --signer "$ALICE" 2
grep -q "BROKEN at signature: .*not an allowed signer" "$T/out"
ok $? "a trusted key that is not an allowed --signer: $(head -1 "$T/out")"
"$AGSTORE" --store "$T/f" verify --keyring "$T/both.asc" 2 >/dev/null 2>&1
ok $? "the same with Mallory trusted and no --signer pin: holds (the keyring decides)"

forgery
chmod u+w "$T/f/objects/sha256/${CAT:0:2}/$CAT"
printf '9' | dd of="$T/f/objects/sha256/${CAT:0:2}/$CAT" bs=1 seek=$(($(stat -c %s "$T/catalog.json") - 3)) conv=notrunc 2>/dev/null
expect_break 1 catalog "does not hash to its name" "a catalog edited by one byte"

forgery
"$HELPERS/store-replay" "$T/f" 1 2 || bail "store-replay failed"
expect_break 2 catalog "not above generation 1's serial .*an older catalog replayed" "an older catalog replayed in place of a newer one"

# A layer of the tiny model: the first layer of its manifest.
LAYER=$(jq -r '.layers[0].digest' "$TREE/manifests/registry.ollama.ai/library/tiny/latest" | cut -d: -f2)
forgery
OBJ=$T/f/objects/sha256/${LAYER:0:2}/$LAYER
chmod u+w "$OBJ"
printf '\001' | dd of="$OBJ" bs=1 seek=4097 conv=notrunc 2>/dev/null
expect_break 1 bytes "sha256:$LAYER: its bytes hash to" "an object byte flipped"

forgery
"$HELPERS/store-forge" forge "$T/f" "$LAYER" 5000 >/dev/null || bail "store-forge failed"
expect_break 1 index "sha256:$LAYER does not match the signed catalog" "a forged consistent record and tree"

# bundle.json kept in the store, its signature no longer matching.
BJ=$(jq -r '.bundle.files["manifest/bundle.json"]' "$T/catalog.json")
forgery
chmod u+w "$T/f/objects/sha256/${BJ:0:2}/$BJ"
sed -i 's/"creator": "alice"/"creator": "eve"/' "$T/f/objects/sha256/${BJ:0:2}/$BJ"
expect_break 1 bytes "sha256:$BJ is" "a kept bundle.json changed"

# A bundle whose own signature is by a key the verifier does not trust,
# imported with --no-signature and signed on the high side: the catalog's
# chain holds, the bundle's does not, and verify names that.
cp -r "$T/tree2" "$T/tree3"
make_model "$T/tree3" registry.ollama.ai/library/third/1b 20000 third
SIGN_KEY=$MALLORY make_bundle "$T/tree3" "$T/b3" 20260503
"$AGIMPORT" --store "$S" --no-signature --sign-key "$ALICE" "$T/b3/airgap-bundle-20260503.tar.gz" >/dev/null 2>"$T/err"
ok $? "a bundle signed by Mallory is imported with --no-signature --sign-key" || cat "$T/err"
rm -rf "$T/f"
cp -a "$S" "$T/f"
expect_break 3 bundle "bundle.json's signature: .*not in the trusted keyring" "a bundle signed by an untrusted low-side key"
"$AGSTORE" --store "$S" verify --keyring "$T/pubkey.asc" --bundle-keyring "$T/both.asc" 3 >"$T/out" 2>&1
ok $? "with --bundle-keyring trusting that key the chain holds" || cat "$T/out"

# Usage.
run_fail "$AGSTORE" --store "$S" verify
is "$rc" 2 "verify without --keyring: exit 2"
run_fail "$AGSTORE" --store "$S" verify --keyring "$T/pubkey.asc" --all 1
is "$rc" 2 "verify GEN --all: exit 2"

done_testing
