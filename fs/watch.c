/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Following the store.  Generations are immutable, so the only things that
 * change under a running mount are which one is current and which ones
 * exist.  A thread asks the store every second; a new generation gets its
 * trees built once, a change of the current one swaps what the root shows
 * and tells the kernel to forget the root's entries (so new lookups see the
 * new tree at once; files already open keep their inode and their bytes).
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "fs/agfs.h"
#include "fs/journal.h"
#include "fs/metrics.h"

#define READ_AHEAD_KB 1024

/*
 * keyring=: a generation rejected when the mount first saw it is remembered
 * (c->rejected), so that a poll does not read its record again each time
 * nor (apply(), known_only()) count it as a change of versions/.  Its
 * record is read again, at every poll for the current generation and once
 * a minute for the others, to see whether it now names another catalog or
 * signature (agstore sign): trust_check_gen() remembers the names it
 * rejected and checks only a record that names others.  The table is
 * bounded (the entry read longest ago makes room: it is then only read
 * again); an id is forgotten when it leaves the store.
 */
#define REJECTED_REREAD_S 60

static struct fs_rejected *rejected_find(struct fs_ctx *c, uint64_t id)
{
	for (size_t i = 0; i < c->nrejected; i++)
		if (c->rejected[i].id == id)
			return &c->rejected[i];
	return NULL;
}

static void rejected_drop(struct fs_ctx *c, struct fs_rejected *r)
{
	*r = c->rejected[--c->nrejected];
}

static void rejected_add(struct fs_ctx *c, uint64_t id, int64_t now)
{
	struct fs_rejected *r = rejected_find(c, id);
	if (!r && c->nrejected < FS_REJECTED_MAX)
		r = &c->rejected[c->nrejected++];
	if (!r) { /* full: the one read longest ago makes room */
		r = &c->rejected[0];
		for (size_t i = 1; i < c->nrejected; i++)
			if (c->rejected[i].fetched < r->fetched)
				r = &c->rejected[i];
	}
	*r = (struct fs_rejected){.id = id, .fetched = now};
}

static int cmp_id(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Forgets the rejected generations the store no longer has (ids ascending). */
static void rejected_prune(struct fs_ctx *c, const uint64_t *ids, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < c->nrejected; i++)
		if (n && bsearch(&c->rejected[i].id, ids, n, sizeof(*ids), cmp_id))
			c->rejected[k++] = c->rejected[i];
	c->nrejected = k;
}

/* Adds every generation of ids the tree does not know yet (cur: the
 * store's current one). */
static int load_new(struct fs_ctx *c, const uint64_t *ids, size_t n, uint64_t cur)
{
	int64_t now = fs_mono_s();
	rejected_prune(c, ids, n);
	for (size_t i = 0; i < n; i++) {
		pthread_rwlock_rdlock(&c->tree.lock);
		bool known = tree_find_gen(&c->tree, ids[i]) != NULL;
		pthread_rwlock_unlock(&c->tree.lock);
		if (known)
			continue;
		struct fs_rejected *rej = rejected_find(c, ids[i]);
		if (rej && ids[i] != cur && now - rej->fetched < REJECTED_REREAD_S)
			continue;
		ag_gen *g = NULL;
		int r = ag_gen_get(c->store, ids[i], &g);
		if (r == -ENOENT)
			continue; /* deleted since the listing */
		if (r < 0)
			return r;
		if (rej)
			rej->fetched = now;
		/* -EPERM at once for a record rejected as it is (trust.c) */
		if ((r = trust_check_gen(c, g)) < 0) { /* keyring=: not shown */
			if (r == -EPERM) {
				rejected_add(c, ids[i], now);
			} else if (c->uncheckable_id != ids[i] || c->uncheckable_err != r) {
				syslog(LOG_ERR,
				       "cannot check generation %" PRIu64 "'s catalog: %s; "
				       "not shown until it can be, trying again every second",
				       ids[i], ag_strerror(r));
				c->uncheckable_id = ids[i];
				c->uncheckable_err = r;
			}
			ag_gen_free(g);
			continue;
		}
		if (c->uncheckable_id == ids[i])
			c->uncheckable_id = 0;
		if (rej)
			rejected_drop(c, rej);
		struct gtree *gt;
		pthread_rwlock_wrlock(&c->tree.lock);
		r = tree_add_gen(&c->tree, c->store, g, &gt);
		pthread_rwlock_unlock(&c->tree.lock);
		if (r < 0)
			return r;
	}
	return 0;
}

struct change {
	bool root;	/* the generation at the root changed */
	bool versions;	/* versions/ lists something else */
	uint64_t *gone; /* generations the store dropped (their names are invalidated) */
	size_t ngone;
	struct fs_inval *held; /* entries the kernel holds in trees no longer served */
	size_t nheld;
};

#define HELD_MAX 4096 /* entries invalidated per poll */

static void change_free(struct change *ch)
{
	for (size_t i = 0; i < ch->nheld; i++)
		free(ch->held[i].name);
	free(ch->held);
	free(ch->gone);
}

