#!/bin/bash
# Replays every fuzz target's saved corpus (make fuzz grows it; crashes found
# there are saved as corpus files so they stay fixed).
. "$(dirname "$0")/lib.sh"

shopt -s nullglob
targets=("$AGFS_BUILD"/tests/replay/fuzz-*)
[ ${#targets[@]} -gt 0 ] || skip_all "no fuzz targets built"
for t in "${targets[@]}"; do
	name=$(basename "$t")
	corpus=("$SRC_DIR/tests/fuzz/corpus/$name"/*)
	if [ ${#corpus[@]} -eq 0 ]; then
		fail "$name has a saved corpus"
		continue
	fi
	"$t" "${corpus[@]}" >"$T/out" 2>&1
	ok $? "$name replays ${#corpus[@]} saved inputs" || sed 's/^/# /' "$T/out" | tail -20
done
done_testing
