/*
 * The accelerator memory listener (hv_memory.h) against the fake
 * accelerator of fake_hv.h, which records every call and applies KVM's
 * memslot rules; plus the pc machine on real KVM when /dev/kvm is usable.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "coreutil.h"
#include "fake_hv.h"

#include "memvirt/hv_memory.h"
#include "memvirt/machine.h"

typedef struct fx {
	mv_memory *mem;
	mv_region *root;
	mv_address_space *as;
	fake_hv *f;
	hv_mem *hm;
} fx;

static int fx_setup_slots(void **state, unsigned nr_slots)
{
	fx *x = calloc(1, sizeof(*x));
	mv_error err = { 0 };

	assert_int_equal(mv_memory_new(NULL, &x->mem), 0);
	x->root = cu_container(x->mem, "system", (mv_u128)1 << 40);
	assert_int_equal(mv_address_space_new(x->mem, x->root, "memory", &x->as), 0);
	x->f = fake_hv_new(nr_slots);
	assert_non_null(x->f);
	assert_int_equal(hv_mem_new(fake_hv_vm(x->f), x->mem, &x->hm, &err), 0);
	*state = x;
	return 0;
}

static int fx_setup(void **state) { return fx_setup_slots(state, FAKE_HV_MAX_SLOTS); }
static int fx_setup_2slots(void **state) { return fx_setup_slots(state, 2); }

static int fx_teardown(void **state)
{
	fx *x = *state;

	hv_mem_free(x->hm);
	mv_region_unref(x->root);
	mv_memory_free(x->mem);
	fake_hv_free(x->f);
	free(x);
	return 0;
}

static void attach(fx *x)
{
	mv_error err = { 0 };

	assert_int_equal(hv_mem_attach(x->hm, x->as, 0, &err), 0);
}

/* A RAM (or ROM) region over a new block of @size bytes, not yet placed. */
static mv_region *new_ram(fx *x, const char *name, uint64_t size, bool rom)
{
	mv_ramblock *rb;
	mv_ram_region *r;

	assert_int_equal(mv_ramblock_new(mv_memory_ram_list(x->mem), name, size, NULL, &rb, NULL),
			 0);
	if (rom)
		assert_int_equal(mv_rom_region_new(x->mem, name, rb, &r), 0);
	else
		assert_int_equal(mv_ram_region_new(x->mem, name, rb, &r), 0);
	mv_ramblock_unref(rb);
	return mv_ram_region_base(r);
}

/* Place @r in the root (the root keeps the only reference). */
static mv_region *place(fx *x, uint64_t addr, mv_region *r, int prio)
{
	cu_add(x->root, addr, r, prio);
	return r;
}

static uint8_t *host_of(mv_region *r)
{
	return mv_ramblock_host(mv_ram_region_block(mv_region_as_ram(r)));
}

static mv_ramblock *block_of(mv_region *r)
{
	return mv_ram_region_block(mv_region_as_ram(r));
}

static void assert_slot(fx *x, uint32_t slot, uint64_t gpa, uint64_t size, void *hva,
			uint32_t flags)
{
	const hv_memslot *m = fake_hv_slot(x->f, slot);

	assert_non_null(m);
	assert_int_equal(m->gpa, gpa);
	assert_int_equal(m->size, size);
	assert_ptr_equal(m->hva, hva);
	assert_int_equal(m->flags, flags);
}

/* "0x5000 0x7000" : the dirty pages of @rb, as offsets. */
static void dirty_pages(mv_ramblock *rb, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = 0;
	for (uint64_t off = 0; off < mv_ramblock_used_length(rb); off += HV_PAGE_SIZE)
		if (mv_ramblock_test_dirty(rb, off))
			used += snprintf(buf + used, len - used, "%s0x%llx", used ? " " : "",
					 (unsigned long long)off);
}

