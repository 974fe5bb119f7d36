#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# agbundle create against the README's hand-typed low-side procedure on the
# same inputs: the same members with the same bytes, the same
# models_directory_hash, byte-identical signatures/ lists; agimport and
# agbundle verify accept both.  Reproducibility: two runs (and a run with
# SOURCE_DATE_EPOCH) give the same members, owners, modes, mtimes and bytes,
# only the detached signature differs.  --zstd, --force, --json.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
. "$TESTS_DIR/lib-fixtures.sh"
need_cmd gpg tar gzip sha256sum zstd jq
AGBUNDLE=$AGFS_BUILD/agbundle
[ -x "$AGBUNDLE" ] || skip_all "agbundle not built"
[ -x "$MKGGUF" ] || skip_all "tests/helpers/mkgguf not built"

make_gpg_key
LABEL=20261130
IN=$T/in
mkdir -p "$IN/ollama"
make_ollama_tree "$IN/ollama/models" --model tiny:latest --model ns/other:7b --tag ns/other:latest
printf '#!/bin/sh\necho ollama\n' >"$IN/ollama-linux-amd64"
chmod 755 "$IN/ollama-linux-amd64"
mkdir -p "$T/img" && echo layer >"$T/img/layer.txt" && tar cf "$IN/open-webui.tar" -C "$T" img
printf 'fake deb\n' >"$IN/tool_1.0_amd64.deb"
# 12 MiB of random bytes: the tar stream spans several 4 MiB blocks, each
# compressed on its own (a multi-member gzip stream, zstd frames)
head -c $((12 << 20)) /dev/urandom >"$IN/big_1.0_amd64.deb"

create() { # create OUTDIR [extra options]
	local out=$1
	shift
	mkdir -p "$out"
	"$AGBUNDLE" create --models "$IN/ollama/models" --binary "$IN/ollama-linux-amd64" \
		--image "$IN/open-webui.tar" --package "$IN/tool_1.0_amd64.deb" --package "$IN/big_1.0_amd64.deb" \
		--sign-key "$KEY_FPR" --label $LABEL --creator alice --low-side-host stage01 \
		-o "$out" "$@"
}

# --- agbundle ---
create "$T/a" >"$T/out" 2>"$T/err"
ok $? "agbundle create writes a bundle" || cat "$T/err"
A=$T/a/airgap-bundle-$LABEL.tar.gz
[ -f "$A" ] && [ "$(cat "$T/a/airgap-bundle-$LABEL.sha256")" = "$(cd "$T/a" && sha256sum "airgap-bundle-$LABEL.tar.gz")" ]
ok $? "airgap-bundle-LABEL.sha256 holds that tarball's sha256sum line only"
is "$(ls -A "$T/a" | tr '\n' ' ')" "airgap-bundle-$LABEL.sha256 airgap-bundle-$LABEL.tar.gz " \
	"nothing else is left in the output directory"
tar tzf "$A" | sed -n '1p;$p' >"$T/ends"
is "$(tr '\n' ' ' <"$T/ends")" "binaries/ manifest/bundle.json.asc " \
	"members run from binaries/ to manifest/ (manifest last, as tar czf binaries/ … manifest/ gives)"
tar tzf "$A" | grep -E '/$' | sed -E 's|^([^/]*)/.*|\1|' | uniq | tr '\n' ' ' >"$T/tops"
is "$(cat "$T/tops")" "binaries images models packages signatures manifest " \
	"top-level directories in the procedure's order"

# --- the README's procedure, by hand, on the same inputs ---
B=$T/manual/B
mkdir -p "$B"
(
	set -e
	cd "$B"
	mkdir -p binaries images models packages signatures manifest
	cp "$IN/ollama-linux-amd64" binaries/
	sha256sum binaries/ollama-linux-amd64 >signatures/ollama.sha256
	cp "$IN/open-webui.tar" images/
	sha256sum images/open-webui.tar >signatures/open-webui.sha256
	cp -r "$IN/ollama/models" models/
	sha256sum -b $(find models -type f) >signatures/models.sha256
	cp "$IN/tool_1.0_amd64.deb" "$IN/big_1.0_amd64.deb" packages/
	MODELS_HASH=$(find models -type f -exec sha256sum {} \; | sort | sha256sum | cut -d' ' -f1)
	cat >manifest/bundle.json <<EOF
{ "bundle_version": "$LABEL", "creator": "alice", "creation_date": "$(date -u +%FT%TZ)",
  "low_side_host": "stage01",
  "artifacts": { "ollama_binary": "$(sha256sum binaries/ollama-linux-amd64 | cut -d' ' -f1)",
                 "open_webui_image": "$(sha256sum images/open-webui.tar | cut -d' ' -f1)",
                 "models_directory_hash": "$MODELS_HASH" } }
EOF
	_sign manifest/bundle.json
	tar czf ../airgap-bundle-$LABEL.tar.gz binaries/ images/ models/ packages/ signatures/ manifest/
	cd .. && sha256sum airgap-bundle-*.tar.gz >airgap-bundle-final.sha256
) >"$T/err" 2>&1
ok $? "the README's shell procedure builds its bundle" || cat "$T/err"
[ "$(gzip -dc "$A" | wc -c)" -gt $((8 << 20)) ] && [ "$(grep -c $'\x1f\x8b\x08' <"$A")" -ge 3 ]
ok $? "agbundle's .tar.gz is several gzip members"
gzip -t "$A"
ok $? "which gzip reads as one stream"
M=$T/manual/airgap-bundle-$LABEL.tar.gz

