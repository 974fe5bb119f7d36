# SPDX-License-Identifier: Apache-2.0
# Building Ollama trees and air-gap bundles for tests, benchmarks and the demo,
# with exactly the commands of ../shared/bundle-format.md (GNU coreutils, tar,
# gpg).  Source after tests/lib.sh (it needs make_gpg_key and $T), or define
# GNUPGHOME/KEY_FPR yourself.
#
#   make_random_ollama_tree DIR [WEIGHT_BYTES]   a small Ollama models tree, two models
#   make_bundle_dir TREE BDIR [LABEL]     the bundle's directory, signed
#   bundle_tar BDIR OUT [z|J|--zstd|'']   tar it as bundle-format.md does
#   make_bundle TREE OUTDIR [LABEL]       OUTDIR/airgap-bundle-LABEL.tar.gz and
#                                         OUTDIR/airgap-bundle-final.sha256
#   resign_bundle BDIR                    recompute hashes/lists and re-sign

# blob_add TREE FILE MEDIATYPE: moves FILE into TREE/blobs, prints the layer JSON.
blob_add() {
	local tree=$1 f=$2 mt=$3 hex size
	hex=$(sha256sum "$f" | cut -d' ' -f1)
	size=$(stat -c %s "$f")
	mkdir -p "$tree/blobs"
	mv "$f" "$tree/blobs/sha256-$hex"
	printf '{"mediaType":"%s","digest":"sha256:%s","size":%s}' "$mt" "$hex" "$size"
}

# make_model TREE NAME(host/ns/model/tag) WEIGHT_BYTES [SEED]
make_model() {
	local tree=$1 name=$2 bytes=$3 seed=${4:-$2} tmp cfg w tpl par
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/agfs-model.XXXXXX")
	head -c "$bytes" </dev/zero | openssl enc -aes-128-ctr -nosalt -pass "pass:$seed" \
		2>/dev/null >"$tmp/w"
	printf '{{ .Prompt }} %s\n' "$seed" >"$tmp/t"
	printf '{"stop":["<|%s|>"]}' "$seed" >"$tmp/p"
	w=$(blob_add "$tree" "$tmp/w" application/vnd.ollama.image.model)
	tpl=$(blob_add "$tree" "$tmp/t" application/vnd.ollama.image.template)
	par=$(blob_add "$tree" "$tmp/p" application/vnd.ollama.image.params)
	printf '{"model_format":"gguf","model_family":"test","architecture":"amd64","os":"linux","note":"%s"}\n' \
		"$seed" >"$tmp/c"
	cfg=$(blob_add "$tree" "$tmp/c" application/vnd.docker.container.image.v1+json)
	mkdir -p "$tree/manifests/$(dirname "$name")"
	printf '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":%s,"layers":[%s,%s,%s]}' \
		"$cfg" "$w" "$tpl" "$par" >"$tree/manifests/$name"
	rm -rf "$tmp"
}

make_random_ollama_tree() {
	local tree=$1 bytes=${2:-300000}
	mkdir -p "$tree/manifests" "$tree/blobs"
	make_model "$tree" registry.ollama.ai/library/tiny/latest "$bytes" tiny
	make_model "$tree" registry.ollama.ai/library/small/1b $((bytes / 2 + 7)) small
}

_bundle_json() { # _bundle_json LABEL  (in the bundle directory)
	local label=$1 mhash
	mhash=$(find models -type f -exec sha256sum {} \; | sort | sha256sum | cut -d' ' -f1)
	cat >manifest/bundle.json <<EOJ
{
  "bundle_version": "$label",
  "creator": "alice",
  "creation_date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "low_side_host": "stage01",
  "artifacts": {
    "ollama_binary": "$(sha256sum binaries/ollama-linux-amd64 | cut -d' ' -f1)",
    "open_webui_image": "$(sha256sum images/open-webui.tar | cut -d' ' -f1)",
    "models_directory_hash": "$mhash"
  }
}
EOJ
}

_sign() { # _sign FILE: detached armored signature FILE.asc with the test key
	rm -f "$1.asc"
	gpg --batch --yes --quiet --no-auto-check-trustdb --pinentry-mode loopback --passphrase '' ${SIGN_KEY:+--local-user "$SIGN_KEY"} \
		${GPG_SIGN_OPTS:-} --armor --detach-sign "$1"
}

