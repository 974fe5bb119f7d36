#!/bin/bash
# shellcheck disable=SC2154 # $rc is set by run_fail (tests/lib.sh)
# SPDX-License-Identifier: Apache-2.0
# agstore diff (models added, removed, changed between two generations, no
# mount), agstore log (which generation was current when, from the audit
# log) and agstore export (a plain Ollama models directory written through
# verified reads, whole or not at all).
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-tools.sh"
need_agstore

S=$T/store
A=registry.ollama.ai/library/alpha/latest
B=registry.ollama.ai/library/beta/latest
C=registry.ollama.ai/library/gamma/7b
tools_model "$T/t1" $A 40000 >/dev/null
tools_model "$T/t1" $B 9000 >/dev/null
tools_gen "$S" "$T/t1" --label one >/dev/null || bail "cannot make generation 1"
# Generation 2: alpha changed (new weights), beta removed, gamma added.
tools_model "$T/t2" $A 41000 >/dev/null
tools_model "$T/t2" $C 5000 >/dev/null
tools_gen "$S" "$T/t2" --label two >/dev/null || bail "cannot make generation 2"
# Generation 3: exactly generation 2's models.
tools_gen "$S" "$T/t2" --label three >/dev/null || bail "cannot make generation 3"

# --- diff ---
"$AGSTORE" --store "$S" diff 1 2 >"$T/out"
ok $? "diff 1 2 exits 0"
grep -q '^generation 1 -> 2: 3 changes$' "$T/out"
ok $? "diff counts three changes" || sed 's/^/# /' "$T/out"
grep -qE '^\+ +gamma:7b ' "$T/out" && grep -qE '^- +beta:latest ' "$T/out" &&
	grep -qE '^~ +alpha:latest ' "$T/out"
ok $? "diff marks gamma added (+), beta removed (-), alpha changed (~)" || sed 's/^/# /' "$T/out"
"$AGSTORE" --store "$S" --json diff 1 current >"$T/d.json"
is "$(jq -c '[.from, .to, [.added[].name], [.removed[].name], [.changed[].name], .unchanged]' "$T/d.json")" \
	'[1,3,["gamma:7b"],["beta:latest"],["alpha:latest"],0]' "diff --json 1 current: added, removed, changed"
is "$(jq -r '.changed[0].from' "$T/d.json")" "sha256:$(sha256sum "$T/t1/manifests/$A" | cut -d' ' -f1)" \
	"diff --json gives the old manifest digest of a changed model"
"$AGSTORE" --store "$S" diff 2 3 >"$T/out"
is "$(cat "$T/out")" "generation 2 -> 3: the same models" "diff of two generations with the same models"
run_fail "$AGSTORE" --store "$S" diff 1 9
is "$rc" 1 "diff with a generation that does not exist: exit 1"
grep -q "has no generation 9 (it has: 1, 2, 3)" "$T/err"
ok $? "and the message lists the generations that exist" || sed 's/^/# /' "$T/err"
run_fail "$AGSTORE" --store "$S" diff 1
is "$rc" 2 "diff with one operand is a usage error"

# --- log ---
"$AGSTORE" --store "$S" activate 1 >/dev/null
"$AGSTORE" --store "$S" rollback >/dev/null
"$AGSTORE" --store "$S" rm gamma:7b >/dev/null
"$AGSTORE" --store "$S" --json log >"$T/log.json"
ok $? "log --json exits 0"
is "$(jq -c '[.[] | [.generation, .how, .from]]' "$T/log.json")" \
	'[[1,"activate",3],[3,"rollback",1],[4,"rm",3]]' \
	"log: activate 1, rollback to 3, rm made 4 (tools-mkgen writes no audit record)"
is "$(jq -r '.[-1].until' "$T/log.json")" null "the last entry is current (until null)"
is "$(jq -r '.[0].until == .[1].since' "$T/log.json")" true "each entry lasts until the next one starts"
"$AGSTORE" --store "$S" log >"$T/out"
grep -qE ' now +4 +rm +' "$T/out"
ok $? "log's table ends with generation 4, current now" || sed 's/^/# /' "$T/out"
if [ -x "$AGIMPORT" ]; then
	S2=$T/s2
	"$AGIMPORT" --ollama-dir "$T/t1" --store "$S2" --no-signature --label first >/dev/null 2>&1 &&
		"$AGIMPORT" --ollama-dir "$T/t2" --store "$S2" --no-signature --label second >/dev/null 2>&1
	ok $? "two imports with agimport"
	is "$("$AGSTORE" --store "$S2" --json log | jq -c '[.[] | [.generation, .how, .what]]')" \
		'[[1,"import","first"],[2,"import","second"]]' "log shows imports with their labels"
else
	skip "agimport is not built"
fi

# --- export ---
"$AGSTORE" --store "$S" export 2 "$T/exp" >"$T/out"
ok $? "export 2 DIR exits 0" || sed 's/^/# /' "$T/out"
(cd "$T/t2" && find manifests blobs -type f | sort) >"$T/want"
(cd "$T/exp" && find . -type f | sed 's|^\./||' | sort) >"$T/got"
diff -u "$T/want" "$T/got" >"$T/d" 2>&1
ok $? "the export holds exactly generation 2's manifests and blobs" || sed 's/^/# /' "$T/d"
diff -r "$T/t2" "$T/exp" >/dev/null
ok $? "byte for byte the Ollama tree that was imported"
added=$("$AGSTORE" --store "$S" --json show --gen 2 alpha:latest | jq -r '.added // empty')
if [ -n "$added" ]; then
	is "$(date -u -d "@$(stat -c %Y "$T/exp/manifests/$A")" +%Y-%m-%dT%H:%M:%SZ)" "$added" \
		"a manifest's mtime is when its model entered the store (Ollama sorts by it)"
else
	skip "agstore show --json gives no 'added' time"
fi
leftover() { compgen -G "$T/.*.export-*" >/dev/null; }
! leftover
ok $? "no temporary directory is left next to DIR"
mkdir "$T/empty"
"$AGSTORE" --store "$S" --json export current "$T/empty" >"$T/e.json"
ok $? "export into an existing empty directory"
is "$(jq -c '[.generation, .models]' "$T/e.json")" "[4,1]" "export --json names the generation and models"
run_fail "$AGSTORE" --store "$S" export 1 "$T/exp"
is "$rc" 1 "export into a non-empty directory is refused: exit 1"
grep -q "is not empty" "$T/err"
ok $? "and says why"

# A flipped byte in a blob: nothing is exported, the message names the blob.
w=$(tools_weights "$T/t1" $A)
o=$(tools_object "$S" "$w")
chmod u+w "$o"
printf 'Z' | dd of="$o" bs=1 seek=1000 conv=notrunc 2>/dev/null
run_fail "$AGSTORE" --store "$S" export 1 "$T/bad"
is "$rc" 1 "export of a generation with a corrupt blob: exit 1"
grep -q "sha256:$w .*is corrupt" "$T/err"
ok $? "the message names the corrupt blob" || sed 's/^/# /' "$T/err"
[ ! -e "$T/bad" ] && ! leftover
ok $? "and nothing is left: neither DIR nor a temporary directory"

done_testing
