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

/* The line that ends at byte end of the file (without its newline, if it
 * has one: *newline says), or NULL when end is 0. */
static int line_before(int fd, uint64_t end, char **out, bool *newline)
{
	*out = NULL;
	*newline = false;
	if (end == 0)
		return 0;
	size_t want = end < MAX_LINE + 1 ? (size_t)end : MAX_LINE + 1;
	char *buf = malloc(want + 1);
	if (!buf)
		return -ENOMEM;
	ssize_t n = ag_pread_all(fd, buf, want, (off_t)(end - want));
	if (n != (ssize_t)want) {
		free(buf);
		return n < 0 ? (int)n : -EIO;
	}
	size_t stop = want;
	if (buf[stop - 1] == '\n') {
		stop--;
		*newline = true;
	}
	size_t start = stop;
	while (start > 0 && buf[start - 1] != '\n')
		start--;
	if (start == 0 && want < end) {
		free(buf);
		return -AG_ECORRUPT; /* a line longer than MAX_LINE */
	}
	memmove(buf, buf + start, stop - start);
	buf[stop - start] = '\0';
	*out = buf;
	return 0;
}

/* The last line of the file (without its newline), or NULL when empty. */
static int last_line(int fd, char **out)
{
	struct stat st;
	bool nl;
	if (fstat(fd, &st) < 0)
		return ag_errno();
	return line_before(fd, (uint64_t)st.st_size, out, &nl);
}

static void line_hash_hex(const char *line, size_t len, char hex[AG_HEX_LEN + 1])
{
	ag_digest d;
	ag_sha256(line, len, &d);
	ag_digest_hex(&d, hex);
}

/* The line that follows prev (NULL for the first): fields, then extra (the
 * library's own fields, which win), then "prev".  *seq is its number. */
static char *build_line(const char *prev, const char *event, const char *op, json_t *fields,
			json_t *extra, uint64_t *seq_out)
{
	uint64_t seq = 1;
	char prevhex[AG_HEX_LEN + 1];
	memcpy(prevhex, zero_hex, sizeof(prevhex));
	if (prev) {
		json_t *p = ag_json_loads(prev, 0, NULL);
		if (!p && errno == ENOMEM)
			return NULL; /* not seq 1 for want of memory */
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
	json_t *srcs[2] = {fields, extra};
	for (int i = 0; i < 2; i++) {
		json_object_foreach(srcs[i], key, val)
		{
			if (strcmp(key, "seq") && strcmp(key, "time") && strcmp(key, "event") &&
			    strcmp(key, "operator") && strcmp(key, "prev"))
				json_object_set(o, key, val);
		}
	}
	json_object_set_new(o, "prev", json_string(prevhex));
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	*seq_out = seq;
	return s;
}

/* audit.log opened for appending, its flock held until fd is closed. */
static int open_locked(const char *store_path, int *out)
{
	char path[4096];
	if ((size_t)snprintf(path, sizeof(path), "%s/audit.log", store_path) >= sizeof(path))
		return -ENAMETOOLONG;
	int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return ag_errno();
	while (flock(fd, LOCK_EX) < 0)
		if (errno != EINTR) {
			int r = ag_errno();
			close(fd);
			return r;
		}
	*out = fd;
	return 0;
}

/* One line ready to append to a locked audit.log. */
struct audit_line {
	char *text; /* with its newline */
	size_t len;
	uint64_t seq;
	uint64_t start; /* the file's length before the append */
};

/* A log that does not end with a newline ends with an append that never
 * completed (the writer died inside write(), or could not cut it back): no
 * record, so it is cut off here, under the flock; *removed says how much. */
static int cut_torn_tail(int fd, uint64_t size, uint64_t *removed)
{
	char c;
	*removed = 0;
	if (size == 0)
		return 0;
	if (pread(fd, &c, 1, (off_t)(size - 1)) != 1)
		return ag_errno();
	if (c == '\n')
		return 0;
	uint64_t end = size;
	char buf[4096];
	while (end > 0) {
		size_t n = end < sizeof(buf) ? (size_t)end : sizeof(buf);
		ssize_t got = ag_pread_all(fd, buf, n, end - n);
		if (got != (ssize_t)n)
			return got < 0 ? (int)got : -EIO;
		const char *nl = memrchr(buf, '\n', n);
		if (nl) {
			end = end - n + (uint64_t)(nl - buf) + 1;
			break;
		}
		end -= n;
		if (size - end > MAX_LINE)
			return -AG_ECORRUPT; /* not a torn line: leave it alone */
	}
	if (ftruncate(fd, (off_t)end) < 0)
		return ag_errno();
	*removed = size - end;
	return 0;
}

static int prepare_line(int fd, const char *event, const char *op, json_t *fields, json_t *extra,
			struct audit_line *al)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return ag_errno();
	uint64_t torn = 0;
	int r = cut_torn_tail(fd, (uint64_t)st.st_size, &torn);
	if (r < 0)
		return r;
	al->start = (uint64_t)st.st_size - torn;
	_cleanup_free_ char *prev = NULL;
	if ((r = last_line(fd, &prev)) < 0)
		return r;
	json_t *ex = NULL;
	if (torn) { /* said in the record that follows */
		ex = extra ? json_deep_copy(extra) : json_object();
		if (!ex)
			return -ENOMEM;
		json_object_set_new(ex, "torn_tail_removed", json_integer((json_int_t)torn));
		extra = ex;
	}
	al->text = build_line(prev, event, op, fields, extra, &al->seq);
	json_decref(ex);
	if (!al->text)
		return -ENOMEM;
	al->len = strlen(al->text);
	al->text[al->len++] = '\n'; /* json_dumps leaves room: overwrite the NUL */
	return 0;
}

