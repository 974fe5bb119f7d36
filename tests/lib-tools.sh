# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# Helpers for agstore's tests (tests/t3*-*.sh), sourced after tests/lib.sh.
# They build small plain Ollama trees in shell (random blobs, manifests with
# correct digests and sizes) and write them into a store as generations with
# tests/helpers/tools-mkgen (through store.h, with a chosen created time).

MKGEN=$HELPERS/tools-mkgen

need_agstore() {
	[ -x "$AGSTORE" ] || skip_all "agstore is not built ($AGSTORE)"
	[ -x "$MKGEN" ] || skip_all "the tools-mkgen helper is not built ($MKGEN)"
	command -v jq >/dev/null || skip_all "needs jq"
}

# tools_blob TREE FILE: copies FILE into TREE/blobs/sha256-<hex>, prints <hex>.
tools_blob() {
	local tree=$1 src=$2 hex
	hex=$(sha256sum "$src" | cut -d' ' -f1)
	mkdir -p "$tree/blobs"
	cp "$src" "$tree/blobs/sha256-$hex"
	echo "$hex"
}

# tools_model TREE HOST/NS/MODEL/TAG WEIGHTS: a model whose weights layer is
# WEIGHTS (a file, or a byte count of random data), plus a config and a
# template layer unique to the model.  Prints the manifest's SHA-256.
tools_model() {
	local tree=$1 name=$2 weights=$3 tmp w c tp
	tmp=$(mktemp "$T/.mk.XXXXXX")
	if [ -f "$weights" ]; then
		cp "$weights" "$tmp.w"
	else
		head -c "$weights" /dev/urandom >"$tmp.w"
	fi
	printf '{"model_format":"gguf","model_family":"test","architecture":"amd64","os":"linux","model":"%s"}\n' \
		"$name" >"$tmp.c"
	printf '{{ .Prompt }} for %s' "$name" >"$tmp.t"
	w=$(tools_blob "$tree" "$tmp.w")
	c=$(tools_blob "$tree" "$tmp.c")
	tp=$(tools_blob "$tree" "$tmp.t")
	mkdir -p "$tree/manifests/$(dirname "$name")"
	printf '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:%s","size":%d},{"mediaType":"application/vnd.ollama.image.template","digest":"sha256:%s","size":%d}]}' \
		"$c" "$(stat -c %s "$tmp.c")" "$w" "$(stat -c %s "$tmp.w")" "$tp" "$(stat -c %s "$tmp.t")" \
		>"$tree/manifests/$name"
	rm -f "$tmp" "$tmp.w" "$tmp.c" "$tmp.t"
	sha256sum "$tree/manifests/$name" | cut -d' ' -f1
}

# tools_weights TREE HOST/NS/MODEL/TAG: the hex digest of a model's weights layer.
tools_weights() {
	jq -r '.layers[0].digest' "$1/manifests/$2" | sed 's/^sha256://'
}

# tools_gen STORE TREE [tools-mkgen options...]: a new generation holding the
# models of TREE (made current unless --no-activate); prints its id.
tools_gen() {
	local store=$1 tree=$2
	shift 2
	"$MKGEN" --store "$store" "$@" "$tree"
}

# tools_object STORE HEX: the path of a blob's object file.
tools_object() {
	echo "$1/objects/sha256/${2:0:2}/$2"
}

# tools_audit_events STORE: the audit log's event names, one a line.
tools_audit_events() {
	jq -r '.event' "$1/audit.log"
}
