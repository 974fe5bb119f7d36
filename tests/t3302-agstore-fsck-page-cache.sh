#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# fsck (and an import's dedup check: ag_object_hash_check) and buffered
# blob reads (agstore export) drop behind them only the pages they brought
# into the page cache; the pages someone else had read (a mount serving the
# blob) stay.  They used to drop the whole file at the end.  Counted with
# fincore(1).
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
need_cmd fincore dd openssl
[ -x "$AGIMPORT" ] && [ -x "$AGSTORE" ] || skip_all "agimport or agstore not built"

TREE=$T/tree
make_model "$TREE" registry.ollama.ai/library/w/latest $((40 << 20)) w
S=$T/s
"$AGIMPORT" --store "$S" --no-signature --ollama-dir "$TREE" --label 20260101 >/dev/null 2>"$T/err" ||
	bail "the import failed: $(cat "$T/err")"
W=$(for f in "$TREE"/blobs/*; do [ "$(stat -c %s "$f")" -gt 100000 ] && basename "$f"; done)
W=${W#sha256-}
OBJ=$S/objects/sha256/${W:0:2}/$W

pages() { fincore --noheadings --output PAGES "${1:-$OBJ}" | tr -d ' '; }
settled_pages() { # once the read-ahead in flight has landed
	local prev=-1 cur i
	for i in $(seq 20); do
		cur=$(pages)
		[ "$cur" = "$prev" ] && break
		prev=$cur
		sleep 0.1
	done
	echo "$cur"
}
evict() { dd if="$OBJ" iflag=nocache count=0 status=none; }
# A file beside it, read at the same time: if its pages go too, the whole
# page cache was dropped meanwhile (drop_caches by another test), not by us.
head -c $((2 << 20)) </dev/urandom >"$S/sentinel"

# round CMD...: someone's pages (2 MiB in the middle of the object and its
# first page) in the cache, then CMD; sets before and after (pages), tried
# again when the whole cache was dropped meanwhile
round() {
	local i sent
	for i in 1 2 3 4 5; do
		evict
		dd if="$OBJ" of=/dev/null bs=1M skip=20 count=2 status=none
		dd if="$OBJ" of=/dev/null bs=4096 count=1 status=none
		cat "$S/sentinel" >/dev/null
		before=$(settled_pages)
		sent=$(pages "$S/sentinel")
		"$@" >"$T/out" 2>&1 || bail "$*: $(cat "$T/out")"
		after=$(pages)
		[ "$before" -ge 513 ] && [ "$sent" -gt 0 ] && [ "$(pages "$S/sentinel")" -ge "$sent" ] &&
			return 0
		diag "the page cache was dropped during '$*' (object $before pages before, sentinel $sent then $(pages "$S/sentinel")): again"
	done
	bail "the page cache keeps being dropped (or 2 MiB read left $before pages in it)"
}

sync
evict
[ "$(pages)" = 0 ] || skip_all "cannot evict the object from the page cache (fincore: $(pages) pages)"

round "$AGSTORE" --store "$S" fsck
[ "$after" -ge "$before" ]
ok $? "fsck keeps the pages that were in the page cache ($before before, $after after)"
[ "$after" -le $((before + 64)) ]
ok $? "and drops those it read itself (40 MiB: $((40 << 8)) pages)"

round "$AGSTORE" --store "$S" fsck --full
[ "$after" -ge "$before" ]
ok $? "fsck --full (O_DIRECT) keeps them too ($before before, $after after)"

export_fresh() { rm -rf "$T/exp" && "$AGSTORE" --store "$S" export 1 "$T/exp"; }
round export_fresh
[ "$after" -ge "$before" ] && [ "$after" -le $((before + 64)) ]
ok $? "agstore export (buffered verified reads) keeps them and drops its own ($before before, $after after)"
cmp -s "$T/exp/blobs/sha256-$W" "$TREE/blobs/sha256-$W"
ok $? "and exports the blob intact"

# nothing was resident: everything read is dropped again
evict
"$AGSTORE" --store "$S" fsck >"$T/out" 2>&1 || bail "fsck: $(cat "$T/out")"
[ "$(pages)" -le 64 ]
ok $? "fsck of an object nobody had read leaves (almost) nothing cached ($(pages) pages)"
done_testing
