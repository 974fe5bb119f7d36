#!/bin/bash
# shellcheck disable=SC2154 # $rc is set by run_fail (tests/lib.sh)
# SPDX-License-Identifier: Apache-2.0
# agstore fsck and gc under faults (issue 11 #3, #10; issue 10 #4):
# - fsck with many threads and few free LMDB reader slots checks everything
#   and reports no false corruption;
# - damaged blob records do not stop fsck or gc: every one is reported, the
#   rest is checked (fsck) or collected (gc), exit status 1;
# - a generation made after audited commits began that no audit record names
#   is reported by fsck;
# - an object that cannot be read (EACCES, agstore run by the store's
#   non-root owner) is "unchecked": fsck and status exit 4, not 1, unless
#   something checked was wrong.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-tools.sh"
need_agstore
FAULTS=$HELPERS/store-faults
[ -x "$FAULTS" ] || skip_all "the store-faults helper is not built ($FAULTS)"

S=$T/store
"$AGSTORE" --store "$S" init >/dev/null || bail "cannot init a store"
for i in $(seq 1 12); do
	tools_model "$T/t1" "registry.ollama.ai/library/m$i/latest" 3000000 >/dev/null
done
tools_gen "$S" "$T/t1" --chunk 4096 >/dev/null || bail "cannot write a generation"
nobj=$(find "$S/objects" -type f | wc -l)

# --- reader slots: 8 in the table, 7 held by another process ---
rm -f "$S/index/lock.mdb"
mkfifo "$T/hold.in"
"$FAULTS" readers "$S" 8 7 <"$T/hold.in" >"$T/hold.out" 2>&1 &
hpid=$!
exec 7>"$T/hold.in" # the holder keeps its slots until this closes
for _ in $(seq 1 100); do
	grep -q ready "$T/hold.out" && break
	sleep 0.1
done
is "$(cat "$T/hold.out")" ready "another process holds 7 of 8 reader slots"
for run in 1 2; do
	"$AGSTORE" --store "$S" fsck --jobs 64 >"$T/out" 2>"$T/err"
	ok $? "run $run: fsck --jobs 64 with 1 free reader slot exits 0"
	grep -q "^fsck: $nobj objects .* 0 corrupt, 0 missing" "$T/out"
	ok $? "run $run: every object checked, no false corruption"
	diag "$(grep "^fsck:" "$T/out")"
done
exec 7>&-
wait $hpid

"$AGSTORE" --store "$S" fsck --jobs 256 >"$T/out" 2>&1
ok $? "fsck --jobs 256 on a healthy store exits 0"

# generation 2 drops m9 (its blobs become garbage for gc below), m3 stays
rm -rf "$T/t2"
cp -r "$T/t1" "$T/t2"
rm "$T/t2/manifests/registry.ollama.ai/library/m9/latest"
tools_gen "$S" "$T/t2" --chunk 4096 >/dev/null || bail "cannot write generation 2"
nobj=$(find "$S/objects" -type f | wc -l) # generation 2's catalog is one more object

# --- damaged blob records: fsck goes on ---
w3=$(tools_weights "$T/t1" registry.ollama.ai/library/m3/latest)
w9=$(tools_weights "$T/t1" registry.ollama.ai/library/m9/latest)
"$FAULTS" damage-record "$S" "$w3" && "$FAULTS" damage-record "$S" "$w9"
ok $? "two blob records damaged"
run_fail "$AGSTORE" --store "$S" fsck
is "$rc" 1 "fsck exits 1"
grep -q "$w3.*fails its own check" "$T/out" && grep -q "$w9.*fails its own check" "$T/out"
ok $? "fsck names both damaged records"
grep -q "^fsck: $((nobj - 2)) objects .* 2 corrupt, 0 missing, 0 stray, 0 dangling" "$T/out"
ok $? "and checks every other object"
is "$(tail -1 "$S/audit.log" | jq -c '[.event, .corrupt]')" '["FSCK",2]' "the audit record counts both"

# --- damaged blob records: gc goes on ---
run_fail "$AGSTORE" --store "$S" gc --keep 0
is "$rc" 1 "gc with damaged records exits 1"
grep -q "$w3" "$T/out" && grep -q "$w9" "$T/out"
ok $? "gc names both damaged records"
[ ! -e "$(tools_object "$S" "$w9")" ]
ok $? "the unreferenced blob with a damaged record is collected"
[ -e "$(tools_object "$S" "$w3")" ]
ok $? "the referenced one is kept"
"$AGSTORE" --store "$S" --json gc --dry-run >"$T/dry" 2>/dev/null
is "$(jq -c '.removed_generations' "$T/dry")" "[]" "generation 1 was removed"

