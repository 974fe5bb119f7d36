#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Many generations (issue 13, "every lookup in versions/ scans all
# generations"): with 500 generations, ls -R of the mount works, versions/
# lists every one, every versions/N resolves to its own generation and no
# other name does; after gc drops 400 of them at once, exactly those leave
# versions/ and the daemon frees their trees.  ls -R's time is shown, not
# asserted (the machine's load decides it).
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fs.sh"
need_root_fuse

store=$T/store mnt=$T/mnt tree=$T/tree
N=500
as() { "$AGSTORE" --store "$store" "$@"; }
fs_model "$tree" registry.ollama.ai/library/one/latest 2000
fs_model "$tree" registry.ollama.ai/library/two/latest 2000
last=$(fs_store "$store" "$tree" --repeat $N | tail -1) || bail "fs-mkstore failed"
[ "$last" = $N ] || bail "expected generations 1..$N, the last is $last"
mount_agfs "$store" "$mnt" || bail "agfs did not mount"

start=$(date +%s%N)
ls -R "$mnt" >"$T/ls-R" 2>"$T/ls-R.err"
ok $? "ls -R of the mount with $N generations"
diag "ls -R: $((($(date +%s%N) - start) / 1000000)) ms, $(wc -l <"$T/ls-R") lines"
is "$(ls "$mnt/versions" | wc -l)" $((N + 1)) "versions/ lists $N generations and current"
is "$(grep -c '/INFO$' <(find "$mnt/versions/" -name INFO))" $N "find sees every versions/N/INFO"

# every versions/N resolves to its own generation (builtins: no fork each)
bad=0
for i in $(seq 1 $N); do
	read -r first <"$mnt/versions/$i/INFO" || first=
	[ "$first" = "id: $i" ] || bad=$((bad + 1))
done
is "$bad" 0 "each versions/N/INFO of $N is generation N's"
for name in 0 $((N + 1)) 007 1x -1 "$N " current2; do
	[ ! -e "$mnt/versions/$name" ] || bad=$((bad + 1))
done
is "$bad" 0 "no other name resolves in versions/ (0, $((N + 1)), 007, 1x, ...)"
is "$(readlink "$mnt/versions/current")" $N "versions/current -> $N"

before=$(stat -f -c %c "$mnt")
as gc --keep 100 >/dev/null 2>&1 || bail "agstore gc failed"
kept=$(as versions | awk 'NR > 1 {sub(/^\*/, "", $1); print $1}' | sort -n | tr '\n' ' ')
is "$(echo "$kept" | wc -w)" 100 "gc keeps the 100 most recent generations"
listed() { [ "$(ls "$mnt/versions" | grep -v current | sort -n | tr '\n' ' ')" = "$kept" ]; }
fs_wait_for 5 listed
ok $? "versions/ lists exactly what the store kept"
# the kernel is told to forget the dropped names just after the listing
# changed: give it the same time as the listing
resolves() { [ ! -e "$mnt/versions/1" ] && [ ! -e "$mnt/versions/$((N - 100))" ] && [ -e "$mnt/versions/$((N - 99))/INFO" ]; }
fs_wait_for 5 resolves
ok $? "a dropped generation's name no longer resolves, a kept one's does"
freed() { [ "$(stat -f -c %c "$mnt")" -lt $((before / 2)) ]; }
fs_wait_for 5 freed
ok $? "the dropped generations' trees are freed ($before live inodes before, $(stat -f -c %c "$mnt") after)"
ls -R "$mnt" >/dev/null 2>&1
ok $? "ls -R still works"
umount_agfs "$mnt"
done_testing
