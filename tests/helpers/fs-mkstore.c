/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fs-mkstore: puts a plain Ollama tree into a store through store.h, as one
 * new generation, for the mount's tests (which need precise stores quickly).
 *
 *   fs-mkstore [--label L] [--chunk BYTES (ignored: format 2)] [--added UNIX]
 *              [--no-activate] [--repeat N] STORE TREE
 *   fs-mkstore --activate N STORE
 *   fs-mkstore --delete N STORE
 *   fs-mkstore --init STORE           an empty store: no generation yet
 *   fs-mkstore --drop-blob HEX STORE  deletes a blob's record (and chunk table), not its
 *                                     object: what a gc racing an open blob did
 *
 * --repeat N makes N generations of the same tree in one run (many
 * generations cheaply).
 *
 * Every manifest TREE/manifests/<host>/<ns>/<model>/<tag> is stored byte-exact,
 * its config and layers are read from TREE/blobs/sha256-<hex> and checked
 * against their digests.  Prints the new generation's id.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

static char *paths[4096];
static size_t npaths;

static int collect(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	if (type == FTW_F && ftw->level == 4 && npaths < sizeof(paths) / sizeof(paths[0]))
		paths[npaths++] = strdup(path);
	return 0;
}

static int put_file(ag_store *s, const char *path, uint32_t chunk, const ag_digest *want,
		    ag_blob_info *bi)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return ag_put_fd(s, fd, chunk, want, bi);
}

static int put_layer(ag_store *s, const char *tree, uint32_t chunk, json_t *o, ag_layer *l)
{
	const char *mt = json_string_value(json_object_get(o, "mediaType"));
	const char *dg = json_string_value(json_object_get(o, "digest"));
	char path[4096];
	ag_blob_info bi;
	if (!mt || !dg || strncmp(dg, "sha256:", 7) ||
	    ag_digest_parse(dg + 7, strlen(dg + 7), &l->digest) < 0)
		return -AG_EBADNAME;
	l->media_type = strdup(mt);
	snprintf(path, sizeof(path), "%s/blobs/sha256-%s", tree, dg + 7);
	int r = put_file(s, path, chunk, &l->digest, &bi);
	l->size = bi.size;
	return r;
}

static int put_model(ag_store *s, const char *tree, const char *mpath, uint32_t chunk,
		     int64_t added, ag_gen *g)
{
	ag_model m = {0};
	ag_blob_info bi;
	json_error_t je;
	int r = put_file(s, mpath, chunk, NULL, &bi);
	json_t *j = r < 0 ? NULL : json_load_file(mpath, 0, &je);
	if (!j)
		return r < 0 ? r : -AG_EBADNAME;
	m.name = strdup(mpath + strlen(tree) + strlen("/manifests/"));
	m.manifest = bi.digest;
	m.manifest_size = bi.size;
	m.added = added ? added : time(NULL);
	json_t *layers = json_object_get(j, "layers");
	m.nlayers = json_array_size(layers);
	m.layers = calloc(m.nlayers ? m.nlayers : 1, sizeof(*m.layers));
	r = put_layer(s, tree, chunk, json_object_get(j, "config"), &m.config);
	for (size_t i = 0; r == 0 && i < m.nlayers; i++)
		r = put_layer(s, tree, chunk, json_array_get(layers, i), &m.layers[i]);
	if (r == 0)
		r = ag_gen_add_model(g, &m);
	ag_model_clear(&m);
	json_decref(j);
	return r;
}

static int activate(ag_store *s, uint64_t id, bool del)
{
	ag_txn *t = NULL;
	int r = ag_txn_begin(s, &t);
	if (r == 0 && (r = del ? ag_txn_gen_del(t, id) : ag_txn_set_current(t, id)) < 0)
		ag_txn_abort(t);
	else if (r == 0)
		r = ag_txn_commit(t);
	return r;
}

