/*
 * Config loader, step 3: build the checked records in the memory system,
 * all in one transaction, and undo everything if any step fails. The
 * format is described in docs/config.md.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "memvirt/ramblock.h"
#include "mtree/config_internal.h"
#include "util/alloc.h"

struct mv_config {
	mv_memory *mem;
	mv_region **regions;          /* one reference each, file order */
	size_t nr_regions;
	mv_address_space **spaces;    /* creation order */
	size_t nr_spaces;
};

/* I/O regions from a config have no device behind them. */
static mv_memtx null_read(void *opaque, uint64_t addr, uint64_t *data, unsigned size)
{
	(void)opaque, (void)addr, (void)size;
	*data = 0;
	return MV_MEMTX_OK;
}

static mv_memtx null_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
	(void)opaque, (void)addr, (void)data, (void)size;
	return MV_MEMTX_OK;
}

static const mv_region_ops null_ops = {
	.read = null_read,
	.write = null_write,
	.endianness = MV_ENDIAN_LITTLE,
	.impl = { .min_access_size = 1, .max_access_size = 8 },
};

/* A constructor of the memory core failed (only -ENOMEM is expected). */
static int region_error(struct cfg_doc *d, size_t i, int ret)
{
	return cfg_region_fail(d, i, ret, "cannot create the region: %s", strerror(-ret));
}

/* An anonymous, unreserved RAM block named after the region's id. */
static int new_block(struct cfg_doc *d, mv_memory *mem, size_t i, mv_ramblock **rb)
{
	const struct cfg_region *r = &d->regions[i];
	mv_ramblock_opts opts = { .backing = MV_RAM_ANON_PRIVATE, .noreserve = true };
	mv_error berr = { 0 };
	int ret;

	ret = mv_ramblock_new(mv_memory_ram_list(mem), r->id, (uint64_t)r->size, &opts, rb,
			      &berr);
	if (ret)
		return cfg_region_fail(d, i, ret, "cannot create its RAM block: %s",
				       berr.msg[0] ? berr.msg : strerror(-ret));
	return 0;
}

/* A RAM, ROM or ROM-device region over a new block. */
static int new_ram_like(struct cfg_doc *d, mv_memory *mem, size_t i, mv_region **out)
{
	struct cfg_region *r = &d->regions[i];
	mv_ramblock *rb;
	mv_ram_region *ram = NULL;
	mv_romd_region *romd = NULL;
	int ret = new_block(d, mem, i, &rb);

	if (ret)
		return ret;
	if (r->kind == MV_REGION_RAM)
		ret = mv_ram_region_new(mem, r->name, rb, &ram);
	else if (r->kind == MV_REGION_ROM)
		ret = mv_rom_region_new(mem, r->name, rb, &ram);
	else
		ret = mv_romd_region_new(mem, r->name, rb, &null_ops, NULL, &romd);
	mv_ramblock_unref(rb);  /* the region holds its own reference */
	if (ret)
		return region_error(d, i, ret);
	*out = ram ? mv_ram_region_base(ram) : mv_romd_region_base(romd);
	return 0;
}

/* The region of one record, by kind (alias targets already exist). */
static int new_region(struct cfg_doc *d, mv_memory *mem, size_t i, mv_region **out)
{
	struct cfg_region *r = &d->regions[i];
	mv_io_region *io = NULL;
	mv_alias_region *alias = NULL;
	int ret;

	switch (r->kind) {
	case MV_REGION_CONTAINER:
		ret = mv_container_new(mem, r->name, r->size, out);
		break;
	case MV_REGION_RESERVATION:
		ret = mv_reservation_new(mem, r->name, r->size, out);
		break;
	case MV_REGION_IO:
		ret = mv_io_region_new(mem, r->name, r->size, &null_ops, NULL, &io);
		break;
	case MV_REGION_ALIAS:
		ret = mv_alias_region_new(mem, r->name, d->regions[r->target].mr,
					  r->alias_offset, r->size, &alias);
		break;
	default:
		return new_ram_like(d, mem, i, out);
	}
	if (ret)
		return region_error(d, i, ret);
	if (io)
		*out = mv_io_region_base(io);
	if (alias)
		*out = mv_alias_region_base(alias);
	return 0;
}

