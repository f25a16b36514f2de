/*
 * Printing a memory system as QEMU's `info mtree` does, loading a memory
 * layout from a JSON config (docs/config.md), and drawing a FlatView as SVG.
 */
#ifndef MEMVIRT_MTREE_H
#define MEMVIRT_MTREE_H

#include <stdio.h>

#include "memvirt/memory.h"

/*
 * QEMU's `info mtree`: one "address-space: NAME" block per root (spaces
 * sharing a root listed together, sorted by name), then one
 * "memory-region: NAME" block per region reached through aliases.
 */
int mv_mtree_print_tree(FILE *out, mv_memory *mem);
/* QEMU's `info mtree -f`: one block per distinct FlatView. */
int mv_mtree_print_flat(FILE *out, mv_memory *mem);
/* Draw every FlatView as SVG address bands coloured by kind, labelled. */
int mv_mtree_print_svg(FILE *out, mv_memory *mem);

typedef struct mv_config mv_config;

/*
 * Load a JSON layout from @path (or the text @json when @path is NULL) into
 * @mem: regions in file order, then address spaces. On error nothing stays
 * in @mem, and @err names the region or field. *out keeps references to
 * the regions and spaces; mv_config_free drops them.
 */
int mv_config_load(mv_memory *mem, const char *path, const char *json,
		   mv_config **out, mv_error *err);
void mv_config_free(mv_config *cfg);

#endif
