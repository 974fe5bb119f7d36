#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The Debian package (issue 14): `make deb` builds it with dpkg-buildpackage
# in a temporary copy, leaving the source tree as it was; the .deb holds the
# programs, man pages, agfs.service, the Ollama drop-in, /etc/agfs/agfs.conf
# as a conffile, logrotate and /var/log/agfs; installed into a scratch root
# with dpkg --root and purged again, its maintainer scripts start, enable and
# mount nothing and leave an existing store as it was, and an upgrade keeps
# the admin's enable/disable (systemctl --root); the installed unit
# passes systemd-analyze verify with the installed agfs; lintian finds
# nothing at its default level.
. "$(dirname "$0")/lib.sh"

need_cmd dpkg-buildpackage dpkg-deb git
command -v dh >/dev/null || skip_all "needs debhelper (dh) to build the package (contrib/install-deps.sh installs it)"
(cd "$SRC_DIR" && dpkg-checkbuilddeps) >"$T/deps" 2>&1 ||
	skip_all "build dependencies missing: $(sed -n 's/.*Unmet build dependencies: //p' "$T/deps")"
git -C "$SRC_DIR" rev-parse --is-inside-work-tree >/dev/null 2>&1 ||
	skip_all "the source is not a git checkout (make deb copies the tracked files)"

version=$(sed -n 's/^VERSION *?= *//p' "$SRC_DIR/Makefile")
deb_version=$(sed -n '1s/^agfs (\([^)]*\)).*/\1/p' "$SRC_DIR/debian/changelog")
is "$deb_version" "$version" "debian/changelog's version is the Makefile's VERSION ($version)"

before=$(git -C "$SRC_DIR" status --porcelain --ignored -- debian)
status_before=$(git -C "$SRC_DIR" status --porcelain)
# Not the outer make's variables (make check SANITIZE=...): the package is
# built as debian/rules says.
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$SRC_DIR" deb DEBDIR="$T/debs" >"$T/build.log" 2>&1
ok $? "make deb builds the package" || tail -30 "$T/build.log" | sed 's/^/# /'
DEB=$(ls "$T"/debs/agfs_*_*.deb 2>/dev/null | head -1)
[ -f "$DEB" ] || bail "no agfs_*.deb in $T/debs"
is "$(git -C "$SRC_DIR" status --porcelain --ignored -- debian)" "$before" \
	"the build leaves nothing under debian/ in the source tree"
is "$(git -C "$SRC_DIR" status --porcelain)" "$status_before" \
	"git status of the source tree is unchanged by the build"

# --- install into a scratch root ---
# dpkg --root with the maintainer scripts run outside a chroot: dpkg passes
# DPKG_ROOT, which deb-systemd-helper honours, so nothing of this machine is
# touched.  A store already in the scratch root must come out unchanged.
R=$T/root
dpkg-deb -e "$DEB" "$T/ctl" || bail "dpkg-deb -e failed"
dpkg_root() { dpkg --root="$R" --log=/dev/null --force-script-chrootless --force-depends "$@"; }
installed=
if [ "$(id -u)" -eq 0 ] && grep -q DPKG_ROOT "$(command -v deb-systemd-helper || echo /dev/null)"; then
	mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/var/lib/dpkg/triggers"
	touch "$R/var/lib/dpkg/status"
	mkdir -p "$R/var/lib/agfs/objects" && echo "an existing store" >"$R/var/lib/agfs/objects/x"
	store_before=$(cd "$R/var/lib/agfs" && find . -printf '%p %m %s %T@\n' | sort)
	dpkg_root -i "$DEB" >"$T/dpkg.log" 2>&1
	ok $? "dpkg --root installs the package into a scratch root" || sed 's/^/# /' "$T/dpkg.log"
	installed=1
else
	skip "dpkg --root with maintainer scripts needs root and a deb-systemd-helper that honours DPKG_ROOT; unpacking only"
	dpkg-deb -x "$DEB" "$R" || bail "dpkg-deb -x failed"
fi

# --- the files ---
missing=
for f in usr/sbin/agfs usr/bin/agimport usr/bin/agstore usr/sbin/mount.agfs usr/sbin/mount.fuse.agfs \
	usr/share/man/man8/agfs.8.gz usr/share/man/man8/agimport.8.gz usr/share/man/man8/agstore.8.gz \
	lib/systemd/system/agfs.service usr/share/agfs/ollama.service.d/agfs.conf \
	lib/systemd/system/agfs-pull.service lib/systemd/system/agfs-pull.timer etc/agfs/pull.conf \
	etc/agfs/agfs.conf etc/logrotate.d/agfs usr/share/doc/agfs/copyright; do
	[ -e "$R/$f" ] || [ -L "$R/$f" ] || missing="$missing $f"
done
# agbundle, the low side's bundle writer, once the Makefile builds it.
if grep -q '^PROGS .*agbundle' "$SRC_DIR/Makefile"; then
	for f in usr/bin/agbundle usr/share/man/man1/agbundle.1.gz; do
		[ -e "$R/$f" ] || missing="$missing $f"
	done
