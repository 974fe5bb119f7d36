/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Ollama layout as inodes.  Every generation gets its own directories
 * (manifests/<host>/<namespace>/<model>/<tag>, blobs/, versions/<id>/), built
 * once into a node group, so inode numbers are stable and a process inside
 * an old tree keeps a consistent view.  Regular files are shared across
 * generations when their attributes are identical (same digest, size and
 * mtime), so the kernel keeps one page cache per blob.  Nodes never change
 * once published; the root and versions/ are computed from the tree's state
 * under its lock.  A generation's groups are freed (tree_sweep) once the
 * mount no longer serves them and the kernel and open handles hold none of
 * their nodes; a shared file goes once no live directory lists it and
 * nothing holds it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fs/agfs.h"
#include "store/catalog.h"
#include "store/provenance.h"

#define MAX_NAME    255
#define MODEL_MEDIA "application/vnd.ollama.image.model"

bool node_is_dir(const struct node *n)
{
	return n->kind == N_ROOT || n->kind == N_VERSIONS || n->kind == N_DIR;
}

/*
 * Inode numbers are derived from what a node is (a file's digest, size and
 * time; a directory's generation and path), not from the order nodes were
 * made, so they are the same after a remount whatever was imported while
 * the last mount ran.  The first few (0 unused, 1 root, 2 versions/, the
 * placeholders) are fixed; a derived number that is taken moves to the next
 * free one.
 */
#define FIXED_INOS 16u

static uint64_t ino_key(char tag, uint64_t a, const void *b, size_t blen)
{
	uint8_t buf[512];
	ag_digest d;
	size_t n = 0;
	buf[n++] = (uint8_t)tag;
	memcpy(buf + n, &a, sizeof(a));
	n += sizeof(a);
	if (blen > sizeof(buf) - n)
		blen = sizeof(buf) - n;
	if (blen)
		memcpy(buf + n, b, blen);
	ag_sha256(buf, n + blen, &d);
	uint64_t k;
	memcpy(&k, d.b, sizeof(k));
	k &= (1ull << 62) - 1;
	return k < FIXED_INOS ? k + FIXED_INOS : k;
}

static size_t ino_hash(uint64_t ino, size_t mask)
{
	return (size_t)(ino * 0x9e3779b97f4a7c15ull) & mask;
}

static struct node **imap_slot(struct fs_tree *t, uint64_t ino)
{
	size_t mask = t->imap_cap - 1, j = ino_hash(ino, mask);
	while (t->imap[j] && t->imap[j]->ino != ino)
		j = (j + 1) & mask;
	return &t->imap[j];
}

static int imap_grow(struct fs_tree *t)
{
	size_t old = t->imap_cap;
	struct node **tab = t->imap;
	t->imap_cap = old ? old * 2 : 4096;
	if (!(t->imap = calloc(t->imap_cap, sizeof(*t->imap)))) {
		t->imap = tab;
		t->imap_cap = old;
		return -ENOMEM;
	}
	for (size_t i = 0; i < old; i++)
		if (tab[i])
			*imap_slot(t, tab[i]->ino) = tab[i];
	free(tab);
	return 0;
}

/*
 * Removes slot i of a linear-probing table: the entries after it that would
 * no longer be found from their home slot move back (no tombstones, so a
 * table that sees many generations come and go stays short to probe).
 */
static void probe_remove(struct node **tab, size_t cap, size_t i,
			 size_t (*home)(const struct node *n, size_t mask))
{
	size_t mask = cap - 1;
	tab[i] = NULL;
	for (size_t j = (i + 1) & mask; tab[j]; j = (j + 1) & mask) {
		size_t k = home(tab[j], mask);
		/* tab[j] stays unless its home lies cyclically outside (i, j] */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		tab[i] = tab[j];
		tab[j] = NULL;
		i = j;
	}
}

static size_t ino_home(const struct node *n, size_t mask)
{
	return ino_hash(n->ino, mask);
}

static int group_reserve(struct node_group *g)
{
	if (g->n < g->cap)
		return 0;
	size_t cap = g->cap ? g->cap * 2 : 64;
	struct node **v = realloc(g->nodes, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	g->nodes = v;
	g->cap = cap;
	return 0;
}

/* key 0: the next fixed number (tree_init only); else a node of group g
 * (NULL: a shared file). */
static struct node *node_new(struct fs_tree *t, enum node_kind kind, uint64_t key,
			     struct node_group *g)
{
	if ((t->ninodes + 1) * 2 > t->imap_cap && imap_grow(t) < 0)
		return NULL;
	if ((g && group_reserve(g) < 0) || (!key && t->nfixed == FS_FIXED_NODES))
		return NULL;
	struct node *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->kind = kind;
	n->ino = key ? key : t->nfixed + 1; /* the root is FUSE_ROOT_ID (1) */
	while (*imap_slot(t, n->ino))
		n->ino = n->ino + 1 < (1ull << 62) ? n->ino + 1 : FIXED_INOS;
	*imap_slot(t, n->ino) = n;
	t->ninodes++;
	if (!key)
		t->fixed[t->nfixed++] = n;
	else if ((n->group = g))
		g->nodes[g->n++] = n;
	return n;
}

static void node_free(struct node *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->nchild; i++)
		free(n->child[i].name);
	free(n->child);
	free(n->text);
	free(n);
}

