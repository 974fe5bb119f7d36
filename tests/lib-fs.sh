# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# Helpers for the mount's tests (tests/t1*-*.sh): small Ollama trees made of
# random blobs, put into a store with tests/helpers/fs-mkstore.  Source after
# tests/lib.sh.
#
#   fs_model TREE HOST/NS/MODEL/TAG BYTES   a model whose weights are BYTES random bytes
#   fs_store STORE TREE [fs-mkstore opts]   a new generation holding TREE; prints its id
#   fs_activate STORE N                     makes generation N current
#   fs_object STORE HEX                     path of a blob's object file in the store
#   fs_sha TREE-OR-MOUNT                    "<hex> <relpath>" for every file under blobs/

MKSTORE=$HELPERS/fs-mkstore
FS_MT_MANIFEST=application/vnd.docker.distribution.manifest.v2+json
FS_MT_CONFIG=application/vnd.docker.container.image.v1+json
FS_MT_MODEL=application/vnd.ollama.image.model
FS_MT_TEMPLATE=application/vnd.ollama.image.template

# _fs_blob TREE FILE: renames FILE to its digest name; sets _hex and _size.
_fs_blob() {
	_hex=$(sha256sum "$2" | cut -d' ' -f1)
	_size=$(stat -c %s "$2")
	mv -f "$2" "$1/blobs/sha256-$_hex"
}

fs_model() {
	local tree=$1 name=$2 bytes=$3 mh ms ch cs th ts
	mkdir -p "$tree/blobs" "$tree/manifests/$(dirname "$name")"
	head -c "$bytes" /dev/urandom >"$tree/blobs/.new"
	_fs_blob "$tree" "$tree/blobs/.new"
	mh=$_hex ms=$_size
	printf '{"model_format":"gguf","model_family":"test","model_type":"%s","architecture":"amd64","os":"linux"}\n' \
		"$name" >"$tree/blobs/.new"
	_fs_blob "$tree" "$tree/blobs/.new"
	ch=$_hex cs=$_size
	printf '{{ .Prompt }}' >"$tree/blobs/.new"
	_fs_blob "$tree" "$tree/blobs/.new"
	th=$_hex ts=$_size
	printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"%s","digest":"sha256:%s","size":%s},{"mediaType":"%s","digest":"sha256:%s","size":%s}]}' \
		"$FS_MT_MANIFEST" "$FS_MT_CONFIG" "$ch" "$cs" "$FS_MT_MODEL" "$mh" "$ms" \
		"$FS_MT_TEMPLATE" "$th" "$ts" >"$tree/manifests/$name"
	FS_MODEL_HEX=$mh
}

fs_store() {
	local store=$1 tree=$2
	shift 2
	"$MKSTORE" "$@" "$store" "$tree"
}

fs_activate() {
	"$MKSTORE" --activate "$2" "$1" >/dev/null
}

fs_object() {
	printf '%s/objects/sha256/%s/%s\n' "$1" "${2:0:2}" "$2"
}

fs_sha() {
	(cd "$1" && find blobs -type f -name 'sha256-*' -print0 | sort -z | xargs -0r sha256sum)
}

