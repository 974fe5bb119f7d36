/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for agstore's pure parsers and formatters (tools/parse.c, tools/output.c). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tests/tap.h"
#include "tools/tool.h"

static void test_parse_time(void)
{
	int64_t t = 0;

	is_int(ag_parse_time("2026-04-23", &t), 0, "a date");
	is_int(t, 1776902400, "is midnight UTC");
	is_int(ag_parse_time("2026-04-23T10:00:00Z", &t), 0, "a date-time with Z");
	is_int(t, 1776902400 + 36000, "is that time UTC");
	is_int(ag_parse_time("2026-04-23 10:00", &t), 0, "a space and no seconds");
	is_int(t, 1776902400 + 36000, "same time");
	is_int(ag_parse_time("2024-02-29", &t), 0, "a leap day");
	is_int(ag_parse_time("2023-02-29", &t), -EINVAL, "not a leap year");
	is_int(ag_parse_time("2026-13-01", &t), -EINVAL, "month 13");
	is_int(ag_parse_time("2026-04-31", &t), -EINVAL, "April 31");
	is_int(ag_parse_time("2026-02-31", &t), -EINVAL, "31 February");
	is_int(ag_parse_time("2026-04-23T24:00", &t), -EINVAL, "hour 24");
	is_int(ag_parse_time("2026-04-23T10", &t), -EINVAL, "hour without minutes");
	is_int(ag_parse_time("2026-04-23T10:00:00+02:00", &t), -EINVAL, "an offset is refused");
	is_int(ag_parse_time("2026-4-23", &t), -EINVAL, "a one-digit month");
	is_int(ag_parse_time("yesterday", &t), -EINVAL, "a word");
	is_int(ag_parse_time("", &t), -EINVAL, "empty");
	is_int(ag_parse_time("1969-12-31", &t), -EINVAL, "before the epoch");
	is_int(ag_parse_time("2026-04-23x", &t), -EINVAL, "trailing junk");
}

static void test_parse_u64(void)
{
	uint64_t v = 0;

	is_int(parse_u64("5", 0, 10, &v), 0, "5 in [0,10]");
	is_int(v, 5, "is 5");
	is_int(parse_u64("0", 1, 10, &v), -ERANGE, "0 below 1");
	is_int(parse_u64("11", 0, 10, &v), -ERANGE, "11 above 10");
	is_int(parse_u64("-1", 0, 10, &v), -EINVAL, "negative");
	is_int(parse_u64("+1", 0, 10, &v), -EINVAL, "a sign");
	is_int(parse_u64("1x", 0, 10, &v), -EINVAL, "trailing junk");
	is_int(parse_u64("", 0, 10, &v), -EINVAL, "empty");
	is_int(parse_u64("99999999999999999999999", 0, UINT64_MAX, &v), -ERANGE, "overflow");
}

static void test_parse_digest(void)
{
	const char *hex = "34bb5ab01051a11372a91f95f3fbbc51173eed8e7f13ec395b9ae9b8bd0e242b";
	char buf[128], out[AG_HEX_LEN + 1];
	ag_digest d;

	is_int(parse_digest_arg(hex, &d), 0, "bare hex");
	ag_digest_hex(&d, out);
	ok(strcmp(out, hex) == 0, "round trip");
	snprintf(buf, sizeof(buf), "sha256:%s", hex);
	is_int(parse_digest_arg(buf, &d), 0, "sha256:<hex>");
	snprintf(buf, sizeof(buf), "sha256-%s", hex);
	is_int(parse_digest_arg(buf, &d), 0, "sha256-<hex>");
	snprintf(buf, sizeof(buf), "sha512:%s", hex);
	is_int(parse_digest_arg(buf, &d), -AG_EBADNAME, "another algorithm");
	is_int(parse_digest_arg("abc", &d), -AG_EBADNAME, "too short");
	snprintf(buf, sizeof(buf), "%s0", hex);
	is_int(parse_digest_arg(buf, &d), -AG_EBADNAME, "too long");
	snprintf(buf, sizeof(buf), "%.63sg", hex);
	is_int(parse_digest_arg(buf, &d), -AG_EBADNAME, "not hex");
	fmt_digest(&d, buf, sizeof(buf));
	ok(strncmp(buf, "sha256:", 7) == 0 && strlen(buf) == 71, "fmt_digest");
	fmt_digest_short(&d, out);
	ok(strcmp(out, "34bb5ab01051") == 0, "short digest is 12 hex digits");
}

static void test_format(void)
{
	char s[TOOL_SIZE_LEN], t[TOOL_TIME_LEN];

	fmt_size(0, s);
	ok(strcmp(s, "0 B") == 0, "0 B");
	fmt_size(1023, s);
	ok(strcmp(s, "1023 B") == 0, "1023 B");
	fmt_size(1536, s);
	ok(strcmp(s, "1.5 KiB") == 0, "1.5 KiB");
	fmt_size(2019393189ull, s);
	ok(strcmp(s, "1.9 GiB") == 0, "llama3.2:3b is 1.9 GiB (got %s)", s);
	fmt_size(UINT64_MAX, s);
	ok(strcmp(s, "16.0 EiB") == 0, "the largest size (got %s)", s);
	fmt_time(1776902400, t);
	ok(strcmp(t, "2026-04-23T00:00:00Z") == 0, "fmt_time is ISO-8601 UTC");
	fmt_time(0, t);
	ok(strcmp(t, "-") == 0, "no time is -");
}

static void test_table(void)
{
	static const char *const hdr[] = {"NAME", ">SIZE", "WHEN"};
	struct table *tb = table_new(3, hdr);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ok(tb && f, "table_new");
	for (int i = 0; i < 40; i++) /* grows past its first allocation */
		table_add(tb, (const char *[]){i ? "b" : "a-long-name", i ? "10" : "1", NULL});
	table_print(tb, f);
	fclose(f);
	ok(strncmp(buf, "NAME         SIZE  WHEN\na-long-name     1  -\nb              10  -\n",
		   60) == 0,
	   "columns aligned, numbers right, NULL as -");
	is_int(len, 24 + 40 * 21, "one line per row");
	free(buf);
	table_free(tb);
	table_free(NULL);
}

int main(void)
{
	test_parse_time();
	test_parse_u64();
	test_parse_digest();
	test_format();
	test_table();
	return done_testing();
}
