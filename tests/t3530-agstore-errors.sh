#!/bin/bash
# shellcheck disable=SC2154 # $rc is set by run_fail (tests/lib.sh)
# SPDX-License-Identifier: Apache-2.0
# agstore's errors say what to do next (issue 14): no store yet (how to make
# one: agstore init, agimport, --store, AGFS_STORE), not allowed (run as root
# or as the store's owner), an unknown model or tag (the models that exist).
. "$(dirname "$0")/lib.sh"
. "$TESTS_DIR/lib-tools.sh"
need_agstore

run_fail "$AGSTORE" --store "$T/none" status
is "$rc" 1 "status of a store that does not exist: exit 1"
grep -q "^agstore: $T/none is not an agfs store (it does not exist): create one with \`agstore --store $T/none init\` or by importing a bundle with \`agimport --store $T/none\`, or name an existing store with --store DIR or AGFS_STORE.$" "$T/err"
ok $? "the message says how to create a store and how to name one" || sed 's/^/# /' "$T/err"
mkdir "$T/plain"
run_fail env AGFS_STORE="$T/plain" "$AGSTORE" ls
is "$rc" 1 "a directory that is not a store: exit 1"
grep -q "$T/plain is not an agfs store: create one with" "$T/err"
ok $? "and the same advice" || sed 's/^/# /' "$T/err"

S=$T/store
tools_model "$T/t" registry.ollama.ai/library/alpha/latest 3000 >/dev/null
tools_model "$T/t" registry.ollama.ai/library/alpha/7b 3000 >/dev/null
tools_gen "$S" "$T/t" >/dev/null || bail "cannot make a generation"
run_fail "$AGSTORE" --store "$S" show alpha:13b
is "$rc" 1 "show of a tag that does not exist: exit 1"
grep -q "has no model alpha:13b (it has: alpha:7b, alpha:latest)" "$T/err"
ok $? "show lists the models and tags that exist" || sed 's/^/# /' "$T/err"
run_fail "$AGSTORE" --store "$S" rm alpha:13b
is "$rc" 1 "rm of a tag that does not exist: exit 1"
grep -q "has no model alpha:13b (it has: alpha:7b, alpha:latest)" "$T/err"
ok $? "rm lists the models and tags that exist" || sed 's/^/# /' "$T/err"

if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null; then
	skip "running agstore as another user needs root and setpriv"
else
	chmod 755 "$T"
	run_fail setpriv --reuid=65534 --regid=65534 --clear-groups "$AGSTORE" --store "$S" activate 1
	[ "$rc" -ne 0 ] && grep -q "(run as root, or as the store's owner)" "$T/err"
	ok $? "a user who may not write the store is told to run as root or as its owner" ||
		sed 's/^/# /' "$T/err"
fi

done_testing
