#!/bin/bash
# make bench: runs every bench/b-*.sh and prints their Markdown tables, with
# the machine they ran on.  Figures are ratios against a reference measured in
# the same run (see each script).
set -u
here=$(cd "$(dirname "$0")" && pwd)
echo "## agfs benchmarks — $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "Machine: $(nproc) cores, $(free -g | awk '/^Mem/ {print $2}') GiB RAM," \
	"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)," \
	"file system $(df -T "${TMPDIR:-/tmp}" | awk 'NR==2 {print $2}')"
echo
rc=0
for b in "$here"/b-*.sh; do
	[ -e "$b" ] || continue
	echo "### $(basename "$b" .sh)"
	bash "$b" || { echo "(benchmark $(basename "$b") failed)"; rc=1; }
	echo
done
exit $rc
