#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# bench/b-fs.sh: reads through the mount (store format 2) against the same
# bytes read natively (the object file), through unverified FUSE peers
# (bindfs, libfuse's passthrough_ll, both over the object's directory) and
# through the format-1 mount (commit 16c74ac, its store made by its own
# fs-mkstore from the same tree): issue 13's read rows and issue 12's
# format rows, in one run of interleaved rounds (bench/lib.sh).
#
#   cold sequential read of BENCH_SEQ_GIB: vs native, bindfs, passthrough_ll, format 1;
#     again with BENCH_BUSY (default 2) CPU-bound processes running ("machine busy")
#   daemon CPU per GiB of that read (format 1's as the reference)
#   2000 random 4 KiB preads, cold: vs native, format 1
#   2 and 4 concurrent readers, cold (each its share of the blob): vs native
#   warm sequential read; warm mmap + MAP_POPULATE: vs native (and format 1)
#   open to first byte, cold, 64 MiB and BENCH_FS_MAX_GIB blobs (goal <= 5 ms)
#   the daemon's peak RSS (goal <= 64 MiB)
set -u
. "$(dirname "$0")/lib.sh"
. "$BENCH_SRC/tests/lib-fs.sh"
bench_needs_root
[ -x "$AGFS" ] && [ -x "$MKSTORE" ] && [ -x "$HELPERS/fs-timing" ] || skip "build agfs and tests/helpers first (make all)"
V1=
if v1_build; then V1=$V1_BUILD; else V1_SKIP="format 1 not built: $V1_WHY"; fi

# --- the stores: the same tree in format 2 and format 1 ---
progress "b-fs: making a $SEQ_MIB MiB, a 64 MiB and a $FS_MAX_MIB MiB blob"
fs_model "$W/tree" bench/fs/seq/latest $((SEQ_MIB << 20))
seq=$FS_MODEL_HEX
fs_model "$W/tree" bench/fs/m64/latest $((64 << 20))
h64=$FS_MODEL_HEX
fs_model "$W/tree" bench/fs/max/latest $((FS_MAX_MIB << 20))
hmax=$FS_MODEL_HEX
"$MKSTORE" "$W/s2" "$W/tree" >/dev/null || { echo "error: fs-mkstore (format 2) failed"; exit 1; }
if [ -n "$V1" ]; then
	"$V1/tests/helpers/fs-mkstore" "$W/s1" "$W/tree" >/dev/null 2>"$W/v1-mkstore.err" ||
		{ V1='' V1_SKIP="format 1 fs-mkstore failed: $(head -1 "$W/v1-mkstore.err")"; }
fi
rm -rf "$W/tree"
obj=$(fs_object "$W/s2" "$seq")

agfs_mount "$AGFS" "$W/s2" "$W/m2" -o metrics=none || { echo "error: agfs did not mount"; exit 1; }
pid2=$MOUNT_PID
f2=$W/m2/blobs/sha256-$seq
if [ -n "$V1" ]; then
	agfs_mount "$V1/agfs" "$W/s1" "$W/m1" || { V1='' V1_SKIP="the format-1 agfs did not mount"; }
	pid1=$MOUNT_PID
	f1=$W/m1/blobs/sha256-$seq
fi
BINDFS='' PLL=''
if peer_bindfs "$(dirname "$obj")" "$W/mb"; then BINDFS=$W/mb/$seq; else BINDFS_SKIP=$PEER_WHY; fi
if peer_passthrough "$(dirname "$obj")" "$W/mp"; then PLL=$W/mp/$seq; else PLL_SKIP=$PEER_WHY; fi

bench_begin "Blobs of random bytes: $SEQ_MIB MiB for the sequential and random reads, 64 MiB and" \
	"$FS_MAX_MIB MiB for open to first byte. Native = the object file in the format-2 store; format 1 =" \
	"commit $V1_COMMIT's agfs over a store its fs-mkstore made from the same tree."

