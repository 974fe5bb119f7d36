/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: tar member path check; an accepted path is already normal and
 * never climbs out of the bundle. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "importer/import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *norm = NULL, *again = NULL;
	const char *why;

	if (imp_tarpath_check((const char *)data, size, &norm, &why) != 0)
		return 0;
	if (norm[0] == '/' || strstr(norm, "//") || !strcmp(norm, "..") ||
	    !strncmp(norm, "../", 3) || strstr(norm, "/../") ||
	    (strlen(norm) >= 3 && !strcmp(norm + strlen(norm) - 3, "/..")))
		abort();
	if (imp_tarpath_check(norm, strlen(norm), &again, &why) != 0 || strcmp(norm, again))
		abort();
	free(again);
	free(norm);
	return 0;
}
