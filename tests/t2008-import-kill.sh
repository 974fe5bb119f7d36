#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Issue 13: the objects of a bundle of many small files are made durable by
# one syncfs() before the commit, not an fsync each.  An import of such a
# bundle killed at any point leaves the store exactly as it was (once the
# next writer has removed its staging and strays) or fully imported, and the
# import retried afterwards succeeds.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
need_cmd gpg tar gzip sha256sum openssl python3 strace mdb_dump
[ -x "$AGIMPORT" ] || skip_all "agimport not built"
[ -x "$AGSTORE" ] || skip_all "agstore not built"

make_gpg_key
# 60 small models: 240 blobs and 60 manifests, each of a few hundred bytes
TREE=$T/tree
mkdir -p "$TREE"
for i in $(seq 1 60); do
	make_model "$TREE" "registry.ollama.ai/library/m$i/latest" $((1000 + i * 37)) "s$i"
done
make_bundle_dir "$TREE" "$T/b" 20260601
bundle_tar "$T/b" "$T/b.tgz"
imp() { "$AGIMPORT" --keyring "$T/pubkey.asc" "$@"; }

S=$T/s
make_random_ollama_tree "$T/first" 5000
"$AGIMPORT" --store "$S" --no-signature --ollama-dir "$T/first" --label 20260101 >/dev/null 2>&1 ||
	bail "the first import failed"
# Every object file (gc leaves a fan-out directory it emptied) and what the
# index holds.  Its bytes are not compared: a writer killed inside LMDB's
# commit has written its new pages to free space of data.mdb, but not the
# meta page that would point to them, so the index holds what it did.
files() {
	snap "$1" | grep -v -e '^objects/sha256/..$' -e ' index/data\.mdb$'
	mdb_dump -a "$1/index"
}
# what the next writer leaves: the state any kill must come back to
"$AGSTORE" --store "$S" gc >/dev/null 2>&1 || bail "gc failed"
before=$(files "$S")
mdb0=$(sha256sum <"$S/index/data.mdb")

# A whole import, traced: no fsync of a small staged object, one syncfs
# after the last object is placed and before the audit record (an earlier
# syncfs, started when the source has been read, is only a head start).
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
	strace -f -y -qq -s 256 -e trace=fsync,fdatasync,syncfs,write,renameat2,linkat -o "$T/trace" \
	"$AGIMPORT" --store "$T/traced" --keyring "$T/pubkey.asc" "$T/b.tgz" >/dev/null 2>"$T/err"
ok $? "a bundle of 300 small files imports (traced)" || cat "$T/err"
nsync=$(grep -c '^[0-9]* *fsync(' "$T/trace")
[ "$nsync" -lt 10 ]
ok $? "with fewer than 10 fsyncs ($nsync; an fsync per object and directory before: about 800)"
place=$(grep -n -E '(renameat2|linkat)\(.*"objects/sha256/[0-9a-f]{2}/[0-9a-f]{64}"' "$T/trace" | tail -1 | cut -d: -f1)
aw=$(grep -n 'write([0-9]*<[^>]*/audit\.log>.*BUNDLE_INGEST' "$T/trace" | head -1 | cut -d: -f1)
# the first syncfs started after it, at the line where it returned (strace -f
# splits a call into "<unfinished ...>" and "<... syncfs resumed>" when
# another thread's line comes between; the background syncfs started earlier)
sfs=$(awk -v p="${place:-0}" '
	/syncfs\(/ && /unfinished/ { start[$1] = NR; next }
	/<\.\.\. syncfs resumed>/ { if (start[$1] > p) { print NR; exit } next }
	NR > p && /syncfs\(/ { print NR; exit }' "$T/trace")
diag "last object placed at line $place, then syncfs at $sfs, audit record at $aw"
[ -n "$place" ] && [ -n "$sfs" ] && [ -n "$aw" ] && [ "$sfs" -lt "$aw" ]
ok $? "and one syncfs of the store after the last object is placed, before its audit record"

# Killed inside the index commit: the new pages are written (and the audit
# record), the meta page that makes them the index is not.
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
	strace -f -y -qq -e trace=fdatasync -e inject=fdatasync:signal=KILL:when=2 -o "$T/ktrace" \
	"$AGIMPORT" --keyring "$T/pubkey.asc" --store "$S" "$T/b.tgz" >/dev/null 2>&1
grep -q 'fdatasync([0-9]*<[^>]*/index/data\.mdb>) = ?' "$T/ktrace"
ok $? "an import killed at the sync between writing the index's pages and its meta page" ||
	sed 's/^/# /' "$T/ktrace"
[ "$(sha256sum <"$S/index/data.mdb")" != "$mdb0" ]
ok $? "after writing new pages to data.mdb"
"$AGSTORE" --store "$S" gc >/dev/null 2>&1
diff <(echo "$before") <(files "$S") | sed "s/^/# /" | head -5
[ "$(files "$S")" = "$before" ] && [ -z "$(ls -A "$S/tmp")" ]
ok $? "leaves the store as it was once the next writer has removed its staging"

# The time a whole import takes, then kills spread over it.
t0=$(date +%s%N)
imp --store "$T/timed" "$T/b.tgz" >/dev/null 2>&1 || bail "the timed import failed"
dur=$((($(date +%s%N) - t0) / 1000000))
diag "an import takes $dur ms"
rm -rf "$T/timed"
N=10
old=0 new=0 bad=0
for k in $(seq 1 $N); do
	at=$((dur * k / (N + 1)))
	"$AGIMPORT" --keyring "$T/pubkey.asc" --store "$S" "$T/b.tgz" >/dev/null 2>&1 &
	pid=$!
	sleep "$(awk -v m="$at" 'BEGIN {printf "%.3f", m / 1000}')"
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	if "$AGSTORE" --store "$S" ls 2>/dev/null | grep -q 'm1:latest'; then
		# fully imported: every object there and sound
		"$AGSTORE" --store "$S" fsck >"$T/fsck" 2>&1 || {
			bad=$((bad + 1))
			cat "$T/fsck"
		}
		new=$((new + 1))
		break
	fi
	"$AGSTORE" --store "$S" gc >/dev/null 2>&1 # removes staging and strays
	if [ "$(files "$S")" = "$before" ] && [ -z "$(ls -A "$S/tmp")" ]; then
		old=$((old + 1))
	else
		bad=$((bad + 1))
		diag "killed after $at ms: the store is neither as before nor imported:"
		diff <(echo "$before") <(files "$S") | sed "s/^/# /" | head -5
	fi
done
diag "$old kills left the store as it was, $new found it imported"
is "$bad" 0 "every kill left the store as before or fully imported"
[ "$old" -gt 0 ]
ok $? "some kills came before the commit ($old)"
imp --store "$S" "$T/b.tgz" >/dev/null 2>"$T/err"
ok $? "the import retried after the kills succeeds" || cat "$T/err"
"$AGSTORE" --store "$S" fsck >"$T/fsck" 2>&1
ok $? "and fsck finds the store sound" || cat "$T/fsck"
is "$("$AGSTORE" --store "$S" ls | grep -c ':latest')" 61 "with every model"
done_testing
