/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the mount's unit tests (fs-layout, fs-tree). */
#ifndef AGFS_TEST_FS_COMMON_H
#define AGFS_TEST_FS_COMMON_H

#include <stdio.h>
#include <string.h>

#include "fs/agfs.h"

/* The node at PATH ("a/b/c") below n, or NULL: one tree_lookup per name. */
static inline struct node *walk(struct fs_tree *t, struct node *n, const char *path)
{
	char buf[512], *save = NULL;
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = strtok_r(buf, "/", &save); n && p; p = strtok_r(NULL, "/", &save))
		n = tree_lookup(t, n, p);
	return n;
}

#endif
