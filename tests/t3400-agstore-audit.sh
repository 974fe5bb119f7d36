#!/bin/bash
# shellcheck disable=SC2154 # $rc is set by run_fail (tests/lib.sh)
# SPDX-License-Identifier: Apache-2.0
# agstore audit: the log printed readably, --since, and `audit verify` naming
# the first line that was edited, removed or reordered, a log cut back past the
# index's last audited commit, deleted, emptied or started again; a log that
# cannot be read is "could not check" (exit 4), never "intact".
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-tools.sh"
need_agstore

S=$T/store
"$AGSTORE" --store "$S" init >/dev/null || bail "cannot init a store"
tools_model "$T/t1" registry.ollama.ai/library/alpha/latest 3000 >/dev/null
tools_model "$T/t2" registry.ollama.ai/library/beta/latest 3000 >/dev/null
tools_gen "$S" "$T/t1" >/dev/null
tools_gen "$S" "$T/t2" >/dev/null
"$AGSTORE" --store "$S" --operator hank activate 1 >/dev/null
"$AGSTORE" --store "$S" --operator hank rollback >/dev/null
sleep 1.1 # the next events carry a later second
split=$(date -u +%Y-%m-%dT%H:%M:%S)
sleep 1.1
"$AGSTORE" --store "$S" --operator ivy rm beta >/dev/null
"$AGSTORE" --store "$S" --operator ivy gc >/dev/null
"$AGSTORE" --store "$S" --operator ivy fsck >/dev/null
n=$(wc -l <"$S/audit.log")
is "$n" 6 "six events in the log"

# --- printing ---
"$AGSTORE" --store "$S" audit >"$T/out"
ok $? "audit"
head -1 "$T/out" | grep -Eq '^ *SEQ +TIME +EVENT +OPERATOR +DETAILS$'
ok $? "audit prints a header"
is "$(tail -n +2 "$T/out" | awk '{print $3}' | tr '\n' ' ')" \
	"STORE_INIT GENERATION_ACTIVATED GENERATION_ACTIVATED MODELS_REMOVED GC FSCK " \
	"one line per event, in order"
grep -Eq '^ +2 +[0-9-]+T[0-9:]+Z +GENERATION_ACTIVATED +hank +generation=1 previous=2 how=activate$' "$T/out"
ok $? "a line shows seq, time, event, operator and the details"
grep -q 'MODELS_REMOVED  *ivy  *generation=3 from=2 models=\["beta"\]' "$T/out"
ok $? "rm's event names the models"
"$AGSTORE" --store "$S" audit --since "$split" >"$T/since"
is "$(tail -n +2 "$T/since" | awk '{print $3}' | tr '\n' ' ')" "MODELS_REMOVED GC FSCK " \
	"--since DATE-TIME keeps the later events"
is "$("$AGSTORE" --store "$S" audit --since 2000-01-01 --json | jq length)" 6 "--since a past date keeps all"
is "$("$AGSTORE" --store "$S" audit --since 2999-12-31 --json | jq length)" 0 "--since a future date keeps none"
is "$("$AGSTORE" --store "$S" audit --json | jq -r '.[3].operator')" ivy "audit --json gives the records"
run_fail "$AGSTORE" --store "$S" audit --since yesterday
is "$rc" 2 "--since with a malformed time is a usage error"
run_fail "$AGSTORE" --store "$S" audit frobnicate
is "$rc" 2 "an unknown audit operand is a usage error"

# --- verify ---
"$AGSTORE" --store "$S" audit verify >"$T/out"
ok $? "audit verify of an intact log exits 0"
grep -q "6 records, hash chain intact" "$T/out"
ok $? "and says so"

# Each damage on a copy of the store; verify must fail naming the line.
damaged() { # damaged NAME: a fresh copy of the store in $T/NAME
	rm -rf "${T:?}/$1"
	cp -a "$S" "$T/$1"
}
damaged edited
sed -i '3s/"hank"/"mallory"/' "$T/edited/audit.log"
run_fail "$AGSTORE" --store "$T/edited" audit verify
is "$rc" 1 "verify fails on an edited line"
grep -q "audit.log line 3: " "$T/err"
ok $? "and names line 3"
is "$(wc -l <"$T/err")" 1 "in one sentence"

damaged deleted
sed -i '4d' "$T/deleted/audit.log"
run_fail "$AGSTORE" --store "$T/deleted" audit verify
is "$rc" 1 "verify fails on a deleted line"
grep -q "audit.log line 4: " "$T/err"
ok $? "and names the place of the removed line"

damaged swapped
awk 'NR == 3 { h = $0; next } NR == 4 { print; print h; next } { print }' "$S/audit.log" >"$T/swapped/audit.log"
is "$(sort "$T/swapped/audit.log" | sha256sum)" "$(sort "$S/audit.log" | sha256sum)" "(the swapped copy has every line)"
run_fail "$AGSTORE" --store "$T/swapped" audit verify
is "$rc" 1 "verify fails on two swapped lines"
grep -q "audit.log line 3: " "$T/err"
ok $? "and names line 3"

