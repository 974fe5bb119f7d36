# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# bench/lib.sh: what every bench/b-*.sh shares.  Source it first; it makes
# the script's scratch directory $W (removed at exit, with every mount and
# daemon the script started).
#
# Every measure is taken in ROUNDS interleaved rounds: in each round agfs and
# its references run one after the other (cold runs after drop_caches), so
# they see the same machine load; a row's ratio is computed per round and
# shown as min / median / max.
#
# Environment (sizes in GiB unless said; BENCH_X_MIB overrides BENCH_X_GIB):
#   BENCH_QUICK=1          small sizes and 2 rounds: checks the harness end
#                          to end in a few minutes; its figures mean little
#   BENCH_ROUNDS           rounds per measure (default 5; quick 2)
#   BENCH_SEQ_GIB          the sequential-read blob (default 2; quick 64 MiB)
#   BENCH_FS_MAX_GIB       the largest blob for open-to-first-byte (default 8; quick 128 MiB)
#   BENCH_IMPORT_GIB       the model of the import bundles (default 1; quick 64 MiB)
#   BENCH_FSCK_GIB         bytes in the fsck store, 4 models (default 2; quick 64 MiB)
#   BENCH_SMALL_MODELS     models in the many-small-models import (default 1000; quick 100)
#   BENCH_GENERATIONS      generation counts for ls -R (default "50 500"; quick "10 50")
#   BENCH_BUSY             CPU-bound processes beside the "machine busy" rows (default 2; 0: no such rows)
#   BENCH_V1_DIR           where to build the format-1 commit (default: in $W)
#   BENCH_TMP              where scratch directories go (default $TMPDIR or /tmp)
set -u
BENCH_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
AGFS_BUILD=${AGFS_BUILD:-$BENCH_SRC/build}
HELPERS=$AGFS_BUILD/tests/helpers
AGFS=$AGFS_BUILD/agfs
AGIMPORT=$AGFS_BUILD/agimport
AGSTORE=$AGFS_BUILD/agstore
MKSTORE=$HELPERS/fs-mkstore
V1_COMMIT=16c74ac # the last store-format-1 commit, with all the fault fixes

QUICK=${BENCH_QUICK:-0}
[ "$QUICK" = 0 ] && QUICK=
ROUNDS=${BENCH_ROUNDS:-$([ -n "$QUICK" ] && echo 2 || echo 5)}

# mib NAME DEFAULT-GIB QUICK-MIB: BENCH_<NAME>_MIB, else BENCH_<NAME>_GIB in
# MiB, else the default (the quick one in quick mode)
mib() {
	local m="BENCH_$1_MIB" g="BENCH_$1_GIB"
	if [ -n "${!m:-}" ]; then
		echo "${!m}"
	elif [ -n "${!g:-}" ]; then
		echo $((${!g} * 1024))
	elif [ -n "$QUICK" ]; then
		echo "$3"
	else
		echo $(($2 * 1024))
	fi
}
SEQ_MIB=$(mib SEQ 2 64)
FS_MAX_MIB=$(mib FS_MAX 8 128)
IMPORT_MIB=$(mib IMPORT 1 64)
FSCK_MIB=$(mib FSCK 2 64)
SMALL_MODELS=${BENCH_SMALL_MODELS:-$([ -n "$QUICK" ] && echo 100 || echo 1000)}
GENERATIONS=${BENCH_GENERATIONS:-$([ -n "$QUICK" ] && echo "10 50" || echo "50 500")}

skip() { # skip REASON: the whole script cannot run here
	echo "skip: $*"
	exit 0
}

