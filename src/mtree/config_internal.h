/*
 * The JSON config loader in three steps, one file each:
 *   config_parse.c  JSON document -> validated region/space records
 *   config_graph.c  ids, references (parent, alias-of, root) and cycles
 *   config.c        creation in one transaction, rollback, mv_config
 * The records borrow their strings from the jansson document, which lives
 * until the load ends.
 */
#ifndef MV_MTREE_CONFIG_INTERNAL_H
#define MV_MTREE_CONFIG_INTERNAL_H

#include <jansson.h>

#include "memvirt/mtree.h"

/* RAM-backed regions are mmap'ed (MAP_NORESERVE); refuse absurd sizes. */
#define CFG_MAX_RAM_SIZE ((uint64_t)1 << 40)
/* RAM blocks are made of 4 KiB pages. */
#define CFG_RAM_ALIGN ((uint64_t)4096)

#define CFG_NONE ((size_t)-1)

/* One entry of "regions". */
struct cfg_region {
	const char *id;          /* unique; defaults to name */
	const char *name;        /* printed; may repeat */
	mv_region_kind kind;
	mv_u128 size;            /* 1 .. 2^64 */
	const char *parent_id;   /* NULL: free-standing root */
	const char *alias_id;    /* kind alias only */
	uint64_t addr;           /* offset in the parent */
	uint64_t alias_offset;
	int priority;
	bool enabled;
	bool readonly;
	bool has_readonly;       /* "readonly" given: overrides the kind default */
	size_t parent;           /* index of the parent, or CFG_NONE */
	size_t target;           /* index of the alias target, or CFG_NONE */
	mv_region *mr;           /* the created region (one reference) */
};

/* One entry of "address-spaces". */
struct cfg_space {
	const char *name;
	const char *root_id;
	size_t root;
};

struct cfg_doc {
	const char *src;         /* config path, or "config" for inline text */
	json_t *json;
	json_t *ids;             /* object: region id -> index (a hash table) */
	struct cfg_region *regions;
	size_t nr_regions;
	struct cfg_space *spaces;
	size_t nr_spaces;
	mv_error *err;
};

/*
 * Record "SRC: <formatted>" in doc->err and return @code. Every message of
 * the loader goes through here so it starts with the file it is about.
 */
int cfg_fail(struct cfg_doc *d, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Same, as "SRC: region "ID": <formatted>" (or regions[N] before the id is known). */
int cfg_region_fail(struct cfg_doc *d, size_t i, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* "0x..." text of @v (which may be 2^64) in @buf of at least 20 bytes. */
const char *cfg_hex(char *buf, size_t len, mv_u128 v);

/* Read d->json into d->regions / d->spaces, checking every field. */
int cfg_parse(struct cfg_doc *d);
/* Resolve ids and references, reject cycles and bad alias windows. */
int cfg_resolve(struct cfg_doc *d);

#endif
