/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the mount tells the operators: a chunk that fails verification
 * (syslog LOG_CRIT + VERIFY_FAILURE audit event) and the opening of a model
 * layer (MODEL_OPEN audit event: who loaded which model, the compliance
 * record).  Repeats of the same event within a few seconds (the kernel
 * retrying a read, a loader opening the same file twice) are folded.
 */
#include <errno.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "fs/agfs.h"
#include "fs/journal.h"
#include "fs/metrics.h"

#define FAILURE_QUIET_S 60
#define OPEN_QUIET_S	60
#define MAX_COMM	64
#define QUEUE_LEN	256

struct fs_auditq {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	json_t *fields[QUEUE_LEN];
	unsigned head, n;
	bool stop;
	pthread_t thread;
};

static void write_record(struct fs_ctx *c, const char *event, json_t *f)
{
	int r = ag_audit(c->store, event, c->operator_name, f);
	if (r < 0)
		syslog(LOG_ERR, "cannot write the %s audit record: %s", event, ag_strerror(r));
	json_decref(f);
}

static void events_flush(struct fs_ctx *c, bool all);

static void *writer_main(void *arg)
{
	struct fs_ctx *c = arg;
	struct fs_auditq *q = c->auditq;
	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (q->n == 0 && !q->stop) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += 1;
			if (pthread_cond_clockwait(&q->cond, &q->lock, CLOCK_MONOTONIC, &ts) ==
			    ETIMEDOUT) {
				pthread_mutex_unlock(&q->lock);
				events_flush(c, false); /* windows that ended */
				pthread_mutex_lock(&q->lock);
			}
		}
		if (q->n == 0)
			break;
		json_t *f = q->fields[q->head];
		q->head = (q->head + 1) % QUEUE_LEN;
		q->n--;
		pthread_mutex_unlock(&q->lock);
		write_record(c, "MODEL_OPEN", f);
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	events_flush(c, true);
	return NULL;
}

int events_start(struct fs_ctx *c)
{
	struct fs_auditq *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	c->auditq = q;
	int r = pthread_create(&q->thread, NULL, writer_main, c);
	if (r != 0) {
		c->auditq = NULL;
		free(q);
	}
	return -r;
}

void events_stop(struct fs_ctx *c)
{
	struct fs_auditq *q = c->auditq;
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->stop = true;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL); /* after writing what was queued */
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	free(q);
	c->auditq = NULL;
}

/* Hands f to the writer thread, or writes it now if the queue is full. */
static void queue_record(struct fs_ctx *c, json_t *f)
{
	struct fs_auditq *q = c->auditq;
	bool queued = false;
	if (q) {
		pthread_mutex_lock(&q->lock);
		if (q->n < QUEUE_LEN && !q->stop) {
			q->fields[(q->head + q->n) % QUEUE_LEN] = f;
			q->n++;
			queued = true;
			pthread_cond_signal(&q->cond);
		}
		pthread_mutex_unlock(&q->lock);
	}
	if (!queued)
		write_record(c, "MODEL_OPEN", f);
}

/*
 * The rate limiter behind every record a reader can cause.  One slot per
 * (digest, key): the first event of a window is recorded, the rest of the
 * window is only counted.  For MODEL_OPEN (key = uid) the count is written
 * as one more record when the window ends (events_flush, from the writer
 * thread), so any number of opens by one user of one model costs at most
 * two records per window: readers can never make the daemon fsync in a loop.
 * With ev_lock held.
 */
#define LIMIT_SLOTS  1024u
#define LIMIT_PROBES 8u

enum limit_kind { LIM_FAILURE = 0, LIM_OPEN = 1, LIM_ERROR = 2, LIM_INDEX = 3 };

struct limit {
	ag_digest digest;
	uint64_t key; /* kind in the low 2 bits */
	int64_t since;
	int64_t quiet;
	unsigned folded; /* events counted, not recorded, in this window */
	pid_t pid;
	gid_t gid;
	char comm[MAX_COMM];
};
static struct limit limit_tab[LIMIT_SLOTS];

static size_t limit_hash(const ag_digest *d, uint64_t key)
{
	uint64_t h;
	memcpy(&h, d->b, sizeof(h));
	return (size_t)((h ^ (key * 0x9e3779b97f4a7c15ull)) & (LIMIT_SLOTS - 1));
}

static json_t *open_fields(struct fs_ctx *c, const struct limit *l, uint64_t count);

