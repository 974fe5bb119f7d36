/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the metrics file's format (fs/metrics.c), its -o metrics=
 * option and the creation_date read from a generation's report. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fs/agfs.h"
#include "fs/metrics.h"
#include "tests/tap.h"

/* Checks the text format line by line: every family has HELP then TYPE then
 * one sample "name value", counters end in _total. */
static int check_format(const char *text, int *families)
{
	char name[128] = "", type[16] = "";
	int state = 0; /* 0: want HELP, 1: want TYPE, 2: want sample */
	*families = 0;
	for (const char *p = text; *p;) {
		const char *e = strchr(p, '\n');
		if (!e)
			return -1; /* the last line ends in a newline */
		char line[512];
		size_t n = (size_t)(e - p);
		if (n >= sizeof(line))
			return -1;
		memcpy(line, p, n);
		line[n] = '\0';
		p = e + 1;
		char a[128], b[128];
		if (state == 0) {
			if (sscanf(line, "# HELP %127s %127s", a, b) != 2)
				return -1;
			snprintf(name, sizeof(name), "%s", a);
			state = 1;
		} else if (state == 1) {
			if (sscanf(line, "# TYPE %127s %15s", a, type) != 2 || strcmp(a, name))
				return -1;
			if (strcmp(type, "counter") && strcmp(type, "gauge"))
				return -1;
			size_t l = strlen(name);
			bool total = l > 6 && !strcmp(name + l - 6, "_total");
			if (!strcmp(type, "counter") != total)
				return -1;
			state = 2;
		} else {
			char *sp = strchr(line, ' ');
			if (!sp || (size_t)(sp - line) != strlen(name) ||
			    strncmp(line, name, strlen(name)))
				return -1;
			char *end;
			strtod(sp + 1, &end);
			if (end == sp + 1 || *end)
				return -1;
			(*families)++;
			state = 0;
		}
	}
	return state == 0 ? 0 : -1;
}

static void test_format(void)
{
	struct fs_metrics m = {.generation = 7,
			       .has_age = true,
			       .generation_age_s = 3600,
			       .verified_bytes = 1048576,
			       .verified_blocks = 16,
			       .verify_failures = 2,
			       .verify_errors = 1,
			       .readers_killed = 0,
			       .open_blobs = 3,
			       .catalog_rejections = 0,
			       .generation_trees = 2,
			       .inodes = 40};
	char buf[4096];
	size_t n = fs_metrics_format(&m, buf, sizeof(buf));
	ok(n > 0 && n < sizeof(buf) && strlen(buf) == n, "formats into the buffer (%zu bytes)", n);
	int fam = 0;
	is_int(check_format(buf, &fam), 0, "HELP, TYPE and one sample per family; counters _total");
	is_int(fam, 11, "eleven families");
	ok(strstr(buf, "\nagfs_generation 7\n") != NULL, "agfs_generation 7");
	ok(strstr(buf, "\nagfs_generation_age_seconds 3600\n") != NULL, "age in seconds");
	ok(strstr(buf, "\nagfs_verified_bytes_total 1048576\n") != NULL, "bytes");
	ok(strstr(buf, "\nagfs_verified_blocks_total 16\n") != NULL, "blocks");
	ok(strstr(buf, "\nagfs_verify_failures_total 2\n") != NULL, "failures");
	ok(strstr(buf, "\nagfs_verify_errors_total 1\n") != NULL, "errors");
	ok(strstr(buf, "\nagfs_open_blobs 3\n") != NULL, "open blobs");
	ok(strstr(buf, "\nagfs_generation_trees 2\n") != NULL &&
		   strstr(buf, "\nagfs_inodes 40\n") != NULL,
	   "generation trees and inodes in memory");
	ok(strstr(buf, "# TYPE agfs_verify_failures_total counter\n") != NULL, "a counter's TYPE");

	m.has_age = false;
	n = fs_metrics_format(&m, buf, sizeof(buf));
	ok(strstr(buf, "agfs_generation_age_seconds") == NULL, "no age: the family is left out");
	is_int(check_format(buf, &fam), 0, "still well formed");
	is_int(fam, 10, "ten families");

	char small[40];
	size_t need = fs_metrics_format(&m, small, sizeof(small));
	ok(need == n && strlen(small) < sizeof(small), "a small buffer: truncated, needed length");
}

static void test_date(void)
{
	int64_t t = 0;
	is_int(fs_report_creation_date("{\"bundle\":{\"creation_date\":\"2026-11-30T12:00:00Z\"}}",
				       &t),
	       0, "creation_date with a time");
	is_int(t, 1796040000, "... as unix seconds");
	is_int(fs_report_creation_date("{\"bundle\":{\"creation_date\":\"2026-11-30\"}}", &t), 0,
	       "a date alone");
	is_int(t, 1795996800, "... midnight UTC");
	is_int(fs_report_creation_date("{\"bundle\":{}}", &t), -ENOENT, "none");
	is_int(fs_report_creation_date("{\"bundle\":{\"creation_date\":\"2026-13-01\"}}", &t),
	       -ENOENT, "month 13");
	is_int(fs_report_creation_date("{\"bundle\":{\"creation_date\":\"2026-02-31\"}}", &t),
	       -ENOENT, "31 February (agstore's parser refuses it too)");
	is_int(fs_report_creation_date("{\"bundle\":{\"creation_date\":\"2024-02-29T10:00\"}}", &t),
	       0, "a leap day, no seconds");
	is_int(t, 1709200800, "... as unix seconds");
	is_int(fs_report_creation_date("not json", &t), -ENOENT, "not JSON");
	is_int(fs_report_creation_date(NULL, &t), -ENOENT, "no report");
}

static void test_option(void)
{
	struct fs_options o;
	char *bad = NULL;
	fs_options_init(&o);
	ok(!o.metrics && !o.metrics_off, "default: no path (the default file if its dir exists)");
	is_int(fs_options_parse(&o, "metrics=/tmp/x.prom", 19, &bad), 0, "metrics=PATH");
	ok(o.metrics && !strcmp(o.metrics, "/tmp/x.prom"), "... kept");
	is_int(fs_options_parse(&o, "metrics=none", 12, &bad), 0, "metrics=none");
	ok(!o.metrics && o.metrics_off, "... turns it off");
	ok(fs_options_parse(&o, "metrics=rel.prom", 16, &bad) == -EINVAL,
	   "a relative path is refused");
	free(bad);
	bad = NULL;
	ok(fs_options_parse(&o, "metrics=", 8, &bad) == -EINVAL, "an empty path is refused");
	free(bad);
	fs_options_clear(&o);
}

int main(void)
{
	test_format();
	test_date();
	test_option();
	return done_testing();
}
