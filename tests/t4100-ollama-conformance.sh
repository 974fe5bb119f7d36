#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Ollama conformance: the mount obeys the rules ollama serve lives by
# (../shared/reference/ollama-models-dir.md, sections 1-3 and 9): blobs/ and
# manifests/ exist, no empty directory and no colon name anywhere (a host:port
# host aside), every depth-4 entry under manifests/ stats, manifests are
# byte-exact (their SHA-256 is the model ID of the source), every config and
# layer a manifest names is in blobs/ with exactly that size and content, for
# the mount and for versions/N; and a source tree with legacy
# sha256:<hex> blob names is served with sha256-<hex> names.  A generation
# without models keeps blobs/ and manifests/ and still has no empty directory.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fixtures.sh"

need_root_fuse
need_cmd sha256sum find stat
for p in "$AGIMPORT" "$AGFS" "$AGSTORE" "$MKGGUF"; do
	[ -x "$p" ] || skip_all "$p is not built (run make)"
done

# The models of the source tree, as "host/ns/model/tag" lines, sorted.
list_manifests() {
	(cd "$1/manifests" && find . -mindepth 4 -maxdepth 4 -type f | sed 's|^\./||' | sort)
}

check_layout() { # check_layout ROOT LABEL
	local root=$1 label=$2 bad
	test -d "$root/blobs"
	ok $? "$label: blobs/ is a directory"
	test -d "$root/manifests"
	ok $? "$label: manifests/ is a directory"
	bad=$(find "$root/manifests" -type d -empty 2>&1)
	is "$bad" "" "$label: no empty directory under manifests/ (PruneDirectory would abort ollama serve)"
	# A colon is legal only in the host part of a name (localhost:5000).
	bad=$(find "$root" -name '*:*' 2>&1 | grep -vE '/manifests/[^/]+$')
	is "$bad" "" "$label: no colon name (fixBlobs would rename it and abort), hosts aside"
	bad=$(find "$root/blobs" -mindepth 1 2>&1 | sed 's|.*/||' | grep -vE '^sha256-[0-9a-f]{64}$')
	is "$bad" "" "$label: blobs/ holds only sha256-<hex> names"
}

# Ollama globs manifests/*/*/*/* and stats each match; any failure breaks /api/tags.
check_depth4() { # check_depth4 ROOT SRC LABEL
	local root=$1 src=$2 label=$3 e n=0 bad=0
	for e in "$root"/manifests/*/*/*/*; do
		n=$((n + 1))
		if ! stat -L -- "$e" >/dev/null || [ ! -f "$e" ]; then
			diag "cannot stat $e as a regular file"
			bad=$((bad + 1))
		fi
	done
	is "$bad" 0 "$label: every depth-4 entry under manifests/ stats as a regular file"
	is "$n" "$(list_manifests "$src" | wc -l)" "$label: one depth-4 entry per source manifest"
	is "$(list_manifests "$root")" "$(list_manifests "$src")" "$label: the same model names as the source"
}

# The model ID Ollama shows is the SHA-256 of the manifest file's bytes.
check_model_ids() { # check_model_ids ROOT SRC LABEL
	local root=$1 src=$2 label=$3 m bad=0 want got
	while read -r m; do
		want=$(sha256sum <"$src/manifests/$m" | cut -d' ' -f1)
		got=$(sha256sum <"$root/manifests/$m" | cut -d' ' -f1)
		[ "$got" = "$want" ] || {
			diag "$m: model ID $got, source has $want"
			bad=$((bad + 1))
		}
	done < <(list_manifests "$src")
	is "$bad" 0 "$label: every manifest's SHA-256 equals the model ID of its source"
}

# Every config and layer named by a manifest exists with exactly that size and
# content; blobs/ holds nothing else.
check_blobs() { # check_blobs ROOT LABEL
	local root=$1 label=$2 m hex size bad=0 refs
	refs=$(for m in "$root"/manifests/*/*/*/*; do manifest_refs "$m"; done | sort -u)
	while read -r hex size; do
		if [ "$(stat -c %s "$root/blobs/sha256-$hex" 2>/dev/null)" != "$size" ]; then
			diag "blobs/sha256-$hex: missing or not $size bytes"
			bad=$((bad + 1))
		elif [ "$(sha256sum <"$root/blobs/sha256-$hex" | cut -d' ' -f1)" != "$hex" ]; then
			diag "blobs/sha256-$hex: content does not hash to its name"
			bad=$((bad + 1))
		fi
	done <<<"$refs"
	is "$bad" 0 "$label: every config and layer is in blobs/ with the manifest's size and digest"
	is "$(find "$root/blobs" -mindepth 1 | sed 's|.*/sha256-||' | sort)" \
		"$(cut -d' ' -f1 <<<"$refs")" "$label: blobs/ holds exactly the referenced blobs"
}

