#!/bin/bash
# shellcheck disable=SC2154 # $rc is set by run_fail (tests/lib.sh)
# SPDX-License-Identifier: Apache-2.0
# agstore init, ls, versions, show, cat: what a store holds, as tables and as JSON.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-tools.sh"
need_agstore

S=$T/store
LL=registry.ollama.ai/library/llama3/8b
PHI=registry.ollama.ai/library/phi/latest
MIS=example.org/team/mistral/7b

# --- init ---
"$AGSTORE" --store "$S" init >"$T/out" 2>"$T/err"
ok $? "init creates a store"
[ -d "$S/objects" ] && [ -d "$S/index" ]
ok $? "the store has objects/ and index/"
run_fail "$AGSTORE" --store "$S" init
is "$rc" 1 "init on an existing store fails with 1"
grep -q "already an agfs store" "$T/err"
ok $? "and says the store exists"
mkdir -p "$T/full" && echo x >"$T/full/file"
run_fail "$AGSTORE" --store "$T/full" init
is "$rc" 1 "init refuses a directory holding something else"
AGFS_STORE=$T/env-store "$AGSTORE" init >/dev/null 2>&1
[ -d "$T/env-store/objects" ]
ok $? "init honours \$AGFS_STORE"

# --- an empty store ---
"$AGSTORE" --store "$S" ls >"$T/out"
ok $? "ls of an empty store succeeds"
is "$(wc -c <"$T/out")" 0 "and lists nothing"
is "$("$AGSTORE" --store "$S" ls --json | jq length)" 0 "ls --json of an empty store is []"
is "$("$AGSTORE" --store "$S" versions --json | jq length)" 0 "versions --json of an empty store is []"

# --- two generations ---
M_LL=$(tools_model "$T/tree1" $LL 300000)
M_PHI=$(tools_model "$T/tree1" $PHI 4000)
tools_model "$T/tree2" $LL "$T/tree1/blobs/sha256-$(tools_weights "$T/tree1" $LL)" >/dev/null
M_MIS=$(tools_model "$T/tree2" $MIS 5000)
FPR=0123456789ABCDEF0123456789ABCDEF01234567
g1=$(tools_gen "$S" "$T/tree1" --label "2026-Q1" --operator alice --signer $FPR --created 1767225600)
g2=$(tools_gen "$S" "$T/tree2" --label "2026-Q2" --operator bob)
is "$g1 $g2" "1 2" "two generations written"

"$AGSTORE" --store "$S" ls >"$T/ls"
ok $? "ls lists the current generation"
head -1 "$T/ls" | grep -q '^NAME  *ID  *SIZE  *ADDED  *BUNDLE$'
ok $? "ls has a header NAME ID SIZE ADDED BUNDLE"
grep -q "^llama3:8b  *${M_LL:0:12} " "$T/ls"
ok $? "ls shows llama3:8b with its manifest's short digest (Ollama's ID)"
grep -q "^example.org/team/mistral:7b  *${M_MIS:0:12} " "$T/ls"
ok $? "ls shows a model from another host and namespace"
! grep -q phi "$T/ls"
ok $? "ls shows only the current generation's models"
"$AGSTORE" ls 1 --store "$S" | grep -q "^phi:latest  *${M_PHI:0:12} "
ok $? "ls GEN lists that generation (--store after the command)"

"$AGSTORE" --store "$S" --json ls >"$T/ls.json"
ok $? "ls --json"
is "$(jq -r '.[] | select(.path=="'$LL'") | .digest' "$T/ls.json")" "sha256:$M_LL" \
	"ls --json carries the full manifest digest"
want=$(($(stat -c %s "$T/tree2/manifests/$LL") + $(jq '[.config.size, .layers[].size] | add' "$T/tree2/manifests/$LL")))
is "$(jq -r '.[] | select(.path=="'$LL'") | .size' "$T/ls.json")" "$want" \
	"model size = manifest + config + layers"
jq -e '.[0].added | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$")' "$T/ls.json" >/dev/null
ok $? "ls --json gives when the model entered the store (ISO-8601 UTC)"
run_fail "$AGSTORE" --store "$S" ls 7
is "$rc" 1 "ls of a missing generation fails with 1"

"$AGSTORE" --store "$S" versions >"$T/v"
ok $? "versions"
grep -Eq '^ +1 +2026-01-01T00:00:00Z +2026-Q1 +alice +89ABCDEF01234567 +2$' "$T/v"
ok $? "versions shows id, created, label, operator, signer, model count"
grep -Eq '^\*2 +[0-9TZ:-]+ +2026-Q2 +bob +- +2$' "$T/v"
ok $? "versions marks the current generation with *"
"$AGSTORE" --store "$S" versions --json >"$T/v.json"
is "$(jq -c '[.[] | {id: .id, current: .current, label: .label, operator: .operator, models: .models}]' "$T/v.json")" \
	'[{"id":1,"current":false,"label":"2026-Q1","operator":"alice","models":2},{"id":2,"current":true,"label":"2026-Q2","operator":"bob","models":2}]' \
	"versions --json"