#define assert_dirty(rb, expect)                            \
	do {                                                \
		char buf_[1024];                            \
		dirty_pages(rb, buf_, sizeof(buf_));        \
		assert_string_equal(buf_, expect);          \
	} while (0)

static void clear_dirty(mv_ramblock *rb)
{
	unsigned long bm[64];

	mv_ramblock_take_dirty(rb, 0, mv_ramblock_used_length(rb), bm);
}

/* ------------------------------------------------------------------ */
/* Mapping                                                              */

/* RAM and ROM get slots (gpa, size, hva, flags); I/O never does. */
static void test_ram_rom_io(void **state)
{
	fx *x = *state;
	mv_region *ram = place(x, 0, new_ram(x, "ram", 0x100000, false), 0);
	mv_region *rom;

	attach(x);   /* replays ram */
	rom = place(x, 0x200000, new_ram(x, "rom", 0x10000, true), 0);
	place(x, 0x300000, cu_io(x->mem, "io", 0x1000), 0);
	place(x, 0x400000, cu_container(x->mem, "empty", 0x1000), 0);

	assert_slot(x, HV_SLOT(0, 0), 0, 0x100000, host_of(ram), 0);
	assert_slot(x, HV_SLOT(0, 1), 0x200000, 0x10000, host_of(rom), HV_MEM_READONLY);
	assert_int_equal(fake_hv_nr_slots(x->f), 2);
	assert_string_equal(fake_hv_trace(x->f),
			    "set 0:0 gpa=0x0 size=0x100000 flags=- -> 0\n"
			    "set 0:1 gpa=0x200000 size=0x10000 flags=ro -> 0\n");
	assert_null(hv_mem_error(x->hm));
	assert_int_equal(hv_mem_stats(x->hm)->slots_in_use, 2);
	assert_int_equal(hv_mem_stats(x->hm)->memslot_calls, 2);
}

/* A ROM device is mapped read-only in romd mode only. */
static void test_romd_mode(void **state)
{
	fx *x = *state;
	mv_ramblock *rb;
	mv_romd_region *flash;

	assert_int_equal(mv_ramblock_new(mv_memory_ram_list(x->mem), "flash", 0x2000, NULL, &rb,
					 NULL), 0);
	assert_int_equal(mv_romd_region_new(x->mem, "flash", rb, NULL, NULL, &flash), 0);
	mv_ramblock_unref(rb);
	place(x, 0xfffe0000, mv_romd_region_base(flash), 0);
	attach(x);
	assert_slot(x, HV_SLOT(0, 0), 0xfffe0000, 0x2000, mv_ramblock_host(rb), HV_MEM_READONLY);

	fake_hv_trace_reset(x->f);
	mv_romd_region_set_mode(flash, false);
	assert_int_equal(fake_hv_nr_slots(x->f), 0);
	mv_romd_region_set_mode(flash, true);
	assert_slot(x, HV_SLOT(0, 0), 0xfffe0000, 0x2000, mv_ramblock_host(rb), HV_MEM_READONLY);
	assert_string_equal(fake_hv_trace(x->f),
			    "set 0:0 gpa=0xfffe0000 size=0x0 flags=ro -> 0\n"
			    "set 0:0 gpa=0xfffe0000 size=0x2000 flags=ro -> 0\n");
}

/* A section not on page boundaries maps only its whole pages, hva following. */
static void test_page_trimming(void **state)
{
	fx *x = *state;
	mv_region *ram = new_ram(x, "ram", 0x10000, false);

	attach(x);
	/* [0x10800, 0x13800) showing ram from 0x800: pages 0x11000..0x13000. */
	place(x, 0x10800, cu_alias(x->mem, "win", ram, 0x800, 0x3000), 0);
	/* Less than a page after trimming: nothing. */
	place(x, 0x20800, cu_alias(x->mem, "tiny", ram, 0x800, 0x1000), 0);
	mv_region_unref(ram);

	assert_slot(x, HV_SLOT(0, 0), 0x11000, 0x2000, host_of(ram) + 0x1000, 0);
	assert_int_equal(fake_hv_nr_slots(x->f), 1);
	assert_null(hv_mem_error(x->hm));
}

