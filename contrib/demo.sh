#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# contrib/demo.sh: `make demo` / `make demo-clean` (run as root from the source
# tree; the Makefile sets AGFS_BUILD to the build directory).
#
#   contrib/demo.sh          installs missing Debian packages, makes a
#                            throw-away signing key, builds a signed air-gap
#                            bundle (../shared/bundle-format.md) around a small
#                            generated GGUF model, imports it into ./demo/store,
#                            mounts it at ./demo/models and shows the result;
#                            then a flipped byte refused (in a scratch copy),
#                            a second bundle and a live rollback
#   contrib/demo.sh clean    unmounts and removes ./demo
#
# Idempotent: a second run starts from a clean ./demo.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
AGFS_BUILD=${AGFS_BUILD:-$SRC/build}
HELPERS=$AGFS_BUILD/tests/helpers # lib-fixtures.sh finds mkgguf there
export HELPERS
DEMO=${AGFS_DEMO_DIR:-$SRC/demo}
STORE=$DEMO/store
MNT=$DEMO/models
MODEL=tiny:latest

say() {
	if [ -t 1 ]; then printf '\n\033[1m==> %s\033[0m\n' "$*"; else printf '\n==> %s\n' "$*"; fi
}
die() {
	echo "demo: $*" >&2
	exit 1
}
bail() { die "$@"; } # lib-fixtures.sh reports through bail

clean() {
	local m
	for m in "$DEMO/tampered" "$MNT"; do
		if mountpoint -q "$m" 2>/dev/null; then
			fusermount3 -u "$m" 2>/dev/null || umount -l "$m" ||
				die "cannot unmount $m (is something still using it?)"
		fi
	done
	if [ -d "$DEMO/gnupg" ]; then
		gpgconf --homedir "$DEMO/gnupg" --kill all 2>/dev/null || true
	fi
	rm -rf "$DEMO"
}

if [ "${1:-}" = clean ]; then
	clean
	echo "demo: removed $DEMO; nothing is mounted" >&2
	exit 0