/* Takes n out of the inode table and frees it. */
static void node_drop(struct fs_tree *t, struct node *n)
{
	size_t j = (size_t)(imap_slot(t, n->ino) - t->imap);
	probe_remove(t->imap, t->imap_cap, j, ino_home);
	t->ninodes--;
	node_free(n);
}

void node_ref(struct node *n, uint64_t k)
{
	atomic_fetch_add(&n->refs, k);
	if (n->group)
		atomic_fetch_add(&n->group->refs, k);
}

void node_unref(struct node *n, uint64_t k)
{
	/* more forgotten than counted would wrap: the node then stays for good,
	 * which is a leak, never a node freed while the kernel names it */
	atomic_fetch_sub(&n->refs, k);
	if (n->group)
		atomic_fetch_sub(&n->group->refs, k);
}

/* A shared file that no live directory lists: tree_sweep frees it once
 * nothing holds it (or drops it from the list when a directory lists it
 * again).  Out of memory, it stays until the tree goes. */
static void orphan_push(struct fs_tree *t, struct node *f)
{
	if (f->orphan)
		return;
	if (t->norphans == t->orphans_cap) {
		size_t cap = t->orphans_cap ? t->orphans_cap * 2 : 256;
		struct node **v = realloc(t->orphans, cap * sizeof(*v));
		if (!v)
			return;
		t->orphans = v;
		t->orphans_cap = cap;
	}
	t->orphans[t->norphans++] = f;
	f->orphan = true;
}

static int add_child(struct node *dir, const char *name, size_t len, struct node *child)
{
	if (dir->nchild == dir->childcap) {
		size_t cap = dir->childcap ? dir->childcap * 2 : 4;
		struct dent *c = realloc(dir->child, cap * sizeof(*c));
		if (!c)
			return -ENOMEM;
		dir->child = c;
		dir->childcap = cap;
	}
	char *nm = strndup(name, len);
	if (!nm)
		return -ENOMEM;
	if (dir->nchild && strcmp(nm, dir->child[dir->nchild - 1].name) < 0)
		dir->unsorted = true; /* until finish_dir sorts it */
	dir->child[dir->nchild++] = (struct dent){nm, child};
	if (node_is_dir(child))
		dir->nsubdirs++;
	else
		child->nlink++; /* a file shared by generations: du and tar count it once */
	return 0;
}

static struct node *dir_new(struct fs_tree *t, struct node *parent, int64_t mtime, uint64_t key)
{
	struct node *d = node_new(t, N_DIR, key, t->building);
	if (d) {
		d->parent = parent;
		d->mtime = mtime;
	}
	return d;
}

static struct node *text_new(struct fs_tree *t, char *text, int64_t mtime, uint64_t key)
{
	struct node *n = node_new(t, N_TEXT, key, t->building);
	if (!n) {
		free(text);
		return NULL;
	}
	n->text = text;
	n->size = strlen(text);
	n->mtime = mtime;
	return n;
}

int tree_init(struct fs_tree *t)
{
	memset(t, 0, sizeof(*t));
	int r = -pthread_rwlock_init(&t->lock, NULL);
	if (r < 0)
		return r;
	if ((r = -pthread_mutex_init(&t->miss_lock, NULL)) < 0) {
		pthread_rwlock_destroy(&t->lock);
		return r;
	}
	/* ino 0 is never used; FUSE_ROOT_ID is 1. */
	if (!(t->root = node_new(t, N_ROOT, 0, NULL)) ||
	    !(t->versions = node_new(t, N_VERSIONS, 0, NULL)))
		return -ENOMEM;
	t->versions->parent = t->root;
	t->root->mtime = t->versions->mtime = time(NULL);
	if (!(t->empty_manifests = dir_new(t, t->root, t->root->mtime, 0)) ||
	    !(t->empty_blobs = dir_new(t, t->root, t->root->mtime, 0)))
		return -ENOMEM;
	/* "no directory is ever empty": an empty placeholder file where needed */
	char *empty = strdup("");
	if (!empty || !(t->keep = text_new(t, empty, 0, 0)))
		return -ENOMEM;
	/* manifests/ is never empty (Ollama's prune would abort on it); blobs/
	 * may be: its prune only tries to delete files, and would log a .keep */
	return add_child(t->empty_manifests, ".keep", 5, t->keep);
}

static void group_free(struct fs_tree *t, struct node_group *g);

void tree_destroy(struct fs_tree *t)
{
	for (size_t i = 0; i < t->ngens; i++) {
		group_free(t, t->gens[i]->vgroup);
		group_free(t, t->gens[i]->rgroup);
		ag_gen_free(t->gens[i]->gen);
		free(t->gens[i]);
	}
	for (size_t i = 0; i < t->files_cap; i++)
		node_free(t->files[i]);
	for (size_t i = 0; i < t->nfixed; i++)
		node_free(t->fixed[i]);
	free(t->gens);
	free(t->imap);
	free(t->files);
	free(t->orphans);
	pthread_mutex_destroy(&t->miss_lock);
	pthread_rwlock_destroy(&t->lock);
}

/* ---------- shared regular files: (digest, size, mtime) -> node ---------- */

