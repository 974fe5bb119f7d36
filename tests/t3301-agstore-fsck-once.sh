#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Issue 13: agstore fsck hashes each byte once (the whole SHA-256, then the
# stored fs-verity tree against the record's root; every block against the
# tree only for an object whose digest differs) and still names what is
# damaged: a flipped bit in a data block (with the block), a tampered
# level-0 or top tree block, a record failing its own check, and an object
# rewritten together with its record and tree.  --full finds the same.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
need_cmd openssl sha256sum od dd
FORGE=$HELPERS/store-forge
[ -x "$AGIMPORT" ] && [ -x "$AGSTORE" ] || skip_all "agimport or agstore not built"
[ -x "$FORGE" ] || skip_all "store-forge not built ($FORGE)"

# A weights blob of 150 blocks: level 0 of its tree has 2 blocks (kernel
# layout numbers 1 and 2) under the top block (0).
TREE=$T/tree
make_model "$TREE" registry.ollama.ai/library/w/latest $((150 * 4096 - 100)) w
S=$T/s
"$AGIMPORT" --store "$S" --no-signature --ollama-dir "$TREE" --label 20260101 >/dev/null 2>&1 ||
	bail "the import failed"
W=$(for f in "$TREE"/blobs/*; do [ "$(stat -c %s "$f")" -gt 100000 ] && basename "$f"; done)
W=${W#sha256-}
OBJ=$S/objects/sha256/${W:0:2}/$W

fsck_both() { # fsck_both WHAT PATTERN: default and --full report PATTERN
	local what=$1 pat=$2 mode
	for mode in "" --full; do
		run_fail "$AGSTORE" --store "$S" fsck $mode
		[ "$rc" = 1 ] && grep -q "$pat" "$T/out"
		ok $? "fsck ${mode:-(hashing once)}: $what" || cat "$T/out" "$T/err"
	done
}

"$AGSTORE" --store "$S" fsck >"$T/out" 2>&1
ok $? "a sound store: fsck finds nothing" || cat "$T/out"
"$AGSTORE" --store "$S" fsck --full >"$T/out" 2>&1
ok $? "nor does fsck --full" || cat "$T/out"

flip() { # flip FILE OFFSET
	local byte
	byte=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	printf "\\x$(printf %02x $((byte ^ 4)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
chmod u+w "$OBJ"
flip "$OBJ" $((100 * 4096 + 17))
fsck_both "a flipped bit in data block 100, named" "^corrupt  *objects/sha256/${W:0:2}/$W: .*(chunk 100)$"
flip "$OBJ" $((100 * 4096 + 17))

"$FORGE" tree "$S" "$W" 2 || bail "store-forge tree failed"
fsck_both "a tampered level-0 tree block, named by its first data block" \
	"^corrupt  *objects/sha256/${W:0:2}/$W: .*(chunk 128)$"
"$FORGE" tree "$S" "$W" 2

"$FORGE" tree "$S" "$W" 0
fsck_both "a tampered top tree block" "^corrupt  *objects/sha256/${W:0:2}/$W: "
"$FORGE" tree "$S" "$W" 0

"$AGSTORE" --store "$S" fsck >"$T/out" 2>&1
ok $? "each damage undone: sound again" || cat "$T/out"

"$FORGE" forge "$S" "$W" 5000 >/dev/null || bail "store-forge forge failed"
fsck_both "bytes, record and tree rewritten together: the digest shows it" \
	"^corrupt  *objects/sha256/${W:0:2}/$W: content does not match its SHA-256 digest"
# its record no longer matches the catalog either, but it is one problem
for mode in "" --full; do
	run_fail "$AGSTORE" --store "$S" fsck $mode
	[ "$(grep -c "objects/sha256/${W:0:2}/$W" "$T/out")" = 1 ] && grep -q ": 1 corrupt," "$T/out"
	ok $? "fsck ${mode:-(hashing once)}: reported once, by the hashing, not again by the catalog" ||
		cat "$T/out"
done

# the object's bytes put back: now only the record and tree are forged, which
# the hash pass cannot see (the bytes match their SHA-256, the stored tree
# its record's root); the generation's catalog still names the old root
byte=$(od -An -tu1 -j 5000 -N1 "$OBJ" | tr -d ' ')
printf "\\x$(printf %02x $((byte ^ 0x5a)))" | dd of="$OBJ" bs=1 seek=5000 conv=notrunc status=none
# (--full hashes every block against the forged tree, and that verdict is
# the one reported)
run_fail "$AGSTORE" --store "$S" fsck
[ "$rc" = 1 ] && grep -q "^corrupt  *objects/sha256/${W:0:2}/$W: its record's fs-verity digest is not the one in generation 1's catalog" "$T/out"
ok $? "fsck (hashing once): record and tree rewritten for unchanged bytes: the catalog shows it" ||
	cat "$T/out" "$T/err"
run_fail "$AGSTORE" --store "$S" fsck --full
[ "$rc" = 1 ] && grep -q "^corrupt  *objects/sha256/${W:0:2}/$W: .*(chunk 1)$" "$T/out" &&
	[ "$(grep -c "objects/sha256/${W:0:2}/$W" "$T/out")" = 1 ]
ok $? "fsck --full: the same, found by the block check against the tree, reported once" ||
	cat "$T/out" "$T/err"

"$FORGE" record "$S" "$W"
fsck_both "a record that fails its own check" "^corrupt  *objects/sha256/${W:0:2}/$W: its blob record"
done_testing
