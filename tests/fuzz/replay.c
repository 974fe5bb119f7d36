/* SPDX-License-Identifier: Apache-2.0 */
/* Replays saved fuzz inputs through a fuzz target without libFuzzer (make check). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		if (!f) {
			perror(argv[i]);
			return 2;
		}
		uint8_t *buf = NULL;
		size_t len = 0, cap = 0, n;
		do {
			if (len == cap) {
				cap = cap ? cap * 2 : 4096;
				uint8_t *nb = realloc(buf, cap);
				if (!nb)
					return 2;
				buf = nb;
			}
			n = fread(buf + len, 1, cap - len, f);
			len += n;
		} while (n > 0);
		fclose(f);
		LLVMFuzzerTestOneInput(buf, len);
		free(buf);
	}
	return 0;
}
