#!/bin/bash
# Installs what agfs needs to build, test and run the demo on Debian 12: the
# Debian packages below, and (with --tests) libfaketime and, from the npm
# registry, the pinned llama.cpp client that the real-client tests use; with
# --bench, also what `make bench` needs beyond them (bindfs, the unverified
# FUSE peer; git for the format-1 build; zstd, openssl, bc and libfuse3-dev's
# passthrough_ll.c are in the list already).  Used by `make check`, `make
# demo`, `make bench` and .ci/run; a no-op when everything is there.
set -eu
cd "$(dirname "$0")/.."
PKGS="build-essential pkg-config libfuse3-dev fuse3 liblmdb-dev lmdb-utils libarchive-dev
      libgpgme-dev libjansson-dev libssl-dev gnupg zstd xz-utils openssl perl clang
      systemd procps python3 bc jq util-linux diffutils coreutils tar gzip logrotate
      libfsverity-dev fsverity dpkg-dev debhelper lintian strace
      libcurl4-openssl-dev curl docker-registry nginx-light skopeo"
if [ "${1:-}" = --bench ]; then
	PKGS="$PKGS bindfs git"
fi
# libfaketime steps the wall clock of the daemons in t1230.
if [ "${1:-}" = --tests ]; then
	PKGS="$PKGS libfaketime"
fi
missing=
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
# Node.js may come from Debian or from elsewhere (then npm is part of it).
if [ "${1:-}" = --tests ] && ! command -v npm >/dev/null; then
	missing="$missing nodejs npm"
fi
if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "agfs: missing Debian packages:$missing (run as root, or apt-get install them)" >&2
		exit 1
	fi
	echo "agfs: installing Debian packages:$missing" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
# promtool (Debian's prometheus, without its recommends) checks the mount's
# metrics file in t1180; without it that test parses the format itself, so a
# failed install is not fatal.
if [ "${1:-}" = --tests ] && ! command -v promtool >/dev/null && [ "$(id -u)" -eq 0 ]; then
	echo "agfs: installing promtool (Debian package prometheus)" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus \
		>/dev/null 2>&1 || echo "agfs: prometheus could not be installed; t1180 parses the metrics format itself" >&2
fi
if [ "${1:-}" = --tests ] && [ -f tests/llama/package.json ] && [ ! -d tests/llama/node_modules/node-llama-cpp ]; then
	echo "agfs: installing the pinned node-llama-cpp client into tests/llama" >&2
	(cd tests/llama && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci --omit=optional --no-audit --no-fund >/dev/null)
fi
