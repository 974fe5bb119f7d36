#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# agbundle create refuses bad input with one sentence naming the file and the
# reason, exit 1, and leaves nothing in the output directory: a manifest
# naming a missing blob or giving the wrong size, a blob whose bytes do not
# match its name, a symbolic link loop, a dangling link, a FIFO, an
# unreadable file, a key that cannot sign; usage errors exit 2.
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-bundle.sh"
. "$TESTS_DIR/lib-fixtures.sh"
need_cmd gpg tar sha256sum mkfifo
AGBUNDLE=$AGFS_BUILD/agbundle
[ -x "$AGBUNDLE" ] || skip_all "agbundle not built"
[ -x "$MKGGUF" ] || skip_all "tests/helpers/mkgguf not built"

make_gpg_key
GOOD=$T/good
make_ollama_tree "$GOOD" --model tiny:latest
fresh() { rm -rf "$T/m" && cp -r "$GOOD" "$T/m"; }
attempt() { # attempt [options]: a create into a fresh, empty $T/o
	rm -rf "$T/o" && mkdir -p "$T/o"
	run_fail "$AGBUNDLE" create --models "$T/m" --sign-key "$KEY_FPR" --label 20261201 -o "$T/o" "$@"
}
# refused WHAT PATTERN: exit 1, the pattern on stderr, the output directory empty
refused() {
	is "$rc" 1 "$1: exit 1" || cat "$T/err"
	grep -q -- "$2" "$T/err"
	ok $? "$1: the message says why" || cat "$T/err"
	is "$(ls -A "$T/o")" "" "$1: nothing is left in the output directory"
}

fresh
attempt
is "$rc" 0 "the good tree bundles" || cat "$T/err"

fresh
man=$(fixture_manifest "$T/m" tiny:latest)
blob=$(fixture_model_blob "$T/m" tiny:latest)
rm "$T/m/blobs/$blob"
attempt
refused "a manifest naming a missing blob" "registry.ollama.ai/library/tiny/latest: it names blob sha256:${blob#sha256-}, which is not in blobs/"

fresh
printf 'x' >>"$T/m/blobs/$blob"
attempt
refused "a blob of another size than its manifest gives" "registry.ollama.ai/library/tiny/latest: it gives blob"

fresh
size=$(stat -c %s "$T/m/blobs/$blob")
head -c "$size" /dev/zero >"$T/m/blobs/$blob"
attempt
refused "a blob whose bytes do not match its name" "$blob: its content does not hash to the digest in its name"

fresh
ln -s loop-b "$T/m/blobs/loop-a"
ln -s loop-a "$T/m/blobs/loop-b"
attempt
refused "a symbolic link loop" "blobs/loop-a: it is a symbolic link that loops"

fresh
ln -s . "$T/m/manifests/self"
attempt
refused "a link to its own directory" "manifests/self: it is a symbolic link"

fresh
ln -s /nonexistent/blob "$T/m/blobs/sha256-dangling"
attempt
refused "a dangling symbolic link" "blobs/sha256-dangling: it is a dangling symbolic link"

fresh
mkfifo "$T/m/blobs/sha256-fifo"
attempt
refused "a FIFO" "blobs/sha256-fifo: it is a FIFO, socket or device"

if [ "$(id -u)" -ne 0 ]; then
	fresh
	chmod 000 "$T/m/blobs/$blob"
	attempt
	refused "an unreadable file" "$blob: it cannot be opened for reading"
	chmod 644 "$T/m/blobs/$blob"
elif command -v setpriv >/dev/null && id nobody >/dev/null 2>&1; then
	# As root, chmod does not stop reads: run agbundle as nobody on a copy
	# nobody may read except for one file.
	fresh
	chmod -R a+rX "$T" && chmod 600 "$T/m/blobs/$blob"
	rm -rf "$T/o" && mkdir -p "$T/o" && chmod 777 "$T/o"
	cp -r "$GNUPGHOME" "$T/gnupg-nobody" && chown -R nobody "$T/gnupg-nobody"
	setpriv --reuid=nobody --regid=nogroup --clear-groups env GNUPGHOME="$T/gnupg-nobody" \
		"$AGBUNDLE" create --models "$T/m" --sign-key "$KEY_FPR" --label 20261201 -o "$T/o" \
		>"$T/out" 2>"$T/err"
	rc=$?
	refused "an unreadable file (as nobody)" "$blob: it cannot be opened for reading"
else
	skip "an unreadable file: root without setpriv or user nobody"
fi

fresh
touch "$T/m/blobs/bad$(printf '\001')name"
attempt
refused "a file name with a control character" "its name cannot go into a bundle: its path contains a control character"

# --- killed half-way: the temporary file goes with it ---
fresh
head -c $((160 << 20)) /dev/urandom >"$T/m/blobs/large-unreferenced"
rm -rf "$T/o" && mkdir -p "$T/o"
"$AGBUNDLE" create --models "$T/m" --sign-key "$KEY_FPR" --label 20261201 -o "$T/o" --threads 1 \
	>/dev/null 2>&1 &
