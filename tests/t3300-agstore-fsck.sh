#!/bin/bash
# shellcheck disable=SC2154 # $rc is set by run_fail (tests/lib.sh)
# SPDX-License-Identifier: Apache-2.0
# agstore fsck: a clean store passes; an injected bit flip, a deleted object,
# a stray file and a generation naming a blob without a record are each found
# and named; the result is recorded (status) and audited.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-tools.sh"
need_agstore

S=$T/store
A=registry.ollama.ai/library/alpha/latest
B=registry.ollama.ai/library/beta/latest
C=registry.ollama.ai/library/gamma/latest
"$AGSTORE" --store "$S" init >/dev/null || bail "cannot init a store"
tools_model "$T/t1" $A 1000000 >/dev/null
tools_model "$T/t1" $B 70000 >/dev/null
tools_model "$T/t1" $C 5000 >/dev/null
for i in 1 2 3 4 5 6; do tools_model "$T/t1" "registry.ollama.ai/library/x$i/latest" 2000 >/dev/null; done
tools_gen "$S" "$T/t1" >/dev/null || bail "cannot write a generation"
nobj=$(find "$S/objects" -type f | wc -l)

# --- clean ---
"$AGSTORE" --store "$S" --operator gina fsck >"$T/out" 2>"$T/err"
ok $? "fsck of a clean store exits 0"
grep -q "^fsck: $nobj objects .* 0 corrupt, 0 missing, 0 stray, 0 dangling$" "$T/out"
ok $? "fsck reports every object checked and no problem"
! grep -q '^fsck: [0-9]*/' "$T/err"
ok $? "no progress output when stderr is not a terminal"
is "$(tail -1 "$S/audit.log" | jq -c '[.event, .operator, .ok, .objects]')" "[\"FSCK\",\"gina\",true,$nobj]" \
	"fsck writes its result to the audit log with the operator"
"$AGSTORE" --store "$S" status --json >"$T/st"
is "$(jq -c '.last_fsck | [.ok, .objects]' "$T/st")" "[true,$nobj]" "status shows the last fsck"

if command -v script >/dev/null; then
	script -qec "'$AGSTORE' --store '$S' fsck --jobs 2" /dev/null >"$T/tty" 2>&1
	grep -q "fsck: $nobj/$nobj objects" "$T/tty"
	ok $? "progress is shown on a terminal"
else
	skip "script(1) is not installed: progress on a terminal not tested"
fi

# --- damage ---
WA=$(tools_weights "$T/t1" $A)
WB=$(tools_weights "$T/t1" $B)
WC=$(tools_weights "$T/t1" $C)
objA=$(tools_object "$S" "$WA")
chmod u+w "$objA"
# One bit flipped in 4 KiB block 112 (7 * 16: 64 KiB into the blob 7 times).
off=$((7 * 65536 + 1234))
byte=$(od -An -tu1 -j $off -N1 "$objA" | tr -d ' ')
printf "\\x$(printf %02x $((byte ^ 1)))" | dd of="$objA" bs=1 seek=$off conv=notrunc status=none
rm -f "$(tools_object "$S" "$WB")"
stray_hex=$(printf 'not imported' | sha256sum | cut -d' ' -f1)
mkdir -p "$S/objects/sha256/${stray_hex:0:2}"
printf 'not imported' >"$(tools_object "$S" "$stray_hex")"
"$MKGEN" --store "$S" --del-record "$WC" || bail "cannot drop a record"

run_fail "$AGSTORE" --store "$S" fsck
is "$rc" 1 "fsck of a damaged store exits 1"
grep -q "^corrupt  *objects/sha256/${WA:0:2}/$WA: .*(chunk 112)$" "$T/out"
ok $? "the bit flip is reported as corrupt, with the object and the chunk"
grep -q "^missing  *objects/sha256/${WB:0:2}/$WB: " "$T/out"
ok $? "the deleted object is reported as missing"
grep -q "^stray  *objects/sha256/${stray_hex:0:2}/$stray_hex: " "$T/out"
ok $? "the stray file is reported"
grep -q "^dangling  generation 1 model gamma:latest: layer sha256:$WC: " "$T/out"
ok $? "the generation pointing at a blob without a record is reported"
grep -q "^stray  *objects/sha256/${WC:0:2}/$WC: " "$T/out"
ok $? "(and the object left without its record is a stray)"
grep -q "1 corrupt, 1 missing, 2 stray, 1 dangling$" "$T/out"
ok $? "the summary counts each kind"
grep -q "^agstore: fsck found 5 problems in $S.$" "$T/err"
ok $? "one sentence on stderr"
is "$(tail -1 "$S/audit.log" | jq -c '[.event, .ok, .corrupt, .missing, .stray, .dangling]')" \
	'["FSCK",false,1,1,2,1]' "the failed result is audited"
"$AGSTORE" --store "$S" status >"$T/st"
grep -q "^last fsck: .*PROBLEMS: 1 corrupt, 1 missing, 2 stray, 1 dangling$" "$T/st"
ok $? "status shows the last fsck's problems"

"$AGSTORE" --store "$S" fsck --jobs 1 --json >"$T/j1" 2>/dev/null
is "$?" 1 "fsck --jobs 1 --json exits 1 too"
is "$(jq -r '[.problems[].kind] | sort | join(" ")' "$T/j1")" "corrupt dangling missing stray stray" \
	"fsck --json lists the problems"
is "$(jq -r '.problems[] | select(.kind=="corrupt") | .chunk' "$T/j1")" 112 "--json names the bad chunk"
run_fail "$AGSTORE" --store "$S" fsck --jobs 0
is "$rc" 2 "fsck --jobs 0 is a usage error"

# --- with the lock held by an import: still checks, says it could not record ---
tools_model "$T/t2" registry.ollama.ai/library/delta/latest 3000 >/dev/null
tools_gen "$S" "$T/t2" --hold 3 --ready "$T/importing" >/dev/null &
imp=$!
for _ in $(seq 50); do [ -e "$T/importing" ] && break; sleep 0.1; done
run_fail "$AGSTORE" --store "$S" fsck
is "$rc" 1 "fsck beside an import still finds the damage"
grep -q "held the store lock: stray and dangling checks were skipped and the result was not recorded" "$T/out"
ok $? "and says what it could not do"
grep -q "1 corrupt, 1 missing, 0 stray, 0 dangling$" "$T/out"
ok $? "(the import's objects in progress are not taken for strays)"
wait $imp

# --- beside gc: blobs gc deletes while fsck runs are not damage ---
S2=$T/store2
for n in 1 2 3 4; do
	tools_model "$T/g$n" "registry.ollama.ai/library/g$n/latest" 2000000 >/dev/null
	tools_gen "$S2" "$T/g$n" >/dev/null
done
"$AGSTORE" --store "$S2" fsck --jobs 1 >"$T/fsck2" 2>&1 &
fsck_pid=$!
"$AGSTORE" --store "$S2" gc --keep 0 >/dev/null
ok $? "gc runs beside fsck"
wait $fsck_pid
ok $? "fsck beside gc reports no problem"
"$AGSTORE" --store "$S2" fsck >/dev/null 2>&1
ok $? "and the store is clean afterwards"

done_testing
