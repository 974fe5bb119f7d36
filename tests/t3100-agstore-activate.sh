#!/bin/bash
# shellcheck disable=SC2154 # $rc is set by run_fail (tests/lib.sh)
# SPDX-License-Identifier: Apache-2.0
# agstore activate, rollback, rm: which generation is served, and the audit
# events (with the operator) each writes.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-tools.sh"
need_agstore

S=$T/store
A=registry.ollama.ai/library/alpha/latest
B=registry.ollama.ai/library/beta/latest
C=registry.ollama.ai/library/gamma/1b
current() { "$AGSTORE" --store "$S" versions --json | jq -r '.[] | select(.current) | .id'; }
last_event() { tail -1 "$S/audit.log"; }

"$AGSTORE" --store "$S" init >/dev/null || bail "cannot init a store"
tools_model "$T/t1" $A 3000 >/dev/null
tools_model "$T/t1" $B 3000 >/dev/null
tools_model "$T/t2" $A 3000 >/dev/null
tools_model "$T/t2" $B 3000 >/dev/null
tools_model "$T/t2" $C 3000 >/dev/null
tools_gen "$S" "$T/t1" --label one >/dev/null
tools_gen "$S" "$T/t2" --label two >/dev/null
is "$(current)" 2 "generation 2 is current after two imports"

"$AGSTORE" --store "$S" --operator carol activate 1 >"$T/out"
ok $? "activate 1"
is "$(current)" 1 "generation 1 is current"
grep -q "generation 1 is current (was 2)" "$T/out"
ok $? "activate reports the switch"
is "$(last_event | jq -r '.event,.operator,.generation,.previous' | tr '\n' ' ')" \
	"GENERATION_ACTIVATED carol 1 2 " "activate writes GENERATION_ACTIVATED with the operator"

"$AGSTORE" --store "$S" --operator dave rollback >"$T/out"
ok $? "rollback"
is "$(current)" 2 "rollback returns to generation 2"
is "$(last_event | jq -r '.event,.operator,.generation,.how' | tr '\n' ' ')" \
	"GENERATION_ACTIVATED dave 2 rollback " "rollback is audited with its operator"
"$AGSTORE" --store "$S" rollback --operator dave >/dev/null
is "$(current)" 1 "a second rollback goes back again"

n=$(wc -l <"$S/audit.log")
"$AGSTORE" --store "$S" activate 1 >"$T/out"
ok $? "activating the current generation succeeds"
grep -q "already current" "$T/out"
ok $? "and says it is already current"
is "$(wc -l <"$S/audit.log")" "$n" "and changes nothing (no audit event)"

run_fail "$AGSTORE" --store "$S" activate 9
is "$rc" 1 "activate of a missing generation fails with 1"
is "$(current)" 1 "and leaves the current generation alone"
run_fail "$AGSTORE" --store "$S" activate two
is "$rc" 2 "activate of a non-number is a usage error"
run_fail "$AGSTORE" --store "$S" activate
is "$rc" 2 "activate without N is a usage error"

"$AGSTORE" --store "$S" --json activate 2 >"$T/out"
is "$(jq -c . "$T/out")" '{"current":2,"previous":1,"changed":true}' "activate --json"

# --- rm ---
before=$(jq -c '[.[] | .digest]' <("$AGSTORE" --store "$S" ls --json))
"$AGSTORE" --store "$S" --operator erin rm alpha gamma:1b >"$T/out"
ok $? "rm two models"
is "$(current)" 3 "rm made a new generation 3, now current"
is "$("$AGSTORE" --store "$S" ls --json | jq -r '.[].name' | tr '\n' ' ')" "beta:latest " \
	"generation 3 holds only the other model"
is "$("$AGSTORE" --store "$S" ls 2 --json | jq -c '[.[] | .digest]')" "$before" \
	"generation 2 is unchanged"
is "$("$AGSTORE" --store "$S" ls --json | jq -r '.[0].digest')" \
	"$("$AGSTORE" --store "$S" ls 2 --json | jq -r '.[] | select(.name=="beta:latest") | .digest')" \
	"the kept model is byte-identical (same manifest digest)"
is "$(last_event | jq -c '[.event,.operator,.generation,.from,.models]')" \
	'["MODELS_REMOVED","erin",3,2,["alpha","gamma:1b"]]' "rm writes MODELS_REMOVED with the operator"
"$AGSTORE" --store "$S" versions --json | jq -e '.[2] | .label == "rm alpha:latest gamma:1b" and .operator == "erin"' >/dev/null
ok $? "the new generation is labelled and carries the operator"
"$AGSTORE" --store "$S" rollback >/dev/null
is "$(current)" 2 "rollback after rm brings the models back"
"$AGSTORE" --store "$S" activate 3 >/dev/null

run_fail "$AGSTORE" --store "$S" rm beta nosuch
is "$rc" 1 "rm of a model that is not there fails with 1"
grep -q "has no model nosuch" "$T/err"
ok $? "and names it"
is "$(current)" 3 "and makes no generation"
run_fail "$AGSTORE" --store "$S" rm
is "$rc" 2 "rm without a name is a usage error"
"$AGSTORE" --store "$S" rm --label "drop beta" beta >/dev/null
ok $? "rm --label"
is "$("$AGSTORE" --store "$S" versions --json | jq -r '.[-1].label')" "drop beta" "the label is used"

# Writers wait for the store lock: an activate during a held import still lands.
tools_model "$T/t3" $C 3000 >/dev/null
tools_gen "$S" "$T/t3" --hold 2 --ready "$T/ready" --no-activate >"$T/held" &
for _ in $(seq 50); do [ -e "$T/ready" ] && break; sleep 0.1; done
"$AGSTORE" --store "$S" activate 1 >/dev/null
ok $? "activate waits for the lock of an import in progress"
wait
is "$(current)" 1 "and then switches"
is "$(cat "$T/held")" 5 "the import committed its generation meanwhile"

# No switch and no new generation without its audit record: with audit.log
# unwritable, activate and rm fail and change nothing (they used to commit,
# then fail to audit, and leave the change in place).
if chattr +i "$S/audit.log" 2>/dev/null; then
	before=$(current)
	ngen=$("$AGSTORE" --store "$S" versions --json | jq length)
	run_fail "$AGSTORE" --store "$S" activate 2
	ok $((rc == 0)) "activate fails when its audit record cannot be written"
	is "$(current)" "$before" "and the current generation is unchanged"
	run_fail "$AGSTORE" --store "$S" rm beta
	ok $((rc == 0)) "rm fails when its audit record cannot be written"
	is "$("$AGSTORE" --store "$S" versions --json | jq length)" "$ngen" "and makes no generation"
	chattr -i "$S/audit.log"
	"$AGSTORE" --store "$S" activate 2 >/dev/null
	ok $? "with audit.log writable again, activate works"
	"$AGSTORE" --store "$S" audit verify >/dev/null
	ok $? "and the audit chain is whole"
else
	for i in 1 2 3 4 5 6; do skip "chattr +i is not supported here (needs root on ext4/xfs/btrfs)"; done
fi

# A store with a single generation has nothing to roll back to.
tools_gen "$T/one" "$T/t1" >/dev/null
run_fail "$AGSTORE" --store "$T/one" rollback
is "$rc" 1 "rollback with no previous generation fails with 1"
grep -q "no previous generation" "$T/err"
ok $? "and says why"

done_testing
