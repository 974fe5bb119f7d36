#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# agbundle create against the README's hand-typed low-side procedure (cp of
# the inputs, sha256sum of each list, the models_directory_hash pipeline, gpg
# --armor --detach-sign, tar czf, sha256sum of the tarball) on the same
# inputs: an Ollama tree with one model of BENCH_BUNDLE_MIB (default 1024)
# MiB of random bytes, a binary and an image.  Then the size of a delta
# bundle (--since the first) after one new small model, against a full
# bundle of the same tree.  Warm page cache, one run each, same machine,
# same file system; both write into the same directory.
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
AGFS_BUILD=${AGFS_BUILD:-$src/build}
. "$src/tests/lib.sh" >/dev/null
. "$src/tests/lib-bundle.sh"
MIB=${BENCH_BUNDLE_MIB:-1024}
AGBUNDLE=$AGFS_BUILD/agbundle

[ -x "$AGBUNDLE" ] || { echo "skip: agbundle not built (make all)"; exit 0; }
make_gpg_key
M=$T/in/models
mkdir -p "$M"
make_model "$M" registry.ollama.ai/library/big/latest $((MIB * 1048576)) big
make_model "$M" registry.ollama.ai/library/small/1b 1048576 small
printf '#!/bin/sh\necho ollama\n' >"$T/in/ollama-linux-amd64"
head -c 4194304 /dev/urandom >"$T/in/open-webui.tar"
cat -- "$M"/blobs/* >/dev/null # warm cache for both

secs() { # secs CMD...: wall seconds of CMD (its output discarded)
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null 2>&1 || echo "# failed: $*" >&2
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l
}

manual() { # manual OUTDIR TAR-FLAG EXT: the README's procedure, as typed
	local out=$1 z=$2 ext=$3 label=20261201
	rm -rf "$out" && mkdir -p "$out/B" && cd "$out/B" || return 1
	mkdir -p binaries images models packages signatures manifest
	cp "$T/in/ollama-linux-amd64" binaries/
	sha256sum binaries/ollama-linux-amd64 >signatures/ollama.sha256
	cp "$T/in/open-webui.tar" images/
	sha256sum images/open-webui.tar >signatures/open-webui.sha256
	cp -r "$M" models/
	sha256sum -b $(find models -type f) >signatures/models.sha256
	MODELS_HASH=$(find models -type f -exec sha256sum {} \; | sort | sha256sum | cut -d' ' -f1)
	cat >manifest/bundle.json <<EOF
{ "bundle_version": "$label", "creator": "alice", "creation_date": "$(date -u +%FT%TZ)",
  "low_side_host": "$(hostname)",
  "artifacts": { "ollama_binary": "$(sha256sum binaries/ollama-linux-amd64 | cut -d' ' -f1)",
                 "open_webui_image": "$(sha256sum images/open-webui.tar | cut -d' ' -f1)",
                 "models_directory_hash": "$MODELS_HASH" } }
EOF
	_sign manifest/bundle.json
	tar $z -cf ../airgap-bundle-$label.tar.$ext binaries/ images/ models/ packages/ signatures/ manifest/
	cd .. && sha256sum airgap-bundle-*.tar.$ext >airgap-bundle-final.sha256 && sync -f .
}

tool() { # tool OUTDIR [options]
	local out=$1
	shift
	rm -rf "$out" && mkdir -p "$out"
	"$AGBUNDLE" create --models "$M" --binary "$T/in/ollama-linux-amd64" \
		--image "$T/in/open-webui.tar" --sign-key "$KEY_FPR" --label 20261201 -o "$out" "$@"
}

row() { # row NAME TAR-FLAG EXT [agbundle options]
	local name=$1 z=$2 ext=$3 tman ttool
	shift 3
	tman=$(secs manual "$T/m" "$z" "$ext")
	rm -rf "$T/m"
	ttool=$(secs tool "$T/a" "$@")
	printf '| %s | %.2f | %.2f | %.2f |\n' "$name" "$tman" "$ttool" "$(echo "$ttool / $tman" | bc -l)"
}

echo "Low side: one ${MIB} MiB model (random bytes) + a 1 MiB model, a binary and a 4 MiB image;"
echo "warm cache; seconds, one run each; agbundle compresses on $(nproc) threads."
echo
echo "| bundle | manual procedure | agbundle create | agbundle / manual (goal ≤ 0.5) |"
echo "|---|---|---|---|"
row ".tar.gz (tar czf)" -z gz
if command -v zstd >/dev/null; then
	row ".tar.zst (tar --zstd)" --zstd zst --zstd
fi

# --- delta after one new small model ---
tool "$T/base" >/dev/null 2>&1
tar -xzf "$T/base/airgap-bundle-20261201.tar.gz" -O manifest/bundle.json >"$T/base.json"
make_model "$M" registry.ollama.ai/library/fresh/1b 2097152 fresh
rm -rf "$T/full" "$T/delta" && mkdir -p "$T/full" "$T/delta"
"$AGBUNDLE" create --models "$M" --sign-key "$KEY_FPR" --label 20261215 -o "$T/full" >/dev/null 2>&1
tdelta=$(secs "$AGBUNDLE" create --models "$M" --sign-key "$KEY_FPR" --label 20261215 -o "$T/delta" \
	--since "$T/base.json")
full=$(stat -c %s "$T/full/airgap-bundle-20261215.tar.gz")
delta=$(stat -c %s "$T/delta/airgap-bundle-20261215.tar.gz")
echo
echo "Delta bundle after one new 2 MiB model (--since the bundle above), models only:"
echo
echo "| full bundle | delta bundle | delta / full | delta build time |"
echo "|---|---|---|---|"
printf '| %s bytes | %s bytes | %.4f | %.2f s |\n' "$full" "$delta" "$(echo "$delta / $full" | bc -l)" "$tdelta"
