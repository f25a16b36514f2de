/*
 * The memory system, address spaces and transactions (QEMU's
 * address_space_init, memory_region_transaction_begin/commit,
 * flatviews_reset, address_space_set_flatview), without globals.
 */
#include "memory/internal.h"

#include <errno.h>
#include <string.h>

int mv_memory_new(const mv_allocator *alloc, mv_memory **out)
{
	mv_memory *mem;

	alloc = alloc ? alloc : mv_allocator_libc();
	mem = mv_zalloc(alloc, sizeof(*mem));
	if (!mem)
		return -ENOMEM;
	mem->alloc = alloc;
	mem->ram_list = mv_ram_list_new(alloc);
	if (!mem->ram_list) {
		mv_free(alloc, mem);
		return -ENOMEM;
	}
	mv_rcu_register_thread();
	*out = mem;
	return 0;
}

static void fv_cache_reset(mv_memory *mem)
{
	for (size_t i = 0; i < mem->nr_fv_cache; i++)
		mv_flatview_unref(mem->fv_cache[i].fv);
	mem->nr_fv_cache = 0;
}

void mv_memory_free(mv_memory *mem)
{
	if (!mem)
		return;
	while (mem->nr_spaces)
		mv_address_space_free(mem->spaces[mem->nr_spaces - 1]);
	fv_cache_reset(mem);
	/* Let every deferred FlatView free run: they drop region/RAM references. */
	urcu_memb_barrier();
	mv_ram_list_free(mem->ram_list);
	mv_free(mem->alloc, mem->fv_cache);
	mv_free(mem->alloc, mem->spaces);
	mv_free(mem->alloc, mem);
}

mv_ram_list *mv_memory_ram_list(mv_memory *mem) { return mem->ram_list; }
uint64_t mv_memory_render_count(const mv_memory *mem) { return mem->render_count; }
size_t mv_memory_nr_address_spaces(const mv_memory *mem) { return mem->nr_spaces; }

mv_address_space *mv_memory_address_space(const mv_memory *mem, size_t i)
{
	return i < mem->nr_spaces ? mem->spaces[i] : NULL;
}

/* ------------------------------------------------------------------ */
/* FlatView cache: one view per distinct FlatView root, per commit.     */

static mv_flatview *fv_cache_find(mv_memory *mem, mv_region *root)
{
	for (size_t i = 0; i < mem->nr_fv_cache; i++)
		if (mem->fv_cache[i].root == root)
			return mem->fv_cache[i].fv;
	return NULL;
}

/* The view for @as's root: cached, or generated and cached. */
static int fv_cache_get(mv_memory *mem, mv_address_space *as, mv_flatview **out)
{
	mv_region *root = mv_flatview_root_of(as->root);
	mv_flatview *fv = fv_cache_find(mem, root);
	int ret;

	if (fv) {
		*out = fv;
		return 0;
	}
	ret = mv_grow(mem->alloc, (void **)&mem->fv_cache, &mem->cap_fv_cache,
		      mem->nr_fv_cache + 1, sizeof(*mem->fv_cache));
	if (!ret)
		ret = mv_flatview_generate(mem, root, &fv);
	if (ret)
		return ret;
	mem->fv_cache[mem->nr_fv_cache++] = (struct mv_fv_cache_entry){ root, fv };
	*out = fv;
	return 0;
}

/* QEMU's address_space_set_flatview(): diff for listeners, then publish. */
static void address_space_set_flatview(mv_address_space *as, mv_flatview *new)
{
	mv_flatview *old = as->current;

	if (old == new)
		return;
	mv_flatview_ref(new);
	if (as->listeners_head)
		mv_listener_update_topology(as, old, new);
	rcu_assign_pointer(as->current, new);
	mv_flatview_unref(old);
}

/*
 * Render every space's view before publishing any, so that running out of
 * memory leaves all the old views in place.
 */