# --- generations without their audit record ---
g=$("$FAULTS" audited-gen "$S")
ok $? "an audited commit makes generation $g"
tools_gen "$S" "$T/t2" --chunk 4096 >/dev/null || bail "cannot write a generation"
run_fail "$AGSTORE" --store "$S" fsck
grep -q "^unaudited *generation $((g + 1)): no audit record names this generation" "$T/out"
ok $? "fsck reports the later generation that no audit record names"
! grep -q "generation $g:" "$T/out"
ok $? "but not the audited one"

# --- objects replaced by a FIFO and a symlink: tampering, no hang ---
w5=$(tools_weights "$T/t1" registry.ollama.ai/library/m5/latest)
w6=$(tools_weights "$T/t1" registry.ollama.ai/library/m6/latest)
rm -f "$(tools_object "$S" "$w5")" "$(tools_object "$S" "$w6")"
mkfifo "$(tools_object "$S" "$w5")"
ln -s /etc/passwd "$(tools_object "$S" "$w6")"
timeout 60 "$AGSTORE" --store "$S" fsck >"$T/out" 2>"$T/err"
rc=$?
is "$rc" 1 "fsck with a FIFO and a symlink for objects finishes and exits 1"
grep -q "^corrupt .*$w5" "$T/out" && grep -q "^corrupt .*$w6" "$T/out"
ok $? "both are reported as corrupt (tampering)"
timeout 20 "$AGSTORE" --store "$S" cat "$w5" >/dev/null 2>"$T/err"
rc=$?
ok $((rc == 0 || rc >= 124)) "agstore cat of the FIFO fails at once (exit $rc): $(cat "$T/err")"

# --- an object that cannot be read: could not check, exit 4, not 1 ---
# the store owned by nobody, who runs agstore; one object made unreadable
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
	U=$T/unreadable
	mkdir -p "$U" && chmod 755 "$T" "$U"
	"$AGSTORE" --store "$U/store" init >/dev/null || bail "cannot init a store"
	tools_model "$U/t" registry.ollama.ai/library/u1/latest 100000 >/dev/null
	tools_model "$U/t" registry.ollama.ai/library/u2/latest 100000 >/dev/null
	tools_gen "$U/store" "$U/t" >/dev/null || bail "cannot write a generation"
	chown -R nobody "$U/store"
	as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$AGSTORE" --store "$U/store" "$@"; }
	u1=$(tools_weights "$U/t" registry.ollama.ai/library/u1/latest)
	u2=$(tools_weights "$U/t" registry.ollama.ai/library/u2/latest)
	chmod 000 "$(tools_object "$U/store" "$u1")"
	as_nobody fsck >"$T/out" 2>"$T/err"
	is "$?" 4 "fsck with one object it cannot read exits 4 (could not check), not 1"
	grep -q "could not check 1 object of $U/store; nothing it checked was wrong" "$T/err"
	ok $? "saying so: $(cat "$T/err")"
	grep -q "^unchecked .*$u1: Permission denied" "$T/out"
	ok $? "naming the object and the reason"
	as_nobody status >"$T/out" 2>"$T/err"
	is "$?" 4 "status after it exits 4"
	grep -q "INCOMPLETE: 1 could not be checked" "$T/out" && ! grep -q PROBLEMS "$T/out"
	ok $? "and says the last fsck was incomplete, not that it found problems"
	as_nobody --json status | jq -e '.fsck_problems == false and .fsck_incomplete == true' >/dev/null
	ok $? "status --json: fsck_incomplete, not fsck_problems"
	# a corrupt object besides: that is a verdict (exit 1)
	obj2=$(tools_object "$U/store" "$u2")
	printf 'X' | dd of="$obj2" bs=1 seek=4096 conv=notrunc 2>/dev/null
	as_nobody fsck >"$T/out" 2>"$T/err"
	is "$?" 1 "with a corrupt object as well, fsck exits 1"
	as_nobody status >/dev/null 2>&1
	is "$?" 1 "and so does status"
else
	for _ in 1 2 3 4 5 6 7 8; do
		skip "an unreadable object needs root, the user nobody and setpriv"
	done
fi
done_testing
