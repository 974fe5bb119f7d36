#!/bin/bash
# shellcheck disable=SC2154 # $rc is set by run_fail (tests/lib.sh)
# SPDX-License-Identifier: Apache-2.0
# agstore when memory runs out: verify, fsck, fsck --full, audit verify,
# status and gc --dry-run on a sound signed store, each with its address
# space capped (prlimit --as) at every 32 KiB step in the 3 MiB below the
# least it needs.  Wherever malloc fails the result is "could not check"
# (exit 4) or a whole success, never a verdict (exit 1, BROKEN, corrupt,
# edited) and never a success that skipped a check for want of memory.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
. "$TESTS_DIR/lib-tools.sh"
need_agstore
need_as_caps "$AGSTORE"

S=$T/store
first_generation_signed "$S"
"$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" --sign-key "$KEY_FPR" \
	"$T/b2/airgap-bundle-20260502.tar.gz" >/dev/null 2>"$T/err" || bail "import: $(cat "$T/err")"
"$AGSTORE" --store "$S" fsck >/dev/null 2>&1 || bail "the store is not sound"

capped() { # capped EXTRA_KIB agstore-args...
	local extra=$1
	shift
	prlimit --as="$(as_cap "$extra")" "$AGSTORE" --store "$S" "$@" >"$T/out" 2>"$T/err"
}

# verdict CMD: what in this run's output would be a verdict or an unearned
# success (empty: none).
verdict() {
	case $1 in
	verify*) grep -h 'BROKEN' "$T/out" "$T/err" ;;
	fsck*)
		grep -hE '^(corrupt|missing|stray|dangling|unaudited) ' "$T/out"
		grep -h '^fsck: [0-9]* objects' "$T/out" | grep -v ' 0 corrupt, 0 missing, 0 stray, 0 dangling'
		[ "$rc" = 0 ] && grep -h 'were skipped' "$T/out"
		;;
	"audit verify") grep -hE 'edited|removed|not valid JSON|missing|empty|started again' "$T/out" "$T/err" ;;
	status) grep -hE 'BROKEN|PROBLEMS|does NOT' "$T/out" "$T/err" ;;
	gc*) grep -hE '^(corrupt|dangling) ' "$T/out" ;;
	esac
}

for cmd in "verify --keyring $T/pubkey.asc --all" "fsck" "fsck --full" "audit verify" "status" "gc --dry-run"; do
	name=${cmd%% --keyring*}
	# shellcheck disable=SC2086 # cmd is split into its words on purpose
	capped $((1024 * 1024)) $cmd
	ok $? "$name with 1 GiB to spare exits 0" || bail "$(cat "$T/err")"
	# shellcheck disable=SC2086
	hi=$(least_cap 32 capped $cmd)
	runs=0 failed=0 inside=0 bad=""
	for extra in $(seq $((hi > 3072 ? hi - 3072 : 0)) 32 "$hi"); do
		# shellcheck disable=SC2086
		capped "$extra" $cmd
		rc=$?
		runs=$((runs + 1))
		[ "$rc" = 0 ] || failed=$((failed + 1))
		[ "$rc" = 4 ] && ! grep -q 'cannot open the store' "$T/err" && inside=$((inside + 1))
		case $rc in 0 | 4) ;; *) bad+=" +${extra}KiB: exit $rc: $(head -c 200 "$T/err")" ;; esac
		v=$(verdict "$cmd")
		[ -z "$v" ] || bad+=" +${extra}KiB (exit $rc): $v"
	done
	diag "$name: needs +$((hi / 1024)) MiB; $runs capped runs, $failed could not check ($inside after opening the store)"
	is "$bad" "" "$name: every capped run is a whole success or exit 4, never a verdict"
done

done_testing
