#!/bin/bash
# shellcheck disable=SC2154 # $rc is set by run_fail (tests/lib.sh)
# SPDX-License-Identifier: Apache-2.0
# agstore gc: which generations and objects go, --dry-run, strays, a reader
# that keeps streaming a deleted blob, and gc beside an import in progress.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-tools.sh"
need_agstore

S=$T/store
ids() { "$AGSTORE" --store "$S" versions --json | jq -r '[.[].id] | join(" ")'; }
has_object() { [ -f "$(tools_object "$S" "$1")" ]; }

"$AGSTORE" --store "$S" init >/dev/null || bail "cannot init a store"
head -c 20000 /dev/urandom >"$T/shared"
# Eight generations: model mN is only in generation N; "base" is in all.
for n in 1 2 3 4 5 6 7 8; do
	tools_model "$T/t$n" registry.ollama.ai/library/base/latest "$T/shared" >/dev/null
	tools_model "$T/t$n" registry.ollama.ai/library/m$n/latest 5000 >/dev/null
	tools_gen "$S" "$T/t$n" --label "g$n" >/dev/null || bail "cannot write generation $n"
done
is "$(ids)" "1 2 3 4 5 6 7 8" "eight generations"
W2=$(tools_weights "$T/t2" registry.ollama.ai/library/m2/latest)
W3=$(tools_weights "$T/t3" registry.ollama.ai/library/m3/latest)
W1=$(tools_weights "$T/t1" registry.ollama.ai/library/m1/latest)
WS=$(sha256sum "$T/shared" | cut -d' ' -f1)
"$AGSTORE" --store "$S" activate 1 >/dev/null # an old generation is current

# A stray file under objects/: a valid name without a record, and junk.
stray_hex=$(printf 'stray' | sha256sum | cut -d' ' -f1)
mkdir -p "$S/objects/sha256/${stray_hex:0:2}"
printf 'stray' >"$(tools_object "$S" "$stray_hex")"
echo junk >"$S/objects/sha256/${stray_hex:0:2}/junk"

# --- dry run ---
snap=$(store_snapshot "$S" | grep -v lock.mdb) # readers touch the LMDB lock file
"$AGSTORE" --store "$S" gc --dry-run >"$T/out"
ok $? "gc --dry-run"
grep -q "^generations to remove: 2 3$" "$T/out"
ok $? "dry run names the generations it would remove (keeps current 1 and the 5 newest)"
# 8 blobs of the models and the 2 removed generations' catalogs (format 2)
grep -q "^would remove 10 blobs .* and 2 stray files$" "$T/out"
ok $? "dry run counts the blobs (catalogs too) and stray files"
is "$(store_snapshot "$S" | grep -v lock.mdb)" "$snap" "dry run changes nothing"
"$AGSTORE" --store "$S" gc --dry-run --json >"$T/out.json"
is "$(jq -c '[.dry_run, .kept_generations, .removed_generations, (.removed_blobs|length), (.removed_strays|length)]' "$T/out.json")" \
	'[true,[1,4,5,6,7,8],[2,3],10,2]' "gc --dry-run --json"

# --- gc ---
"$AGSTORE" --store "$S" --operator frank gc >"$T/out"
ok $? "gc"
is "$(ids)" "1 4 5 6 7 8" "gc kept the current generation and the 5 most recent"
! has_object "$W2" && ! has_object "$W3"
ok $? "the blobs only generations 2 and 3 used are gone"
has_object "$W1" && has_object "$WS"
ok $? "the blobs kept generations use are still there"
[ ! -e "$(tools_object "$S" "$stray_hex")" ] && [ ! -e "$S/objects/sha256/${stray_hex:0:2}/junk" ]
ok $? "stray files are gone"
run_fail "$AGSTORE" --store "$S" cat "$W2"
is "$rc" 1 "a removed blob's record is gone too"
"$AGSTORE" --store "$S" fsck >"$T/fsck" 2>&1
ok $? "fsck finds the store clean after gc"
is "$(tail -1 "$S/audit.log" | jq -r '.event')" FSCK "(fsck audited)"
ev=$(grep '"GC"' "$S/audit.log" | tail -1)
is "$(jq -c '[.operator, .removed_generations, (.removed_blobs|length), .keep]' <<<"$ev")" \
	'["frank",[2,3],10,5]' "gc writes a GC audit event with the operator and what it removed"

