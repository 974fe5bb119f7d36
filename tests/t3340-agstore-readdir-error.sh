#!/bin/bash
# shellcheck disable=SC2154 # $rc is set by run_fail (tests/lib.sh)
# SPDX-License-Identifier: Apache-2.0
# A directory that cannot be read is not an empty directory (issue 11 #10):
# with readdir() failing (EIO) on one fan-out directory of objects/, agstore
# fsck and gc stop with an I/O error naming the store instead of reporting a
# clean store or sweeping on half a listing.  The failure is injected with a
# small LD_PRELOAD shim built here.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-tools.sh"
need_agstore
need_cmd cc

cat >"$T/shim.c" <<'EOF'
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* readdir() on the directory whose path ends with $SHIM_FAIL_DIR fails with
 * EIO (after "." and ".."): a disk error in the middle of a listing. */
static int failing(DIR *d)
{
	const char *want = getenv("SHIM_FAIL_DIR");
	char link[64], path[4096];
	if (!want)
		return 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd(d));
	ssize_t n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		return 0;
	path[n] = '\0';
	size_t lw = strlen(want);
	return (size_t)n >= lw && !strcmp(path + n - lw, want);
}

#define WRAP(name, type)                                                         \
	type *name(DIR *d)                                                       \
	{                                                                        \
		static type *(*real)(DIR *);                                     \
		if (!real)                                                       \
			real = (type * (*)(DIR *)) dlsym(RTLD_NEXT, #name);      \
		type *e = real(d);                                               \
		if (e && failing(d) && strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) { \
			errno = EIO;                                             \
			return NULL;                                             \
		}                                                                \
		return e;                                                        \
	}
WRAP(readdir, struct dirent)
WRAP(readdir64, struct dirent64)
EOF
cc -shared -fPIC -o "$T/shim.so" "$T/shim.c" -ldl 2>"$T/cc.err" || skip_all "cannot build the LD_PRELOAD shim: $(head -1 "$T/cc.err")"
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0

S=$T/store
"$AGSTORE" --store "$S" init >/dev/null || bail "cannot init a store"
for i in 1 2 3 4; do
	tools_model "$T/t1" "registry.ollama.ai/library/m$i/latest" 5000 >/dev/null
done
tools_gen "$S" "$T/t1" >/dev/null || bail "cannot write a generation"
hex=$(tools_weights "$T/t1" registry.ollama.ai/library/m2/latest)
fan=objects/sha256/${hex:0:2}
echo junk >"$S/$fan/stray-file"
nbefore=$(find "$S/objects" -type f | wc -l)

"$AGSTORE" --store "$S" fsck >/dev/null 2>&1
is $? 1 "without the fault, fsck sees the stray file"

SHIM_FAIL_DIR=$fan LD_PRELOAD=$T/shim.so "$AGSTORE" --store "$S" fsck >"$T/out" 2>"$T/err"
rc=$?
is $rc 4 "fsck with an unreadable fan-out directory exits 4 (I/O)"
grep -q "Input/output error" "$T/err"
ok $? "and says so: $(cat "$T/err")"

SHIM_FAIL_DIR=$fan LD_PRELOAD=$T/shim.so "$AGSTORE" --store "$S" gc --keep 0 >"$T/out" 2>"$T/err"
rc=$?
is $rc 4 "gc with an unreadable fan-out directory exits 4 (I/O)"
is "$(find "$S/objects" -type f | wc -l)" "$nbefore" "and removes nothing"

SHIM_FAIL_DIR=/no/such/dir LD_PRELOAD=$T/shim.so "$AGSTORE" --store "$S" fsck >"$T/out" 2>&1
is $? 1 "with the shim aimed elsewhere, fsck runs as before (finds the stray)"
done_testing
