#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Fan-out through contrib/nginx/agfs-cache.conf (nginx-light on loopback, in
# front of a real docker-registry): three nodes pull one generation at once
# through the cache and get the ingest store's models; the registry serves
# the big blob about once (proxy_cache_lock, slices), not three times; a
# fourth node pulling later is served from the cache alone; a node's mount
# serves the ingest mount's bytes; uploads through
# the cache are refused.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
. "$TESTS_DIR/lib-registry.sh"
registry_test_needs
command -v nginx >/dev/null || skip_all "nginx is not installed (contrib/install-deps.sh installs nginx-light)"

make_gpg_key
TREE=$T/tree
make_random_ollama_tree "$TREE" 100000
make_model "$TREE" registry.ollama.ai/library/vast/8b 40000000 vast
BIG=$(jq -r '.layers[0].digest' "$TREE/manifests/registry.ollama.ai/library/vast/8b")
BIG=${BIG#sha256:}
SIZE=$(stat -c %s "$TREE/blobs/sha256-$BIG")
make_bundle "$TREE" "$T/b1" 20260101
IN=$T/ingest
"$AGIMPORT" --store "$IN" --keyring "$T/pubkey.asc" "$T/b1/airgap-bundle-20260101.tar.gz" >/dev/null 2>"$T/err" ||
	bail "the ingest import failed: $(cat "$T/err")"
registry_start main || bail "docker-registry did not start"
CA=$T/pki/ca.crt
"$AGSTORE" --store "$IN" push "$REG_URL" --ca-file "$CA" >/dev/null 2>"$T/err"
ok $? "the ingest store pushes to the registry" || cat "$T/err"
nginx_cache_start rack || bail "nginx did not start"

# served bytes of the big blob by the registry, from its access log
big_bytes() {
	grep -E "\"GET /v2/[^ ]*/blobs/sha256:$BIG HTTP/[0-9.]*\" 20[06] " "$REG_LOG" |
		awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^HTTP\//) { s += $(i + 2); break } } END { printf "%.0f\n", s }'
}

for n in 1 2 3; do
	"$AGIMPORT" --registry "$CACHE_URL" --store "$T/node$n" --ca-file "$CA" --no-signature --jobs 2 \
		>"$T/pull$n" 2>"$T/perr$n" &
	pids[n]=$!
done
for n in 1 2 3; do
	wait "${pids[n]}"
	ok $? "node $n pulls through the cache" || cat "$T/perr$n"
done
want=$("$AGSTORE" --store "$IN" --json ls | jq -c '[.[] | [.path, .digest]]')
for n in 1 2 3; do
	is "$("$AGSTORE" --store "$T/node$n" --json ls | jq -c '[.[] | [.path, .digest]]')" "$want" \
		"node $n has the ingest generation"
done
"$AGSTORE" --store "$T/node2" cat "sha256:$BIG" | cmp -s - "$TREE/blobs/sha256-$BIG"
ok $? "the big blob on a node is the bundle's bytes"
if [ "$(id -u)" -eq 0 ] && [ -c /dev/fuse ] && [ -x "$AGFS" ]; then
	mount_agfs "$IN" "$T/m-in" >"$T/mlog" 2>&1
	mount_agfs "$T/node1" "$T/m1" >>"$T/mlog" 2>&1
	for i in $(seq 1 40); do [ -d "$T/m1/manifests" ] && [ -d "$T/m-in/manifests" ] && break; sleep 0.25; done
	diff -r "$T/m-in/manifests" "$T/m1/manifests" >/dev/null && diff -r "$T/m-in/blobs" "$T/m1/blobs" >/dev/null
	ok $? "a node's mount serves every byte the ingest mount serves" || cat "$T/mlog"
	umount_agfs "$T/m1"
	umount_agfs "$T/m-in"
else
	skip "needs root and /dev/fuse to mount"
fi
served=$(big_bytes)
diag "registry served $served bytes of the $SIZE-byte blob to three nodes"
[ "$served" -ge "$SIZE" ] && [ "$served" -le $((SIZE + SIZE / 4)) ]
ok $? "the registry served the big blob about once, not three times"

"$AGIMPORT" --registry "$CACHE_URL" --store "$T/node4" --ca-file "$CA" --no-signature >"$T/out" 2>&1
ok $? "a fourth node pulls later" || cat "$T/out"
is "$(big_bytes)" "$served" "and the registry serves it nothing of the big blob: the cache does"
curl -sf --cacert "$CA" "$CACHE_URL/v2/agfs/models/registry.ollama.ai/library/vast/blobs/sha256:$BIG" | sha256sum | grep -q "^$BIG "
ok $? "curl GETs the blob by digest through the cache"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CA" -X POST \
	"$CACHE_URL/v2/agfs/models/registry.ollama.ai/library/vast/blobs/uploads/")
is "$code" 403 "an upload through the cache is refused (403): the ingest host pushes to the registry"

registry_stop
done_testing
