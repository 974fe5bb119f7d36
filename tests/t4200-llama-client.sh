#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A real client: llama.cpp (node-llama-cpp) loads a generated GGUF model by its
# blobs/sha256-<hex> path through the mount, with mmap on, and generates a
# fixed number of tokens greedily.  The tokens and text must be identical to
# the same run on the source file, also through versions/N/blobs/, with plain
# reads, and for a >= 256 MiB model.  With one chunk of the model corrupted in
# the store, loading or generating fails; it never yields output.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fixtures.sh"

need_root_fuse
need_cmd node sha256sum od dd
for p in "$AGIMPORT" "$AGFS" "$MKGGUF"; do
	[ -x "$p" ] || skip_all "$p is not built (run make)"
done
[ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] ||
	skip_all "node-llama-cpp needs Node.js >= 20, this is $(node --version)"
LLAMA_DIR=$TESTS_DIR/llama
[ -d "$LLAMA_DIR/node_modules/node-llama-cpp" ] && [ -d "$LLAMA_DIR/node_modules/@node-llama-cpp/linux-x64" ] ||
	skip_all "node-llama-cpp is not installed (cd tests/llama && npm install --omit=optional)"
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true

# A healthy run takes a few seconds on an idle machine, but the 270 MiB
# model's CPU inference took over 30 s on the 2-core machine while another
# suite ran; a client still running after this long is stuck: it gets
# SIGTERM (status 124), SIGKILL 10 s later (status 137).
HANG_BOUND=${AGFS_LLAMA_BOUND:-90}

# generate MODEL [--no-mmap]: the client's stdout into $T/gen.out, status in $rc
generate() {
	timeout -k 10 "$HANG_BOUND" node "$LLAMA_DIR/generate.mjs" --tokens 24 \
		--prompt "agfs serves verified bytes" "$@" >"$T/gen.out" 2>"$T/gen.err"
	rc=$?
}

# flip_byte FILE OFFSET: inverts one byte in place (the store's objects are 0444)
flip_byte() {
	local f=$1 off=$2 b
	b=$(od -An -tu1 -j "$off" -N1 "$f" | tr -d ' ')
	chmod u+w "$f"
	# shellcheck disable=SC2059 # the format is the octal escape of the new byte
	printf "$(printf '\\%03o' $((b ^ 0xff)))" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
	chmod 0444 "$f"
}