/* Appends and fdatasyncs the line.  On failure the file is cut back to its
 * length before the append, so a torn append never leaves a damaged line
 * and the sequence continues from the last whole one. */
static int append_line(int fd, struct audit_line *al)
{
	int r = ag_write_all(fd, al->text, al->len);
	if (r == 0 && fdatasync(fd) < 0)
		r = ag_errno();
	if (r < 0 && ftruncate(fd, (off_t)al->start) == 0)
		fdatasync(fd);
	return r;
}

static int append_event(int fd, const char *event, const char *op, json_t *fields, json_t *extra)
{
	struct audit_line al = {0};
	int r = prepare_line(fd, event, op, fields, extra, &al);
	if (r == 0)
		r = append_line(fd, &al);
	free(al.text);
	return r;
}

int ag_audit_path(const char *store_path, const char *event, const char *operator_name,
		  json_t *fields)
{
	_cleanup_close_ int fd = -1;
	int r = open_locked(store_path, &fd);
	if (r < 0)
		return r;
	return append_event(fd, event, operator_name, fields, NULL); /* close drops the flock */
}

int ag_audit(ag_store *s, const char *event, const char *operator_name, json_t *fields)
{
	return ag_audit_path(s->path, event, operator_name, fields);
}

/* ---------- audited commits ----------
 *
 * The order, so that no generation exists without its record and no caller
 * is told "done" without one (doc/store-format.md, "Audited commits"):
 *   1. under the store lock (writers only) and audit.log's flock, build the
 *      record; it carries "index_txn" (the LMDB transaction number this
 *      commit will get) and "index_generation" (a generation the
 *      transaction adds);
 *   2. put meta "audit_seq" (the record's seq) and "audit_end" (the log's
 *      length after it) into the transaction;
 *   3. append the record and fdatasync it; on failure cut the log back,
 *      abort the transaction and return the error;
 *   4. commit the transaction; on failure append INDEX_COMMIT_FAILED naming
 *      the record ("for_seq") and return the error.
 * A writer killed between 3 and 4 leaves a record whose seq is above the
 * index's "audit_seq": the next writer's ag_store_open() (and the next
 * audited commit) finds it, after "audit_end", and appends
 * INDEX_COMMIT_LOST naming it.  A record with "index_txn" therefore
 * describes a change the index holds unless a later INDEX_COMMIT_LOST or
 * INDEX_COMMIT_FAILED names its seq.
 */

void (*ag_test_before_commit)(void);

struct pending {
	uint64_t seq;
	char *event;
	bool resolved;
};

struct repair_scan {
	uint64_t audit_seq;
	struct pending *p;
	size_t n, cap;
};

