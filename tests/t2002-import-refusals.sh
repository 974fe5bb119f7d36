#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# agimport refuses bad sources, each for the right reason, and leaves the
# store exactly as it was (index and objects), with nothing left in staging
# and BUNDLE_REJECTED in the audit log.  Table-driven: each case mutates a
# copy of a good bundle directory and re-tars / re-signs as it needs.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
need_cmd gpg tar gzip sha256sum openssl python3
[ -x "$AGIMPORT" ] || skip_all "agimport not built"

make_gpg_key
G="gpg --batch --quiet --no-auto-check-trustdb --pinentry-mode loopback --passphrase="
# A key that is not in the trusted keyring, and one that expired in 2020.
$G --quick-gen-key "Stranger <stranger@example.invalid>" ed25519 sign 0 2>/dev/null
STRANGER=$(gpg --batch --no-auto-check-trustdb --with-colons --list-keys Stranger 2>/dev/null | awk -F: '/^fpr/ {print $10; exit}')
$G --faked-system-time 20200101T000000 --quick-gen-key "Old <old@example.invalid>" ed25519 sign 1d \
	2>/dev/null
OLD=$(gpg --batch --no-auto-check-trustdb --with-colons --list-keys Old 2>/dev/null | awk -F: '/^fpr/ {print $10; exit}')
$G --quick-gen-key "Revoked <revoked@example.invalid>" ed25519 sign 0 2>/dev/null
REVOKED=$(gpg --batch --no-auto-check-trustdb --with-colons --list-keys Revoked 2>/dev/null | awk -F: '/^fpr/ {print $10; exit}')
gpg --batch --armor --export "$KEY_FPR" "$OLD" >"$T/keys.asc"
[ -n "$STRANGER" ] && [ -n "$OLD" ] || bail "gpg could not make the extra keys"

TREE=$T/tree
make_random_ollama_tree "$TREE" 70000
S=$T/store
make_bundle "$TREE" "$T/first" 20260423
"$AGIMPORT" --store "$S" --keyring "$T/keys.asc" "$T/first/airgap-bundle-20260423.tar.gz" >/dev/null 2>&1 ||
	bail "the good bundle is not imported"
# The good bundle: the same models plus one the store does not have yet.
cp -r "$TREE" "$T/tree-b"
make_model "$T/tree-b" registry.ollama.ai/library/fresh/1b 50000 fresh
GOOD=$T/good
make_bundle_dir "$T/tree-b" "$GOOD" 20260424
# A signature made before its key was revoked; the keyring then carries the
# revocation (gpg keeps a revocation certificate for every key it makes).
$G --local-user "$REVOKED" --armor --detach-sign -o "$T/revoked.asc" "$GOOD/manifest/bundle.json"
sed 's/^:-----BEGIN/-----BEGIN/' "$GNUPGHOME/openpgp-revocs.d/$REVOKED.rev" >"$T/rev.cert"
gpg --batch --quiet --import "$T/rev.cert" 2>/dev/null
gpg --batch --armor --export "$REVOKED" >>"$T/keys.asc"
[ -s "$T/revoked.asc" ] || bail "gpg could not sign with the key to revoke"
C=$T/case
MB=models/models/blobs
MM=models/models/manifests/registry.ollama.ai/library/tiny/latest

# helpers for the mutations (run inside $C)
weights() { # the tiny model's weights blob
	python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["layers"][0]["digest"][7:])' "$MM"
}
fresh_weights() {
	python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["layers"][0]["digest"][7:])' \
		models/models/manifests/registry.ollama.ai/library/fresh/1b
}
flip_byte() { printf 'X' | dd of="$1" bs=1 seek=100 conv=notrunc status=none; }
relist() { # relist FILE: update FILE's line in signatures/models.sha256 (unsigned)
	local h
	h=$(sha256sum "$1" | cut -d' ' -f1)
	sed -i "s|^[0-9a-f]* \*$1\$|$h *$1|" signatures/models.sha256
}
set_manifest() { # set_manifest PYTHON-EXPR-ON-m: rewrite the tiny manifest
	python3 -c "import json,sys; m=json.load(open(sys.argv[1])); $1; open(sys.argv[1],'w').write(json.dumps(m,separators=(',',':')))" "$MM"
}
py_tar() { # py_tar OUT KIND NAME: the good members plus one crafted member
	python3 - "$1" "$2" "$3" <<'EOP'
import io, sys, tarfile
out, kind, name = sys.argv[1:]
t = tarfile.open(out, "w:gz", format=tarfile.GNU_FORMAT)
for top in ["binaries", "images", "models", "packages", "signatures", "manifest"]:
    t.add(top)
ti = tarfile.TarInfo(name)
if kind == "file":
    ti.size = 4; t.addfile(ti, io.BytesIO(b"evil"))
elif kind == "char":
    ti.type = tarfile.CHRTYPE; ti.devmajor, ti.devminor = 1, 3; t.addfile(ti)
elif kind == "fifo":
    ti.type = tarfile.FIFOTYPE; t.addfile(ti)
t.close()
EOP
}

