/*
 * A fake accelerator for tests of the layers above hv.h: an hv_ops table
 * (created through hv_vm_create_ops) that checks KVM's memslot rules
 * (alignment, flags, slot range, overlap, no size/hva/READONLY change of a
 * live slot, delete of an absent slot), keeps per-slot dirty bitmaps with
 * optional manual protection, per-vCPU dirty rings the test fills, and
 * writes every memory call as one line of a text trace:
 *
 *   set A:N gpa=0x.. size=0x.. flags=ro|log|ro,log|- -> R
 *   get A:N -> R           clear A:N first=F num=N bits=W0[,W1..] -> R
 *   manual 0xF -> R        ring E -> R        harvest vcpu V: K        reset K
 *
 * (A = address-space id, N = slot id, R = return value, words in hex).
 * Single-threaded use only.
 */
#ifndef MV_TESTS_FAKE_HV_H
#define MV_TESTS_FAKE_HV_H

#include "hv/backend.h"

#define FAKE_HV_NR_AS 2
#define FAKE_HV_MAX_SLOTS 64
#define FAKE_HV_MAX_VCPUS 8
#define FAKE_HV_RING_MAX 1024

typedef struct fake_hv fake_hv;

/*
 * Create a fake VM. @nr_slots: HV_CAP_NR_MEMSLOTS (<= FAKE_HV_MAX_SLOTS).
 * Capabilities: 2 address spaces, read-only memory, manual protection
 * (ENABLE | INIT_SET), dirty rings up to FAKE_HV_RING_MAX entries; change
 * them with fake_hv_set_cap before creating the hv_mem.
 */
fake_hv *fake_hv_new(unsigned nr_slots);
hv_vm *fake_hv_vm(fake_hv *f);
/* Destroy (hv_vm_destroy works too). */
void fake_hv_free(fake_hv *f);
void fake_hv_set_cap(fake_hv *f, hv_cap cap, long value);

/* The live slot numbered HV_SLOT(as, id), or NULL. */
const hv_memslot *fake_hv_slot(fake_hv *f, uint32_t slot);
/* Number of live slots in all address spaces. */
unsigned fake_hv_nr_slots(fake_hv *f);

/* The call trace since creation or the last reset (owned by @f). */
const char *fake_hv_trace(fake_hv *f);
void fake_hv_trace_reset(fake_hv *f);

/* Make the next hv_set_memslot fail with @err (a negative errno) and change nothing. */
void fake_hv_fail_next_memslot(fake_hv *f, int err);

/* The guest wrote page @page of logging slot @slot (bitmap modes). */
void fake_hv_dirty(fake_hv *f, uint32_t slot, uint64_t page);
/* Push a dirty-ring entry on @vcpu's ring (ring mode). */
void fake_hv_ring_push(hv_vcpu *vcpu, uint32_t slot, uint64_t offset);

#endif