static int scan_line(struct repair_scan *rs, const char *line, size_t len)
{
	bool commit = strstr(line, "\"index_txn\"") != NULL;
	bool resolve = strstr(line, "\"for_seq\"") != NULL;
	if (!commit && !resolve)
		return 0;
	json_t *o = ag_json_loadb(line, len, 0, NULL);
	if (!o)
		return errno == ENOMEM ? -ENOMEM : 0;
	int r = 0;
	json_int_t seq = json_integer_value(json_object_get(o, "seq"));
	const char *ev = json_string_value(json_object_get(o, "event"));
	if (commit && json_object_get(o, "index_txn") && seq > 0 && (uint64_t)seq > rs->audit_seq) {
		if (rs->n == rs->cap) {
			size_t cap = rs->cap ? rs->cap * 2 : 4;
			struct pending *np = realloc(rs->p, cap * sizeof(*np));
			if (!np) {
				json_decref(o);
				return -ENOMEM;
			}
			rs->p = np;
			rs->cap = cap;
		}
		rs->p[rs->n++] =
			(struct pending){.seq = (uint64_t)seq, .event = strdup(ev ? ev : "")};
	}
	if (resolve && ev &&
	    (!strcmp(ev, "INDEX_COMMIT_LOST") || !strcmp(ev, "INDEX_COMMIT_FAILED"))) {
		json_int_t f = json_integer_value(json_object_get(o, "for_seq"));
		for (size_t i = 0; i < rs->n; i++)
			if ((json_int_t)rs->p[i].seq == f)
				rs->p[i].resolved = true;
	}
	json_decref(o);
	return r;
}

/* The next line of f without its newline: its length, or -1 at the end of
 * the file, or a negative errno when it cannot be read (a read error or no
 * memory must not read as the end of the log). */
static ssize_t next_line(FILE *f, char **line, size_t *cap)
{
	errno = 0;
	ssize_t n = getline(line, cap, f);
	if (n < 0)
		return feof(f) && !ferror(f) ? -1 : errno ? -errno : -EIO;
	if (n > 0 && (*line)[n - 1] == '\n')
		(*line)[--n] = '\0';
	return n;
}

/* ---------- the index's anchor in the log ----------
 *
 * A hash chain shows an edited, removed or reordered line, but not lines
 * removed from its end, nor a log deleted and started again.  The index
 * holds what it needs to see both back to its last audited commit: that
 * record's seq ("audit_seq") and the log's length after it ("audit_end").
 * The record must be the line that ends at that byte. */

struct anchor {
	uint64_t seq, end; /* 0 when the index has no audited commit yet */
};

static int read_anchor(ag_store *s, struct anchor *a)
{
	_cleanup_free_ char *vs = NULL, *ve = NULL;
	*a = (struct anchor){0};
	int r = ag_meta_get(s, "audit_seq", &vs);
	if (r == 0)
		r = ag_meta_get(s, "audit_end", &ve);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	a->seq = strtoull(vs, NULL, 10);
	a->end = strtoull(ve, NULL, 10);
	return 0;
}

/* 0 when the log (fd) holds the anchor's record where the index says it
 * ends; -AG_ECHAIN with *why (a sentence) when it does not; or -errno. */
static int check_anchor(int fd, const struct anchor *a, char **why)
{
	struct stat st;
	*why = NULL;
	if (a->seq == 0 || a->end == 0)
		return 0;
	if (fstat(fd, &st) < 0)
		return ag_errno();
	if ((uint64_t)st.st_size < a->end) {
		if (asprintf(why,
			     "the log is %llu bytes, shorter than the %llu it had after line %llu, "
			     "the record of the index's last audited commit: lines were removed "
			     "from its end",
			     (unsigned long long)st.st_size, (unsigned long long)a->end,
			     (unsigned long long)a->seq) < 0)
			return -ENOMEM;
		return -AG_ECHAIN;
	}
	_cleanup_free_ char *line = NULL;
	bool nl, found = false;
	int r = line_before(fd, a->end, &line, &nl);
	if (r < 0 && r != -AG_ECORRUPT)
		return r;
	if (r == 0 && nl) {
		json_t *o = ag_json_loads(line, 0, NULL);
		if (!o && errno == ENOMEM)
			return -ENOMEM;
		json_t *seq = json_object_get(o, "seq");
		found = json_is_integer(seq) && (uint64_t)json_integer_value(seq) == a->seq &&
			json_object_get(o, "index_txn");
		json_decref(o);
	}
	if (found)
		return 0;
	if (asprintf(why,
		     "line %llu is not the record of the index's last audited commit ending at "
		     "byte %llu: the log was cut and written again",
		     (unsigned long long)a->seq, (unsigned long long)a->end) < 0)
		return -ENOMEM;
	return -AG_ECHAIN;
}

