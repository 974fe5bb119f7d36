#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A damaged index gives an error, never a crash (issue 11 #4): two bytes
# (ff ff at offset 12, the page's lower bound) of the first branch page of
# index/data.mdb, then random two-byte damage: agstore ls, cat, fsck and
# gc --dry-run each exit with a clear error (or succeed), never die of a
# signal (exit status 128 + N).
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-tools.sh"
need_agstore
need_cmd od awk dd

S=$T/store
"$AGSTORE" --store "$S" init >/dev/null || bail "cannot init a store"
# enough records for LMDB to need branch pages
for i in $(seq 1 120); do
	tools_model "$T/t1" "registry.ollama.ai/library/m$i/latest" 3000 >/dev/null
done
tools_gen "$S" "$T/t1" --chunk 4096 >/dev/null || bail "cannot write a generation"
hex=$(tools_weights "$T/t1" registry.ollama.ai/library/m7/latest)
cp "$S/index/data.mdb" "$T/data.mdb.good"
size=$(stat -c %s "$T/data.mdb.good")
npages=$((size / 4096))

# first page (4096 bytes) whose flags (u16 at offset 10) say P_BRANCH
branch=$(od -v -A n -t u2 -w4096 "$T/data.mdb.good" | awk '$6 % 2 == 1 && NR > 2 {print NR - 1; exit}')
[ -n "$branch" ] || bail "no branch page in index/data.mdb"
diag "first branch page: $branch of $npages"

# run_tools TAG: every tool on the damaged store; the worst exit status is
# left in $worst, whether any said "index is damaged" in $said.
run_tools() {
	local tag=$1 rc
	worst=0 said=0
	for cmd in "ls" "ls --all" "cat $hex" "fsck --jobs 4" "gc --dry-run" "versions" "gc --keep 100" "activate 1"; do
		# shellcheck disable=SC2086 # $cmd is words
		"$AGSTORE" --store "$S" $cmd >/dev/null 2>"$T/err.$tag"
		rc=$?
		[ $rc -gt $worst ] && worst=$rc
		if [ $rc -ge 128 ]; then
			diag "$tag: agstore $cmd died of signal $((rc - 128))"
		fi
		grep -q "index is damaged" "$T/err.$tag" && said=1
		if [ $rc -ne 0 ] && [ $rc -lt 128 ] && [ "$(wc -l <"$T/err.$tag")" -lt 1 ]; then
			diag "$tag: agstore $cmd failed ($rc) without a word"
			worst=255
		fi
	done
}

cp "$T/data.mdb.good" "$S/index/data.mdb"
printf '\xff\xff' | dd of="$S/index/data.mdb" bs=1 seek=$((branch * 4096 + 12)) conv=notrunc 2>/dev/null
run_tools branch
ok $((worst >= 128)) "ff ff in the first branch page: no tool crashes (worst exit $worst)"
ok $((said == 0)) "and the error says the store's index is damaged"
diag "$(cat "$T"/err.branch)"

crashed=0
for trial in $(seq 1 25); do
	cp "$T/data.mdb.good" "$S/index/data.mdb"
	page=$((2 + RANDOM % (npages - 2)))
	off=$((16 + RANDOM % 4000))
	# shellcheck disable=SC2059 # the format is two \xHH escapes made here
	printf "\\x$(printf %02x $((RANDOM % 256)))\\x$(printf %02x $((RANDOM % 256)))" |
		dd of="$S/index/data.mdb" bs=1 seek=$((page * 4096 + off)) conv=notrunc 2>/dev/null
	run_tools "r$trial"
	if [ $worst -ge 128 ]; then
		crashed=$((crashed + 1))
		diag "trial $trial: page $page offset $off: a tool crashed"
	fi
done
is $crashed 0 "25 random two-byte damages: no tool crashes"

cp "$T/data.mdb.good" "$S/index/data.mdb"
"$AGSTORE" --store "$S" fsck >"$T/out" 2>&1
rc=$?
[ $rc -eq 0 ] || while read -r l; do diag "$l"; done <"$T/out"
ok $rc "the undamaged index checks clean again: no tool removed an object"
done_testing
