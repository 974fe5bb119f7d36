#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# bench/b-import.sh: agimport and agstore fsck against the plain commands
# that move or check the same bytes, in one run of interleaved rounds
# (bench/lib.sh): issue 13's import and fsck rows, issue 12's import row.
#
#   import .tar.zst        vs  zstd -dc | tar x, then sync          (goal agfs/ref <= 1.0)
#   import .tar.gz         vs  gzip -dc >/dev/null alone            (goal agfs/ref <= 1.0)
#   import .tar.zst, format 2 vs format 1 (commit 16c74ac's agimport) (goal <= 1.05)
#   import of BENCH_SMALL_MODELS small models (--ollama-dir)
#                          vs  cp -r of the same tree, then sync    (goal agfs/ref <= 1.5)
#                          each run on a freshly made ext4 (see small_fs below)
#   agstore fsck, cold     vs  openssl dgst -sha256 of every object, 2 in parallel, cold
#                                                                   (goal ref/agfs >= 0.95)
#
# The bundles hold one model of BENCH_IMPORT_GIB random bytes, compressed
# with gzip -1 / zstd -1 (random bytes do not compress: this measures the
# verify/stage path, not the compressor), read from the page cache.  Every
# run writes into a new directory or store; the old one is removed and
# synced away before the clock starts.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../tests/lib.sh" >/dev/null
. "$here/../tests/lib-bundle.sh"
. "$here/lib.sh"
. "$BENCH_SRC/tests/lib-fs.sh"
[ -x "$AGIMPORT" ] && [ -x "$AGSTORE" ] && [ -x "$MKSTORE" ] || skip "build agimport, agstore and tests/helpers first (make all)"
command -v zstd >/dev/null || skip "zstd not installed"
command -v openssl >/dev/null || skip "openssl not installed"
V1=
if v1_build; then V1=$V1_BUILD; else V1_SKIP="format 1 not built: $V1_WHY"; fi

progress "b-import: making the bundles ($IMPORT_MIB MiB), $SMALL_MODELS small models, the fsck store ($FSCK_MIB MiB)"
make_gpg_key
make_model "$W/tree" registry.ollama.ai/library/big/latest $((IMPORT_MIB << 20)) big
make_bundle_dir "$W/tree" "$W/b" 20261201
rm -rf "$W/tree"
for z in gz zst; do
	[ $z = gz ] && c='gzip -1' || c='zstd -1 -q'
	(cd "$W/b" && tar -I "$c" -cf "$W/bundle.tar.$z" binaries/ images/ models/ packages/ signatures/ manifest/)
	(cd "$W" && sha256sum "bundle.tar.$z" >"bundle.tar.$z.sha256")
done
rm -rf "$W/b"
for ((i = 0; i < SMALL_MODELS; i++)); do
	make_model "$W/small" "registry.ollama.ai/library/small$i/latest" 65536 "small$i"
done
for i in 1 2 3 4; do
	fs_model "$W/ftree" "bench/fsck/m$i/latest" $((FSCK_MIB << 18))
done
"$MKSTORE" "$W/fsck" "$W/ftree" >/dev/null || { echo "error: fs-mkstore failed"; exit 1; }
rm -rf "$W/ftree"

fresh() { # fresh DIR...: removes DIRs and syncs the deletion away
	rm -rf "$@"
	sync
}
importer() { # importer AGIMPORT TARBALL
	"$1" --store "$W/store" --keyring "$T/pubkey.asc" --sha256-file "$2.sha256" "$2"
}
untar() { # untar DECOMPRESSOR TARBALL
	mkdir -p "$W/x" && $1 <"$2" | tar -x -C "$W/x" && sync
}
copy() { cp -r "$W/small" "$W/copy" && sync; }
digests() { find "$W/fsck/objects" -type f -print0 | xargs -0 -P2 -n1 openssl dgst -sha256; }

bench_begin "Bundles: one $IMPORT_MIB MiB model of random bytes (gzip -1, zstd -1), in the page cache;" \
	"$SMALL_MODELS small models of 64 KiB weights (4 blobs each); fsck store: 4 models, $FSCK_MIB MiB."