mkdir -p "$T/xa" "$T/xm"
tar xzf "$A" -C "$T/xa" && tar xzf "$M" -C "$T/xm"
ok $? "both tarballs extract with tar"
hashes() { # (models.sha256 lists in find order there: compared below)
	(cd "$1" && find . -type f ! -path './manifest/*' ! -name models.sha256 -exec sha256sum {} \; |
		LC_ALL=C sort)
}
hashes "$T/xa" >"$T/ha"
hashes "$T/xm" >"$T/hm"
diff "$T/ha" "$T/hm" >"$T/diff"
ok $? "the same member files with the same SHA-256 (all but manifest/ and models.sha256)" || head "$T/diff"
is "$(tar tzf "$A" | grep -v '^manifest/' | LC_ALL=C sort | md5sum)" \
	"$(tar tzf "$M" | grep -v '^manifest/' | LC_ALL=C sort | md5sum)" \
	"the same member names, directories included"
mh() { jq -r .artifacts.models_directory_hash "$1/manifest/bundle.json"; }
is "$(mh "$T/xa")" "$(mh "$T/xm")" "the same models_directory_hash"
for k in ollama_binary open_webui_image; do
	is "$(jq -r .artifacts.$k "$T/xa/manifest/bundle.json")" \
		"$(jq -r .artifacts.$k "$T/xm/manifest/bundle.json")" "the same $k"
done
cmp -s "$T/xa/signatures/ollama.sha256" "$T/xm/signatures/ollama.sha256" &&
	cmp -s "$T/xa/signatures/open-webui.sha256" "$T/xm/signatures/open-webui.sha256"
ok $? "signatures/ollama.sha256 and open-webui.sha256 are byte-identical"
(cd "$T/xm" && sha256sum -b $(find models -type f | LC_ALL=C sort)) | cmp -s - "$T/xa/signatures/models.sha256"
ok $? "signatures/models.sha256 is byte-identical to sha256sum -b over the files in byte order"
is "$(LC_ALL=C sort "$T/xa/signatures/models.sha256" | md5sum)" \
	"$(LC_ALL=C sort "$T/xm/signatures/models.sha256" | md5sum)" \
	"and holds the procedure's lines (find order aside)"
jq -e --arg h "$(sha256sum "$T/xa/packages/tool_1.0_amd64.deb" | cut -d' ' -f1)" \
	'.files["packages/tool_1.0_amd64.deb"] == $h and (.files | has("manifest/bundle.json") | not)' \
	"$T/xa/manifest/bundle.json" >/dev/null
ok $? "bundle.json's signed \"files\" lists every file (packages too), not bundle.json itself"
is "$(jq -r '.files | length' "$T/xa/manifest/bundle.json")" \
	"$(find "$T/xa" -type f ! -path '*/manifest/*' | wc -l)" "\"files\" has one entry per member file"
(cd "$T/xa" && gpg --batch --verify manifest/bundle.json.asc manifest/bundle.json) 2>/dev/null &&
	head -1 "$T/xa/manifest/bundle.json.asc" | grep -q 'BEGIN PGP SIGNATURE'
ok $? "bundle.json.asc is an armored detached signature gpg verifies"
tar tvzf "$A" --numeric-owner | awk '{print $1, $2}' | sort -u >"$T/own"
is "$(tr '\n' ' ' <"$T/own")" "-rw-r--r-- 0/0 -rwxr-xr-x 0/0 drwxr-xr-x 0/0 " \
	"owners 0/0, modes 0644 / 0755 (binaries, directories)"
tar tvzf "$A" --full-time | awk '{print $4, $5}' | sort -u >"$T/mt"
is "$(cat "$T/mt")" "2026-11-30 00:00:00" "every mtime is the label's midnight UTC"

# --- the high side accepts both ---
for x in a manual; do
	f=$T/$x/airgap-bundle-$LABEL.tar.gz
	sf=$T/$x/airgap-bundle-$LABEL.sha256
	[ -f "$sf" ] || sf=$T/$x/airgap-bundle-final.sha256
	"$AGIMPORT" --store "$T/s-$x" --keyring "$T/pubkey.asc" --signer "$KEY_FPR" \
		--sha256-file "$sf" "$f" >"$T/out" 2>"$T/err"
	ok $? "agimport imports the $x bundle" || cat "$T/err"
	"$AGBUNDLE" verify "$f" --keyring "$T/pubkey.asc" --signer "$KEY_FPR" --sha256-file "$sf" \
		>"$T/out" 2>"$T/err"
	ok $? "agbundle verify accepts the $x bundle" || cat "$T/err"
