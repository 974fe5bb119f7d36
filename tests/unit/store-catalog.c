/* SPDX-License-Identifier: Apache-2.0 */
/* The catalog's canonical encoding: round trips, the exact bytes, and every
 * non-canonical or inconsistent form refused. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store/catalog.h"
#include "tests/tap.h"

static ag_digest dig(int n)
{
	ag_digest d;
	memset(d.b, 0, sizeof(d.b));
	d.b[0] = (uint8_t)n;
	d.b[31] = (uint8_t)(0xa0 + n);
	return d;
}

#define Z60  "000000000000000000000000000000000000000000000000000000000000"
#define H(n) "0" #n Z60 "a" #n

/* The expected bytes of sample(): written out by hand from the format in
 * store/catalog.h, so a change of encoding fails here first. */
static const char expected[] =
	"{\"blobs\":{"
	"\"" H(1) "\":{\"fsverity\":\"" H(
		5) "\",\"size\":10},"
		   "\"" H(2) "\":{\"fsverity\":\"" H(
			   6) "\",\"size\":20},"
			      "\"" H(3) "\":{\"fsverity\":\"" H(
				      7) "\",\"size\":0}},"
					 "\"bundle\":{\"files\":{\"manifest/bundle.json\":\"" H(
						 3) "\"},"
						    "\"sha256\":\"" H(
							    9) "\"},"
							       "\"catalog\":1,\"created\":\"2026-"
							       "12-01T00:00:00Z\",\"generation\":3,"
							       "\"label\":\"20261201\","
							       "\"models\":{\"registry.ollama.ai/"
							       "library/tiny/latest\":\"" H(
								       1) "\"},"
									  "\"parent\":\"" H(
										  8) "\","
										     "\"serial\":"
										     "7}";

static void sample(struct ag_catalog *c)
{
	static struct ag_catalog_blob blobs[3];
	static struct ag_catalog_entry models[1], files[1];
	/* Deliberately unsorted: ag_catalog_sort puts them in order. */
	blobs[0] = (struct ag_catalog_blob){dig(3), 0, dig(7)};
	blobs[1] = (struct ag_catalog_blob){dig(1), 10, dig(5)};
	blobs[2] = (struct ag_catalog_blob){dig(2), 20, dig(6)};
	models[0] =
		(struct ag_catalog_entry){(char *)"registry.ollama.ai/library/tiny/latest", dig(1)};
	files[0] = (struct ag_catalog_entry){(char *)"manifest/bundle.json", dig(3)};
	*c = (struct ag_catalog){.generation = 3,
				 .serial = 7,
				 .has_parent = true,
				 .parent = dig(8),
				 .created = (char *)"2026-12-01T00:00:00Z",
				 .label = (char *)"20261201",
				 .nmodels = 1,
				 .models = models,
				 .nblobs = 3,
				 .blobs = blobs,
				 .has_bundle = true,
				 .has_bundle_sha256 = true,
				 .bundle_sha256 = dig(9),
				 .nfiles = 1,
				 .files = files};
	ag_catalog_sort(c);
}

static int parse_str(const char *s, const char **why)
{
	struct ag_catalog c;
	int rc = ag_catalog_parse(s, strlen(s), &c, why);
	ag_catalog_clear(&c);
	return rc;
}

/* expected with the first occurrence of from replaced by to */
static char *edit(const char *from, const char *to)
{
	const char *at = strstr(expected, from);
	if (!at)
		bail("test bug: %s is not in the expected catalog", from);
	size_t n = strlen(expected) - strlen(from) + strlen(to) + 1;
	char *s = malloc(n);
	snprintf(s, n, "%.*s%s%s", (int)(at - expected), expected, to, at + strlen(from));
	return s;
}