/* I/O over RAM splits its slot in two; removing the I/O merges them back. */
static void test_io_splits_and_merges(void **state)
{
	fx *x = *state;
	mv_region *ram = place(x, 0, new_ram(x, "ram", 0x100000, false), 0);
	mv_region *io;

	attach(x);
	fake_hv_trace_reset(x->f);
	io = place(x, 0x40000, cu_io(x->mem, "io", 0x1000), 1);
	assert_string_equal(fake_hv_trace(x->f),
			    "set 0:0 gpa=0x0 size=0x0 flags=- -> 0\n"
			    "set 0:0 gpa=0x0 size=0x40000 flags=- -> 0\n"
			    "set 0:1 gpa=0x41000 size=0xbf000 flags=- -> 0\n");
	assert_slot(x, HV_SLOT(0, 1), 0x41000, 0xbf000, host_of(ram) + 0x41000, 0);

	fake_hv_trace_reset(x->f);
	assert_int_equal(mv_region_del_subregion(x->root, io), 0);
	assert_string_equal(fake_hv_trace(x->f),
			    "set 0:0 gpa=0x0 size=0x0 flags=- -> 0\n"
			    "set 0:1 gpa=0x41000 size=0x0 flags=- -> 0\n"
			    "set 0:0 gpa=0x0 size=0x100000 flags=- -> 0\n");
	assert_int_equal(fake_hv_nr_slots(x->f), 1);
	assert_int_equal(hv_mem_stats(x->hm)->slots_in_use, 1);
	assert_int_equal(hv_mem_stats(x->hm)->slots_max, 2);
}

/* Read-only toggles delete the slot (size 0) then add it anew: KVM refuses a READONLY flip. */
static void test_readonly_toggle_order(void **state)
{
	fx *x = *state;
	mv_region *ram = place(x, 0, new_ram(x, "ram", 0x10000, false), 0);

	attach(x);
	fake_hv_trace_reset(x->f);
	mv_region_set_readonly(ram, true);
	mv_region_set_readonly(ram, false);
	assert_string_equal(fake_hv_trace(x->f),
			    "set 0:0 gpa=0x0 size=0x0 flags=- -> 0\n"
			    "set 0:0 gpa=0x0 size=0x10000 flags=ro -> 0\n"
			    "set 0:0 gpa=0x0 size=0x0 flags=ro -> 0\n"
			    "set 0:0 gpa=0x0 size=0x10000 flags=- -> 0\n");
	assert_null(hv_mem_error(x->hm));
}

/* Address-space id 1 numbers its slots HV_SLOT(1, n); one listener per id. */
static void test_two_address_spaces(void **state)
{
	fx *x = *state;
	mv_region *ram = place(x, 0, new_ram(x, "ram", 0x10000, false), 0);
	mv_region *smroot = cu_container(x->mem, "smram-root", (mv_u128)1 << 40);
	mv_region *smram = new_ram(x, "smram", 0x20000, false);
	mv_address_space *smm;
	mv_error err = { 0 };

	cu_add(smroot, 0xa0000, smram, 0);
	assert_int_equal(mv_address_space_new(x->mem, smroot, "smm", &smm), 0);
	mv_region_unref(smroot);
	attach(x);
	assert_int_equal(hv_mem_attach(x->hm, smm, 1, &err), 0);

	assert_slot(x, HV_SLOT(0, 0), 0, 0x10000, host_of(ram), 0);
	assert_slot(x, HV_SLOT(1, 0), 0xa0000, 0x20000, host_of(smram), 0);
	assert_int_equal(hv_mem_attach(x->hm, smm, 1, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "address space id 1"));
	assert_int_equal(hv_mem_attach(x->hm, smm, 2, &err), -EINVAL);
	/* Freeing the space first removes its slots; hv_mem_free copes later. */
	mv_address_space_free(smm);
	assert_null(fake_hv_slot(x->f, HV_SLOT(1, 0)));
	assert_int_equal(fake_hv_nr_slots(x->f), 1);
}