/* A MODEL_OPEN record for the opens a slot counted, if any (to queue). */
static json_t *limit_take_folded(struct fs_ctx *c, struct limit *l)
{
	json_t *f = NULL;
	if (l->since && l->folded && (l->key & 3) == LIM_OPEN)
		f = open_fields(c, l, l->folded);
	l->folded = 0;
	return f;
}

/* True when (d, key) was recorded less than quiet seconds ago (the event is
 * then counted).  *spill receives a record of a window that ended. */
static bool seen_recently(struct fs_ctx *c, const ag_digest *d, uint64_t key, int64_t quiet,
			  json_t **spill)
{
	int64_t now = fs_mono_s();
	size_t h = limit_hash(d, key);
	struct limit *slot = NULL, *oldest = NULL;
	bool seen = false;
	*spill = NULL;
	for (size_t i = 0; i < LIMIT_PROBES && !slot; i++) {
		struct limit *l = &limit_tab[(h + i) & (LIMIT_SLOTS - 1)];
		if (l->since && l->key == key && ag_digest_eq(&l->digest, d))
			slot = l;
		else if (!oldest || l->since < oldest->since)
			oldest = l;
	}
	if (slot && now - slot->since < quiet) {
		slot->folded++;
		seen = true;
	} else {
		slot = slot ? slot : oldest;
		*spill = limit_take_folded(c, slot);
		*slot = (struct limit){.digest = *d, .key = key, .since = now, .quiet = quiet};
	}
	return seen;
}

static bool limited(struct fs_ctx *c, const ag_digest *d, uint64_t key, int64_t quiet)
{
	json_t *spill;
	pthread_mutex_lock(&c->ev_lock);
	bool seen = seen_recently(c, d, key, quiet, &spill);
	pthread_mutex_unlock(&c->ev_lock);
	if (spill)
		queue_record(c, spill);
	return seen;
}

/* Writes the counts of MODEL_OPEN windows that have ended. */
static void events_flush(struct fs_ctx *c, bool all)
{
	int64_t now = fs_mono_s();
	for (size_t i = 0; i < LIMIT_SLOTS; i++) {
		pthread_mutex_lock(&c->ev_lock);
		struct limit *l = &limit_tab[i];
		json_t *f = NULL;
		if (l->folded && (all || now - l->since >= l->quiet)) {
			f = limit_take_folded(c, l);
			l->since = now; /* a new window: the next open is counted too */
		}
		pthread_mutex_unlock(&c->ev_lock);
		if (f)
			write_record(c, "MODEL_OPEN", f);
	}
}

static char *models_using(struct fs_ctx *c, const ag_digest *d)
{
	pthread_rwlock_rdlock(&c->tree.lock);
	char *s = tree_models_using(&c->tree, d);
	pthread_rwlock_unlock(&c->tree.lock);
	return s;
}

static json_t *models_array(const char *list)
{
	json_t *a = json_array();
	for (const char *p = list; a && p && *p;) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		json_array_append_new(a, json_stringn(p, n));
		p = e ? e + 1 : p + n;
	}
	return a;
}

/* The generation served at the root (0: none), for AGFS_GENERATION. */
static uint64_t served_gen(struct fs_ctx *c)
{
	pthread_rwlock_rdlock(&c->tree.lock);
	uint64_t id = c->tree.current ? c->tree.current->id : 0;
	pthread_rwlock_unlock(&c->tree.lock);
	return id;
}

static const char *failure_reason(int err, uint64_t chunk)
{
	if (err == -EBADMSG)
		return chunk != UINT64_MAX ? "chunk hash mismatch" : "chunk table mismatch";
	if (err == -ENOENT)
		return "object missing";
	if (err == -ELOOP)
		return "object is a symbolic link";
	return ag_strerror(err);
}