int main(void)
{
	struct ag_catalog c, back;
	char *buf = NULL;
	size_t len = 0;
	sample(&c);
	is_int(ag_catalog_encode(&c, &buf, &len), 0, "a catalog encodes");
	ok(len == strlen(expected) && memcmp(buf, expected, len) == 0,
	   "the encoding is the canonical form, byte for byte");
	if (len != strlen(expected) || memcmp(buf, expected, len))
		diag("got %.*s", (int)len, buf);

	const char *why = NULL;
	is_int(ag_catalog_parse(buf, len, &back, &why), 0, "it parses back");
	ok(back.generation == 3 && back.serial == 7 && back.has_parent &&
		   ag_digest_eq(&back.parent, &c.parent) && !strcmp(back.label, "20261201") &&
		   back.nmodels == 1 && back.nblobs == 3 && back.nfiles == 1 &&
		   back.has_bundle_sha256 && ag_digest_eq(&back.bundle_sha256, &c.bundle_sha256),
	   "every field survives the round trip");
	ag_digest d2 = dig(2), d4 = dig(4);
	const struct ag_catalog_blob *b = ag_catalog_blob(&back, &d2);
	ok(b && b->size == 20 && ag_digest_eq(&b->fsverity, &c.blobs[1].fsverity),
	   "a blob is found by its digest");
	ok(!ag_catalog_blob(&back, &d4), "an unlisted digest is not found");
	char *again = NULL;
	size_t len2 = 0;
	ag_catalog_encode(&back, &again, &len2);
	ok(len2 == len && !memcmp(again, buf, len), "parse then encode gives the same bytes");
	free(again);
	ag_catalog_clear(&back);

	/* An unbundled generation (an --ollama-dir import): bundle is null. */
	struct ag_catalog plain = c;
	plain.has_bundle = false, plain.has_bundle_sha256 = false, plain.nfiles = 0;
	plain.has_parent = false, plain.label = NULL;
	char *pbuf = NULL;
	size_t plen = 0;
	is_int(ag_catalog_encode(&plain, &pbuf, &plen), 0, "a catalog without a bundle encodes");
	ok(pbuf && strstr(pbuf, "\"bundle\":null") && strstr(pbuf, "\"parent\":null") &&
		   strstr(pbuf, "\"label\":null"),
	   "absent bundle, parent and label are null");
	is_int(ag_catalog_parse(pbuf, plen, &back, NULL), 0, "and it parses back");
	ok(!back.has_bundle && !back.has_parent && !back.label, "as absent");
	ag_catalog_clear(&back);
	free(pbuf);

	/* Inconsistent catalogs are not encoded. */
	struct ag_catalog bad = c;
	struct ag_catalog_entry orphan = {(char *)"registry.ollama.ai/library/x/y", dig(4)};
	bad.models = &orphan;
	is_int(ag_catalog_encode(&bad, &pbuf, &plen), -EINVAL,
	       "a model whose manifest is not a listed blob is refused");
	bad = c;
	bad.created = NULL;
	is_int(ag_catalog_encode(&bad, &pbuf, &plen), -EINVAL,
	       "a catalog without a time is refused");

	/* Everything but the canonical bytes is refused. */
	struct {
		char *text;
		const char *what;
	} refused[] = {
		{edit("{\"blobs\"", "{ \"blobs\""), "white space"},
		{edit("\"catalog\":1,", "\"catalog\":1,\"extra\":1,"), "an unknown field"},
		{edit("\"serial\":7", "\"serial\":7,\"serial\":8"), "a duplicate key"},
		{edit("\"catalog\":1", "\"catalog\":2"), "another catalog version"},
		{edit("\"size\":10", "\"size\":-10"), "a negative size"},
		{edit("\"size\":10", "\"size\":10.0"), "a real number"},
		{edit(H(1) "\":{", "01" Z60 "A1\":{"), "an upper-case digest"},
		{edit("\"label\":\"20261201\"", "\"label\":20261201"), "a label that is a number"},
		{edit("\"created\":\"2026-12-01T00:00:00Z\"", "\"created\":\"yesterday\""),
		 "a malformed time"},
		{edit("\"created\":\"2026-12-01T00:00:00Z\"",
		      "\"created\":\"2026-02-31T00:00:00Z\""),
		 "a time of the right shape on a day that does not exist (31 February)"},
		{edit("manifest/bundle.json", "../bundle.json"), "a bundle path with .."},
		{edit("registry.ollama.ai/library/tiny/latest", "tiny:latest"),
		 "a model name not in path form"},
		{edit("\"models\":{\"registry.ollama.ai/library/tiny/latest\":\"" H(1),
		      "\"models\":{\"registry.ollama.ai/library/tiny/latest\":\"" H(4)),
		 "a manifest that is not a listed blob"},
		{edit("\"serial\":7}", "\"serial\":7} "), "trailing bytes"},
		{edit("\"blobs\":{\"" H(1) "\":{\"fsverity\":\"" H(5) "\",\"size\":10},",
		      "\"blobs\":{\"" H(2) "\":{\"fsverity\":\"" H(6) "\",\"size\":20},\"" H(
			      1) "\":{\"fsverity\":\"" H(5) "\",\"size\":10},"),
		 "blobs out of order (and twice)"},
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		why = NULL;
		int rc = parse_str(refused[i].text, &why);
		ok(rc == -AG_ECORRUPT && why, "refused: %s (%s)", refused[i].what,
		   why ? why : "no reason");
		free(refused[i].text);
	}
	is_int(parse_str("", &why), -AG_ECORRUPT, "refused: empty input");
	is_int(parse_str("[]", &why), -AG_ECORRUPT, "refused: not an object");
	free(buf);
	return done_testing();
}