static int render_all(mv_memory *mem)
{
	struct mv_fv_cache_entry *saved = mem->fv_cache;
	size_t saved_nr = mem->nr_fv_cache, saved_cap = mem->cap_fv_cache;
	int ret = 0;

	mem->fv_cache = NULL;
	mem->nr_fv_cache = mem->cap_fv_cache = 0;
	for (size_t i = 0; i < mem->nr_spaces && !ret; i++) {
		mv_flatview *fv;

		ret = fv_cache_get(mem, mem->spaces[i], &fv);
	}
	if (ret) {
		fv_cache_reset(mem);
		mv_free(mem->alloc, mem->fv_cache);
		mem->fv_cache = saved;
		mem->nr_fv_cache = saved_nr;
		mem->cap_fv_cache = saved_cap;
		return ret;
	}
	for (size_t i = 0; i < saved_nr; i++)
		mv_flatview_unref(saved[i].fv);
	mv_free(mem->alloc, saved);
	return 0;
}

void mv_memory_begin(mv_memory *mem)
{
	mem->transaction_depth++;
}

int mv_memory_commit(mv_memory *mem)
{
	int ret;

	if (--mem->transaction_depth || !mem->update_pending)
		return 0;
	ret = render_all(mem);
	if (ret)
		return ret;
	mv_listeners_begin(mem);
	for (size_t i = 0; i < mem->nr_spaces; i++) {
		mv_address_space *as = mem->spaces[i];

		address_space_set_flatview(as, fv_cache_find(mem, mv_flatview_root_of(as->root)));
	}
	mem->update_pending = false;
	mv_listeners_commit(mem);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Address spaces                                                       */

static void address_space_release(mv_address_space *as)
{
	mv_region_unref(as->root);
	mv_free(as->mem->alloc, as->name);
	mv_free(as->mem->alloc, as);
}

int mv_address_space_new(mv_memory *mem, mv_region *root, const char *name,
			 mv_address_space **out)
{
	mv_address_space *as;
	mv_flatview *fv;
	int ret;

	if (!root || !name || root->mem != mem)
		return -EINVAL;
	ret = mv_grow(mem->alloc, (void **)&mem->spaces, &mem->cap_spaces, mem->nr_spaces + 1,
		      sizeof(*mem->spaces));
	if (ret)
		return ret;
	as = mv_zalloc(mem->alloc, sizeof(*as));
	if (!as)
		return -ENOMEM;
	as->mem = mem;
	as->name = mv_strdup(mem->alloc, name);
	mv_region_ref(root);
	as->root = root;
	/* QEMU's address_space_update_topology(): reuse or render this root's view. */
	ret = as->name ? fv_cache_get(mem, as, &fv) : -ENOMEM;
	if (ret) {
		address_space_release(as);
		return ret;
	}
	mv_flatview_ref(fv);
	rcu_assign_pointer(as->current, fv);
	mem->spaces[mem->nr_spaces++] = as;
	*out = as;
	return 0;
}

/* Drop cached views no remaining space renders, so their regions can go. */
static void fv_cache_prune(mv_memory *mem)
{
	size_t out = 0;

	for (size_t i = 0; i < mem->nr_fv_cache; i++) {
		bool used = false;

		for (size_t j = 0; j < mem->nr_spaces && !used; j++)
			used = mem->spaces[j]->current == mem->fv_cache[i].fv;
		if (used)
			mem->fv_cache[out++] = mem->fv_cache[i];
		else
			mv_flatview_unref(mem->fv_cache[i].fv);
	}
	mem->nr_fv_cache = out;
}

void mv_address_space_free(mv_address_space *as)
{
	mv_memory *mem;
	size_t i;

	if (!as)
		return;
	mem = as->mem;
	mv_listeners_detach_all(as);
	for (i = 0; mem->spaces[i] != as; i++)
		;
	memmove(&mem->spaces[i], &mem->spaces[i + 1],
		(mem->nr_spaces - i - 1) * sizeof(*mem->spaces));
	mem->nr_spaces--;
	/* The view itself is freed after a grace period, when unreferenced. */
	mv_flatview_unref(as->current);
	fv_cache_prune(mem);
	address_space_release(as);
}

const char *mv_address_space_name(const mv_address_space *as) { return as->name; }
mv_region *mv_address_space_root(const mv_address_space *as) { return as->root; }
mv_memory *mv_address_space_memory(const mv_address_space *as) { return as->mem; }
