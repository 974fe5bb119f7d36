#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# agimport --registry and agstore push under faults, on loopback through a
# real docker-registry (and tests/registry-proxy.py for broken connections):
# dropped connections are resumed (Range on GET, upload status on PATCH); a
# registry that dies mid-pull leaves the node's generations unchanged and a
# rerun fetches only what is missing; an altered blob, a blob the registry
# lacks, a wrong CA, an older catalog (serial), a hung registry, a catalog
# signed by an untrusted key and plain http each refuse with one clear sentence, leaving
# the node's store exactly as it was.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
. "$TESTS_DIR/lib-registry.sh"
registry_test_needs
PROXY=$TESTS_DIR/registry-proxy.py

make_gpg_key "Other Signer"
OTHER_FPR=$KEY_FPR
make_gpg_key
SIGN_KEY=$KEY_FPR # bundles are signed by the trusted key, not the first one
KR=$T/pubkey.asc
TREE=$T/tree
make_random_ollama_tree "$TREE" 200000
make_model "$TREE" registry.ollama.ai/library/vast/8b 6000000 vast
BIG=$(jq -r '.layers[0].digest' "$TREE/manifests/registry.ollama.ai/library/vast/8b")
BIG=${BIG#sha256:}
make_bundle "$TREE" "$T/b1" 20260101
IN=$T/ingest
"$AGIMPORT" --store "$IN" --keyring "$KR" --sign-key "$KEY_FPR" "$T/b1/airgap-bundle-20260101.tar.gz" >/dev/null 2>"$T/err" ||
	bail "the ingest import failed: $(cat "$T/err")"
registry_start main || bail "docker-registry did not start"
CA=$T/pki/ca.crt
TLS=(--ca-file "$CA")
PIDS=()
proxy() { # proxy MODE LIMIT -> $PX_URL, $PX_PID
	local port
	port=$(free_port)
	python3 "$PROXY" "$port" "$REG_PORT" "$@" >"$T/proxy.out" 2>&1 &
	PX_PID=$!
	PIDS+=("$PX_PID")
	PX_URL=https://127.0.0.1:$port
	for _ in $(seq 1 50); do grep -q ready "$T/proxy.out" && return 0; sleep 0.1; done
	return 1
}
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; _reg_cleanup' EXIT

"$AGSTORE" --store "$IN" push "$REG_URL" "${TLS[@]}" >/dev/null 2>"$T/err" || bail "push failed: $(cat "$T/err")"

# --- a download through connections that drop: Range resumes ---
proxy cut-down 1500000 || bail "the proxy did not start"
gets0=$(registry_count "\"GET /v2/[^ ]*/blobs/sha256:$BIG")
"$AGIMPORT" --registry "$PX_URL" --store "$T/n-cut" "${TLS[@]}" --keyring "$KR" --jobs 2 >"$T/out" 2>"$T/err"
ok $? "a pull through connections that drop every 1.5 MB completes" || cat "$T/err"
[ $(($(registry_count "\"GET /v2/[^ ]*/blobs/sha256:$BIG") - gets0)) -ge 4 ]
ok $? "the 6 MB blob came in several Range requests"
"$AGSTORE" --store "$T/n-cut" cat "sha256:$BIG" | cmp -s - "$TREE/blobs/sha256-$BIG"
ok $? "and the node holds its exact bytes"
kill "$PX_PID"

# --- the registry dies mid-pull; a rerun completes, reusing what was fetched ---
N=$T/node
"$AGSTORE" --store "$N" init >/dev/null
before=$(snap "$N")
proxy die 3000000 || bail "the proxy did not start"
"$AGIMPORT" --registry "$PX_URL" --store "$N" "${TLS[@]}" --keyring "$KR" --jobs 1 --timeout 3 >"$T/out" 2>"$T/err"
is "$?" 4 "a pull from a registry that dies mid-transfer fails with exit 4 (not a refusal)"
grep -q "could not pull $PX_URL" "$T/err"
ok $? "with one sentence naming the registry" || cat "$T/err"
is "$("$AGSTORE" --store "$N" versions | grep -c '[0-9]')" 0 "the node has no new generation"
grep -q '"event":"REGISTRY_PULL_INCOMPLETE"' "$N/audit.log"
ok $? "the blobs already verified are kept, and that is audited"
kept=$(jq -r 'select(.event=="REGISTRY_PULL_INCOMPLETE") | .blobs_kept' "$N/audit.log" | tail -1)
gets0=$(registry_count '"GET /v2/agfs/models/[^ ]*/blobs/sha256')
"$AGIMPORT" --registry "$REG_URL" --store "$N" "${TLS[@]}" --keyring "$KR" --json >"$T/out" 2>"$T/err"
ok $? "a rerun against the registry completes" || cat "$T/err"
nblobs=$(find "$TREE/blobs" -type f | wc -l)
nman=$(find "$TREE/manifests" -type f | wc -l)
[ "$((kept - nman))" -gt 0 ]
ok $? "the first run kept some verified blobs ($((kept - nman)) of $nblobs, and $nman manifests)"
is "$(($(registry_count '"GET /v2/agfs/models/[^ ]*/blobs/sha256') - gets0))" "$((nblobs - (kept - nman)))" \
	"the rerun fetched only the blobs the first run had not kept"
diff <("$AGSTORE" --store "$N" --json ls | jq -c '[.[] | [.path, .digest]]') \
	<("$AGSTORE" --store "$IN" --json ls | jq -c '[.[] | [.path, .digest]]') >/dev/null
ok $? "the node now has the ingest generation"

# --- refusals that leave the node exactly as it was ---
refuse() { # refuse DESCRIPTION PATTERN agimport-args...
	local desc=$1 pat=$2 before
	shift 2
	before=$(snap "$R")
	run_fail "$AGIMPORT" --store "$R" "$@"
	[ "$rc" -ne 0 ] && grep -qE "$pat" "$T/err"
	ok $? "$desc" || diag "rc=$rc: $(cat "$T/err")"
	[ "$before" = "$(snap "$R")" ]
	ok $? "  and the node's store is unchanged"
}
R=$T/r
"$AGSTORE" --store "$R" init >/dev/null
refuse "a wrong CA is refused" "TLS certificate is not trusted" \
	--registry "$REG_URL" --ca-file "$T/pki/other-ca.crt" --keyring "$KR"
# a catalog signed by a key the node does not trust (re-signed on the ingest host)
"$AGSTORE" --store "$IN" sign --sign-key "$OTHER_FPR" >/dev/null 2>"$T/err" &&
	"$AGSTORE" --store "$IN" push "$REG_URL" "${TLS[@]}" >/dev/null 2>>"$T/err"
ok $? "the ingest host re-signs with another key and pushes" || cat "$T/err"
refuse "a catalog signed by an untrusted key is refused" "signature is refused" \
	--registry "$REG_URL" "${TLS[@]}" --keyring "$KR"
"$AGSTORE" --store "$IN" sign --sign-key "$KEY_FPR" >/dev/null 2>"$T/err" &&
	"$AGSTORE" --store "$IN" push "$REG_URL" "${TLS[@]}" >/dev/null 2>>"$T/err"
ok $? "signed again with the trusted key and pushed" || cat "$T/err"
run_fail "$AGIMPORT" --store "$R" --registry "http://127.0.0.1:$REG_PORT" --no-signature
is "$rc" 2 "plain http without --insecure-http is a usage error"
grep -q "insecure-http" "$T/err"
ok $? "  that names --insecure-http"

# a hung registry: accepts and never answers
proxy mute 0 || bail "the proxy did not start"
start=$(date +%s)
refuse "a registry that never answers times out" "timed out" \
	--registry "$PX_URL" "${TLS[@]}" --keyring "$KR" --timeout 1
[ $(($(date +%s) - start)) -lt 30 ]
ok $? "  within the bounded retries"
kill "$PX_PID"

# an altered blob in the registry's storage (same size, one byte changed)
cp -r "$REG_DIR/data" "$T/data.orig"
f=$(registry_blob_path "$BIG")
printf 'X' | dd of="$f" bs=1 seek=1000 conv=notrunc status=none
refuse "a blob altered in the registry is refused" "SHA-256 is" \
	--registry "$REG_URL" "${TLS[@]}" --keyring "$KR"
rm -rf "$REG_DIR/data" && cp -r "$T/data.orig" "$REG_DIR/data"

# a blob the registry lacks
rm -rf "$(dirname "$(registry_blob_path "$BIG")")"
registry_stop
registry_start main || bail "docker-registry did not restart"
refuse "a manifest naming a blob the registry lacks is refused" "HTTP 404|BLOB_UNKNOWN" \
	--registry "$REG_URL" "${TLS[@]}" --keyring "$KR"
rm -rf "$REG_DIR/data" && cp -r "$T/data.orig" "$REG_DIR/data"

# an older generation (anti-rollback)
cp -r "$TREE" "$T/tree2"
make_model "$T/tree2" registry.ollama.ai/library/later/7b 10000 later
make_bundle "$T/tree2" "$T/b2" 20260102
"$AGIMPORT" --store "$IN" --keyring "$KR" --sign-key "$KEY_FPR" "$T/b2/airgap-bundle-20260102.tar.gz" >/dev/null 2>&1
"$AGSTORE" --store "$IN" push "$REG_URL" "${TLS[@]}" >/dev/null 2>"$T/err"
ok $? "generation 2 is pushed" || cat "$T/err"
"$AGIMPORT" --registry "$REG_URL" --store "$R" "${TLS[@]}" --keyring "$KR" >/dev/null 2>"$T/err"
ok $? "a node pulls latest (generation 2)" || cat "$T/err"
refuse "an older catalog is refused (anti-rollback)" "serial 1 is older than serial 2" \
	--registry "$REG_URL" "${TLS[@]}" --keyring "$KR" --generation 1
grep -q '"event":"REGISTRY_PULL_REJECTED"' "$R/audit.log"
ok $? "refusals are audited"
"$AGSTORE" --store "$R" status --json >"$T/out" 2>&1
is "$(jq -r '.last_pull.result' "$T/out")" refused "agstore status shows the last pull was refused"
jq -r '.last_pull.reason' "$T/out" | grep -q "serial 1 is older than serial 2"
ok $? "  and why" || cat "$T/out"

# --- uploads through connections that drop (a registry of their own) ---
registry_stop
# An answer lost (the uploading connection drops after 9 kB to the client).
registry_start up || bail "docker-registry did not start"
proxy cut-down 9000 2 || bail "the proxy did not start"
"$AGSTORE" --store "$IN" --json push "$PX_URL" "${TLS[@]}" --chunk-size 1048576 --jobs 1 >"$T/push" 2>"$T/err"
ok $? "a push whose connection drops mid-answer completes" || cat "$T/err"
kill "$PX_PID"
curl -sf --cacert "$CA" "$REG_URL/v2/agfs/models/registry.ollama.ai/library/vast/blobs/sha256:$BIG" | sha256sum | grep -q "^$BIG "
ok $? "the registry holds the big blob's exact bytes"
"$AGSTORE" --store "$IN" --json push "$REG_URL" "${TLS[@]}" >"$T/push" 2>"$T/err"
is "$(jq .blobs_uploaded "$T/push")" 0 "a push straight to it afterwards uploads nothing"
registry_stop
# A chunk broken off mid-body: Docker Distribution drops that session
# ("blob upload invalid"), so the upload starts again in a new one.
registry_start up2 || bail "docker-registry did not start"
proxy cut-up 2500000 2 || bail "the proxy did not start"
"$AGSTORE" --store "$IN" --json push "$PX_URL" "${TLS[@]}" --chunk-size 1048576 --jobs 1 >"$T/push" 2>"$T/err"
ok $? "a push whose connection drops mid-chunk completes" || cat "$T/err"
kill "$PX_PID"
[ "$(grep -cE '"GET /v2/agfs/models/[^ ]*/blobs/uploads/[^ ]* HTTP/[0-9.]*" 404' "$REG_LOG")" -gt 0 ]
ok $? "  in a new upload session after the registry dropped the broken one"
curl -sf --cacert "$CA" "$REG_URL/v2/agfs/models/registry.ollama.ai/library/vast/blobs/sha256:$BIG" | sha256sum | grep -q "^$BIG "
ok $? "  and the registry holds the big blob's exact bytes"

registry_stop
done_testing