# --- scratch directory, mounts and daemons, cleaned up at exit ---
W=$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/agfs-bench.XXXXXX")
mkdir -p "$W/series"
_bench_mounts=()
_bench_pids=()
_bench_v1_own=
_bench_cleanup() {
	local m p
	for m in "${_bench_mounts[@]}"; do
		mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; }
	done
	for p in "${_bench_pids[@]}"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	[ -n "$_bench_v1_own" ] && git -C "$BENCH_SRC" worktree remove --force "$_bench_v1_own" 2>/dev/null
	rm -rf "$W"
	! declare -F _cleanup >/dev/null || _cleanup # tests/lib.sh's, when sourced first
}
trap _bench_cleanup EXIT

# --- the machine ---
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}
# bench_needs_root: skip unless root with /dev/fuse and a droppable page cache
bench_needs_root() {
	[ "$(id -u)" -eq 0 ] || skip "needs root (FUSE mounts, drop_caches)"
	[ -c /dev/fuse ] || skip "no /dev/fuse"
	echo 1 >/proc/sys/vm/drop_caches 2>/dev/null || skip "cannot drop the page cache"
}
bench_begin() { # bench_begin TEXT...: the script's preamble
	BENCH_LOAD0=$(loadavg)
	BENCH_T0=$(date +%s)
	echo "$*"
	echo "$ROUNDS interleaved rounds${QUICK:+ (quick mode: small sizes, figures not meaningful)}."
	echo
	echo "| measure | agfs | reference | ratio (min / median / max) | goal |"
	echo "|---|---|---|---|---|"
}
bench_end() { # bench_end [NOTE...]
	echo
	[ $# -gt 0 ] && echo "$*"
	echo "Load average $BENCH_LOAD0 at start, $(loadavg) at end; $(($(date +%s) - BENCH_T0)) s."
	if [ -s "$W/failed" ]; then
		echo
		echo "Failed runs (left out of the figures):"
		sed 's/^/    /' "$W/failed"
	fi
}
progress() { echo "# $*" >&2; }

# --- timing: series of microseconds in $W/series/NAME, one line a round ---
now_us() { echo $(($(date +%s%N) / 1000)); }
record() { echo "$2" >>"$W/series/$1"; }
# timed NAME CMD...: runs CMD (output discarded), records its wall time
timed() {
	local name=$1 t0 t1
	shift
	t0=$(now_us)
	if "$@" >/dev/null 2>>"$W/stderr"; then
		t1=$(now_us)
		record "$name" $((t1 - t0))
	else
		echo "$name: $*" >>"$W/failed"
		record "$name" -
	fi
}
# measured NAME CMD...: records what CMD prints (microseconds it measured itself)
measured() {
	local name=$1 v
	shift
	if v=$("$@" 2>>"$W/stderr"); then
		record "$name" "$v"
	else
		echo "$name: $*" >>"$W/failed"
		record "$name" -
	fi
}
# cold CMD...: drops the page cache (and dentries, inodes), then runs CMD
cold() {
	drop_caches
	"$@"
}
# timed_cpu NAME PID CMD...: timed, and the CPU time PID used meanwhile
# (microseconds) into series NAME.cpu
timed_cpu() {
	local name=$1 pid=$2 c0 c1
	shift 2
	c0=$(cpu_ticks "$pid")
	timed "$name" "$@"
	c1=$(cpu_ticks "$pid")
	record "$name.cpu" $(((c1 - c0) * 1000000 / $(getconf CLK_TCK)))
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# rounds FUNC: FUNC 1, FUNC 2, ... FUNC ROUNDS
rounds() {
	local r
	for ((r = 1; r <= ROUNDS; r++)); do
		progress "$1: round $r of $ROUNDS (load $(loadavg))"
		"$1" "$r"
	done
}

# busy_start N: N CPU-bound processes (the "machine busy" rows); busy_stop
busy_start() {
	local i
	BUSY_PIDS=()
	for ((i = 0; i < $1; i++)); do
		sha256sum /dev/zero >/dev/null 2>&1 &
		BUSY_PIDS+=($!)
		_bench_pids+=($!)
	done
}
busy_stop() {
	local p
	for p in "${BUSY_PIDS[@]}"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	BUSY_PIDS=()
}

# rotated ROUND FUNC...: calls every FUNC ROUND, starting with a different
# one each round, so that no contender always runs first (or right after
# another that warmed the host's cache of the same disk blocks)
rotated() {
	local r=$1 i
	shift
	local f=("$@")
	for ((i = 0; i < ${#f[@]}; i++)); do "${f[(i + r) % ${#f[@]}]}" "$r"; done
}

# --- statistics and table rows ---
# stats: "min median max" of the numbers on stdin ("-" lines ignored)
stats() {
	grep -v '^-$' | sort -g | awk '{v[NR] = $1}
		END { if (NR == 0) { print "- - -"; exit }
		      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		      print v[1], m, v[NR] }'
}
series() { cat "$W/series/$1" 2>/dev/null; }
median_of() { series "$1" | stats | cut -d' ' -f2; }
fmt_us() { # fmt_us MICROSECONDS: "12.3 s", "1234 ms" or "4.56 ms"
	awk -v u="$1" 'BEGIN { if (u == "-") print "failed"
		else if (u >= 10000000) printf "%.1f s\n", u / 1e6
		else if (u >= 10000) printf "%.0f ms\n", u / 1e3
		else printf "%.2f ms\n", u / 1e3 }'
}
# ratios A B: per round, B / A (paste's "-" lines give "-")
ratios() {
	[ -s "$W/series/$1" ] && [ -s "$W/series/$2" ] || return 0
	paste -d' ' "$W/series/$1" "$W/series/$2" |
		awk '{ print ($1 == "-" || $2 == "-" || $1 == 0) ? "-" : $2 / $1 }'
}
fmt_ratios() { stats | awk '$1 == "-" { print "-"; next } { printf "%.2f / %.2f / %.2f\n", $1, $2, $3 }'; }
# row MEASURE AGFS REF REF-LABEL GOAL [DIR]: one table line from two series.
# DIR ref/agfs (default; higher is better) or agfs/ref (lower is better),
# printed before GOAL; abs: ratio ref/agfs, GOAL (on the agfs figure) alone.
row() {
	local measure=$1 a=$2 b=$3 label=$4 goal=$5 dir=${6:-ref/agfs} r
	if [ "$dir" = agfs/ref ]; then r=$(ratios "$b" "$a" | fmt_ratios); else r=$(ratios "$a" "$b" | fmt_ratios); fi
	[ "$dir" = abs ] || goal="$dir $goal"
	printf '| %s | %s | %s (%s) | %s | %s |\n' "$measure" "$(fmt_us "$(median_of "$a")")" \
		"$(fmt_us "$(median_of "$b")")" "$label" "$r" "$goal"
}
# vrow MEASURE TEXT [REFERENCE] [GOAL]: a line without a ratio
vrow() { printf '| %s | %s | %s | - | %s |\n' "$1" "$2" "${3:--}" "${4:--}"; }
# skiprow MEASURE REASON
skiprow() { printf '| %s | skip: %s | | | |\n' "$1" "$2"; }
# spread SERIES [DIVISOR] [UNIT]: "median (min–max)" of a series / DIVISOR
spread() {
	series "$1" | stats | awk -v d="${2:-1}" -v u="${3:-}" \
		'$1 == "-" { print "failed"; next } { printf "%.2f%s (%.2f–%.2f)\n", $2 / d, u, $1 / d, $3 / d }'
}

# --- mounts ---
# agfs_mount BINARY STORE MNT [OPTIONS...]: the daemon in the foreground, as a
# background job of this script; sets MOUNT_PID.  Returns 1 if no mount.
agfs_mount() {
	local bin=$1 store=$2 mnt=$3 n=100
	shift 3
	mkdir -p "$mnt"
	"$bin" -f "$@" "$store" "$mnt" 2>>"$W/agfs.log" &
	MOUNT_PID=$!
	_bench_pids+=("$MOUNT_PID")
	_bench_mounts+=("$mnt")
	until mountpoint -q "$mnt"; do
		kill -0 "$MOUNT_PID" 2>/dev/null && [ $((n -= 1)) -gt 0 ] || return 1
		sleep 0.1
	done
}
unmount() { fusermount3 -u "$1" 2>/dev/null || umount -l "$1"; }
# peer_bindfs SRC MNT: bindfs (Debian's unverified FUSE peer), read-only.
# Returns 1 with the reason in PEER_WHY.
peer_bindfs() {
	command -v bindfs >/dev/null || { PEER_WHY="bindfs not installed (contrib/install-deps.sh --bench)"; return 1; }
	mkdir -p "$2"
	bindfs -r "$1" "$2" 2>"$W/bindfs.err" || { PEER_WHY="bindfs: $(head -1 "$W/bindfs.err")"; return 1; }
	_bench_mounts+=("$2")
}
# peer_passthrough SRC MNT: libfuse's passthrough_ll example (Debian's
# libfuse3-dev ships its source), built here into $W: a reference peer, not
# part of agfs.  Returns 1 with the reason in PEER_WHY.
PASSTHROUGH_C=/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c
peer_passthrough() {
	if [ ! -x "$W/passthrough_ll" ]; then
		[ -r "$PASSTHROUGH_C" ] || { PEER_WHY="$PASSTHROUGH_C missing (libfuse3-dev)"; return 1; }
		${CC:-cc} -O2 -o "$W/passthrough_ll" "$PASSTHROUGH_C" $(pkg-config fuse3 --cflags --libs) \
			2>"$W/passthrough.err" || {
			PEER_WHY="passthrough_ll.c did not build: $(grep -m1 error "$W/passthrough.err")"
			return 1
		}
	fi
	mkdir -p "$2"
	"$W/passthrough_ll" -o "source=$1" "$2" 2>"$W/passthrough.err" ||
		{ PEER_WHY="passthrough_ll: $(head -1 "$W/passthrough.err")"; return 1; }
	_bench_mounts+=("$2")
}

# --- the format-1 build ---
# v1_build: builds commit V1_COMMIT (the last store format 1) in a detached
# git worktree (BENCH_V1_DIR, else $W/v1; reused if already built there);
# sets V1_BUILD.  Returns 1 with the reason in V1_WHY.
v1_build() {
	local dir=${BENCH_V1_DIR:-$W/v1}
	V1_BUILD=$dir/build
	[ -x "$V1_BUILD/agfs" ] && [ -x "$V1_BUILD/tests/helpers/fs-mkstore" ] && return 0
	command -v git >/dev/null || { V1_WHY="git not installed"; return 1; }
	git -C "$BENCH_SRC" rev-parse --git-dir >/dev/null 2>&1 || { V1_WHY="not a git checkout"; return 1; }
	git -C "$BENCH_SRC" cat-file -e "$V1_COMMIT^{commit}" 2>/dev/null ||
		{ V1_WHY="commit $V1_COMMIT is not in this clone (shallow?)"; return 1; }
	if [ ! -d "$dir" ]; then
		progress "building format 1 ($V1_COMMIT) in $dir"
		git -C "$BENCH_SRC" worktree add --detach "$dir" "$V1_COMMIT" >/dev/null 2>"$W/v1.err" ||
			{ V1_WHY="git worktree add failed: $(head -1 "$W/v1.err")"; return 1; }
		[ -n "${BENCH_V1_DIR:-}" ] || _bench_v1_own=$dir
	fi
	make -C "$dir" BUILD=build -j"$(nproc)" build/agfs build/agimport build/agstore \
		build/tests/helpers/fs-mkstore >"$W/v1.log" 2>&1 ||
		{ V1_WHY="the build of $V1_COMMIT failed: $(grep -m1 -i error "$W/v1.log")"; return 1; }
}