mut_wrong_key() { SIGN_KEY=$STRANGER _sign manifest/bundle.json; }
mut_no_signature() { rm manifest/bundle.json.asc; }
mut_bad_signature() { sed -i 's/"alice"/"mallory"/' manifest/bundle.json; }
mut_garbage_signature() { echo "not a signature" >manifest/bundle.json.asc; }
mut_expired_key() { SIGN_KEY=$OLD GPG_SIGN_OPTS="--faked-system-time 20200101T060000" _sign manifest/bundle.json; }
mut_revoked_key() { cp "$T/revoked.asc" manifest/bundle.json.asc; }
mut_signer_not_allowed() { ARGS=(--signer "$STRANGER"); }
mut_blob_and_line_changed() { local w=$MB/sha256-$(weights); flip_byte "$w"; relist "$w"; }
mut_blob_changed() { flip_byte "$MB/sha256-$(weights)"; }
mut_manifest_changed() { set_manifest 'm["layers"][1]["size"]+=1'; }
mut_manifest_changed_resigned() { set_manifest 'm["layers"][1]["size"]+=1'; resign_bundle .; }
mut_digest_mismatch() { flip_byte "$MB/sha256-$(weights)"; resign_bundle .; }
mut_missing_blob() { rm "$MB/sha256-$(fresh_weights)"; resign_bundle .; }
mut_manifest_bad_schema() { set_manifest 'm["schemaVersion"]=1'; resign_bundle .; }
mut_manifest_bad_digest() { set_manifest 'm["layers"][0]["digest"]="sha256:xyz"'; resign_bundle .; }
mut_manifest_bad_sig() { echo '{}' >x && _sign x && mv x.asc "$MM.sig" && rm x && resign_bundle .; }
mut_malformed_bundle_json() { echo '{"bundle_version": "20260424", ' >manifest/bundle.json; _sign manifest/bundle.json; }
mut_no_bundle_version() { sed -i '/bundle_version/d' manifest/bundle.json; _sign manifest/bundle.json; }
mut_no_models_hash() { sed -i '/models_directory_hash/d; s/\("open_webui_image": "[0-9a-f]*"\),/\1/' manifest/bundle.json; _sign manifest/bundle.json; }
mut_no_bundle_json() { rm manifest/bundle.json manifest/bundle.json.asc; }
mut_artifact_changed() { echo evil >>binaries/ollama-linux-amd64; sha256sum binaries/ollama-linux-amd64 >signatures/ollama.sha256; }
mut_listed_file_missing() { echo "$(printf %064d 1)  binaries/gone" >>signatures/ollama.sha256; }
mut_malformed_list() { echo "not a sha256 line" >signatures/extra.sha256; }
mut_downgrade() { sed -i 's/20260424/20260101/' manifest/bundle.json; _sign manifest/bundle.json; }
mut_outer_hash() { ARGS=(--sha256 "$(printf %064d 0)"); }
mut_truncated() { SRC=$T/trunc.tgz; bundle_tar . "$T/full.tgz"; head -c $(($(stat -c %s "$T/full.tgz") / 2)) "$T/full.tgz" >"$SRC"; }
mut_garbage() { SRC=$T/garbage.tgz; head -c 100000 /dev/urandom >"$SRC"; }
mut_zero_bytes() { SRC=$T/zero.tgz; : >"$SRC"; }
mut_empty_archive() { SRC=$T/empty.tgz; tar czf "$SRC" -T /dev/null; }
mut_path_traversal() { SRC=$T/trav.tgz; py_tar "$SRC" file ../evil; }
mut_path_traversal_inner() { SRC=$T/trav2.tgz; py_tar "$SRC" file models/../../evil; }
mut_absolute_path() { SRC=$T/abs.tgz; py_tar "$SRC" file /tmp/evil; }
mut_symlink() { ln -s /etc/passwd binaries/link; }
mut_hardlink() { ln binaries/ollama-linux-amd64 binaries/hard; }
mut_device() { SRC=$T/dev.tgz; py_tar "$SRC" char packages/null; }
mut_fifo() { SRC=$T/fifo.tgz; py_tar "$SRC" fifo packages/fifo; }
mut_duplicate() {
	SRC=$T/dup.tar
	bundle_tar . "$SRC" ""
	echo other >dup && tar rf "$SRC" --transform 's,^dup$,binaries/ollama-linux-amd64,' dup
}
mut_dir_symlink() { SRC=$C; ln -s /etc packages/etc; }
mut_double_compressed() { SRC=$T/double.tgz.gz; bundle_tar . "$T/inner.tgz"; gzip -c "$T/inner.tgz" >"$SRC"; }

