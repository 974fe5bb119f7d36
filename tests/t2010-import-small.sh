#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Issue 13: small members (up to 1 MiB) are staged in a file of their own as
# they are read, on the stager thread, and parked (no descriptor held) until
# they are published; once the parked stages hold 64 MiB of memory
# (IMP_PARKED_MAX: about 13,000 members with a one-block tree), the rest go
# to the one spool file and are staged when published.  An --ollama-dir of
# 16,000 small blobs, under `ulimit -n 256`, takes both paths (seen in the
# system calls: writes to the spool, an unnamed file in tmp/, for some
# members only), and every object must hold exactly its bytes, with the
# right digest and tree.
# A second import of the same tree finds every object (deduplication).
. "$(dirname "$0")/lib.sh"
need_cmd python3 strace
[ -x "$AGIMPORT" ] || skip_all "agimport not built"
[ -x "$AGSTORE" ] || skip_all "agstore not built"
strace -qq -o /dev/null true 2>/dev/null || skip_all "strace cannot trace here (ptrace not allowed)"

N=16000
TREE=$T/tree
# N blobs of 4200 bytes (two data blocks: a one-block tree each), listed by
# manifests of 4000 layers
python3 - "$TREE" "$N" <<'EOP'
import hashlib, json, os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(os.path.join(d, "blobs"))
def blob(data, mt):
    h = hashlib.sha256(data).hexdigest()
    open(os.path.join(d, "blobs", "sha256-" + h), "wb").write(data)
    return {"mediaType": mt, "digest": "sha256:" + h, "size": len(data)}
layers = []
for i in range(n):
    seed = hashlib.sha256(b"%d" % i).digest()
    layers.append(blob((seed * 132)[:4200], "application/vnd.ollama.image.model"))
for k in range(0, n, 4000):
    cfg = blob(b'{"model_format":"gguf","n":%d}' % k, "application/vnd.docker.container.image.v1+json")
    m = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "config": cfg, "layers": layers[k:k + 4000]}
    p = os.path.join(d, "manifests", "registry.ollama.ai", "library", "small", "p%d" % k)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    open(p, "w").write(json.dumps(m))
EOP
[ "$(find "$TREE/blobs" -type f | wc -l)" -eq $((N + 4)) ] || bail "the tree was not made"

# LeakSanitizer cannot run under ptrace (an ASan build): leaks are checked elsewhere
(
	ulimit -n 256
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		exec strace -f -y -qq -e trace=pwrite64 -o "$T/trace" \
		"$AGIMPORT" --store "$T/s" --ollama-dir "$TREE" --no-signature
) >"$T/out" 2>"$T/err"
ok $? "an --ollama-dir of $N small blobs imports with ulimit -n 256" || cat "$T/err"

# Each spooled member is one pwrite to the spool, an unnamed file in tmp/.
spooled=$(grep -c '^[0-9]* *pwrite64([0-9]*</[^>]*/tmp/#[0-9]*>(deleted)' "$T/trace")
diag "small members written to the spool: $spooled of $N"
[ "$spooled" -gt 0 ] && [ "$spooled" -lt $((N / 2)) ]
ok $? "most small members were staged as read, the rest spooled (the parked stages' bound)"

bad=$(python3 - "$TREE/blobs" "$T/s/objects/sha256" <<'EOP'
import os, sys
src, dst = sys.argv[1], sys.argv[2]
bad = 0
for name in os.listdir(src):
    h = name[7:]
    try:
        same = open(os.path.join(src, name), "rb").read() == open(os.path.join(dst, h[:2], h), "rb").read()
    except OSError:
        same = False
    bad += not same
print(bad)
EOP
)
is "$bad" 0 "every object holds exactly its blob's bytes"
"$AGSTORE" --store "$T/s" fsck >"$T/fsck" 2>&1
ok $? "fsck finds every digest and tree right" || tail -5 "$T/fsck"
is "$(find "$T/s/tmp" -mindepth 1 | wc -l)" 0 "nothing is left in tmp/"

"$AGIMPORT" --store "$T/s" --ollama-dir "$TREE" --no-signature --json >"$T/out2" 2>"$T/err"
ok $? "the same tree imports again" || cat "$T/err"
grep -q '"new_objects": *0[,}]' "$T/out2"
ok $? "the second import adds no object (every one deduplicated)" || head -c 600 "$T/out2"
is "$(find "$T/s/tmp" -mindepth 1 | wc -l)" 0 "nothing is left in tmp/ after deduplication"

done_testing