/* Under audit.log's flock (fd): records of audited commits after the
 * index's "audit_seq" that nothing resolved get an INDEX_COMMIT_LOST. */
static int repair_locked(ag_store *s, int fd, int *repaired)
{
	struct anchor a;
	int r = read_anchor(s, &a);
	if (r < 0)
		return r;
	uint64_t aseq = a.seq, aend = a.end;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return ag_errno();
	if (aend > (uint64_t)st.st_size)
		aend = 0; /* not the log the index knew: look at all of it */
	int rfd = openat(s->dirfd, "audit.log", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (rfd < 0)
		return ag_errno();
	FILE *f = fdopen(rfd, "r");
	if (!f) {
		close(rfd);
		return -ENOMEM;
	}
	struct repair_scan rs = {.audit_seq = aseq};
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = -1;
	r = fseeko(f, (off_t)aend, SEEK_SET) < 0 ? ag_errno() : 0;
	while (r == 0 && (n = next_line(f, &line, &cap)) >= 0)
		r = scan_line(&rs, line, (size_t)n);
	if (r == 0 && n < -1)
		r = (int)n;
	free(line);
	fclose(f);
	for (size_t i = 0; i < rs.n; i++) {
		if (r == 0 && !rs.p[i].resolved) {
			json_t *fl = json_pack(
				"{s:I,s:s,s:s}", "for_seq", (json_int_t)rs.p[i].seq, "for_event",
				rs.p[i].event ? rs.p[i].event : "", "detail",
				"the writer stopped after this record and before its index commit: "
				"the store does not hold that change");
			r = fl ? append_event(fd, "INDEX_COMMIT_LOST", NULL, NULL, fl) : -ENOMEM;
			json_decref(fl);
			if (r == 0)
				(*repaired)++;
		}
		free(rs.p[i].event);
	}
	free(rs.p);
	return r;
}

int ag_audit_repair(ag_store *s, int *repaired)
{
	int n = 0;
	if (!s->writer)
		return -EROFS;
	_cleanup_close_ int fd = -1;
	int r = open_locked(s->path, &fd);
	if (r == 0)
		r = repair_locked(s, fd, &n);
	if (repaired)
		*repaired = n;
	return r;
}

/* This record will become the index's anchor.  If the log no longer holds
 * the old one (lines removed from its end, or the log deleted and started
 * again), the record says so in "anchor_lost", which verify reports for
 * good: the new anchor must not make the loss invisible. */
static int note_lost_anchor(ag_store *s, int fd, json_t *extra)
{
	struct anchor a;
	_cleanup_free_ char *why = NULL;
	int r = read_anchor(s, &a);
	if (r == 0)
		r = check_anchor(fd, &a, &why);
	if (r != -AG_ECHAIN)
		return r;
	json_t *lost = json_pack("{s:I,s:I,s:s}", "line", (json_int_t)a.seq, "end",
				 (json_int_t)a.end, "detail", why);
	if (!lost || json_object_set_new(extra, "anchor_lost", lost) < 0)
		return -ENOMEM;
	return 0;
}

static int ag_txn_put_reserved(ag_txn *t, const char *key, const char *value)
{
	AG_TXN_GUARD(t);
	return ag_meta_put_str(t->txn, t->s, key, value);
}

/* "audit_floor", set by the first audited commit: the last generation id
 * made before audited commits began.  Every generation above it has a
 * record naming it ("generation" or "index_generation"); fsck checks that. */
static int put_floor(ag_txn *t)
{
	AG_TXN_GUARD(t);
	uint64_t floor = 0;
	int r = ag_meta_get_u64(t->txn, t->s, "audit_floor", &floor);
	if (r != -ENOENT)
		return r;
	if (t->gen_added)
		floor = t->gen_added - 1;
	else if ((r = ag_meta_get_u64(t->txn, t->s, "last_id", &floor)) < 0 && r != -ENOENT)
		return r;
	char num[24];
	snprintf(num, sizeof(num), "%llu", (unsigned long long)floor);
	return ag_meta_put_str(t->txn, t->s, "audit_floor", num);
}

int ag_txn_commit_audit(ag_txn *t, const char *event, const char *operator_name, json_t *fields)
{
	ag_store *s = t->s;
	_cleanup_close_ int fd = -1;
	struct audit_line al = {0};
	int dummy = 0;
	/* The objects first: no record (and no generation) before they are
	 * durable. */
	int r = ag_txn_sync(t);
	if (r < 0) {
		ag_txn_abort(t);
		return r;
	}
	r = open_locked(s->path, &fd);
	if (r == 0)
		r = repair_locked(s, fd, &dummy);
	json_t *extra = NULL;
	if (r == 0) {
		extra = json_pack("{s:I}", "index_txn", (json_int_t)mdb_txn_id(t->txn));
		if (!extra)
			r = -ENOMEM;
		else if (t->gen_added)
			json_object_set_new(extra, "index_generation",
					    json_integer((json_int_t)t->gen_added));
	}
	if (r == 0)
		r = note_lost_anchor(s, fd, extra);
	if (r == 0)
		r = prepare_line(fd, event, operator_name, fields, extra, &al);
	json_decref(extra);
	char num[24];
	if (r == 0) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)al.seq);
		r = ag_txn_put_reserved(t, "audit_seq", num);
	}
	if (r == 0) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)(al.start + al.len));
		r = ag_txn_put_reserved(t, "audit_end", num);
	}
	if (r == 0)
		r = put_floor(t);
	if (r == 0)
		r = append_line(fd, &al);
	if (r < 0) {
		free(al.text);
		ag_txn_abort(t);
		return r;
	}
	free(al.text);
	if (ag_test_before_commit)
		ag_test_before_commit();
	r = ag_txn_commit(t);
	if (r < 0) {
		json_t *fl = json_pack("{s:I,s:s,s:s}", "for_seq", (json_int_t)al.seq, "for_event",
				       event, "error", ag_strerror(r));
		if (fl)
			append_event(fd, "INDEX_COMMIT_FAILED", operator_name, NULL, fl);
		json_decref(fl);
	}
	return r;
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
	while (r == 0 && (n = next_line(f, &line, &cap)) >= 0)
		r = cb(++no, line, (size_t)n, arg);
	if (r == 0 && n < -1)
		r = (int)n;
	free(line);
	fclose(f);
	return r;
}