"$AGSTORE" --store "$S" gc --keep 0 --json >"$T/out.json"
ok $? "gc --keep 0"
is "$(ids)" "1" "only the current generation is left"
is "$(jq -c .removed_generations "$T/out.json")" '[4,5,6,7,8]' "gc --json lists what it removed"
"$AGSTORE" --store "$S" cat "$W1" | cmp -s - "$T/t1/blobs/sha256-$W1"
ok $? "the current generation's blobs still read correctly"
run_fail "$AGSTORE" --store "$S" gc --keep many
is "$rc" 2 "gc --keep with a non-number is a usage error"

# --- a reader streaming a blob that gc deletes keeps reading ---
S2=$T/store2
tools_model "$T/big" registry.ollama.ai/library/big/latest 4194304 >/dev/null
tools_model "$T/small" registry.ollama.ai/library/small/latest 1000 >/dev/null
tools_gen "$S2" "$T/big" >/dev/null
tools_gen "$S2" "$T/small" >/dev/null
WB=$(tools_weights "$T/big" registry.ollama.ai/library/big/latest)
"$AGSTORE" --store "$S2" cat "$WB" | {
	dd bs=65536 count=1 iflag=fullblock status=none >"$T/part1"
	touch "$T/reading"
	sleep 2
	cat >"$T/part2"
} &
reader=$!
for _ in $(seq 50); do [ -e "$T/reading" ] && break; sleep 0.1; done
"$AGSTORE" --store "$S2" gc --keep 0 >/dev/null
ok $? "gc runs while a reader streams a blob of the generation it deletes"
[ ! -e "$(tools_object "$S2" "$WB")" ]
ok $? "the blob's object is gone from the store"
wait $reader
cat "$T/part1" "$T/part2" | cmp -s - "$T/big/blobs/sha256-$WB"
ok $? "the reader finishes with the correct bytes"

# --- gc during an import (the store lock) ---
S3=$T/store3
tools_gen "$S3" "$T/t1" >/dev/null
tools_model "$T/imp" registry.ollama.ai/library/imp/latest 300000 >/dev/null
WI=$(tools_weights "$T/imp" registry.ollama.ai/library/imp/latest)
tools_gen "$S3" "$T/imp" --hold 2 --ready "$T/importing" >"$T/imp.id" &
importer=$!
for _ in $(seq 50); do [ -e "$T/importing" ] && break; sleep 0.1; done
[ -f "$(tools_object "$S3" "$WI")" ]
ok $? "the import in progress has its objects in place, not yet committed"
"$AGSTORE" --store "$S3" gc --keep 0 >"$T/gc3" 2>&1
ok $? "gc during an import succeeds"
wait $importer
ok $? "the import succeeds"
is "$(cat "$T/imp.id")" 2 "the import's generation exists"
[ -f "$(tools_object "$S3" "$WI")" ]
ok $? "gc did not take the import's objects for strays"
"$AGSTORE" --store "$S3" fsck >/dev/null 2>&1
ok $? "fsck finds the store consistent"
"$AGSTORE" --store "$S3" cat "$WI" | cmp -s - "$T/imp/blobs/sha256-$WI"
ok $? "the imported blob reads back correctly"

# The same with the real importer, when it can import a plain Ollama tree.
if [ -x "$AGIMPORT" ] && "$AGIMPORT" --help 2>&1 | grep -q -- --ollama-dir; then
	S4=$T/store4
	tools_gen "$S4" "$T/t1" >/dev/null
	tools_model "$T/real" registry.ollama.ai/library/real/latest 33554432 >/dev/null
	"$AGIMPORT" --ollama-dir "$T/real" --store "$S4" --no-signature >"$T/ai.out" 2>&1 &
	importer=$!
	sleep 0.2
	for _ in 1 2 3; do "$AGSTORE" --store "$S4" gc --keep 0 >/dev/null 2>&1; done
	wait $importer
	ok $? "agimport beside repeated gc succeeds"
	"$AGSTORE" --store "$S4" fsck >"$T/fsck4" 2>&1
	ok $? "fsck finds the store consistent after agimport and gc"
	WR=$(tools_weights "$T/real" registry.ollama.ai/library/real/latest)
	"$AGSTORE" --store "$S4" cat "$WR" | cmp -s - "$T/real/blobs/sha256-$WR"
	ok $? "the model agimport brought in reads back correctly"
else
	skip "agimport --ollama-dir is not available: real importer beside gc not tested"
fi

done_testing
