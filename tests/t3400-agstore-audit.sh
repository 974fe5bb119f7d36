#!/bin/bash
# shellcheck disable=SC2154 # $rc is set by run_fail (tests/lib.sh)
# SPDX-License-Identifier: Apache-2.0
# agstore audit: the log printed readably, --since, and `audit verify` naming
# the first line that was edited, removed or reordered; a log that cannot be
# read is "could not check" (exit 4), never "intact".
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