struct verify_state {
	uint64_t lines;
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
	v->lines = no;
	json_t *o = ag_json_loadb(line, len, 0, NULL);
	if (!o && errno == ENOMEM)
		return -ENOMEM;
	if (!o)
		return fail_at(v, no, "line %llu is not valid JSON: it was edited or damaged",
			       (unsigned long long)no);
	json_int_t seq = json_integer_value(json_object_get(o, "seq"));
	const char *prev = json_string_value(json_object_get(o, "prev"));
	const char *event = json_string_value(json_object_get(o, "event"));
	json_t *lost = json_object_get(o, "anchor_lost");
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
	else if (no == 1 && (!event || strcmp(event, "STORE_INIT")))
		r = fail_at(v, no,
			    "line 1 is a %s record, not the STORE_INIT every store's log starts "
			    "with: the log was deleted and started again",
			    event ? event : "nameless");
	else if (lost)
		r = fail_at(v, no,
			    "it was written when the log no longer held line %lld, the record of "
			    "the index's last audited commit: records were removed before it",
			    (long long)json_integer_value(json_object_get(lost, "line")));
	json_decref(o);
	line_hash_hex(line, len, v->prevhex);
	return r;
}

/* The number of the log's last line if it has no newline (a torn append),
 * else 0. */
static uint64_t torn_last_line(ag_store *s)
{
	_cleanup_close_ int fd = openat(s->dirfd, "audit.log", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	char buf[65536], c;
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size == 0 ||
	    pread(fd, &c, 1, st.st_size - 1) != 1 || c == '\n')
		return 0;
	uint64_t lines = 1;
	ssize_t n;
	for (off_t off = 0; (n = pread(fd, buf, sizeof(buf), off)) > 0; off += n)
		for (ssize_t i = 0; i < n; i++)
			lines += buf[i] == '\n';
	return lines;
}

