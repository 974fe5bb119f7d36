#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Leases and pins (issue 11 #2): gc keeps what live mounts serve and have
# open.  A reader with a blob open (read(2) and a shared mmap) keeps reading
# the right bytes across `agstore rm` + `agstore gc --keep 0`, with no false
# VERIFY_FAILURE; so does a file open under versions/N; a -o generation=N
# mount keeps its generation; `agstore pin N` keeps a generation; a dead
# mount's lease is stale and removed.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fs.sh"
need_root_fuse

tree=$T/tree store=$T/store mnt=$T/mnt pmnt=$T/pinned
as() { "$AGSTORE" --store "$store" "$@"; }
has_gen() { as versions | grep -q "^[* ]$1 "; }
json1() { tr -d ' \n'; }
# 4 KiB chunks: 6 MiB is 1536 chunks, two pages of chunk table, the second
# loaded only when a read reaches it
fs_model "$tree" registry.ollama.ai/library/gone/latest $((6 * 1024 * 1024 + 7))
gone=$FS_MODEL_HEX
fs_model "$tree" registry.ollama.ai/library/stays/latest 100000
fs_store "$store" "$tree" --chunk 4096 >/dev/null || bail "fs-mkstore failed"
fs_model "$T/t2" registry.ollama.ai/library/vers/latest $((5 * 1024 * 1024))
vers=$FS_MODEL_HEX
fs_store "$store" "$T/t2" --chunk 4096 --no-activate >/dev/null || bail "fs-mkstore failed"
src=$tree/blobs/sha256-$gone
late=$((1200 * 4096))

# grace=0: the previous generation is not leased for a grace period here,
# so what keeps the open blob is its own lease
mount_agfs "$store" "$mnt" -o grace=0 || bail "agfs did not mount"
mount_agfs "$store" "$pmnt" -o generation=2 || bail "agfs -o generation=2 did not mount"
ls "$store/leases" | grep -q '\.lock$'
ok $? "each live mount holds a lease under leases/"

# readers that hold the blobs open, then read after the store changed
exec 3<"$mnt/blobs/sha256-$gone"
head -c 4096 <&3 >/dev/null
exec 4<"$mnt/versions/2/blobs/sha256-$vers"
"$HELPERS/fs-mmap" --wait 4 "$mnt/blobs/sha256-$gone" >"$T/mmap.out" 2>"$T/mmap.err" &
mapper=$!
sleep 0.5

as rm gone:latest >/dev/null
ok $? "agstore rm makes a generation without the model"
fs_wait_for 5 test ! -e "$mnt/manifests/registry.ollama.ai/library/gone/latest" || diag "the mount did not follow"
as gc --keep 0 >"$T/gc.out" 2>&1
ok $? "agstore gc --keep 0 runs while the mounts serve"
diag "$(tr '\n' ' ' <"$T/gc.out")"
! has_gen 1
ok $? "generation 1 (no longer served) is removed"
is "$(as --json pins | json1 | grep -o '"leased_generations":\[[^]]*\]')" '"leased_generations":[2,3]' \
	"agstore pins shows what the mounts lease (the current one and the pinned mount's)"
[ -e "$(fs_object "$store" "$gone")" ]
ok $? "the object of the open blob is still in the store"
drop_caches
dd bs=4096 skip=$((late / 4096 - 1)) count=1 <&3 2>/dev/null | cmp -s - <(dd if="$src" bs=4096 skip=1200 count=1 2>/dev/null)
ok $? "the open file reads the right bytes after gc (a table page never loaded before)"
cat "$mnt/blobs/sha256-$gone" >/dev/null 2>&1
wait $mapper
is "$(cat "$T/mmap.out")" "$gone" "a shared mmap made before gc hashes to the blob's name after it"
cmp -s - "$T/t2/blobs/sha256-$vers" <&4
ok $? "a file open under versions/2/ reads as imported after gc"
cmp -s "$pmnt/blobs/sha256-$vers" "$T/t2/blobs/sha256-$vers"
ok $? "the -o generation=2 mount still serves its generation after gc"
has_gen 2
ok $? "generation 2 (leased by the pinned mount) survived gc"
! grep -q '"VERIFY_FAILURE"' "$store/audit.log"
ok $? "no VERIFY_FAILURE record anywhere"
exec 3<&- 4<&-

# once closed, the lease drops it within a poll (a second) and gc removes it
sleep 1.5
as gc --keep 0 >/dev/null 2>&1
[ ! -e "$(fs_object "$store" "$gone")" ]
ok $? "closed, the blob goes at the next gc"

# pins
fs_store "$store" "$T/t2" --chunk 4096 --no-activate >/dev/null
as pin 4 >/dev/null
ok $? "agstore pin 4"
as gc --keep 0 >/dev/null 2>&1
has_gen 4
ok $? "a pinned generation survives gc --keep 0"
as --json pins | json1 | grep -q '"pinned":\[4\]'
ok $? "agstore pins lists it"
as pin 99 >/dev/null 2>&1
is $? 1 "pinning a generation that does not exist is refused"
as unpin 4 >/dev/null && as gc --keep 0 >/dev/null 2>&1
! has_gen 4
ok $? "unpinned, it goes at the next gc"

# a dead mount's lease is stale
umount_agfs "$pmnt"
pid=$(pgrep -f "agfs .*$mnt\$" | head -1)
kill -9 "$pid"
fusermount3 -u -z "$mnt"
sleep 0.3
[ -n "$(ls "$store/leases" | grep -v '^\.')" ]
ok $? "a killed mount leaves its lease behind"
as gc --keep 0 >/dev/null 2>&1
is "$(ls "$store/leases" | grep -cv '^\.')" 0 "gc removes stale leases"
done_testing
