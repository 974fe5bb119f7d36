#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# fsx-style stress (issue 11 tests): 8 readers compare every byte they read
# through the mount (pread at random offsets and lengths, and shared mmap)
# with the source, while generations are imported, switched and gc'ed under
# them.  No wrong byte, no read error, no VERIFY_FAILURE.  Sizes and time
# from the environment (bench/b-stress.sh runs it long):
#   AGFS_STRESS_MB (256) data in all, AGFS_STRESS_SECS (20), AGFS_STRESS_READERS (8)
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fs.sh"
need_root_fuse

mb=${AGFS_STRESS_MB:-256} secs=${AGFS_STRESS_SECS:-20} readers=${AGFS_STRESS_READERS:-8}
store=$T/store mnt=$T/mnt
each=$((mb * 1024 * 1024 / 8))
for m in 1 2 3 4; do fs_model "$T/a" "registry.ollama.ai/library/m$m/latest" $((each + m * 4099)); done
cp -a "$T/a" "$T/b" && cp -a "$T/a" "$T/c"
rm -rf "$T/b/manifests/registry.ollama.ai/library/m3" "$T/b/manifests/registry.ollama.ai/library/m4"
rm -rf "$T/c/manifests/registry.ollama.ai/library/m1" "$T/c/manifests/registry.ollama.ai/library/m2"
for m in 5 6; do fs_model "$T/b" "registry.ollama.ai/library/m$m/latest" $((each + m * 4099)); done
fs_model "$T/c" registry.ollama.ai/library/m7/latest $((each + 7 * 4099))
for v in a b c; do
	fs_store "$store" "$T/$v" --chunk $((16384 << (RANDOM % 3))) >/dev/null || bail "fs-mkstore $v failed"
done
for v in a b c; do
	(cd "$T/$v/blobs" && for f in sha256-*; do echo "${f#sha256-} $PWD/$f"; done)
done | sort -u >"$T/list"
diag "$(wc -l <"$T/list") blobs, $mb MiB, $readers readers, $secs s"
mount_agfs "$store" "$mnt" || bail "agfs did not mount"

# the store changes under the readers: switches, imports, gc
(
	end=$(($(date +%s) + secs - 2)) i=0
	while [ "$(date +%s)" -lt $end ]; do
		i=$((i + 1))
		if [ $((i % 3)) -eq 0 ]; then
			v=$(printf 'a\nb\nc\n' | shuf -n 1)
			fs_store "$store" "$T/$v" --chunk $((16384 << (i % 3))) >/dev/null || echo "import failed" >>"$T/bg.err"
		elif [ $((i % 4)) -eq 0 ]; then
			"$AGSTORE" --store "$store" gc --keep 1 >/dev/null 2>>"$T/bg.err" || echo "gc failed" >>"$T/bg.err"
		else
			ids=$("$AGSTORE" --store "$store" versions | awk 'NR > 1 {sub(/^\*/, "", $1); print $1}')
			fs_activate "$store" "$(echo "$ids" | shuf -n 1)" || echo "activate failed" >>"$T/bg.err"
		fi
		echo switch >>"$T/changes"
		drop_caches # so the readers' bytes come through the daemon again
		sleep 0.4
	done
) &
changer=$!
"$HELPERS/fs-stress" -t "$secs" -n "$readers" -s $$ "$mnt" "$T/list" >"$T/stress" 2>"$T/stress.err"
rc=$?
wait $changer
diag "$(cat "$T/stress"); $(wc -l <"$T/changes" 2>/dev/null || echo 0) store changes"
head -5 "$T/stress.err" | while read -r l; do diag "$l"; done
is "$rc" 0 "$readers readers compared every byte they read with the source"
read -r _ bytes _ _ _ bad _ errs _ _ <"$T/stress"
[ "${bytes:-0}" -gt $((mb * 1024 * 1024)) ]
ok $? "they read more than the data set ($((bytes / 1048576)) MiB)"
is "$bad/$errs" "0/0" "no wrong byte, no read error"
[ ! -s "$T/bg.err" ]
ok $? "imports, switches and gc ran without error meanwhile"
! grep -q '"VERIFY_FAILURE"' "$store/audit.log"
ok $? "no VERIFY_FAILURE record"
mountpoint -q "$mnt" && ls "$mnt/blobs" >/dev/null
ok $? "the mount still answers"
done_testing
