/* SPDX-License-Identifier: Apache-2.0 */
/* The importer's pure parsers: tar member paths, .sha256 lists, bundle.json,
 * Ollama manifests, and the anti-rollback label order. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "importer/import.h"
#include "tests/tap.h"

#define S(lit) lit, sizeof(lit) - 1

static void path_ok(const char *in, const char *want)
{
	char *norm = NULL;
	const char *why;
	int r = imp_tarpath_check(in, strlen(in), &norm, &why);
	ok(r == 0 && !strcmp(norm, want), "path '%s' -> '%s' (got '%s')", in, want,
	   norm ? norm : "-");
	free(norm);
}

static void path_bad(const char *in, size_t len, const char *want_why)
{
	char *norm = NULL;
	const char *why = NULL;
	int r = imp_tarpath_check(in, len, &norm, &why);
	ok(r == -EINVAL && !norm && why && strstr(why, want_why), "a path is refused: %s (want %s)",
	   why ? why : "-", want_why);
}

static void test_paths(void)
{
	path_ok("models/models/blobs/x", "models/models/blobs/x");
	path_ok("./binaries/", "binaries");
	path_ok("a//b/./c", "a/b/c");
	path_ok("..a/b..", "..a/b..");
	path_bad(S("/etc/passwd"), "absolute");
	path_bad(S("../x"), "\"..\"");
	path_bad(S("a/../../x"), "\"..\"");
	path_bad(S("a/.."), "\"..\"");
	path_bad(S("a\nb"), "control");
	path_bad(S("a\0b"), "NUL");
	path_bad(S(""), "empty");
	path_bad(S("./"), "bundle root");
	char deep[400] = "";
	for (int i = 0; i < 70; i++)
		strcat(deep, "d/");
	path_bad(deep, strlen(deep), "too deep");
	char *longp = malloc(IMP_MAX_PATH + 2);
	memset(longp, 'a', IMP_MAX_PATH + 1);
	path_bad(longp, IMP_MAX_PATH + 1, "too long");
	free(longp);
}

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"

static void test_sumlist(void)
{
	struct imp_sumlist l;
	size_t bad;
	static const char text[] =
		HEX_A "  binaries/ollama\n" HEX_B " *models/models/blobs/sha256-x\n"
		      "\n\\" HEX_A "  we\\\\ird\\nname\n";
	is_int(imp_sumlist_parse(text, sizeof(text) - 1, &l, &bad), 0, "a GNU list parses");
	is_int(l.n, 3, "three lines (the empty one skipped)");
	ok(!strcmp(l.lines[0].path, "binaries/ollama") && !l.lines[0].binary, "text-mode line");
	ok(!strcmp(l.lines[1].path, "models/models/blobs/sha256-x") && l.lines[1].binary,
	   "binary-mode line");
	ok(l.lines[1].digest.b[0] == 0xbb, "upper-case hex accepted");
	ok(!strcmp(l.lines[2].path, "we\\ird\nname"), "escaped name unescaped");
	is_int(l.lines[2].lineno, 4, "line numbers count the empty line");
	imp_sumlist_free(&l);

	static const char bad1[] = HEX_A "  ok\nxyz  file\n";
	is_int(imp_sumlist_parse(bad1, sizeof(bad1) - 1, &l, &bad), -EINVAL, "a bad line refuses");
	is_int(bad, 2, "and names line 2");
	static const char bad2[] = HEX_A "\tfile\n";
	is_int(imp_sumlist_parse(bad2, sizeof(bad2) - 1, &l, &bad), -EINVAL,
	       "a tab separator refuses");
	static const char bad3[] = "\\" HEX_A "  a\\qb\n";
	is_int(imp_sumlist_parse(bad3, sizeof(bad3) - 1, &l, &bad), -EINVAL,
	       "a bad escape refuses");

	ag_digest d;
	memset(&d, 0xaa, sizeof(d));
	char *line = imp_sumline_format(&d, "models/x");
	ok(line && !strcmp(line, HEX_A "  models/x\n"), "format: text mode");
	free(line);
	line = imp_sumline_format(&d, "a\\b");
	ok(line && !strcmp(line, "\\" HEX_A "  a\\\\b\n"), "format: escaped like GNU");
	free(line);
}

static void test_bundle_json(void)
{
	struct imp_bundle_json b;
	const char *why;
	static const char good[] =
		"{\n  \"bundle_version\": \"20260423\",            # date +%Y%m%d\n"
		"  \"creator\": \"alice # not a comment\",\n"
		"  \"artifacts\": {\"ollama_binary\": \"" HEX_A "\",\n"
		"    \"models_directory_hash\": \"" HEX_B "\"}\n}\n";
	is_int(imp_bundle_json_parse(good, sizeof(good) - 1, &b, &why), 0,
	       "bundle.json with a here-doc comment parses");
	ok(b.bundle_version && !strcmp(b.bundle_version, "20260423"), "bundle_version");
	ok(b.creator && !strcmp(b.creator, "alice # not a comment"), "a # inside a string is kept");
	ok(b.has_models_hash && b.models_hash.b[31] == 0xbb, "models_directory_hash");
	ok(b.nartifacts == 1 && !strcmp(b.artifacts[0].key, "ollama_binary"), "one artifact");
	imp_bundle_json_free(&b);

	static const char *const bad[] = {
		"",
		"[]",
		"{\"artifacts\":{}}",
		"{\"bundle_version\":\"../x\",\"artifacts\":{}}",
		"{\"bundle_version\":\"1\",\"artifacts\":[]}",
		"{\"bundle_version\":\"1\",\"artifacts\":{\"a\":\"zz\"}}",
		"{\"bundle_version\":\"1\",\"bundle_version\":\"2\",\"artifacts\":{}}",
		"{\"bundle_version\":1,\"artifacts\":{}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		int r = imp_bundle_json_parse(bad[i], strlen(bad[i]), &b, &why);
		ok(r == -EINVAL, "bundle.json '%s' refused (%s)", bad[i], r ? why : "accepted");
	}
}

#define MAN(cfg_mt, layers)                                                                       \
	"{\"schemaVersion\":2,\"mediaType\":\"application/"                                       \
	"vnd.docker.distribution.manifest.v2+json\","                                             \
	"\"config\":{\"mediaType\":\"" cfg_mt "\",\"digest\":\"sha256:" HEX_A "\",\"size\":561}," \
	"\"layers\":[" layers "]}"
#define LAYER(mt, size) \
	"{\"mediaType\":\"" mt "\",\"digest\":\"sha256:" HEX_B "\",\"size\":" size "}"
#define DOCKER_CFG "application/vnd.docker.container.image.v1+json"

static void man_bad(const char *doc, const char *want)
{
	ag_model m = {0};
	const char *why = NULL;
	int r = imp_manifest_parse(doc, strlen(doc), &m, &why);
	ok(r == -EINVAL && why && strstr(why, want), "manifest refused: %s", why ? why : "-");
}

static void test_manifest(void)
{
	ag_model m = {0};
	const char *why;
	static const char good[] =
		MAN(DOCKER_CFG, LAYER("application/vnd.ollama.image.model", "2019377376") "," LAYER(
					"application/vnd.ollama.image.license", "7711"));

	is_int(imp_manifest_parse(good, sizeof(good) - 1, &m, &why), 0,
	       "an Ollama manifest parses");
	is_int(m.nlayers, 2, "two layers");
	ok(m.config.size == 561 && m.config.digest.b[0] == 0xaa, "config digest and size");
	ok(m.layers[0].size == 2019377376ull &&
		   !strcmp(m.layers[0].media_type, "application/vnd.ollama.image.model"),
	   "layer media type and size");
	free(m.config.media_type);
	for (size_t i = 0; i < m.nlayers; i++)
		free(m.layers[i].media_type);
	free(m.layers);

	man_bad("{\"schemaVersion\":1}", "schemaVersion");
	man_bad("{", "valid JSON");
	man_bad(MAN("text/plain", ""), "config has an unknown media type");
	man_bad(MAN(DOCKER_CFG, LAYER("text/html", "1")), "unknown media type");
	man_bad(MAN(DOCKER_CFG, LAYER("application/vnd.ollama.image.model", "-1")), "malformed");
	man_bad("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" DOCKER_CFG
		"\",\"digest\":\"sha256:abc\",\"size\":1},\"layers\":[]}",
		"digest");
	man_bad("{\"schemaVersion\":2,\"mediaType\":\"x\",\"layers\":[]}", "mediaType");
	man_bad("{\"schemaVersion\":2,\"layers\":{}}", "layers");
}

static void test_labels(void)
{
	ok(imp_label_cmp("20260101", "20260423") < 0, "an older date is older");
	ok(imp_label_cmp("20260423", "20260423") == 0, "the same date is not older");
	ok(imp_label_cmp("020260424", "20260423") > 0, "numbers compare as numbers");
	ok(imp_label_cmp("20260423.2", "20260423.10") < 0, "versions compare as versions");
	ok(imp_label_cmp("20260101", "ollama-20261129T000000Z") == 0,
	   "a non-version label is not compared");
}

/* "files" (contract 6): paths in normal form, hex values, sorted. */
static void test_files(void)
{
	struct imp_bundle_json b;
	const char *why = NULL;
	static const char doc[] = "{\"bundle_version\": \"20260501\", \"artifacts\": {},"
				  " \"files\": {\"packages/b.deb\": \"" HEX_A "\","
				  " \"binaries/a\": \"" HEX_A "\"}}";
	int r = imp_bundle_json_parse(doc, strlen(doc), &b, &why);

	ok(r == 0 && b.has_files && b.nfiles == 2, "a files map is parsed (%s)", r ? why : "ok");
	ok(r == 0 && !strcmp(b.files[0].path, "binaries/a") &&
		   !strcmp(b.files[1].path, "packages/b.deb"),
	   "and sorted by path");
	if (r == 0)
		imp_bundle_json_free(&b);
	static const char *const bad[] = {
		"{\"bundle_version\": \"1\", \"artifacts\": {}, \"files\": {\"./a\": \"" HEX_A
		"\"}}",
		"{\"bundle_version\": \"1\", \"artifacts\": {}, \"files\": {\"a/../b\": \"" HEX_A
		"\"}}",
		"{\"bundle_version\": \"1\", \"artifacts\": {}, \"files\": {\"/a\": \"" HEX_A
		"\"}}",
		"{\"bundle_version\": \"1\", \"artifacts\": {}, \"files\": {\"a\": \"xyz\"}}",
		"{\"bundle_version\": \"1\", \"artifacts\": {}, \"files\": []}",
		"{\"bundle_version\": \"1\", \"artifacts\": {}, \"files\": "
		"{\"manifest/bundle.json\": \"" HEX_A "\"}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = imp_bundle_json_parse(bad[i], strlen(bad[i]), &b, &why);
		ok(r == -EINVAL, "files entry refused: %s (%s)", bad[i], r ? why : "accepted");
	}
}