/* ------------------------------------------------------------------ */
/* Dirty logging                                                        */

/* mv_region_set_log flips HV_MEM_LOG_DIRTY_PAGES with flags-only updates. */
static void test_log_start_stop_region(void **state)
{
	fx *x = *state;
	mv_region *ram = place(x, 0, new_ram(x, "ram", 0x10000, false), 0);

	attach(x);
	fake_hv_trace_reset(x->f);
	assert_int_equal(mv_region_set_log(ram, true, MV_DIRTY_VGA), 0);
	assert_slot(x, HV_SLOT(0, 0), 0, 0x10000, host_of(ram), HV_MEM_LOG_DIRTY_PAGES);
	assert_int_equal(mv_region_set_log(ram, false, MV_DIRTY_VGA), 0);
	assert_string_equal(fake_hv_trace(x->f),
			    "set 0:0 gpa=0x0 size=0x10000 flags=log -> 0\n"
			    "set 0:0 gpa=0x0 size=0x10000 flags=- -> 0\n");
}

/* Global logging logs every slot once; a region's own client outlives it. */
static void test_log_global(void **state)
{
	fx *x = *state;
	mv_region *ram = place(x, 0, new_ram(x, "ram", 0x10000, false), 0);
	mv_region *vga = place(x, 0x100000, new_ram(x, "vga", 0x10000, false), 0);

	place(x, 0x200000, new_ram(x, "rom", 0x10000, true), 0);
	assert_int_equal(mv_region_set_log(vga, true, MV_DIRTY_VGA), 0);
	attach(x);
	fake_hv_trace_reset(x->f);

	mv_memory_global_dirty_log_start(x->mem);
	assert_string_equal(fake_hv_trace(x->f),
			    "set 0:0 gpa=0x0 size=0x10000 flags=log -> 0\n"
			    "set 0:2 gpa=0x200000 size=0x10000 flags=ro,log -> 0\n");
	/* RAM that appears while logging is on logs from its first slot. */
	mv_region *hot = place(x, 0x300000, new_ram(x, "hotplug", 0x10000, false), 0);

	assert_slot(x, HV_SLOT(0, 3), 0x300000, 0x10000, host_of(hot), HV_MEM_LOG_DIRTY_PAGES);

	fake_hv_trace_reset(x->f);
	mv_memory_global_dirty_log_stop(x->mem);
	assert_string_equal(fake_hv_trace(x->f),
			    "set 0:0 gpa=0x0 size=0x10000 flags=- -> 0\n"
			    "set 0:2 gpa=0x200000 size=0x10000 flags=ro -> 0\n"
			    "set 0:3 gpa=0x300000 size=0x10000 flags=- -> 0\n");
	assert_slot(x, HV_SLOT(0, 1), 0x100000, 0x10000, host_of(vga), HV_MEM_LOG_DIRTY_PAGES);
	assert_slot(x, HV_SLOT(0, 0), 0, 0x10000, host_of(ram), 0);
}

/*
 * log_sync copies a slot's bitmap into its RAM block, page n of the slot
 * being page n + (where the slot starts in the block) -- here an alias
 * showing the block from 0x4000.
 */
