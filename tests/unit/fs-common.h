/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the mount's unit tests (fs-layout, fs-tree). */
#ifndef AGFS_TEST_FS_COMMON_H
#define AGFS_TEST_FS_COMMON_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/agfs.h"
#include "tests/tap.h"

/* The node at PATH ("a/b/c") below n, or NULL: one tree_lookup per name. */
static inline struct node *walk(struct fs_tree *t, struct node *n, const char *path)
{
	char buf[512], *save = NULL;
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = strtok_r(buf, "/", &save); n && p; p = strtok_r(NULL, "/", &save))
		n = tree_lookup(t, n, p);
	return n;
}

/* A new, empty store in a fresh directory made from TEMPLATE
 * ("/tmp/x.XXXXXX", rewritten in place), opened read-only; bails out. */
static inline ag_store *test_store_new(char *template)
{
	ag_store *s = NULL;
	if (!mkdtemp(template))
		bail("mkdtemp: %s", strerror(errno));
	if (ag_store_init(template) < 0 || ag_store_open(template, AG_RDONLY, &s) < 0)
		bail("cannot make a store in %s", template);
	return s;
}

/* Closes s and removes its directory DIR. */
static inline void test_store_remove(ag_store *s, const char *dir)
{
	char cmd[128];
	ag_store_close(s);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		diag("could not remove %s", dir);
}

#endif
