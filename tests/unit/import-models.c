/* SPDX-License-Identifier: Apache-2.0 */
/* models_directory_hash: recomputed over a member table in byte order, and
 * in a locale-style order when two files have the same content; the member
 * table refuses duplicates. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "importer/import.h"
#include "tests/tap.h"

static void add(struct imp_source *src, const char *path, uint8_t fill)
{
	struct imp_member *mb = imp_member_add(src, path);
	if (!mb)
		bail("out of memory");
	memset(&mb->digest, fill, sizeof(mb->digest));
}

/* SHA-256 of the concatenated sha256sum lines, in the order given. */
static void expect(const char *const *paths, const uint8_t *fills, size_t n, ag_digest *out)
{
	ag_hash *h = ag_hash_new();
	for (size_t i = 0; i < n; i++) {
		ag_digest d;
		memset(&d, fills[i], sizeof(d));
		char *line = imp_sumline_format(&d, paths[i]);
		ag_hash_update(h, line, strlen(line));
		free(line);
	}
	ag_hash_final(h, out);
	ag_hash_free(h);
}

static void test_byte_order(void)
{
	struct imp_source src = {0};
	static const char *const paths[] = {"models/models/blobs/a", "models/models/manifests/x",
					    "models/z"};
	static const uint8_t fills[] = {0x11, 0x22, 0x33};
	const char *order = NULL;
	ag_digest want;

	add(&src, "models/z", 0x33);
	add(&src, "binaries/ollama", 0x44); /* outside models/: not hashed */
	add(&src, "models/models/manifests/x", 0x22);
	add(&src, "models/models/blobs/a", 0x11);
	expect(paths, fills, 3, &want);
	is_int(imp_models_hash_check(&src, &want, &order), 0, "the lines sorted by digest match");
	ok(order && !strcmp(order, "byte order"), "in byte order");
	want.b[0] ^= 1;
	is_int(imp_models_hash_check(&src, &want, &order), -AG_EDIGEST, "another hash refuses");
	imp_source_free(&src);
}

static void test_locale_order(void)
{
	struct imp_source src = {0};
	/* Same content: the path breaks the tie.  Byte order puts "x-b" first
	 * ('-' < 'a'); a locale that ignores punctuation puts "xa" first. */
	static const char *const paths[] = {"models/xa", "models/x-b"};
	static const uint8_t fills[] = {0x55, 0x55};
	const char *order = NULL;
	ag_digest want;

	add(&src, "models/x-b", 0x55);
	add(&src, "models/xa", 0x55);
	expect(paths, fills, 2, &want);
	is_int(imp_models_hash_check(&src, &want, &order), 0, "a locale-sorted list matches");
	ok(order && !strcmp(order, "locale order"), "and is reported as locale order");
	imp_source_free(&src);
}

static void test_members(void)
{
	struct imp_source src = {0};
	struct imp_error e = {0};

	add(&src, "b", 1);
	add(&src, "a", 2);
	is_int(imp_members_seal(&src, &e), 0, "distinct members seal");
	ok(imp_member_find(&src, "a") && imp_member_find(&src, "a")->digest.b[0] == 2,
	   "members are found by path");
	ok(!imp_member_find(&src, "c"), "a missing member is not found");
	add(&src, "a", 3);
	is_int(imp_members_seal(&src, &e), -EEXIST, "a duplicate refuses");
	ok(!strcmp(e.member, "a") && strstr(e.reason, "twice"), "naming it: %s: %s", e.member,
	   e.reason);
	imp_source_free(&src);
}

int main(void)
{
	test_byte_order();
	test_locale_order();
	test_members();
	return done_testing();
}
