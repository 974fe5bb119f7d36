#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Rules of the source that a reviewer could miss:
# - every JSON input is parsed with ag_json_loadb/ag_json_loads
#   (store/json.c), which tell "no memory" from "not JSON" and keep
#   jansson's lexer from copying past a string it could not save when memory
#   runs out; a direct json_load* call would bring both back.
. "$(dirname "$0")/lib.sh"
cd "$TESTS_DIR/.." || bail "cannot find the source tree"
[ -f store/json.c ] || skip_all "not a source tree"

direct=$(grep -nE '(^|[^_[:alnum:]])json_load(b|s|f|d|_file|_callback)[[:space:]]*\(' \
	store/*.c importer/*.c fs/*.c tools/*.c sig/*.c oci/*.c bundler/*.c | grep -v '^store/json\.c:')
is "$direct" "" "no JSON is parsed outside store/json.c's ag_json_load*"
grep -q 'json_set_alloc_funcs(json_malloc, free)' store/json.c
ok $? "store/json.c routes jansson's allocations through its counter"

done_testing