fi
is "$missing" "" "the package holds the programs, man pages, unit, drop-in, agfs.conf and logrotate"
[ -d "$R/var/log/agfs" ]
ok $? "the package creates /var/log/agfs"
is "$(sort "$T/ctl/conffiles" | tr '\n' ' ')" "/etc/agfs/agfs.conf /etc/agfs/pull.conf /etc/logrotate.d/agfs " \
	"/etc/agfs/agfs.conf, /etc/agfs/pull.conf and the logrotate file are conffiles"
cmp -s "$R/etc/agfs/agfs.conf" "$SRC_DIR/contrib/agfs.conf" &&
	cmp -s "$R/usr/share/agfs/ollama.service.d/agfs.conf" "$SRC_DIR/contrib/systemd/ollama.service.d/agfs.conf"
ok $? "agfs.conf and the drop-in are the shipped ones"
[ ! -e "$R/etc/systemd" ] && [ ! -e "$R/lib/systemd/system/ollama.service.d" ]
ok $? "nothing is enabled by the package: no /etc/systemd links, the Ollama drop-in is not active"
if [ -n "$installed" ]; then
	is "$(cd "$R/var/lib/agfs" && find . -printf '%p %m %s %T@\n' | sort)" "$store_before" \
		"installing leaves an existing store exactly as it was"
fi
"$R/usr/bin/agstore" --version >"$T/v" 2>&1 && grep -q "$version" "$T/v"
ok $? "the packaged agstore runs and reports version $version" || sed 's/^/# /' "$T/v"

# --- the maintainer scripts: no start, no enable, no mount, no store ---
scripts=
for f in preinst postinst prerm postrm; do [ -f "$T/ctl/$f" ] && scripts="$scripts $f"; done
bad=$(for f in $scripts; do cat "$T/ctl/$f"; done |
	grep -nE 'deb-systemd-invoke|systemctl (start|restart|enable)|\bmount\b|fusermount|/var/lib/agfs|agimport|agstore' |
	grep -v 'deb-systemd-invoke stop' || true)
is "$bad" "" "the maintainer scripts (${scripts# }) start, enable and mount nothing and leave the store alone"
grep -q "was-enabled 'agfs.service'" "$T/ctl/postinst"
ok $? "postinst re-enables agfs.service only if the admin had enabled it"

# The admin's choice survives an upgrade, either way: enabled stays enabled
# (systemctl --root works without a running systemd), disabled stays off.
if [ -n "$installed" ] && command -v systemctl >/dev/null; then
	wants=$R/etc/systemd/system/multi-user.target.wants/agfs.service
	systemctl --root="$R" enable agfs.service >/dev/null 2>&1 && [ -L "$wants" ] &&
		[ -L "$R/etc/systemd/system/ollama.service.requires/agfs.service" ]
	ok $? "systemctl enable agfs: wanted by multi-user.target, required by ollama.service"
	dpkg_root -i "$DEB" >"$T/dpkg.log" 2>&1 && [ -L "$wants" ]
	ok $? "reinstalling the package keeps agfs.service enabled" || sed 's/^/# /' "$T/dpkg.log"
	systemctl --root="$R" disable agfs.service >/dev/null 2>&1
	dpkg_root -i "$DEB" >"$T/dpkg.log" 2>&1 && [ ! -e "$wants" ]
	ok $? "reinstalling the package leaves a disabled agfs.service disabled"
elif [ -n "$installed" ]; then
	skip "systemctl is not installed"
fi

if [ -n "$installed" ]; then
	dpkg_root --purge agfs >"$T/dpkg.log" 2>&1
	ok $? "dpkg --root --purge removes the package" || sed 's/^/# /' "$T/dpkg.log"
	[ ! -e "$R/usr/sbin/agfs" ] && [ ! -e "$R/etc/agfs/agfs.conf" ]
	ok $? "purge removes the programs and the conffile"
	is "$(cd "$R/var/lib/agfs" && find . -printf '%p %m %s %T@\n' | sort)" "$store_before" \
		"removing and purging leave the store exactly as it was"
	dpkg_root --unpack "$DEB" >/dev/null 2>&1 # the files again, for the unit check below
fi

# --- the installed unit ---
if command -v systemd-analyze >/dev/null; then
	U=$T/units
	mkdir -p "$U"
	sed -e "s|/usr/sbin/agfs|$R/usr/sbin/agfs|" -e "s|/etc/agfs/agfs.conf|$R/etc/agfs/agfs.conf|" \
		"$R/lib/systemd/system/agfs.service" >"$U/agfs.service"
	printf '[Unit]\nDescription=Ollama stand-in\n[Service]\nExecStart=/bin/true\n' >"$U/ollama.service"
	(cd "$U" && systemd-analyze verify --man=no agfs.service) >"$T/out" 2>&1 && ! [ -s "$T/out" ]
	ok $? "systemd-analyze verify accepts the installed unit with the installed agfs" ||
		sed 's/^/# /' "$T/out"
else
	skip "systemd-analyze is not installed"
fi

if command -v lintian >/dev/null; then
	lintian --allow-root "$T"/debs/agfs_*.changes >"$T/lintian" 2>&1
	ok $? "lintian runs over the package" || sed 's/^/# /' "$T/lintian"
	! grep -qE '^[EW]: ' "$T/lintian"
	ok $? "lintian reports no error and no warning" || sed 's/^/# /' "$T/lintian"
else
	skip "lintian is not installed"
fi

done_testing
