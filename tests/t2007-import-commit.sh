#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Issue 10, items 4, 8, 13, 14: the commit and what surrounds it.
#  - a kill after the artifacts copy and before the commit (and one right
#    after the commit) never breaks the retry;
#  - the private GnuPG home lives in the store's tmp/, not in $TMPDIR, and
#    the next writer removes it;
#  - no generation without its audit record, and no success printed when the
#    record cannot be written;
#  - a damaged object is repaired by re-importing the good bundle.
# AGIMPORT_TEST_KILL=<point> is agimport's test-only hook (doc/agimport.8).
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
need_cmd gpg tar gzip sha256sum openssl python3
[ -x "$AGIMPORT" ] || skip_all "agimport not built"
[ -x "$AGSTORE" ] || skip_all "agstore not built"

make_gpg_key
TREE=$T/tree
make_random_ollama_tree "$TREE" 70000
make_bundle_dir "$TREE" "$T/b" 20260424
bundle_tar "$T/b" "$T/b.tgz"
imp() { "$AGIMPORT" --keyring "$T/pubkey.asc" "$@"; }
mkdir -p "$T/gtmp"

# --- 13 and 14: killed before the commit, then retried ---
S=$T/s13
AGIMPORT_TEST_KILL=before-commit TMPDIR=$T/gtmp imp --store "$S" --artifacts-dir "$T/arts" \
	--transfer-log "$T/transfer.log" "$T/b.tgz" >/dev/null 2>&1
is "$?" 137 "an import killed after copying artifacts, before its commit"
[ ! -e "$T/arts/20260424" ]
ok $? "left no DIR/<label> behind"
is "$(ls -A "$T/gtmp")" "" "nor a GnuPG home in \$TMPDIR"
ls -d "$S"/tmp/agimport-gnupg.* >/dev/null 2>&1
ok $? "its GnuPG home was in the store's tmp/"
"$AGSTORE" --store "$S" gc >/dev/null 2>"$T/err"
ok $? "another writer (agstore gc) opens the store after the kill" || cat "$T/err"
is "$(ls -A "$S/tmp")" "" "and removes the killed run's GnuPG home and staging"
AGIMPORT_TEST_KILL=before-commit imp --store "$S" --artifacts-dir "$T/arts" "$T/b.tgz" >/dev/null 2>&1
imp --store "$S" --artifacts-dir "$T/arts" --transfer-log "$T/transfer.log" "$T/b.tgz" >"$T/out" 2>"$T/err"
ok $? "the retry succeeds" || cat "$T/err"
cmp -s "$T/arts/20260424/binaries/ollama-linux-amd64" "$T/b/binaries/ollama-linux-amd64"
ok $? "and puts the artifacts in place"
is "$(ls -A "$T/arts")" "20260424" "with no temporary left beside them"
is "$(ls -A "$S/tmp")" "" "the next writer removed the killed run's GnuPG home and staging"
is "$(grep -c BUNDLE_INGEST "$S/audit.log")" 1 "one BUNDLE_INGEST for one generation"

# killed right after the commit, before the artifacts were put into place
S=$T/s13b
AGIMPORT_TEST_KILL=after-commit imp --store "$S" --artifacts-dir "$T/arts2" "$T/b.tgz" >/dev/null 2>&1
is "$?" 137 "an import killed right after its commit"
imp --store "$S" --artifacts-dir "$T/arts2" "$T/b.tgz" >"$T/out" 2>"$T/err"
ok $? "the retry succeeds" || cat "$T/err"
[ -f "$T/arts2/20260424/images/open-webui.tar" ] && is "$(ls -A "$T/arts2")" "20260424" "and the artifacts are in place, once"
imp --store "$S" --artifacts-dir "$T/arts2" "$T/b.tgz" >"$T/out" 2>"$T/err"
ok $? "a third run with the same files in place succeeds too" || cat "$T/err"
cp -a "$T/b" "$T/b2" && echo "other" >>"$T/b2/images/open-webui.tar" &&
	(cd "$T/b2" && sha256sum images/open-webui.tar >signatures/open-webui.sha256 && resign_bundle . &&
		python3 -c "import json,hashlib,sys; b=json.load(open('manifest/bundle.json')); b['artifacts']['open_webui_image']=hashlib.sha256(open('images/open-webui.tar','rb').read()).hexdigest(); open('manifest/bundle.json','w').write(json.dumps(b))" &&
		_sign manifest/bundle.json)
run_fail imp --store "$S" --artifacts-dir "$T/arts2" "$T/b2"
grep -q "20260424: it already exists, with other files" "$T/err"
ok $? "other files under the same label are refused before the commit" || cat "$T/err"

# --dry-run without a writable store: the home goes to $TMPDIR and is removed
TMPDIR=$T/gtmp imp --store "$T/nostore" --dry-run "$T/b.tgz" >/dev/null 2>"$T/err"
ok $? "a dry run against a store yet to be made" || cat "$T/err"
is "$(ls -A "$T/gtmp")" "" "leaves no GnuPG home in \$TMPDIR"

# --- 4. the audit record cannot be written ---
S=$T/s4
"$AGIMPORT" --store "$S" --no-signature --ollama-dir "$TREE" --label 20260101 >/dev/null 2>&1
if chattr +i "$S/audit.log" 2>/dev/null; then
	before=$(snap "$S")
	run_fail imp --store "$S" "$T/b.tgz"
	st=$rc
	chattr -i "$S/audit.log"
	is "$st" 4 "an import whose audit record cannot be written fails (4)"
	! grep -q "imported as generation" "$T/out"
	ok $? "and prints no success"
	grep -q "audit" "$T/err"
	ok $? "saying the audit record could not be written" || cat "$T/err"
	is "$(snap "$S")" "$before" "no generation was added"
	"$AGSTORE" --store "$S" audit verify >/dev/null 2>"$T/err"
	ok $? "the audit chain still verifies" || cat "$T/err"
else
	for i in 1 2 3 4 5; do skip "chattr +i is not supported here (needs root on ext4/xfs/btrfs)"; done
fi

# --- 8. a damaged object is repaired by a re-import ---
S=$T/s8
imp --store "$S" "$T/b.tgz" >/dev/null 2>"$T/err" || bail "the import failed: $(cat "$T/err")"
W=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"][7:])' \
	"$TREE/manifests/registry.ollama.ai/library/tiny/latest")
O=$S/objects/sha256/${W:0:2}/$W
printf 'X' | dd of="$O" bs=1 seek=1000 conv=notrunc status=none
run_fail "$AGSTORE" --store "$S" fsck
ok $? "a flipped byte in an object fails fsck"
imp --store "$S" "$T/b.tgz" >"$T/out" 2>"$T/err"
ok $? "re-importing the good bundle succeeds" || cat "$T/err"
grep -q "repaired the damaged object sha256:$W" "$T/out"
ok $? "saying it repaired the object" || cat "$T/out"
tail -1 "$S/audit.log" | grep -q "\"repaired\":\[\"$W\"\]"
ok $? "and the audit record says so"
"$AGSTORE" --store "$S" fsck >/dev/null 2>"$T/err"
ok $? "fsck passes again" || cat "$T/err"
"$AGSTORE" --store "$S" cat "$W" | cmp -s - "$TREE/blobs/sha256-$W"
ok $? "agstore cat serves the good bytes"
done_testing
