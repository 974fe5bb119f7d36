#!/bin/bash
# shellcheck disable=SC2154 # $rc is set by run_fail (tests/lib.sh)
# SPDX-License-Identifier: Apache-2.0
# agimport and agstore with too few file descriptors (prlimit --nofile at
# every value from 4 up to what they need): opening the store, the index,
# the bundle, the keyring (gpg's pipes), the objects.  Wherever open(),
# pipe() or gpg fails, the result is "could not" (exit 4) or a whole
# success: never a refusal of a good signed bundle, never "the keyring holds
# no usable key" or any other usage error, never a broken chain or a
# corrupt object, and a failed import leaves the store as it was.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
. "$TESTS_DIR/lib-tools.sh"
need_agstore
command -v prlimit >/dev/null || skip_all "prlimit (util-linux) is not installed"

S=$T/store
first_generation_signed "$S"
B2=$T/b2/airgap-bundle-20260502.tar.gz
before=$(snap "$S")

# sweep NAME VERDICT-PATTERN CMD...: CMD under --nofile 4, 5, ... until it
# exits 0; every run before must exit 4 and print nothing matching the
# pattern (in its output or errors), and the run that exits 0 skipped
# nothing.
sweep() {
	local name=$1 pat=$2 n bad="" fails=0
	shift 2
	for n in $(seq 4 64); do
		"$@" "$n" >"$T/out" 2>"$T/err"
		rc=$?
		[ "$rc" = 0 ] && break
		fails=$((fails + 1))
		[ "$rc" = 4 ] || bad+=" nofile=$n: exit $rc: $(head -c 300 "$T/err")"
		if grep -qE "$pat" "$T/out" "$T/err"; then bad+=" nofile=$n: $(grep -hE "$pat" "$T/out" "$T/err" | head -1)"; fi
	done
	if [ "$rc" = 0 ] && grep -q 'were skipped' "$T/out"; then bad+=" nofile=$n: exit 0 with checks skipped"; fi
	diag "$name: exit 0 from --nofile $n; $fails runs below exited 4"
	is "$rc" 0 "$name works with enough descriptors"
	[ "$fails" -gt 0 ]
	ok $? "$name: some runs had too few"
	is "$bad" "" "$name: with too few, exit 4 and no verdict"
}

import_b2() { # import_b2 NOFILE: B2 into a fresh copy of S
	rm -rf "$T/run" && cp -a "$S" "$T/run"
	prlimit --nofile="$1" "$AGIMPORT" --store "$T/run" --keyring "$T/pubkey.asc" "$B2" || return
}
sweep "agimport of a signed bundle" 'refused|no usable|not signed|is not valid|malformed' import_b2
# the store copy of each failed run must be as it was; check the last one
import_b2 4 >/dev/null 2>&1
is "$(snap "$T/run")" "$before" "a failed import leaves the store as it was"

agstore_n() { # agstore_n ARGS... NOFILE
	local n=${*: -1}
	prlimit --nofile="$n" "$AGSTORE" --store "$S" "${@:1:$#-1}"
}
sweep "agstore verify" 'BROKEN|no usable' agstore_n verify --keyring "$T/pubkey.asc" --all
sweep "agstore fsck" '^(corrupt|missing|stray|dangling) ' agstore_n fsck
sweep "agstore audit verify" 'edited|removed|missing|empty|started again' agstore_n audit verify

done_testing
