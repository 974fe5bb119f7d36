/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the archive reader's member stream (libarchive fed from a
 * memory file: every compression filter, tar header, sparse map and path
 * check), then the whole verification of what it read, without a store or
 * keyring (--no-signature, dry run): bundle.json, the .sha256 lists, the
 * models hash, the Ollama tree, manifests.  Nothing may crash, leak or
 * accept a member path that is not in normal form.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "importer/import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_members(const struct imp_source *src)
{
	for (size_t i = 0; i < src->n; i++) {
		const char *p = src->m[i].path, *why;
		char *norm = NULL;
		if (imp_tarpath_check(p, strlen(p), &norm, &why) != 0 || strcmp(norm, p) != 0)
			abort(); /* a member path that is not in normal form got in */
		free(norm);
		if (src->m[i].stage || src->m[i].spooled)
			abort(); /* a dry run stages nothing */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imp_read rd = {.dry_run = true};
	struct imp_options o = {.no_signature = true, .dry_run = true, .transfer_fd = -1};
	struct imp_source src;
	struct imp_result res;
	struct imp_error e;
	int fd = memfd_create("fuzz-archive", MFD_CLOEXEC);

	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size || lseek(fd, 0, SEEK_SET) != 0) {
		close(fd);
		return 0;
	}
	memset(&src, 0, sizeof(src));
	memset(&res, 0, sizeof(res));
	memset(&e, 0, sizeof(e));
	src.name = strdup("fuzz.tar");
	if (src.name && imp_read_archive(fd, &rd, &src, &e) == 0) {
		if (imp_verify_source(&src, &o, NULL, NULL, &res, &e) == 0 && !res.report)
			abort(); /* verified, so it has a report */
		if (src.sorted)
			check_members(&src);
	}
	imp_result_free(&res);
	imp_source_free(&src);
	close(fd);
	return 0;
}