zst_ref() { fresh "$W/x" && timed zst.ref untar "zstd -dc" "$W/bundle.tar.zst"; }
zst_agfs() { fresh "$W/store" && timed zst.agfs importer "$AGIMPORT" "$W/bundle.tar.zst"; }
zst_v1() { fresh "$W/store" && timed zst.v1 importer "$V1/agimport" "$W/bundle.tar.zst"; }
gz_ref() { timed gz.ref sh -c "gzip -dc <'$W/bundle.tar.gz' >/dev/null"; }
gz_agfs() { fresh "$W/store" && timed gz.agfs importer "$AGIMPORT" "$W/bundle.tar.gz"; }
r_tar() { rotated "$1" zst_ref zst_agfs ${V1:+zst_v1} gz_ref gz_agfs; }
cat "$W"/bundle.tar.* >/dev/null
rounds r_tar
fresh "$W/x" "$W/store"
row "import .tar.zst vs zstd -dc \| tar x + sync" zst.agfs zst.ref "zstd -dc \| tar x + sync" "≤ 1.0" agfs/ref
row "import .tar.gz vs gzip -dc alone" gz.agfs gz.ref "gzip -dc >/dev/null" "≤ 1.0" agfs/ref
if [ -n "$V1" ]; then
	row "import .tar.zst, format 2 vs format 1" zst.agfs zst.v1 "format 1 agimport" "≤ 1.05" agfs/ref
else
	skiprow "import .tar.zst, format 2 vs format 1" "$V1_SKIP"
fi

# Many small files: each run (import and reference alike) writes into a
# freshly made ext4 on a loop device, synced with syncfs (sync -f) of that
# file system.  On a file system where the previous round's output was
# just deleted, ext4 without a journal (this VM's root) skips every inode
# freed in the last 30 s one by one at each new inode, so both times
# depended on what had been deleted just before, by the bench or any other
# program (cp -r + sync ranged 0.17-1.2 s in one run); a fresh file system
# measures the copy or import alone, the same way for both.  Without root
# or mkfs.ext4, the row runs in $W as before.
small_fs() { # small_fs: a fresh, empty ext4 mounted at $D
	umount "$D" 2>/dev/null
	mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$W/small.img" >/dev/null &&
		mount -o loop "$W/small.img" "$D" && sync -f "$D"
}
D=$W/smallfs
if [ "$(id -u)" -eq 0 ] && command -v mkfs.ext4 >/dev/null && mkdir -p "$D" &&
	truncate -s $((SMALL_MODELS < 2000 ? 512 : SMALL_MODELS / 4))M "$W/small.img" && small_fs; then
	_bench_mounts+=("$D")
	SMALL_WHERE="each run on a fresh ext4"
	small_fresh() { small_fs; }
	copy() { cp -r "$W/small" "$D/copy" && sync -f "$D"; }
else
	D=$W
	SMALL_WHERE="in $W (no fresh file system: not root or no mkfs.ext4)"
	small_fresh() { fresh "$D/copy" "$D/store"; }
fi
small_ref() { small_fresh && timed small.ref copy; }
small_agfs() { small_fresh && timed small.agfs "$AGIMPORT" --store "$D/store" --ollama-dir "$W/small" --no-signature; }
r_small() { rotated "$1" small_ref small_agfs; }
rounds r_small
[ "$D" = "$W" ] && fresh "$W/copy" "$W/store"
[ "$D" = "$W" ] || umount "$D"
row "import of $SMALL_MODELS small models vs cp -r + sync, $SMALL_WHERE" small.agfs small.ref "cp -r + sync" "≤ 1.5" agfs/ref
# The same, the way earlier runs measured it (in $W on the root file system,
# the previous round's output deleted just before), for comparison with
# their figures.
if [ "$D" != "$W" ]; then
	copy_w() { cp -r "$W/small" "$W/copy" && sync; }
	smallw_ref() { fresh "$W/copy" && timed smallw.ref copy_w; }
	smallw_agfs() { fresh "$W/store" && timed smallw.agfs "$AGIMPORT" --store "$W/store" --ollama-dir "$W/small" --no-signature; }
	r_smallw() { rotated "$1" smallw_ref smallw_agfs; }
	rounds r_smallw
	fresh "$W/copy" "$W/store"
	row "import of $SMALL_MODELS small models vs cp -r + sync, in $W (root file system, previous round deleted: the earlier method)" \
		smallw.agfs smallw.ref "cp -r + sync" "≤ 1.5" agfs/ref
fi

fsck_ref() { cold timed fsck.ref digests; }
fsck_agfs() { cold timed fsck.agfs "$AGSTORE" --store "$W/fsck" fsck; }
r_fsck() { rotated "$1" fsck_ref fsck_agfs; }
rounds r_fsck
row "agstore fsck, cold, vs openssl dgst 2 in parallel" fsck.agfs fsck.ref "openssl dgst -sha256, xargs -P2" "≥ 0.95"

bench_end "Times are medians; ratios are per round.${V1_SKIP:+ $V1_SKIP.}"