/*
 * Create region @i after its alias target (cycles were rejected, so this
 * recursion ends). Flags are applied here; placement comes later.
 */
static int create_region(struct cfg_doc *d, mv_memory *mem, size_t i)
{
	struct cfg_region *r = &d->regions[i];
	int ret;

	if (r->mr)
		return 0;
	if (r->target != CFG_NONE && (ret = create_region(d, mem, r->target)))
		return ret;
	ret = new_region(d, mem, i, &r->mr);
	if (ret) {
		r->mr = NULL;
		return ret;
	}
	if (!r->enabled)
		mv_region_set_enabled(r->mr, false);
	if (r->has_readonly)
		mv_region_set_readonly(r->mr, r->readonly);
	return 0;
}

/* Put region @i under its parent, in file order (later wins among equals). */
static int place_region(struct cfg_doc *d, size_t i)
{
	struct cfg_region *r = &d->regions[i];
	int ret;

	if (r->parent == CFG_NONE)
		return 0;
	ret = mv_region_add_subregion_overlap(d->regions[r->parent].mr, r->addr, r->mr,
					      r->priority);
	if (ret)
		return cfg_region_fail(d, i, ret, "cannot add it to \"%s\": %s",
				       r->parent_id, strerror(-ret));
	return 0;
}

/*
 * Take @regions out of the memory system: unlink each from its parent,
 * then drop the references. Unlinking (rather than letting the last unref
 * of a root cascade) makes the commit re-render, so FlatViews cached for
 * these trees are released too. Runs inside the caller's transaction.
 */
static void release_regions(mv_region **regions, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (regions[i] && mv_region_parent(regions[i]))
			mv_region_del_subregion(mv_region_parent(regions[i]), regions[i]);
	for (size_t i = 0; i < n; i++)
		mv_region_unref(regions[i]);
}

/* Drop every region and space created so far (inside the caller's transaction). */
static void undo(struct cfg_doc *d, mv_config *cfg)
{
	for (size_t i = 0; i < cfg->nr_spaces; i++)
		mv_address_space_free(cfg->spaces[i]);
	cfg->nr_spaces = 0;
	for (size_t i = 0; i < d->nr_regions; i++) {
		cfg->regions[i] = d->regions[i].mr;
		d->regions[i].mr = NULL;
	}
	release_regions(cfg->regions, d->nr_regions);
	memset(cfg->regions, 0, d->nr_regions * sizeof(*cfg->regions));
}

static int create_spaces(struct cfg_doc *d, mv_memory *mem, mv_config *cfg)
{
	for (size_t i = 0; i < d->nr_spaces; i++) {
		const struct cfg_space *s = &d->spaces[i];
		int ret = mv_address_space_new(mem, d->regions[s->root].mr, s->name,
					       &cfg->spaces[i]);

		if (ret)
			return cfg_fail(d, ret, "address space \"%s\": cannot create it: %s",
					s->name, strerror(-ret));
		cfg->nr_spaces++;
	}
	return 0;
}

static int create_all(struct cfg_doc *d, mv_memory *mem, mv_config *cfg)
{
	int ret;

	for (size_t i = 0; i < d->nr_regions; i++)
		if ((ret = create_region(d, mem, i)))
			return ret;
	for (size_t i = 0; i < d->nr_regions; i++)
		if ((ret = place_region(d, i)))
			return ret;
	return create_spaces(d, mem, cfg);
}

/* Move the region references from the records into @cfg. */
static void adopt_regions(struct cfg_doc *d, mv_config *cfg)
{
	for (size_t i = 0; i < d->nr_regions; i++) {
		cfg->regions[i] = d->regions[i].mr;
		d->regions[i].mr = NULL;
	}
	cfg->nr_regions = d->nr_regions;
}

/* Build everything in one transaction; on failure leave @mem as it was. */
static int build(struct cfg_doc *d, mv_memory *mem, mv_config *cfg)
{
	int ret;

	mv_memory_begin(mem);
	ret = create_all(d, mem, cfg);
	if (ret)
		undo(d, cfg);
	if (mv_memory_commit(mem) && !ret) {
		/* The new layout could not be rendered: take it back out. */
		ret = cfg_fail(d, -ENOMEM, "out of memory rendering the layout");
		mv_memory_begin(mem);
		undo(d, cfg);
		mv_memory_commit(mem);
	}
	if (!ret)
		adopt_regions(d, cfg);
	return ret;
}

