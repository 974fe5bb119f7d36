#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# -o metrics=PATH: the mount writes node_exporter's textfile format, replaced
# atomically at start, at a generation switch and every 15 s: the generation
# served and its age, bytes and chunks verified, verification failures (a
# flipped byte read back as EIO), open blobs.  Checked with promtool when
# installed, else with a strict parser of the text format.  metrics=none and
# a relative path are honoured/refused.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fs.sh"
need_root_fuse

tree=$T/tree tree2=$T/tree2 store=$T/store mnt=$T/mnt prom=$T/prom/agfs.prom
fs_model "$tree" registry.ollama.ai/library/tiny/latest $((1024 * 1024 + 99))
hex=$FS_MODEL_HEX
fs_model "$tree2" registry.ollama.ai/library/two/latest 70000
now=$(date +%s)
fs_store "$store" "$tree" >/dev/null || bail "fs-mkstore failed"
fs_store "$store" "$tree2" --no-activate >/dev/null || bail "fs-mkstore failed"
mkdir -p "$T/prom"

# value NAME: the sample of NAME in the metrics file
value() { awk -v n="$1" '$1 == n { print $2 }' "$prom"; }

# A strict check of the text exposition format: HELP, TYPE, then samples of
# that family only; names and label sets well formed; values numbers;
# counters (and only counters) end in _total; no family twice.
check_format() {
	awk '
	function bad(why) { print "line " NR ": " why ": " $0; err = 1 }
	/^# HELP / { if (NF < 4) bad("HELP without text"); if ($3 in seen) bad("family twice")
		     seen[$3] = 1; fam = $3; want = "TYPE"; next }
	/^# TYPE / { if (want != "TYPE" || $3 != fam) bad("TYPE not after its HELP")
		     if ($4 != "counter" && $4 != "gauge") bad("unknown type")
		     if (($4 == "counter") != ($3 ~ /_total$/)) bad("counter naming")
		     want = "sample"; nsamples[fam] = 0; next }
	/^#/ { bad("stray comment"); next }
	{ if (want != "sample") bad("sample before HELP/TYPE")
	  if (NF != 2) bad("not name value")
	  name = $1; sub(/\{.*\}$/, "", name)
	  if (name != fam) bad("sample of another family")
	  if (name !~ /^[a-zA-Z_:][a-zA-Z0-9_:]*$/) bad("bad name")
	  if ($1 ~ /\{/ && $1 !~ /\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\}$/) bad("bad labels")
	  if ($2 !~ /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/ && $2 !~ /^[-+]?(Inf|NaN)$/) bad("bad value")
	  nsamples[fam]++ }
	END { for (f in seen) if (!nsamples[f]) { print f ": no sample"; err = 1 }
	      if (NR == 0) { print "empty"; err = 1 }
	      exit err }' "$1"
}

mount_agfs "$store" "$mnt" -o "metrics=$prom" || bail "agfs did not mount"
fs_wait_for 10 test -s "$prom"
ok $? "the metrics file is written once the mount is up"
if command -v promtool >/dev/null; then
	promtool check metrics <"$prom" >"$T/promtool" 2>&1
	ok $? "promtool check metrics accepts it" || cat "$T/promtool" | sed 's/^/# /'
else
	check_format "$prom" | sed 's/^/# /'
	ok "${PIPESTATUS[0]}" "a strict parse of the text format accepts it (promtool not installed)"
fi
# and the checker is not blind: it refuses broken files
printf '# HELP agfs_x_total x\n# TYPE agfs_x_total gauge\nagfs_x_total 1\n' >"$T/bad1"
printf '# HELP agfs_x x\n# TYPE agfs_x gauge\nagfs_y 1\n' >"$T/bad2"
printf 'agfs_x 1\n' >"$T/bad3"
printf '# HELP agfs_x x\n# TYPE agfs_x gauge\nagfs_x one\n' >"$T/bad4"
n=0
for f in "$T"/bad[1-4]; do check_format "$f" >/dev/null || n=$((n + 1)); done
is "$n" 4 "the format check refuses a gauge named _total, a stray sample, no HELP, a non-number"

is "$(value agfs_generation)" 1 "agfs_generation is the served generation"
age=$(value agfs_generation_age_seconds)
[ -n "$age" ] && [ "$age" -ge 0 ] && [ "$age" -le $(($(date +%s) - now + 1)) ]
ok $? "agfs_generation_age_seconds: from the generation's creation without a bundle date ($age)"
is "$(value agfs_verify_failures_total)" 0 "no verify failures yet"
for m in agfs_verified_bytes_total agfs_verified_blocks_total agfs_verify_errors_total \
	agfs_readers_killed_total agfs_open_blobs agfs_catalog_rejections_total; do
	[ -n "$(value $m)" ]
	ok $? "$m is there"
done
ls "$T/prom" | grep -v '^agfs.prom$' >"$T/left"
is "$(cat "$T/left")" "" "no temporary file left beside it"

blob=$mnt/blobs/sha256-$hex
head -c 200000 "$blob" >/dev/null
ok $? "read 200000 bytes of a blob"

fs_flip_read "$store" "$hex" "$blob" 3 5
ok $? "the flipped block gives EIO"

# a generation switch rewrites the file at once (no 15 s wait)
ino=$(stat -c %i "$prom")
fs_activate "$store" 2
fs_wait_for 10 sh -c "awk '\$1 == \"agfs_generation\" { exit \$2 != 2 }' '$prom'"
ok $? "a generation switch rewrites the file at once (agfs_generation 2)"
[ "$(stat -c %i "$prom")" != "$ino" ]
ok $? "replaced by rename (a new inode), not rewritten in place"
f=$(value agfs_verify_failures_total)
[ -n "$f" ] && [ "$f" -ge 1 ]
ok $? "agfs_verify_failures_total counted the EIO ($f)"
b=$(value agfs_verified_bytes_total)
[ -n "$b" ] && [ "$b" -ge 200000 ]
ok $? "agfs_verified_bytes_total counted the bytes read ($b)"
k=$(value agfs_verified_blocks_total)
[ -n "$k" ] && [ "$k" -ge 3 ]
ok $? "agfs_verified_blocks_total counted chunks ($k)"
is "$(value agfs_verify_errors_total)" 0 "a verdict is not counted as an error"

# every 15 s: an open blob shows up without a switch
exec 7<"$mnt/blobs/sha256-$hex"
fs_wait_for 20 sh -c "awk '\$1 == \"agfs_open_blobs\" { exit \$2 < 1 }' '$prom'"
ok $? "the periodic rewrite shows the open blob (agfs_open_blobs >= 1)"
exec 7<&-
umount_agfs "$mnt"

rm -f "$prom"
mount_agfs "$store" "$mnt" -o metrics=none || bail "agfs did not mount"
sleep 1
[ ! -e "$prom" ] && [ -z "$(ls "$T/prom")" ]
ok $? "metrics=none writes nothing"
umount_agfs "$mnt"

"$AGFS" -o metrics=rel.prom "$store" "$mnt" 2>"$T/err"
rc=$?
is "$rc" 2 "a relative metrics= path is a usage error"
grep -q "metrics=rel.prom" "$T/err"
ok $? "and the option is named"

"$AGFS" --help | grep -q "metrics=PATH|none"
ok $? "agfs --help lists -o metrics="

done_testing
