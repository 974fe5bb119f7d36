#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# What a signature binds (issue 10, items 1, 2, 9, 10, 17 and "files"):
# the signed models_directory_hash is compared even over nothing; the two
# signed artifacts bind their paths; files only the unsigned lists cover are
# reported and never copied among the verified ones (--copy-unverified puts
# them under unverified/); a signed "files" map binds every path; manifests
# tagged v1.sig / q4.asc are manifests; two Ollama trees are ambiguous; a
# file that is also a parent is refused whatever sorts between them.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
need_cmd gpg tar gzip sha256sum openssl python3
[ -x "$AGIMPORT" ] || skip_all "agimport not built"

make_gpg_key
TREE=$T/tree
make_random_ollama_tree "$TREE" 20000
GOOD=$T/good
make_bundle_dir "$TREE" "$GOOD" 20260424
C=$T/case
fresh() { rm -rf "$C" && cp -a "$GOOD" "$C"; }
imp() { "$AGIMPORT" --keyring "$T/pubkey.asc" "$@"; }
json_bundle() { # json_bundle PY-EXPR-ON-b: edit bundle.json (in $C) and re-sign
	python3 -c "import json,sys; b=json.load(open(sys.argv[1])); $1; open(sys.argv[1],'w').write(json.dumps(b,indent=1))" \
		"$C/manifest/bundle.json" && (cd "$C" && _sign manifest/bundle.json)
}

# --- 1. models/ removed from a signed bundle ---
fresh
rm -rf "$C/models" "$C/signatures/models.sha256"
bundle_tar "$C" "$T/nomodels.tgz" 2>/dev/null # (tar: "models: Cannot stat")
run_fail imp --store "$T/s1" "$T/nomodels.tgz"
is "$rc" 1 "models/ removed from a signed bundle: refused"
grep -q "models/: it is missing or empty, and the signed models_directory_hash says otherwise" "$T/err"
ok $? "saying the signed models_directory_hash does not match nothing" || cat "$T/err"
# a bundle that really has no models signs the hash of the empty set
fresh
rm -rf "$C/models" "$C/signatures/models.sha256"
json_bundle 'b["artifacts"]["models_directory_hash"]="e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"'
imp --store "$T/s1" "$C" >"$T/out" 2>"$T/err"
ok $? "a bundle signed as having no models (hash of the empty set) is accepted" || cat "$T/err"

# --- 2. artifact hashes bind a path ---
fresh
(cd "$C" && mv binaries/ollama-linux-amd64 binaries/ollama-orig &&
	printf '#!/bin/sh\necho evil\n' >binaries/ollama-linux-amd64 &&
	sha256sum binaries/ollama-linux-amd64 binaries/ollama-orig >signatures/ollama.sha256)
bundle_tar "$C" "$T/swap.tgz"
mkdir -p "$T/arts0"
run_fail imp --store "$T/s2" --artifacts-dir "$T/arts0" "$T/swap.tgz"
is "$rc" 1 "a swapped ollama binary (the signed content moved to another name): refused"
grep -q "binaries/ollama-linux-amd64: its SHA-256 differs from the signed artifact \"ollama_binary\"" "$T/err"
ok $? "naming the path the signed artifact binds" || cat "$T/err"
[ -z "$(ls -A "$T/arts0")" ]
ok $? "and nothing reached the artifacts directory"

# a file only the unsigned lists cover is reported, never copied as verified
fresh
(cd "$C" && echo 'evil package' >packages/evil.deb && sha256sum packages/evil.deb >signatures/packages.sha256)
bundle_tar "$C" "$T/evil.tgz"
mkdir -p "$T/arts"
imp --store "$T/s3" --artifacts-dir "$T/arts" --signer "$KEY_FPR" --json "$T/evil.tgz" >"$T/out" 2>"$T/err"
ok $? "a bundle with an unsigned, hash-listed package is imported" || cat "$T/err"
[ ! -e "$T/arts/20260424/packages/evil.deb" ] && [ ! -e "$T/arts/20260424/unverified" ]
ok $? "the hash-listed package is not copied among the verified artifacts"
cmp -s "$T/arts/20260424/binaries/ollama-linux-amd64" "$C/binaries/ollama-linux-amd64" &&
	cmp -s "$T/arts/20260424/images/open-webui.tar" "$C/images/open-webui.tar"