/* Parse @path or @json into d->json, reporting syntax errors with line:column. */
static int read_json(struct cfg_doc *d, const char *path, const char *json)
{
	json_error_t jerr;
	FILE *f = NULL;

	if (path) {
		f = fopen(path, "r");
		if (!f)
			return cfg_fail(d, -errno, "cannot open the config: %s", strerror(errno));
		d->json = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
		fclose(f);
	} else {
		d->json = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
	}
	if (d->json)
		return 0;
	if (json_error_code(&jerr) == json_error_out_of_memory)
		return cfg_fail(d, -ENOMEM, "out of memory reading the config");
	return mv_error_set(d->err, -EINVAL, "%s:%d:%d: JSON syntax error: %s", d->src,
			    jerr.line, jerr.column, jerr.text);
}

static mv_config *config_alloc(struct cfg_doc *d, mv_memory *mem)
{
	mv_config *cfg = mv_zalloc(NULL, sizeof(*cfg));

	if (!cfg)
		return NULL;
	cfg->mem = mem;
	cfg->regions = mv_zalloc(NULL, (d->nr_regions ? d->nr_regions : 1) *
				 sizeof(*cfg->regions));
	cfg->spaces = mv_zalloc(NULL, (d->nr_spaces ? d->nr_spaces : 1) *
				sizeof(*cfg->spaces));
	if (!cfg->regions || !cfg->spaces) {
		mv_config_free(cfg);
		return NULL;
	}
	return cfg;
}

static void doc_free(struct cfg_doc *d)
{
	json_decref(d->ids);
	json_decref(d->json);
	mv_free(NULL, d->regions);
	mv_free(NULL, d->spaces);
}

/**
 * mv_config_load - build the layout described by a JSON config in @mem
 * @mem: memory system to add regions and address spaces to
 * @path: config file, or NULL to read @json
 * @json: config text when @path is NULL
 * @out: on success, the loaded config (keeps references; mv_config_free)
 * @err: optional; one sentence naming the file, region (by id) and field
 *
 * Returns 0; -EINVAL malformed input, -EEXIST duplicate id, -ENOENT unknown
 * id, -ELOOP cycle, -ENOMEM, or the errno of opening @path / creating a
 * RAM block. On error nothing is left in @mem.
 */
int mv_config_load(mv_memory *mem, const char *path, const char *json,
		   mv_config **out, mv_error *err)
{
	mv_error local = { 0 };
	struct cfg_doc d = { .src = path ? path : "config", .err = err ? err : &local };
	mv_config *cfg = NULL;
	int ret;

	*out = NULL;
	d.err->code = 0;
	d.err->msg[0] = 0;
	if (!path && !json)
		return mv_error_set(err, -EINVAL, "no config file or text given");
	ret = read_json(&d, path, json);
	if (!ret)
		ret = cfg_parse(&d);
	if (!ret)
		ret = cfg_resolve(&d);
	if (!ret && !(cfg = config_alloc(&d, mem)))
		ret = cfg_fail(&d, -ENOMEM, "out of memory loading the config");
	if (!ret)
		ret = build(&d, mem, cfg);
	doc_free(&d);
	if (ret) {
		mv_config_free(cfg);
		return ret;
	}
	*out = cfg;
	return 0;
}

/**
 * mv_config_free - drop what a config holds
 * @cfg: loaded config, or NULL
 *
 * Frees its address spaces, unlinks its regions from their parents and
 * drops its references, in one transaction. Regions nobody else holds are
 * freed with their RAM blocks once no FlatView reader can see them (after
 * an RCU grace period).
 */
void mv_config_free(mv_config *cfg)
{
	if (!cfg)
		return;
	if (cfg->nr_spaces || cfg->nr_regions) {
		mv_memory_begin(cfg->mem);
		for (size_t i = 0; i < cfg->nr_spaces; i++)
			mv_address_space_free(cfg->spaces[i]);
		release_regions(cfg->regions, cfg->nr_regions);
		mv_memory_commit(cfg->mem);
	}
	mv_free(NULL, cfg->regions);
	mv_free(NULL, cfg->spaces);
	mv_free(NULL, cfg);
}
