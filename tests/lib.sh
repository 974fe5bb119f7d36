# SPDX-License-Identifier: Apache-2.0
# Shared helpers for the shell integration tests (tests/tNNNN-*.sh), TAP output.
# Each test: `. "$(dirname "$0")/lib.sh"`, then ok/is/... and finally done_testing.
set -u

TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC_DIR=$(dirname "$TESTS_DIR")
AGFS_BUILD=${AGFS_BUILD:-$SRC_DIR/build}
AGIMPORT=$AGFS_BUILD/agimport
AGFS=$AGFS_BUILD/agfs
AGSTORE=$AGFS_BUILD/agstore
HELPERS=$AGFS_BUILD/tests/helpers
export PATH="$AGFS_BUILD:$PATH"
export AGFS_STORE= # never let a test touch a real store by accident
unset AGFS_STORE

_tap_n=0
_tap_failed=0
_mounts=()

T=$(mktemp -d "${TMPDIR:-/tmp}/agfs-test.XXXXXX")

_cleanup() {
	local m
	for m in "${_mounts[@]}"; do
		if mountpoint -q "$m" 2>/dev/null; then
			fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
		fi
	done
	[ -n "${AGFS_KEEP_TMP:-}" ] || rm -rf "$T"
}
trap _cleanup EXIT

ok() { # ok COND-STATUS DESCRIPTION   (use: cmd; ok $? "desc")
	local st=$1
	shift
	_tap_n=$((_tap_n + 1))
	if [ "$st" -eq 0 ]; then
		echo "ok $_tap_n - $*"
	else
		echo "not ok $_tap_n - $*"
		_tap_failed=$((_tap_failed + 1))
	fi
	return "$st"
}
pass() { ok 0 "$@"; }
fail() { ok 1 "$@"; }
is() { # is GOT WANT DESCRIPTION
	local got=$1 want=$2
	shift 2
	if [ "$got" = "$want" ]; then
		ok 0 "$@"
	else
		ok 1 "$@"
		printf '#   got:  %s\n#   want: %s\n' "$got" "$want"
		return 1
	fi
}
diag() { echo "# $*"; }
skip() { # skip REASON: one skipped test point
	_tap_n=$((_tap_n + 1))
	echo "ok $_tap_n # skip $*"
}
skip_all() {
	echo "1..0 # skip $*"
	exit 0
}
bail() {
	echo "Bail out! $*"
	exit 255
}
done_testing() {
	echo "1..$_tap_n"
	[ "$_tap_failed" -eq 0 ]
	exit $?
}

# Runs a command expecting failure; stores its stderr in $T/err and status in $rc.
run_fail() {
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
	[ "$rc" -ne 0 ]
}

need_root_fuse() {
	[ "$(id -u)" -eq 0 ] || skip_all "needs root to mount FUSE"
	[ -c /dev/fuse ] || skip_all "no /dev/fuse on this machine"
	command -v fusermount3 >/dev/null || skip_all "fusermount3 not installed (apt-get install fuse3)"
}

need_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null || skip_all "needs $c"
	done
}

# Address-space caps (prlimit --as) for the out-of-memory sweeps.  The index
# maps 64 GiB (LMDB), so a cap is that plus EXTRA KiB.
need_as_caps() { # need_as_caps PROGRAM: skips the file where caps cannot work
	need_cmd prlimit
	! ldd "$1" 2>/dev/null | grep -q 'libasan' ||
		skip_all "AddressSanitizer reserves the address space a cap on it would limit"
}
as_cap() { # as_cap EXTRA_KIB: the cap, in bytes
	echo $(((64 * 1024 * 1024 + $1) * 1024))
}
# least_cap STEP_KIB CMD [ARGS...]: the least EXTRA (KiB, within STEP, up to
# 1 GiB) for which "CMD EXTRA ARGS..." succeeds, given that it fails at 0 and
# succeeds at 1 GiB.
least_cap() {
	local step=$1 lo=0 hi=$((1024 * 1024)) mid
	shift
	while [ $((hi - lo)) -gt "$step" ]; do
		mid=$(((lo + hi) / 2))
		if "$1" "$mid" "${@:2}"; then hi=$mid; else lo=$mid; fi
	done
	echo "$hi"
}

# mount_agfs STORE MOUNTPOINT [agfs options...]: mounts (daemonized) and registers cleanup.
mount_agfs() {
	local store=$1 mnt=$2
	shift 2
	mkdir -p "$mnt"
	_mounts+=("$mnt")
	"$AGFS" "$@" "$store" "$mnt"
}
umount_agfs() {
	fusermount3 -u "$1"
}

# The state of a store as a listing: every index and object file with its hash.
# Two equal snapshots mean the store was left exactly as it was.
store_snapshot() {
	local s=$1
	(
		cd "$s" || exit 1
		# lock.mdb is LMDB's reader table: every reader writes it.
		find objects index -type f ! -name lock.mdb -print0 2>/dev/null | sort -z | xargs -0r sha256sum
		find objects -print 2>/dev/null | sort
	)
}

# A throw-away gpg key in $T/gnupg; prints nothing, sets GNUPGHOME and KEY_FPR.
make_gpg_key() { # make_gpg_key [NAME] [EXPIRE]
	local name=${1:-Test Signer} expire=${2:-0}
	export GNUPGHOME=$T/gnupg
	mkdir -p "$GNUPGHOME"
	chmod 700 "$GNUPGHOME"
	gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
		--quick-gen-key "$name <signer@example.invalid>" ed25519 sign "$expire" 2>/dev/null ||
		bail "gpg could not make a key"
	KEY_FPR=$(gpg --batch --no-auto-check-trustdb --with-colons --list-keys "$name" 2>/dev/null | awk -F: '/^fpr/ {print $10; exit}')
	gpg --batch --armor --export "$KEY_FPR" >"$T/pubkey.asc"
}