void event_verify_failure(struct fs_ctx *c, const struct node *n, uint64_t chunk, int err)
{
	char hex[AG_HEX_LEN + 1];
	ag_digest_hex(&n->digest, hex);
	atomic_fetch_add(&fs_counters.verify_failures, 1);
	if (limited(c, &n->digest, (chunk << 2) | LIM_FAILURE, FAILURE_QUIET_S))
		return;
	_cleanup_free_ char *models = models_using(c, &n->digest);
	const char *why = failure_reason(err, chunk);
	uint64_t gen = served_gen(c);
	if (chunk == UINT64_MAX)
		fs_log(LOG_CRIT, FS_MSG_VERIFY_FAILURE, gen, hex,
		       "blob sha256:%s failed verification (%s); used by %s", hex, why,
		       models && *models ? models : "no model");
	else
		fs_log(LOG_CRIT, FS_MSG_VERIFY_FAILURE, gen, hex,
		       "blob sha256:%s chunk %" PRIu64 " failed verification (%s); used by %s", hex,
		       chunk, why, models && *models ? models : "no model");
	json_t *f = json_pack("{s:s, s:s, s:s, s:o}", "digest", hex, "error", why, "mount",
			      c->mountpoint, "models", models_array(models));
	if (f && chunk != UINT64_MAX)
		json_object_set_new(f, "chunk", json_integer((json_int_t)chunk));
	write_record(c, "VERIFY_FAILURE", f);
}

/* At most ERROR_LINES "cannot be read" lines a minute in all (blobs differ). */
#define ERROR_LINES 20
static bool error_budget(struct fs_ctx *c)
{
	static int64_t since;
	static unsigned lines, dropped;
	int64_t now = fs_mono_s();
	unsigned was_dropped = 0;
	pthread_mutex_lock(&c->ev_lock);
	if (now - since >= FAILURE_QUIET_S) {
		was_dropped = dropped;
		since = now;
		lines = dropped = 0;
	}
	bool ok = lines < ERROR_LINES;
	if (ok)
		lines++;
	else
		dropped++;
	pthread_mutex_unlock(&c->ev_lock);
	if (was_dropped)
		syslog(LOG_ERR, "%u more store errors in the last minute were not logged",
		       was_dropped);
	return ok;
}

/*
 * "Could not check": out of memory, LMDB's reader table full, a disk error.
 * Not a verdict on the bytes: LOG_ERR once a minute per blob and error, no
 * audit record, nothing remembered.  A damaged index (-AG_EINDEX) is an
 * alert: LOG_CRIT and one STORE_ERROR record a minute.
 */
void event_store_error(struct fs_ctx *c, const struct node *n, int err)
{
	static const ag_digest none;
	char hex[AG_HEX_LEN + 1] = "";
	const ag_digest *d = n && n->kind == N_BLOB ? &n->digest : &none;
	bool index = err == -AG_EINDEX;
	uint64_t key = ((uint64_t)(unsigned)-err << 2) | (index ? LIM_INDEX : LIM_ERROR);
	atomic_fetch_add(&fs_counters.verify_errors, 1);
	if (limited(c, index ? &none : d, key, FAILURE_QUIET_S) || !error_budget(c))
		return;
	if (d != &none)
		ag_digest_hex(d, hex);
	fs_log(index ? LOG_CRIT : LOG_ERR, index ? FS_MSG_STORE_ERROR : FS_MSG_VERIFY_ERROR,
	       served_gen(c), hex, "%s%s%scannot be read: %s%s", hex[0] ? "blob sha256:" : "", hex,
	       hex[0] ? " " : "the store ", ag_strerror(err),
	       index ? " (run agstore fsck; reads fail with EIO)"
		     : " (not a verification failure)");
	if (!index)
		return;
	json_t *f = json_pack("{s:s, s:s}", "error", ag_strerror(err), "mount", c->mountpoint);
	if (f && hex[0])
		json_object_set_new(f, "digest", json_string(hex));
	write_record(c, "STORE_ERROR", f);
}

/* The process (thread group) behind a request's thread id and its command name. */
static void who_is(pid_t tid, pid_t *pid, char comm[MAX_COMM])
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	*pid = tid;
	snprintf(comm, MAX_COMM, "?");
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "Name:\t", 6)) {
			size_t n = strcspn(line + 6, "\n");
			n = n < MAX_COMM - 1 ? n : MAX_COMM - 1;
			memcpy(comm, line + 6, n);
			comm[n] = '\0';
		} else if (!strncmp(line, "Tgid:\t", 6)) {
			*pid = (pid_t)atoi(line + 6);
		}
	}
	fclose(f);
}