static void test_pgp(void)
{
	static const char armored[] = "\n-----BEGIN PGP SIGNATURE-----\n\niHUEABYKAB0W\n";
	static const char binary_old[] = {(char)0x88, 0x75, 0x04};
	static const char binary_new[] = {(char)0xc2, 0x75, 0x04};

	ok(imp_is_pgp_signature(armored, strlen(armored)), "an armored signature is one");
	ok(imp_is_pgp_signature(binary_old, 3), "an old-format signature packet is one");
	ok(imp_is_pgp_signature(binary_new, 3), "a new-format signature packet is one");
	ok(!imp_is_pgp_signature("{\"schemaVersion\":2}", 18), "a manifest is not one");
	ok(!imp_is_pgp_signature("", 0), "nothing is not one");
	ok(imp_version_like("20260423") && !imp_version_like("ollama-2026") &&
		   !imp_version_like(NULL),
	   "what looks like a bundle_version");
}

/* The refusal record: the first failure wins; memory running out is never a
 * refusal or a usage error, whatever the failing step would call it. */
static void test_fail(void)
{
	struct imp_error e = {0};

	ok(imp_fail(&e, IMP_REFUSED, -EINVAL, "a\nb", "bad %d", 7) == -EINVAL &&
		   e.cls == IMP_REFUSED && !strcmp(e.member, "a?b") && !strcmp(e.reason, "bad 7"),
	   "a refusal is recorded, its member made printable");
	ok(imp_fail(&e, IMP_IO, -EIO, "c", "later") == -EIO && e.cls == IMP_REFUSED &&
		   !strcmp(e.member, "a?b"),
	   "a later failure does not replace the first");
	memset(&e, 0, sizeof(e));
	ok(imp_fail(&e, IMP_REFUSED, -ENOMEM, "m.json", "it is malformed: %s", "x") == -ENOMEM &&
		   e.cls == IMP_IO && !strcmp(e.reason, "out of memory") &&
		   !strcmp(e.member, "m.json"),
	   "-ENOMEM given as a refusal is recorded as 'could not', out of memory");
	memset(&e, 0, sizeof(e));
	ok(imp_fail(&e, IMP_USAGE, -ENOMEM, "--sign-key", "why") == -ENOMEM && e.cls == IMP_IO,
	   "-ENOMEM given as a usage error is recorded as 'could not'");
	memset(&e, 0, sizeof(e));
	ok(imp_fail(&e, IMP_IO, -ENOMEM, "", "out of memory (%s)", "zstd") == -ENOMEM &&
		   e.cls == IMP_IO && !strcmp(e.reason, "out of memory (zstd)"),
	   "-ENOMEM given as 'could not' keeps its own words");
}

int main(void)
{
	test_fail();
	test_files();
	test_pgp();
	test_paths();
	test_sumlist();
	test_bundle_json();
	test_manifest();
	test_labels();
	return done_testing();
}
