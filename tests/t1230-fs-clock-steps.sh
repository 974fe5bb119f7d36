#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The wall clock set back or forward a day under running mounts (libfaketime
# in the daemons only, CLOCK_MONOTONIC left alone): every duration agfs keeps
# runs on the monotonic clock.  Set back: a rejected older generation signed
# later is still read again within a minute (keyring=), the metrics file is
# still rewritten every 15 s, a switch's grace period still ends after grace=
# seconds, a window of MODEL_OPEN records still ends after 60 s, and so does
# the minute of the budget of 20 "cannot be read" lines (used up by 30 blobs
# opened with the daemon out of descriptors).  Set forward: the grace period
# does not end at once.  On the wall clock, each of these waited a day for
# the clock to catch up, or ended at once.  The daemons' own
# agfs_generation_age_seconds shows that their wall clock did move by a day.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
. "$TESTS_DIR/lib-fs.sh"
need_cmd gpg tar gzip sha256sum jq prlimit
[ -x "$AGIMPORT" ] && [ -x "$AGSTORE" ] && [ -x "$AGFS" ] && [ -x "$MKSTORE" ] || skip_all "programs not built"
need_root_fuse
fs_faketime_ready || skip_all "$FS_FAKETIME_WHY"

declare -A pid
# start NAME STORE [agfs options]: agfs -f on $T/NAME with the clock of
# $T/NAME.clock (+0 at first) and its metrics in $T/NAME.prom
start() {
	local name=$1 store=$2
	shift 2
	echo +0 >"$T/$name.clock"
	mkdir -p "$T/$name"
	_mounts+=("$T/$name")
	(fs_faked "$T/$name.clock" "$AGFS" -f -o metrics="$T/$name.prom" "$@" "$store" "$T/$name" \
		2>"$T/$name.log") &
	pid[$name]=$!
	fs_wait_for 10 mountpoint -q "$T/$name" || bail "agfs did not mount $name: $(head -3 "$T/$name.log")"
}
stop() { fs_stop_pid "${pid[$1]}" "$T/$1.log" "$1: SIGTERM stops agfs -f with status 0"; }
trap 'for p in "${pid[@]}"; do kill "$p" 2>/dev/null; done; wait; gpgconf --kill gpg-agent 2>/dev/null; _cleanup' EXIT
age() { awk '$1 == "agfs_generation_age_seconds" {print $2}' "$T/$1.prom"; }
leased() { "$AGSTORE" --store "$1" --json pins | tr -d ' \n' | grep -o '"leased_generations":\[[^]]*\]'; }
# for fs_wait_for, which runs its command again and again
moved() { # moved NAME AGE-BEFORE: the age in NAME.prom is a day off AGE-BEFORE
	local d=$(($(age "$1") - $2))
	[ "${d#-}" -ge 86000 ]
}
leases() { [ "$(leased "$1")" = "\"leased_generations\":[$2]" ]; } # leases STORE 1,2

# keyring=: generation 1 unsigned (rejected), generation 2 signed (served)
make_gpg_key
ALICE=$KEY_FPR
make_two_bundles || bail "cannot make the bundles"
S=$T/store
"$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" "$T/b1/airgap-bundle-20260501.tar.gz" \
	>/dev/null 2>"$T/err" || bail "unsigned import: $(cat "$T/err")"
"$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" --sign-key "$ALICE" \
	"$T/b2/airgap-bundle-20260502.tar.gz" >/dev/null 2>"$T/err" || bail "import: $(cat "$T/err")"

