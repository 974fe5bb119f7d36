/* SPDX-License-Identifier: Apache-2.0 */
/* agimport --registry URL: pull a generation from an OCI registry (registry.c). */
#ifndef AGFS_IMPORTER_REGISTRY_H
#define AGFS_IMPORTER_REGISTRY_H

#include <stdbool.h>

/* Whether the command line asks for a registry pull (--registry anywhere). */
bool imp_registry_wanted(int argc, char **argv);
/* The whole run: options, pull, report; returns the exit code. */
int imp_registry_main(int argc, char **argv);

#endif