static void test_log_sync_bitmap_offset(void **state)
{
	fx *x = *state;
	mv_region *ram = new_ram(x, "ram", 0x10000, false);
	mv_ramblock *rb = block_of(ram);

	place(x, 0x100000, cu_alias(x->mem, "win", ram, 0x4000, 0x8000), 0);
	assert_int_equal(mv_region_set_log(ram, true, MV_DIRTY_VGA), 0);
	attach(x);
	assert_slot(x, HV_SLOT(0, 0), 0x100000, 0x8000, host_of(ram) + 0x4000,
		    HV_MEM_LOG_DIRTY_PAGES);

	fake_hv_dirty(x->f, HV_SLOT(0, 0), 1);
	fake_hv_dirty(x->f, HV_SLOT(0, 0), 3);
	fake_hv_dirty(x->f, HV_SLOT(0, 0), 4);
	fake_hv_trace_reset(x->f);
	mv_memory_global_dirty_log_sync(x->mem);
	assert_string_equal(fake_hv_trace(x->f), "get 0:0 -> 0\n");
	assert_dirty(rb, "0x5000 0x7000 0x8000");
	assert_int_equal(hv_mem_stats(x->hm)->pages_synced, 3);

	/* Plain bitmap mode: the get cleared the accelerator's bits. */
	clear_dirty(rb);
	mv_memory_global_dirty_log_sync(x->mem);
	assert_dirty(rb, "");
	mv_region_unref(ram);
}

/* A logged slot's pending dirty pages are synced before it is deleted. */
static void test_sync_before_delete(void **state)
{
	fx *x = *state;
	mv_region *ram = place(x, 0, new_ram(x, "ram", 0x10000, false), 0);

	assert_int_equal(mv_region_set_log(ram, true, MV_DIRTY_VGA), 0);
	attach(x);
	fake_hv_dirty(x->f, HV_SLOT(0, 0), 2);
	fake_hv_trace_reset(x->f);
	assert_int_equal(mv_region_del_subregion(x->root, ram), 0);
	assert_string_equal(fake_hv_trace(x->f),
			    "get 0:0 -> 0\n"
			    "set 0:0 gpa=0x0 size=0x0 flags=log -> 0\n");
}

/* Manual protect: every get is followed by a clear of exactly the bits got. */
static void test_manual_clear(void **state)
{
	fx *x = *state;
	hv_mem_dirty_config dc = { .mode = HV_MEM_DIRTY_MANUAL };
	mv_region *ram = place(x, 0, new_ram(x, "ram", 0x100000, false), 0);
	mv_ramblock *rb = block_of(ram);
	mv_error err = { 0 };

	assert_int_equal(hv_mem_set_dirty_mode(x->hm, &dc, &err), 0);
	assert_string_equal(fake_hv_trace(x->f), "manual 0x3 -> 0\n");
	attach(x);
	mv_memory_global_dirty_log_start(x->mem);

	/* INIT_SET: the first sync finds all 256 pages dirty. */
	fake_hv_trace_reset(x->f);
	mv_memory_global_dirty_log_sync(x->mem);
	assert_string_equal(fake_hv_trace(x->f),
			    "get 0:0 -> 0\n"
			    "clear 0:0 first=0 num=256 bits=ffffffffffffffff,ffffffffffffffff,"
			    "ffffffffffffffff,ffffffffffffffff -> 0\n");
	assert_int_equal(hv_mem_stats(x->hm)->pages_synced, 256);

	clear_dirty(rb);
	fake_hv_dirty(x->f, HV_SLOT(0, 0), 2);
	fake_hv_dirty(x->f, HV_SLOT(0, 0), 5);
	fake_hv_dirty(x->f, HV_SLOT(0, 0), 130);
	fake_hv_trace_reset(x->f);
	mv_memory_global_dirty_log_sync(x->mem);
	assert_string_equal(fake_hv_trace(x->f),
			    "get 0:0 -> 0\n"
			    "clear 0:0 first=0 num=256 bits=24,0,4,0 -> 0\n");
	assert_dirty(rb, "0x2000 0x5000 0x82000");

	/* Nothing got, nothing cleared. */
	fake_hv_trace_reset(x->f);
	mv_memory_global_dirty_log_sync(x->mem);
	assert_string_equal(fake_hv_trace(x->f), "get 0:0 -> 0\n");
	mv_memory_global_dirty_log_stop(x->mem);
}

