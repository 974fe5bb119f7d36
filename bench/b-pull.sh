#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# agimport --registry against the plain way to fetch and check a blob: a
# generation with one model of BENCH_PULL_MIB (default 1024) MiB of random
# bytes, pushed to a docker-registry on loopback (TLS), pulled into an empty
# store, against `curl -o` of the same blob from the same registry followed
# by `sha256sum` (goal <= 1.0: fetching and verifying in one pass should beat
# fetching, then hashing).  Then four nodes pull at once through one nginx
# cache (contrib/nginx/agfs-cache.conf): the bytes the registry served for
# the big blob, as copies of it (goal ~1, not 4).  Warm page cache, one run
# each, same machine.
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
AGFS_BUILD=${AGFS_BUILD:-$src/build}
. "$src/tests/lib.sh" >/dev/null
. "$src/tests/lib-bundle.sh"
. "$src/tests/lib-registry.sh"
MIB=${BENCH_PULL_MIB:-1024}

[ -x "$AGIMPORT" ] && [ -x "$AGSTORE" ] || { echo "skip: agimport/agstore not built (make all)"; exit 0; }
[ -x "$REGISTRY_BIN" ] || { echo "skip: docker-registry not installed (contrib/install-deps.sh)"; exit 0; }

secs() { # secs CMD...: wall seconds of CMD (its output discarded)
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null 2>&1 || echo "# failed: $*" >&2
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l
}

TREE=$T/tree
mkdir -p "$TREE"
make_model "$TREE" registry.ollama.ai/library/big/latest $((MIB * 1048576)) big
BIG=$(jq -r '.layers[0].digest' "$TREE/manifests/registry.ollama.ai/library/big/latest")
BIG=${BIG#sha256:}
SIZE=$((MIB * 1048576))
"$AGIMPORT" --store "$T/ingest" --ollama-dir "$TREE" --no-signature >/dev/null 2>&1 || { echo "import failed"; exit 1; }
rm -rf "$TREE"
registry_start bench || { echo "docker-registry did not start"; exit 1; }
CA=$T/pki/ca.crt
tpush=$(secs "$AGSTORE" --store "$T/ingest" push "$REG_URL" --ca-file "$CA")
URL=$REG_URL/v2/agfs/models/registry.ollama.ai/library/big/blobs/sha256:$BIG

curl_check() {
	curl -sf --cacert "$CA" -o "$T/blob" "$URL" && sha256sum "$T/blob" | grep -q "^$BIG "
}
pull() { # pull STORE [URL]
	rm -rf "$1"
	"$AGIMPORT" --registry "${2:-$REG_URL}" --store "$1" --ca-file "$CA" --no-signature
}
curl -sf --cacert "$CA" -o /dev/null "$URL" # the registry's side warm too
tcurl=$(secs curl_check)
rm -f "$T/blob"
tpull=$(secs pull "$T/node")
rm -rf "$T/node"

echo "One ${MIB} MiB model (random bytes) over loopback TLS, warm cache; seconds, one run each."
echo
echo "| measure | agfs | reference | ratio | goal |"
echo "|---|---|---|---|---|"
printf '| push to an empty registry | %.2f s | - | - | - |\n' "$tpush"
printf '| pull into an empty store (fetch + verify + stage + commit) | %.2f s | %.2f s (curl -o, then sha256sum) | %.2f | <= 1.0 |\n' \
	"$tpull" "$tcurl" "$(echo "$tpull / $tcurl" | bc -l)"

if nginx_cache_start bench; then
	before=$(grep -E "\"GET /v2/[^ ]*/blobs/sha256:$BIG HTTP/[0-9.]*\" 20[06] " "$REG_LOG" |
		awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^HTTP\//) { s += $(i + 2); break } } END { printf "%.0f\n", s }')
	four() {
		local n
		for n in 1 2 3 4; do pull "$T/n$n" "$CACHE_URL" & done
		wait
	}
	tfour=$(secs four)
	after=$(grep -E "\"GET /v2/[^ ]*/blobs/sha256:$BIG HTTP/[0-9.]*\" 20[06] " "$REG_LOG" |
		awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^HTTP\//) { s += $(i + 2); break } } END { printf "%.0f\n", s }')
	ok=0
	for n in 1 2 3 4; do "$AGSTORE" --store "$T/n$n" ls 2>/dev/null | grep -q big && ok=$((ok + 1)); done
	printf '| four nodes at once through one nginx cache (%d of 4 pulled) | %.2f s | - | - | - |\n' "$ok" "$tfour"
	printf '| registry bytes served for the big blob, in copies of it | %.2f | 4 (no cache) | %.2f | ~1 |\n' \
		"$(echo "($after - $before) / $SIZE" | bc -l)" "$(echo "($after - $before) / $SIZE / 4" | bc -l)"
	rm -rf "$T"/n[1-4]
else
	echo "| four nodes through an nginx cache | nginx not available | | | |"
fi
registry_stop
