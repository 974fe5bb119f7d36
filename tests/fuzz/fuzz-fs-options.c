/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: agfs's -o option parser and size parser (what fstab hands us). */
#include <stdint.h>
#include <string.h>

#include "fs/agfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fs_options o;
	char *bad = NULL;
	fs_options_init(&o);
	if (fs_options_parse(&o, (const char *)data, size, &bad) == 0) {
		if (o.threads < 1 || o.threads > FS_MAX_THREADS || o.cache < FS_MIN_CACHE)
			__builtin_trap();
		(void)fs_max_read(&o);
	}
	fs_options_clear(&o);
	free(bad);
	char buf[64];
	size_t n = size < sizeof(buf) - 1 ? size : sizeof(buf) - 1;
	memcpy(buf, data, n);
	buf[n] = '\0';
	uint64_t v;
	(void)fs_parse_size(buf, &v);
	return 0;
}
