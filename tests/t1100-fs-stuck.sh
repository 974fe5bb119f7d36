#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# stuck=kill under the shipped unit (issue 11 #1): agfs runs with exactly
# the capability bounding set of contrib/systemd/agfs.service, the stuck
# MAP_POPULATE reader runs as another user (nobody).  The reader is killed.
# Without CAP_KILL the kill fails: agfs says so once per back-off and writes
# one READER_KILLED ("killed":false) record, not one every few faults; with
# the daemon's wall clock then set back a day (libfaketime), the back-off
# still ends after its 30 s.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fs.sh"
need_root_fuse
need_cmd setpriv timeout
id nobody >/dev/null 2>&1 || skip_all "needs the user nobody"

unit=$SRC_DIR/contrib/systemd/agfs.service
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit")
[ -n "$caps" ] || bail "no CapabilityBoundingSet= in $unit"
bset="-all"
for c in $caps; do
	c=${c#CAP_}
	bset="$bset,+${c,,}"
done
diag "the unit's bounding set: $caps ($bset)"

chmod 755 "$T"
tree=$T/tree store=$T/store mnt=$T/mnt
fs_model "$tree" registry.ollama.ai/library/stuck/latest $((2 * 1024 * 1024))
hex=$FS_MODEL_HEX
fs_store "$store" "$tree" >/dev/null || bail "fs-mkstore failed"
obj=$(fs_object "$store" "$hex")
off=$((5 * 65536 + 3))
printf '\x5a' | cmp -s - <(dd if="$obj" bs=1 skip=$off count=1 2>/dev/null) && b='\xa5' || b='\x5a'
printf "$b" | dd of="$obj" bs=1 seek=$off conv=notrunc 2>/dev/null

# with libfaketime, the daemon's wall clock is the one $T/clock gives
clock=
if fs_faketime_ready; then
	clock=$T/clock
	echo +0 >"$clock"
else
	diag "the back-off under a clock set back is not tested: $FS_FAKETIME_WHY"
fi
# start_agfs BOUNDING-SET LOG: agfs -f -o allow_other under that bounding set
start_agfs() {
	mkdir -p "$mnt"
	_mounts+=("$mnt")
	(
		[ -z "$clock" ] || fs_faked "$clock" setpriv --bounding-set "$1" --no-new-privs \
			"$AGFS" -f -o allow_other,metrics="$T/metrics" "$store" "$mnt" 2>"$2"
		exec setpriv --bounding-set "$1" --no-new-privs "$AGFS" -f -o allow_other "$store" "$mnt" \
			2>"$2"
	) &
	agfs_pid=$!
	fs_wait_for 10 mountpoint -q "$mnt" || bail "agfs did not mount under bounding set $1"
	fs_wait_for 10 test -d "$mnt/blobs" || bail "the mount does not answer"
}
stop_agfs() {
	kill -TERM $agfs_pid
	wait $agfs_pid
}

start_agfs "$bset" "$T/agfs.log"
drop_caches
timeout -k 5 60 env ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_sigbus=0 \
	setpriv --reuid=nobody --regid=nogroup --clear-groups \
	"$HELPERS/fs-mmap" --populate "$mnt/blobs/sha256-$hex" >"$T/out" 2>/dev/null
rc=$?
is "$rc" 137 "under the unit's capabilities, a stuck MAP_POPULATE reader run by nobody is killed"
fs_wait_for 3 grep -q '"READER_KILLED"' "$store/audit.log"
grep '"READER_KILLED"' "$store/audit.log" | tail -1 | grep -q '"killed":true'
ok $? "READER_KILLED says it was killed"
stop_agfs

# without CAP_KILL: the kill fails; agfs backs off instead of flooding
before=$(grep -c '"READER_KILLED"' "$store/audit.log")
start_agfs "-all,+sys_admin" "$T/agfs2.log"
drop_caches
# setpriv in the background itself (not through a shell function, whose $!
# would be a subshell): $reader is the reader's pid, so the kill below ends it
setpriv --reuid=nobody --regid=nogroup --clear-groups \
	env ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_sigbus=0 \
	"$HELPERS/fs-mmap" --populate "$mnt/blobs/sha256-$hex" >/dev/null 2>&1 &
reader=$!
sleep 8
after=$(grep -c '"READER_KILLED"' "$store/audit.log")
is "$((after - before))" 1 "without CAP_KILL: one READER_KILLED record in 8 s of a stuck reader"
grep '"READER_KILLED"' "$store/audit.log" | tail -1 | grep -q '"killed":false'
ok $? "saying the kill failed"
is "$(grep -c "cannot kill pid" "$T/agfs2.log")" 1 "and one log line saying so, with the back-off"
grep -q "cannot kill pid.*leaving it alone for 30 s" "$T/agfs2.log"
ok $? "the back-off is 30 s"
failures=$(grep -c "failed verification" "$T/agfs2.log")
[ "$failures" -le 2 ]
ok $? "VERIFY_FAILURE lines stay rate-limited ($failures)"
# the back-off runs on the monotonic clock: set the wall clock a day back,
# and the reader, still stuck, is seen again when the 30 s are over
if [ -n "$clock" ]; then
	age() { awk '$1 == "agfs_generation_age_seconds" {print $2}' "$T/metrics"; }
	age0=$(age)
	echo -1d >"$clock"
	fs_wait_for 40 grep -q "leaving it alone for 60 s" "$T/agfs2.log"
	ok $? "the wall clock set back a day, the back-off still ends after 30 s (the next one: 60 s)"
	is "$(($(grep -c '"READER_KILLED"' "$store/audit.log") - before))" 2 \
		"two READER_KILLED records in all"
	drop=$((age0 - $(age)))
	[ "$drop" -ge 86300 ] && [ "$drop" -le 86400 ]
	ok $? "the daemon's wall clock is a day back (agfs_generation_age_seconds fell by $drop s)"
else
	for _ in 1 2 3; do
		skip "the back-off under a clock set back: $FS_FAKETIME_WHY"
	done
fi
kill -KILL $reader 2>/dev/null
wait $reader 2>/dev/null
kill -0 $agfs_pid
ok $? "the daemon is alive"
stop_agfs
done_testing
