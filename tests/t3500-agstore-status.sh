#!/bin/bash
# shellcheck disable=SC2154 # $rc is set by run_fail (tests/lib.sh)
# SPDX-License-Identifier: Apache-2.0
# agstore status: current generation, staleness (exit 3, from the created time
# recorded in the generation, not the system clock), size, objects, last fsck.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-tools.sh"
need_agstore

S=$T/store
"$AGSTORE" --store "$S" init >/dev/null || bail "cannot init a store"
run_fail "$AGSTORE" --store "$S" status
is "$rc" 3 "status of a store with no generation exits 3"
grep -q "^current: *none" "$T/out"
ok $? "and says nothing is served"

tools_model "$T/t1" registry.ollama.ai/library/alpha/latest 50000 >/dev/null
tools_model "$T/t1" registry.ollama.ai/library/beta/latest 7000 >/dev/null
old=$(($(date +%s) - 100 * 86400))
tools_gen "$S" "$T/t1" --label "2026-Q1" --created $old >/dev/null

run_fail "$AGSTORE" --store "$S" status
is "$rc" 3 "a generation 100 days old is stale: exit 3"
grep -q '^current: *generation 1 "2026-Q1", 2 models$' "$T/out"
ok $? "status names the current generation and its label"
grep -q '^data date: .*(100.0 days ago; generation created (no bundle creation_date))$' "$T/out"
ok $? "status gives its age, and says it comes from the generation's created time"
grep -q "^WARNING: .*older than 90 days" "$T/out"
ok $? "status warns that it is stale"
grep -q "^agstore: generation 1 of $S is 100 days old, older than 90 days.$" "$T/err"
ok $? "one sentence on stderr for monitoring"
"$AGSTORE" --store "$S" status --max-age 120 >"$T/out"
ok $? "--max-age 120: not stale, exit 0"
! grep -q WARNING "$T/out"
ok $? "and no warning"
run_fail "$AGSTORE" --store "$S" status --max-age 99
is "$rc" 3 "--max-age 99: stale"

nobj=$(find "$S/objects" -type f | wc -l)
bytes=$(find "$S/objects" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
"$AGSTORE" --store "$S" status --json >"$T/st.json" 2>/dev/null
is "$?" 3 "status --json exits 3 too when stale"
is "$(jq -c '[.current.id, .current.label, .stale, .max_age_days, .objects, .bytes, .generations]' "$T/st.json")" \
	"[1,\"2026-Q1\",true,90,$nobj,$bytes,1]" "status --json: generation, staleness, object count and size"
jq -e '.current.age_days > 99.9 and .current.age_days < 100.1' "$T/st.json" >/dev/null
ok $? "status --json gives the age in days"
is "$(jq -r .last_fsck "$T/st.json")" null "no fsck yet"
grep -q "^last fsck: *never$" "$T/out"
ok $? "status says fsck never ran"
grep -q "^objects: *$nobj (" "$T/out"
ok $? "status gives the object count"

"$AGSTORE" --store "$S" fsck >/dev/null
"$AGSTORE" --store "$S" status --max-age 365 >"$T/out"
grep -q "^last fsck: *[0-9-]*T[0-9:]*Z, clean ($nobj objects)$" "$T/out"
ok $? "status shows the last fsck and its result"

# A new generation: fresh again.
tools_model "$T/t2" registry.ollama.ai/library/gamma/latest 3000 >/dev/null
tools_gen "$S" "$T/t2" --label "2026-Q2" >/dev/null
"$AGSTORE" --store "$S" status >"$T/out"
ok $? "after a fresh generation status exits 0"
grep -q '^current: *generation 2 "2026-Q2"' "$T/out"
ok $? "status follows the current generation"
"$AGSTORE" --store "$S" activate 1 >/dev/null
run_fail "$AGSTORE" --store "$S" status
is "$rc" 3 "rolling back to the old generation is stale again"
run_fail "$AGSTORE" --store "$S" status --max-age soon
is "$rc" 2 "--max-age with a non-number is a usage error"

done_testing
