/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JSON input that tells "no memory" apart from "not JSON".
 *
 * jansson reports an allocation failure inside its parser as a plain parse
 * error (not always with json_error_out_of_memory), so a catalog, a
 * generation record, an audit line or a bundle.json read while memory ran
 * out would be called malformed: a verdict from a system error.  Its
 * allocations go through json_malloc below, which counts failures per
 * thread; a parse that failed while the count moved failed for memory.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "store/internal.h"

static __thread unsigned long json_alloc_failures;
/* Inside a parse, once an allocation failed every later one fails too.
 * jansson's lexer ignores a failure to grow the text it saves (lex_save in
 * 2.14), and then copies a string until the closing quote it never saved,
 * past both buffers (a crash seen here); or reads a number cut short.  Every
 * value it makes after that needs memory, so failing them all turns both
 * into a clean NULL. */
static __thread bool json_parsing, json_parse_failed;

static void *json_malloc(size_t n)
{
	void *p = json_parsing && json_parse_failed ? NULL : malloc(n);
	if (!p) {
		json_alloc_failures++;
		json_parse_failed = json_parsing;
	}
	return p;
}

__attribute__((constructor)) static void json_alloc_init(void)
{
	json_set_alloc_funcs(json_malloc, free);
}

unsigned long ag_json_alloc_failures(void)
{
	return json_alloc_failures;
}

json_t *ag_json_loadb(const void *buf, size_t len, size_t flags, json_error_t *err)
{
	unsigned long before = json_alloc_failures;
	json_parsing = true;
	json_parse_failed = false;
	json_t *o = json_loadb(buf, len, flags, err);
	json_parsing = false;
	if (!o)
		errno = json_alloc_failures != before ? ENOMEM : EINVAL;
	return o;
}

json_t *ag_json_loads(const char *s, size_t flags, json_error_t *err)
{
	unsigned long before = json_alloc_failures;
	json_parsing = true;
	json_parse_failed = false;
	json_t *o = json_loads(s, flags, err);
	json_parsing = false;
	if (!o)
		errno = json_alloc_failures != before ? ENOMEM : EINVAL;
	return o;
}
