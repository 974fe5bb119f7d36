#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The mount with -o keyring= (issue 12): a record and tree forged
# consistently in LMDB give EIO and VERIFY_FAILURE with keyring=, while
# without keyring= the mount serves the forged bytes (documented: it trusts
# the index, and says so at start); versions/N/catalog.json(.asc) and
# versions/N/bundle/ verify with plain gpg; a generation whose catalog is
# unsigned or signed by an untrusted key is not shown (CATALOG_REJECTED,
# LOG_CRIT) and the mount keeps serving the last good one, until a trusted
# signature comes.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
. "$TESTS_DIR/lib-fs.sh"
need_cmd gpg tar gzip sha256sum openssl jq
[ -x "$AGIMPORT" ] && [ -x "$AGSTORE" ] && [ -x "$AGFS" ] || skip_all "programs not built"
[ -x "$HELPERS/store-forge" ] || skip_all "store-forge not built"
need_root_fuse

make_gpg_key
ALICE=$KEY_FPR
gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
	--quick-gen-key "Mallory <mallory@example.invalid>" ed25519 sign 0 2>/dev/null || bail "gpg: no second key"
MALLORY=$(gpg --batch --with-colons --list-keys Mallory 2>/dev/null | awk -F: '/^fpr/ {print $10; exit}')

TREE=$T/tree
make_random_ollama_tree "$TREE" 200000
make_bundle "$TREE" "$T/b1" 20260501
S=$T/store
"$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" --sign-key "$ALICE" \
	"$T/b1/airgap-bundle-20260501.tar.gz" >/dev/null 2>"$T/err" || bail "import: $(cat "$T/err")"

# A consistent forgery of the tiny model's weights: object, record and tree agree.
TINY=registry.ollama.ai/library/tiny/latest
LAYER=$(jq -r '.layers[0].digest' "$TREE/manifests/$TINY" | cut -d: -f2)
CONFIG=$(jq -r '.config.digest' "$TREE/manifests/$TINY" | cut -d: -f2)
"$HELPERS/store-forge" forge "$S" "$LAYER" 5000 >/dev/null || bail "store-forge failed"

start() { # start MNT LOG [agfs options]
	local mnt=$1 log=$2
	shift 2
	mkdir -p "$mnt"
	_mounts+=("$mnt")
	"$AGFS" -f "$@" "$S" "$mnt" 2>"$log" &
	fs_wait_for 10 test -d "$mnt/manifests" || bail "agfs did not mount: $(head -3 "$log")"
}
trap 'kill $P1 $P2 2>/dev/null; wait; gpgconf --kill gpg-agent 2>/dev/null; _cleanup' EXIT
start "$T/m1" "$T/m1.log" -o keyring="$T/pubkey.asc",signer="$ALICE"
P1=$!
start "$T/m2" "$T/m2.log"
P2=$!

grep -q "no keyring= given" "$T/m2.log"
ok $? "without keyring= the mount says at start that it trusts the index"
! grep -q "no keyring= given" "$T/m1.log"
ok $? "with keyring= it does not"

# The signed catalog and the bundle's own files, checked by plain gpg.
V=$T/m1/versions/1
gpg --batch --verify "$V/catalog.json.asc" "$V/catalog.json" 2>"$T/gpg.err"
ok $? "gpg --verify versions/1/catalog.json.asc versions/1/catalog.json" || cat "$T/gpg.err"
gpg --batch --verify "$V/bundle/manifest/bundle.json.asc" "$V/bundle/manifest/bundle.json" 2>"$T/gpg.err"
ok $? "gpg --verify of the original bundle.json under versions/1/bundle/" || cat "$T/gpg.err"
ls "$V/bundle/signatures/" 2>/dev/null | grep -q 'models.sha256'
ok $? "the bundle's .sha256 lists are there too"

# The forged blob: EIO with keyring=, the forged bytes without.
cat "$T/m1/blobs/sha256-$LAYER" >/dev/null 2>"$T/cat.err"
st=$?
[ $st -ne 0 ] && grep -q "Input/output error" "$T/cat.err"
ok $? "with keyring= the forged blob answers EIO ($(head -1 "$T/cat.err"))"
fs_wait_for 3 grep -q "\"VERIFY_FAILURE\".*$LAYER" "$S/audit.log"
ok $? "and a VERIFY_FAILURE record names it"
cmp -s "$T/m1/blobs/sha256-$CONFIG" "$TREE/blobs/sha256-$CONFIG"
ok $? "an untouched blob reads as it was signed"
cat "$T/m2/blobs/sha256-$LAYER" >"$T/forged" 2>"$T/cat.err"
ok $? "without keyring= the forged blob is served (the index is trusted, as documented)"
! cmp -s "$T/forged" "$TREE/blobs/sha256-$LAYER"
ok $? "and its bytes are the forged ones"

