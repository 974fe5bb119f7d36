#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# bench/b-load.sh: how long llama.cpp (node-llama-cpp, mmap on) takes to load a
# >= 256 MiB GGUF model and produce its first token, through the mount against
# the same file read directly, in one run, as ratios.  Run by bench/run.sh
# with AGFS_BUILD set; needs root and /dev/fuse (cold figures drop the page
# cache before every run) and tests/llama/node_modules.  Prints a Markdown
# table.  BENCH_LOAD_RUNS (default 5) runs per figure; medians are shown.
#
#   load + first token, cold:  agfs / direct     (goal <= 1.2)
#   load only, cold:           agfs / direct
#   load + first token, warm:  agfs / direct     (page cache filled by the previous run)
#   load + first token, cold, -o verify=full:  agfs / direct (the whole blob is hashed at open)
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
AGFS_BUILD=${AGFS_BUILD:-$SRC/build}
HELPERS=$AGFS_BUILD/tests/helpers
AGFS=$AGFS_BUILD/agfs
AGIMPORT=$AGFS_BUILD/agimport
LLAMA_DIR=$SRC/tests/llama
RUNS=${BENCH_LOAD_RUNS:-5}
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true

skip() {
	echo "skip: $*"
	exit 0
}
bail() {
	echo "error: $*"
	exit 1
}
[ "$(id -u)" -eq 0 ] || skip "needs root (FUSE mount, drop_caches)"
[ -c /dev/fuse ] || skip "no /dev/fuse"
[ -x "$AGFS" ] && [ -x "$AGIMPORT" ] && [ -x "$HELPERS/mkgguf" ] || skip "build agfs, agimport and tests/helpers first"
command -v node >/dev/null || skip "needs node"
[ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] ||
	skip "node-llama-cpp needs Node.js >= 20, this is $(node --version)"
[ -d "$LLAMA_DIR/node_modules/node-llama-cpp" ] ||
	skip "node-llama-cpp is not installed (cd tests/llama && npm install --omit=optional)"
echo 1 >/proc/sys/vm/drop_caches 2>/dev/null || skip "cannot drop caches"
. "$SRC/tests/lib-fixtures.sh"

W=$(mktemp -d "${TMPDIR:-/tmp}/agfs-bench.XXXXXX")
mnt=$W/mnt
cleanup() {
	mountpoint -q "$mnt" 2>/dev/null && fusermount3 -u "$mnt"
	rm -rf "$W"
}
trap cleanup EXIT

make_ollama_tree "$W/src" --preset load --model bench/load:latest
blob=$(fixture_model_blob "$W/src" bench/load:latest)
size=$(stat -c %s "$W/src/blobs/$blob")
"$AGIMPORT" --ollama-dir "$W/src" --store "$W/store" --no-signature >/dev/null 2>&1 ||
	bail "agimport failed"
mkdir -p "$mnt"

# run FILE cold|warm: prints "load_ms first_token_ms" of one client run
run() {
	local out
	if [ "$2" = cold ]; then
		sync
		echo 3 >/proc/sys/vm/drop_caches
	fi
	out=$(node "$LLAMA_DIR/generate.mjs" --time --tokens 1 --prompt a "$1" 2>/dev/null) || return 1
	sed -n 's/^TIME load_ms=\([0-9]*\) first_token_ms=\([0-9]*\)$/\1 \2/p' <<<"$out"
}

median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2)}'; }

# measure LABEL MODE [agfs options]: RUNS alternating direct/mount runs
measure() {
	local mode=$2 i d m
	shift 2
	"$AGFS" "$@" "$W/store" "$mnt" || bail "agfs did not mount"
	: >"$W/direct" && : >"$W/mount"
	[ "$mode" = warm ] && run "$W/src/blobs/$blob" cold >/dev/null && run "$mnt/blobs/$blob" cold >/dev/null
	for ((i = 0; i < RUNS; i++)); do
		d=$(run "$W/src/blobs/$blob" "$mode") || bail "llama.cpp failed on the source file"
		m=$(run "$mnt/blobs/$blob" "$mode") || bail "llama.cpp failed through the mount"
		echo "$d" >>"$W/direct"
		echo "$m" >>"$W/mount"
	done
	fusermount3 -u "$mnt"
}

# row DESCRIPTION FIELD GOAL: one table line from the last measure
row() {
	local d m
	d=$(cut -d' ' -f"$2" "$W/direct" | median)
	m=$(cut -d' ' -f"$2" "$W/mount" | median)
	printf '| %s | %s ms | %s ms | %s | %s |\n' "$1" "$d" "$m" \
		"$(awk -v d="$d" -v m="$m" 'BEGIN {printf (d > 0) ? "%.2f×" : "n/a", m / d}')" "$3"
}

echo "Model: generated llama GGUF, $((size / 1024 / 1024)) MiB (F16), loaded with mmap by node-llama-cpp" \
	"$(node -e 'console.log(require("'"$LLAMA_DIR"'/node_modules/node-llama-cpp/package.json").version)'), CPU only;" \
	"median of $RUNS runs"
echo
echo "| measure | direct file | through agfs | agfs / direct | goal |"
echo "|---|---:|---:|---:|---|"
measure cold-default cold
row "load + first token, cold" 2 "≤ 1.2×"
row "load only, cold" 1 ""
measure warm-default warm
row "load + first token, warm" 2 ""
measure cold-full cold -o verify=full
row "load + first token, cold, -o verify=full" 2 ""