/* Ring entries (slot, page) land on the right block pages, then rings are reset. */
static void test_ring_harvest(void **state)
{
	fx *x = *state;
	hv_mem_dirty_config dc = { .mode = HV_MEM_DIRTY_RING, .ring_entries = 256 };
	mv_region *ram = place(x, 0, new_ram(x, "ram", 0x10000, false), 0);
	mv_region *other = new_ram(x, "other", 0x10000, false);
	mv_region *win = place(x, 0x100000, cu_alias(x->mem, "win", other, 0x2000, 0x4000), 0);
	hv_vcpu *cpu[2];
	mv_error err = { 0 };

	assert_int_equal(hv_mem_set_dirty_mode(x->hm, &dc, &err), 0);
	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(hv_vcpu_create(fake_hv_vm(x->f), i, &cpu[i], &err), 0);
		assert_int_equal(hv_mem_add_vcpu(x->hm, cpu[i]), 0);
	}
	assert_int_equal(hv_mem_add_vcpu(x->hm, cpu[0]), -EEXIST);
	assert_int_equal(hv_mem_set_dirty_mode(x->hm, &(hv_mem_dirty_config){ 0 }, &err), -EBUSY);
	attach(x);
	mv_memory_global_dirty_log_start(x->mem);
	assert_slot(x, HV_SLOT(0, 1), 0x100000, 0x4000, host_of(other) + 0x2000,
		    HV_MEM_LOG_DIRTY_PAGES);

	fake_hv_ring_push(cpu[0], HV_SLOT(0, 0), 3);
	fake_hv_ring_push(cpu[1], HV_SLOT(0, 1), 1);
	fake_hv_ring_push(cpu[1], HV_SLOT(0, 9), 0);  /* no such slot: dropped */
	fake_hv_trace_reset(x->f);
	assert_int_equal(hv_mem_ring_harvest(x->hm), 3);
	assert_string_equal(fake_hv_trace(x->f),
			    "harvest vcpu 0: 1\nharvest vcpu 1: 2\nreset 3\n");
	assert_dirty(block_of(ram), "0x3000");
	assert_dirty(block_of(other), "0x3000");

	/* log_sync harvests too. */
	fake_hv_ring_push(cpu[0], HV_SLOT(0, 0), 15);
	mv_memory_global_dirty_log_sync(x->mem);
	assert_dirty(block_of(ram), "0x3000 0xf000");

	/* Entries of a slot are harvested before its id can be reused. */
	fake_hv_ring_push(cpu[1], HV_SLOT(0, 1), 2);
	assert_int_equal(mv_region_del_subregion(x->root, win), 0);
	assert_dirty(block_of(other), "0x3000 0x4000");
	assert_int_equal(hv_mem_stats(x->hm)->ring_entries, 5);
	assert_null(hv_mem_error(x->hm));

	/* The VMM destroys its vCPUs before freeing the listener. */
	hv_vcpu_destroy(cpu[0]);
	hv_vcpu_destroy(cpu[1]);
	mv_region_unref(other);
}

typedef struct harvester {
	hv_mem *hm;
	atomic_bool stop;
	unsigned long runs;
} harvester;

static void *harvest_loop(void *opaque)
{
	harvester *h = opaque;

	while (!atomic_load(&h->stop)) {
		hv_mem_ring_harvest(h->hm);
		h->runs++;
	}
	return NULL;
}

/*
 * A vCPU thread harvests while the tree changes under it: the slot table
 * is consistent at the end (every fake call is made under the listener's
 * lock, so the single-threaded fake is safe here).
 */
