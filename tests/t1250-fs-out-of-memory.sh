#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# agfs when memory runs out.  Started with its address space capped
# (prlimit --as) at every 256 KiB step from 4 MiB below the least it needs to
# serve to 16 MiB above it (where it serves with fewer worker threads than it
# wants), and then with the cap lowered under a running daemon to what it
# has mapped: it either does not start (exit 4, saying so, no mount left) or
# it serves, and then every read gives the blob's right bytes or an error,
# never other bytes, never a verdict (no "failed verification", no
# VERIFY_FAILURE record, nothing remembered as bad), and it stops cleanly.
# libfuse's "error creating thread", which it logs for every request while
# it cannot start a worker thread, is logged once and then counted.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fs.sh"
need_root_fuse
need_as_caps "$AGFS"

tree=$T/tree store=$T/store mnt=$T/mnt
# 8 models: 17 blobs, the layers 0.3 to 2.4 MB (several chunks each)
for i in $(seq 1 8); do
	fs_model "$tree" registry.ollama.ai/library/m$i/latest $((i * 300007))
done
fs_store "$store" "$tree" >/dev/null || bail "fs-mkstore failed"
mkdir -p "$mnt"
_mounts+=("$mnt")

# read_all: every blob through the mount, its page cache dropped first;
# sets right, wrong and failed.
read_all() {
	local b n sum
	right=0 wrong=0 failed=0
	sync
	echo 3 >/proc/sys/vm/drop_caches
	for b in "$tree"/blobs/sha256-*; do
		n=${b##*/}
		if sum=$(sha256sum <"$mnt/blobs/$n" 2>>"$T/read.err"); then
			if [ "${sum%% *}" = "${n#sha256-}" ]; then right=$((right + 1)); else wrong=$((wrong + 1)); fi
		else
			failed=$((failed + 1))
		fi
	done
}

# start_capped EXTRA_KIB: agfs -f under the cap; 0 once it serves, else
# 1 with its exit status in $st.
start_capped() {
	prlimit --as="$(as_cap "$1")" "$AGFS" -f "$store" "$mnt" 2>"$T/agfs.log" &
	agfs_pid=$!
	local n=200
	while [ $((n -= 1)) -gt 0 ] && kill -0 "$agfs_pid" 2>/dev/null; do
		test -d "$mnt/blobs" 2>/dev/null && return 0
		sleep 0.05
	done
	kill -0 "$agfs_pid" 2>/dev/null && bail "agfs neither serves nor exits: $(cat "$T/agfs.log")"
	wait "$agfs_pid"
	st=$?
	return 1
}
stop() { # stop: SIGTERM; the exit status in $st
	kill -TERM "$agfs_pid" 2>/dev/null
	wait "$agfs_pid"
	st=$?
}

# serves EXTRA_KIB: it starts under the cap, every blob reads right, it stops with 0.
serves() {
	start_capped "$1" || return 1
	read_all
	stop
	[ "$right" = 17 ] && [ "$st" = 0 ]
}

serves $((1024 * 1024))
ok $? "with a cap 1 GiB above the index's map agfs serves every blob right" || bail "$(cat "$T/agfs.log")"
least=$(least_cap 512 serves)
diag "agfs needs the index's map plus $((least / 1024)) MiB of address space here to serve"

runs=0 started=0 refused=0 bad=""
for extra in $(seq $((least > 4096 ? least - 4096 : 0)) 256 $((least + 16384))); do
	runs=$((runs + 1))
	if start_capped "$extra"; then
		started=$((started + 1))
		read_all
		[ "$wrong" = 0 ] || bad+=" +${extra}KiB: $wrong blobs read with wrong bytes;"
		failures=$((${failures:-0} + failed))
		stop
		case $st in
		0) ;;
		4) grep -q 'could not start a worker thread' "$T/agfs.log" ||
			bad+=" +${extra}KiB: exit 4 after serving: $(tail -n 2 "$T/agfs.log");" ;;
		*) bad+=" +${extra}KiB: stopped with status $st: $(tail -n 3 "$T/agfs.log");" ;;
		esac
	else
		refused=$((refused + 1))
		[ "$st" = 4 ] || bad+=" +${extra}KiB: did not start, exit $st: $(tail -n 3 "$T/agfs.log");"
		grep -Eq 'cannot start|could not start|cannot open|cannot mount|cannot allocate|Cannot allocate' "$T/agfs.log" ||
			bad+=" +${extra}KiB: did not start without saying why: $(cat "$T/agfs.log");"
	fi
	! mountpoint -q "$mnt" || {
		bad+=" +${extra}KiB: the mount was left behind;"
		fusermount3 -u "$mnt"
	}
	grep -q 'failed verification' "$T/agfs.log" && bad+=" +${extra}KiB: $(grep 'failed verification' "$T/agfs.log" | head -n 1);"
	n=$(grep -c 'error creating thread' "$T/agfs.log")
	[ "$n" -le 1 ] || bad+=" +${extra}KiB: 'error creating thread' logged $n times;"
done
diag "$runs capped starts: $started served, $refused did not start; ${failures:-0} reads failed"
is "$bad" "" "under every cap agfs did not start (exit 4, saying why) or served only right bytes and stopped cleanly"
[ "$started" -gt 0 ] && [ "$refused" -gt 0 ]
ok $? "the sweep covers both: some caps too small to start, some that serve"

# The cap lowered under a running daemon to what it has mapped: it can map
# nothing more (no new worker thread, no new buffer).
fs_mount_fg "$store" "$mnt"
vm=$(awk '/^VmSize:/ {print $2}' "/proc/$agfs_pid/status")
prlimit --pid "$agfs_pid" --as=$((vm * 1024)): || bail "prlimit failed"
read_all
is "$wrong" 0 "the cap lowered under it: no blob reads with wrong bytes ($right right, $failed failed)"
read_all
is "$wrong" 0 "and again"
prlimit --pid "$agfs_pid" --as=unlimited: || bail "prlimit failed"
read_all
is "$right/$wrong/$failed" "17/0/0" "memory back: every blob reads right (nothing remembered as bad)"
n=$(grep -c 'error creating thread' "$T/agfs.log")
[ "$n" -le 1 ]
ok $? "libfuse's 'error creating thread' logged $n times, not once a request"
! grep -q 'failed verification' "$T/agfs.log"
ok $? "no 'failed verification' line"
fs_stop_fg "SIGTERM stops agfs -f with status 0"
! grep -q '"VERIFY_FAILURE"' "$store/audit.log"
ok $? "no VERIFY_FAILURE record"
done_testing
