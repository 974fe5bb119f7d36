#!/bin/bash
# shellcheck disable=SC2154 # $rc is set by run_fail (tests/lib.sh)
# SPDX-License-Identifier: Apache-2.0
# Store format 2 (issue 12): `fsverity digest` of every object is its
# record's and its catalog's digest; a catalog for every generation with
# increasing serials and the right parent; a format-1 store is refused by
# every opener naming `agstore migrate`, which converts it all or nothing;
# after it, fsck is clean and the mount serves the same bytes.
#
# The format-1 store is written by the format-1 code when AGFS_OLD_BUILD
# names a build of 7a7fca6 (its tools-mkgen), else by tests/helpers/store-v1,
# which rewrites a format-2 store the way that code wrote it.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-tools.sh"
need_agstore
need_cmd fsverity
FORGE=$HELPERS/store-forge
V1=$HELPERS/store-v1

S=$T/store
for n in 1 2 3; do
	tools_model "$T/t$n" registry.ollama.ai/library/base/latest 300000 >/dev/null
	tools_model "$T/t$n" registry.ollama.ai/library/m$n/latest $((n * 70000 + 1)) >/dev/null
	tools_gen "$S" "$T/t$n" --label "g$n" >/dev/null || bail "cannot write generation $n"
done

# --- fs-verity digests: object, record and catalog agree ---
bad=0 nobj=0
"$FORGE" catalog "$S" 3 >"$T/cat3"
for f in "$S"/objects/sha256/*/*; do
	hex=$(basename "$f")
	want=$(fsverity digest "$f" | cut -d' ' -f1 | sed 's/^sha256://')
	rec=$("$FORGE" fsverity "$S" "$hex")
	[ "$want" = "$rec" ] || bad=$((bad + 1))
	cat=$(jq -r --arg h "$hex" '.blobs[$h].fsverity // empty' "$T/cat3")
	[ -z "$cat" ] || [ "$cat" = "$want" ] || bad=$((bad + 1))
	nobj=$((nobj + 1))
done
is "$bad" 0 "fsverity digest of each of $nobj objects is its record's and its catalog's"
is "$(jq -r '.blobs | length' "$T/cat3")" 8 "generation 3's catalog lists its eight blobs (two models)"

# --- a catalog for every generation: serial and parent ---
prev=null good=0
for n in 1 2 3; do
	"$FORGE" catalog "$S" $n >"$T/cat$n"
	[ "$(jq -r .serial "$T/cat$n")" = "$n" ] && [ "$(jq -r .generation "$T/cat$n")" = "$n" ] &&
		[ "$(jq -r .parent "$T/cat$n")" = "$prev" ] && good=$((good + 1))
	prev=$(sha256sum "$T/cat$n" | cut -d' ' -f1)
done
is "$good" 3 "generations 1-3: serials 1, 2, 3, each the parent of the next"
is "$("$FORGE" catalog "$S" 2 | sha256sum | cut -d' ' -f1)" "$(jq -r .parent "$T/cat3")" \
	"the parent is the SHA-256 of the previous catalog's bytes"

# --- a format-1 store ---
make_v1() { # make_v1 DIR
	if [ -n "${AGFS_OLD_BUILD:-}" ]; then
		for n in 1 2 3; do
			"$AGFS_OLD_BUILD/tests/helpers/tools-mkgen" --store "$1" --label "g$n" "$T/t$n" >/dev/null ||
				return 1
		done
	else
		cp -a "$S" "$1" && "$V1" "$1"
	fi
}
O=$T/old
make_v1 "$O" || bail "cannot make a format-1 store"
diag "format-1 store by ${AGFS_OLD_BUILD:-tests/helpers/store-v1}"
run_fail "$AGSTORE" --store "$O" ls
is "$rc" 1 "agstore ls refuses a format-1 store"
grep -q "format 1.*agstore migrate" "$T/err"
ok $? "naming agstore migrate"
run_fail "$AGSTORE" --store "$O" fsck
grep -q "agstore migrate" "$T/err"
ok $? "fsck too"
if [ -x "$AGFS" ] && [ -e /dev/fuse ] && [ "$(id -u)" = 0 ]; then
	mkdir -p "$T/mnt0" # before agfs starts: a missing mount point is another refusal
	"$AGFS" -f "$O" "$T/mnt0" >/dev/null 2>"$T/agfs.err" &
	wait $!
	grep -q "agstore migrate" "$T/agfs.err"
	ok $? "the mount refuses it naming agstore migrate"
else
	skip "needs root and FUSE for the mount"
fi

# --- migration that fails: nothing changes ---
F=$T/failing
cp -a "$O" "$F"
victim=$(tools_weights "$T/t2" registry.ollama.ai/library/m2/latest)
obj=$(tools_object "$F" "$victim")
chmod u+w "$obj"
printf 'X' | dd of="$obj" bs=1 seek=1000 conv=notrunc status=none
snap=$(store_snapshot "$F" | grep -v lock.mdb | grep -v audit.log)
run_fail "$AGSTORE" --store "$F" migrate
is "$rc" 1 "migrate of a store with a damaged object exits 1"
grep -q "object sha256:$victim: .*nothing was changed.*re-import" "$T/err"
ok $? "naming the object and telling the admin to re-import"
is "$(store_snapshot "$F" | grep -v lock.mdb | grep -v audit.log)" "$snap" \
	"the store is exactly as it was"
run_fail "$AGSTORE" --store "$F" ls
grep -q "agstore migrate" "$T/err"
ok $? "and still format 1"
grep -q '"STORE_MIGRATE_FAILED"' "$F/audit.log"
ok $? "the failure is audited"

# --- migration ---
"$AGSTORE" --store "$O" migrate >"$T/out" 2>"$T/err"
ok $? "agstore migrate converts the format-1 store"
grep -q "migrated to format 2" "$T/out"
ok $? "and says so"
grep -q '"STORE_MIGRATED"' "$O/audit.log"
ok $? "audited"
"$AGSTORE" --store "$O" migrate >"$T/out"
ok $? "a second migrate is a no-op"
"$AGSTORE" --store "$O" fsck >"$T/out" 2>&1
ok $? "fsck of the migrated store is clean"
good=0 prev=null
for n in 1 2 3; do
	"$FORGE" catalog "$O" $n >"$T/m$n" &&
		[ "$(jq -r .serial "$T/m$n")" = "$n" ] && [ "$(jq -r .parent "$T/m$n")" = "$prev" ] &&
		good=$((good + 1))
	prev=$(sha256sum "$T/m$n" | cut -d' ' -f1)
done
is "$good" 3 "every migrated generation has a catalog: serials 1-3, parents chained"
bad=0
for f in "$O"/objects/sha256/*/*; do
	hex=$(basename "$f")
	want=$(fsverity digest "$f" | cut -d' ' -f1 | sed 's/^sha256://')
	[ "$want" = "$("$FORGE" fsverity "$O" "$hex")" ] || bad=$((bad + 1))
	cat=$(jq -r --arg h "$hex" '.blobs[$h].fsverity // empty' "$T/m3")
	[ -z "$cat" ] || [ "$cat" = "$want" ] || bad=$((bad + 1))
done
is "$bad" 0 "every migrated object's record and catalog carry its fs-verity digest"

if [ -x "$AGFS" ] && [ -e /dev/fuse ] && [ "$(id -u)" = 0 ]; then
	mount_agfs "$O" "$T/mnt" || bail "agfs did not mount the migrated store"
	bad=0
	for b in "$T"/t3/blobs/*; do
		cmp -s "$b" "$T/mnt/blobs/$(basename "$b")" || bad=$((bad + 1))
	done
	is "$bad" 0 "the mount serves every blob of the migrated store byte for byte"
	umount_agfs "$T/mnt"
else
	skip "needs root and FUSE for the mount"
fi
done_testing
