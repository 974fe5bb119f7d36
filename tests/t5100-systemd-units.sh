#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The shipped deployment files are valid for the systemd and logrotate that
# will read them: systemd-analyze verify accepts agfs.service and Ollama's
# drop-in without a warning, agfs.service is a notify service that mounts the
# store at /var/lib/ollama/models with its hardening, the drop-in orders Ollama
# after it with OLLAMA_MODELS and OLLAMA_NOPRUNE=1, the fstab line becomes a
# fuse.agfs mount unit ordered before ollama.service and its options mount a
# store through mount.agfs, and logrotate parses the transfer log's rotation.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-fixtures.sh"

need_cmd systemd-analyze
C=$SRC_DIR/contrib
[ -x "$AGFS" ] || skip_all "$AGFS is not built (run make)"

# A copy of the units naming the built agfs (verify requires every command it
# names to exist), next to a stand-in ollama.service carrying the real drop-in.
U=$T/units
mkdir -p "$U/ollama.service.d"
sed "s|/usr/sbin/agfs|$AGFS|" "$C/systemd/agfs.service" >"$U/agfs.service"
cp "$C/systemd/ollama.service.d/agfs.conf" "$U/ollama.service.d/"
printf '[Unit]\nDescription=Ollama stand-in\n[Service]\nExecStart=/bin/true\n' >"$U/ollama.service"

verify() { # verify UNIT...: systemd-analyze verify, with every warning counted as a failure
	(cd "$U" && systemd-analyze verify --man=no "$@") >"$T/out" 2>&1 && ! [ -s "$T/out" ]
}
for cmd in fusermount3 mkdir; do
	grep -q "/usr/bin/$cmd " "$U/agfs.service" && [ ! -x "/usr/bin/$cmd" ] &&
		skip_all "/usr/bin/$cmd, named by agfs.service, is missing (apt-get install fuse3)"
done

verify "$U/agfs.service"
ok $? "systemd-analyze verify accepts agfs.service" || sed 's/^/# /' "$T/out"
verify "$U/ollama.service"
ok $? "systemd-analyze verify accepts ollama.service with the agfs.conf drop-in" ||
	sed 's/^/# /' "$T/out"

# Property checks on the files as shipped.
prop() { grep -qxF "$2" "$1"; }
prop "$C/systemd/agfs.service" "Type=notify"
ok $? "agfs.service is Type=notify (agfs sends READY=1 once the mount answers)"
prop "$C/systemd/agfs.service" 'ExecStart=/usr/sbin/agfs -f $AGFS_OPTIONS ${AGFS_STORE} ${AGFS_MOUNTPOINT}'
ok $? "agfs.service runs agfs in the foreground with the store, mount point and options of agfs.conf"
prop "$C/systemd/agfs.service" 'ExecStop=/usr/bin/fusermount3 -u ${AGFS_MOUNTPOINT}'
ok $? "agfs.service unmounts on stop"
prop "$C/systemd/agfs.service" "EnvironmentFile=-/etc/agfs/agfs.conf"
ok $? "agfs.service reads /etc/agfs/agfs.conf (optional)"
bad=$(grep -E '^Exec' "$C/systemd/agfs.service" | grep -E '/var/lib/(agfs|ollama)')
is "$bad" "" "no command line of agfs.service hard-codes the store or the mount point"

