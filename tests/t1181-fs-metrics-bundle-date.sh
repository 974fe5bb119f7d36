#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# agfs_generation_age_seconds reads the signed bundle's creation_date with the
# parser agstore uses (store/isotime.c): a real date gives the age from it; a
# date that does not exist (31 February) is no date, so the age comes from
# the generation's creation, as `agstore status` does.  The mount's own
# parser used to accept 31 February (as 3 March).
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
. "$TESTS_DIR/lib-fs.sh"
need_cmd gpg tar gzip sha256sum jq
[ -x "$AGIMPORT" ] && [ -x "$AGSTORE" ] && [ -x "$AGFS" ] || skip_all "programs not built"
need_root_fuse

S=$T/store
bundle_dated() { # bundle_dated TREE LABEL DATE: a bundle whose creation_date is DATE, imported
	make_bundle_dir "$1" "$T/b$2" "$2" || bail "bundle failed"
	sed -i "s/\"creation_date\": \"[^\"]*\"/\"creation_date\": \"$3\"/" "$T/b$2/manifest/bundle.json"
	(cd "$T/b$2" && _sign manifest/bundle.json) || bail "signing failed"
	bundle_tar "$T/b$2" "$T/b$2.tar.gz"
	"$AGIMPORT" --store "$S" --keyring "$T/pubkey.asc" "$T/b$2.tar.gz" >/dev/null 2>"$T/err" ||
		bail "import of $3: $(cat "$T/err")"
}
make_gpg_key
make_random_ollama_tree "$T/tree" 20000
bundle_dated "$T/tree" 20260228 2026-02-28T00:00:00Z
make_model "$T/tree" registry.ollama.ai/library/later/7b 3000 later
bundle_dated "$T/tree" 20260231 2026-02-31T00:00:00Z
imported=$(date +%s)
"$AGSTORE" --store "$S" activate 1 >/dev/null 2>"$T/err" || bail "activate: $(cat "$T/err")"

prom=$T/prom/agfs.prom
mkdir -p "$T/prom"
value() { awk -v n="$1" '$1 == n { print $2 }' "$prom"; }
mount_agfs "$S" "$T/mnt" -o "metrics=$prom" || bail "agfs did not mount"
fs_wait_for 10 test -s "$prom"
is "$(value agfs_generation)" 1 "generation 1 (creation_date 2026-02-28) is served"
feb28=$(date -u -d 2026-02-28T00:00:00Z +%s)
age=$(value agfs_generation_age_seconds)
d=$(($(date +%s) - feb28 - age))
[ -n "$age" ] && [ "$d" -ge 0 ] && [ "$d" -le 30 ]
ok $? "its age is counted from the bundle's creation_date ($age s)"

"$AGSTORE" --store "$S" activate 2 >/dev/null 2>"$T/err" || bail "activate: $(cat "$T/err")"
fs_wait_for 10 sh -c "awk '\$1 == \"agfs_generation\" { exit \$2 != 2 }' '$prom'"
ok $? "generation 2 (creation_date 2026-02-31) is served"
age=$(value agfs_generation_age_seconds)
[ -n "$age" ] && [ "$age" -ge 0 ] && [ "$age" -le $(($(date +%s) - imported + 30)) ]
ok $? "31 February is no date: the age is the generation's ($age s, not since 3 March)"
"$AGSTORE" --store "$S" status >"$T/status" 2>&1
grep -q "no bundle creation_date" "$T/status"
ok $? "agstore status reads it the same way" || sed 's/^/# /' "$T/status"
umount_agfs "$T/mnt"
done_testing
