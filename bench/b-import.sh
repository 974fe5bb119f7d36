#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# agimport against the manual high-side procedure of bundle-format.md
# (sha256sum -c of the tarball, tar x, gpg --verify, sha256sum -c of the
# lists, cp -r into a repository) and against decompression alone, for a
# bundle holding one model of BENCH_IMPORT_MIB (default 1024) MiB of random
# bytes.  The bundles are compressed with gzip -1 / zstd -1 so that building
# them does not dominate the run; random bytes do not compress, so this
# measures the verify/stage path, not the compressor.  Warm page cache, one
# run each, same machine, same file system.
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
AGFS_BUILD=${AGFS_BUILD:-$src/build}
. "$src/tests/lib.sh" >/dev/null
. "$src/tests/lib-bundle.sh"
MIB=${BENCH_IMPORT_MIB:-1024}

[ -x "$AGIMPORT" ] || { echo "agimport not built"; exit 1; }
make_gpg_key
TREE=$T/tree
mkdir -p "$TREE"
make_model "$TREE" registry.ollama.ai/library/big/latest $((MIB * 1048576)) big
make_bundle_dir "$TREE" "$T/b" 20260423
rm -rf "$TREE"

secs() { # secs CMD...: wall seconds of CMD (its output discarded)
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null 2>&1 || echo "# failed: $*" >&2
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l
}

manual() { # manual TARBALL UNPACK-FLAG: the site's procedure, step by step
	local tb=$1 z=$2 w=$T/manual
	rm -rf "$w" "$T/repo" && mkdir -p "$w" "$T/repo"
	(cd "$(dirname "$tb")" && sha256sum -c "$(basename "$tb").sha256") &&
		tar -x $z -f "$tb" -C "$w" &&
		(cd "$w" && gpg --batch --verify manifest/bundle.json.asc manifest/bundle.json &&
			sha256sum -c signatures/*.sha256) &&
		cp -r "$w/models/models/." "$T/repo/"
}

importer() { # importer TARBALL: a fresh store each run
	rm -rf "$T/store"
	"$AGIMPORT" --store "$T/store" --keyring "$T/pubkey.asc" --sha256-file "$1.sha256" "$1"
}

row() { # row NAME TARBALL UNPACK-FLAG DECOMPRESS-CMD
	local name=$1 tb=$2 z=$3 dc=$4 tdc tdw tman timp
	(cd "$(dirname "$tb")" && sha256sum "$(basename "$tb")" >"$(basename "$tb").sha256")
	cat "$tb" >/dev/null
	tdc=$(secs sh -c "$dc <'$tb' >/dev/null")
	tdw=$(secs sh -c "$dc <'$tb' | dd of='$T/plain' bs=1M conv=fsync status=none")
	rm -f "$T/plain"
	tman=$(secs manual "$tb" "$z")
	rm -rf "$T/manual" "$T/repo"
	timp=$(secs importer "$tb")
	rm -rf "$T/store"
	printf '| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n' "$name" "$tdc" "$tdw" \
		"$tman" "$timp" "$(echo "$timp / $tman" | bc -l)" "$(echo "$timp / $tdc" | bc -l)" \
		"$(echo "$timp / $tdw" | bc -l)"
}

echo "Bundle with one ${MIB} MiB model (random bytes), warm cache; seconds, one run each."
echo
echo "| bundle | decompress only | decompress to a file + fsync | manual procedure | agimport | agimport / manual (goal ≤ 0.5) | agimport / decompress (goal ≤ 1.2) | agimport / decompress+write |"
echo "|---|---|---|---|---|---|---|---|"
(cd "$T/b" && tar -I 'gzip -1' -cf "$T/bundle.tar.gz" binaries/ images/ models/ packages/ signatures/ manifest/)
row ".tar.gz (gzip -1)" "$T/bundle.tar.gz" -z "gzip -dc"
rm -f "$T/bundle.tar.gz"
if command -v zstd >/dev/null; then
	(cd "$T/b" && tar -I 'zstd -1 -q' -cf "$T/bundle.tar.zst" binaries/ images/ models/ packages/ signatures/ manifest/)
	row ".tar.zst (zstd -1)" "$T/bundle.tar.zst" --zstd "zstd -dc"
else
	echo "| .tar.zst | zstd not installed | | | | | | |"
fi