check_tree() { # check_tree ROOT SRC LABEL
	check_layout "$1" "$3"
	check_depth4 "$1" "$2" "$3"
	check_model_ids "$1" "$2" "$3"
	check_blobs "$1" "$3"
}

newest_version() { # the highest generation number under MOUNT/versions
	find "$1/versions" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | grep -E '^[0-9]+$' |
		sort -n | tail -1
}

# --- a tree the way `ollama pull` leaves it: several models, two tags of one
make_ollama_tree "$T/src" --model tiny:latest --tag tiny:1b --model me/other:v2 \
	--model example.com/ns/third:q4 --model localhost:5000/ns/fourth:v1
"$AGIMPORT" --ollama-dir "$T/src" --store "$T/store" --no-signature >"$T/out" 2>&1
ok $? "agimport takes the plain Ollama tree" || sed 's/^/# /' "$T/out"
mount_agfs "$T/store" "$T/mnt"
ok $? "agfs mounts the store"
check_tree "$T/mnt" "$T/src" "mount"
gen=$(newest_version "$T/mnt")
[ -n "$gen" ]
ok $? "versions/ lists the imported generation"
check_tree "$T/mnt/versions/$gen" "$T/src" "versions/$gen"
umount_agfs "$T/mnt"

# --- a generation without any model: still no empty directory (an empty
# manifests/ is fatal to ollama serve unless OLLAMA_NOPRUNE is set)
# shellcheck disable=SC2046 # one argument per model
"$AGSTORE" --store "$T/store" rm $(list_manifests "$T/src" | sed -E 's|^(.*)/([^/]*)$|\1:\2|') \
	>"$T/out" 2>&1
ok $? "agstore rm removes every model" || sed 's/^/# /' "$T/out"
mount_agfs "$T/store" "$T/mnt"
for d in blobs manifests; do
	test -d "$T/mnt/$d"
	ok $? "no models: $d/ is still a directory"
done
is "$(find "$T/mnt" -path "$T/mnt/blobs" -prune -o -path "$T/mnt/versions/*/blobs" -prune -o -type d -empty -print)" "" \
	"no models: no empty directory but blobs/ (PruneLayers only removes files)"
is "$(find "$T/mnt" -name .keep -path '*/blobs/*')" "" "no models: no blobs/.keep for PruneLayers to try to delete"
is "$(find "$T/mnt/manifests" -mindepth 4 | wc -l)" 0 "no models: nothing at depth 4 under manifests/"
is "$(find "$T/mnt/blobs" -name 'sha256*' | wc -l)" 0 "no models: no blob is served"
umount_agfs "$T/mnt"

# --- legacy colon-named blobs on input are presented with hyphen names
make_ollama_tree "$T/legacy" --colon-blobs --seed 10 --model old:latest --model old:7b
[ -n "$(find "$T/legacy/blobs" -name 'sha256:*')" ]
ok $? "the legacy source tree has sha256:<hex> blob names"
"$AGIMPORT" --ollama-dir "$T/legacy" --store "$T/store2" --no-signature >"$T/out" 2>&1
ok $? "agimport takes the tree with colon-named blobs" || sed 's/^/# /' "$T/out"
mount_agfs "$T/store2" "$T/mnt2"
ok $? "agfs mounts the second store"
check_tree "$T/mnt2" "$T/legacy" "legacy"
for b in "$T"/legacy/blobs/sha256:*; do
	h=${b##*sha256:}
	cmp -s "$b" "$T/mnt2/blobs/sha256-$h" || fail "blobs/sha256-$h serves the bytes of sha256:$h"
done
pass "every colon-named source blob is served byte-exact under its hyphen name"

done_testing