is "$(jq -r '.[0].signer' "$T/v.json")" "$FPR" "versions --json has the full signer fingerprint"
is "$(jq -r '.[0].created' "$T/v.json")" "2026-01-01T00:00:00Z" "versions --json created time"

# --- show ---
"$AGSTORE" --store "$S" show llama3:8b >"$T/show"
ok $? "show NAME:TAG"
grep -q "^manifest: *sha256:$M_LL " "$T/show"
ok $? "show gives the manifest digest"
grep -q "^generations: 1 2$" "$T/show"
ok $? "show lists the generations holding the model"
grep -q "sha256:$(tools_weights "$T/tree1" $LL) .*application/vnd.ollama.image.model" "$T/show"
ok $? "show lists the layers with their media types"
"$AGSTORE" --store "$S" show --json $LL >"$T/show.json"
ok $? "show accepts the path form, --json"
is "$(jq -r '.layers | length' "$T/show.json")" 2 "show --json lists the layers"
is "$(jq -r '.config.media_type' "$T/show.json")" "application/vnd.docker.container.image.v1+json" \
	"show --json gives the config's media type"
"$AGSTORE" --store "$S" show --gen 1 phi >"$T/show1"
ok $? "show --gen N NAME (default tag latest)"
run_fail "$AGSTORE" --store "$S" show phi
is "$rc" 1 "show of a model not in the current generation fails with 1"
grep -q "has no model phi" "$T/err"
ok $? "and names the model"
run_fail "$AGSTORE" --store "$S" show 'bad name!'
is "$rc" 2 "show of a malformed name is a usage error"

# --- cat ---
W=$(tools_weights "$T/tree1" $LL)
"$AGSTORE" --store "$S" cat "sha256:$W" >"$T/cat"
ok $? "cat DIGEST"
cmp -s "$T/cat" "$T/tree1/blobs/sha256-$W"
ok $? "cat gives the blob's bytes"
"$AGSTORE" --store "$S" cat "$M_LL" | cmp -s - "$T/tree2/manifests/$LL"
ok $? "cat of a manifest digest (bare hex) gives the manifest bytes"
"$AGSTORE" --store "$S" cat "sha256-$W" | cmp -s - "$T/tree1/blobs/sha256-$W"
ok $? "cat accepts the sha256-<hex> form"
run_fail "$AGSTORE" --store "$S" cat "sha256:$(printf '%064d' 0)"
is "$rc" 1 "cat of an unknown digest fails with 1"
grep -q "has no blob" "$T/err"
ok $? "and says so"
run_fail "$AGSTORE" --store "$S" cat nothex
is "$rc" 2 "cat of a malformed digest is a usage error"
# A flipped byte in the middle: cat stops before writing the bad chunk.
obj=$(tools_object "$S" "$W")
chmod u+w "$obj"
printf '\xff' | dd of="$obj" bs=1 seek=200000 conv=notrunc status=none
printf '\x00' | dd of="$obj" bs=1 seek=200001 conv=notrunc status=none
run_fail "$AGSTORE" --store "$S" cat "$W"
is "$rc" 1 "cat of a corrupt blob fails with 1"
grep -q "corrupt: chunk 48 " "$T/err" # byte 200000 is in 4 KiB block 48
ok $? "and names the chunk"
is "$(wc -c <"$T/out")" $((3 * 65536)) "only the verified chunks before it were written"
cmp -s "$T/out" <(head -c $((3 * 65536)) "$T/tree1/blobs/sha256-$W")
ok $? "and they are the right bytes"
is "$(wc -l <"$T/err")" 1 "the error is one line"

# --- usage, help, errors ---
for c in init ls versions show cat activate rollback rm gc fsck audit status; do
	"$AGSTORE" "$c" --help >"$T/help" 2>&1 && grep -q "^Usage: agstore" "$T/help"
	ok $? "$c --help"
done
"$AGSTORE" --help | grep -q "^Usage: agstore"
ok $? "agstore --help"
run_fail "$AGSTORE" --store "$S" frobnicate
is "$rc" 2 "an unknown command exits 2"
run_fail "$AGSTORE" --store "$S" ls --bogus
is "$rc" 2 "an unknown option exits 2"
run_fail "$AGSTORE"
is "$rc" 2 "no command exits 2"
run_fail "$AGSTORE" --store "$T/nowhere" ls
is "$rc" 1 "a store that does not exist: exit 1"
grep -q "^agstore: $T/nowhere is not an agfs store (it does not exist): create one with \`agstore --store $T/nowhere init\`" "$T/err" &&
	grep -q "AGFS_STORE" "$T/err" && [ "$(wc -l <"$T/err")" = 1 ]
ok $? "one sentence naming the store and how to create one (--store, AGFS_STORE, agstore init)"
AGFS_STORE=$S "$AGSTORE" ls | grep -q llama3
ok $? "\$AGFS_STORE selects the store"

done_testing