static size_t file_hash(const ag_digest *d, uint64_t size, int64_t mtime)
{
	uint64_t h;
	memcpy(&h, d->b, sizeof(h));
	h ^= size * 0x9e3779b97f4a7c15ull ^ (uint64_t)mtime * 0xc2b2ae3d27d4eb4full;
	return (size_t)h;
}

static size_t file_home(const struct node *n, size_t mask)
{
	return file_hash(&n->digest, n->size, n->mtime) & mask;
}

/* Takes a shared file out of the files table and the inode table, frees it. */
static void file_drop(struct fs_tree *t, struct node *f)
{
	size_t mask = t->files_cap - 1, j = file_home(f, mask);
	while (t->files[j] != f)
		j = (j + 1) & mask;
	probe_remove(t->files, t->files_cap, j, file_home);
	t->nfiles--;
	node_drop(t, f);
}

static int files_grow(struct fs_tree *t)
{
	size_t cap = t->files_cap ? t->files_cap * 2 : 1024;
	struct node **tab = calloc(cap, sizeof(*tab));
	if (!tab)
		return -ENOMEM;
	for (size_t i = 0; i < t->files_cap; i++) {
		struct node *n = t->files[i];
		if (!n)
			continue;
		size_t j = file_home(n, cap - 1);
		while (tab[j])
			j = (j + 1) & (cap - 1);
		tab[j] = n;
	}
	free(t->files);
	t->files = tab;
	t->files_cap = cap;
	return 0;
}

static struct node *file_get(struct fs_tree *t, const ag_digest *d, uint64_t size, int64_t mtime)
{
	if ((t->nfiles + 1) * 2 > t->files_cap && files_grow(t) < 0)
		return NULL;
	size_t mask = t->files_cap - 1, j = file_hash(d, size, mtime) & mask;
	for (; t->files[j]; j = (j + 1) & mask) {
		struct node *n = t->files[j];
		if (n->size == size && n->mtime == mtime && ag_digest_eq(&n->digest, d))
			return n;
	}
	struct node *n = node_new(
		t, N_BLOB, ino_key('f', size ^ (uint64_t)mtime * 0x9e3779b97f4a7c15ull, d->b, 32),
		NULL);
	if (!n)
		return NULL;
	n->digest = *d;
	n->size = size;
	n->mtime = mtime;
	t->files[j] = n;
	t->nfiles++;
	orphan_push(t, n); /* until a directory lists it */
	return n;
}

/* The attributes the store records for a blob, else what the manifest says.
 * A record that cannot be read (a damaged index) is an error, not a fallback. */
static int blob_attrs(ag_store *s, const ag_digest *d, uint64_t *size, int64_t *created)
{
	ag_blob_info bi;
	int r = ag_blob_lookup(s, d, &bi);
	if (r == 0) {
		*size = bi.size;
		*created = bi.created;
	}
	return r == -ENOENT ? 0 : r;
}

static int blob_file(struct fs_tree *t, ag_store *s, const ag_layer *l, int64_t fallback,
		     struct node **out)
{
	uint64_t size = l->size;
	int64_t created = fallback;
	int r = blob_attrs(s, &l->digest, &size, &created);
	if (r < 0)
		return r;
	*out = file_get(t, &l->digest, size, created);
	return *out ? 0 : -ENOMEM;
}

/* ---------- building one generation's manifests/ and blobs/ ---------- */

static int cmp_dent(const void *a, const void *b)
{
	return strcmp(((const struct dent *)a)->name, ((const struct dent *)b)->name);
}

static bool part_ok(const char *p, size_t len)
{
	if (len == 0 || len > MAX_NAME || (len == 1 && p[0] == '.') ||
	    (len == 2 && p[0] == '.' && p[1] == '.'))
		return false;
	return memchr(p, '\0', len) == NULL;
}

/* name (len bytes, no NUL) against a child's name, in strcmp's order. */
static int cmp_part(const char *name, size_t len, const char *child)
{
	size_t clen = strlen(child);
	int c = memcmp(name, child, len < clen ? len : clen);
	return c ? c : (len > clen) - (len < clen);
}

/* While a directory is built: a binary search as long as its children came
 * in name order (models are sorted by name), else a scan. */