ok $? "the two signed artifacts are copied"
python3 - "$T/out" <<'EOP'
import json, sys
r = json.load(open(sys.argv[1]))
m = {x["path"]: x["result"] for x in r["members"]}
assert m["packages/evil.deb"] == "hash-listed, not signed", m
assert m["binaries/ollama-linux-amd64"] == "signed", m
assert "packages/tool_1.0_amd64.deb" in r["uncovered"]["first"], r["uncovered"]
assert "packages/tool_1.0_amd64.deb" not in m, m
EOP
ok $? "the report says 'hash-listed, not signed' and counts the uncovered file"
imp --store "$T/s3" --artifacts-dir "$T/arts2" --copy-unverified "$T/evil.tgz" >"$T/out" 2>"$T/err"
ok $? "--copy-unverified imports too" || cat "$T/err"
cmp -s "$T/arts2/20260424/unverified/packages/evil.deb" "$C/packages/evil.deb" &&
	[ ! -e "$T/arts2/20260424/packages" ] && [ ! -e "$T/arts2/20260424/unverified/packages/tool_1.0_amd64.deb" ]
ok $? "and puts the hash-listed file (only) under DIR/<label>/unverified/"
grep -q "packages/evil.deb is hash-listed, not signed: copied to unverified/" "$T/out"
ok $? "saying so" || cat "$T/out"
tail -1 "$T/s3/audit.log" | grep -q '"unverified_copied":\["packages/evil.deb"\]'
ok $? "the audit record lists it as unverified_copied"
grep -q "binaries/ollama-linux-amd64" "$T/arts2/20260424/.agimport.sha256"
ok $? "DIR/<label>/.agimport.sha256 lists what was copied"
run_fail "$AGIMPORT" --store "$T/s3" --no-signature --copy-unverified "$C"
is "$rc" 2 "--copy-unverified without --artifacts-dir is a usage error"

# --- "files": every member bound by path ---
files_bundle() { # signs a "files" map of every member but bundle.json(.asc)
	(cd "$C" && python3 - <<'EOP'
import hashlib, json, os
files = {}
for root, dirs, names in os.walk("."):
    for n in names:
        p = os.path.join(root, n)[2:]
        if p in ("manifest/bundle.json", "manifest/bundle.json.asc"):
            continue
        files[p] = hashlib.sha256(open(p, "rb").read()).hexdigest()
b = json.load(open("manifest/bundle.json"))
b["files"] = files
open("manifest/bundle.json", "w").write(json.dumps(b, indent=1))
EOP
	_sign manifest/bundle.json)
}
fresh
(cd "$C" && echo 'signed package' >packages/good.deb)
files_bundle
imp --store "$T/s4" --artifacts-dir "$T/arts3" --json "$C" >"$T/out" 2>"$T/err"
ok $? "a bundle with a signed \"files\" map is imported" || cat "$T/err"
cmp -s "$T/arts3/20260424/packages/good.deb" "$C/packages/good.deb" &&
	cmp -s "$T/arts3/20260424/packages/tool_1.0_amd64.deb" "$C/packages/tool_1.0_amd64.deb"
ok $? "every file it lists is verified and copied"
grep -q '"files": "[0-9]* files"' "$T/out"
ok $? "the report summarises the map"
echo extra >"$C/packages/unlisted.deb"
run_fail imp --store "$T/s4" "$C"
grep -q "packages/unlisted.deb: it is not listed in the signed \"files\"" "$T/err"
ok $? "a member the signed \"files\" does not list is refused" || cat "$T/err"
rm "$C/packages/unlisted.deb" && echo changed >>"$C/packages/good.deb"
run_fail imp --store "$T/s4" "$C"
grep -q "packages/good.deb: its SHA-256 differs from the signed \"files\"" "$T/err"
ok $? "a listed file with other bytes is refused" || cat "$T/err"
rm "$C/packages/good.deb"
run_fail imp --store "$T/s4" "$C"
grep -q "packages/good.deb: it is listed in the signed \"files\" of manifest/bundle.json but is not in the bundle" "$T/err"
ok $? "a listed file that is missing is refused" || cat "$T/err"