# name | exit code | phrase in the one-sentence error
CASES=(
	"wrong_key|1|bundle.json.asc: it is signed by a key that is not in the trusted keyring"
	"no_signature|1|bundle.json.asc: it is missing, so the bundle is unsigned"
	"bad_signature|1|the signature does not match the signed file"
	"garbage_signature|1|holds no OpenPGP signature"
	"expired_key|1|has expired"
	"revoked_key|1|the signing key is revoked"
	"signer_not_allowed|1|is not an allowed signer"
	"blob_and_line_changed|1|models/: its files do not match the signed models_directory_hash"
	"blob_changed|1|its SHA-256 differs from line"
	"manifest_changed|1|tiny/latest: its SHA-256 differs from line"
	"manifest_changed_resigned|1|gives its size as"
	"digest_mismatch|1|its content does not hash to the digest"
	"missing_blob|1|which is neither in the bundle nor in the store"
	"manifest_bad_schema|1|schemaVersion is not 2"
	"manifest_bad_digest|1|a digest is not"
	"manifest_bad_sig|1|latest.sig: the signature does not match"
	"malformed_bundle_json|1|manifest/bundle.json: it is malformed"
	"no_bundle_version|1|bundle_version"
	"no_models_hash|1|no models_directory_hash"
	"no_bundle_json|1|manifest/bundle.json: it is missing"
	"artifact_changed|1|binaries/ollama-linux-amd64: its SHA-256 differs from the signed artifact \"ollama_binary\""
	"listed_file_missing|1|binaries/gone: it is listed in signatures/ollama.sha256 but is not in the bundle"
	"malformed_list|1|signatures/extra.sha256: line 1 is malformed"
	"downgrade|1|bundle_version 20260101 is older than 20260423, the newest this store has accepted"
	"outer_hash|1|its SHA-256 is"
	"truncated|1|damaged or truncated"
	"garbage|1|not a readable tar archive"
	"zero_bytes|1|not a readable tar archive"
	"empty_archive|1|the archive is empty"
	"path_traversal|1|../evil: its path contains \"..\""
	"path_traversal_inner|1|its path contains \"..\""
	"absolute_path|1|/tmp/evil: its path is absolute"
	"symlink|1|binaries/link: it is a symbolic link"
	"hardlink|1|it is a hard link"
	"device|1|packages/null: it is a device"
	"fifo|1|packages/fifo: it is a device, FIFO or socket"
	"duplicate|1|binaries/ollama-linux-amd64: it appears twice"
	"dir_symlink|1|packages/etc: it is a symbolic link"
	"double_compressed|1|the source is compressed more than once (gzip inside gzip)"
)

rejected() { grep -c '"event":"BUNDLE_REJECTED"' "$S/audit.log"; }
for row in "${CASES[@]}"; do
	IFS='|' read -r name want_rc phrase <<<"$row"
	rm -rf "$C" && cp -a "$GOOD" "$C"
	SRC= ARGS=()
	cd "$C" && { "mut_$name" >"$T/mut.log" 2>&1 || diag "$name: the mutation said: $(cat "$T/mut.log")"; }
	cd "$T" || exit 1
	if [ -z "$SRC" ]; then
		SRC=$T/case.tgz
		bundle_tar "$C" "$SRC"
	fi
	before=$(snap "$S")
	nrej=$(rejected)
	run_fail "$AGIMPORT" --store "$S" --keyring "$T/keys.asc" "${ARGS[@]}" "$SRC"
	is "$rc" "$want_rc" "$name: refused with exit $want_rc" || sed 's/^/# /' "$T/err"
	grep -qF -- "$phrase" "$T/err"
	ok $? "$name: the error says '$phrase'" || sed 's/^/# /' "$T/err"
	is "$(wc -l <"$T/err")" 1 "$name: one sentence"
	is "$(snap "$S")" "$before" "$name: the store is unchanged"
	[ "$(rejected)" -eq $((nrej + 1)) ] && [ -z "$(ls -A "$S/tmp")" ]
	ok $? "$name: BUNDLE_REJECTED is audited and staging is empty"