static bool same_listing(const struct fs_tree *t, const uint64_t *ids, size_t n)
{
	if (t->nlisted != n)
		return false;
	size_t k = 0;
	for (size_t i = 0; i < t->ngens; i++)
		if (t->gens[i]->listed && ids[k++] != t->gens[i]->id)
			return false;
	return true;
}

/* The listed generations missing from ids (ascending), into ch->gone. */
static int find_gone(const struct fs_tree *t, const uint64_t *ids, size_t n, struct change *ch)
{
	size_t j = 0;
	for (size_t i = 0; i < t->ngens; i++) {
		const struct gtree *gt = t->gens[i];
		while (j < n && ids[j] < gt->id)
			j++;
		if (!gt->listed || (j < n && ids[j] == gt->id))
			continue;
		uint64_t *v = realloc(ch->gone, (ch->ngone + 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		ch->gone = v;
		ch->gone[ch->ngone++] = gt->id;
	}
	return 0;
}

/* Keeps, in place, the ids the tree holds: one it does not (rejected by
 * keyring=, deleted since the listing, not checked yet) cannot be listed, so
 * it is no change of versions/.  Returns how many are kept. */
static size_t known_only(struct fs_tree *t, uint64_t *ids, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (tree_find_gen(t, ids[i]))
			ids[k++] = ids[i];
	return k;
}

/* With the write lock held: apply the store's listing (ids ascending) and
 * current id, then free what nothing reaches any more. */
static int apply(struct fs_ctx *c, uint64_t *ids, size_t n, uint64_t cur, struct change *ch)
{
	struct fs_tree *t = &c->tree;
	int r = 0;
	n = known_only(t, ids, n);
	if (!same_listing(t, ids, n)) {
		if ((r = find_gone(t, ids, n, ch)) < 0)
			return r;
		tree_set_listed(t, ids, n);
		ch->versions = true;
	}
	struct gtree *sc = cur ? tree_find_gen(t, cur) : NULL;
	if (sc && sc->rejected)
		sc = NULL; /* keyring=: its catalog failed since; keep serving ours */
	if (sc != t->store_current) {
		t->store_current = sc;
		ch->versions = true;
	}
	/* pinned, the root never moves; a current one not loaded (yet): keep
	 * serving what we serve */
	if (!c->opt.generation && (sc || !cur) && sc != t->current) {
		struct gtree *old = t->current;
		if ((r = tree_set_current(t, c->store, sc)) < 0)
			return r;
		/* the previous root's blobs stay reachable for a while: a loader
		 * that read its manifest just before the switch still finds them */
		t->grace = old;
		t->grace_until = fs_mono_s() + c->opt.grace;
		ch->root = true;
	}
	tree_sweep(t, fs_mono_s());
	ch->nheld = tree_held_entries(t, &ch->held, HELD_MAX);
	return 0;
}

static void notify(struct fs_ctx *c, const struct change *ch)
{
	struct fuse_session *se = c->se;
	if (!se || !atomic_load(&c->initialized))
		return;
	if (ch->root) {
		fuse_lowlevel_notify_inval_entry(se, FUSE_ROOT_ID, "manifests", 9);
		fuse_lowlevel_notify_inval_entry(se, FUSE_ROOT_ID, "blobs", 5);
		fuse_lowlevel_notify_inval_inode(se, FUSE_ROOT_ID, 0, 0);
	}
	if (ch->versions) {
		fuse_ino_t v = c->tree.versions->ino;
		char name[32];
		fuse_lowlevel_notify_inval_entry(se, v, "current", 7);
		fuse_lowlevel_notify_inval_entry(se, v, ".keep", 5);
		for (size_t i = 0; i < ch->ngone; i++) {
			int len = snprintf(name, sizeof(name), "%" PRIu64, ch->gone[i]);
			fuse_lowlevel_notify_inval_entry(se, v, name, (size_t)len);
		}
		fuse_lowlevel_notify_inval_inode(se, v, 0, 0);
	}
	/* a dentry still in use (a working directory, an open file) is only
	 * unhashed by the invalidation of its generation's name; its children
	 * looked up since would stay cached after it is let go, and keep the
	 * tree: drop them at every poll until nothing holds it */
	for (size_t i = 0; i < ch->nheld; i++)
		fuse_lowlevel_notify_inval_entry(se, ch->held[i].parent, ch->held[i].name,
						 strlen(ch->held[i].name));
}

/*
 * keyring=: at every switch, the generation about to be served is checked
 * again if its record now names another catalog or signature than when it
 * was first verified (agstore sign, or a forgery in the index).
 */
static int recheck(struct fs_ctx *c, uint64_t cur)
{
	if (!c->trust || !cur)
		return 0;
	pthread_rwlock_rdlock(&c->tree.lock);
	struct gtree *gt = tree_find_gen(&c->tree, cur);
	bool serving = c->tree.current == gt;
	ag_gen known = {0};
	if (gt)
		known = *gt->gen;
	pthread_rwlock_unlock(&c->tree.lock);
	if (!gt || serving)
		return 0;
	_cleanup_gen_ ag_gen *g = NULL;
	int r = ag_gen_get(c->store, cur, &g);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	if (g->has_catalog == known.has_catalog && g->has_signature == known.has_signature &&
	    (!g->has_catalog || ag_digest_eq(&g->catalog, &known.catalog)) &&
	    (!g->has_signature || ag_digest_eq(&g->signature, &known.signature)) && !gt->rejected)
		return 0;
	r = trust_check_gen(c, g);
	if (r < 0 && r != -EPERM)
		return r;
	pthread_rwlock_wrlock(&c->tree.lock);
	gt->rejected = r == -EPERM;
	if (r == 0) { /* the record the tree was built from gets the new names */
		gt->gen->has_catalog = g->has_catalog;
		gt->gen->catalog = g->catalog;
		gt->gen->has_signature = g->has_signature;
		gt->gen->signature = g->signature;
	}
	pthread_rwlock_unlock(&c->tree.lock);
	return 0;
}

/*
 * One look at the store; returns what changed in *ch (change_free() it).  "Which generations
 * exist" and "which is current" come from one snapshot, read under the
 * lease guard and leased before the guard is let go (lease.c), so gc cannot
 * delete the generation the root is about to serve.
 */
static int refresh(struct fs_ctx *c, struct change *ch)
{
	_cleanup_free_ uint64_t *ids = NULL;
	size_t n = 0;
	uint64_t cur = 0;
	int guard;
	memset(ch, 0, sizeof(*ch));
	lease_guard(c, &guard);
	int r = ag_gen_snapshot(c->store, &ids, &n, &cur); /* ids ascending */
	if (r == 0)
		r = lease_served(c, cur);
	lease_unguard(guard);
	if (r < 0)
		return r;
	if ((r = load_new(c, ids, n, cur)) < 0 || (r = recheck(c, cur)) < 0)
		return r;
	pthread_rwlock_wrlock(&c->tree.lock);
	r = apply(c, ids, n, cur, ch);
	pthread_rwlock_unlock(&c->tree.lock);
	if (r == 0)
		r = lease_served(c, cur); /* the new root's blobs; an ended grace period */
	lease_flush(c);			  /* blobs closed since the last look */
	return r;
}

int watch_load(struct fs_ctx *c)
{
	struct change ch;
	int r = refresh(c, &ch);
	change_free(&ch);
	if (r < 0 || !c->opt.generation)
		return r;
	pthread_rwlock_wrlock(&c->tree.lock);
	struct gtree *gt = tree_find_gen(&c->tree, c->opt.generation);
	r = gt ? tree_set_current(&c->tree, c->store, gt) : -ENOENT;
	pthread_rwlock_unlock(&c->tree.lock);
	return r;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* After the kernel's INIT: tune read-ahead, then tell whoever waits. */
static void when_ready(struct fs_ctx *c)
{
	while (!atomic_load(&c->initialized) && !atomic_load(&c->stopping))
		sleep_ms(5);
	if (atomic_load(&c->stopping))
		return;
	int r = daemon_raise_readahead(c->mountpoint, READ_AHEAD_KB);
	if (r < 0 && r != -EACCES && r != -EPERM && r != -EROFS)
		syslog(LOG_WARNING, "cannot raise read-ahead of %s: %s", c->mountpoint,
		       strerror(-r));
	daemon_ready(c);
}

static void *watch_main(void *arg)
{
	struct fs_ctx *c = arg;
	int last_err = 0;
	int64_t metrics_at = 0;
	when_ready(c);
	while (!atomic_load(&c->stopping)) {
		int64_t now = fs_mono_s();
		if (now - metrics_at >= FS_METRICS_EVERY_S) {
			metrics_write(c);
			metrics_at = now;
		}
		for (unsigned ms = 0; ms < FS_POLL_MS && !atomic_load(&c->stopping); ms += 50)
			sleep_ms(50);
		if (atomic_load(&c->stopping))
			break;
		struct change ch;
		int r = refresh(c, &ch);
		if (r == -AG_EINDEX)
			event_store_error(c, NULL, r); /* an alert, once a minute */
		else if (r < 0 && r != last_err)
			syslog(LOG_ERR, "cannot read the generations of %s: %s", c->store_path,
			       ag_strerror(r));
		last_err = r;
		notify(c, &ch); /* whatever was applied, even if a later step failed */
		if (ch.root) {
			uint64_t id = c->tree.current ? c->tree.current->id : 0;
			fs_log(LOG_INFO, FS_MSG_GENERATION_SWITCH, id, NULL,
			       "now serving generation %" PRIu64, id);
			metrics_write(c);
		}
		change_free(&ch);
	}
	return NULL;
}

int watch_start(struct fs_ctx *c)
{
	int r = pthread_create(&c->watcher, NULL, watch_main, c);
	if (r != 0)
		return -r;
	c->watcher_started = true;
	return 0;
}

void watch_stop(struct fs_ctx *c)
{
	atomic_store(&c->stopping, true);
	if (c->watcher_started)
		pthread_join(c->watcher, NULL);
	c->watcher_started = false;
}
