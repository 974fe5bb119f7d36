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

#define FAILURE_QUIET_S 60
#define OPEN_QUIET_S	10
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

static void *writer_main(void *arg)
{
	struct fs_ctx *c = arg;
	struct fs_auditq *q = c->auditq;
	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (q->n == 0 && !q->stop)
			pthread_cond_wait(&q->cond, &q->lock);
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

/* True when the same (digest, key) was recorded less than quiet seconds ago. */
static bool seen_recently(struct fs_ctx *c, const ag_digest *d, uint64_t key, int64_t quiet)
{
	int64_t now = time(NULL);
	bool seen = false;
	pthread_mutex_lock(&c->ev_lock);
	for (size_t i = 0; i < sizeof(c->recent) / sizeof(c->recent[0]) && !seen; i++) {
		struct fs_recent *r = &c->recent[i];
		seen = r->when && r->key == key && now - r->when < quiet &&
		       ag_digest_eq(&r->digest, d);
	}
	if (!seen) {
		unsigned slot = c->recent_next++ % (sizeof(c->recent) / sizeof(c->recent[0]));
		c->recent[slot] = (struct fs_recent){*d, key, now};
	}
	pthread_mutex_unlock(&c->ev_lock);
	return seen;
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

void event_verify_failure(struct fs_ctx *c, const struct node *n, uint64_t chunk, int err)
{
	char hex[AG_HEX_LEN + 1];
	ag_digest_hex(&n->digest, hex);
	if (seen_recently(c, &n->digest, chunk << 1, FAILURE_QUIET_S))
		return;
	_cleanup_free_ char *models = models_using(c, &n->digest);
	const char *why = err == -EIO && chunk != UINT64_MAX ? "chunk hash mismatch"
			  : err == -ENOENT		     ? "object missing"
							     : ag_strerror(err);
	if (chunk == UINT64_MAX)
		syslog(LOG_CRIT, "blob sha256:%s failed verification (%s); used by %s", hex, why,
		       models && *models ? models : "no model");
	else
		syslog(LOG_CRIT,
		       "blob sha256:%s chunk %" PRIu64 " failed verification (%s); used by %s", hex,
		       chunk, why, models && *models ? models : "no model");
	json_t *f = json_pack("{s:s, s:s, s:s, s:o}", "digest", hex, "error", why, "mount",
			      c->mountpoint, "models", models_array(models));
	if (f && chunk != UINT64_MAX)
		json_object_set_new(f, "chunk", json_integer((json_int_t)chunk));
	write_record(c, "VERIFY_FAILURE", f);
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

void event_model_open(struct fs_ctx *c, const struct node *n, const struct fuse_ctx *who)
{
	pid_t pid;
	char comm[MAX_COMM], hex[AG_HEX_LEN + 1];
	who_is(who->pid, &pid, comm);
	if (seen_recently(c, &n->digest, (uint64_t)pid << 1 | 1, OPEN_QUIET_S))
		return;
	ag_digest_hex(&n->digest, hex);
	_cleanup_free_ char *models = models_using(c, &n->digest);
	json_t *f =
		json_pack("{s:I, s:I, s:I, s:s, s:s, s:s, s:o}", "uid", (json_int_t)who->uid, "gid",
			  (json_int_t)who->gid, "pid", (json_int_t)pid, "command", comm, "digest",
			  hex, "mount", c->mountpoint, "models", models_array(models));
	if (f)
		queue_record(c, f);
}

/*
 * A read that fails verification is EIO; a normal reader gives up.  But a
 * page fault taken inside the kernel on the reader's behalf (mmap with
 * MAP_POPULATE, as llama.cpp maps models; mlock) retries a page whose read
 * failed until the process gets a fatal signal: the reader hangs, spinning,
 * and SIGBUS is never delivered.  A process that fails STUCK_READS reads of
 * the same chunk within STUCK_WINDOW_S seconds is in that loop; with
 * stuck=kill (the default) it is sent SIGKILL, so loading a corrupt model
 * fails instead of hanging.  Logged at LOG_CRIT and audited (READER_KILLED).
 */
#define STUCK_READS    32
#define STUCK_WINDOW_S 5
#define STUCK_SLOTS    16

struct stuck {
	pid_t pid;
	ag_digest digest;
	uint64_t chunk;
	unsigned count;
	int64_t since;
};
static struct stuck stuck_tab[STUCK_SLOTS];
static pthread_mutex_t stuck_lock = PTHREAD_MUTEX_INITIALIZER;

/* True when this failure makes pid's count reach STUCK_READS. */
static bool count_failure(pid_t pid, const ag_digest *d, uint64_t chunk)
{
	int64_t now = time(NULL);
	struct stuck *slot = NULL, *oldest = &stuck_tab[0];
	pthread_mutex_lock(&stuck_lock);
	for (size_t i = 0; i < STUCK_SLOTS && !slot; i++) {
		struct stuck *s = &stuck_tab[i];
		if (s->pid == pid && s->chunk == chunk && ag_digest_eq(&s->digest, d))
			slot = s;
		else if (s->since < oldest->since)
			oldest = s;
	}
	if (!slot || now - slot->since > STUCK_WINDOW_S) {
		slot = slot ? slot : oldest;
		*slot = (struct stuck){pid, *d, chunk, 0, now};
	}
	bool stuck = ++slot->count == STUCK_READS;
	if (stuck)
		slot->pid = 0;
	pthread_mutex_unlock(&stuck_lock);
	return stuck;
}

void event_failed_read(struct fs_ctx *c, const struct node *n, uint64_t chunk, pid_t tid)
{
	pid_t pid;
	char comm[MAX_COMM], hex[AG_HEX_LEN + 1];
	if (!c->opt.kill_stuck || tid <= 1 || chunk == UINT64_MAX)
		return;
	who_is(tid, &pid, comm);
	if (pid <= 1 || pid == getpid() || !count_failure(pid, &n->digest, chunk))
		return;
	ag_digest_hex(&n->digest, hex);
	int r = kill(pid, SIGKILL);
	syslog(LOG_CRIT,
	       "killed pid %d (%s): it kept re-reading chunk %" PRIu64 " of blob sha256:%s, which "
	       "failed verification (stuck in a page-fault retry loop)%s",
	       (int)pid, comm, chunk, hex, r < 0 ? " - but kill failed" : "");
	json_t *f = json_pack("{s:I, s:s, s:s, s:I, s:s, s:b}", "pid", (json_int_t)pid, "command",
			      comm, "digest", hex, "chunk", (json_int_t)chunk, "mount",
			      c->mountpoint, "killed", r == 0);
	write_record(c, "READER_KILLED", f);
}
