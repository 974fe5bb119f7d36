/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit journal: $STORE/audit.log, one JSON object per line, each line
 * carrying "seq" (1, 2, ...) and "prev", the SHA-256 of the previous line's
 * bytes (64 zeros for the first).  Appends are serialised with flock() on the
 * file itself, so readers such as the mount daemon may append too.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/internal.h"

#define MAX_LINE (1u << 20)
static const char zero_hex[AG_HEX_LEN + 1] =
	"0000000000000000000000000000000000000000000000000000000000000000";

/* The last line of the file (without its newline), or NULL when empty. */
static int last_line(int fd, char **out)
{
	struct stat st;
	*out = NULL;
	if (fstat(fd, &st) < 0)
		return ag_errno();
	uint64_t size = (uint64_t)st.st_size;
	if (size == 0)
		return 0;
	size_t want = size < MAX_LINE + 1 ? (size_t)size : MAX_LINE + 1;
	char *buf = malloc(want + 1);
	if (!buf)
		return -ENOMEM;
	ssize_t n = ag_pread_all(fd, buf, want, size - want);
	if (n != (ssize_t)want) {
		free(buf);
		return n < 0 ? (int)n : -EIO;
	}
	size_t end = want;
	if (buf[end - 1] == '\n')
		end--;
	size_t start = end;
	while (start > 0 && buf[start - 1] != '\n')
		start--;
	if (start == 0 && want < size) {
		free(buf);
		return -AG_ECORRUPT; /* a line longer than MAX_LINE */
	}
	memmove(buf, buf + start, end - start);
	buf[end - start] = '\0';
	*out = buf;
	return 0;
}

static void line_hash_hex(const char *line, size_t len, char hex[AG_HEX_LEN + 1])
{
	ag_digest d;
	ag_sha256(line, len, &d);
	ag_digest_hex(&d, hex);
}

static char *build_line(const char *prev, const char *event, const char *op, json_t *fields)
{
	uint64_t seq = 1;
	char prevhex[AG_HEX_LEN + 1];
	memcpy(prevhex, zero_hex, sizeof(prevhex));
	if (prev) {
		json_t *p = json_loads(prev, 0, NULL);
		seq = (uint64_t)json_integer_value(json_object_get(p, "seq")) + 1;
		json_decref(p);
		line_hash_hex(prev, strlen(prev), prevhex);
	}
	char now[32];
	ag_time_iso(ag_now(), now);
	json_t *o = json_pack("{s:I,s:s,s:s,s:s?}", "seq", (json_int_t)seq, "time", now, "event",
			      event, "operator", op);
	if (!o)
		return NULL;
	const char *key;
	json_t *val;
	json_object_foreach(fields, key, val)
	{
		if (strcmp(key, "seq") && strcmp(key, "time") && strcmp(key, "event") &&
		    strcmp(key, "operator") && strcmp(key, "prev"))
			json_object_set(o, key, val);
	}
	json_object_set_new(o, "prev", json_string(prevhex));
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s;
}

int ag_audit_path(const char *store_path, const char *event, const char *operator_name,
		  json_t *fields)
{
	char path[4096];
	if ((size_t)snprintf(path, sizeof(path), "%s/audit.log", store_path) >= sizeof(path))
		return -ENAMETOOLONG;
	_cleanup_close_ int fd =
		open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return ag_errno();
	while (flock(fd, LOCK_EX) < 0)
		if (errno != EINTR)
			return ag_errno();
	_cleanup_free_ char *prev = NULL;
	int r = last_line(fd, &prev);
	if (r < 0)
		return r;
	_cleanup_free_ char *line = build_line(prev, event, operator_name, fields);
	if (!line)
		return -ENOMEM;
	size_t len = strlen(line);
	line[len] = '\n'; /* json_dumps leaves room: overwrite the NUL, write len+1 */
	if ((r = ag_write_all(fd, line, len + 1)) < 0)
		return r;
	if (fdatasync(fd) < 0)
		return ag_errno();
	return 0; /* closing fd drops the flock */
}

int ag_audit(ag_store *s, const char *event, const char *operator_name, json_t *fields)
{
	return ag_audit_path(s->path, event, operator_name, fields);
}

typedef int (*line_cb)(uint64_t lineno, const char *line, size_t len, void *arg);

static int each_line(ag_store *s, line_cb cb, void *arg)
{
	int fd = openat(s->dirfd, "audit.log", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? 0 : ag_errno();
	FILE *f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return ag_errno();
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	uint64_t no = 0;
	int r = 0;
	while (r == 0 && (n = getline(&line, &cap, f)) > 0) {
		no++;
		if (line[n - 1] == '\n')
			line[--n] = '\0';
		r = cb(no, line, (size_t)n, arg);
	}
	free(line);
	fclose(f);
	return r;
}

struct verify_state {
	char prevhex[AG_HEX_LEN + 1];
	uint64_t bad_line;
	char *why;
};

static int fail_at(struct verify_state *v, uint64_t line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail_at(struct verify_state *v, uint64_t line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&v->why, fmt, ap) < 0)
		v->why = NULL;
	va_end(ap);
	v->bad_line = line;
	return -AG_ECHAIN;
}

static int verify_line(uint64_t no, const char *line, size_t len, void *arg)
{
	struct verify_state *v = arg;
	json_t *o = json_loadb(line, len, 0, NULL);
	if (!o)
		return fail_at(v, no, "line %llu is not valid JSON: it was edited or damaged",
			       (unsigned long long)no);
	json_int_t seq = json_integer_value(json_object_get(o, "seq"));
	const char *prev = json_string_value(json_object_get(o, "prev"));
	int r = 0;
	if (seq != (json_int_t)no)
		r = fail_at(v, no,
			    "line %llu carries sequence number %lld: a line before it was removed, "
			    "or lines were reordered",
			    (unsigned long long)no, (long long)seq);
	else if (!prev || strcmp(prev, v->prevhex))
		r = fail_at(v, no > 1 ? no - 1 : no,
			    no > 1 ? "line %llu was edited: its hash does not match the \"prev\" "
				     "recorded in the line after it"
				   : "line %llu was edited: its \"prev\" is not the chain's start",
			    (unsigned long long)(no > 1 ? no - 1 : no));
	json_decref(o);
	line_hash_hex(line, len, v->prevhex);
	return r;
}

int ag_audit_verify(ag_store *s, uint64_t *bad_line, char **why)
{
	struct verify_state v = {.bad_line = 0, .why = NULL};
	memcpy(v.prevhex, zero_hex, sizeof(v.prevhex));
	int r = each_line(s, verify_line, &v);
	if (r == -AG_ECHAIN) {
		if (bad_line)
			*bad_line = v.bad_line;
		if (why)
			*why = v.why;
		else
			free(v.why);
	}
	return r;
}

struct foreach_state {
	int (*cb)(uint64_t, json_t *, void *);
	void *arg;
};

static int foreach_line(uint64_t no, const char *line, size_t len, void *arg)
{
	struct foreach_state *f = arg;
	json_t *o = json_loadb(line, len, 0, NULL);
	if (!o)
		o = json_pack("{s:s#}", "unparsable", line, (int)len);
	int r = f->cb(no, o, f->arg);
	json_decref(o);
	return r;
}

int ag_audit_foreach(ag_store *s, int (*cb)(uint64_t lineno, json_t *obj, void *arg), void *arg)
{
	struct foreach_state f = {cb, arg};
	return each_line(s, foreach_line, &f);
}
