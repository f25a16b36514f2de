/*
 * The test guest as access programs for the soft accelerator (docs/vmm.md,
 * "--accel soft"): a soft vCPU has no instruction decoder, so instead of
 * executing guests/testguest.elf each vCPU runs a program (hv_soft.h) that
 * makes the guest's accesses -- the same boot line, hvm_start_info and
 * command line, slices, workloads, device protocol, report lines and
 * isa-debug-exit status, computed with the guest's own code
 * (memvirt/guest_gen.h).
 *
 * The VMM builds one vmm_soft_guest per VM after loading the PVH image
 * (the programs read hvm_start_info and the command line from guest
 * memory, where the loader put them) and attaches it to every vCPU before
 * the first run.
 */
#ifndef MEMVIRT_VMM_SOFT_GUEST_H
#define MEMVIRT_VMM_SOFT_GUEST_H

#include "memvirt/base.h"
#include "memvirt/hv.h"

#include <stdint.h>

typedef struct vmm_soft_guest vmm_soft_guest;

/*
 * The programs' shared state for @nr_vcpus vCPUs (1..64): the guest's
 * globals. @start_info is the guest-physical address of hvm_start_info
 * (what a PVH entry finds in EBX). Errors: -EINVAL (@nr_vcpus),
 * -ENOMEM, with a sentence.
 */
int vmm_soft_guest_new(uint64_t start_info, unsigned nr_vcpus, vmm_soft_guest **out,
		       mv_error *err);
/* Free it; every vCPU it was attached to must be destroyed first. NULL is a no-op. */
void vmm_soft_guest_free(vmm_soft_guest *g);

/*
 * Make soft vCPU @vcpu (id < nr_vcpus) run the test guest's program
 * (hv_soft_vcpu_set_program), before its first run. Errors: the
 * accelerator's (-EINVAL: not a soft vCPU, or already started), with a
 * sentence.
 */
int vmm_soft_guest_attach(vmm_soft_guest *g, hv_vcpu *vcpu, mv_error *err);

#endif
