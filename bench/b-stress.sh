#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# bench/b-stress.sh: the long form of tests/t1170-fs-stress.sh (fsx-style
# readers comparing every byte with the source while imports, switches and
# gc run).  Run by bench/run.sh with AGFS_BUILD set; needs root and
# /dev/fuse.  BENCH_STRESS_MB (default 2048), BENCH_STRESS_SECS (default
# 300), BENCH_STRESS_READERS (default 16).  Prints a Markdown table.
set -u
here=$(cd "$(dirname "$0")" && pwd)
export AGFS_STRESS_MB=${BENCH_STRESS_MB:-2048}
export AGFS_STRESS_SECS=${BENCH_STRESS_SECS:-300}
export AGFS_STRESS_READERS=${BENCH_STRESS_READERS:-16}
out=$(bash "$here/../tests/t1170-fs-stress.sh" 2>&1)
rc=$?
if [ $rc -eq 0 ] && grep -q '^1\.\.0 # skip' <<<"$out"; then
	echo "skip: $(sed -n 's/^1\.\.0 # skip //p' <<<"$out")"
	exit 0
fi
line=$(echo "$out" | grep -m1 '^# bytes ')
echo "| data | readers | time | bytes compared | reads | mismatches | errors | store changes | result |"
echo "|---|---|---|---|---|---|---|---|---|"
set -- $line
echo "| $AGFS_STRESS_MB MiB | $AGFS_STRESS_READERS | $AGFS_STRESS_SECS s | $(( ${3:-0} / 1048576 )) MiB | ${5:-?} | ${7:-?} | ${9:-?} | ${12:-?} | $([ $rc -eq 0 ] && echo pass || echo FAIL) |"
[ $rc -eq 0 ] || echo "$out" | grep '^not ok\|^# fs-stress' | sed 's/^/    /'
exit $rc