fi
[ $# -eq 0 ] || die "usage: contrib/demo.sh [clean]"
[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and mounts FUSE): sudo make demo"

if [ -z "${AGFS_NO_DEPS:-}" ]; then
	say "Debian packages"
	"$SRC/contrib/install-deps.sh"
fi
for p in agimport agfs agstore tests/helpers/mkgguf; do
	[ -x "$AGFS_BUILD/$p" ] || die "$AGFS_BUILD/$p is missing: run make demo (it builds first)"
done
[ -c /dev/fuse ] || die "no /dev/fuse: load the fuse module (modprobe fuse)"

clean
mkdir -p "$DEMO"

say "A throw-away signing key in $DEMO/gnupg"
export GNUPGHOME=$DEMO/gnupg
mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
	--quick-gen-key "agfs demo signer <demo@example.invalid>" ed25519 sign 0 2>/dev/null
KEY_FPR=$(gpg --batch --with-colons --list-keys 2>/dev/null | awk -F: '/^fpr/ {print $10; exit}')
gpg --batch --armor --export "$KEY_FPR" >"$DEMO/signer.asc" 2>/dev/null
echo "signer $KEY_FPR (public key: $DEMO/signer.asc)"

say "An Ollama tree around a generated GGUF model ($MODEL)"
. "$SRC/tests/lib-bundle.sh"
. "$SRC/tests/lib-fixtures.sh" # make_ollama_tree: an Ollama tree around a generated GGUF model
make_ollama_tree "$DEMO/low-side/models" --model "$MODEL"

say "A signed air-gap bundle, as the low side builds it"
LABEL=$(date -u +%Y%m%d)
make_bundle "$DEMO/low-side/models" "$DEMO/media" "$LABEL"
gpgconf --homedir "$GNUPGHOME" --kill all 2>/dev/null || true # signing is done
BUNDLE=$DEMO/media/airgap-bundle-$LABEL.tar.gz
ls -l "$DEMO/media" | sed 1d

say "Import into $STORE (signature, hashes, then one new generation)"
"$AGFS_BUILD/agimport" --store "$STORE" --keyring "$DEMO/signer.asc" \
	--sha256-file "$DEMO/media/airgap-bundle-final.sha256" "$BUNDLE"

say "Mount at $MNT"
mkdir -p "$MNT"
"$AGFS_BUILD/agfs" "$STORE" "$MNT"

say "The tree Ollama sees (OLLAMA_MODELS=$MNT)"
if command -v tree >/dev/null; then
	(cd "$DEMO" && tree --noreport models)
else
	(cd "$DEMO" && find models | sort | sed 's|[^/]*/|  |g')
fi

say "agstore versions"
"$AGFS_BUILD/agstore" --store "$STORE" versions
echo
cat "$MNT/versions/current/INFO"

say "Proof"
blob=$(fixture_model_blob "$MNT" "$MODEL")
got=$(sha256sum "$MNT/blobs/$blob" | cut -d' ' -f1)
[ "sha256-$got" = "$blob" ] || die "the model read through the mount hashes to $got, not its name $blob"
echo "proof: sha256 of $(basename "$MNT")/blobs/$blob read through the mount = $got = its name"

say "A flipped byte is refused (in a scratch copy of the store at $DEMO/tampered-store)"
# The copy is the demo's own: the real store is never touched.
cp -a "$STORE" "$DEMO/tampered-store"
hex=${blob#sha256-}
obj=$DEMO/tampered-store/objects/sha256/${hex:0:2}/$hex
chmod u+w "$obj"
printf '\xff' | dd of="$obj" bs=1 seek=4096 conv=notrunc status=none
echo "flipped the byte at offset 4096 of objects/sha256/${hex:0:2}/$hex"
mkdir -p "$DEMO/tampered"
"$AGFS_BUILD/agfs" "$DEMO/tampered-store" "$DEMO/tampered"
if err=$(cat "$DEMO/tampered/blobs/$blob" 2>&1 >/dev/null); then
	fusermount3 -u "$DEMO/tampered"
	die "the tampered model was served without an error"
fi
echo "refused: cat tampered/blobs/$blob: ${err##*: }"
fusermount3 -u "$DEMO/tampered"
"$AGFS_BUILD/agstore" --store "$DEMO/tampered-store" audit | grep VERIFY_FAILURE | tail -n 1

say "A second bundle (a newer label, one more model): generation 2, live"
LABEL2=$(date -u -d tomorrow +%Y%m%d)
make_ollama_tree "$DEMO/low-side/models2" --model tiny:v2 --seed 7
make_bundle "$DEMO/low-side/models2" "$DEMO/media2" "$LABEL2"
gpgconf --homedir "$GNUPGHOME" --kill all 2>/dev/null || true
"$AGFS_BUILD/agimport" --store "$STORE" --keyring "$DEMO/signer.asc" \
	--sha256-file "$DEMO/media2/airgap-bundle-final.sha256" "$DEMO/media2/airgap-bundle-$LABEL2.tar.gz"
wait_current() { # the mount follows the store within a second or two
	local i
	for i in $(seq 50); do
		[ "$(readlink "$MNT/versions/current")" = "$1" ] && return 0
		sleep 0.1
	done
	die "the mount did not switch to generation $1"
}
wait_current 2
echo "ls $(basename "$MNT")/versions/: $(ls "$MNT/versions" | tr '\n' ' ')"
echo "current -> $(readlink "$MNT/versions/current"); models now:"
(cd "$MNT/manifests" && find . -type f | sed 's|^\./|  |' | sort)

say "Live rollback (agstore rollback; the mount follows without a remount)"
"$AGFS_BUILD/agstore" --store "$STORE" rollback
wait_current 1
echo "current -> $(readlink "$MNT/versions/current"); models now:"
(cd "$MNT/manifests" && find . -type f | sed 's|^\./|  |' | sort)
"$AGFS_BUILD/agstore" --store "$STORE" versions
echo
echo "$MNT stays mounted; make demo-clean unmounts it and removes $DEMO"
