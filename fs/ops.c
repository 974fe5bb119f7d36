/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The FUSE low-level operations.  Lookups and attributes come from the
 * inode table (tree.c) under its read lock; opens share one verified blob
 * per digest (blobs.c); a read is replied from the thread's buffer only
 * after every chunk it touches matched the chunk table.  Everything that
 * would change the tree answers EROFS (the mount is also "ro", so the
 * kernel refuses most of them before they get here).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <syslog.h>

#include "fs/agfs.h"

#define BLKSIZE 131072

struct handle {
	struct node *node;
	struct fs_blob *blob;	  /* N_BLOB only */
	struct fs_stream *stream; /* N_BLOB: its read-ahead (NULL: off) */
};

struct dirh {
	struct node *dir;
	struct dent *ents;
	size_t n;
};

static struct fs_ctx *ctx(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* A reference to a node the kernel holds, and its end (the node is alive
 * until then). */
static void ref(struct fs_tree *t, struct node *n)
{
	pthread_rwlock_rdlock(&t->lock);
	node_ref(n, 1);
	pthread_rwlock_unlock(&t->lock);
}

static void unref(struct fs_tree *t, struct node *n, uint64_t k)
{
	pthread_rwlock_rdlock(&t->lock);
	node_unref(n, k);
	pthread_rwlock_unlock(&t->lock);
}

/* With the tree's read lock held. */
static void fill_attr(const struct fs_tree *t, const struct node *n, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	st->st_nlink = 1;
	st->st_size = (off_t)n->size;
	switch (n->kind) {
	case N_ROOT:
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 5;
		break;
	case N_VERSIONS:
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2 + t->nlisted;
		break;
	case N_DIR:
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2 + n->nsubdirs;
		st->st_size = (off_t)n->nchild;
		break;
	case N_BLOB:
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = n->nlink ? n->nlink : 1;
		break;
	case N_TEXT:
		st->st_mode = S_IFREG | 0444;
		break;
	case N_LINK:
		st->st_mode = S_IFLNK | 0777;
		break;
	}
	st->st_blksize = BLKSIZE;
	st->st_blocks = (blkcnt_t)((n->size + 511) / 512);
	st->st_atim.tv_sec = st->st_mtim.tv_sec = st->st_ctim.tv_sec = (time_t)n->mtime;
	st->st_atim.tv_nsec = st->st_mtim.tv_nsec = st->st_ctim.tv_nsec = (long)n->mtime_ns;
}

static bool is_dynamic(const struct node *n)
{
	return n->kind == N_ROOT || n->kind == N_VERSIONS;
}

static void fill_entry(const struct fs_tree *t, const struct node *dir, const struct node *n,
		       struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = n->ino;
	e->generation = 1;
	fill_attr(t, n, &e->attr);
	e->attr_timeout = is_dynamic(n) ? FS_DYN_TIMEOUT : FS_STATIC_TIMEOUT;
	e->entry_timeout = is_dynamic(dir) ? FS_DYN_TIMEOUT : FS_STATIC_TIMEOUT;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs_ctx *c = userdata;
	conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
				  FUSE_CAP_SPLICE_MOVE | FUSE_CAP_AUTO_INVAL_DATA);
	unsigned wanted = FUSE_CAP_ASYNC_READ | FUSE_CAP_READDIRPLUS | FUSE_CAP_CACHE_SYMLINKS |
			  FUSE_CAP_PARALLEL_DIROPS;
	conn->want |= conn->capable & wanted;
	conn->max_readahead = fs_max_read(&c->opt);
	conn->max_read = fs_max_read(&c->opt); /* as the max_read mount option says */
	if (conn->max_background < 16)
		conn->max_background = 16;
	atomic_store(&c->initialized, true);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_tree *t = &ctx(req)->tree;
	struct fuse_entry_param e;
	int err = 0;
	pthread_rwlock_rdlock(&t->lock);
	struct node *dir = tree_node(t, parent), *n = NULL;
	if (!dir)
		err = ENOENT;
	else if (!node_is_dir(dir))
		err = ENOTDIR;
	else if (!(n = tree_lookup(t, dir, name))) {
		err = ENOENT;
		tree_note_miss(t, dir, name); /* the kernel keeps a negative dentry */
	} else
		fill_entry(t, dir, n, &e);
	if (n)
		node_ref(n, 1); /* the kernel's lookup count, once it has the reply */
	pthread_rwlock_unlock(&t->lock);
	if (err)
		fuse_reply_err(req, err);
	else if (fuse_reply_entry(req, &e) != 0)
		unref(t, n, 1); /* the kernel never saw it */
}

