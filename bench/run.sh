#!/bin/bash
# make bench: runs the bench/b-*.sh scripts and prints their Markdown tables,
# with the machine they ran on and its load at start and end.  Figures are
# ratios against references measured in the same run, in interleaved rounds
# (bench/lib.sh says how, and which BENCH_* variables set sizes and rounds).
#
#   BENCH_QUICK=1        small sizes, 2 rounds: checks the harness end to end
#   BENCH_ONLY="fs gens" only these scripts (b-fs.sh, b-gens.sh)
#
# The format-1 build (commit 16c74ac, in a temporary git worktree) is made
# once for the whole run and removed at the end.
set -u
here=$(cd "$(dirname "$0")" && pwd)
if [ -n "${BENCH_QUICK:-}" ] && [ "$BENCH_QUICK" != 0 ]; then
	export BENCH_BUNDLE_MIB=${BENCH_BUNDLE_MIB:-64} BENCH_PULL_MIB=${BENCH_PULL_MIB:-64}
	export BENCH_LOAD_RUNS=${BENCH_LOAD_RUNS:-2}
	export BENCH_STRESS_MB=${BENCH_STRESS_MB:-64} BENCH_STRESS_SECS=${BENCH_STRESS_SECS:-20}
	export BENCH_STRESS_READERS=${BENCH_STRESS_READERS:-4}
fi
v1tmp=
if [ -z "${BENCH_V1_DIR:-}" ]; then
	v1tmp=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/agfs-bench-v1.XXXXXX")
	export BENCH_V1_DIR=$v1tmp/v1
	trap 'git -C "$here/.." worktree remove --force "$BENCH_V1_DIR" 2>/dev/null; rm -rf "$v1tmp"' EXIT
fi

t0=$(date +%s)
echo "## agfs benchmarks — $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "Machine: $(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB RAM," \
	"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)," \
	"file system $(df -T "${BENCH_TMP:-${TMPDIR:-/tmp}}" | awk 'NR==2 {print $2}');" \
	"load average $(cut -d' ' -f1-3 /proc/loadavg) at start."
echo
# issue 12/13 tables first, then the rest in name order
order="fs import gens"
for b in "$here"/b-*.sh; do
	n=$(basename "$b" .sh)
	n=${n#b-}
	case " $order " in *" $n "*) ;; *) order="$order $n" ;; esac
done
rc=0
for n in ${BENCH_ONLY:-$order}; do
	b=$here/b-$n.sh
	[ -e "$b" ] || { echo "### b-$n: no such benchmark"; rc=1; continue; }
	echo "### b-$n"
	echo
	bash "$b" || { echo "(benchmark b-$n failed)"; rc=1; }
	echo
done
echo "Load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; the whole run took $(($(date +%s) - t0)) s."
exit $rc