done
models_of() { "$AGSTORE" --store "$1" ls --json 2>/dev/null | jq -c '[.[] | [.path, .digest, .size]]'; }
models_of "$T/s-a" >"$T/ma"
is "$(jq length "$T/ma")" 3 "the store holds the three models"
is "$(cat "$T/ma")" "$(models_of "$T/s-manual")" "both stores hold the same models, manifests and sizes"

# --- reproducible ---
sleep 1
create "$T/b" >/dev/null 2>"$T/err"
ok $? "a second run with the same inputs and label" || cat "$T/err"
B2=$T/b/airgap-bundle-$LABEL.tar.gz
listing() { tar tvzf "$1" --full-time --numeric-owner | grep -v 'manifest/bundle.json.asc$'; }
is "$(listing "$A" | md5sum)" "$(listing "$B2" | md5sum)" \
	"identical listings: names, modes, owners, sizes, mtimes (the .asc aside)"
mkdir -p "$T/xb" && tar xzf "$B2" -C "$T/xb"
diff -r -x bundle.json.asc "$T/xa" "$T/xb" >/dev/null
ok $? "identical member bytes, bundle.json included (the .asc aside)"
SOURCE_DATE_EPOCH=1700000000 create "$T/c" >/dev/null 2>&1
tar tvzf "$T/c/airgap-bundle-$LABEL.tar.gz" --full-time | awk '{print $4, $5}' | sort -u >"$T/mt"
is "$(cat "$T/mt")" "2023-11-14 22:13:20" "SOURCE_DATE_EPOCH sets every mtime"

# --- refusing to overwrite, --force, --zstd, --json ---
before=$(sha256sum "$A")
run_fail create "$T/a"
is "$rc" 1 "an existing bundle of that label is refused"
grep -q -- "--force" "$T/err"
ok $? "the refusal names --force"
is "$(sha256sum "$A")" "$before" "and the existing bundle is untouched"
create "$T/a" --force --json >"$T/out" 2>"$T/err"
ok $? "--force replaces it" || cat "$T/err"
is "$(jq -r .sha256 "$T/out")" "$(cut -d' ' -f1 "$T/a/airgap-bundle-$LABEL.sha256")" \
	"--json prints the tarball's sha256"
is "$(jq -r '.files' "$T/out")" "$(tar tzf "$A" | grep -cv '/$')" "--json counts the member files"
create "$T/z" --zstd >/dev/null 2>"$T/err"
ok $? "--zstd writes a .tar.zst" || cat "$T/err"
Z=$T/z/airgap-bundle-$LABEL.tar.zst
zstd -t -q "$Z" && is "$(tar --zstd -tf "$Z" | md5sum)" "$(tar tzf "$A" | md5sum)" "with the same members"
"$AGIMPORT" --store "$T/s-z" --keyring "$T/pubkey.asc" --sha256-file "$T/z/airgap-bundle-$LABEL.sha256" "$Z" \
	>/dev/null 2>"$T/err"
ok $? "agimport imports the .tar.zst" || cat "$T/err"
create "$T/t1" --threads 1 >/dev/null 2>&1
mkdir -p "$T/xt" && tar xzf "$T/t1/airgap-bundle-$LABEL.tar.gz" -C "$T/xt" &&
	diff -r -x bundle.json.asc "$T/xa" "$T/xt" >/dev/null
ok $? "--threads 1 gives the same members"

# on a terminal (progress on stderr; verify then reads through a pipe)
if command -v script >/dev/null; then
	script -qec "$AGBUNDLE verify $A --keyring $T/pubkey.asc --sha256-file $T/a/airgap-bundle-$LABEL.sha256" \
		/dev/null >"$T/out" 2>&1
	ok $? "verify on a terminal" || cat "$T/out"
	grep -q "verified" "$T/out"
	ok $? "says verified"
	head -c 100000 "$A" >"$T/trunc.tar.gz"
	script -qec "$AGBUNDLE verify $T/trunc.tar.gz --keyring $T/pubkey.asc" /dev/null >"$T/out" 2>&1
	is "$?" 1 "a truncated bundle is refused on a terminal too"
	mkdir -p "$T/tty"
	script -qec "$AGBUNDLE create --models $IN/ollama/models --sign-key $KEY_FPR --label $LABEL -o $T/tty" \
		/dev/null >"$T/out" 2>&1
	ok $? "create on a terminal" || cat "$T/out"
else
	skip "script(1) not installed: no terminal to test the progress line on"
fi

"$AGBUNDLE" --version | grep -q '^agbundle (agfs) '
ok $? "--version"
"$AGBUNDLE" --help | grep -q -- '--since'
ok $? "--help"
run_fail "$AGBUNDLE" create --models "$IN/ollama/models" -o "$T/a"
is "$rc" 2 "create without --sign-key is a usage error"
run_fail create "$T/u" --label 20261131
is "$rc" 2 "a label that is not a date is a usage error"

done_testing