pid=$!
for _ in $(seq 200); do
	[ -n "$(ls -A "$T/o")" ] && break
	sleep 0.05
done
[ -n "$(ls -A "$T/o")" ]
ok $? "a run writes a temporary file in the output directory"
sleep 0.3
kill -TERM $pid
wait $pid
is "$?" 143 "SIGTERM ends it"
is "$(ls -A "$T/o")" "" "and nothing is left in the output directory"

# --- what a killed run (SIGKILL: no handler) left is removed by the next ---
need_flock=$(command -v flock)
fresh
rm -rf "$T/o" && mkdir -p "$T/o"
printf 'half' >"$T/o/.airgap-bundle-20261130.tar.gz.1a2b3c"
printf 'live' >"$T/o/.airgap-bundle-20261129.tar.gz.4d5e6f"
if [ -n "$need_flock" ]; then
	flock "$T/o/.airgap-bundle-20261129.tar.gz.4d5e6f" sleep 30 &
	holder=$!
	sleep 0.3
fi
"$AGBUNDLE" create --models "$T/m" --sign-key "$KEY_FPR" --label 20261201 -o "$T/o" >/dev/null 2>"$T/err"
ok $? "a run next to a stale temporary file" || cat "$T/err"
[ ! -e "$T/o/.airgap-bundle-20261130.tar.gz.1a2b3c" ]
ok $? "removes the temporary file no run holds"
if [ -n "$need_flock" ]; then
	[ -e "$T/o/.airgap-bundle-20261129.tar.gz.4d5e6f" ]
	ok $? "and keeps the one a live run holds locked"
	kill $holder 2>/dev/null
	wait $holder 2>/dev/null
else
	skip "flock(1) not installed"
fi

# --- a full output file system ---
if [ "$(id -u)" -eq 0 ] && mkdir -p "$T/small" && mount -t tmpfs -o size=256k tmpfs "$T/small" 2>/dev/null; then
	_mounts+=("$T/small")
	fresh
	run_fail "$AGBUNDLE" create --models "$T/m" --sign-key "$KEY_FPR" --label 20261201 -o "$T/small"
	is "$rc" 4 "a full output file system is an I/O error (exit 4)"
	grep -q "writing it failed (No space left on device)" "$T/err"
	ok $? "saying so" || cat "$T/err"
	is "$(ls -A "$T/small")" "" "and nothing is left there"
	umount "$T/small"
else
	skip "a full output file system: needs root to mount a small tmpfs"
fi

# --- keys that cannot sign ---
fresh
mkdir -p "$T/pubonly" && chmod 700 "$T/pubonly"
GNUPGHOME=$T/pubonly gpg --batch --quiet --import "$T/pubkey.asc" 2>/dev/null
attempt --homedir "$T/pubonly"
refused "a key with no secret part" "$KEY_FPR: the key $KEY_FPR has no secret key"
attempt --sign-key 0000000000000000000000000000000000000000
refused "an unknown key" "has no secret key"
gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
	--quick-gen-key "Encrypt Only <enc@example.invalid>" ed25519 cert 0 2>/dev/null
CERT_FPR=$(gpg --batch --with-colons --list-keys "Encrypt Only" 2>/dev/null | awk -F: '/^fpr/ {print $10; exit}')
attempt --sign-key "$CERT_FPR"
refused "a certify-only key" "cannot sign"

# --- usage ---
fresh
run_fail "$AGBUNDLE" create --models "$T/m" --sign-key "$KEY_FPR" --label 20261201
is "$rc" 2 "no -o is a usage error"
run_fail "$AGBUNDLE" create --models "$T/nonexistent" --sign-key "$KEY_FPR" -o "$T/o"
is "$rc" 2 "a missing models directory is a usage error"
run_fail "$AGBUNDLE" create --models "$T/m" --sign-key "$KEY_FPR" -o "$T/nonexistent"
is "$rc" 2 "a missing output directory is a usage error"
mkdir -p "$T/notollama"
run_fail "$AGBUNDLE" create --models "$T/notollama" --sign-key "$KEY_FPR" -o "$T/o"
is "$rc" 1 "a directory without manifests/ and blobs/ is refused"
grep -q "not an Ollama models directory" "$T/err"
ok $? "saying so"
run_fail "$AGBUNDLE" frobnicate
is "$rc" 2 "an unknown command is a usage error"
run_fail "$AGBUNDLE" verify "$T/o/x.tar.gz"
is "$rc" 2 "verify without --keyring is a usage error"

# last: it expires the test key
fresh
gpg --batch --quiet --yes --pinentry-mode loopback --passphrase '' \
	--quick-set-expire "$KEY_FPR" seconds=1 2>/dev/null
sleep 2
attempt
refused "an expired key" "has expired"

done_testing