static json_t *open_fields(struct fs_ctx *c, const struct limit *l, uint64_t count)
{
	char hex[AG_HEX_LEN + 1];
	uid_t uid = (uid_t)(l->key >> 2);
	ag_digest_hex(&l->digest, hex);
	_cleanup_free_ char *models = models_using(c, &l->digest);
	return json_pack("{s:I, s:I, s:I, s:s, s:s, s:s, s:o, s:I}", "uid", (json_int_t)uid, "gid",
			 (json_int_t)l->gid, "pid", (json_int_t)l->pid, "command", l->comm,
			 "digest", hex, "mount", c->mountpoint, "models", models_array(models),
			 "count", (json_int_t)count);
}

/*
 * MODEL_OPEN: who loaded which model.  One record at the first open by a
 * user of a model in OPEN_QUIET_S seconds; the further opens of that window
 * are counted into one more record ("count") when it ends.
 */
void event_model_open(struct fs_ctx *c, const struct node *n, const struct fuse_ctx *who)
{
	pid_t pid;
	char comm[MAX_COMM];
	json_t *spill = NULL, *f = NULL;
	struct limit copy;
	bool record = false;
	who_is(who->pid, &pid, comm);
	uint64_t key = ((uint64_t)who->uid << 2) | LIM_OPEN;
	pthread_mutex_lock(&c->ev_lock);
	bool seen = seen_recently(c, &n->digest, key, OPEN_QUIET_S, &spill);
	/* the slot of (digest, key) now holds this opener: the last one is named */
	size_t h = limit_hash(&n->digest, key);
	for (size_t i = 0; i < LIMIT_PROBES; i++) {
		struct limit *l = &limit_tab[(h + i) & (LIMIT_SLOTS - 1)];
		if (l->since && l->key == key && ag_digest_eq(&l->digest, &n->digest)) {
			l->pid = pid;
			l->gid = who->gid;
			memcpy(l->comm, comm, sizeof(l->comm));
			copy = *l; /* the record is built outside the lock */
			record = !seen;
			break;
		}
	}
	pthread_mutex_unlock(&c->ev_lock);
	if (spill)
		queue_record(c, spill);
	if (record && (f = open_fields(c, &copy, 1)))
		queue_record(c, f);
}

/*
 * A read that fails verification is EIO; a normal reader gives up.  But a
 * page fault taken inside the kernel on the reader's behalf (mmap with
 * MAP_POPULATE, as llama.cpp maps models; mlock) retries a page whose read
 * failed until the process gets a fatal signal: the reader hangs, spinning
 * (thousands of failed reads a second), and SIGBUS is never delivered.  A
 * process that fails STUCK_READS reads of the same chunk within
 * STUCK_WINDOW_S seconds is in that loop (a plain reader retrying its read a
 * few dozen times is not; when /proc tells, a process blocked in read(2) or
 * pread(2) is never taken for one).  With stuck=kill (the default) it is
 * sent SIGKILL, so loading a corrupt model fails instead of hanging.  Logged
 * at LOG_CRIT and audited (READER_KILLED), saying what was seen.  When the
 * kill fails (no CAP_KILL), the reader is left alone for a back-off that
 * doubles up to KILL_BACKOFF_MAX_S: one log line and one record per reader
 * per back-off, never a flood.
 */
#define STUCK_READS	   512
#define STUCK_WINDOW_S	   5
#define STUCK_SLOTS	   64
#define KILL_BACKOFF_S	   30
#define KILL_BACKOFF_MAX_S 3600

struct stuck {
	pid_t pid;
	ag_digest digest;
	uint64_t chunk;
	unsigned count;
	int64_t since;
	int64_t backoff_until; /* a kill failed: leave pid alone until then */
	int64_t backoff;
};
static struct stuck stuck_tab[STUCK_SLOTS];
static pthread_mutex_t stuck_lock = PTHREAD_MUTEX_INITIALIZER;

enum stuck_verdict { NOT_STUCK, STUCK, BACKING_OFF };

