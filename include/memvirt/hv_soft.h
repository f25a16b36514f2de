/*
 * The "soft" accelerator's own additions to the accelerator interface
 * (hv.h): what a soft vCPU runs. A soft vCPU has no instruction decoder;
 * its "guest" is an access program: straight-line host C code that performs
 * guest accesses (reads, writes, fetches at a GVA; port I/O) through the
 * soft vCPU's access engine, as the KVM test guest's workloads perform them
 * with real instructions.
 *
 * hv_vcpu_run on a soft vCPU resumes the program until its next access
 * leaves the guest (MMIO or PIO exit, dirty ring full, kick, error), then
 * returns that exit record, exactly as KVM_RUN does. The program runs on
 * a thread of its own that only ever runs while hv_vcpu_run waits for it,
 * so to the caller it behaves as if it ran on the calling thread. A read
 * that exited returns to the program with the data user space put in the
 * exit record (KVM's completion on the next KVM_RUN).
 *
 * When the program returns, the vCPU exits with HV_EXIT_HLT (as a guest
 * that halts with interrupts off) and every later run does the same.
 */
#ifndef MEMVIRT_HV_SOFT_H
#define MEMVIRT_HV_SOFT_H

#include "memvirt/hv.h"

#include <stdint.h>

/* The program's handle on its vCPU. */
typedef struct hv_soft_cpu hv_soft_cpu;

/* An access program; its return value is reported in the HLT exit's trace only. */
typedef int (*hv_soft_program_fn)(hv_soft_cpu *cpu, void *arg);

/*
 * Give soft vCPU @vcpu its program (before its first run). -EINVAL when
 * @vcpu is not a soft vCPU or already started.
 */
int hv_soft_vcpu_set_program(hv_vcpu *vcpu, hv_soft_program_fn fn, void *arg);
/* Is @vm on the soft accelerator? */
bool hv_vm_is_soft(const hv_vm *vm);

/*
 * Guest accesses from a program, at the vCPU's current privilege (CPL 3 /
 * EL0 by default, hv_soft_set_user). Sizes 1, 2, 4, 8. An access that
 * leaves the guest suspends the program inside the call. A guest fault
 * (x86 #PF, arm64 stage-1 abort or injected abort) is returned as a
 * negative value: -EFAULT, with the details in hv_soft_last_fault.
 */
int hv_soft_read(hv_soft_cpu *cpu, uint64_t gva, unsigned size, uint64_t *value);
int hv_soft_write(hv_soft_cpu *cpu, uint64_t gva, unsigned size, uint64_t value);
int hv_soft_fetch(hv_soft_cpu *cpu, uint64_t gva, uint32_t *insn);
/* x86 port I/O (-ENOTSUP on arm64). */
int hv_soft_pio_in(hv_soft_cpu *cpu, uint16_t port, unsigned size, uint32_t *value);
int hv_soft_pio_out(hv_soft_cpu *cpu, uint16_t port, unsigned size, uint32_t value);
/* Run the next accesses at user (true) or supervisor privilege. */
void hv_soft_set_user(hv_soft_cpu *cpu, bool user);
/* The vCPU's index (hv_vcpu_create's id). */
uint32_t hv_soft_cpu_id(const hv_soft_cpu *cpu);

typedef struct hv_soft_fault {
	uint64_t addr;        /* CR2 / FAR_EL1 */
	uint64_t code;        /* #PF error code / ESR_EL1 */
} hv_soft_fault;
void hv_soft_last_fault(const hv_soft_cpu *cpu, hv_soft_fault *f);

/*
 * MMU notifier for host memory that the VMM is about to drop or move
 * (MADV_DONTNEED discard, resize, DIMM unplug): on a soft VM, zap every
 * mapping of [hva, hva + len) (invalidate_range_start) or end the
 * invalidation (end). Real KVM gets these from the kernel; on a KVM VM they
 * are no-ops.
 */
void hv_vm_invalidate_hva_start(hv_vm *vm, uint64_t hva, uint64_t len);
void hv_vm_invalidate_hva_end(hv_vm *vm, uint64_t hva, uint64_t len);

#endif