static void test_harvest_concurrent_with_edits(void **state)
{
	fx *x = *state;
	hv_mem_dirty_config dc = { .mode = HV_MEM_DIRTY_RING, .ring_entries = 64 };
	mv_region *ram = place(x, 0, new_ram(x, "ram", 0x100000, false), 0);
	mv_region *io = cu_io(x->mem, "io", 0x1000);
	harvester h = { .hm = x->hm };
	mv_error err = { 0 };
	pthread_t t;
	hv_vcpu *cpu;

	assert_int_equal(hv_mem_set_dirty_mode(x->hm, &dc, &err), 0);
	assert_int_equal(hv_vcpu_create(fake_hv_vm(x->f), 0, &cpu, &err), 0);
	assert_int_equal(hv_mem_add_vcpu(x->hm, cpu), 0);
	attach(x);
	mv_memory_global_dirty_log_start(x->mem);
	assert_int_equal(pthread_create(&t, NULL, harvest_loop, &h), 0);
	for (int i = 0; i < 300; i++) {
		assert_int_equal(mv_region_add_subregion_overlap(x->root, 0x1000 * (i % 200 + 1),
								 io, 1), 0);
		assert_int_equal(mv_region_del_subregion(x->root, io), 0);
	}
	atomic_store(&h.stop, true);
	pthread_join(t, NULL);
	mv_memory_global_dirty_log_stop(x->mem);

	assert_null(hv_mem_error(x->hm));
	assert_int_equal(fake_hv_nr_slots(x->f), 1);
	assert_slot(x, HV_SLOT(0, 0), 0, 0x100000, host_of(ram), 0);
	assert_int_equal(hv_mem_del_vcpu(x->hm, cpu), 0);
	assert_int_equal(hv_mem_del_vcpu(x->hm, cpu), -ENOENT);
	hv_vcpu_destroy(cpu);
	mv_region_unref(io);
}

/* ------------------------------------------------------------------ */
/* Errors                                                               */

/* A refused memslot becomes one sentence; later calls go on, the first error stays. */
static void test_error_recorded(void **state)
{
	fx *x = *state;
	mv_region *ram = new_ram(x, "pc.ram", 0x10000, false);

	attach(x);
	fake_hv_fail_next_memslot(x->f, -EINVAL);
	place(x, 0x100000, ram, 0);
	assert_string_equal(hv_mem_error(x->hm),
			    "memslot 0 (gpa 0x100000, 0x10000 bytes) for region 'pc.ram': "
			    "hv_set_memslot: Invalid argument");
	assert_int_equal(fake_hv_nr_slots(x->f), 0);

	/* A window whose host address is not page aligned: KVM's rule refuses it. */
	place(x, 0x200000, cu_alias(x->mem, "skew", ram, 0x800, 0x2000), 0);
	assert_int_equal(fake_hv_nr_slots(x->f), 0);
	assert_int_equal(hv_mem_stats(x->hm)->memslot_errors, 2);
	assert_non_null(strstr(hv_mem_error(x->hm), "0x100000"));

	/* Unmapping a section whose slot was refused makes no call. */
	fake_hv_trace_reset(x->f);
	assert_int_equal(mv_region_del_subregion(x->root, ram), 0);
	assert_string_equal(fake_hv_trace(x->f), "");
}

/* Running out of slots is recorded too. */
static void test_slots_exhausted(void **state)
{
	fx *x = *state;

	attach(x);
	place(x, 0x0, new_ram(x, "a", 0x1000, false), 0);
	place(x, 0x10000, new_ram(x, "b", 0x1000, false), 0);
	place(x, 0x20000, new_ram(x, "c", 0x1000, false), 0);
	assert_int_equal(fake_hv_nr_slots(x->f), 2);
	assert_string_equal(hv_mem_error(x->hm),
			    "no free memslot for region 'c' (gpa 0x20000, 0x1000 bytes): "
			    "all slots of the address space are in use");
}

