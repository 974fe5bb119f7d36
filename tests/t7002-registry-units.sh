#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Following the registry: systemd-analyze verify accepts agfs-pull.service
# and agfs-pull.timer without a warning; the service's command line, with the
# environment systemd would give it from a pull.conf in the shipped format,
# pulls the registry's latest generation into a store, and a second run with
# nothing new ends without a new generation; the nginx cache configuration
# parses (nginx -t).
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
. "$TESTS_DIR/lib-registry.sh"
need_cmd systemd-analyze gpg tar gzip sha256sum openssl jq python3
[ -x "$AGIMPORT" ] && [ -x "$AGSTORE" ] || skip_all "agimport/agstore not built"
C=$SRC_DIR/contrib

U=$T/units
mkdir -p "$U"
sed "s|/usr/bin/agimport|$AGIMPORT|" "$C/systemd/agfs-pull.service" >"$U/agfs-pull.service"
cp "$C/systemd/agfs-pull.timer" "$U/"
(cd "$U" && systemd-analyze verify --man=no agfs-pull.service agfs-pull.timer) >"$T/out" 2>&1 && ! [ -s "$T/out" ]
ok $? "systemd-analyze verify accepts agfs-pull.service and agfs-pull.timer" || sed 's/^/# /' "$T/out"
grep -qx 'Type=oneshot' "$C/systemd/agfs-pull.service" &&
	grep -qx 'EnvironmentFile=/etc/agfs/pull.conf' "$C/systemd/agfs-pull.service" &&
	grep -qx 'ConditionPathExists=/etc/agfs/pull.conf' "$C/systemd/agfs-pull.service"
ok $? "the service is a oneshot reading /etc/agfs/pull.conf, idle without it"
grep -qx 'WantedBy=timers.target' "$C/systemd/agfs-pull.timer" && grep -q '^OnUnitActiveSec=' "$C/systemd/agfs-pull.timer"
ok $? "the timer repeats and is enabled under timers.target"
grep -q 'agfs-pull\.\*' "$SRC_DIR/debian/rules" && grep -q 'contrib/pull.conf' "$SRC_DIR/debian/rules"
ok $? "the Debian package installs the units and /etc/agfs/pull.conf"

# nginx -t of the cache configuration (test certificates and cache directory).
if command -v nginx >/dev/null; then
	nginx_cache_conf "$T/nginx" "$(free_port)" https://127.0.0.1:9
	nginx -t -p "$T/nginx" -c "$T/nginx/nginx.conf" >"$T/out" 2>&1
	ok $? "nginx -t accepts contrib/nginx/agfs-cache.conf" || sed 's/^/# /' "$T/out"
else
	skip "nginx is not installed"
fi

# The service's command line, as systemd would run it.
if [ ! -x "$REGISTRY_BIN" ]; then
	skip "docker-registry is not installed"
	done_testing
fi
make_gpg_key
make_random_ollama_tree "$T/tree" 100000
make_bundle "$T/tree" "$T/b" 20260101
"$AGIMPORT" --store "$T/ingest" --keyring "$T/pubkey.asc" --sign-key "$KEY_FPR" "$T/b/airgap-bundle-20260101.tar.gz" >/dev/null 2>&1
registry_start main || bail "docker-registry did not start"
"$AGSTORE" --store "$T/ingest" push "$REG_URL" --ca-file "$T/pki/ca.crt" >/dev/null 2>"$T/err" || bail "push: $(cat "$T/err")"
sed -e "s|^AGFS_REGISTRY=.*|AGFS_REGISTRY=$REG_URL|" -e "s|^AGFS_STORE=.*|AGFS_STORE=$T/node|" \
	-e "s|/etc/agfs/registry-ca.crt|$T/pki/ca.crt|" -e "s|/etc/agfs/ingest-key.asc|$T/pubkey.asc|" \
	"$C/pull.conf" >"$T/pull.conf"
exec_start() { # runs ExecStart= with pull.conf's environment (systemd's quoting: one level of "")
	(
		AGFS_STORE=/var/lib/agfs AGFS_PULL_GENERATION=latest AGFS_PULL_OPTIONS=
		while IFS='=' read -r k v; do
			case $k in '' | \#*) continue ;; esac
			v=${v#\"}
			export "$k=${v%\"}"
		done <"$T/pull.conf"
		cmd=$(sed -n 's/^ExecStart=//p' "$U/agfs-pull.service")
		cmd=${cmd//\$\{AGFS_REGISTRY\}/$AGFS_REGISTRY}
		cmd=${cmd//\$\{AGFS_STORE\}/$AGFS_STORE}
		cmd=${cmd//\$\{AGFS_PULL_GENERATION\}/$AGFS_PULL_GENERATION}
		cmd=${cmd//\$AGFS_PULL_OPTIONS/$AGFS_PULL_OPTIONS}
		eval "$cmd"
	)
}
exec_start >"$T/out" 2>&1
ok $? "the service's command pulls the registry's latest generation, its catalog verified" || sed 's/^/# /' "$T/out"
grep '"event":"REGISTRY_PULL"' "$T/node/audit.log" | grep -q '"signer":"'"$KEY_FPR"'"'
ok $? "the pull is audited with the catalog's signer"
is "$("$AGSTORE" --store "$T/node" ls | grep -c ':')" 2 "the node serves the pushed models"
exec_start >"$T/out" 2>&1
ok $? "a second run succeeds" || sed 's/^/# /' "$T/out"
grep -q "already current" "$T/out"
ok $? "and has nothing to do"
registry_stop
done_testing
