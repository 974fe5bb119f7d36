#!/bin/bash
# shellcheck disable=SC2154 # $rc is set by run_fail (tests/lib.sh)
# SPDX-License-Identifier: Apache-2.0
# agstore against a live agfs mount: activate and rollback show up within
# 2 seconds without a remount, versions/ follows rm and gc, versions/N/INFO,
# `diff -r` between two generations, and gc while a reader streams a blob of
# a generation it deletes.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-tools.sh"
need_agstore
need_root_fuse
[ -x "$AGFS" ] || skip_all "agfs is not built ($AGFS)"
need_cmd diff

S=$T/store
M=$T/mnt
A=registry.ollama.ai/library/alpha/latest
B=registry.ollama.ai/library/beta/latest
C=registry.ollama.ai/library/gamma/latest

# until SECONDS CMD...: true as soon as CMD succeeds, false after SECONDS.
until_within() {
	local limit=$1 start now
	shift
	start=$(date +%s%N)
	while :; do
		"$@" && return 0
		now=$(date +%s%N)
		[ $(((now - start) / 1000000)) -gt $((limit * 1000)) ] && return 1
		sleep 0.05
	done
}
current_is() { [ "$(readlink "$M/versions/current")" = "$1" ]; }
served() { [ -f "$M/manifests/$1" ]; }
not_served() { [ ! -e "$M/manifests/$1" ]; }

"$AGSTORE" --store "$S" init >/dev/null || bail "cannot init a store"
tools_model "$T/t1" $A 3000 >/dev/null
tools_model "$T/t1" $B 2097152 >/dev/null
cp -a "$T/t1/." "$T/t2/"
rm -f "$T/t2/manifests/$B"
tools_model "$T/t2" $C 3000 >/dev/null
tools_gen "$S" "$T/t1" --label "2026-Q1" --operator alice >/dev/null
tools_gen "$S" "$T/t2" --label "2026-Q2" --operator bob >/dev/null
WB=$(tools_weights "$T/t1" $B)

# grace=0: the generation served before a switch is not kept for gc's sake
mount_agfs "$S" "$M" -o grace=0 || bail "agfs could not mount $S"
is "$(ls "$M/versions" | tr '\n' ' ')" "1 2 current " "versions/ lists the generations and current"
current_is 2
ok $? "versions/current -> 2"
served $C && not_served $B
ok $? "the mount serves generation 2"

# --- activate, rollback ---
"$AGSTORE" --store "$S" activate 1 >/dev/null
until_within 2 current_is 1
ok $? "after activate 1, versions/current -> 1 within 2 s"
until_within 2 served $B && not_served $C
ok $? "and manifests/ shows generation 1's models"
cmp -s "$M/blobs/sha256-$WB" "$T/t1/blobs/sha256-$WB"
ok $? "a blob of generation 1 reads correctly through the mount"
"$AGSTORE" --store "$S" rollback >/dev/null
until_within 2 current_is 2
ok $? "after rollback, versions/current -> 2 within 2 s"
until_within 2 served $C && not_served $B
ok $? "and manifests/ shows generation 2 again"

# --- INFO and diff -r ---
grep -q "^id: 1$" "$M/versions/1/INFO" && grep -q "^label: 2026-Q1$" "$M/versions/1/INFO" &&
	grep -q "^operator: alice$" "$M/versions/1/INFO"
ok $? "versions/1/INFO shows the generation's metadata"
grep -q "^models: 2$" "$M/versions/2/INFO"
ok $? "versions/2/INFO counts its models"
diff -r "$M/versions/1/manifests" "$M/versions/2/manifests" >"$T/diff"
is "$?" 1 "diff -r versions/1/manifests versions/2/manifests finds differences"
is "$(sort "$T/diff" | sed "s|$M/||")" \
	"$(printf 'Only in versions/1/manifests/registry.ollama.ai/library: beta\nOnly in versions/2/manifests/registry.ollama.ai/library: gamma')" \
	"and shows exactly what the bundle changed"

# --- rm: a new generation appears and becomes current ---
"$AGSTORE" --store "$S" rm alpha >/dev/null
until_within 2 current_is 3
ok $? "after rm, versions/3 appears and is current within 2 s"
until_within 2 not_served $A
ok $? "and the removed model is gone from manifests/"
[ -f "$M/versions/2/manifests/$A" ]
ok $? "while versions/2 still has it"

# --- gc while a reader streams a blob gc deletes ---
exec 7<"$M/versions/1/blobs/sha256-$WB" || bail "cannot open a blob in the mount"
dd bs=65536 count=4 iflag=fullblock status=none <&7 >"$T/part1"
"$AGSTORE" --store "$S" gc --keep 0 >/dev/null
ok $? "gc deletes generations 1 and 2 while a blob of 1 is open in the mount"
[ -e "$(tools_object "$S" "$WB")" ]
ok $? "the open blob's object is kept (the mount leases it)"
cat <&7 >"$T/part2"
exec 7<&-
cat "$T/part1" "$T/part2" | cmp -s - "$T/t1/blobs/sha256-$WB"
ok $? "the reader finishes with the correct bytes"
sleep 1.5
"$AGSTORE" --store "$S" gc --keep 0 >/dev/null
[ ! -e "$(tools_object "$S" "$WB")" ]
ok $? "closed, the blob's object goes at the next gc"
gone() { [ ! -e "$M/versions/1" ] && [ ! -e "$M/versions/2" ]; }
until_within 2 gone
ok $? "versions/ drops the deleted generations within 2 s"
is "$(ls "$M/versions" | tr '\n' ' ')" "3 current " "versions/ lists what is left"

done_testing