start sig "$S" -o keyring="$T/pubkey.asc"
fs_wait_for 10 grep -q '"CATALOG_REJECTED".*"generation":1' "$S/audit.log"
ok $? "sig: the unsigned generation 1 is rejected (CATALOG_REJECTED)"
rejected_at=$(date +%s)
[ -d "$T/sig/versions/2" ] && [ ! -e "$T/sig/versions/1" ]
ok $? "sig: generation 2 is served, generation 1 not shown"
fs_wait_for 5 test -s "$T/sig.prom" || bail "no metrics file"
age0=$(age sig)
# two opens of a blob: one MODEL_OPEN record now, one with the count of the
# other when the window (60 s) ends
blob=$(ls "$T/sig/blobs" | head -n 1)
: <"$T/sig/blobs/$blob" && : <"$T/sig/blobs/$blob" || bail "cannot open $blob"
opens() { [ "$(grep '"MODEL_OPEN"' "$S/audit.log" | grep -c "\"digest\":\"${blob#sha256-}\"")" = "$1" ]; }
fs_wait_for 5 opens 1
ok $? "sig: one MODEL_OPEN record for two opens while the window is open"

# the budget of "cannot be read" lines, 20 a minute: 30 blobs that cannot be
# opened (the daemon out of descriptors) use it up and 10 go unlogged
for i in $(seq 1 16); do
	fs_model "$T/e" registry.ollama.ai/library/e$i/latest $((i * 4099))
done
# and a blob whose record goes while it is open: its block 4500 (tree block
# 35; a read loads 16) then cannot be checked, a minute later
fs_model "$T/e" registry.ollama.ai/library/late/latest $((20 * 1024 * 1024))
late=$FS_MODEL_HEX
fs_store "$T/errs.store" "$T/e" >/dev/null || bail "fs-mkstore failed"
start errs "$T/errs.store"
mapfile -t eblobs < <(ls "$T/errs/blobs" | grep -v "$late")
[ "${#eblobs[@]}" = 34 ] || bail "errs: ${#eblobs[@]} blobs, not 34"
exec 6<"$T/errs/blobs/sha256-$late"
"$MKSTORE" --drop-blob "$late" "$T/errs.store" || bail "fs-mkstore --drop-blob failed"
soft=$(prlimit --pid "${pid[errs]}" --nofile --raw --noheadings -o SOFT)
nofile() { prlimit --pid "${pid[errs]}" --nofile="$1": || bail "prlimit failed"; }
nofile 3
for b in "${eblobs[@]:0:30}"; do
	! cat "$T/errs/blobs/$b" >/dev/null 2>&1 || bail "errs: $b opened"
done
nofile "$soft"
errors_at=$(date +%s)
is "$(grep -c 'cannot be read: Too many open files' "$T/errs.log")" 20 \
	"errs: 30 blobs that cannot be opened, 20 'cannot be read' lines"
fs_wait_for 5 test -s "$T/errs.prom" || bail "no metrics file"
age0e=$(age errs)

echo -1d >"$T/sig.clock"
echo -1d >"$T/errs.clock"
"$AGSTORE" --store "$S" sign 1 --sign-key "$ALICE" >/dev/null 2>"$T/err"
ok $? "generation 1 signed by the trusted key, the mount's wall clock a day back"

fs_wait_for 25 moved sig "$age0"
ok $? "sig: the metrics file is still rewritten (every 15 s) after the clock was set back"
age1=$(age sig)
drop=$((age0 - age1))
[ "$drop" -ge 86300 ] && [ "$drop" -le 86400 ]
ok $? "sig: in it, the daemon's wall clock is a day back (generation age $age0 s, then $age1 s)"

fs_wait_for 25 moved errs "$age0e"
ok $? "errs: its wall clock is a day back too (generation age $age0e s, then $(age errs) s)"

# grace=: the previous generation stays leased for grace seconds after a switch
fs_model "$T/g1" registry.ollama.ai/library/one/latest 5000
fs_model "$T/g2" registry.ollama.ai/library/two/latest 5000
for s in fwd back; do
	fs_store "$T/$s.store" "$T/g1" >/dev/null && fs_store "$T/$s.store" "$T/g2" --no-activate >/dev/null ||
		bail "fs-mkstore failed"
done
start fwd "$T/fwd.store"
start back "$T/back.store" -o grace=6
fs_activate "$T/fwd.store" 2
fs_activate "$T/back.store" 2
fs_wait_for 5 leases "$T/fwd.store" 1,2
ok $? "fwd: after a switch both generations are leased (grace 600 s)"
fs_wait_for 5 leases "$T/back.store" 1,2
ok $? "back: after a switch both generations are leased (grace 6 s)"
age0=$(age fwd)
echo -1d >"$T/back.clock"
echo +1d >"$T/fwd.clock"
fs_wait_for 15 leases "$T/back.store" 2
ok $? "back: the clock a day back, the grace period still ends after 6 s"
fs_wait_for 25 moved fwd "$age0" || bail "fwd: no metrics file rewritten"
rise=$(($(age fwd) - age0))
[ "$rise" -ge 86400 ] && [ "$rise" -le 86500 ]
ok $? "fwd: the daemon's wall clock is a day ahead (generation age up $rise s)"
is "$(leased "$T/fwd.store")" '"leased_generations":[1,2]' \
	"fwd: the clock a day ahead, the grace period has not ended"
stop fwd
stop back

# keyring= again: the rejected generation is read again once a minute
# (monotonic), not at every poll
if [ $(($(date +%s) - rejected_at)) -lt 40 ]; then
	[ ! -e "$T/sig/versions/1" ]
	ok $? "sig: generation 1 is not read again at every poll"
else
	skip "sig: more than 40 s since the rejection; cannot tell a poll's re-read from the minute's"
fi
fs_wait_for 80 test -d "$T/sig/versions/1"
ok $? "sig: generation 1, signed, is shown within a minute of its rejection though the clock went back a day"
diag "shown $(($(date +%s) - rejected_at)) s after the rejection"
fs_wait_for 30 opens 2
ok $? "sig: the window of MODEL_OPEN still ends after 60 s: a second record counts the other open"
while [ $(($(date +%s) - errors_at)) -lt 62 ]; do
	sleep 1
done
# (not out of descriptors now: libfaketime reads the clock's file at each call)
! dd if="$T/errs/blobs/sha256-$late" bs=4096 skip=4500 count=1 of=/dev/null 2>/dev/null
ok $? "errs: the blob whose record went cannot be read"
exec 6<&-
grep -q '^agfs\[[0-9]*\]: 10 more store errors in the last minute were not logged' "$T/errs.log"
ok $? "errs: a minute later, though the clock went back a day, the 10 unlogged errors are counted"
grep -q "sha256:$late cannot be read: .*(not a verification failure)" "$T/errs.log"
ok $? "errs: and the next one is logged"
stop sig
stop errs
done_testing
