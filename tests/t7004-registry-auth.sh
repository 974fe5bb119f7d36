#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A registry that wants credentials: docker-registry with client
# certificates (http.tls.clientcas) and htpasswd basic authentication.  push
# and pull work with --cert/--key and --token-file user:password; without the
# certificate or with a wrong password they are refused with one sentence,
# the node's store left as it was.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
. "$TESTS_DIR/lib-registry.sh"
registry_test_needs
hash=$(python3 -W ignore -c 'import crypt; print(crypt.crypt("s3cret", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))' 2>/dev/null)
case $hash in '$2'*) ;; *) skip_all "python3 cannot make a bcrypt hash for htpasswd" ;; esac

make_gpg_key
make_random_ollama_tree "$T/tree" 100000
make_bundle "$T/tree" "$T/b" 20260101
IN=$T/ingest
"$AGIMPORT" --store "$IN" --keyring "$T/pubkey.asc" --sign-key "$KEY_FPR" \
	"$T/b/airgap-bundle-20260101.tar.gz" >/dev/null 2>"$T/err" || bail "import: $(cat "$T/err")"
registry_ca
echo "agfs:$hash" >"$T/htpasswd"
registry_start auth "    clientcas:
      - $T/pki/ca.crt
auth:
  htpasswd:
    realm: agfs-test
    path: $T/htpasswd" || bail "docker-registry did not start"
CA=$T/pki/ca.crt
echo "agfs:s3cret" >"$T/token"
echo "agfs:wrong" >"$T/bad-token"
CRED=(--ca-file "$CA" --cert "$T/pki/client.crt" --key "$T/pki/client.key" --token-file "$T/token")

"$AGSTORE" --store "$IN" --json push "$REG_URL" "${CRED[@]}" >"$T/push" 2>"$T/err"
ok $? "push with a client certificate and basic credentials" || cat "$T/err"
"$AGIMPORT" --registry "$REG_URL" --store "$T/node" "${CRED[@]}" --keyring "$T/pubkey.asc" >"$T/out" 2>"$T/err"
ok $? "pull with the same" || cat "$T/err"
is "$("$AGSTORE" --store "$T/node" --json ls | jq -c '[.[] | [.path, .digest]]')" \
	"$("$AGSTORE" --store "$IN" --json ls | jq -c '[.[] | [.path, .digest]]')" "the node has the ingest generation"

"$AGSTORE" --store "$T/r" init >/dev/null
before=$(snap "$T/r")
run_fail "$AGIMPORT" --registry "$REG_URL" --store "$T/r" --ca-file "$CA" --token-file "$T/token" --keyring "$T/pubkey.asc"
[ "$rc" -eq 4 ] && grep -q "could not pull $REG_URL" "$T/err"
ok $? "without the client certificate the pull fails: the registry drops the TLS connection (exit 4)" || cat "$T/err"
run_fail "$AGIMPORT" --registry "$REG_URL" --store "$T/r" --ca-file "$CA" --cert "$T/pki/client.crt" \
	--key "$T/pki/client.key" --token-file "$T/bad-token" --keyring "$T/pubkey.asc"
[ "$rc" -eq 1 ] && grep -q "HTTP 401" "$T/err"
ok $? "a wrong password is refused (401)" || cat "$T/err"
run_fail "$AGIMPORT" --registry "$REG_URL" --store "$T/r" --ca-file "$CA" --cert "$T/pki/client.crt" \
	--keyring "$T/pubkey.asc" --no-signature
is "$rc" 2 "--cert without --key is a usage error"
# A TLS file that cannot be read: a usage error naming the option, said
# before any request (not a TLS failure the registry would be blamed for).
for opt in --ca-file --cert --key; do
	args=(--ca-file "$CA" --cert "$T/pki/client.crt" --key "$T/pki/client.key")
	for i in 0 2 4; do [ "${args[i]}" = "$opt" ] && args[i + 1]=$T/missing.pem; done
	run_fail "$AGIMPORT" --registry "$REG_URL" --store "$T/r" "${args[@]}" --token-file "$T/token" \
		--keyring "$T/pubkey.asc"
	is "$rc" 2 "pull with $opt naming a missing file: usage error"
	grep -q "cannot pull $REG_URL: .*(${opt}) $T/missing.pem cannot be read (No such file or directory)" "$T/err"
	ok $? "naming the option and the file: $(cat "$T/err")"
done
run_fail "$AGIMPORT" --registry "$REG_URL" --store "$T/r" --ca-file "$T/missing.pem" \
	--token-file "$T/token" --keyring "$T/pubkey.asc" --json
[ "$rc" = 2 ] && [ "$(jq -r .result "$T/out")" = usage ]
ok $? "with --json the pull's result is \"usage\" (exit $rc)" || cat "$T/out"
run_fail "$AGSTORE" --store "$IN" push "$REG_URL" --ca-file "$T/pki" --cert "$T/pki/client.crt" \
	--key "$T/pki/client.key" --token-file "$T/token"
is "$rc" 2 "push with --ca-file naming a directory: usage error"
grep -q "(--ca-file) $T/pki is not a file" "$T/err"
ok $? "saying so: $(cat "$T/err")"
is "$(snap "$T/r")" "$before" "the refused node's store is unchanged"
registry_stop
done_testing
