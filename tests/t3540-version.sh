#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Every program answers --version with the one version of the tree (the
# Makefile's VERSION, which debian/changelog repeats) and exits 0.
. "$(dirname "$0")/lib.sh"

version=$(sed -n 's/^VERSION *?= *//p' "$SRC_DIR/Makefile")
[ -n "$version" ] || bail "no VERSION in the Makefile"
for p in agfs agimport agstore agbundle; do
	if [ ! -x "$AGFS_BUILD/$p" ]; then
		skip "$p is not built"
		continue
	fi
	out=$("$AGFS_BUILD/$p" --version 2>&1)
	ok $? "$p --version exits 0" || diag "$out"
	case $out in
	"$p "*"$version"* | "$p (agfs) $version"*) pass "$p --version names version $version" ;;
	*) fail "$p --version names version $version" && diag "got: $out" ;;
	esac
done

done_testing
