#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# make demo's script end to end, in a temporary directory instead of ./demo:
# signed bundle around a generated model, import, mount, the proof line, a
# refused flipped byte in a scratch copy, a second bundle and a live rollback; a
# second run works (idempotent); `demo.sh clean` leaves nothing mounted.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fixtures.sh"

need_root_fuse
need_cmd gpg sha256sum tar
for p in "$AGIMPORT" "$AGFS" "$AGSTORE" "$MKGGUF"; do
	[ -x "$p" ] || skip_all "$p is not built (run make)"
done
export AGFS_DEMO_DIR=$T/demo AGFS_BUILD
_mounts+=("$T/demo/models") # unmounted by lib.sh's trap if a step fails

demo() { "$SRC_DIR/contrib/demo.sh" "$@" >"$T/out" 2>"$T/err"; }

demo
ok $? "demo.sh runs" || sed 's/^/# /' "$T/err"
mountpoint -q "$T/demo/models"
ok $? "the demo store is mounted at demo/models"
grep -qE '^proof: sha256 of models/blobs/sha256-([0-9a-f]{64}) read through the mount = \1 = its name$' "$T/out"
ok $? "it prints the proof line" || sed 's/^/# /' "$T/out"
grep -qE '^\*1 ' "$T/out"
ok $? "it prints agstore versions with generation 1 current"
grep -q 'manifests' "$T/out" && grep -q 'sha256-' "$T/out"
ok $? "it prints the tree"
grep -qE '^refused: cat tampered/blobs/sha256-[0-9a-f]{64}: Input/output error$' "$T/out"
ok $? "a flipped byte in the scratch copy is refused with EIO" || sed 's/^/# /' "$T/out"
grep -qE 'VERIFY_FAILURE .*chunk hash mismatch' "$T/out"
ok $? "and the demo shows the VERIFY_FAILURE audit line"
! mountpoint -q "$T/demo/tampered"
ok $? "the scratch mount is gone again"
grep -qE '^ls models/versions/: 1 2 current $' "$T/out"
ok $? "the second bundle is generation 2, visible live in versions/" || sed 's/^/# /' "$T/out"
grep -qE '^generation 1 is current \(was 2\)$' "$T/out"
ok $? "agstore rollback runs"
is "$(readlink "$T/demo/models/versions/current")" 1 "the mount followed the rollback"
[ -f "$T/demo/models/manifests/registry.ollama.ai/library/tiny/latest" ] &&
	[ ! -e "$T/demo/models/manifests/registry.ollama.ai/library/tiny/v2" ]
ok $? "after the rollback the mount shows generation 1's models only"
blob=$(fixture_model_blob "$T/demo/models" tiny:latest)
cmp -s "$T/demo/models/blobs/$blob" "$T/demo/low-side/models/blobs/$blob"
ok $? "the mounted model is byte-identical to the one the low side bundled"

demo
ok $? "a second run works" || sed 's/^/# /' "$T/err"
is "$(grep -c "$T/demo/models " /proc/mounts)" 1 "the store is mounted once"

demo clean
ok $? "demo.sh clean runs" || sed 's/^/# /' "$T/err"
! grep -q "$T/demo" /proc/mounts
ok $? "nothing is left mounted"
[ ! -e "$T/demo" ]
ok $? "the demo directory is gone"

done_testing