done

# plain Ollama trees (--ollama-dir) are checked the same way
ollama_case() { # ollama_case NAME PHRASE MUTATION...
	local name=$1 phrase=$2
	shift 2
	rm -rf "$T/ot" && cp -a "$T/tree-b" "$T/ot"
	(cd "$T/ot" && eval "$@")
	before=$(snap "$S")
	run_fail "$AGIMPORT" --store "$S" --no-signature --ollama-dir "$T/ot"
	is "$rc" 1 "ollama-dir $name: refused with exit 1"
	grep -qF -- "$phrase" "$T/err"
	ok $? "ollama-dir $name: the error says '$phrase'" || sed 's/^/# /' "$T/err"
	is "$(snap "$S")" "$before" "ollama-dir $name: the store is unchanged"
}
ollama_case empty "it holds no manifest" 'rm -rf manifests/* blobs/*'
# (the fresh model's weights: a blob the store does not hold yet)
ollama_case missing-blob "neither in the bundle nor in the store" \
	'rm -f blobs/sha256-$(grep -o "sha256:[0-9a-f]*" manifests/registry.ollama.ai/library/fresh/1b | sed -n 2p | cut -c8-)'
ollama_case symlink "it is a symbolic link" 'ln -s /etc/passwd manifests/registry.ollama.ai/library/tiny/evil'
ollama_case bad-manifest "it is not a valid manifest" 'echo "{}" >manifests/registry.ollama.ai/library/tiny/latest'
ollama_case bad-name "is not a valid model name" 'mkdir -p "manifests/h/n/m" && cp manifests/registry.ollama.ai/library/tiny/latest "manifests/h/n/m/bad tag"'
ollama_case no-blobs-dir "blobs: the tree has no such directory" 'rm -rf blobs'
ollama_case blobs-link "blobs: it is not a directory" 'mv blobs b2 && ln -s b2 blobs'

# blobs/ or manifests/ that agimport may not open (run as nobody, with a
# store nobody owns): the host's fault, exit 4, not a refusal of the tree.
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
	U=$T/nobody
	rm -rf "$U" && mkdir -p "$U" && chmod 755 "$T" "$U"
	cp -a "$T/tree-b" "$U/tree" && chown -R nobody "$U"
	as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$AGIMPORT" "$@"; }
	as_nobody --store "$U/s1" --no-signature --dry-run --ollama-dir "$U/tree" >/dev/null 2>"$T/err"
	ok $? "(nobody may import the tree: $(cat "$T/err"))"
	for dir in blobs manifests; do
		chmod 000 "$U/tree/$dir"
		run_fail as_nobody --store "$U/s-$dir" --no-signature --ollama-dir "$U/tree"
		is "$rc" 4 "$dir/ unreadable to the importer: exit 4, not a refusal of the tree"
		grep -q "could not import $U/tree: $dir: it cannot be opened (Permission denied)" "$T/err"
		ok $? "saying so: $(cat "$T/err")"
		chmod 755 "$U/tree/$dir"
	done
else
	skip "an unreadable tree directory needs root, the user nobody and setpriv"
	skip "an unreadable tree directory needs root, the user nobody and setpriv"
fi

# A tree that leaves out a blob because the store holds it, whose record in
# the store cannot be read: the store's fault (exit 4, "could not import"),
# not "neither in the bundle nor in the store" (a refusal of the tree).
FAULTS=$HELPERS/store-faults
if [ -x "$FAULTS" ]; then
	rm -rf "$T/dmg" "$T/ot" && cp -a "$S" "$T/dmg" && cp -a "$T/tree-b" "$T/ot"
	w=$(jq -r '.layers[0].digest' "$T/ot/manifests/registry.ollama.ai/library/tiny/latest" | cut -c8-)
	rm "$T/ot/blobs/sha256-$w"
	"$AGIMPORT" --store "$T/dmg" --no-signature --dry-run --ollama-dir "$T/ot" >/dev/null 2>&1
	ok $? "(a tree without tiny's weights, which the store holds, is accepted)"
	"$FAULTS" break-record "$T/dmg" "$w" || bail "cannot damage the record of $w"
	before=$(snap "$T/dmg")
	nlog=$(wc -l <"$T/dmg/audit.log")
	run_fail "$AGIMPORT" --store "$T/dmg" --no-signature --ollama-dir "$T/ot"
	is "$rc" 4 "that blob's record damaged in the store: exit 4, not a refusal of the tree"
	grep -q "could not import .*tiny/latest: it names blob sha256:$w, which the bundle does not hold and whose record in the store cannot be read (" "$T/err"
	ok $? "naming the manifest, the blob and the store's record: $(cat "$T/err")"
	is "$(snap "$T/dmg")" "$before" "the store is unchanged"
	is "$(tail -n +$((nlog + 1)) "$T/dmg/audit.log" | jq -c '[.event, .io_error]')" \
		'["BUNDLE_REJECTED",true]' "the audit record says it was an I/O failure"
