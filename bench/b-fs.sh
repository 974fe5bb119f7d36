#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# bench/b-fs.sh: the mount (agfs) against the same bytes read natively, in one
# run, as ratios.  Run by bench/run.sh with AGFS_BUILD set; needs root and
# /dev/fuse (cold figures need to drop the page cache).  Prints a Markdown
# table.  BENCH_FS_MAX_GIB (default 4) caps the largest blob for open latency.
#
#   sequential 1 GiB, cold:  native cat of the object / agfs cat    (goal >= 0.8)
#   sequential 1 GiB, warm:  the same from the page cache             (goal >= 0.9)
#   open to first byte:      agfs open+read(1) vs openssl dgst -sha256 of the blob (goal <= 5 ms)
#   random 4 KiB preads:     native / agfs, cold
#   daemon peak RSS          (goal <= 64 MiB)
set -u
AGFS_BUILD=${AGFS_BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
HELPERS=$AGFS_BUILD/tests/helpers
AGFS=$AGFS_BUILD/agfs
. "$(dirname "$0")/../tests/lib-fs.sh"
RUNS=${BENCH_FS_RUNS:-3}
MAX_GIB=${BENCH_FS_MAX_GIB:-4}

skip() {
	echo "skip: $*"
	exit 0
}
[ "$(id -u)" -eq 0 ] || skip "needs root (FUSE mount, drop_caches)"
[ -c /dev/fuse ] || skip "no /dev/fuse"
[ -x "$AGFS" ] && [ -x "$MKSTORE" ] && [ -x "$HELPERS/fs-timing" ] || skip "build agfs and tests/helpers first"
command -v openssl >/dev/null || skip "needs openssl"
echo 1 >/proc/sys/vm/drop_caches 2>/dev/null || skip "cannot drop caches"

W=$(mktemp -d "${TMPDIR:-/tmp}/agfs-bench.XXXXXX")
mnt=$W/mnt
cleanup() {
	mountpoint -q "$mnt" 2>/dev/null && fusermount3 -u "$mnt"
	rm -rf "$W"
}
trap cleanup EXIT

# the blobs: 1 GiB for sequential and random reads, 64 MiB .. MAX_GIB for open latency
sizes="64 256 1024"
[ "$MAX_GIB" -ge 4 ] && sizes="$sizes 4096"
declare -A hex
for mib in $sizes; do
	fs_model "$W/tree" "bench/fs/m$mib/latest" $((mib * 1024 * 1024))
	hex[$mib]=$FS_MODEL_HEX
done
fs_store "$W/store" "$W/tree" >/dev/null || { echo "fs-mkstore failed"; exit 1; }
rm -rf "$W/tree"
mkdir -p "$mnt"
"$AGFS" "$W/store" "$mnt" || { echo "agfs did not mount"; exit 1; }
pid=$(pgrep -f -x "$AGFS $W/store $mnt")

now() { date +%s%N; }
ms_of() { # ms_of CMD...: wall-clock milliseconds of CMD
	local s e
	s=$(now)
	"$@" >/dev/null 2>&1
	e=$(now)
	echo $(((e - s) / 1000000))
}
median() { tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf (b > 0 ? "%.2f" : "-"), a / b}'; }

big=${hex[1024]}
obj=$(fs_object "$W/store" "$big")
blob=$mnt/blobs/sha256-$big

# cold_seq DAEMON_PID: sequential cold reads of the object and of the blob
# through the mount, interleaved so both see the same machine load; sets
# NATIVE_MS and AGFS_MS (medians) and CPU_MS (the daemon's CPU, last run).
cold_seq() {
	local n="" a="" c0 c1
	for _ in $(seq "$RUNS"); do
		drop_caches
		n="$n $(ms_of cat "$obj")"
		drop_caches
		c0=$(awk '{print $14 + $15}' "/proc/$1/stat")
		a="$a $(ms_of cat "$blob")"
		c1=$(awk '{print $14 + $15}' "/proc/$1/stat")
		CPU_MS=$(((c1 - c0) * 1000 / $(getconf CLK_TCK)))
	done
	NATIVE_MS=$(echo $n | median) AGFS_MS=$(echo $a | median)
}
cold_seq "$pid"
nc=$NATIVE_MS ac=$AGFS_MS cpu_ms=$CPU_MS

# sequential, warm
cat "$obj" "$blob" >/dev/null
nw="" aw=""
for _ in $(seq "$RUNS"); do
	nw="$nw $(ms_of cat "$obj")"
	aw="$aw $(ms_of cat "$blob")"
done
nw=$(echo $nw | median) aw=$(echo $aw | median)

# random 4 KiB preads, cold
drop_caches
nr=$("$HELPERS/fs-timing" pread "$obj" 2000 7)
drop_caches
ar=$("$HELPERS/fs-timing" pread "$blob" 2000 7)

# open to first byte (first open of the blob in this mount: its chunk table is
# loaded), with the page cache dropped (cold) and again with the store's index
# cached (warm), against hashing the blob whole
first_rows=""
worst=0
for mib in $sizes; do
	o=$(fs_object "$W/store" "${hex[$mib]}")
	drop_caches
	us=$("$HELPERS/fs-timing" first "$mnt/blobs/sha256-${hex[$mib]}")
	sleep 0.2 # the file is closed: its table is dropped, the next open loads it again
	wus=$("$HELPERS/fs-timing" first "$mnt/blobs/sha256-${hex[$mib]}")
	drop_caches
	h=$(ms_of openssl dgst -sha256 "$o")
	[ "$us" -gt "$worst" ] && worst=$us
	first_rows="$first_rows| open to first byte, $mib MiB blob | $(awk -v u="$us" -v w="$wus" 'BEGIN {printf "%.2f ms cold, %.2f ms warm", u / 1000, w / 1000}') | $h ms (openssl dgst -sha256, cold) | $(ratio "$us" $((h * 1000))) | <= 5 ms |
"
done
rss=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")

# sequential, cold, with -o backing=buffered (kernel read-ahead on the object,
# drop-behind) instead of O_DIRECT, against the same native reads
fusermount3 -u "$mnt"
"$AGFS" -o backing=buffered "$W/store" "$mnt" || { echo "agfs did not mount"; exit 1; }
bpid=$(pgrep -f -x "$AGFS -o backing=buffered $W/store $mnt")
cold_seq "$bpid"
nb=$NATIVE_MS ab=$AGFS_MS bcpu_ms=$CPU_MS

echo "| measure | agfs | reference | ratio | goal |"
echo "|---|---|---|---|---|"
echo "| sequential read 1 GiB, cold (median of $RUNS) | $ac ms | $nc ms (cat of the object) | $(ratio "$nc" "$ac") | >= 0.8 |"
echo "| sequential read 1 GiB, cold, -o backing=buffered (median of $RUNS) | $ab ms | $nb ms (cat of the object) | $(ratio "$nb" "$ab") | >= 0.8 |"
echo "| sequential read 1 GiB, warm (median of $RUNS) | $aw ms | $nw ms (cat of the object) | $(ratio "$nw" "$aw") | >= 0.9 |"
echo "| 2000 random 4 KiB preads, cold | $((ar / 1000)) ms | $((nr / 1000)) ms (pread of the object) | $(ratio "$nr" "$ar") | - |"
printf '%s' "$first_rows"
echo "| daemon peak RSS | $rss MiB | - | - | <= 64 MiB |"
echo
echo "Ratios are reference time / agfs time (higher is better) except open to first byte"
echo "(agfs time / hashing time).  Worst open to first byte: $(awk -v u="$worst" 'BEGIN {printf "%.2f", u / 1000}') ms."
echo "agfs: 64 KiB chunks, O_DIRECT backing reads, 1 MiB requests, read_ahead_kb 1024, 8 threads;"
echo "daemon CPU for the last cold 1 GiB read: ${cpu_ms} ms (O_DIRECT), ${bcpu_ms} ms (backing=buffered);"
echo " $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end."