/* Counts one failure of pid on (d, chunk); *seen: failures in *secs seconds. */
static enum stuck_verdict count_failure(pid_t pid, const ag_digest *d, uint64_t chunk,
					unsigned *seen, int64_t *secs, int64_t *backoff)
{
	int64_t now = fs_mono_s();
	struct stuck *slot = NULL, *oldest = &stuck_tab[0];
	enum stuck_verdict v = NOT_STUCK;
	pthread_mutex_lock(&stuck_lock);
	for (size_t i = 0; i < STUCK_SLOTS && !slot; i++) {
		struct stuck *s = &stuck_tab[i];
		if (s->pid == pid && s->chunk == chunk && ag_digest_eq(&s->digest, d))
			slot = s;
		else if (s->since < oldest->since && s->backoff_until < now)
			oldest = s;
	}
	if (slot && slot->backoff_until > now) {
		pthread_mutex_unlock(&stuck_lock);
		return BACKING_OFF;
	}
	if (!slot || now - slot->since > STUCK_WINDOW_S) {
		int64_t b = slot ? slot->backoff : 0;
		slot = slot ? slot : oldest;
		*slot = (struct stuck){pid, *d, chunk, 0, now, 0, b};
	}
	if (++slot->count >= STUCK_READS) {
		v = STUCK;
		*seen = slot->count;
		*secs = now - slot->since;
		slot->count = 0;
		slot->since = now;
		/* set now, cleared by kill_done() when the kill worked */
		slot->backoff = slot->backoff ? slot->backoff * 2 : KILL_BACKOFF_S;
		if (slot->backoff > KILL_BACKOFF_MAX_S)
			slot->backoff = KILL_BACKOFF_MAX_S;
		slot->backoff_until = now + slot->backoff;
		*backoff = slot->backoff;
	}
	pthread_mutex_unlock(&stuck_lock);
	return v;
}

static void kill_done(pid_t pid)
{
	pthread_mutex_lock(&stuck_lock);
	for (size_t i = 0; i < STUCK_SLOTS; i++)
		if (stuck_tab[i].pid == pid)
			stuck_tab[i] = (struct stuck){0};
	pthread_mutex_unlock(&stuck_lock);
}

/* True when /proc shows the thread blocked in a plain read system call. */
static bool in_plain_read(pid_t tid)
{
	char path[64], buf[64];
	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)tid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false; /* not ours to read (no CAP_SYS_PTRACE): count it */
	long nr = -1;
	bool got = fgets(buf, sizeof(buf), f) && sscanf(buf, "%ld", &nr) == 1;
	fclose(f);
	/* read, pread64, readv, preadv, preadv2, copy_file_range, sendfile, splice */
	return got && (nr == 0 || nr == 17 || nr == 19 || nr == 295 || nr == 327 || nr == 326 ||
		       nr == 40 || nr == 275);
}

void event_failed_read(struct fs_ctx *c, const struct node *n, uint64_t chunk, pid_t tid)
{
	pid_t pid;
	char comm[MAX_COMM], hex[AG_HEX_LEN + 1];
	unsigned seen = 0;
	int64_t secs = 0, backoff = 0;
	if (!c->opt.kill_stuck || tid <= 1 || chunk == UINT64_MAX)
		return;
	who_is(tid, &pid, comm);
	if (pid <= 1 || pid == getpid())
		return;
	if (count_failure(pid, &n->digest, chunk, &seen, &secs, &backoff) != STUCK)
		return;
	if (in_plain_read(tid)) {
		kill_done(pid);
		return;
	}
	ag_digest_hex(&n->digest, hex);
	int r = kill(pid, SIGKILL) < 0 ? errno : 0;
	if (r == 0) {
		kill_done(pid);
		atomic_fetch_add(&fs_counters.readers_killed, 1);
		fs_log(LOG_CRIT, FS_MSG_READER_KILLED, served_gen(c), hex,
		       "killed pid %d (%s): %u failed reads of chunk %" PRIu64 " of blob sha256:%s "
		       "in %" PRId64 " s, which failed verification (a page-fault retry loop)",
		       (int)pid, comm, seen, chunk, hex, secs);
	} else {
		fs_log(LOG_CRIT, FS_MSG_READER_KILLED, served_gen(c), hex,
		       "cannot kill pid %d (%s), stuck re-reading chunk %" PRIu64 " of blob "
		       "sha256:%s (%u failed reads in %" PRId64 " s): %s; leaving it alone for "
		       "%" PRId64 " s",
		       (int)pid, comm, chunk, hex, seen, secs, strerror(r), backoff);
	}
	json_t *f = json_pack("{s:I, s:s, s:s, s:I, s:s, s:b, s:I, s:I}", "pid", (json_int_t)pid,
			      "command", comm, "digest", hex, "chunk", (json_int_t)chunk, "mount",
			      c->mountpoint, "killed", r == 0, "failed_reads", (json_int_t)seen,
			      "seconds", (json_int_t)secs);
	if (f && r)
		json_object_set_new(f, "error", json_string(strerror(r)));
	write_record(c, "READER_KILLED", f);
}
