#!/bin/bash
# shellcheck disable=SC2154 # $rc is set by run_fail (tests/lib.sh)
# SPDX-License-Identifier: Apache-2.0
# agimport when memory runs out: a good signed bundle imported with its
# address space capped (prlimit --as) at every 128 KiB step below the least
# it needs.  Wherever malloc fails (libarchive's decompressor, the member
# table, a manifest, bundle.json, a .sha256 list, the staging threads), the
# result is "could not import" (exit 4) or success, never a refusal of the
# bundle (exit 1), never a crash, and the store is left as it was.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
need_as_caps "$AGIMPORT"

make_gpg_key
make_two_bundles || bail "cannot make the bundles"
S=$T/store
"$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" "$T/b1/airgap-bundle-20260501.tar.gz" >/dev/null 2>&1 ||
	bail "the first bundle is not imported"
B2=$T/b2/airgap-bundle-20260502.tar.gz
before=$(snap "$S")

run_capped() { # run_capped EXTRA_KIB: imports B2 into a fresh copy of S
	rm -rf "$T/run" && cp -a "$S" "$T/run"
	prlimit --as="$(as_cap "$1")" \
		"$AGIMPORT" --store "$T/run" --keyring "$T/pubkey.asc" "$B2" >"$T/out" 2>"$T/err"
}
run_capped $((1024 * 1024))
ok $? "with a cap 1 GiB above the index's map the import works" || bail "$(cat "$T/err")"
hi=$(least_cap 128 run_capped)
diag "the import needs the index's map plus $((hi / 1024)) MiB of address space here"

runs=0 worked=0 nomem=0 bad=""
for extra in $(seq $((hi > 16384 ? hi - 16384 : 0)) 128 "$hi"); do
	run_capped "$extra"
	rc=$?
	runs=$((runs + 1))
	case $rc in
	0)
		worked=$((worked + 1))
		;;
	4)
		grep -q "out of memory\|Cannot allocate memory\|cannot start" "$T/err" || bad+=" +${extra}KiB: $(cat "$T/err")"
		grep -q "out of memory" "$T/err" && nomem=$((nomem + 1))
		[ "$(snap "$T/run")" = "$before" ] || bad+=" +${extra}KiB: the store changed"
		;;
	*)
		bad+=" +${extra}KiB: exit $rc: $(head -c 300 "$T/err")"
		;;
	esac
	grep -q "refused" "$T/err" && bad+=" +${extra}KiB: refused: $(cat "$T/err")"
done
diag "$runs capped imports: $worked worked, $((runs - worked)) could not import ($nomem said out of memory)"
is "$bad" "" "every capped import worked or exited 4 with the store unchanged; none refused the bundle or crashed"
[ "$nomem" -gt 0 ]
ok $? "some ran out of memory inside the import (not only starting its threads)"
[ "$worked" -gt 0 ]
ok $? "and the ones with enough memory imported it"

done_testing
