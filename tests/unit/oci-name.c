/* SPDX-License-Identifier: Apache-2.0 */
/* oci/name.c and oci/index.c: repository names the distribution spec allows,
 * the generation index's encoding and its strict parse. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "oci/oci.h"
#include "tests/tap.h"

static void ref_is(const char *path, const char *repo, const char *tag)
{
	char *r = NULL, *t = NULL;
	int rc = oci_model_ref(path, &r, &t);

	ok(rc == 0 && strcmp(r, repo) == 0 && strcmp(t, tag) == 0, "%s -> %s:%s (got %s:%s)", path,
	   repo, tag, r ? r : "-", t ? t : "-");
	ok(rc == 0 && oci_repo_valid(r), "%s is a valid repository name", r ? r : "-");
	free(r);
	free(t);
}

static void mapping(void)
{
	char *r1 = NULL, *t1 = NULL, *r2 = NULL, *t2 = NULL;

	ref_is("registry.ollama.ai/library/llama3/8b",
	       "agfs/models/registry.ollama.ai/library/llama3", "8b");
	ref_is("hf.co/bartowski/gemma-2b-GGUF/Q4_K_M",
	       "agfs/models/hf.co/bartowski/gemma-2b-gguf-x555fe458", "Q4_K_M");
	int rc1 = oci_model_ref("host:5000/ns/m/latest", &r1, &t1);
	int rc2 = oci_model_ref("h/ns/Llama/latest", &r2, &t2);
	ok(rc1 == 0 && oci_repo_valid(r1) && strncmp(r1, "agfs/models/host-5000-x", 23) == 0,
	   "a host with a port maps to a valid component (%s)", r1 ? r1 : "-");
	ok(rc2 == 0 && oci_repo_valid(r2) && r1 && strcmp(r1, r2) != 0,
	   "upper case is mapped and tagged with a hash (%s)", r2 ? r2 : "-");
	free(r1), free(t1), free(r2), free(t2);
	r1 = r2 = t1 = t2 = NULL;
	ok(oci_model_ref("h/ns/llama/latest", &r1, &t1) == 0 &&
		   oci_model_ref("h/ns/Llama/latest", &r2, &t2) == 0 && strcmp(r1, r2) != 0,
	   "names differing in case get different repositories");
	free(r1), free(t1), free(r2), free(t2);
	ok(oci_model_ref("h/ns/m", &r1, &t1) < 0, "a name without four parts is refused");
	ok(!oci_repo_valid("a/B"), "upper case is not a valid repository");
	ok(!oci_repo_valid("a//b") && !oci_repo_valid("-a") && !oci_repo_valid("a-"),
	   "empty components and edge separators are not valid");
	ok(oci_repo_valid("a__b/c.d/e---f"), "'__', '.', runs of '-' are valid separators");
}

static void index_roundtrip(void)
{
	ag_gen g = {.id = 7, .created = 1700000000, .label = "20260101"};
	ag_model m = {.name = "registry.ollama.ai/library/tiny/latest", .manifest_size = 300};
	struct oci_index x;
	const char *why = NULL;
	char *buf = NULL, *bad;

	memset(m.manifest.b, 0xab, sizeof(m.manifest.b));
	g.nmodels = 1;
	g.models = &m;
	ok(oci_index_encode(&g, &buf) == 0, "the index encodes");
	ok(buf && oci_index_parse(buf, strlen(buf), &x, &why) == 0 && x.generation == 7 &&
		   x.nmodels == 1 && x.models[0].size == 300 &&
		   ag_digest_eq(&x.models[0].manifest, &m.manifest) &&
		   strcmp(x.label, "20260101") == 0,
	   "and parses back to the same generation");
	oci_index_clear(&x);
	bad = strdup(buf);
	char *p = strstr(bad, "agfs/models/registry.ollama.ai/library/tiny");
	if (p)
		memcpy(p + 12, "evil.example", 12);
	ok(oci_index_parse(bad, strlen(bad), &x, &why) < 0,
	   "a model pointing at another repository is refused (%s)", why ? why : "-");
	ok(oci_index_parse("{}", 2, &x, &why) < 0, "an empty object is not an index");
	ok(oci_index_parse("nonsense", 8, &x, &why) < 0, "nonsense is not an index");
	free(bad);
	free(buf);
}

static void open_checks(void)
{
	struct oci_opts o = {0};
	oci *c = NULL;

	ok(oci_open("https://127.0.0.1:5000/", &o, &c) == 0 &&
		   strcmp(oci_url(c), "https://127.0.0.1:5000") == 0,
	   "an https URL is accepted, its trailing slash dropped");
	oci_close(c);
	c = NULL;
	ok(oci_open("http://127.0.0.1:5000", &o, &c) == -EINVAL && strstr(oci_error(c), "insecure"),
	   "plain http needs insecure_http (%s)", c ? oci_error(c) : "-");
	oci_close(c);
	c = NULL;
	o.insecure_http = true;
	ok(oci_open("http://127.0.0.1:5000", &o, &c) == 0, "and is accepted with it");
	oci_close(c);
	c = NULL;
	ok(oci_open("ftp://h", &o, &c) == -EINVAL, "another scheme is refused");
	oci_close(c);
	c = NULL;
	ok(oci_open("https://h/v2/x", &o, &c) == -EINVAL, "a URL with a path is refused");
	oci_close(c);
	c = NULL;
	o.cert = "/nonexistent.crt";
	ok(oci_open("https://h", &o, &c) == -EINVAL, "a certificate without a key is refused");
	oci_close(c);
	c = NULL;
	o.cert = NULL;
	o.token_file = "/nonexistent/token";
	ok(oci_open("https://h", &o, &c) == -ENOENT && strstr(oci_error(c), "/nonexistent/token"),
	   "a missing token file is named (%s)", c ? oci_error(c) : "-");
	oci_close(c);
}

int main(void)
{
	mapping();
	index_roundtrip();
	open_checks();
	return done_testing();
}