# The unit's command line as systemd expands it: "${VAR}" is one word,
# "$VAR" is split on spaces.  Expanded with the unit's Environment= defaults,
# then with contrib/agfs.conf (which must give the same: today's defaults).
unit_env() { # unit_env FILE: the Environment= assignments as shell lines
	sed -n 's/^Environment=//p' "$1" | grep -v OLLAMA | xargs -n1 printf '%s\n' | sed 's/=\(.*\)/="\1"/'
}
expand_exec() { # expand_exec ENVFILE...: the ExecStart= words, one a line
	(
		set -a
		# shellcheck disable=SC1090 # the unit's defaults and an agfs.conf
		for f; do . "$f"; done
		line=$(sed -n 's/^ExecStart=//p' "$C/systemd/agfs.service")
		line=${line//\$\{AGFS_STORE\}/\"\$AGFS_STORE\"}
		line=${line//\$\{AGFS_MOUNTPOINT\}/\"\$AGFS_MOUNTPOINT\"}
		eval "set -- $line"
		printf '%s\n' "$@"
	)
}
unit_env "$C/systemd/agfs.service" >"$T/unit.env"
want=$(printf '%s\n' /usr/sbin/agfs -f -o allow_other /var/lib/agfs /var/lib/ollama/models)
is "$(expand_exec "$T/unit.env")" "$want" \
	"the unit's defaults give today's command: agfs -f -o allow_other /var/lib/agfs /var/lib/ollama/models"
is "$(expand_exec "$T/unit.env" "$C/agfs.conf")" "$want" "contrib/agfs.conf gives the same command"
printf 'AGFS_OPTIONS=\n' >"$T/empty.conf"
is "$(expand_exec "$T/unit.env" "$T/empty.conf" | tr '\n' ' ')" "/usr/sbin/agfs -f /var/lib/agfs /var/lib/ollama/models " \
	"an empty AGFS_OPTIONS drops the options, not the store"
prop "$C/systemd/agfs.service" "NoNewPrivileges=yes"
ok $? "agfs.service sets NoNewPrivileges"
prop "$C/systemd/agfs.service" "CapabilityBoundingSet=CAP_SYS_ADMIN CAP_KILL"
ok $? "agfs.service keeps CAP_SYS_ADMIN and CAP_KILL (stuck=kill) alone"
# Any of these gives the service its own mount namespace, where the FUSE mount
# would be invisible to ollama.service.
bad=$(grep -E '^(ProtectSystem|ProtectHome|PrivateTmp|PrivateDevices|PrivateMounts|ReadOnlyPaths|ReadWritePaths|InaccessiblePaths|BindPaths|BindReadOnlyPaths|TemporaryFileSystem|ProtectKernelTunables|ProtectKernelModules|ProtectKernelLogs|ProtectControlGroups|ProtectProc|ProcSubset|MountFlags)=' \
	"$C/systemd/agfs.service")
is "$bad" "" "agfs.service uses no option that would hide its mount in a private mount namespace"
if systemd-analyze security --offline=true "$U/agfs.service" >"$T/sec" 2>&1; then
	level=$(sed -n 's/.*Overall exposure level for agfs.service: \([0-9.]*\).*/\1/p' "$T/sec")
	diag "systemd-analyze security: exposure $level"
	systemd-analyze security --offline=true --threshold=50 "$U/agfs.service" >/dev/null 2>&1
	ok $? "systemd-analyze security rates agfs.service at most 5.0 (\"OK\" or better)"
else
	skip "systemd-analyze security --offline is not supported here"
fi

D=$C/systemd/ollama.service.d/agfs.conf
prop "$D" "Requires=agfs.service" && prop "$D" "After=agfs.service"
ok $? "the drop-in makes Ollama require and follow agfs.service"
prop "$D" "Environment=OLLAMA_MODELS=/var/lib/ollama/models"
ok $? "the drop-in points OLLAMA_MODELS at the mount"
prop "$D" "Environment=OLLAMA_NOPRUNE=1"
ok $? "the drop-in sets OLLAMA_NOPRUNE=1"

# The fstab example through systemd's own generator.
GEN=/lib/systemd/system-generators/systemd-fstab-generator
if [ -x "$GEN" ]; then
	mkdir -p "$T/gen"
	grep -v '^#' "$C/fstab.example" >"$T/fstab"
	SYSTEMD_FSTAB=$T/fstab SYSTEMD_PROC_CMDLINE='' "$GEN" "$T/gen" "$T/gen" "$T/gen" >"$T/out" 2>&1
	ok $? "systemd-fstab-generator takes the fstab example" || sed 's/^/# /' "$T/out"
	m=$T/gen/var-lib-ollama-models.mount
	grep -qx 'Type=fuse.agfs' "$m" && grep -qx 'What=/var/lib/agfs' "$m" &&
		grep -qx 'Before=ollama.service' "$m"
	ok $? "the fstab line is a fuse.agfs mount of /var/lib/agfs ordered before ollama.service"
	[ -L "$T/gen/ollama.service.requires/var-lib-ollama-models.mount" ]
	ok $? "ollama.service requires the mount"
else
	skip "no systemd-fstab-generator at $GEN"
fi

# The fstab line's options, as mount(8) hands them to mount.fuse.agfs.
if [ "$(id -u)" -ne 0 ] || [ ! -c /dev/fuse ] || ! command -v fusermount3 >/dev/null; then
	skip "mounting with the fstab options needs root, /dev/fuse and fusermount3"
elif [ ! -x "$AGIMPORT" ] || [ ! -x "$MKGGUF" ]; then
	skip "agimport or mkgguf is not built"
else
	make_ollama_tree "$T/tree" --model tiny:latest
	"$AGIMPORT" --ollama-dir "$T/tree" --store "$T/store" --no-signature >/dev/null 2>&1
	opts=$(awk '!/^#/ && $3 == "fuse.agfs" {print $4; exit}' "$C/fstab.example")
	mkdir -p "$T/mnt"
	_mounts+=("$T/mnt")
	AGFS=$AGFS "$SRC_DIR/fs/mount.agfs" "$T/store" "$T/mnt" -o "$opts" >"$T/out" 2>&1 &&
		[ -f "$T/mnt/manifests/registry.ollama.ai/library/tiny/latest" ]
	ok $? "mount.agfs mounts a store with the fstab line's options ($opts)" ||
		sed 's/^/# /' "$T/out"
	mountpoint -q "$T/mnt" && fusermount3 -u "$T/mnt"

	# The unit's ExecStart with an agfs.conf naming this store and mount point.
	printf 'AGFS_STORE=%s\nAGFS_MOUNTPOINT=%s\nAGFS_OPTIONS="-o allow_other,verify=full"\n' \
		"$T/store" "$T/umnt" >"$T/site.conf"
	mapfile -t cmd < <(expand_exec "$T/unit.env" "$T/site.conf")
	cmd[0]=$AGFS
	mkdir -p "$T/umnt"
	_mounts+=("$T/umnt")
	"${cmd[@]}" >"$T/out" 2>&1 &
	for _ in $(seq 100); do mountpoint -q "$T/umnt" && break; sleep 0.1; done
	[ -f "$T/umnt/manifests/registry.ollama.ai/library/tiny/latest" ]
	ok $? "the unit's command line with an agfs.conf mounts that store at that mount point" ||
		sed 's/^/# /' "$T/out"
	mountpoint -q "$T/umnt" && fusermount3 -u "$T/umnt"
	wait
fi

if command -v logrotate >/dev/null; then
	logrotate -d -s "$T/logrotate.state" "$C/logrotate/agfs" >"$T/out" 2>&1 &&
		! grep -qi 'error' "$T/out"
	ok $? "logrotate parses contrib/logrotate/agfs" || sed 's/^/# /' "$T/out"
else
	skip "logrotate is not installed (apt-get install logrotate)"
fi

done_testing