/* Dirty-mode errors are sentences at once. */
static void test_dirty_mode_errors(void **state)
{
	fx *x = *state;
	mv_error err = { 0 };
	hv_mem_dirty_config bad = { .mode = HV_MEM_DIRTY_RING, .ring_entries = 100 };

	assert_int_equal(hv_mem_set_dirty_mode(x->hm, &bad, &err), -EINVAL);
	assert_string_equal(err.msg, "dirty ring size 100 is not a power of two up to 1024");
	fake_hv_set_cap(x->f, HV_CAP_MANUAL_DIRTY_PROTECT, 0);
	bad.mode = HV_MEM_DIRTY_MANUAL;
	assert_int_equal(hv_mem_set_dirty_mode(x->hm, &bad, &err), -ENOTSUP);
	assert_int_equal(hv_mem_get_dirty_mode(x->hm), HV_MEM_DIRTY_BITMAP);
}

/* Mode OFF: logging requests never reach the slots. */
static void test_dirty_off(void **state)
{
	fx *x = *state;
	hv_mem_dirty_config off = { .mode = HV_MEM_DIRTY_OFF };
	mv_region *ram = place(x, 0, new_ram(x, "ram", 0x10000, false), 0);
	mv_error err = { 0 };

	assert_int_equal(hv_mem_set_dirty_mode(x->hm, &off, &err), 0);
	attach(x);
	mv_memory_global_dirty_log_start(x->mem);
	mv_memory_global_dirty_log_sync(x->mem);
	assert_slot(x, HV_SLOT(0, 0), 0, 0x10000, host_of(ram), 0);
	assert_string_equal(fake_hv_trace(x->f), "set 0:0 gpa=0x0 size=0x10000 flags=- -> 0\n");
}

/* ------------------------------------------------------------------ */
/* Real KVM                                                             */

/* The pc machine with -m 512M on /dev/kvm: every slot accepted. */
static void test_real_kvm_pc(void **state)
{
	hv_vm_config cfg = { .arch = HV_ARCH_X86_64 };
	mv_machine_opts opts = { .ram_size = 512ull << 20 };
	mv_error err = { 0 };
	mv_memory *mem;
	mv_machine *m;
	mv_flatview *fv;
	hv_vm *vm;
	hv_mem *hm;
	int r = hv_vm_create("kvm", &cfg, &vm, &err);

	(void)state;
	if (r == -ENODEV) {
		printf("SKIP: test_real_kvm_pc: %s\n", err.msg);
		skip();
	}
	assert_int_equal(r, 0);
	assert_int_equal(mv_memory_new(NULL, &mem), 0);
	assert_int_equal(mv_machine_new(mem, "pc", &opts, &m, &err), 0);
	assert_int_equal(hv_mem_new(vm, mem, &hm, &err), 0);
	assert_int_equal(hv_mem_attach(hm, mv_machine_memory_as(m), 0, &err), 0);
	if (hv_mem_error(hm))
		fail_msg("%s", hv_mem_error(hm));

	fv = mv_address_space_get_flatview(mv_machine_memory_as(m));
	assert_int_equal(hv_mem_stats(hm)->slots_in_use, cu_mappable_sections(fv));
	assert_true(hv_mem_stats(hm)->slots_in_use >= 3);
	mv_flatview_unref(fv);

	/* Global logging on real KVM: every slot accepts the log flag, and a sync works. */
	mv_memory_global_dirty_log_start(mem);
	mv_memory_global_dirty_log_sync(mem);
	mv_memory_global_dirty_log_stop(mem);
	if (hv_mem_error(hm))
		fail_msg("%s", hv_mem_error(hm));

	hv_mem_free(hm);
	mv_machine_free(m);
	hv_vm_destroy(vm);
	mv_memory_free(mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ram_rom_io, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_romd_mode, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_page_trimming, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_io_splits_and_merges, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_readonly_toggle_order, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_two_address_spaces, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_log_start_stop_region, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_log_global, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_log_sync_bitmap_offset, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_sync_before_delete, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_manual_clear, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_ring_harvest, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_harvest_concurrent_with_edits, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_error_recorded, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_slots_exhausted, fx_setup_2slots, fx_teardown),
		cmocka_unit_test_setup_teardown(test_dirty_mode_errors, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_dirty_off, fx_setup, fx_teardown),
		cmocka_unit_test(test_real_kvm_pc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