static int import(ag_store *s, const char *tree, const char *label, uint32_t chunk, int64_t added,
		  bool act)
{
	char top[4096];
	snprintf(top, sizeof(top), "%s/manifests", tree);
	while (npaths > 0) /* --repeat: the tree is read again */
		free(paths[--npaths]);
	if (nftw(top, collect, 16, FTW_PHYS) < 0)
		return -errno;
	_cleanup_gen_ ag_gen *g = ag_gen_new();
	g->label = label ? strdup(label) : NULL;
	g->operator_name = strdup("fs-mkstore");
	g->source = strdup(tree);
	for (size_t i = 0; i < npaths; i++) {
		int r = put_model(s, tree, paths[i], chunk, added, g);
		if (r < 0) {
			fprintf(stderr, "fs-mkstore: %s: %s\n", paths[i], ag_strerror(r));
			return r;
		}
	}
	ag_txn *t = NULL;
	int r = ag_txn_begin(s, &t);
	if (r < 0)
		return r;
	if ((r = ag_txn_gen_add(t, g)) < 0 || (act && (r = ag_txn_set_current(t, g->id)) < 0)) {
		ag_txn_abort(t);
		return r;
	}
	if ((r = ag_txn_commit(t)) < 0)
		return r;
	printf("%" PRIu64 "\n", g->id);
	return 0;
}

static int drop_blob(const char *path, const char *hex)
{
	_cleanup_store_ ag_store *s = NULL;
	ag_digest d;
	ag_txn *t = NULL;
	int r = ag_digest_parse(hex, strlen(hex), &d);
	if (r == 0)
		r = ag_store_open(path, AG_WRITE, &s);
	if (r == 0)
		r = ag_txn_begin(s, &t);
	if (r == 0 && (r = ag_txn_blob_del(t, &d)) < 0)
		ag_txn_abort(t);
	else if (r == 0)
		r = ag_txn_commit(t);
	if (r < 0)
		fprintf(stderr, "fs-mkstore: %s: %s\n", path, ag_strerror(r));
	return r < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"label", required_argument, NULL, 'l'},
		{"chunk", required_argument, NULL, 'c'},
		{"added", required_argument, NULL, 'a'},
		{"no-activate", no_argument, NULL, 'n'},
		{"activate", required_argument, NULL, 'A'},
		{"delete", required_argument, NULL, 'D'},
		{"init", no_argument, NULL, 'I'},
		{"drop-blob", required_argument, NULL, 'B'},
		{"repeat", required_argument, NULL, 'R'},
		{0},
	};
	const char *label = NULL;
	uint32_t chunk = 0;
	int64_t added = 0;
	uint64_t act_id = 0;
	bool act = true, del = false, init = false;
	const char *drop = NULL;
	unsigned long repeat = 1;
	int ch;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'l':
			label = optarg;
			break;
		case 'c':
			/* Store format 2 verifies in 4 KiB blocks whatever was
			 * asked: accepted for the tests written for format 1. */
			chunk = 0;
			break;
		case 'a':
			added = strtoll(optarg, NULL, 10);
			break;
		case 'n':
			act = false;
			break;
		case 'A':
			act_id = strtoull(optarg, NULL, 10);
			break;
		case 'D':
			act_id = strtoull(optarg, NULL, 10);
			del = true;
			break;
		case 'I':
			init = true;
			break;
		case 'B':
			drop = optarg;
			break;
		case 'R':
			repeat = strtoul(optarg, NULL, 10);
			break;
		default:
			return 2;
		}
	}
	if (init && argc - optind == 1) {
		int r = ag_store_init(argv[optind]);
		if (r < 0)
			fprintf(stderr, "fs-mkstore: %s: %s\n", argv[optind], ag_strerror(r));
		return r < 0 ? 1 : 0;
	}
	if (drop && argc - optind == 1)
		return drop_blob(argv[optind], drop);
	if (argc - optind != (act_id ? 1 : 2)) {
		fprintf(stderr, "usage: fs-mkstore [--label L] [--chunk N] [--added T] "
				"[--no-activate] [--repeat N] STORE TREE\n"
				"       fs-mkstore --activate|--delete N STORE\n");
		return 2;
	}
	_cleanup_store_ ag_store *s = NULL;
	int r = ag_store_open(argv[optind], AG_WRITE | (act_id ? 0 : AG_CREATE), &s);
	if (r < 0) {
		fprintf(stderr, "fs-mkstore: %s: %s\n", argv[optind], ag_strerror(r));
		return 1;
	}
	if (act_id)
		r = activate(s, act_id, del);
	else /* --repeat N: N generations of the same tree, cheaply */
		for (unsigned long i = 0; r == 0 && i < repeat; i++)
			r = import(s, argv[optind + 1], label, chunk, added, act);
	if (r < 0)
		fprintf(stderr, "fs-mkstore: %s\n", ag_strerror(r));
	return r < 0 ? 1 : 0;
}
