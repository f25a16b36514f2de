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
/* The three printers return 0, -ENOMEM, or -EIO when writing @out failed. */
int mv_mtree_print_svg(FILE *out, mv_memory *mem);

typedef struct mv_config mv_config;

/*
 * Load a JSON layout from @path (or the text @json when @path is NULL) into
 * @mem: regions in file order, then address spaces, in one transaction.
 * On error nothing stays in @mem (memory a FlatView briefly held is freed
 * after an RCU grace period), *out is NULL, and @err holds one sentence
 * naming the file, the region (by id) and the field. Errors: -EINVAL
 * malformed input, -EEXIST duplicate id, -ENOENT unknown id, -ELOOP cycle,
 * -ENOMEM, or the errno of opening @path / creating a RAM block.
 * *out keeps references to the regions and spaces; mv_config_free unlinks
 * the regions, frees the spaces and drops them. See docs/config.md.
 */
int mv_config_load(mv_memory *mem, const char *path, const char *json,
		   mv_config **out, mv_error *err);
void mv_config_free(mv_config *cfg);

#endif