# --- cold sequential ---
seq_native() { cold timed "seq$S.native" cat "$obj"; }
seq_agfs() { cold timed_cpu "seq$S.agfs" "$pid2" cat "$f2"; }
seq_v1() { cold timed_cpu "seq$S.v1" "$pid1" cat "$f1"; }
seq_bindfs() { cold timed "seq$S.bindfs" cat "$BINDFS"; }
seq_pll() { cold timed "seq$S.pll" cat "$PLL"; }
cold_seq() { rotated "$1" seq_native seq_agfs ${V1:+seq_v1} ${BINDFS:+seq_bindfs} ${PLL:+seq_pll}; }
S=''
rounds cold_seq
m="cold sequential read, $SEQ_MIB MiB"
row "$m, vs native" seq.agfs seq.native "cat of the object" "≥ 0.8"
if [ -n "$BINDFS" ]; then row "$m, vs bindfs" seq.agfs seq.bindfs "cat through bindfs" "≥ 1.0"; else skiprow "$m, vs bindfs" "$BINDFS_SKIP"; fi
if [ -n "$PLL" ]; then row "$m, vs passthrough_ll" seq.agfs seq.pll "cat through passthrough_ll" "≥ 1.0"; else skiprow "$m, vs passthrough_ll" "$PLL_SKIP"; fi
if [ -n "$V1" ]; then row "$m, format 2 vs format 1" seq.agfs seq.v1 "format 1" "≥ 1.0"; else skiprow "$m, format 2 vs format 1" "$V1_SKIP"; fi
BUSY=${BENCH_BUSY:-2}
if [ "$BUSY" -gt 0 ]; then
	S=.busy
	busy_start "$BUSY"
	rounds cold_seq
	busy_stop
	m="cold sequential read, $SEQ_MIB MiB, machine busy ($BUSY CPU-bound processes)"
	row "$m, vs native" seq.busy.agfs seq.busy.native "cat of the object" "≥ 0.8"
	[ -n "$BINDFS" ] && row "$m, vs bindfs" seq.busy.agfs seq.busy.bindfs "cat through bindfs" "≥ 1.0"
	[ -n "$PLL" ] && row "$m, vs passthrough_ll" seq.busy.agfs seq.busy.pll "cat through passthrough_ll" "≥ 1.0"
	[ -n "$V1" ] && row "$m, format 2 vs format 1" seq.busy.agfs seq.busy.v1 "format 1" "≥ 1.0"
fi
gib=$(awk -v m="$SEQ_MIB" 'BEGIN {print m / 1024}')
per_gib() { awk -v g="$gib" '{ print ($1 == "-") ? "-" : $1 / g }' "$W/series/$1" >"$W/series/$2"; }
per_gib seq.agfs.cpu cpu.agfs
if [ -n "$V1" ]; then
	per_gib seq.v1.cpu cpu.v1
	row "daemon CPU per GiB, cold sequential" cpu.agfs cpu.v1 "format 1" "agfs ≤ 0.6 s" abs
else
	vrow "daemon CPU per GiB, cold sequential" "$(spread cpu.agfs 1000000 " s")" "" "≤ 0.6 s"
fi

# --- random 4 KiB preads, cold ---
rand_native() { cold measured rand.native "$HELPERS/fs-timing" pread "$obj" 2000 "$1"; }
rand_agfs() { cold measured rand.agfs "$HELPERS/fs-timing" pread "$f2" 2000 "$1"; }
rand_v1() { cold measured rand.v1 "$HELPERS/fs-timing" pread "$f1" 2000 "$1"; }
cold_rand() { rotated "$1" rand_native rand_agfs ${V1:+rand_v1}; }
rounds cold_rand
row "2000 random 4 KiB preads, cold, vs native" rand.agfs rand.native "pread of the object" "≥ 0.7"
if [ -n "$V1" ]; then row "2000 random 4 KiB preads, cold, format 2 vs format 1" rand.agfs rand.v1 "format 1" "≥ 1.0"; fi

