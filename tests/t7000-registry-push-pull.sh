#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# agstore push / agimport --registry against a real docker-registry on
# loopback with TLS from a test CA: an "ingest" store made by a signed bundle
# import is pushed (manifests byte for byte as skopeo and curl see them, a
# second push uploads nothing), three "node" stores pull at once and serve,
# through real mounts, every byte the ingest store serves; a node that has
# most blobs fetches only the missing ones (counted in the registry's log).
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
. "$TESTS_DIR/lib-registry.sh"
registry_test_needs

make_gpg_key
TREE=$T/tree
make_random_ollama_tree "$TREE" 400000
make_model "$TREE" hf.co/Org/Some-Model-GGUF/Q4_K_M 50000 hfmodel
# the same model under a second name: its blobs are linked, not sent again
mkdir -p "$TREE/manifests/registry.ollama.ai/library/tinycopy"
cp "$TREE/manifests/registry.ollama.ai/library/tiny/latest" "$TREE/manifests/registry.ollama.ai/library/tinycopy/latest"
make_bundle "$TREE" "$T/b1" 20260101
IN=$T/ingest
"$AGIMPORT" --store "$IN" --keyring "$T/pubkey.asc" --sign-key "$KEY_FPR" \
	"$T/b1/airgap-bundle-20260101.tar.gz" >/dev/null 2>"$T/err"
ok $? "the ingest store imports a signed bundle and signs the generation's catalog" || cat "$T/err"
# the bundle's own files the catalog keeps as blobs: bundle.json, .asc, .sha256 lists
nbf() { tar tzf "$1" | grep -cE '^(manifest/bundle\.json(\.asc)?|signatures/.*\.sha256)$'; }

registry_start main || bail "docker-registry did not start"
CA=$T/pki/ca.crt
TLS=(--ca-file "$CA")