static struct node *find_child(struct node *dir, const char *name, size_t len)
{
	if (dir->unsorted) {
		for (size_t i = dir->nchild; i-- > 0;)
			if (!cmp_part(name, len, dir->child[i].name))
				return dir->child[i].node;
		return NULL;
	}
	size_t lo = 0, hi = dir->nchild;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp_part(name, len, dir->child[mid].name);
		if (c == 0)
			return dir->child[mid].node;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* manifests/<host>/<namespace>/<model>/<tag> for one model. */
static int add_manifest(struct fs_tree *t, ag_store *s, struct node *top, const ag_model *m,
			int64_t mtime)
{
	const char *p = m->name, *parts[4];
	size_t lens[4];
	for (int i = 0; i < 4; i++) {
		const char *e = i < 3 ? strchr(p, '/') : p + strlen(p);
		if (!e || !part_ok(p, (size_t)(e - p)))
			return -AG_EBADNAME;
		parts[i] = p;
		lens[i] = (size_t)(e - p);
		p = e + 1;
	}
	struct node *dir = top;
	for (int i = 0; i < 3; i++) {
		struct node *next = find_child(dir, parts[i], lens[i]);
		if (next && next->kind != N_DIR)
			return -EEXIST;
		if (!next) {
			if (!(next = dir_new(t, dir, mtime,
					     ino_key('d', dir->ino, parts[i], lens[i]))))
				return -ENOMEM;
			int r = add_child(dir, parts[i], lens[i], next);
			if (r < 0)
				return r;
		}
		dir = next;
	}
	if (find_child(dir, parts[3], lens[3]))
		return -EEXIST;
	uint64_t size = m->manifest_size;
	int64_t created;
	int r = blob_attrs(s, &m->manifest, &size, &created);
	if (r < 0)
		return r;
	struct node *f = file_get(t, &m->manifest, size, m->added);
	if (!f)
		return -ENOMEM;
	/* models of one import share their second: nanoseconds from the digest
	 * make every manifest's mtime distinct and stable (Ollama sorts by it) */
	uint32_t ns;
	memcpy(&ns, m->manifest.b, sizeof(ns));
	f->mtime_ns = ns % 1000000000u;
	return add_child(dir, parts[3], lens[3], f);
}

static int add_blob(struct fs_tree *t, ag_store *s, struct node *dir, const ag_layer *l,
		    int64_t mtime)
{
	char name[8 + AG_HEX_LEN] = "sha256-";
	ag_digest_hex(&l->digest, name + 7);
	struct node *f;
	int r = blob_file(t, s, l, mtime, &f);
	if (r < 0)
		return r;
	if (l->media_type && !strcmp(l->media_type, MODEL_MEDIA))
		f->is_model = true;
	return add_child(dir, name, strlen(name), f);
}

/* Sorts every directory below d, drops duplicate blob names, fills empty ones. */
static int finish_dir(struct fs_tree *t, struct node *d, struct node *keep)
{
	if (d->nchild == 0)
		return add_child(d, ".keep", 5, keep);
	qsort(d->child, d->nchild, sizeof(*d->child), cmp_dent);
	d->unsorted = false;
	size_t w = 1;
	for (size_t i = 1; i < d->nchild; i++) {
		if (!strcmp(d->child[i].name, d->child[w - 1].name)) {
			free(d->child[i].name);
			continue;
		}
		d->child[w++] = d->child[i];
	}
	d->nchild = w;
	for (size_t i = 0; i < d->nchild; i++) {
		struct node *c = d->child[i].node;
		if (c->kind == N_DIR) {
			int r = finish_dir(t, c, keep);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static struct node *keep_node(struct fs_tree *t)
{
	return t->keep;
}

static int build_ollama(struct fs_tree *t, ag_store *s, const ag_gen *g, struct node *parent,
			struct node **man_out, struct node **blobs_out)
{
	struct node *keep = keep_node(t);
	char where = parent == t->root ? 'r' : 'v';
	struct node *man = dir_new(t, parent, g->created, ino_key('m', g->id, &where, 1));
	struct node *blobs = dir_new(t, parent, g->created, ino_key('b', g->id, &where, 1));
	if (!keep || !man || !blobs)
		return -ENOMEM;
	for (size_t i = 0; i < g->nmodels; i++) {
		const ag_model *m = &g->models[i];
		int r = add_manifest(t, s, man, m, m->added ? m->added : g->created);
		if (r == -AG_EBADNAME || r == -EEXIST)
			continue; /* a name the store should never hold; leave it out */
		if (r < 0)
			return r;
		if ((r = add_blob(t, s, blobs, &m->config, g->created)) < 0)
			return r;
		for (size_t j = 0; j < m->nlayers; j++)
			if ((r = add_blob(t, s, blobs, &m->layers[j], g->created)) < 0)
				return r;
	}
	int r = finish_dir(t, man, keep);
	if (r == 0 && blobs->nchild)
		r = finish_dir(t, blobs, keep);
	*man_out = man;
	*blobs_out = blobs;
	return r;
}

/* ---------- generations ---------- */

struct gtree *tree_find_gen(struct fs_tree *t, uint64_t id)
{
	size_t lo = 0, hi = t->ngens;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t->gens[mid]->id == id)
			return t->gens[mid];
		if (t->gens[mid]->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* bundle/<path in the bundle>: one of the source bundle's own files, kept
 * as a blob of the generation (bundle.json, its .asc, .sha256 lists, .sig). */
static int add_bundle_file(struct fs_tree *t, ag_store *s, struct node *top,
			   const struct ag_catalog_entry *e, int64_t mtime)
{
	struct node *dir = top;
	const char *p = e->name;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (!part_ok(p, len))
			return -AG_EBADNAME;
		struct node *next = find_child(dir, p, len);
		if (!slash) {
			if (next)
				return -EEXIST;
			uint64_t size = 0;
			int64_t created = mtime;
			int r = blob_attrs(s, &e->digest, &size, &created);
			if (r < 0)
				return r;
			struct node *f = file_get(t, &e->digest, size, mtime);
			return f ? add_child(dir, p, len, f) : -ENOMEM;
		}
		if (next && next->kind != N_DIR)
			return -EEXIST;
		if (!next) {
			if (!(next = dir_new(t, dir, mtime, ino_key('d', dir->ino, p, len))))
				return -ENOMEM;
			int r = add_child(dir, p, len, next);
			if (r < 0)
				return r;
		}
		dir = next;
		p = slash + 1;
	}
}

/*
 * versions/N/catalog.json and catalog.json.asc (the signed catalog and its
 * detached signature, byte for byte, so `gpg --verify` works on them) and
 * versions/N/bundle/ (the source bundle's own files), when the store keeps
 * them (format 2).  Children are added in name order.
 */
static int add_catalog_files(struct fs_tree *t, ag_store *s, struct gtree *gt, struct node *v)
{
	const ag_gen *g = gt->gen;
	char *cat = NULL, *asc = NULL;
	size_t len = 0, asclen = 0;
	int r;
	if (g->nbundle_files) {
		struct node *b = dir_new(t, v, g->created, ino_key('B', g->id, NULL, 0));
		if (!b)
			return -ENOMEM;
		for (size_t i = 0; i < g->nbundle_files; i++) {
			r = add_bundle_file(t, s, b, &g->bundle_files[i], g->created);
			if (r < 0 && r != -AG_EBADNAME && r != -EEXIST)
				return r;
		}
		if ((r = finish_dir(t, b, keep_node(t))) < 0 ||
		    (r = add_child(v, "bundle", 6, b)) < 0)
			return r;
	}
	if (g->has_catalog && ag_gen_catalog(s, g->id, NULL, &cat, &len) == 0 &&
	    strlen(cat) == len) {
		struct node *n = text_new(t, cat, g->created, ino_key('C', g->id, NULL, 0));
		if (!n || (r = add_child(v, "catalog.json", 12, n)) < 0)
			return -ENOMEM;
	} else {
		free(cat);
	}
	if (g->has_signature && ag_gen_signature(s, g->id, &asc, &asclen) == 0 &&
	    strlen(asc) == asclen) {
		struct node *n = text_new(t, asc, g->created, ino_key('S', g->id, NULL, 0));
		if (!n || (r = add_child(v, "catalog.json.asc", 16, n)) < 0)
			return -ENOMEM;
	} else {
		free(asc);
	}
	return 0;
}

static int build_vdir(struct fs_tree *t, ag_store *s, struct gtree *gt)
{
	const ag_gen *g = gt->gen;
	struct node *v = dir_new(t, t->versions, g->created, ino_key('v', g->id, NULL, 0)), *man,
		    *blobs;
	/* the generations known so far and g: which bundle brought each model */
	const ag_gen **known = calloc(t->ngens + 1, sizeof(*known));
	size_t nknown = 0;
	for (size_t i = 0; known && i < t->ngens; i++)
		if (t->gens[i]->listed)
			known[nknown++] = t->gens[i]->gen;
	if (known)
		known[nknown++] = g;
	char *info = known ? tree_info_text_from(g, known, nknown) : NULL, *target = NULL;
	free(known);
	struct node *inode =
		info ? text_new(t, info, g->created, ino_key('i', g->id, NULL, 0)) : NULL;
	if (!v || !inode || asprintf(&target, "%" PRIu64, g->id) < 0)
		return -ENOMEM;
	struct node *link = text_new(t, target, g->created, ino_key('l', g->id, NULL, 0));
	if (!link)
		return -ENOMEM;
	link->kind = N_LINK;
	int r = build_ollama(t, s, g, v, &man, &blobs);
	if (r < 0)
		return r;
	if ((r = add_child(v, "INFO", 4, inode)) < 0 || (r = add_child(v, "blobs", 5, blobs)) < 0 ||
	    (r = add_catalog_files(t, s, gt, v)) < 0 || (r = add_child(v, "manifests", 9, man)) < 0)
		return r;
	gt->vdir = v;
	gt->link = link;
	return 0;
}

/* The shared files g's directories list lose a link each, then g's nodes go. */
static void group_free(struct fs_tree *t, struct node_group *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n; i++) {
		struct node *d = g->nodes[i];
		for (size_t j = 0; j < d->nchild; j++) {
			struct node *c = d->child[j].node;
			if (c->group || node_is_dir(c))
				continue;
			c->nlink--;
			if (c->nlink == 0 && c->kind == N_BLOB)
				orphan_push(t, c);
		}
	}
	for (size_t i = 0; i < g->n; i++)
		node_drop(t, g->nodes[i]);
	for (unsigned i = 0; i < g->nmiss; i++)
		free(g->miss[i].name);
	free(g->nodes);
	free(g);
}

/* Builds a new group with build(t, s, gt): every node made meanwhile goes
 * into it; on failure what was made is freed again. */
static int build_group(struct fs_tree *t, ag_store *s, struct gtree *gt,
		       int (*build)(struct fs_tree *, ag_store *, struct gtree *),
		       struct node_group **out)
{
	struct node_group *g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	t->building = g;
	int r = build(t, s, gt);
	t->building = NULL;
	if (r < 0)
		group_free(t, g);
	else
		*out = g;
	return r;
}

int tree_add_gen(struct fs_tree *t, ag_store *s, ag_gen *g, struct gtree **out)
{
	struct gtree *gt = tree_find_gen(t, g->id);
	if (gt) {
		ag_gen_free(g);
		*out = gt;
		return 0;
	}
	struct gtree **gens = realloc(t->gens, (t->ngens + 1) * sizeof(*gens));
	if (gens)
		t->gens = gens;
	if (!gens || !(gt = calloc(1, sizeof(*gt)))) {
		ag_gen_free(g);
		return -ENOMEM;
	}
	gt->id = g->id;
	gt->gen = g;
	int r = build_group(t, s, gt, build_vdir, &gt->vgroup);
	if (r < 0) {
		ag_gen_free(g);
		free(gt);
		return r;
	}
	size_t i = t->ngens;
	while (i > 0 && t->gens[i - 1]->id > gt->id) {
		t->gens[i] = t->gens[i - 1];
		i--;
	}
	t->gens[i] = gt;
	gt->listed = true;
	t->nlisted++;
	t->ngens++;
	if (g->created > t->versions->mtime || t->ngens == 1)
		t->versions->mtime = g->created; /* the newest generation's time */
	*out = gt;
	return 0;
}

static int build_root(struct fs_tree *t, ag_store *s, struct gtree *gt)
{
	int r = build_ollama(t, s, gt->gen, t->root, &gt->cur_manifests, &gt->cur_blobs);
	if (r < 0)
		gt->cur_manifests = gt->cur_blobs = NULL;
	else
		gt->cur_blobs->root_blobs = true;
	return r;
}

int tree_set_current(struct fs_tree *t, ag_store *s, struct gtree *gt)
{
	if (gt && !gt->rgroup) {
		int r = build_group(t, s, gt, build_root, &gt->rgroup);
		if (r < 0)
			return r;
	}
	t->current = gt;
	t->root->mtime = gt ? gt->gen->created : t->root->mtime;
	return 0;
}

void tree_set_listed(struct fs_tree *t, const uint64_t *ids, size_t n)
{
	int64_t newest = 0;
	size_t j = 0;
	t->nlisted = 0;
	for (size_t i = 0; i < t->ngens; i++) {
		struct gtree *gt = t->gens[i];
		while (j < n && ids[j] < gt->id)
			j++;
		/* a freed versions/<id>/ is not built again: ids are never reused */
		gt->listed = j < n && ids[j] == gt->id && gt->vgroup != NULL;
		t->nlisted += gt->listed;
		if (gt->listed && gt->gen->created > newest)
			newest = gt->gen->created;
	}
	if (newest)
		t->versions->mtime = newest;
}

static bool group_free_if_idle(struct fs_tree *t, struct node_group **g, bool served)
{
	if (!*g || served || atomic_load(&(*g)->refs))
		return false;
	group_free(t, *g);
	*g = NULL;
	return true;
}

/* What the mount serves of gt: its tree at the root, its versions/<id>/. */
static bool at_root(const struct fs_tree *t, const struct gtree *gt)
{
	return gt == t->current || gt == t->grace;
}

static bool named(const struct fs_tree *t, const struct gtree *gt)
{
	return gt->listed || gt == t->store_current;
}

void tree_sweep(struct fs_tree *t, int64_t now)
{
	if (t->grace && now >= t->grace_until)
		t->grace = NULL;
	size_t w = 0;
	for (size_t i = 0; i < t->ngens; i++) {
		struct gtree *gt = t->gens[i];
		if (group_free_if_idle(t, &gt->rgroup, at_root(t, gt)))
			gt->cur_manifests = gt->cur_blobs = NULL;
		if (group_free_if_idle(t, &gt->vgroup, named(t, gt)))
			gt->vdir = gt->link = NULL;
		if (at_root(t, gt) || named(t, gt) || gt->rgroup || gt->vgroup) {
			t->gens[w++] = gt;
			continue;
		}
		ag_gen_free(gt->gen);
		free(gt);
	}
	t->ngens = w;
	w = 0;
	for (size_t i = 0; i < t->norphans; i++) {
		struct node *f = t->orphans[i];
		if (f->nlink)
			f->orphan = false; /* listed again */
		else if (atomic_load(&f->refs))
			t->orphans[w++] = f;
		else
			file_drop(t, f);
	}
	t->norphans = w;
}

void tree_note_miss(struct fs_tree *t, struct node *dir, const char *name)
{
	struct node_group *g = dir->group;
	if (!g)
		return; /* the root, versions/, the empty trees: always reachable */
	pthread_mutex_lock(&t->miss_lock);
	bool known = false;
	for (unsigned i = 0; i < g->nmiss && !known; i++)
		known = g->miss[i].dir == dir && !strcmp(g->miss[i].name, name);
	char *copy = known ? NULL : strdup(name);
	if (copy) {
		unsigned k = g->nmiss < GROUP_MISSES ? g->nmiss++ : g->next_miss;
		g->next_miss = (k + 1) % GROUP_MISSES;
		free(g->miss[k].name);
		g->miss[k].dir = dir;
		g->miss[k].name = copy;
	}
	pthread_mutex_unlock(&t->miss_lock);
}

static bool held_add(struct fs_inval **out, size_t *n, size_t *cap, fuse_ino_t parent,
		     const char *name)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct fs_inval *v = realloc(*out, nc * sizeof(*v));
		if (!v)
			return false;
		*out = v;
		*cap = nc;
	}
	char *copy = strdup(name);
	if (!copy)
		return false;
	(*out)[(*n)++] = (struct fs_inval){parent, copy};
	return true;
}

/*
 * The held children of g's held directories, into *out (at most max), and
 * the names last looked up in vain in them.  A directory the kernel holds
 * is unhashed once its tree's name is invalidated; a negative dentry made in
 * it meanwhile (a lookup racing the switch, a shell whose working directory
 * it is) stays hashed there, holds it, and is reachable only by its name.
 */
static void held_in(struct node_group *g, struct fs_inval **out, size_t *n, size_t *cap, size_t max)
{
	for (size_t i = 0; g && i < g->n && *n < max; i++) {
		struct node *d = g->nodes[i];
		if (!node_is_dir(d) || !atomic_load(&d->refs))
			continue;
		for (size_t j = 0; j < d->nchild && *n < max; j++)
			if (atomic_load(&d->child[j].node->refs) &&
			    !held_add(out, n, cap, d->ino, d->child[j].name))
				return;
	}
	for (unsigned i = 0; g && i < g->nmiss && *n < max; i++)
		if (atomic_load(&g->miss[i].dir->refs) &&
		    !held_add(out, n, cap, g->miss[i].dir->ino, g->miss[i].name))
			return;
}

size_t tree_held_entries(struct fs_tree *t, struct fs_inval **out, size_t max)
{
	size_t n = 0, cap = 0;
	*out = NULL;
	for (size_t i = 0; i < t->ngens && n < max; i++) {
		struct gtree *gt = t->gens[i];
		if (!at_root(t, gt))
			held_in(gt->rgroup, out, &n, &cap, max);
		if (!named(t, gt))
			held_in(gt->vgroup, out, &n, &cap, max);
	}
	return n;
}

/* ---------- lookups ---------- */

struct node *tree_node(struct fs_tree *t, fuse_ino_t ino)
{
	return ino > 0 && t->imap_cap ? *imap_slot(t, ino) : NULL;
}

static struct node *root_child(struct fs_tree *t, const char *name)
{
	if (!strcmp(name, "manifests"))
		return t->current ? t->current->cur_manifests : t->empty_manifests;
	if (!strcmp(name, "blobs"))
		return t->current ? t->current->cur_blobs : t->empty_blobs;
	if (!strcmp(name, "versions"))
		return t->versions;
	return NULL;
}

static struct node *versions_child(struct fs_tree *t, const char *name)
{
	if (!strcmp(name, "current"))
		return t->store_current ? t->store_current->link : NULL; /* NULL if freed */
	char *end;
	errno = 0;
	unsigned long long id = strtoull(name, &end, 10);
	if (errno || *end || name[0] < '1' || name[0] > '9')
		return NULL;
	struct gtree *gt = tree_find_gen(t, id);
	return gt && gt->listed ? gt->vdir : NULL;
}

static struct node *dir_child(struct node *dir, const char *name)
{
	struct dent key = {(char *)name, NULL};
	struct dent *d =
		dir->nchild ? bsearch(&key, dir->child, dir->nchild, sizeof(*dir->child), cmp_dent)
			    : NULL;
	return d ? d->node : NULL;
}

/*
 * A name missing from one generation's blobs/ at the root is looked up in
 * the current generation's and, for the grace period after a switch, in the
 * previous one's: a loader that resolved a manifest on one side of a switch
 * (or still holds the other side's blobs/ in the kernel's dentry cache)
 * finds its blobs on the other.  Names are digests, so any hit is the blob
 * asked for.
 */
static struct node *root_blob_fallback(struct fs_tree *t, struct node *dir, const char *name)
{
	struct node *n = NULL;
	if (strncmp(name, "sha256-", 7) != 0)
		return NULL;
	if (t->current && t->current->cur_blobs && t->current->cur_blobs != dir)
		n = dir_child(t->current->cur_blobs, name);
	if (!n && t->grace && t->grace->cur_blobs && t->grace->cur_blobs != dir &&
	    fs_mono_s() < t->grace_until)
		n = dir_child(t->grace->cur_blobs, name);
	return n;
}

struct node *tree_lookup(struct fs_tree *t, struct node *dir, const char *name)
{
	if (dir->kind == N_ROOT)
		return root_child(t, name);
	if (dir->kind == N_VERSIONS) {
		struct node *n = versions_child(t, name);
		if (!n && !strcmp(name, ".keep") && !t->store_current && !t->nlisted)
			n = keep_node(t);
		return n;
	}
	if (dir->kind != N_DIR)
		return NULL;
	struct dent key = {(char *)name, NULL};
	struct dent *d =
		dir->nchild ? bsearch(&key, dir->child, dir->nchild, sizeof(*dir->child), cmp_dent)
			    : NULL;
	if (!d && dir->root_blobs)
		return root_blob_fallback(t, dir, name);
	return d ? d->node : NULL;
}

static int list_versions(struct fs_tree *t, struct dent **out, size_t *n)
{
	struct dent *v = calloc(t->ngens + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	size_t k = 0;
	/* a generation's directory name is its id, which its link holds as text */
	for (size_t i = 0; i < t->ngens; i++)
		if (t->gens[i]->listed)
			v[k++] = (struct dent){t->gens[i]->link->text, t->gens[i]->vdir};
	struct node *keep = keep_node(t);
	if (t->store_current)
		v[k++] = (struct dent){"current", t->store_current->link};
	else if (k == 0 && keep)
		v[k++] = (struct dent){".keep", keep};
	*out = v;
	*n = k;
	return 0;
}

int tree_list(struct fs_tree *t, struct node *dir, struct dent **out, size_t *n)
{
	if (dir->kind == N_VERSIONS)
		return list_versions(t, out, n);
	if (dir->kind == N_ROOT) {
		static const char *names[] = {"blobs", "manifests", "versions"};
		struct dent *v = calloc(3, sizeof(*v));
		if (!v)
			return -ENOMEM;
		for (size_t i = 0; i < 3; i++)
			v[i] = (struct dent){(char *)names[i], root_child(t, names[i])};
		*out = v;
		*n = 3;
		return 0;
	}
	if (dir->kind != N_DIR)
		return -ENOTDIR;
	struct dent *v = malloc((dir->nchild ? dir->nchild : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (dir->nchild) /* an empty blobs/ has no child array at all */
		memcpy(v, dir->child, dir->nchild * sizeof(*v));
	*out = v;
	*n = dir->nchild;
	return 0;
}

/* ---------- texts ---------- */

static bool model_uses(const ag_model *m, const ag_digest *d)
{
	for (size_t i = 0; i < ag_model_nblobs(m); i++)
		if (ag_digest_eq(ag_model_blob(m, i), d))
			return true;
	return false;
}

static int append(char **buf, size_t *len, const char *s)
{
	size_t n = strlen(s);
	char *nb = realloc(*buf, *len + n + 1);
	if (!nb)
		return -ENOMEM;
	memcpy(nb + *len, s, n + 1);
	*buf = nb;
	*len += n;
	return 0;
}

char *tree_models_using(struct fs_tree *t, const ag_digest *d)
{
	char *buf = strdup("");
	size_t len = 0;
	for (size_t i = 0; buf && i < t->ngens; i++) {
		const ag_gen *g = t->gens[i]->gen;
		for (size_t j = 0; buf && j < g->nmodels; j++) {
			if (!model_uses(&g->models[j], d))
				continue;
			_cleanup_free_ char *disp = ag_name_display(g->models[j].name);
			const char *nm = disp ? disp : g->models[j].name;
			char *hit = strstr(buf, nm);
			size_t nl = strlen(nm);
			if (hit && (hit[nl] == ',' || hit[nl] == '\0'))
				continue;
			if ((len && append(&buf, &len, ",") < 0) || append(&buf, &len, nm) < 0) {
				free(buf);
				buf = NULL;
			}
		}
	}
	return buf;
}

static void iso_time(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&tt, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, 32, "%" PRId64, t);
}

/* One "key: value" line; a missing value prints as "-", line breaks as spaces. */
static void info_line(FILE *f, const char *key, const char *val)
{
	fprintf(f, "%s: ", key);
	if (!val || !*val)
		val = "-";
	for (; *val; val++)
		fputc(*val == '\n' || *val == '\r' ? ' ' : *val, f);
	fputc('\n', f);
}

/* " from bundle LABEL sha256:HEX": the bundle of the generation that first
 * brought the manifest (store/provenance.h); "-" for what it lacks. */
static void info_from(FILE *f, const ag_gen *from)
{
	char hex[AG_HEX_LEN + 1] = "-";
	if (!from)
		return;
	if (from->has_source_sha256)
		ag_digest_hex(&from->source_sha256, hex);
	fputs(" from bundle ", f);
	const char *l = from->label && *from->label ? from->label : "-";
	for (; *l; l++)
		fputc(*l == '\n' || *l == '\r' || *l == ' ' ? '_' : *l, f);
	fprintf(f, " sha256:%s", hex);
}

char *tree_info_text_from(const ag_gen *g, const ag_gen *const *gens, size_t ngens)
{
	char *buf = NULL, when[32], hex[AG_HEX_LEN + 1], num[32];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	snprintf(num, sizeof(num), "%" PRIu64, g->id);
	info_line(f, "id", num);
	iso_time(g->created, when);
	info_line(f, "created", when);
	info_line(f, "label", g->label);
	info_line(f, "operator", g->operator_name);
	info_line(f, "source", g->source);
	if (g->has_source_sha256)
		ag_digest_hex(&g->source_sha256, hex);
	info_line(f, "source_sha256", g->has_source_sha256 ? hex : NULL);
	info_line(f, "signer", g->signer);
	snprintf(num, sizeof(num), "%zu", g->nmodels);
	info_line(f, "models", num);
	for (size_t i = 0; i < g->nmodels; i++) {
		const ag_model *m = &g->models[i];
		_cleanup_free_ char *disp = ag_name_display(m->name);
		ag_digest_hex(&m->manifest, hex);
		iso_time(m->added, when);
		fprintf(f, "model: %s sha256:%s %s", disp ? disp : m->name, hex, when);
		info_from(f, ag_provenance_find(gens, ngens, g->id, &m->manifest));
		fputc('\n', f);
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