# --- 9. tags that end in .sig / .asc are manifests ---
fresh
MM=$C/models/models/manifests/registry.ollama.ai/library/tiny
cp "$MM/latest" "$MM/v1.sig" && cp "$MM/latest" "$MM/q4.asc"
mkdir -p "$C/models/models/manifests/registry.ollama.ai/library/small2" &&
	cp "$MM/latest" "$C/models/models/manifests/registry.ollama.ai/library/small2/v2" &&
	cp "$MM/latest" "$C/models/models/manifests/registry.ollama.ai/library/small2/v2.sig"
resign_bundle "$C"
bundle_tar "$C" "$T/tags.tgz"
imp --store "$T/s5" --json "$T/tags.tgz" >"$T/out" 2>"$T/err"
ok $? "models tagged v1.sig and q4.asc are imported" || cat "$T/err"
python3 - "$T/out" <<'EOP'
import json, sys
names = {m["name"] for m in json.load(open(sys.argv[1]))["models"]}
want = {"registry.ollama.ai/library/tiny/v1.sig", "registry.ollama.ai/library/tiny/q4.asc",
        "registry.ollama.ai/library/small2/v2", "registry.ollama.ai/library/small2/v2.sig"}
assert want <= names, names
EOP
ok $? "as models of their own (also a .sig beside its tag that is not an OpenPGP signature)"
[ -z "$(find "$T/s5/objects" -type d -empty)" ]
ok $? "no empty fan-out directory in the store"
# a real signature beside its manifest is still one
fresh
(cd "$C/models/models/manifests/registry.ollama.ai/library/tiny" && _sign latest && mv latest.asc latest.sig)
resign_bundle "$C"
imp --store "$T/s5" --json "$C" >"$T/out" 2>"$T/err"
grep -q '"signature": "verified, signed by' "$T/out"
ok $? "a manifest's OpenPGP .sig is verified as its signature" || cat "$T/err"

# --- 10. two Ollama trees ---
fresh
cp -r "$TREE/manifests" "$TREE/blobs" "$C/models/"
resign_bundle "$C"
run_fail imp --store "$T/s6" "$C"
is "$rc" 1 "two Ollama trees under models/: refused"
grep -q "it holds two Ollama trees, models/manifests/ and models/models/manifests/" "$T/err"
ok $? "naming both" || cat "$T/err"

# --- 17. a file that is also a parent, with a neighbour between them ---
fresh
(cd "$C" && python3 - "$T/parent.tgz" <<'EOP'
import io, sys, tarfile
t = tarfile.open(sys.argv[1], "w:gz", format=tarfile.GNU_FORMAT)
for top in ["binaries", "images", "models", "packages", "signatures", "manifest"]:
    t.add(top)
for name in ["packages/x", "packages/x-y", "packages/x/z"]:
    ti = tarfile.TarInfo(name); ti.size = 2; t.addfile(ti, io.BytesIO(b"x\n"))
t.close()
EOP
)
run_fail imp --store "$T/s7" "$T/parent.tgz"
is "$rc" 1 "x, x-y and x/z: refused"
grep -q "packages/x/z: its parent packages/x is also a file in the bundle" "$T/err"
ok $? "naming the file and its parent" || cat "$T/err"

# --- bundle.json with a key twice ---
fresh
sed -i 's/"creator": "alice",/"creator": "alice", "creator": "mallory",/' "$C/manifest/bundle.json"
(cd "$C" && _sign manifest/bundle.json)
run_fail imp --store "$T/s7" "$C"
grep -q "manifest/bundle.json: it is malformed" "$T/err"
ok $? "a signed bundle.json with a duplicate key is refused" || cat "$T/err"

# --- an artifact key that binds no known path ---
fresh
json_bundle 'b["artifacts"]["extra_tool"]=b["artifacts"]["ollama_binary"]'
run_fail imp --store "$T/s7" "$C"
grep -q "its artifact \"extra_tool\" names no file this importer knows" "$T/err"
ok $? "a signed artifact hash that names no path is refused, not matched by content" || cat "$T/err"
done_testing