damaged first
sed -i '1s/"STORE_INIT"/"STORE_INIT "/' "$T/first/audit.log"
run_fail "$AGSTORE" --store "$T/first" audit verify
is "$rc" 1 "verify fails on an edited first line"
grep -q "audit.log line 1: " "$T/err"
ok $? "and names line 1"

"$AGSTORE" --store "$S" --json audit verify | jq -e '.ok == true and .lines == 6' >/dev/null
ok $? "audit verify --json"

# --- what the chain alone cannot show: the index's anchor ---
# The index keeps the seq and end offset of its last audited commit's record
# (line 4, MODELS_REMOVED; GC and FSCK are plain appends).
is "$(sed -n 4p "$S/audit.log" | jq -r '.event + " " + (.index_txn | type)')" \
	"MODELS_REMOVED number" "(line 4 is the last audited commit's record)"
# broken NAME PATTERN WHAT: audit verify of copy NAME exits 1, its error
# matching PATTERN
broken() {
	run_fail "$AGSTORE" --store "$T/$1" audit verify
	is "$rc" 1 "verify fails when $3"
	grep -q "$2" "$T/err"
	ok $? "  saying so: $(cat "$T/err")"
}

damaged tail
head -n 3 "$S/audit.log" >"$T/tail/audit.log"
broken tail "audit.log line 4: the log is [0-9]* bytes, shorter than the [0-9]* it had after line 4, .*lines were removed from its end" \
	"lines were removed from the end, back past the last audited commit"

damaged rewritten
head -n 3 "$S/audit.log" >"$T/rewritten/audit.log"
"$AGSTORE" --store "$T/rewritten" --operator ivy fsck >/dev/null 2>&1
"$AGSTORE" --store "$T/rewritten" --operator ivy fsck >/dev/null 2>&1
is "$(wc -l <"$T/rewritten/audit.log")" 5 "(cut to 3 lines, then two plain appends)"
broken rewritten "audit.log line 4: line 4 is not the record of the index's last audited commit" \
	"the log was cut and written again"

damaged laundered
head -n 3 "$S/audit.log" >"$T/laundered/audit.log"
"$AGSTORE" --store "$T/laundered" --operator ivy activate 1 >/dev/null
ok $? "an audited commit on a log that lost the index's anchor still works"
is "$(sed -n 4p "$T/laundered/audit.log" | jq -c '[.event, .anchor_lost.line]')" \
	'["GENERATION_ACTIVATED",4]' "its record says which record the log had lost"
broken laundered "audit.log line 4: it was written when the log no longer held line 4, .*records were removed before it" \
	"the index's anchor moved on after the loss"

damaged missing
rm "$T/missing/audit.log"
run_fail "$AGSTORE" --store "$T/missing" audit verify
is "$rc" 1 "verify fails when audit.log is missing"
is "$(cat "$T/err")" "agstore: $T/missing/audit.log: the file is missing, but every store's log starts with its STORE_INIT record: it was deleted." \
	"in one sentence naming the file"
"$AGSTORE" --store "$T/missing" --json audit verify 2>/dev/null | jq -e '.ok == false' >/dev/null
ok $? "--json says ok: false"
run_fail "$AGSTORE" --store "$T/missing" status
is "$rc" 1 "agstore status exits 1"
grep -q "^audit chain:  BROKEN in audit.log: the file is missing" "$T/out"
ok $? "and shows the chain as broken"

damaged empty
: >"$T/empty/audit.log"
broken empty "audit.log: the file is empty" "audit.log is empty"

damaged restarted
rm "$T/restarted/audit.log"
"$AGSTORE" --store "$T/restarted" --operator ivy fsck >/dev/null 2>&1
is "$(jq -r .seq "$T/restarted/audit.log")" 1 "(a deleted log starts again at seq 1 with the next append)"
broken restarted "audit.log line 1: line 1 is a FSCK record, not the STORE_INIT every store's log starts with" \
	"the log was deleted and started again"

# A log that cannot be read is not an intact one: read(2) fails on
# audit.log (EISDIR here; EIO from a failing disk takes the same path).
damaged unreadable
rm "$T/unreadable/audit.log"
mkdir "$T/unreadable/audit.log"
run_fail "$AGSTORE" --store "$T/unreadable" audit verify
is "$rc" 4 "verify of a log that cannot be read exits 4 (could not check), not 0"
grep -q "cannot verify $T/unreadable/audit.log: Is a directory" "$T/err"
ok $? "naming the file and the reason: $(cat "$T/err")"
! grep -q "intact" "$T/out"
ok $? "and does not call it intact"
run_fail "$AGSTORE" --store "$T/unreadable" status
is "$rc" 4 "agstore status exits 4 too"

done_testing
