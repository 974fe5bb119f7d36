#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Mounting and unmounting: refusals with one sentence and the agreed exit
# codes, an empty store, unmount by fusermount3 -u and by SIGTERM, remount,
# the mount.agfs helper (fstab), systemd readiness (NOTIFY_SOCKET).
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fs.sh"
need_root_fuse

tree=$T/tree store=$T/store mnt=$T/mnt
fs_model "$tree" registry.ollama.ai/library/tiny/latest 100000
fs_store "$store" "$tree" >/dev/null || bail "fs-mkstore failed"
mkdir -p "$mnt"
_mounts+=("$mnt")

# refused: exit status and exactly one line naming the file and the reason
refuse() { # refuse WANT-STATUS GREP DESCRIPTION -- agfs args
	local want=$1 pat=$2 desc=$3
	shift 4
	run_fail "$AGFS" "$@"
	is "$rc" "$want" "$desc: exit status $want"
	is "$(wc -l <"$T/err")" 1 "$desc: one line on stderr"
	grep -q -- "$pat" "$T/err"
	ok $? "$desc: the line says why" || diag "$(cat "$T/err")"
	! mountpoint -q "$mnt"
	ok $? "$desc: nothing is mounted"
}
mkdir -p "$T/foreign" "$T/bad"
echo hello >"$T/foreign/file"
cp -a "$store/." "$T/bad/"
head -c 65536 /dev/urandom >"$T/bad/index/data.mdb"
refuse 1 "$T/missing.*refusing to mount" "a missing store" -- "$T/missing" "$mnt"
refuse 1 "$T/foreign: not an agfs store; refusing to mount" "a foreign directory" -- "$T/foreign" "$mnt"
refuse 1 "$T/bad: .*refusing to mount" "a corrupt index" -- "$T/bad" "$mnt"
refuse 1 "generation 7 does not exist" "a missing pinned generation" -- -o generation=7 "$store" "$mnt"
refuse 1 "$T/nowhere: cannot mount here" "a missing mount point" -- "$store" "$T/nowhere"
refuse 2 "-o verify=some: verify is chunks or full" "a bad option value" -- -o verify=some "$store" "$mnt"
refuse 2 "bad value \"bogus\"" "an unknown option" -- -o bogus "$store" "$mnt"
run_fail "$AGFS" "$store"
is "$rc" 2 "a missing argument is a usage error (exit 2)"

# an empty store (no generation yet) mounts, and picks up the first import
empty=$T/empty
"$MKSTORE" --init "$empty" || bail "cannot init a store"
mount_agfs "$empty" "$mnt"
ok $? "a store without any generation mounts"
[ -d "$mnt/manifests" ] && [ -d "$mnt/blobs" ] && [ -d "$mnt/versions" ]
ok $? "manifests/, blobs/ and versions/ exist even then"
is "$(find "$mnt" -path "$mnt/blobs" -prune -o -type d -empty -print)" "" \
	"and none of them but blobs/ is empty (Ollama's prune only removes files there)"
fs_store "$empty" "$tree" >/dev/null
fs_wait_for 5 test -f "$mnt/manifests/registry.ollama.ai/library/tiny/latest"
ok $? "the first import shows up without a remount"
is "$(ls -A "$mnt/manifests")" registry.ollama.ai "and the placeholder is gone"
umount_agfs "$mnt"

# unmount, remount, SIGTERM
mount_agfs "$store" "$mnt" || bail "agfs did not mount"
pid=$(pgrep -f -x "$AGFS $store $mnt")
[ -n "$pid" ]
ok $? "the daemon runs in the background"
umount_agfs "$mnt"
ok $? "fusermount3 -u unmounts"
fs_wait_for 5 sh -c "! kill -0 $pid"
ok $? "and the daemon exits"
mount_agfs "$store" "$mnt"
ok $? "remounting works"
diff -r "$tree/manifests" "$mnt/manifests" >/dev/null && diff -r "$tree/blobs" "$mnt/blobs" >/dev/null
ok $? "the remounted tree is the same"
pid=$(pgrep -f -x "$AGFS $store $mnt")
kill -TERM "$pid"
fs_wait_for 5 sh -c "! mountpoint -q '$mnt'"
ok $? "SIGTERM unmounts"
fs_wait_for 5 sh -c "! kill -0 $pid"
ok $? "and the daemon exits"

# the fstab helper
AGFS=$AGFS "$SRC_DIR/fs/mount.agfs" "$store" "$mnt" -o rw,nofail,_netdev,x-systemd.automount,generation=1
ok $? "mount.agfs STORE DIR -o rw,nofail,...,generation=1 mounts"
grep -q " $mnt fuse.agfs ro," /proc/mounts
ok $? "read-only, as fuse.agfs"
cmp -s "$mnt/manifests/registry.ollama.ai/library/tiny/latest" "$tree/manifests/registry.ollama.ai/library/tiny/latest"
ok $? "and serves the store"
umount_agfs "$mnt"
"$SRC_DIR/fs/mount.agfs" "$store" 2>/dev/null
is $? 2 "mount.agfs without a mount point is a usage error"

# systemd readiness: READY=1 on NOTIFY_SOCKET once the mount answers
if python3 -c 'import socket' 2>/dev/null; then
	sock=$T/notify.sock
	python3 - "$sock" >"$T/notify" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(20)
print(s.recv(4096).decode())
PY
	listener=$!
	fs_wait_for 5 test -S "$sock"
	NOTIFY_SOCKET=$sock "$AGFS" -f "$store" "$mnt" 2>/dev/null &
	fg=$!
	wait $listener
	is "$(cat "$T/notify")" "READY=1" "with NOTIFY_SOCKET set, agfs sends READY=1"
	mountpoint -q "$mnt" && [ -d "$mnt/manifests" ]
	ok $? "and the mount answers by then"
	kill -TERM $fg
	wait $fg
	ok $? "agfs -f exits 0 on SIGTERM"
else
	skip "python3 is needed to listen on a NOTIFY_SOCKET"
fi
# agfs --help lists every -o option the parser takes (fs/options.c).
"$AGFS" --help >"$T/help"
ok $? "agfs --help exits 0"
missing=
for o in $(grep -o 'strncmp(opt, "[a-z_]*"' "$SRC_DIR/fs/options.c" | cut -d'"' -f2) allow_other; do
	grep -q "^ *$o[=| ]" "$T/help" || missing="$missing $o"
done
[ -z "$missing" ]
ok $? "agfs --help lists every -o option${missing:+ (missing:$missing)}"

done_testing