make_bundle_dir() {
	local tree b=$2 label=${3:-$(date +%Y%m%d)}
	tree=$(cd "$1" && pwd) || return 1
	[ -n "${GNUPGHOME:-}" ] || make_gpg_key
	mkdir -p "$b"
	(
		set -e
		cd "$b"
		mkdir -p binaries images models packages signatures manifest
		printf '#!/bin/sh\necho ollama %s\n' "$label" >binaries/ollama-linux-amd64
		sha256sum binaries/ollama-linux-amd64 >signatures/ollama.sha256
		mkdir -p img && echo "layer $label" >img/layer.txt && tar cf images/open-webui.tar img && rm -rf img
		sha256sum images/open-webui.tar >signatures/open-webui.sha256
		cp -r "$tree" models/models
		sha256sum -b $(find models -type f) >signatures/models.sha256
		printf 'fake deb %s\n' "$label" >packages/tool_1.0_amd64.deb
		_bundle_json "$label"
		_sign manifest/bundle.json
	)
}

# Recomputes models.sha256 and bundle.json (same label) and re-signs.
resign_bundle() {
	local b=$1 label
	label=$(sed -n 's/.*"bundle_version": "\(.*\)".*/\1/p' "$b/manifest/bundle.json")
	(
		set -e
		cd "$b"
		sha256sum -b $(find models -type f) >signatures/models.sha256
		_bundle_json "$label"
		_sign manifest/bundle.json
	)
}

bundle_tar() { # bundle_tar BDIR OUTFILE [TAR-COMPRESSION-FLAG]
	local b=$1 out=$2 z=${3-z}
	case $out in /*) ;; *) out=$PWD/$out ;; esac
	(cd "$b" && tar c${z:+$( [ "$z" = z ] || [ "$z" = J ] && echo "$z")}f "$out" \
		$( [ "$z" = --zstd ] && echo --zstd) binaries/ images/ models/ packages/ signatures/ manifest/)
}

make_bundle() {
	local tree=$1 out=$2 label=${3:-$(date +%Y%m%d)}
	mkdir -p "$out"
	out=$(cd "$out" && pwd)
	make_bundle_dir "$tree" "$out/.bundle-$label" "$label" || return 1
	(cd "$out/.bundle-$label" &&
		tar czf "$out/airgap-bundle-$label.tar.gz" binaries/ images/ models/ packages/ signatures/ manifest/) ||
		return 1
	(cd "$out" && sha256sum "airgap-bundle-$label.tar.gz" >airgap-bundle-final.sha256)
	rm -rf "$out/.bundle-$label"
}

# make_two_bundles: $T/b1/airgap-bundle-20260501.tar.gz of a random tree
# ($T/tree) and $T/b2/airgap-bundle-20260502.tar.gz of the same with one
# model more, registry.ollama.ai/library/later/7b ($T/tree2): two
# generations for the signed-catalog tests, which import them their way.
make_two_bundles() {
	make_random_ollama_tree "$T/tree" 20000 &&
		make_bundle "$T/tree" "$T/b1" 20260501 &&
		cp -r "$T/tree" "$T/tree2" &&
		make_model "$T/tree2" registry.ollama.ai/library/later/7b 3000 later &&
		make_bundle "$T/tree2" "$T/b2" 20260502
}

# first_generation_signed STORE: make_gpg_key, make_two_bundles, and b1
# imported into STORE as generation 1, its catalog signed by $KEY_FPR.
first_generation_signed() {
	make_gpg_key
	make_two_bundles || bail "cannot make the bundles"
	"$AGIMPORT" --store "$1" --keyring "$T/pubkey.asc" --sign-key "$KEY_FPR" \
		"$T/b1/airgap-bundle-20260501.tar.gz" >/dev/null 2>"$T/err" ||
		bail "import: $(cat "$T/err")"
}

# store_snapshot without LMDB's lock file, which every reader's open rewrites
# (reader slots): equal snapshots mean the index and objects are unchanged.
snap() {
	store_snapshot "$1" | grep -v 'index/lock\.mdb'
}