# expect_failure LABEL [populate]: the last generate must have failed without
# output.  With "populate": llama.cpp maps the model with MAP_POPULATE, and
# the kernel retries a page whose FUSE read fails until the process gets a
# fatal signal; agfs sees the same chunk fail again and again for that process
# and kills it (stuck=kill, the default), so the load fails instead of hanging.
expect_failure() {
	! grep -q '^TOKENS' "$T/gen.out"
	ok $? "$1: no generated tokens reach the client" || sed 's/^/# /' "$T/gen.out"
	if [ "${2:-}" = populate ]; then
		[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q '"event":"READER_KILLED"' "$T/store/audit.log"
		ok $? "$1: the client stuck re-reading the bad chunk is killed by agfs and audited (status $rc)"
	else
		[ "$rc" -ne 0 ]
		ok $? "$1: the client fails by itself (status $rc)"
	fi
	sed 's/^/# stderr: /' "$T/gen.err" | head -3
}

remount() { # remount [agfs options]: a fresh mount, nothing cached
	umount_agfs "$T/mnt"
	sync
	echo 3 >/proc/sys/vm/drop_caches
	mount_agfs "$T/store" "$T/mnt" "$@"
}

# The generator: GGUF v3, deterministic per seed.
"$MKGGUF" --seed 7 "$T/a.gguf" && "$MKGGUF" --seed 7 "$T/b.gguf" && "$MKGGUF" --seed 8 "$T/c.gguf"
ok $? "mkgguf writes models"
is "$(head -c 4 "$T/a.gguf")$(od -An -tu4 -j4 -N4 "$T/a.gguf" | tr -d ' ')" "GGUF3" "they are GGUF version 3"
cmp -s "$T/a.gguf" "$T/b.gguf" && ! cmp -s "$T/a.gguf" "$T/c.gguf"
ok $? "the same seed gives the same bytes, another seed other bytes"
rm -f "$T"/[abc].gguf

make_ollama_tree "$T/src" --model tiny:latest
blob=$(fixture_model_blob "$T/src" tiny)
hex=${blob#sha256-}
"$AGIMPORT" --ollama-dir "$T/src" --store "$T/store" --no-signature >"$T/out" 2>&1
ok $? "agimport takes the Ollama tree" || sed 's/^/# /' "$T/out"
mount_agfs "$T/store" "$T/mnt"
ok $? "agfs mounts the store"

generate "$T/src/blobs/$blob"
ok $rc "llama.cpp generates from the source file" || sed 's/^/# /' "$T/gen.err"
want=$(cat "$T/gen.out")
grep -qE '^TOKENS( [0-9]+){24}$' <<<"$want"
ok $? "24 tokens were generated greedily"
generate "$T/src/blobs/$blob"
is "$(cat "$T/gen.out")" "$want" "greedy generation is deterministic on the source file"

generate "$T/mnt/blobs/$blob"
is "$(cat "$T/gen.out")" "$want" "the same tokens and text through the mount's blobs/ (mmap)"
gen=$(find "$T/mnt/versions" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | grep -E '^[0-9]+$' |
	sort -n | tail -1)
generate "$T/mnt/versions/$gen/blobs/$blob"
is "$(cat "$T/gen.out")" "$want" "the same through versions/$gen/blobs/ (mmap)"
generate "$T/mnt/blobs/$blob" --no-mmap
is "$(cat "$T/gen.out")" "$want" "the same through the mount with plain reads (no mmap)"

# The >= 256 MiB model: thousands of chunks, read through mmap with read-ahead.
make_ollama_tree "$T/big" --preset load --model big:latest
big=$(fixture_model_blob "$T/big" big:latest)
"$AGIMPORT" --ollama-dir "$T/big" --store "$T/store-big" --no-signature >"$T/out" 2>&1
ok $? "agimport takes the $(($(stat -c %s "$T/big/blobs/$big") >> 20)) MiB model" || sed 's/^/# /' "$T/out"
mount_agfs "$T/store-big" "$T/mnt-big"
generate "$T/big/blobs/$big"
want_big=$(cat "$T/gen.out")
[ $rc -eq 0 ] && grep -qE '^TOKENS( [0-9]+){24}$' <<<"$want_big"
ok $? "llama.cpp generates from the large source file" || sed 's/^/# /' "$T/gen.err"
sync
echo 3 >/proc/sys/vm/drop_caches
generate "$T/mnt-big/blobs/$big"
is "$(cat "$T/gen.out")" "$want_big" "the same tokens and text through the mount, cold (mmap)"
umount_agfs "$T/mnt-big"
rm -rf "$T/big" "$T/store-big"

# One chunk of the weights corrupted in the store: the middle of the file lies
# in a block's weight matrix, which every evaluated token reads; the byte is
# the sign and exponent of an F32 weight (tensor data is 32-byte aligned).
object=$T/store/objects/sha256/${hex:0:2}/$hex
[ -f "$object" ]
ok $? "the model's object is in the store" || bail "no object at $object"
size=$(stat -c %s "$object")
off=$((size / 2 / 4 * 4 + 3))
# Control: read directly, unverified, the same damage makes llama.cpp say something else.
cp "$T/src/blobs/$blob" "$T/damaged.gguf"
flip_byte "$T/damaged.gguf" $off
generate "$T/damaged.gguf"
[ $rc -eq 0 ] && [ "$(cat "$T/gen.out")" != "$want" ]
ok $? "control: without agfs the damaged file loads and yields different output"
flip_byte "$object" $off
remount
generate "$T/mnt/blobs/$blob"
expect_failure "weights chunk corrupted, mmap" populate
generate "$T/mnt/blobs/$blob" --no-mmap
expect_failure "weights chunk corrupted, plain reads"
grep -q '"event":"VERIFY_FAILURE"' "$T/store/audit.log"
ok $? "the store's audit log records the verification failure" || {
	sed 's/^/# client: /' "$T/gen.err"
	tail -3 "$T/store/audit.log" | cut -c1-200 | sed 's/^/# audit: /'
}
# -o verify=full hashes the whole blob at its first open: the open fails.
remount -o verify=full
generate "$T/mnt/blobs/$blob"
expect_failure "weights chunk corrupted, mmap, -o verify=full"

# Restore it, corrupt the GGUF header instead (read at load time).
flip_byte "$object" $off
flip_byte "$object" 100
remount
generate "$T/mnt/blobs/$blob" --no-mmap
expect_failure "header chunk corrupted, plain reads"
generate "$T/mnt/blobs/$blob"
expect_failure "header chunk corrupted, mmap"

done_testing
