#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# keyring=: a generation the mount rejected is checked once, not at every
# poll.  The watcher used to fetch it, check it again and tell the kernel
# that versions/ changed (three FUSE notifications) every second; now the
# mount stays quiet while nothing in the store changes, and a trusted
# signature added later is still picked up.  The notifications are counted
# in libfuse's debug output (-d prints "NOTIFY: code=..." for each).
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
. "$TESTS_DIR/lib-fs.sh"
need_cmd gpg tar gzip sha256sum jq
[ -x "$AGIMPORT" ] && [ -x "$AGSTORE" ] && [ -x "$AGFS" ] || skip_all "programs not built"
need_root_fuse

S=$T/store
first_generation_signed "$S"
ALICE=$KEY_FPR
"$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" "$T/b2/airgap-bundle-20260502.tar.gz" \
	>/dev/null 2>"$T/err" || bail "unsigned import: $(cat "$T/err")"
LATER=manifests/registry.ollama.ai/library/later/7b

M=$T/mnt
mkdir -p "$M"
_mounts+=("$M")
"$AGFS" -d -o keyring="$T/pubkey.asc" "$S" "$M" >"$T/log" 2>&1 &
P=$!
trap 'kill $P 2>/dev/null; wait; gpgconf --kill gpg-agent 2>/dev/null; _cleanup' EXIT
fs_wait_for 10 test -d "$M/versions" || bail "agfs did not mount: $(head -3 "$T/log")"
fs_wait_for 5 grep -q '"CATALOG_REJECTED".*"generation":2' "$S/audit.log"
ok $? "the unsigned generation 2 is rejected (CATALOG_REJECTED)"
[ ! -e "$M/$LATER" ] && [ -d "$M/versions/1" ] && [ ! -e "$M/versions/2" ]
ok $? "generation 2 is not shown; generation 1 is served"

# Nothing changes in the store for five polls.
sleep 1.5
before=$(grep -c 'NOTIFY:' "$T/log")
sleep 5
after=$(grep -c 'NOTIFY:' "$T/log")
is "$((after - before))" 0 "no notification to the kernel in 5 s of polls ($before before)"
is "$(grep -c '"CATALOG_REJECTED"' "$S/audit.log")" 1 "the rejection is audited once"
ls "$M/versions" >"$T/ls" && ! grep -qx 2 "$T/ls" && grep -qx 1 "$T/ls"
ok $? "versions/ lists generation 1 only"

# A trusted signature is still seen at the next look, and versions/ changes.
"$AGSTORE" --store "$S" sign 2 --sign-key "$ALICE" >/dev/null 2>&1 || bail "agstore sign failed"
fs_wait_for 6 test -f "$M/$LATER"
ok $? "signed by the trusted key later, generation 2 is served"
test -d "$M/versions/2"
ok $? "and listed under versions/"
[ "$(grep -c 'NOTIFY:' "$T/log")" -gt "$after" ]
ok $? "the kernel is told the root and versions/ changed"

kill -TERM $P
wait $P
ok $? "agfs stops cleanly"
done_testing
