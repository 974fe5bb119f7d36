#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The commit order a power loss depends on (issue 10, going further), read
# from the system calls of one audited import-like commit (strace):
#   the staged object is renamed (or linked) into objects/,
#   then the store's file system is synced once (syncfs: the object's bytes,
#   its directory entry and fan-out directory; a small object is not fsynced
#   on its own, doc/store-format.md "Write protocol"),
#   the audit record is written and fdatasynced after that,
#   and only then does LMDB sync its pages and write its meta page (the
#   commit point, a synchronous write).
# With this order a power loss at any instant leaves either no generation or a
# generation whose objects and audit record are on disk (the record without
# the generation is what INDEX_COMMIT_LOST repairs).
. "$(dirname "$0")/lib.sh"
need_cmd strace awk
FAULTS=$HELPERS/store-faults
[ -x "$FAULTS" ] || skip_all "the store-faults helper is not built ($FAULTS)"
[ -x "$AGSTORE" ] || skip_all "agstore is not built ($AGSTORE)"
strace -qq -o /dev/null true 2>/dev/null || skip_all "strace cannot trace here (ptrace not allowed)"

S=$T/store
"$AGSTORE" --store "$S" init >/dev/null || bail "cannot init a store"
head -c 300000 /dev/urandom >"$T/blob"
hex=$(sha256sum "$T/blob" | cut -d' ' -f1)
# LeakSanitizer cannot run under ptrace (an ASan build): leaks are checked elsewhere
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
	strace -f -y -qq -s 4096 -e trace=fsync,fdatasync,syncfs,linkat,renameat,renameat2,write,pwrite64,pwritev,writev \
	-o "$T/trace" "$FAULTS" audited-put "$S" "$T/blob"
ok $? "an audited commit of one blob and a generation, traced"

# line numbers of each step (first occurrence after the previous step)
first() { # first REGEX [AFTER]
	awk -v re="$1" -v after="${2:-0}" 'NR > after && $0 ~ re {print NR; exit}' "$T/trace"
}
link=$(first "(linkat|renameat2)\\(.*\"objects/sha256/${hex:0:2}/$hex\"")
store_sync=$(first "syncfs\\([0-9]+<$S>\\) += 0" "${link:-0}")
audit_write=$(first 'write\([0-9]+<[^>]*/audit\.log>.*TEST_PUT')
audit_sync=$(first 'fdatasync\([0-9]+<[^>]*/audit\.log>' "${audit_write:-0}")
mdb_sync=$(first 'fdatasync\([0-9]+<[^>]*/index/data\.mdb>' "${audit_sync:-0}")
meta=$(first 'pwrite64\([0-9]+<[^>]*/index/data\.mdb>' "${mdb_sync:-0}")
diag "link $link, syncfs $store_sync, audit write $audit_write," \
	"audit fdatasync $audit_sync, data.mdb fdatasync $mdb_sync, meta page $meta"

[ -n "$link" ]
ok $? "the staged object is placed into objects/"
[ -n "$store_sync" ]
ok $? "the store's file system is synced (syncfs) after the object is placed"
[ -n "$audit_write" ] && [ -n "$store_sync" ] && [ "$store_sync" -lt "$audit_write" ]
ok $? "the audit record is written after the object is durable"
[ -n "$audit_sync" ]
ok $? "the audit record is fdatasynced"
[ -n "$mdb_sync" ] && [ -n "$meta" ]
ok $? "LMDB syncs its pages, then writes its meta page, after the audit record is durable"
! awk -v a="${audit_sync:-999999}" 'NR < a && /pwrite64\([0-9]+<[^>]*\/index\/data\.mdb>/' "$T/trace" | grep -q .
ok $? "no meta page is written before the audit record is durable"
grep -q "\"event\":\"TEST_PUT\".*\"index_txn\"" "$S/audit.log"
ok $? "the record carries the index transaction it describes"
done_testing
