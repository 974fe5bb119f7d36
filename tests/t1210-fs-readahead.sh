#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The daemon's read-ahead (fs/readahead.c): sequential readers are answered
# from a window of blocks read and verified ahead of them.  Concurrent
# sequential readers of one blob at different offsets all get the right
# bytes; a damaged block inside a sequential reader's window gives EIO at
# that block (with the same VERIFY_FAILURE record as without read-ahead) and
# the right bytes before it, never the damaged ones; handles closed
# mid-stream, and readers that reached the end, give their window back; an
# idle reader's window goes to another and both read right; readahead=0
# turns it off.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fs.sh"
need_root_fuse

MiB=1048576
tree=$T/tree store=$T/store mnt=$T/mnt
fs_model "$tree" registry.ollama.ai/library/seq/latest $((40 * MiB + 4321))
hex=$FS_MODEL_HEX
fs_store "$store" "$tree" >/dev/null || bail "fs-mkstore failed"
obj=$(fs_object "$store" "$hex")
blob=$mnt/blobs/sha256-$hex
src=$tree/blobs/sha256-$hex

# readahead= is checked like the other sizes, and a refusal says what it takes
mkdir -p "$mnt"
for bad in readahead=3K readahead=64M readahead=x readahead=1536K; do
	"$AGFS" -o "allow_other,$bad" "$store" "$mnt" 2>"$T/err"
	rc=$?
	[ $rc -eq 2 ] && grep -q "$bad" "$T/err"
	ok $? "-o $bad is refused (exit $rc)"
	is "$(wc -l <"$T/err")" 1 "in one sentence"
	grep -q "^agfs: -o $bad: the read-ahead is whole MiB, from 0 (off) to 16M" "$T/err"
	ok $? "naming what readahead= takes: $(cat "$T/err")"
done

fs_mount_fg "$store" "$mnt" -o threads=16

# large direct reads (a stream's first requests, before it has a window)
# borrow a shared buffer: 32 readers at once, on all 16 FUSE threads, leave
# at most a couple of 1 MiB buffers behind, not one per thread
anon() { awk '/^RssAnon/ {print $2}' "/proc/$agfs_pid/status"; }
readers32() { # readers32 BS: 32 concurrent readers of 2 requests each, checked
	local i pids=() rc=0
	for i in $(seq 0 31); do
		(dd if="$blob" bs="$1" skip=$((i % 19 * 2)) count=2 status=none |
			cmp -s - <(dd if="$src" bs="$1" skip=$((i % 19 * 2)) count=2 status=none)) &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || rc=1; done
	return $rc
}
drop_caches
readers32 64k # every thread up, with its small buffer
before=$(anon)
bigok=0
for i in 1 2 3; do
	drop_caches
	readers32 1M || bigok=1
done
after=$(anon)
ok $bigok "32 concurrent readers of 1 MiB requests, 3 times, read the imported bytes"
diag "daemon RssAnon ${before} kB before, ${after} kB after"
[ "$after" -lt $((before + 10 * 1024)) ]
ok $? "and leave no 1 MiB buffer per thread behind (RssAnon grew $(((after - before) / 1024)) MiB)"
kill -TERM $agfs_pid 2>/dev/null
wait $agfs_pid
fs_mount_fg "$store" "$mnt"

drop_caches
cmp -s "$blob" "$src"
ok $? "a sequential read of the whole blob (cold) gives the imported bytes"

# part N of 4 (10 MiB each, the last one with the odd tail), read with dd
part() { # part FILE N
	if [ "$2" -eq 3 ]; then
		dd if="$1" bs=128k skip=240 status=none
	else
		dd if="$1" bs=128k skip=$(($2 * 80)) count=80 status=none
	fi
}
drop_caches
pids=""
for n in 0 1 2 3; do
	part "$blob" $n >"$T/part$n" &
	pids="$pids $!"
done
# shellcheck disable=SC2086 # one pid per word
wait $pids
for n in 0 1 2 3; do
	cmp -s "$T/part$n" <(part "$src" $n)
	ok $? "4 concurrent sequential readers: reader $n (from $((n * 10))MiB) got the right bytes"
done
drop_caches
"$HELPERS/fs-randread" -t 6 -n 40 -s 5 "$blob" "$src" >"$T/out" 2>&1 &
rr=$!
dd if="$blob" bs=1M status=none | cmp -s - "$src"
ok $? "a sequential reader among 6 random readers of the same blob gets the right bytes"
wait $rr
ok $? "and so do the random readers"
drop_caches
is "$("$HELPERS/fs-mmap" "$blob")" "$hex" "a shared mmap reader (cold) hashes the blob to its name"

# handles closed mid-stream: each window is unmapped at release, so many
# short sequential readers one after another leave no memory behind
rss() { awk '/^VmRSS/ {print $2}' "/proc/$agfs_pid/status"; }
drop_caches
head -c $((6 * MiB)) "$blob" >/dev/null
before=$(rss)
for i in $(seq 12); do
	drop_caches
	head -c $(((4 + i) * MiB)) "$blob" >/dev/null
	dd if="$blob" bs=256k skip=$((i * 4)) count=12 status=none >/dev/null &
	dd if="$blob" bs=256k skip=$((i * 8)) count=20 status=none >/dev/null
	wait $!
