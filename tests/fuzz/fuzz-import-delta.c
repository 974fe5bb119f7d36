/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: a bundle.json's "delta" object (importer/delta.c).  With no
 * store every omitted blob is missing, so a delta is accepted only when it
 * omits nothing; without a store to check against (agbundle verify) an
 * accepted delta omits exactly what it lists; a listed blob the bundle
 * carries is always refused. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "importer/import.h"

#define CARRIED "1111111111111111111111111111111111111111111111111111111111111111"

static void check(const uint8_t *data, size_t size, bool storeless)
{
	struct imp_source src = {0};
	struct imp_result res = {0};
	struct imp_error e = {0};
	const char *why;
	ag_digest carried;

	if (imp_bundle_json_parse((const char *)data, size, &res.bundle, &why) != 0)
		return;
	res.has_bundle = true;
	if (!imp_member_add(&src, "models/models/blobs/sha256-" CARRIED))
		abort();
	if (storeless && imp_delta_allow_storeless(&src) != 0)
		abort();
	int r = imp_delta_check(&src, NULL, &res, &e);
	json_t *delta = json_object_get(res.bundle.raw, "delta");
	json_t *om = json_object_get(delta, "omitted_blobs");
	if (r == 0 && delta && !storeless && json_array_size(om) != 0)
		abort(); /* no store: nothing omitted can be there */
	if (r < 0 && e.cls == IMP_OK)
		abort(); /* every refusal says why */
	ag_digest_parse(CARRIED, 64, &carried);
	if (r == 0 && imp_delta_omits(&src, &carried, 0) && storeless)
		abort(); /* a carried blob listed as omitted is refused */
	if (r == 0 && !delta && imp_delta_report(&src))
		abort();
	imp_result_free(&res);
	imp_source_free(&src);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check(data, size, false);
	check(data, size, true);
	return 0;
}
