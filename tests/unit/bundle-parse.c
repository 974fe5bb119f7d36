/* SPDX-License-Identifier: Apache-2.0 */
/* agbundle's small parsers: labels (YYYYMMDD, real dates, midnight UTC),
 * --sha256-file lines, and --since: a previous bundle.json's carried blobs
 * (its "files", its own delta's omissions), refusing one without "files". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bundler/bundle.h"
#include "tests/tap.h"

#define H1 "1111111111111111111111111111111111111111111111111111111111111111"
#define H2 "2222222222222222222222222222222222222222222222222222222222222222"
#define H3 "3333333333333333333333333333333333333333333333333333333333333333"
#define H4 "4444444444444444444444444444444444444444444444444444444444444444"

static char dir[] = "/tmp/agfs-unit-bundle.XXXXXX";

static const char *write_tmp(const char *name, const char *text)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (!(f = fopen(path, "w")) || fputs(text, f) < 0 || fclose(f) != 0)
		bail("cannot write %s", path);
	return path;
}

static void labels(void)
{
	int64_t t = 0;

	ok(bnd_label_time("20261201", &t) == 0 && t == 1796083200, "20261201 is its midnight UTC");
	ok(bnd_label_time("20240229", &t) == 0, "a leap day is a date");
	ok(bnd_label_time("20230229", &t) == -EINVAL, "29 February 2023 is not");
	ok(bnd_label_time("20261131", &t) == -EINVAL, "31 November is not");
	ok(bnd_label_time("2026120", &t) == -EINVAL, "seven digits are not");
	ok(bnd_label_time("2026-12-01", &t) == -EINVAL, "dashes are not");
}

static void sha256_files(void)
{
	ag_digest d, want;
	const char *p = write_tmp("sums", H1 "  airgap-bundle-20261130.tar.gz\n" H2
					     "  airgap-bundle-20261201.tar.gz\n");

	ag_digest_parse(H2, 64, &want);
	ok(bnd_read_sha256_file(p, "airgap-bundle-20261201.tar.gz", &d) == 0 &&
		   ag_digest_eq(&d, &want),
	   "the line naming the bundle is taken");
	ag_digest_parse(H1, 64, &want);
	ok(bnd_read_sha256_file(p, "other.tar.gz", &d) == 0 && ag_digest_eq(&d, &want),
	   "else the first line");
	p = write_tmp("junk", "not a hash\n");
	ok(bnd_read_sha256_file(p, NULL, &d) == -ENOENT, "a file without a hash line is refused");
}

static void since(void)
{
	struct bnd_delta *d = NULL;
	struct imp_error e = {0};
	ag_digest x;
	const char *p;

	p = write_tmp("prev.json",
		      "{\"bundle_version\": \"20261101\", \"artifacts\": {},\n"
		      " \"files\": {\"models/models/blobs/sha256-" H1 "\": \"" H1 "\",\n"
		      "  \"models/models/manifests/h/n/m/t\": \"" H2 "\",\n"
		      "  \"binaries/ollama-linux-amd64\": \"" H4 "\"},\n"
		      " \"delta\": {\"omitted_blobs\": [\"" H3 "\"]}}\n");
	ok(bnd_delta_load(p, &d, &e) == 0, "an agbundle bundle.json loads");
	ag_digest_parse(H1, 64, &x);
	ok(bnd_delta_has(d, &x), "a blob it carried counts");
	ag_digest_parse(H3, 64, &x);
	ok(bnd_delta_has(d, &x), "a blob it omitted itself counts");
	ag_digest_parse(H2, 64, &x);
	ok(!bnd_delta_has(d, &x), "a manifest does not");
	ag_digest_parse(H4, 64, &x);
	ok(!bnd_delta_has(d, &x), "a binary does not");
	struct bnd_set set = {0};
	struct bnd_member *m = bnd_add(&set, "models/models/blobs/sha256-" H1);
	ag_digest_parse(H1, 64, &m->name_digest);
	m->omitted = true;
	json_t *j = bnd_delta_json(d, &set);
	ok(j &&
		   !strcmp(json_string_value(json_object_get(j, "since_bundle_version")),
			   "20261101") &&
		   json_array_size(json_object_get(j, "omitted_blobs")) == 1 &&
		   !strcmp(json_string_value(
				   json_array_get(json_object_get(j, "omitted_blobs"), 0)),
			   H1),
	   "the delta object names the version and the omitted blob");
	json_decref(j);
	bnd_set_free(&set);
	bnd_delta_free(d);

	p = write_tmp("hand.json", "{\"bundle_version\": \"20261101\", \"artifacts\": {}}\n");
	d = NULL;
	ok(bnd_delta_load(p, &d, &e) < 0 && !d && strstr(e.reason, "no \"files\""),
	   "a bundle.json without \"files\" is refused: %s", e.reason);
	memset(&e, 0, sizeof(e));
	p = write_tmp("bad.json", "{\"bundle_version\": \"20261101\", \"artifacts\": {},"
				  " \"files\": {\"models/x/blobs/sha256-" H1 "\": \"nothex\"}}\n");
	ok(bnd_delta_load(p, &d, &e) < 0 && e.cls == IMP_REFUSED,
	   "a bad hash in \"files\" is refused");
}

int main(void)
{
	if (!mkdtemp(dir))
		bail("mkdtemp");
	labels();
	sha256_files();
	since();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		diag("could not remove %s", dir);
	return done_testing();
}
