#!/bin/bash
# shellcheck disable=SC2154 # $rc is set by run_fail (tests/lib.sh)
# SPDX-License-Identifier: Apache-2.0
# agstore status tells the truth (issue 11 #10, issue 14): exit 1 when the
# last fsck found problems, when the audit chain is broken, or when the mount
# given with --mount does not serve the current generation; staleness (exit 3)
# is measured from the signed bundle's creation_date, so `agstore rm` and a
# re-import of the same bundle do not reset it.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-tools.sh"
. "$TESTS_DIR/lib-fixtures.sh"
. "$TESTS_DIR/lib-bundle.sh"
need_agstore
need_cmd gpg tar

# --- staleness from the signed creation_date ---
S=$T/s1
make_gpg_key
make_random_ollama_tree "$T/tree" 20000
make_bundle_dir "$T/tree" "$T/b" 20260101 || bail "cannot build a bundle"
old=$(date -u -d '@'$(($(date +%s) - 100 * 86400)) +%Y-%m-%dT%H:%M:%SZ)
sed -i "s/\"creation_date\": \"[^\"]*\"/\"creation_date\": \"$old\"/" "$T/b/manifest/bundle.json"
(cd "$T/b" && _sign manifest/bundle.json) || bail "cannot re-sign bundle.json"
bundle_tar "$T/b" "$T/old.tar"
"$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" "$T/old.tar" >"$T/out" 2>&1 ||
	bail "agimport refused the bundle: $(cat "$T/out")"

run_fail "$AGSTORE" --store "$S" status
is "$rc" 3 "a bundle signed 100 days ago is stale right after its import: exit 3"
grep -q '^data date: .*(100.0 days ago; signed bundle creation_date)$' "$T/out"
ok $? "status says the age comes from the signed creation_date" || sed 's/^/# /' "$T/out"
"$AGSTORE" --store "$S" --json status >"$T/st.json" 2>/dev/null
is "$(jq -r '.current.age_from + " " + .current.data_date' "$T/st.json")" \
	"signed bundle creation_date $old" "status --json gives the data date and where it comes from"

"$AGSTORE" --store "$S" rm small:1b >/dev/null || bail "agstore rm failed"
run_fail "$AGSTORE" --store "$S" status
is "$rc" 3 "agstore rm does not make the data fresh: still exit 3"
grep -q '^data date: .*(100.0 days ago; signed bundle creation_date of generation 1)$' "$T/out"
ok $? "the rm generation's data date is its source generation's" || sed 's/^/# /' "$T/out"

if "$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" "$T/old.tar" >"$T/out" 2>&1; then
	run_fail "$AGSTORE" --store "$S" status
	is "$rc" 3 "re-importing the same bundle does not make it fresh: still exit 3"
else
	skip "agimport refuses to re-import the same bundle here"
fi
"$AGSTORE" --store "$S" status --max-age 120 >/dev/null
ok $? "--max-age 120 accepts the 100-day-old bundle"

# --- the last fsck found problems ---
S=$T/s2
tools_model "$T/t2" registry.ollama.ai/library/alpha/latest 30000 >/dev/null
tools_gen "$S" "$T/t2" --label fresh >/dev/null || bail "cannot make a generation"
"$AGSTORE" --store "$S" fsck >/dev/null 2>&1
"$AGSTORE" --store "$S" status >/dev/null
ok $? "a fresh generation with a clean fsck: exit 0"
w=$(tools_object "$S" "$(tools_weights "$T/t2" registry.ollama.ai/library/alpha/latest)")
chmod u+w "$w"
printf 'X' | dd of="$w" bs=1 seek=100 conv=notrunc 2>/dev/null
chmod a-w "$w"
"$AGSTORE" --store "$S" fsck >/dev/null 2>&1
is "$?" 1 "fsck finds the flipped byte"
run_fail "$AGSTORE" --store "$S" status
is "$rc" 1 "status exits 1 when the last fsck found problems"
grep -q '^last fsck: .*PROBLEMS: 1 corrupt' "$T/out"
ok $? "and shows them"
grep -q "^agstore: the last fsck of $S found problems" "$T/err"
ok $? "one sentence on stderr says so"
"$AGSTORE" --store "$S" --json status >"$T/st.json" 2>/dev/null
is "$?" 1 "status --json exits 1 too"
is "$(jq -r .fsck_problems "$T/st.json")" true "status --json: fsck_problems is true"

