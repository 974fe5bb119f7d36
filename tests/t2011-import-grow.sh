#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Issue 13: a file of a directory source is small by its size when opened
# (up to 1 MiB: gathered in memory for the stager thread), but reads on
# past that; from then on it is staged as it is read, and the object holds
# every byte read, or the import is refused if those bytes are not the blob
# the file's name says.  A file that reads on past its size: /proc/kallsyms
# (size 0, megabytes of text), bind-mounted over a blob of an --ollama-dir.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
need_cmd sha256sum openssl mount umount
[ -x "$AGIMPORT" ] || skip_all "agimport not built"
[ -x "$AGSTORE" ] || skip_all "agstore not built"
[ "$(id -u)" = 0 ] || skip_all "a bind mount needs root"
[ -r /proc/kallsyms ] || skip_all "no /proc/kallsyms to read"
[ "$(stat -c %s /proc/kallsyms)" = 0 ] || skip_all "/proc/kallsyms gives its size here"

cat /proc/kallsyms >"$T/ks1"
cat /proc/kallsyms >"$T/ks2"
cmp -s "$T/ks1" "$T/ks2" || skip_all "/proc/kallsyms changed between two reads"
size=$(stat -c %s "$T/ks1")
[ "$size" -gt $((2 << 20)) ] || skip_all "/proc/kallsyms holds only $size bytes (a test needs more than 2 MiB)"

binds=()
unbind() {
	local f
	for f in "${binds[@]}"; do umount "$f" 2>/dev/null; done
	binds=()
}
trap 'unbind; _cleanup' EXIT
bind_kallsyms() { # bind_kallsyms FILE
	mount --bind /proc/kallsyms "$1" && binds+=("$1")
}

# A model whose weights are the bytes of /proc/kallsyms, its blob file then
# replaced by /proc/kallsyms itself
TREE=$T/tree
make_random_ollama_tree "$TREE" 5000
tmp=$T/w
cp "$T/ks1" "$tmp"
w=$(blob_add "$TREE" "$tmp" application/vnd.ollama.image.model)
hex=$(sha256sum "$T/ks1" | cut -d' ' -f1)
printf '{"model_format":"gguf","model_family":"test","architecture":"amd64","os":"linux"}\n' >"$tmp"
cfg=$(blob_add "$TREE" "$tmp" application/vnd.docker.container.image.v1+json)
mkdir -p "$TREE/manifests/registry.ollama.ai/library/syms"
printf '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":%s,"layers":[%s]}' \
	"$cfg" "$w" >"$TREE/manifests/registry.ollama.ai/library/syms/latest"
bind_kallsyms "$TREE/blobs/sha256-$hex" || skip_all "mount --bind is not allowed here"
is "$(stat -c %s "$TREE/blobs/sha256-$hex")" 0 "the blob file has size 0 when the import opens it"

S=$T/s
"$AGIMPORT" --store "$S" --no-signature --ollama-dir "$TREE" --label grow1 >/dev/null 2>"$T/err"
ok $? "an --ollama-dir with a file that reads on past its size ($size bytes) imports" || cat "$T/err"
obj=$S/objects/sha256/${hex:0:2}/$hex
cmp -s "$obj" "$T/ks1"
ok $? "and its object holds every byte read, in order"
"$AGSTORE" --store "$S" fsck >"$T/fsck" 2>&1
ok $? "fsck finds its digest and tree sound" || cat "$T/fsck"
is "$("$AGSTORE" --store "$S" ls | grep -c 'syms:latest')" 1 "the model is listed"

# The same file under the name of other bytes: refused, the store unchanged.
unbind
TREE2=$T/tree2
make_random_ollama_tree "$TREE2" 7000
head -c 3000 /dev/urandom >"$tmp"
w=$(blob_add "$TREE2" "$tmp" application/vnd.ollama.image.model)
other=$(echo "$w" | sed 's/.*"sha256:\([0-9a-f]*\)".*/\1/')
mkdir -p "$TREE2/manifests/registry.ollama.ai/library/other"
printf '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":%s,"layers":[%s]}' \
	"$cfg" "$w" >"$TREE2/manifests/registry.ollama.ai/library/other/latest"
cfghex=$(echo "$cfg" | sed 's/.*"sha256:\([0-9a-f]*\)".*/\1/')
cp "$TREE/blobs/sha256-$cfghex" "$TREE2/blobs/"
bind_kallsyms "$TREE2/blobs/sha256-$other" || bail "the second bind mount failed"
before=$(snap "$S")
"$AGIMPORT" --store "$S" --no-signature --ollama-dir "$TREE2" --label grow2 >/dev/null 2>"$T/err"
st=$?
[ "$st" -ne 0 ]
ok $? "a file that reads on past its size into other bytes than its name says is refused (exit $st)"
grep -q "sha256-$other" "$T/err"
ok $? "with an error naming the file" || cat "$T/err"
diag "$(head -1 "$T/err")"
"$AGSTORE" --store "$S" gc >/dev/null 2>&1
[ "$(snap "$S" | grep -v '^objects/sha256/..$')" = "$(echo "$before" | grep -v '^objects/sha256/..$')" ]
ok $? "and the store is as it was once the next writer removed the staging"
unbind
done_testing