/* After a whole chain: the log exists, starts (with STORE_INIT, checked by
 * verify_line) and holds the index's anchor where the index says. */
static int verify_whole(ag_store *s, const struct anchor *a, struct verify_state *v)
{
	_cleanup_close_ int fd = openat(s->dirfd, "audit.log", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno != ENOENT)
		return ag_errno();
	if (fd < 0 || v->lines == 0) {
		v->bad_line = 0;
		v->why = strdup(fd < 0 ? "the file is missing, but every store's log starts with "
					 "its STORE_INIT record: it was deleted"
				       : "the file is empty, but every store's log starts with its "
					 "STORE_INIT record: its records were removed");
		return v->why ? -AG_ECHAIN : -ENOMEM;
	}
	int r = check_anchor(fd, a, &v->why);
	if (r == -AG_ECHAIN)
		v->bad_line = a->seq <= v->lines ? a->seq : v->lines + 1;
	return r;
}

int ag_audit_verify(ag_store *s, uint64_t *bad_line, char **why)
{
	struct verify_state v = {.bad_line = 0, .why = NULL};
	struct anchor a;
	memcpy(v.prevhex, zero_hex, sizeof(v.prevhex));
	/* The anchor first: an audited commit while the log is read only
	 * appends after the record it names. */
	int r = read_anchor(s, &a);
	if (r == 0)
		r = each_line(s, verify_line, &v);
	if (r == 0)
		r = verify_whole(s, &a, &v);
	if (r == -AG_ECHAIN && v.bad_line && v.bad_line == torn_last_line(s)) {
		free(v.why);
		if (asprintf(&v.why,
			     "line %llu is incomplete: an append that never finished (the next "
			     "append removes it)",
			     (unsigned long long)v.bad_line) < 0)
			v.why = NULL;
	}
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
	json_t *o = ag_json_loadb(line, len, 0, NULL);
	if (!o && errno == ENOMEM)
		return -ENOMEM;
	if (!o && !(o = json_pack("{s:s#}", "unparsable", line, (int)len)))
		return -ENOMEM;
	int r = f->cb(no, o, f->arg);
	json_decref(o);
	return r;
}

int ag_audit_foreach(ag_store *s, int (*cb)(uint64_t lineno, json_t *obj, void *arg), void *arg)
{
	struct foreach_state f = {cb, arg};
	return each_line(s, foreach_line, &f);
}

int ag_audit_check_buf(const char *buf, size_t len, uint64_t audit_seq, uint64_t *bad_line,
		       char **why, size_t *npending)
{
	struct verify_state v = {.bad_line = 0, .why = NULL};
	struct repair_scan rs = {.audit_seq = audit_seq};
	memcpy(v.prevhex, zero_hex, sizeof(v.prevhex));
	int r = 0, rv = 0;
	uint64_t no = 0;
	for (size_t at = 0; at < len && r == 0;) {
		const char *nl = memchr(buf + at, '\n', len - at);
		size_t end = nl ? (size_t)(nl - buf) : len;
		/* getline()'s view of the file: a line is what is before its
		 * newline; a NUL inside it ends what the parsers see */
		_cleanup_free_ char *line = strndup(buf + at, end - at);
		if (!line)
			return -ENOMEM;
		size_t n = strlen(line);
		no++;
		if (rv == 0)
			rv = verify_line(no, line, n, &v);
		r = scan_line(&rs, line, n);
		at = end + 1;
	}
	size_t pending = 0;
	for (size_t i = 0; i < rs.n; i++) {
		pending += !rs.p[i].resolved;
		free(rs.p[i].event);
	}
	free(rs.p);
	if (npending)
		*npending = pending;
	if (r < 0) {
		free(v.why);
		return r;
	}
	if (rv == -AG_ECHAIN) {
		if (bad_line)
			*bad_line = v.bad_line;
		if (why)
			*why = v.why;
		else
			free(v.why);
	}
	return rv;
}