# An unsigned generation: not shown with keyring=, the last good one stays.
cp -r "$TREE" "$T/tree2"
make_model "$T/tree2" registry.ollama.ai/library/later/7b 30000 later
make_bundle "$T/tree2" "$T/b2" 20260502
"$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" "$T/b2/airgap-bundle-20260502.tar.gz" >/dev/null 2>"$T/err"
ok $? "an unsigned generation 2 is imported and made current" || cat "$T/err"
LATER=manifests/registry.ollama.ai/library/later/7b
fs_wait_for 5 test -f "$T/m2/$LATER"
ok $? "the mount without keyring= serves generation 2"
fs_wait_for 5 grep -q '"CATALOG_REJECTED".*"generation":2' "$S/audit.log"
ok $? "with keyring= a CATALOG_REJECTED record names generation 2"
grep '"CATALOG_REJECTED"' "$S/audit.log" | tail -1 | grep -q "not signed"
ok $? "saying its catalog is not signed"
grep -q "generation 2 is not shown" "$T/m1.log"
ok $? "and the mount logs it"
[ ! -e "$T/m1/$LATER" ] && [ ! -e "$T/m1/versions/2" ] && [ -f "$T/m1/manifests/$TINY" ]
ok $? "generation 2 is not shown; generation 1 is still served"

# Signed by Mallory: still not shown.
"$AGSTORE" --store "$S" sign 2 --sign-key "$MALLORY" >/dev/null 2>&1 || bail "agstore sign failed"
fs_wait_for 5 sh -c "grep '\"CATALOG_REJECTED\"' '$S/audit.log' | tail -1 | grep -q 'not in the trusted keyring'"
ok $? "re-signed by an untrusted key: rejected again, naming the key"
sleep 1.5
[ ! -e "$T/m1/$LATER" ]
ok $? "and still not shown"

# Signed by the trusted key: shown at the next look.
"$AGSTORE" --store "$S" sign 2 --sign-key "$ALICE" >/dev/null 2>&1 || bail "agstore sign failed"
fs_wait_for 6 test -f "$T/m1/$LATER"
ok $? "signed by the trusted key, generation 2 is served"
test -f "$T/m1/versions/2/catalog.json.asc"
ok $? "with its catalog signature under versions/2"

# Pinned to a generation whose catalog does not verify: refused at mount.
mkdir -p "$T/m5"
"$AGFS" -f -o keyring="$T/pubkey.asc",generation=1,signer="$MALLORY" "$S" "$T/m5" >"$T/m5.log" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -q "generation 1's catalog does not verify against keyring=" "$T/m5.log"
ok $? "generation= pinned to a generation whose catalog fails is refused ($rc: $(tail -1 "$T/m5.log"))"

# A keyring without keys is refused at mount.
echo "no keys" >"$T/junk.asc"
mkdir -p "$T/m3"
"$AGFS" -f -o keyring="$T/junk.asc" "$S" "$T/m3" >"$T/m3.log" 2>&1
rc=$?
[ $rc -ne 0 ] && grep -q "keyring=.*no usable public key" "$T/m3.log"
ok $? "a keyring without keys is refused at mount ($rc: $(head -1 "$T/m3.log"))"

kill -TERM $P1 $P2
wait $P1
ok $? "agfs -o keyring= stops cleanly"

# Fresh mounts of copies: generation 2's record replays generation 1's
# catalog; generation 1's catalog edited by one byte.
CAT=$(sha256sum "$T/m2/versions/1/catalog.json" 2>/dev/null | cut -d' ' -f1)
[ -n "$CAT" ] || CAT=$("$AGSTORE" --store "$S" --json verify --keyring "$T/pubkey.asc" 1 | jq -r '.generations[0].catalog')
mount_copy() { # mount_copy DIR: agfs -f -o keyring= on DIR at DIR.mnt; sets PC
	mkdir -p "$1.mnt"
	_mounts+=("$1.mnt")
	"$AGFS" -f -o keyring="$T/pubkey.asc" "$1" "$1.mnt" 2>"$1.log" &
	PC=$!
	fs_wait_for 10 test -d "$1.mnt/versions" || bail "agfs did not mount: $(head -3 "$1.log")"
}
cp -a "$S" "$T/f1"
"$HELPERS/store-replay" "$T/f1" 1 2 || bail "store-replay failed"
mount_copy "$T/f1"
[ ! -e "$T/f1.mnt/versions/2" ] && [ -f "$T/f1.mnt/versions/1/catalog.json" ]
ok $? "an older catalog replayed as generation 2: not shown, generation 1 is"
grep '"CATALOG_REJECTED"' "$T/f1/audit.log" | grep '"generation":2' | grep -q "replayed"
ok $? "CATALOG_REJECTED names the replay"
kill -TERM $PC
wait $PC

cp -a "$S" "$T/f2"
O=$T/f2/objects/sha256/${CAT:0:2}/$CAT
chmod u+w "$O"
printf '9' | dd of="$O" bs=1 seek=40 conv=notrunc 2>/dev/null
mount_copy "$T/f2"
[ ! -e "$T/f2.mnt/versions/1" ] && [ -f "$T/f2.mnt/$LATER" ]
ok $? "a catalog edited by one byte: generation 1 is not shown, generation 2 is served"
grep '"CATALOG_REJECTED"' "$T/f2/audit.log" | grep '"generation":1' | grep -q "damaged"
ok $? "CATALOG_REJECTED says its catalog blob is damaged"
kill -TERM $PC
wait $PC
done_testing