# --- concurrent readers, cold: reader i of N reads the i-th Nth of the blob ---
readers() { # readers FILE N
	local i per=$((SEQ_MIB / $2)) pids=() rc=0
	for ((i = 0; i < $2; i++)); do
		dd if="$1" of=/dev/null bs=1M skip=$((i * per)) count=$per status=none &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || rc=1; done # not the mounts' daemons
	return $rc
}
par_native() { cold timed "par$N.native" readers "$obj" "$N"; }
par_agfs() { cold timed "par$N.agfs" readers "$f2" "$N"; }
cold_par() { for N in 2 4; do rotated "$1" par_native par_agfs; done; }
rounds cold_par
row "2 concurrent readers, cold, vs native" par2.agfs par2.native "dd of the object" "≥ 0.8"
row "4 concurrent readers, cold, vs native" par4.agfs par4.native "dd of the object" "≥ 0.8"

# --- warm: the page cache filled by the round before ---
cat "$obj" "$f2" ${V1:+"$f1"} >/dev/null
warm_native() { timed warm.native cat "$obj"; }
warm_agfs() { timed warm.agfs cat "$f2"; }
warm_v1() { timed warm.v1 cat "$f1"; }
mmap_native() { measured mmap.native "$HELPERS/fs-timing" mmap "$obj"; }
mmap_agfs() { measured mmap.agfs "$HELPERS/fs-timing" mmap "$f2"; }
warm() { rotated "$1" warm_native warm_agfs ${V1:+warm_v1} mmap_native mmap_agfs; }
rounds warm
row "warm sequential read, vs native" warm.agfs warm.native "cat of the object" "≥ 0.9"
if [ -n "$V1" ]; then row "warm sequential read, format 2 vs format 1" warm.agfs warm.v1 "format 1" "≥ 1.0"; fi
row "warm mmap + MAP_POPULATE, vs native" mmap.agfs mmap.native "the object mapped" "measured, explained in README"

# --- open to first byte, cold (the blob's first open in the mount: its
# record and tree root read from the store) ---
first_agfs() { cold measured "first$H.agfs" "$HELPERS/fs-timing" first "$W/m2/blobs/sha256-$H"; }
first_v1() { cold measured "first$H.v1" "$HELPERS/fs-timing" first "$W/m1/blobs/sha256-$H"; }
first() { for H in "$h64" "$hmax"; do rotated "$1" first_agfs ${V1:+first_v1}; done; }
rounds first
for h in "$h64" "$hmax"; do
	[ "$h" = "$h64" ] && m="open to first byte, cold, 64 MiB blob" || m="open to first byte, cold, $FS_MAX_MIB MiB blob"
	if [ -n "$V1" ]; then
		row "$m" "first$h.agfs" "first$h.v1" "format 1" "agfs ≤ 5 ms" abs
	else
		vrow "$m" "$(spread "first$h.agfs" 1000 " ms")" "" "≤ 5 ms"
	fi
done
# VmHWM counts the pages of the LMDB index the daemon has mapped (the trees
# of the blobs read: 1/128 of their size) and of its libraries: page cache,
# shared and reclaimable; the split at the end shows how much is its own.
vrow "daemon peak RSS" "$(awk '/VmHWM/ {h = $2} /RssAnon/ {a = $2} /RssFile/ {f = $2}
	END {printf "%.1f MiB peak; at the end %.1f MiB anonymous, %.1f MiB mapped files (LMDB index, libraries)", h / 1024, a / 1024, f / 1024}' \
	"/proc/$pid2/status")" "" "≤ 64 MiB"

bench_end "agfs: format 2 (4 KiB blocks in an fs-verity tree), default options; bindfs -r and" \
	"passthrough_ll with their defaults. Times are medians; ratios are per round.${V1_SKIP:+ $V1_SKIP.}"
