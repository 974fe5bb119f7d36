#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# No torn views across live switches (issue 11 #6): an Ollama-style loader
# (glob the manifests, read one, open and read every blob it names) runs in
# 4 threads while the store switches generations 20 times (activations and
# imports).  Zero ENOENT, zero other errors, manifests/ never empty,
# versions/current always there.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fs.sh"
need_root_fuse

store=$T/store mnt=$T/mnt
for v in a b; do
	for m in one two three; do
		fs_model "$T/t$v" "registry.ollama.ai/library/$m/latest" $((100000 + RANDOM))
	done
done
fs_store "$store" "$T/ta" >/dev/null || bail "fs-mkstore failed"
fs_store "$store" "$T/tb" >/dev/null || bail "fs-mkstore failed"
mount_agfs "$store" "$mnt" || bail "agfs did not mount"

"$HELPERS/fs-loader" -t 14 -n 4 "$mnt" >"$T/loader" 2>&1 &
loader=$!
switches=0
for i in $(seq 1 20); do
	sleep 0.6
	if [ $((i % 5)) -eq 0 ]; then
		fs_store "$store" "$T/t$([ $((i % 2)) -eq 0 ] && echo a || echo b)" >/dev/null
	else
		fs_activate "$store" $((1 + i % 2))
	fi && switches=$((switches + 1))
done
wait $loader
diag "$(cat "$T/loader")"
is "$switches" 20 "20 switches (16 activations, 4 imports) under the loader"
read -r _ loads _ enoent _ errors _ empty _ nocurrent <"$T/loader"
[ "${loads:-0}" -ge 50 ]
ok $? "the loader loaded models all along ($loads loads)"
is "$enoent" 0 "no load saw a manifest and then ENOENT on one of its blobs"
is "$errors" 0 "no other error"
is "$empty" 0 "manifests/ was never empty"
is "$nocurrent" 0 "versions/current was always there"
done_testing
