#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# An import that finds an object already in the store hashes it before
# keeping it (deduplication).  When it cannot read that object at all (a
# disk error), it has not found it damaged: the import fails with an error
# naming the object and the reason, an audit record, and the store as it
# was: the object not replaced, nothing reported as repaired.  The read
# error is injected with strace into the importer's reads of that one file.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
need_cmd strace sha256sum
[ -x "$AGIMPORT" ] || skip_all "agimport not built"
[ -x "$AGSTORE" ] || skip_all "agstore not built"
strace -qq -o /dev/null true 2>/dev/null || skip_all "strace cannot trace here (ptrace not allowed)"
strace -qq -o /dev/null -e inject=read:error=EIO:when=100 true 2>/dev/null ||
	skip_all "this strace cannot inject errors"

TREE=$T/tree
make_random_ollama_tree "$TREE" 300000
S=$T/s
"$AGIMPORT" --store "$S" --no-signature --ollama-dir "$TREE" --label first >/dev/null 2>&1 ||
	bail "the first import failed"
# the weights of "tiny", the largest blob
hex=$(cd "$TREE/blobs" && ls -S | head -1 | sed 's/^sha256-//')
obj=$S/objects/sha256/${hex:0:2}/$hex
[ -f "$obj" ] || bail "no object for $hex"
ino=$(stat -c %i "$obj")
before=$(snap "$S")
nrec=$(wc -l <"$S/audit.log")

# A second import of the same tree, under another label: every object is
# found, and this one cannot be read.
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
	strace -f -qq -o "$T/trace" -P "$obj" -e trace=read,pread64,preadv,preadv2 \
	-e inject=read,pread64,preadv,preadv2:error=EIO \
	"$AGIMPORT" --store "$S" --no-signature --ollama-dir "$TREE" --label second \
	>"$T/out" 2>"$T/err"
st=$?
grep -q 'EIO (Input/output error) (INJECTED)' "$T/trace"
ok $? "the importer's reads of the existing object failed with EIO (injected)" || tail -3 "$T/trace"
[ "$st" -ne 0 ] && [ "$st" -ne 137 ]
ok $? "the import fails (exit $st)" || cat "$T/err"
diag "$(head -1 "$T/err")"
grep -q "could not import .*$hex.*Input/output error" "$T/err"
ok $? "with an error naming the object and the reason, not calling the source wrong" || cat "$T/err"
grep -qi "repair" "$T/err" "$T/out"
[ $? -ne 0 ]
ok $? "and nothing is reported as repaired"
is "$(snap "$S")" "$before" "the store is as it was"
is "$(stat -c %i "$obj")" "$ino" "the object is the same file, not replaced"
is "$("$AGSTORE" --store "$S" versions 2>/dev/null | grep -c second)" 0 "no generation was added"
[ "$(wc -l <"$S/audit.log")" -gt "$nrec" ] && tail -1 "$S/audit.log" | grep "$hex" | grep -q '"io_error":true'
ok $? "the failure has an audit record naming the object, marked as an I/O error" || tail -1 "$S/audit.log"
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
	strace -f -qq -o /dev/null -P "$obj" -e trace=read,pread64,preadv,preadv2 \
	-e inject=read,pread64,preadv,preadv2:error=EIO \
	"$AGIMPORT" --json --store "$S" --no-signature --ollama-dir "$TREE" --label second 2>/dev/null >"$T/json"
grep -q '"result": "failed"' "$T/json"
ok $? "--json says \"failed\", not \"refused\"" || cat "$T/json"
"$AGSTORE" --store "$S" fsck >"$T/fsck" 2>&1
ok $? "fsck finds the store sound" || cat "$T/fsck"

# without the fault, the same import deduplicates and succeeds
"$AGIMPORT" --store "$S" --no-signature --ollama-dir "$TREE" --label second >/dev/null 2>"$T/err"
ok $? "the import without the fault succeeds" || cat "$T/err"
is "$(stat -c %i "$obj")" "$ino" "keeping the object it found"
done_testing