/* The kernel forgets nlookup lookups of ino: the node may go at the next
 * sweep once nothing else holds it (tree.c). */
static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs_tree *t = &ctx(req)->tree;
	pthread_rwlock_rdlock(&t->lock);
	struct node *n = tree_node(t, ino);
	if (n)
		node_unref(n, nlookup);
	pthread_rwlock_unlock(&t->lock);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs_tree *t = &ctx(req)->tree;
	pthread_rwlock_rdlock(&t->lock);
	for (size_t i = 0; i < count; i++) {
		struct node *n = tree_node(t, forgets[i].ino);
		if (n)
			node_unref(n, forgets[i].nlookup);
	}
	pthread_rwlock_unlock(&t->lock);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_tree *t = &ctx(req)->tree;
	struct stat st;
	pthread_rwlock_rdlock(&t->lock);
	struct node *n = tree_node(t, ino);
	if (n)
		fill_attr(t, n, &st);
	pthread_rwlock_unlock(&t->lock);
	if (!n)
		fuse_reply_err(req, ENOENT);
	else
		fuse_reply_attr(req, &st, is_dynamic(n) ? FS_DYN_TIMEOUT : FS_STATIC_TIMEOUT);
}

/* A node the kernel names in a request: it holds a lookup of it for as
 * long as the request runs, so the node stays after the lock is let go. */
static struct node *get_node(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_tree *t = &ctx(req)->tree;
	pthread_rwlock_rdlock(&t->lock);
	struct node *n = tree_node(t, ino);
	pthread_rwlock_unlock(&t->lock);
	return n;
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_tree *t = &ctx(req)->tree;
	pthread_rwlock_rdlock(&t->lock);
	struct node *n = tree_node(t, ino);
	if (!n || n->kind != N_LINK)
		fuse_reply_err(req, n ? EINVAL : ENOENT);
	else
		fuse_reply_readlink(req, n->text);
	pthread_rwlock_unlock(&t->lock);
}

/* ---------- directories ---------- */

static void dirh_ref(struct dirh *h, bool take);

static void release_dirh(struct fs_tree *t, struct dirh *h)
{
	pthread_rwlock_rdlock(&t->lock);
	dirh_ref(h, false);
	pthread_rwlock_unlock(&t->lock);
	free(h->ents);
	free(h);
}

/* A listing holds its directory and, for the root and versions/ (whose
 * entries change with the store), every entry it snapshot.  With the read
 * lock held. */
