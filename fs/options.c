/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agfs -o OPTIONS: generation=N, verify=chunks|full, allow_other, threads=N,
 * cache=SIZE, readahead=SIZE, grace=SECONDS, backing=direct|buffered, stuck=kill|ignore,
 * keyring=FILE, signer=FPR (repeatable; with keyring=), metrics=PATH|none.  The generic options
 * mount(8) hands to a helper for an fstab line (rw, defaults, nofail, _netdev, x-systemd.*, ...)
 * are accepted and ignored: the mount is always read-only, nodev and nosuid.
 */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "fs/agfs.h"

#define MAX_OPTS_LEN 4096

static const char *const ignored[] = {
	"ro",
	"rw",
	"defaults",
	"auto",
	"noauto",
	"user",
	"nouser",
	"users",
	"owner",
	"group",
	"_netdev",
	"nofail",
	"dev",
	"nodev",
	"suid",
	"nosuid",
	"exec",
	"noexec",
	"atime",
	"noatime",
	"relatime",
	"strictatime",
	"nodiratime",
	"diratime",
	"sync",
	"async",
	"lazytime",
	"nolazytime",
	"loud",
	"silent",
	"default_permissions",
	NULL,
};

void fs_options_init(struct fs_options *o)
{
	memset(o, 0, sizeof(*o));
	o->verify = FS_VERIFY_CHUNKS;
	o->allow_other = -1;
	o->threads = FS_DEFAULT_THREADS;
	o->cache = FS_DEFAULT_CACHE;
	o->kill_stuck = true;
	o->grace = FS_DEFAULT_GRACE;
	o->readahead = FS_DEFAULT_READAHEAD;
}

void fs_options_clear(struct fs_options *o)
{
	free(o->keyring);
	free(o->metrics);
	for (size_t i = 0; i < o->nsigners; i++)
		free(o->signers[i]);
	fs_options_init(o);
}

static int set_str(char **dst, const char *val)
{
	if (!*val)
		return -EINVAL;
	char *v = strdup(val);
	if (!v)
		return -ENOMEM;
	free(*dst);
	*dst = v;
	return 0;
}

static int add_signer(struct fs_options *o, const char *val)
{
	size_t n = strlen(val);
	if (n < 16 || n > 40 || strspn(val, "0123456789abcdefABCDEF") != n ||
	    o->nsigners >= FS_MAX_SIGNERS)
		return -EINVAL;
	return set_str(&o->signers[o->nsigners++], val);
}

int fs_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	const char *p = s;
	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	unsigned shift = 0;
	switch (toupper((unsigned char)*p)) {
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	case 'T':
		shift = 40;
		break;
	case '\0':
		break;
	default:
		return -EINVAL;
	}
	if (*p) {
		p++;
		if (toupper((unsigned char)*p) == 'I')
			p++;
		if (toupper((unsigned char)*p) == 'B')
			p++;
	}
	if (*p || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = v << shift;
	return 0;
}

static int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static bool is_ignored(const char *opt)
{
	if (!strncmp(opt, "x-", 2) || !strncmp(opt, "comment=", 8))
		return true;
	for (size_t i = 0; ignored[i]; i++)
		if (!strcmp(opt, ignored[i]))
			return true;
	return false;
}

/* One option, NUL-terminated. */
static int parse_one(struct fs_options *o, const char *opt)
{
	const char *eq = strchr(opt, '=');
	const char *val = eq ? eq + 1 : NULL;
	size_t klen = eq ? (size_t)(eq - opt) : strlen(opt);
	uint64_t v;
	if (klen == 10 && !strncmp(opt, "generation", 10) && val) {
		if (parse_uint(val, 1, UINT64_MAX, &v) < 0)
			return -EINVAL;
		o->generation = v;
	} else if (klen == 6 && !strncmp(opt, "verify", 6) && val) {
		if (!strcmp(val, "chunks"))
			o->verify = FS_VERIFY_CHUNKS;
		else if (!strcmp(val, "full"))
			o->verify = FS_VERIFY_FULL;
		else
			return -EINVAL;
	} else if (klen == 7 && !strncmp(opt, "backing", 7) && val) {
		if (!strcmp(val, "direct"))
			o->buffered = false;
		else if (!strcmp(val, "buffered"))
			o->buffered = true;
		else
			return -EINVAL;
	} else if (klen == 5 && !strncmp(opt, "stuck", 5) && val) {
		if (!strcmp(val, "kill"))
			o->kill_stuck = true;
		else if (!strcmp(val, "ignore"))
			o->kill_stuck = false;
		else
			return -EINVAL;
	} else if (klen == 5 && !strncmp(opt, "grace", 5) && val) {
		if (parse_uint(val, 0, FS_MAX_GRACE, &v) < 0)
			return -EINVAL;
		o->grace = (unsigned)v;
	} else if (klen == 7 && !strncmp(opt, "keyring", 7) && val) {
		return set_str(&o->keyring, val);
	} else if (klen == 7 && !strncmp(opt, "metrics", 7) && val) {
		o->metrics_off = !strcmp(val, "none");
		if (o->metrics_off) {
			free(o->metrics);
			o->metrics = NULL;
			return 0;
		}
		return *val == '/' ? set_str(&o->metrics, val) : -EINVAL;
	} else if (klen == 6 && !strncmp(opt, "signer", 6) && val) {
		return add_signer(o, val);
	} else if (!strcmp(opt, "allow_other")) {
		o->allow_other = 1;
	} else if (klen == 7 && !strncmp(opt, "threads", 7) && val) {
		if (parse_uint(val, 1, FS_MAX_THREADS, &v) < 0)
			return -EINVAL;
		o->threads = (unsigned)v;
	} else if (klen == 9 && !strncmp(opt, "readahead", 9) && val) {
		/* whole MiB (a window is made of 1 MiB reads); 0 = off */
		if (fs_parse_size(val, &v) < 0 || v > FS_MAX_READAHEAD || v % (1u << 20))
			return -EINVAL;
		o->readahead = v;
	} else if (klen == 5 && !strncmp(opt, "cache", 5) && val) {
		if (fs_parse_size(val, &v) < 0 || v < FS_MIN_CACHE || v > FS_MAX_CACHE)
			return -EINVAL;
		o->cache = v;
	} else if (!is_ignored(opt)) {
		return -EINVAL;
	}
	return 0;
}

int fs_options_parse(struct fs_options *o, const char *buf, size_t len, char **bad)
{
	*bad = NULL;
	if (len > MAX_OPTS_LEN || memchr(buf, '\0', len)) {
		*bad = strndup(buf, len > 64 ? 64 : len);
		return -EINVAL;
	}
	_cleanup_free_ char *copy = strndup(buf, len);
	if (!copy)
		return -ENOMEM;
	char *save = NULL;
	for (char *opt = strtok_r(copy, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
		if (parse_one(o, opt) < 0) {
			*bad = strdup(opt);
			return -EINVAL;
		}
	}
	return 0;
}

unsigned fs_max_read(const struct fs_options *o)
{
	uint64_t per_thread = o->cache / (o->threads ? o->threads : 1);
	uint64_t edges = 2ull * AG_DEFAULT_CHUNK + AG_ALIGN;
	uint64_t m = per_thread > edges ? per_thread - edges : 0;
	m &= ~(uint64_t)(AG_ALIGN - 1);
	if (m < 128u * 1024u)
		m = 128u * 1024u;
	if (m > FS_MAX_REQUEST)
		m = FS_MAX_REQUEST;
	return (unsigned)m;
}