done
after=$(rss)
diag "daemon RSS ${before} kB before, ${after} kB after 36 readers closed mid-stream"
[ "$after" -lt $((before + 12 * 1024)) ]
ok $? "readers closed mid-stream give their windows back (RSS grew $(((after - before) / 1024)) MiB)"
is "$(kill -0 $agfs_pid && echo alive)" "alive" "the daemon is still running"

cmp -s "$blob" "$src"
ok $? "and still reads the blob right"

# readers that keep the file open: a window read to the end goes back at
# once; one left idle goes to another reader (victims then read on right)
exec 6<"$blob" 7<"$blob" 8<"$blob" 9<"$blob"
before=$(rss)
for fd in 6 7 8 9; do
	drop_caches
	cat <&$fd >/dev/null
done
after=$(rss)
# four held windows would be 16 MiB; under ASan on a busy machine the
# daemon's other memory (more FUSE threads, their buffers) has grown 8 MiB
[ "$after" -lt $((before + 12 * 1024)) ]
ok $? "4 readers that read to the end and keep the file open hold no window (RSS grew $(((after - before) / 1024)) MiB)"
exec 6<&- 7<&- 8<&- 9<&-
exec 6<"$blob" 7<"$blob" 8<"$blob" 9<"$blob"
for fd in 6 7 8 9; do
	drop_caches
	head -c $((12 * MiB)) <&$fd >/dev/null
done
sleep 1.2
drop_caches
cmp -s "$blob" "$src"
ok $? "a fifth sequential reader, while four idle ones hold windows, reads right"
for fd in 6 7 8 9; do
	drop_caches
	cat <&$fd | cmp -s - <(tail -c +$((12 * MiB + 1)) "$src")
	ok $? "the idle reader on fd $fd reads on right after its window went to another"
done
exec 6<&- 7<&- 8<&- 9<&-

# a damaged block inside a sequential reader's window
bad_blk=$((23 * 256 + 17)) # 23 MiB + 17 blocks in
off=$((bad_blk * 4096 + 1234))
printf '\x5a' | cmp -s - <(dd if="$obj" bs=1 skip=$off count=1 2>/dev/null) && flip='\xa5' || flip='\x5a'
printf "$flip" | dd of="$obj" bs=1 seek=$off conv=notrunc 2>/dev/null
drop_caches
cat "$blob" >"$T/got" 2>"$T/err"
rc=$?
[ $rc -ne 0 ] && grep -q "Input/output error" "$T/err"
ok $? "a sequential reader gets EIO at the damaged block"
got=$(stat -c %s "$T/got")
[ "$got" -le $((bad_blk * 4096)) ] && [ "$got" -ge $((bad_blk * 4096 - 2 * MiB)) ]
ok $? "it stopped just before the damaged block ($got bytes, block at $((bad_blk * 4096)))"
cmp -s "$T/got" <(head -c "$got" "$src")
ok $? "and everything it got before is what was imported"
dd if="$blob" of=/dev/null bs=4096 skip=$bad_blk count=1 2>"$T/err"
rc=$?
[ $rc -ne 0 ] && grep -q "Input/output error" "$T/err"
ok $? "the damaged block alone still gives EIO"
tail -c +$(((bad_blk + 1) * 4096 + 1)) "$blob" | cmp -s - <(tail -c +$(((bad_blk + 1) * 4096 + 1)) "$src")
ok $? "a sequential reader starting after it reads the rest right"
fs_wait_for 3 grep -q '"VERIFY_FAILURE"' "$store/audit.log"
ok $? "a VERIFY_FAILURE audit event is written"
grep '"VERIFY_FAILURE"' "$store/audit.log" | grep "\"digest\":\"$hex\"" | grep -q "\"chunk\":${bad_blk}[,}]"
ok $? "naming the blob and the damaged block"
if grep '"VERIFY_FAILURE"' "$store/audit.log" | grep -v "\"chunk\":${bad_blk}[,}]" | grep -q .; then
	ok 1 "no other block is blamed"
else
	ok 0 "no other block is blamed"
fi
grep -q "blob sha256:$hex chunk $bad_blk failed verification" "$T/agfs.log"
ok $? "and LOG_CRIT names the block"
kill -TERM $agfs_pid 2>/dev/null
wait $agfs_pid

# readahead=0: the same verdicts without a window
mount_agfs "$store" "$mnt" -o readahead=0 || bail "agfs -o readahead=0 did not mount"
drop_caches
cat "$blob" >"$T/got" 2>"$T/err"
[ $? -ne 0 ] && grep -q "Input/output error" "$T/err"
ok $? "with readahead=0 the sequential reader also gets EIO"
cmp -s "$T/got" <(head -c "$(stat -c %s "$T/got")" "$src")
ok $? "and the right bytes before it"
umount_agfs "$mnt"
done_testing