static void dirh_ref(struct dirh *h, bool take)
{
	size_t n = is_dynamic(h->dir) ? h->n : 0;
	for (size_t i = 0; i <= n; i++) {
		struct node *x = i ? h->ents[i - 1].node : h->dir;
		if (take)
			node_ref(x, 1);
		else
			node_unref(x, 1);
	}
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_tree *t = &ctx(req)->tree;
	struct dirh *h = calloc(1, sizeof(*h));
	int r = h ? 0 : -ENOMEM;
	pthread_rwlock_rdlock(&t->lock);
	struct node *n = tree_node(t, ino);
	if (r == 0 && !n)
		r = -ENOENT;
	else if (r == 0 && !node_is_dir(n))
		r = -ENOTDIR;
	else if (r == 0)
		r = tree_list(t, n, &h->ents, &h->n);
	if (r == 0) {
		h->dir = n;
		dirh_ref(h, true);
	}
	pthread_rwlock_unlock(&t->lock);
	if (r < 0) {
		free(h);
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = (uintptr_t)h;
	fi->keep_cache = !is_dynamic(n);
	fi->cache_readdir = !is_dynamic(n);
	if (fuse_reply_open(req, fi) != 0)
		release_dirh(t, h);
}

/* Entry i of a listing: ".", "..", then the snapshot. */
static void dir_entry(const struct dirh *h, size_t i, const char **name, struct node **n)
{
	if (i == 0) {
		*name = ".";
		*n = h->dir;
	} else if (i == 1) {
		*name = "..";
		*n = h->dir->parent ? h->dir->parent : h->dir;
	} else {
		*name = h->ents[i - 2].name;
		*n = h->ents[i - 2].node;
	}
}

/* Entries [from, to) of a readdirplus reply the kernel never saw: the
 * lookups they were counted as are dropped again. */
static void unref_entries(struct fs_tree *t, const struct dirh *h, size_t from, size_t to)
{
	pthread_rwlock_rdlock(&t->lock);
	for (size_t i = from < 2 ? 2 : from; i < to; i++)
		node_unref(h->ents[i - 2].node, 1);
	pthread_rwlock_unlock(&t->lock);
}

static void do_readdir(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi, bool plus)
{
	struct fs_tree *t = &ctx(req)->tree;
	struct dirh *h = (struct dirh *)(uintptr_t)fi->fh;
	_cleanup_free_ char *buf = malloc(size);
	size_t pos = 0, i = off < 0 ? 0 : (size_t)off, first = i;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_rwlock_rdlock(&t->lock);
	for (; i < h->n + 2; i++) {
		const char *name;
		struct node *n;
		size_t ent;
		dir_entry(h, i, &name, &n);
		if (plus) {
			struct fuse_entry_param e;
			fill_entry(t, h->dir, n, &e);
			ent = fuse_add_direntry_plus(req, buf + pos, size - pos, name, &e,
						     (off_t)i + 1);
		} else {
			struct stat st;
			fill_attr(t, n, &st);
			ent = fuse_add_direntry(req, buf + pos, size - pos, name, &st,
						(off_t)i + 1);
		}
		if (ent > size - pos)
			break;
		pos += ent;
		/* the kernel counts a lookup of every entry but . and .. */
		if (plus && i >= 2)
			node_ref(n, 1);
	}
	pthread_rwlock_unlock(&t->lock);
	if (fuse_reply_buf(req, buf, pos) != 0 && plus)
		unref_entries(t, h, first, i);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirh *h = (struct dirh *)(uintptr_t)fi->fh;
	if (h)
		release_dirh(&ctx(req)->tree, h);
	fuse_reply_err(req, 0);
}

/* ---------- files ---------- */

/* What an open of a blob that gave r answers, with the alerts it needs. */
static int open_result(struct fs_ctx *c, fuse_req_t req, struct node *n, int r, uint64_t bad)
{
	ag_blob_info bi;
	if (r == -ENOENT && ag_blob_lookup(c->store, &n->digest, &bi) == -ENOENT)
		return -ENOENT; /* its generation was deleted (gc): not damage */
	if (fs_is_verdict(r)) {
		char hex[AG_HEX_LEN + 1];
		ag_digest_hex(&n->digest, hex);
		if (r == -ENOENT)
			syslog(LOG_CRIT, "blob sha256:%s is missing from the store", hex);
		event_verify_failure(c, n, bad, r);
		return -EIO;
	}
	if (r < 0) {
		event_store_error(c, n, r);
		return r == -ENOMEM || r == -EMFILE || r == -ENFILE ? r : -EIO;
	}
	if (n->is_model)
		event_model_open(c, n, fuse_req_ctx(req));
	return 0;
}

static void reply_open(struct fs_ctx *c, fuse_req_t req, struct fuse_file_info *fi,
		       struct handle *h, int r)
{
	if (r < 0) {
		if (h && blobs_release(&c->blobs, h->blob))
			lease_sync(c);
		free(h);
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = (uintptr_t)h;
	fi->keep_cache = 1; /* immutable: verified pages stay valid for every later open */
	fi->noflush = 1;
	ref(&c->tree, h->node); /* the handle holds its node until op_release */
	if (h->blob)
		h->stream = ra_open(c, h->blob);
	if (fuse_reply_open(req, fi) != 0) {
		ra_close(c, h->stream);
		unref(&c->tree, h->node, 1);
		if (blobs_release(&c->blobs, h->blob))
			lease_sync(c);
		free(h);
	}
}

void ops_open_hashed(struct fs_ctx *c, fuse_req_t req, struct fuse_file_info *fi, struct node *n,
		     void *hv, int err, uint64_t bad)
{
	struct handle *h = hv;
	int r = err;
	if (r == 0) /* hashed whole and remembered: this open does not hash again */
		r = blobs_open(c, n, true, &h->blob, &bad);
	reply_open(c, req, fi, h, open_result(c, req, n, r, bad));
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_ctx *c = ctx(req);
	struct node *n = get_node(req, ino);
	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (node_is_dir(n) || n->kind == N_LINK) {
		fuse_reply_err(req, node_is_dir(n) ? EISDIR : ELOOP);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & (O_TRUNC | O_CREAT | O_APPEND))) {
		fuse_reply_err(req, EROFS);
		return;
	}
	struct handle *h = calloc(1, sizeof(*h));
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->node = n;
	bool full = c->opt.verify == FS_VERIFY_FULL;
	if (n->kind == N_BLOB && full && c->hashers && n->size > FS_INLINE_HASH &&
	    !blobs_verified(c, n)) {
		hash_open(c, req, fi, n, h); /* answered once the blob is hashed */
		return;
	}
	uint64_t bad = UINT64_MAX;
	int r = 0;
	if (n->kind == N_BLOB) {
		r = blobs_open(c, n, full, &h->blob, &bad);
		r = open_result(c, req, n, r, bad);
	}
	reply_open(c, req, fi, h, r);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct node *n = h->node;
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (n->kind == N_TEXT) {
		size_t o = (uint64_t)off < n->size ? (size_t)off : n->size;
		size_t len = n->size - o < size ? n->size - o : size;
		fuse_reply_buf(req, n->text + o, len);
		return;
	}
	const uint8_t *out;
	uint64_t bad;
	struct fs_ctx *c = ctx(req);
	if (ra_read(c, h->stream, req, (uint64_t)off, size))
		return; /* answered from the verified read-ahead window */
	ssize_t r = blobs_read(&c->blobs, h->blob, (uint64_t)off, size, &out, &bad);
	if (r == -EBADMSG || r == -AG_ECORRUPT || r == -AG_EDIGEST) {
		/* checked, and wrong: alert, and count it against a stuck reader */
		event_verify_failure(c, n, bad, (int)r);
		event_failed_read(c, n, bad, fuse_req_ctx(req)->pid);
		fuse_reply_err(req, EIO);
	} else if (r < 0) {
		/* could not check: an error to report and retry, never a verdict */
		event_store_error(c, n, (int)r);
		fuse_reply_err(req, r == -ENOMEM ? ENOMEM : EIO);
	} else {
		fuse_reply_buf(req, (const char *)out, (size_t)r);
	}
	blobs_read_done(&c->blobs);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	if (h) {
		ra_close(ctx(req), h->stream); /* before the blob it reads */
		if (blobs_release(&ctx(req)->blobs, h->blob))
			lease_sync(ctx(req)); /* the digest is no longer leased */
		unref(&ctx(req)->tree, h->node, 1);
		free(h);
	}
	fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_ctx *c = ctx(req);
	struct statvfs sv;
	/* the store's file system: df shows its size and free space */
	if (fstatvfs(ag_store_dirfd(c->store), &sv) < 0)
		memset(&sv, 0, sizeof(sv));
	pthread_rwlock_rdlock(&c->tree.lock);
	sv.f_files = c->tree.ninodes;
	pthread_rwlock_unlock(&c->tree.lock);
	sv.f_ffree = sv.f_favail = 0;
	sv.f_namemax = 255;
	sv.f_flag |= ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

/* ---------- everything that would change the tree ---------- */

static void rofs(fuse_req_t req)
{
	fuse_reply_err(req, EROFS);
}

static void op_mknod(fuse_req_t req, fuse_ino_t p, const char *nm, mode_t m, dev_t d)
{
	rofs(req);
}
static void op_mkdir(fuse_req_t req, fuse_ino_t p, const char *nm, mode_t m)
{
	rofs(req);
}
static void op_unlink(fuse_req_t req, fuse_ino_t p, const char *nm)
{
	rofs(req);
}
static void op_symlink(fuse_req_t req, const char *l, fuse_ino_t p, const char *nm)
{
	rofs(req);
}
static void op_rename(fuse_req_t req, fuse_ino_t p, const char *nm, fuse_ino_t np, const char *nn,
		      unsigned int flags)
{
	rofs(req);
}
static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t np, const char *nn)
{
	rofs(req);
}
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *a, int set,
		       struct fuse_file_info *fi)
{
	rofs(req);
}
static void op_write(fuse_req_t req, fuse_ino_t ino, const char *b, size_t n, off_t o,
		     struct fuse_file_info *fi)
{
	rofs(req);
}
static void op_create(fuse_req_t req, fuse_ino_t p, const char *nm, mode_t m,
		      struct fuse_file_info *fi)
{
	rofs(req);
}
static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *nm, const char *v, size_t n,
			int fl)
{
	rofs(req);
}
static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *nm)
{
	rofs(req);
}
static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t o, off_t n,
			 struct fuse_file_info *fi)
{
	rofs(req);
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.readlink = op_readlink,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.statfs = op_statfs,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_unlink,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.setattr = op_setattr,
	.write = op_write,
	.create = op_create,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
	.fallocate = op_fallocate,
};
