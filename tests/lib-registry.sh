# SPDX-License-Identifier: Apache-2.0
# A real OCI registry for the registry tests: Debian's docker-registry
# (Docker Distribution) on a free port of 127.0.0.1, TLS from a test CA made
# with openssl, its storage and log under $T.  Source after lib.sh.
#   registry_ca                      -> $T/pki/{ca,server,client,other-ca}.{crt,key}
#   registry_start NAME [EXTRA-YAML] -> $REG_URL, $REG_PORT, $REG_DIR, $REG_LOG, $REG_PID
#   registry_stop                    (also done at exit)
#   registry_test_needs              skip_all unless the tools are there
#   registry_count 'REGEX'           requests in the log whose line matches
#   free_port                        a free TCP port of 127.0.0.1

REGISTRY_BIN=${REGISTRY_BIN:-/usr/bin/docker-registry}
_reg_pids=()

need_registry() {
	[ -x "$REGISTRY_BIN" ] || skip_all "$REGISTRY_BIN is not installed (contrib/install-deps.sh installs docker-registry)"
	command -v openssl >/dev/null || skip_all "openssl is not installed"
	command -v curl >/dev/null || skip_all "curl is not installed"
}

# registry_test_needs: what every registry test needs (the tools of a
# bundle import, agimport/agstore built, a registry), else skip_all.
registry_test_needs() {
	need_cmd gpg tar gzip sha256sum openssl jq python3
	[ -x "$AGIMPORT" ] && [ -x "$AGSTORE" ] || skip_all "agimport/agstore not built"
	need_registry
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

_reg_cleanup() {
	local p
	for p in "${_reg_pids[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${_reg_pids[@]}"; do
		wait "$p" 2>/dev/null
	done
	_cleanup
}
trap _reg_cleanup EXIT

# A CA, a server certificate for 127.0.0.1 and localhost, a client
# certificate, and a second CA that signed nothing of this (wrong-CA tests).
registry_ca() {
	local d=$T/pki
	[ -f "$d/ca.crt" ] && return 0
	mkdir -p "$d"
	(
		cd "$d" || exit 1
		for ca in ca other-ca; do
			openssl req -x509 -newkey rsa:2048 -nodes -keyout $ca.key -out $ca.crt \
				-days 2 -subj "/CN=agfs test $ca" 2>/dev/null || exit 1
		done
		openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
			-subj "/CN=127.0.0.1" 2>/dev/null || exit 1
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
		openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
			-out server.crt -days 2 -extfile server.ext 2>/dev/null || exit 1
		openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr \
			-subj "/CN=agfs node" 2>/dev/null || exit 1
		printf 'extendedKeyUsage=clientAuth\n' >client.ext
		openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
			-out client.crt -days 2 -extfile client.ext 2>/dev/null || exit 1
	) || bail "openssl could not make the test CA"
}

# registry_start NAME [EXTRA-HTTP-YAML]: a registry with its own storage
# under $T/registry-NAME (kept across restarts of the same NAME).
registry_start() {
	local name=$1 extra=${2:-} port i
	registry_ca
	REG_DIR=$T/registry-$name
	mkdir -p "$REG_DIR/data"
	port=${REG_PORT_WANT:-$(free_port)}
	cat >"$REG_DIR/config.yml" <<EOF
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $REG_DIR/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$port
  tls:
    certificate: $T/pki/server.crt
    key: $T/pki/server.key
$extra
EOF
	REG_LOG=$REG_DIR/log
	"$REGISTRY_BIN" serve "$REG_DIR/config.yml" >>"$REG_LOG" 2>&1 &
	REG_PID=$!
	_reg_pids+=("$REG_PID")
	REG_PORT=$port
	REG_URL=https://127.0.0.1:$port
	for i in $(seq 1 100); do
		# up: it answers /v2/ (200, or 401 when it wants credentials)
		case $(curl -s -o /dev/null -w '%{http_code}' --cacert "$T/pki/ca.crt" \
			--cert "$T/pki/client.crt" --key "$T/pki/client.key" "$REG_URL/v2/" 2>/dev/null) in
		200 | 401) return 0 ;;
		esac
		kill -0 "$REG_PID" 2>/dev/null || break
		sleep 0.1
	done
	diag "$(tail -5 "$REG_LOG")"
	return 1
}

registry_stop() {
	[ -n "${REG_PID:-}" ] || return 0
	kill "$REG_PID" 2>/dev/null
	wait "$REG_PID" 2>/dev/null
	REG_PID=
}

# Access-log lines (Apache combined format) matching REGEX.
registry_count() {
	grep -E '"(GET|HEAD|POST|PATCH|PUT|DELETE) ' "$REG_LOG" | grep -cE "$1"
}

# The path of a blob's data in the registry's storage.
registry_blob_path() { # registry_blob_path HEX
	echo "$REG_DIR/data/docker/registry/v2/blobs/sha256/${1:0:2}/$1/data"
}

# nginx_cache_conf DIR PORT UPSTREAM-URL: contrib/nginx/agfs-cache.conf made
# runnable by a non-installed nginx: cache, certificates and upstream under
# the test's names, inside a minimal main configuration (DIR/nginx.conf).
nginx_cache_conf() {
	local d=$1 port=$2 up=$3
	registry_ca
	mkdir -p "$d/logs" "$d/cache"
	sed -e "s|/var/cache/agfs-nginx|$d/cache|" -e "s|max_size=2000g|max_size=4g|" \
		-e "s|https://registry.example.internal:5000|$up|g" \
		-e "s|/etc/agfs/registry-ca.crt|$T/pki/ca.crt|" \
		-e "s|/etc/agfs/cache.crt|$T/pki/server.crt|" -e "s|/etc/agfs/cache.key|$T/pki/server.key|" \
		-e "s|listen 443 ssl|listen 127.0.0.1:$port ssl|" \
		"$SRC_DIR/contrib/nginx/agfs-cache.conf" >"$d/agfs-cache.conf"
	cat >"$d/nginx.conf" <<EON
$([ "$(id -u)" -eq 0 ] && echo "user root;")
pid $d/nginx.pid;
error_log $d/logs/error.log;
worker_processes 2;
events {}
http {
  access_log $d/logs/access.log;
  client_body_temp_path $d/body;
  proxy_temp_path $d/proxy;
  include $d/agfs-cache.conf;
}
EON
}

# nginx_cache_start NAME: an nginx cache in front of $REG_URL -> $CACHE_URL.
nginx_cache_start() {
	local d=$T/nginx-$1 port i
	command -v nginx >/dev/null || return 1
	port=$(free_port)
	nginx_cache_conf "$d" "$port" "https://localhost:$REG_PORT" # nginx checks DNS names only
	nginx -p "$d" -c "$d/nginx.conf" -g 'daemon off;' >"$d/logs/stdout" 2>&1 &
	_reg_pids+=("$!")
	CACHE_PID=$!
	CACHE_URL=https://127.0.0.1:$port
	CACHE_DIR=$d
	for i in $(seq 1 50); do
		curl -sf --cacert "$T/pki/ca.crt" "$CACHE_URL/v2/" >/dev/null 2>&1 && return 0
		kill -0 "$CACHE_PID" 2>/dev/null || break
		sleep 0.1
	done
	diag "$(tail -3 "$d/logs/error.log" 2>/dev/null)"
	return 1
}