# --- push ---
"$AGSTORE" --store "$IN" --json push "$REG_URL" "${TLS[@]}" --jobs 1 >"$T/push1" 2>"$T/err"
ok $? "agstore push uploads the current generation" || cat "$T/err"
is "$(jq .blobs_mounted "$T/push1")" 4 "the second name's 4 blobs are linked from the first's repository"
[ "$(grep -cE '"POST /v2/agfs/models/registry.ollama.ai/library/tinycopy/blobs/uploads/\?mount=[^ ]* HTTP/[0-9.]*" 201' "$REG_LOG")" -eq 4 ]
ok $? "  with cross-repository mounts the registry accepted (201)"
[ "$(grep -cE '"PATCH /v2/agfs/models/registry.ollama.ai/library/tinycopy/' "$REG_LOG")" -eq 0 ]
ok $? "  and no byte of them sent again"
nblobs=$(find "$TREE/blobs" -type f | wc -l)
nmods=$(find "$TREE/manifests" -type f | wc -l)
is "$(jq .blobs_uploaded "$T/push1")" $((nblobs + 3 + $(nbf "$T/b1/airgap-bundle-20260101.tar.gz"))) \
	"every config and layer blob, the index, the catalog, its signature and the bundle's files were uploaded"
is "$(jq .manifests_written "$T/push1")" $((nmods + 2)) "every model manifest and the index tags gen-1, latest were written"
writes1=$(registry_count '"(POST|PATCH|PUT) ')
"$AGSTORE" --store "$IN" --json push "$REG_URL" "${TLS[@]}" >"$T/push2" 2>"$T/err"
ok $? "a second push succeeds" || cat "$T/err"
is "$(jq .blobs_uploaded "$T/push2"),$(jq .manifests_written "$T/push2")" "0,0" "and uploads nothing"
is "$(registry_count '"(POST|PATCH|PUT) ')" "$writes1" "the registry's log shows no write request from the second push"
grep -q '"event":"REGISTRY_PUSH"' "$IN/audit.log"
ok $? "the push is audited on the ingest store"

# --- independent clients: skopeo for manifests, curl for blobs ---
if command -v skopeo >/dev/null; then
	mkdir -p "$T/certs" && cp "$CA" "$T/certs/ca.crt"
	bad=0
	for m in $(cd "$TREE/manifests" && find . -type f | sed 's|^\./||'); do
		host=${m%%/*} rest=${m#*/} ns=${rest%%/*} rest=${rest#*/} model=${rest%%/*} tag=${rest#*/}
		repo=$(jq -r --arg n "$m" '.models[$n].repository' <(curl -sf --cacert "$CA" \
			"$REG_URL/v2/agfs/catalog/blobs/$(curl -sf --cacert "$CA" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
				"$REG_URL/v2/agfs/catalog/manifests/latest" | jq -r .config.digest)"))
		skopeo inspect --raw --cert-dir "$T/certs" "docker://127.0.0.1:$REG_PORT/$repo:$tag" >"$T/raw" 2>"$T/err" &&
			cmp -s "$T/raw" "$TREE/manifests/$m" || {
			bad=1
			diag "$m ($repo:$tag): $(head -c 300 "$T/err")"
		}
	done
	ok $bad "skopeo inspect --raw returns every model manifest byte for byte"
else
	skip "skopeo is not installed"
fi
grep -q '"agfs/models/hf.co/org-x[0-9a-f]\{8\}/some-model-gguf-x[0-9a-f]\{8\}"' \
	<(curl -sf --cacert "$CA" "$REG_URL/v2/_catalog")
ok $? "an hf.co model with upper case lands in a mapped repository"
bad=0
for f in "$TREE"/blobs/sha256-*; do
	h=${f##*sha256-}
	m=$(grep -l "$h" -r "$TREE/manifests" | head -1)
	m=${m#"$TREE"/manifests/}
	repo=agfs/models/$(dirname "$m" | tr 'A-Z' 'a-z')
	case $m in hf.co/*) repo=$(curl -sf --cacert "$CA" "$REG_URL/v2/_catalog" | jq -r '.repositories[]' | grep hf.co) ;; esac
	got=$(curl -sf --cacert "$CA" "$REG_URL/v2/$repo/blobs/sha256:$h" | sha256sum | cut -d' ' -f1)
	[ "$got" = "$h" ] || {
		bad=1
		diag "blob $h from $repo: got $got"
	}
done
ok $bad "curl GETs every blob by digest with its own bytes"

# --- three nodes pull at once ---
for n in 1 2 3; do
	"$AGIMPORT" --registry "$REG_URL" --store "$T/node$n" "${TLS[@]}" --keyring "$T/pubkey.asc" --jobs 3 \
		>"$T/pull$n" 2>"$T/perr$n" &
	pids[n]=$!
done
for n in 1 2 3; do
	wait "${pids[n]}"
	ok $? "node $n pulls the generation" || cat "$T/perr$n"
done
"$AGSTORE" --store "$IN" --json ls >"$T/ls-in"
for n in 1 2 3; do
	"$AGSTORE" --store "$T/node$n" --json ls >"$T/ls-$n"
	is "$(jq -c '[.[] | [.path, .digest]]' "$T/ls-$n")" \
		"$(jq -c '[.[] | [.path, .digest]]' "$T/ls-in")" \
		"node $n has the ingest generation's models and manifests"
	grep '"event":"REGISTRY_PULL"' "$T/node$n/audit.log" | grep '"url":"'"$REG_URL"'"' |
		grep '"signer":"'"$KEY_FPR"'"' | grep -q '"catalog_sha256":"'
	ok $? "node $n audits REGISTRY_PULL with the URL, the catalog and its signer"
done
"$AGSTORE" --store "$T/node1" verify --keyring "$T/pubkey.asc" >"$T/out" 2>&1
ok $? "agstore verify accepts the pulled generation's catalog and signature on the node" || cat "$T/out"
"$AGSTORE" --store "$T/node1" status >"$T/out" 2>&1
grep -qE "^last pull: +[0-9T:-]+Z, done from $REG_URL \(its generation 1\)$" "$T/out"
ok $? "agstore status shows the registry, the last pull and its result" || cat "$T/out"
is "$("$AGSTORE" --store "$T/node1" status --json | jq -r '.last_pull | .result + " " + .url')" \
	"done $REG_URL" "  and so does status --json"
is "$("$AGSTORE" --store "$IN" status --json | jq -c .last_pull)" null "a store that never pulled shows none"
"$AGIMPORT" --registry "$REG_URL" --store "$T/node1" "${TLS[@]}" --keyring "$T/pubkey.asc" >"$T/out" 2>&1
ok $? "pulling the same generation again succeeds"
grep -q "already current" "$T/out"
ok $? "and says there is nothing to do" || cat "$T/out"
is "$("$AGSTORE" --store "$T/node1" versions | grep -c '^[ *]*[0-9]')" 1 "no second generation was made"

# --- served bytes through real mounts ---
if [ "$(id -u)" -eq 0 ] && [ -c /dev/fuse ] && [ -x "$AGFS" ]; then
	mount_agfs "$IN" "$T/m-in" -o metrics="$T/in.prom" >"$T/mlog" 2>&1
	mount_agfs "$T/node1" "$T/m1" -o metrics="$T/node1.prom" >>"$T/mlog" 2>&1
	for n in 2 3; do mount_agfs "$T/node$n" "$T/m$n" >>"$T/mlog" 2>&1; done
	for n in 1 2 3; do
		fs_ok=1
		for i in $(seq 1 40); do [ -d "$T/m$n/manifests" ] && [ -d "$T/m-in/manifests" ] && fs_ok=0 && break; sleep 0.25; done
		[ $fs_ok -eq 0 ] && diff -r "$T/m-in/manifests" "$T/m$n/manifests" >/dev/null &&
			diff -r "$T/m-in/blobs" "$T/m$n/blobs" >/dev/null
		ok $? "node $n's mount serves every byte the ingest mount serves"
	done
	diff -r "$TREE/blobs" "$T/m1/blobs" >/dev/null
	ok $? "and those are the bundle's own bytes"
	pulled=$(awk '$1 == "agfs_last_pull_timestamp_seconds" {print $2}' "$T/node1.prom" 2>/dev/null)
	[ -n "$pulled" ] && [ "$pulled" -gt $(($(date +%s) - 3600)) ] && [ "$pulled" -le "$(date +%s)" ]
	ok $? "node 1's metrics file has the time of its last pull" || cat "$T/node1.prom"
	! grep -q '^agfs_last_pull_timestamp_seconds' "$T/in.prom"
	ok $? "  and the ingest host's, which never pulled, has none"
	for n in 1 2 3; do umount_agfs "$T/m$n"; done
	umount_agfs "$T/m-in"
else
	skip "needs root and /dev/fuse to mount"
fi

# --- a node that has most blobs fetches only the missing ones ---
cp -r "$TREE" "$T/tree2"
make_model "$T/tree2" registry.ollama.ai/library/later/7b 30000 later
make_bundle "$T/tree2" "$T/b2" 20260102
"$AGIMPORT" --store "$IN" --keyring "$T/pubkey.asc" --sign-key "$KEY_FPR" "$T/b2/airgap-bundle-20260102.tar.gz" >/dev/null 2>"$T/err"
ok $? "a newer bundle is imported on the ingest host" || cat "$T/err"
"$AGSTORE" --store "$IN" --json push "$REG_URL" "${TLS[@]}" >"$T/push3" 2>"$T/err"
is "$(jq .blobs_uploaded "$T/push3")" $((4 + 3 + $(nbf "$T/b2/airgap-bundle-20260102.tar.gz"))) \
	"pushing it uploads only the new model's 4 blobs, the index, catalog, signature and bundle files"
gets0=$(registry_count '"GET /v2/agfs/models/[^ ]*/blobs/')
"$AGIMPORT" --registry "$REG_URL" --store "$T/node1" "${TLS[@]}" --keyring "$T/pubkey.asc" --json >"$T/pull4" 2>"$T/err"
ok $? "node 1 pulls the new generation" || cat "$T/err"
is "$(($(registry_count '"GET /v2/agfs/models/[^ ]*/blobs/') - gets0))" 4 \
	"the registry served exactly the 4 blobs node 1 lacked"
is "$(jq .blobs_present "$T/pull4")" "$nblobs" "the blobs node 1 had were not fetched"
is "$("$AGSTORE" --store "$T/node1" ls | grep -c later)" 1 "the new model is current on node 1"

registry_stop
done_testing