else
	skip "the store-faults helper is not built ($FAULTS)"
fi

# free space is checked before starting (a small tmpfs as the store's file system)
if [ "$(id -u)" -eq 0 ] && mkdir -p "$T/small" && mount -t tmpfs -o size=3m tmpfs "$T/small" 2>/dev/null; then
	_mounts+=("$T/small") # unmounted by lib.sh even if this test dies
	mkdir -p "$T/bigtree"
	make_model "$T/bigtree" registry.ollama.ai/library/big/1 4000000 big
	tar czf "$T/big.tgz" -C "$T" bigtree
	run_fail "$AGIMPORT" --store "$T/small/s" --no-signature "$T/big.tgz"
	is "$rc" 4 "a tarball larger than the free space: I/O failure (4)"
	grep -q "the store has only [0-9]* free" "$T/err"
	ok $? "before reading it, saying so" || cat "$T/err"
	run_fail "$AGIMPORT" --store "$T/small/s" --no-signature --ollama-dir "$T/bigtree"
	is "$rc" 4 "a member larger than the free space: I/O failure (4)"
	grep -q "it declares 4000000 bytes" "$T/err" && [ -z "$(ls -A "$T/small/s/tmp")" ]
	ok $? "naming the member, with nothing left in staging" || cat "$T/err"
	umount "$T/small"
else
	skip "needs root to mount a small tmpfs"
	skip "needs root to mount a small tmpfs"
	skip "needs root to mount a small tmpfs"
	skip "needs root to mount a small tmpfs"
fi

# the good bundle itself passes (so the refusals above are the mutations' doing)
rm -rf "$C" && cp -a "$GOOD" "$C" && bundle_tar "$C" "$T/good.tgz"
"$AGIMPORT" --store "$S" --keyring "$T/keys.asc" "$T/good.tgz" >/dev/null 2>"$T/err"
ok $? "the unmutated bundle is accepted" || cat "$T/err"

# usage errors and an unopenable store: distinct exit codes
run_fail "$AGIMPORT" --store "$S" "$T/good.tgz"
is "$rc" 2 "no --keyring and no --no-signature: usage error (2)"
run_fail "$AGIMPORT" --store "$S" --keyring "$T/keys.asc" --sha256 xyz "$T/good.tgz"
is "$rc" 2 "a malformed --sha256: usage error (2)"
run_fail "$AGIMPORT" --store "$S" --keyring "$T/keys.asc" --bogus "$T/good.tgz"
is "$rc" 2 "an unknown option: usage error (2)"
# a usage error does not blame the source: "cannot import", result "usage"
run_fail "$AGIMPORT" --store "$S" --keyring "$T/keys.asc" "$T/no-such.tgz"
is "$rc" 2 "a source that does not exist: usage error (2)"
grep -q "^agimport: cannot import $T/no-such.tgz: it cannot be opened (No such file or directory)\.$" "$T/err"
ok $? "it says 'cannot import', not 'refused'" || cat "$T/err"
run_fail "$AGIMPORT" --store "$S" --keyring "$T/keys.asc" --json "$T/no-such.tgz"
is "$rc" 2 "with --json too"
[ "$(jq -r .result "$T/out")" = usage ]
ok $? "and --json's result is \"usage\"" || cat "$T/out"
run_fail "$AGIMPORT" --store "$S" --keyring "$T/keys.asc" --sign-key 0000DEAD "$T/good.tgz"
is "$rc" 2 "a --sign-key not in the keyring: usage error (2)"
grep -q "^agimport: cannot import $T/good.tgz: --sign-key: " "$T/err"
ok $? "it says 'cannot import', naming the option" || cat "$T/err"
echo file >"$T/notadir"
run_fail "$AGIMPORT" --store "$T/notadir/store" --keyring "$T/keys.asc" "$T/good.tgz"
is "$rc" 4 "a store that cannot be made: I/O failure (4)"
done_testing
