#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# keyring=: a signature that gpg could not be run to check is not a bad
# signature.  With the daemon out of descriptors (prlimit leaves it one,
# enough to read the catalog and its signature, not for gpg's pipes), a new
# signed generation is "could not check": not shown yet, one LOG_ERR line,
# no LOG_CRIT, no CATALOG_REJECTED record, and checked again at every poll,
# so it is served within seconds of the descriptors coming back.  It used to
# be rejected ("the signature cannot be checked (Too many open files)"),
# audited as such and shown only at the re-read a minute later.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
. "$TESTS_DIR/lib-fs.sh"
need_cmd gpg tar gzip sha256sum jq prlimit
[ -x "$AGIMPORT" ] && [ -x "$AGSTORE" ] && [ -x "$AGFS" ] || skip_all "programs not built"
need_root_fuse

S=$T/store
first_generation_signed "$S"
ALICE=$KEY_FPR
LATER=manifests/registry.ollama.ai/library/later/7b

fs_mount_fg "$S" "$T/mnt" -o keyring="$T/pubkey.asc"
trap 'kill $agfs_pid 2>/dev/null; wait; gpgconf --kill gpg-agent 2>/dev/null; _cleanup' EXIT
[ -d "$T/mnt/versions/1" ] || bail "generation 1 is not served"
soft=$(prlimit --pid "$agfs_pid" --nofile --raw --noheadings -o SOFT)
# one descriptor left: the limit just above the lowest free one
lowest=0
while [ -e "/proc/$agfs_pid/fd/$lowest" ]; do
	lowest=$((lowest + 1))
done
prlimit --pid "$agfs_pid" --nofile=$((lowest + 1)): || bail "prlimit failed"
"$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" --sign-key "$ALICE" \
	"$T/b2/airgap-bundle-20260502.tar.gz" >/dev/null 2>"$T/err" || bail "import: $(cat "$T/err")"
fs_wait_for 10 grep -q "cannot check generation 2's catalog: Too many open files" "$T/agfs.log"
ok $? "out of descriptors: generation 2's catalog could not be checked (LOG_ERR)"
sleep 2
[ ! -e "$T/mnt/$LATER" ] && [ ! -e "$T/mnt/versions/2" ]
ok $? "generation 2 is not shown meanwhile"
! grep -q '"CATALOG_REJECTED"' "$S/audit.log"
ok $? "no CATALOG_REJECTED record"
! grep -q 'is not shown' "$T/agfs.log"
ok $? "no 'is not shown' (LOG_CRIT) line"
is "$(grep -c "cannot check generation 2's catalog" "$T/agfs.log")" 1 \
	"one LOG_ERR line, not one at every poll (2 s of polls after it)"

prlimit --pid "$agfs_pid" --nofile="$soft": || bail "prlimit failed"
back=$(date +%s)
fs_wait_for 10 test -f "$T/mnt/$LATER"
ok $? "descriptors back: generation 2 is served at the next poll"
diag "served $(($(date +%s) - back)) s after the descriptors came back"
! grep -q '"CATALOG_REJECTED"' "$S/audit.log"
ok $? "and was never rejected"
fs_stop_fg "SIGTERM stops agfs -f with status 0"
done_testing
