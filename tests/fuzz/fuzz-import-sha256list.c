/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: sha256sum list parser; every parsed line formats and parses
 * back to the same digest and name. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "importer/import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imp_sumlist l, l2;
	size_t bad;

	if (imp_sumlist_parse((const char *)data, size, &l, &bad) != 0)
		return 0;
	for (size_t i = 0; i < l.n; i++) {
		if (strchr(l.lines[i].path, '\0') != l.lines[i].path + strlen(l.lines[i].path))
			abort();
		char *line = imp_sumline_format(&l.lines[i].digest, l.lines[i].path);
		if (!line || imp_sumlist_parse(line, strlen(line), &l2, &bad) != 0 || l2.n != 1 ||
		    strcmp(l2.lines[0].path, l.lines[i].path) ||
		    !ag_digest_eq(&l2.lines[0].digest, &l.lines[i].digest))
			abort();
		imp_sumlist_free(&l2);
		free(line);
	}
	imp_sumlist_free(&l);
	return 0;
}