# --- the audit chain is broken ---
S=$T/s3
tools_gen "$S" "$T/t2" --label fresh >/dev/null || bail "cannot make a generation"
"$AGSTORE" --store "$S" fsck >/dev/null 2>&1 # a second audit record after STORE_INIT
"$AGSTORE" --store "$S" status >/dev/null
ok $? "an intact audit chain: exit 0"
sed -i '1s/"operator":"[^"]*"/"operator":"mallory"/' "$S/audit.log"
run_fail "$AGSTORE" --store "$S" status
is "$rc" 1 "status exits 1 when audit.log was edited"
grep -q '^audit chain: *BROKEN at line' "$T/out"
ok $? "and shows where the chain breaks"
"$AGSTORE" --store "$S" --json status >"$T/st.json" 2>/dev/null
is "$(jq -r .audit_chain.ok "$T/st.json")" false "status --json: audit_chain.ok is false"

# --- --mount: is the mount serving the current generation? ---
S=$T/s4
mkdir -p "$T/plain"
tools_gen "$S" "$T/t2" --label g1 >/dev/null
run_fail "$AGSTORE" --store "$S" status --mount "$T/plain"
is "$rc" 1 "--mount on a directory that is no agfs mount: exit 1"
grep -q "not a live agfs mount" "$T/err"
ok $? "and says it is not a live agfs mount"
if [ "$(id -u)" -ne 0 ] || [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	skip "checking a real mount needs root, /dev/fuse and fusermount3"
elif [ ! -x "$AGFS" ]; then
	skip "agfs is not built ($AGFS)"
else
	tools_model "$T/t3" registry.ollama.ai/library/beta/latest 20000 >/dev/null
	tools_gen "$S" "$T/t3" --label g2 >/dev/null
	mount_agfs "$S" "$T/mnt" || bail "cannot mount $S"
	"$AGSTORE" --store "$S" status --mount "$T/mnt" >"$T/out" 2>"$T/err"
	ok $? "a live mount of the current generation: exit 0" || sed 's/^/# /' "$T/out" "$T/err"
	grep -q "^mount: .* serves generation 2$" "$T/out"
	ok $? "status says which generation it serves"
	"$AGSTORE" --store "$S" activate 1 >/dev/null && "$AGSTORE" --store "$S" status --mount "$T/mnt" >"$T/out" 2>"$T/err"
	ok $? "right after a switch, status waits for the mount to follow: exit 0" || sed 's/^/# /' "$T/out" "$T/err"
	"$AGSTORE" --store "$S" activate 2 >/dev/null
	mount_agfs "$S" "$T/pinned" -o generation=1 || bail "cannot mount $S pinned to generation 1"
	run_fail "$AGSTORE" --store "$S" status --mount "$T/pinned"
	is "$rc" 1 "a mount pinned to an older generation does not serve the current one: exit 1"
	grep -q "does not serve the current generation" "$T/err"
	ok $? "and one sentence says so" || sed 's/^/# /' "$T/err"
	"$AGSTORE" --store "$S" --json status --mount "$T/pinned" >"$T/st.json" 2>/dev/null
	is "$(jq -r .mount.serves_current "$T/st.json")" false "status --json: mount.serves_current is false"
	umount_agfs "$T/pinned"
	umount_agfs "$T/mnt"
	run_fail "$AGSTORE" --store "$S" status --mount "$T/mnt"
	is "$rc" 1 "after unmounting, --mount on the empty mount point: exit 1"
fi

done_testing
