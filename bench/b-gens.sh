#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# bench/b-gens.sh: `ls -R` of the mount as generations pile up (issue 13:
# "flat in the number of generations").  For each count in
# BENCH_GENERATIONS (default "50 500") a store with that many generations of
# the same small model, mounted; `ls -R` of each mount and of a plain copy
# of the largest one's tree (native), cold (dentries and inodes dropped,
# so every name is looked up in the daemon again), in interleaved rounds.
#
#   ls -R of the mount, for each count
#   ls -R of versions/ per generation, most vs fewest   (goal: flat, ratio >= 0.8)
#   ls -R of the mount vs of a plain copy of its tree  (for scale)
set -u
. "$(dirname "$0")/lib.sh"
. "$BENCH_SRC/tests/lib-fs.sh"
bench_needs_root
[ -x "$AGFS" ] && [ -x "$MKSTORE" ] || skip "build agfs and tests/helpers first (make all)"
set -- $GENERATIONS
few=$1 many=${!#}

fs_model "$W/tree" bench/gens/m/latest 65536
for n in $GENERATIONS; do
	progress "b-gens: a store with $n generations"
	for ((i = 0; i < n; i++)); do
		"$MKSTORE" "$W/s$n" "$W/tree" >/dev/null || { echo "error: fs-mkstore failed"; exit 1; }
	done
	agfs_mount "$AGFS" "$W/s$n" "$W/m$n" -o metrics=none || { echo "error: agfs did not mount"; exit 1; }
done
cp -r "$W/m$many/." "$W/plain"
entries=$(find "$W/plain" | wc -l)

bench_begin "Stores of one 64 KiB model in $(echo "$GENERATIONS" | sed 's/ /, /g') generations; the plain copy of the" \
	"$many-generation tree has $entries entries."
ls_plain() { cold timed ls.plain ls -R "$W/plain"; }
for n in $GENERATIONS; do
	eval "ls_$n() { cold timed ls.$n ls -R '$W/m$n'; }"
	eval "lsv_$n() { cold timed lsv.$n ls -R '$W/m$n/versions'; }"
done
r_ls() { rotated "$1" ls_plain $(for n in $GENERATIONS; do echo "ls_$n lsv_$n"; done); }
rounds r_ls
for n in $GENERATIONS; do
	awk -v n="$n" '{ print ($1 == "-") ? "-" : $1 / n }' "$W/series/lsv.$n" >"$W/series/per.$n"
	vrow "ls -R of the mount, $n generations, cold" "$(spread "ls.$n" 1000 " ms")"
done
row "ls -R of versions/, per generation, $many vs $few generations" "per.$many" "per.$few" "per generation with $few" "≥ 0.8 (flat)"
row "ls -R of the mount, $many generations, vs a plain copy" "ls.$many" ls.plain "ls -R of the copy" "- (for scale)" abs
bench_end "Times are medians (min–max); ratios are per round."