# fs_wait_for SECONDS CMD...: retries CMD every 0.1 s until it succeeds.
fs_wait_for() {
	local n=$(($1 * 10))
	shift
	while [ "$n" -gt 0 ]; do
		"$@" 2>/dev/null && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

# fs_mount_fg STORE MNT [AGFS-OPTION...]: agfs in the foreground (so its
# syslog lines are also on its stderr, kept in $T/agfs.log), in the
# background; sets agfs_pid; lib.sh unmounts MNT at exit.
fs_mount_fg() {
	local store=$1 mnt=$2
	shift 2
	mkdir -p "$mnt"
	_mounts+=("$mnt")
	"$AGFS" -f "$@" "$store" "$mnt" 2>"$T/agfs.log" &
	agfs_pid=$!
	fs_wait_for 10 mountpoint -q "$mnt" || bail "agfs -f did not mount"
	fs_wait_for 10 test -d "$mnt/blobs" || bail "the mount does not answer"
}

# fs_stop_pid PID LOG MESSAGE: SIGTERM to an agfs -f this shell started, and
# one test point that it exits with status 0; if not, the status and the end
# of LOG (where a sanitizer's report goes) as diagnostics.
fs_stop_pid() {
	local st
	kill -TERM "$1"
	wait "$1"
	st=$?
	ok $st "$3"
	[ $st = 0 ] || {
		diag "agfs exited with status $st; the end of its log:"
		tail -n 40 "$2" | sed 's/^/#   /'
	}
}

# fs_stop_fg MESSAGE: fs_stop_pid for the agfs -f of fs_mount_fg.
fs_stop_fg() {
	fs_stop_pid "$agfs_pid" "$T/agfs.log" "$1"
}

# fs_faketime_ready: finds Debian's libfaketime and checks that it sets a
# program's wall clock back a day; false, with the reason in
# $FS_FAKETIME_WHY, when it cannot.
fs_faketime_ready() {
	local f back
	FS_FAKETIME=
	for f in /usr/lib/*/faketime/libfaketimeMT.so.1; do
		[ -e "$f" ] && FS_FAKETIME=$f
	done
	if [ -z "$FS_FAKETIME" ]; then
		FS_FAKETIME_WHY="libfaketime is not installed (Debian package libfaketime)"
		return 1
	fi
	export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
	echo -1d >"$T/probe.clock"
	back=$(($(date +%s) - $( (fs_faked "$T/probe.clock" date +%s))))
	[ "$back" -ge 86390 ] && [ "$back" -le 86410 ] && return 0
	FS_FAKETIME_WHY="libfaketime does not set the clock back here ($back s)"
	return 1
}

# fs_faked CLOCKFILE CMD...: execs CMD (so call it in a subshell) with the
# wall clock that CLOCKFILE gives (libfaketime's offsets: +0, -1d, +1d),
# read again at every call; CLOCK_MONOTONIC is left alone, and only
# programs named agfs or date are faked, not the gpg that agfs runs (which
# would take a signature made after its clock for a bad one).  libfaketime
# 0.9.10's pthread_cond_timedwait returns at once for a condition variable
# on CLOCK_MONOTONIC; agfs's timed waits use pthread_cond_clockwait, which
# it leaves alone.
fs_faked() {
	local clock=$1
	shift
	exec env LD_PRELOAD="$FS_FAKETIME" FAKETIME_TIMESTAMP_FILE="$clock" FAKETIME_NO_CACHE=1 \
		FAKETIME_DONT_FAKE_MONOTONIC=1 NO_FAKE_STAT=1 FAKETIME_ONLY_CMDS=agfs,date "$@"
}

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches 2>/dev/null
}

# fs_flip_read STORE HEX FILE CHUNK BYTE: flips byte BYTE of 64 KiB chunk
# CHUNK in blob HEX's object in STORE, drops the caches (a skip point when it
# cannot) and reads that chunk's first 4 KiB block of FILE (the blob through
# the mount); succeeds when the read fails with "Input/output error".
fs_flip_read() {
	local obj off flip
	obj=$(fs_object "$1" "$2")
	off=$(($4 * 65536 + $5))
	printf '\x5a' | cmp -s - <(dd if="$obj" bs=1 skip=$off count=1 2>/dev/null) && flip='\xa5' || flip='\x5a'
	printf "$flip" | dd of="$obj" bs=1 seek=$off conv=notrunc 2>/dev/null
	drop_caches || skip "cannot drop caches"
	dd if="$3" of=/dev/null bs=4096 skip=$(($4 * 16)) count=1 2>"$T/err"
	[ $? -ne 0 ] && grep -q "Input/output error" "$T/err"
}
