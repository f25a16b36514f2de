/*
 * The vCPU state at a PVH entry (Xen's docs/misc/pvh.pandoc): 32-bit
 * protected mode with paging off, flat 4 GiB code and data segments, a
 * usable 32-bit TSS (VM entry rejects an unusable TR), EBX = the physical
 * address of hvm_start_info, EIP = the entry from the ELF note. Plus the
 * CPUID table, with this vCPU's APIC id where the leaves report one.
 */
#include "vmm/machine_x86.h"

#include <errno.h>
#include <string.h>

#include "util/alloc.h"

#define SEL_CODE 0x08
#define SEL_DATA 0x10
#define SEG_TYPE_CODE_XRA 0xb     /* Vol. 3A 3.4.5.1: code, execute/read, accessed */
#define SEG_TYPE_DATA_RWA 0x3     /* Vol. 3A 3.4.5.1: data, read/write, accessed */
#define SEG_TYPE_TSS32_BUSY 0xb   /* Vol. 3A 3.5 Table 3-2: 32-bit TSS (busy) */
#define SEG_TYPE_LDT 0x2          /* Vol. 3A 3.5 Table 3-2: LDT */
#define TSS32_MIN_LIMIT 0x67      /* Vol. 3A 8.2.1: a 32-bit TSS is 104 bytes */
#define X86_CR0_PE (1u << 0)      /* Vol. 3A 2.5: protection enable */
#define X86_CR0_ET (1u << 4)      /* Vol. 3A 2.5: extension type, fixed 1 */
#define X86_RFLAGS_FIXED (1u << 1) /* Vol. 1 3.4.3: bit 1 is reserved, always 1 */
#define CPUID_MAX_ENTRIES 4096

/* Vol. 3A 3.4.5: a flat segment, base 0, limit 4 GiB (G = 1), 32-bit (D/B = 1). */
static hv_x86_segment flat_segment(uint16_t selector, uint8_t type)
{
	return (hv_x86_segment){
		.base = 0, .limit = 0xffffffff, .selector = selector, .type = type,
		.present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1,
	};
}

static int set_sregs(hv_vcpu *vcpu, mv_error *err)
{
	hv_x86_sregs s;
	int ret = hv_vcpu_get_sregs(vcpu, &s);

	/* Read first: keep what PVH does not define (APIC base, CR8). */
	if (ret)
		return mv_error_set(err, ret, "vCPU %u: cannot read the segment registers: %s",
				    hv_vcpu_id(vcpu), strerror(-ret));
	s.cs = flat_segment(SEL_CODE, SEG_TYPE_CODE_XRA);
	s.ds = s.es = s.fs = s.gs = s.ss = flat_segment(SEL_DATA, SEG_TYPE_DATA_RWA);
	/* Vol. 3C 26.3.1.2: TR must be usable, a busy TSS, S = 0, present. */
	s.tr = (hv_x86_segment){ .limit = TSS32_MIN_LIMIT, .type = SEG_TYPE_TSS32_BUSY, .present = 1 };
	/* Vol. 3C 26.3.1.2: an unusable LDTR is not checked further. */
	s.ldt = (hv_x86_segment){ .type = SEG_TYPE_LDT, .unusable = 1 };
	s.gdt = (hv_x86_dtable){ 0 };
	s.idt = (hv_x86_dtable){ 0 };
	s.cr0 = X86_CR0_PE | X86_CR0_ET;
	s.cr2 = s.cr3 = s.cr4 = 0;
	s.efer = 0;             /* Vol. 3A 2.2.1: no long mode, no NX */
	ret = hv_vcpu_set_sregs(vcpu, &s);
	if (ret)
		return mv_error_set(err, ret, "vCPU %u: cannot set the PVH segment registers: %s",
				    hv_vcpu_id(vcpu), strerror(-ret));
	return 0;
}

static int set_regs(hv_vcpu *vcpu, const vmm_pvh_boot *boot, mv_error *err)
{
	hv_x86_regs r = { .rip = boot->entry, .rbx = boot->start_info, .rflags = X86_RFLAGS_FIXED };
	int ret = hv_vcpu_set_regs(vcpu, &r);

	if (ret)
		return mv_error_set(err, ret, "vCPU %u: cannot set the PVH registers: %s",
				    hv_vcpu_id(vcpu), strerror(-ret));
	return 0;
}

/* Vol. 2A CPUID: the leaves that name the executing logical processor. */
static void cpuid_set_apic_id(hv_x86_cpuid *e, size_t n, uint32_t id)
{
	for (size_t i = 0; i < n; i++) {
		if (e[i].function == 1)          /* EBX[31:24]: initial APIC id */
			e[i].ebx = (e[i].ebx & 0x00ffffffu) | (id << 24);
		else if (e[i].function == 0xb || e[i].function == 0x1f)
			e[i].edx = id;           /* EDX: x2APIC id, every sub-leaf */
	}
}

/* The supported table, in a buffer grown until it fits (KVM's -E2BIG protocol). */
static int supported_cpuid(hv_vm *vm, hv_x86_cpuid **out, size_t *n)
{
	for (size_t max = 64; max <= CPUID_MAX_ENTRIES; max *= 2) {
		hv_x86_cpuid *e = mv_zalloc(NULL, max * sizeof(*e));
		int ret;

		if (!e)
			return -ENOMEM;
		ret = hv_vm_supported_cpuid(vm, e, max);
		if (ret >= 0) {
			*out = e;
			*n = (size_t)ret;
			return 0;
		}
		mv_free(NULL, e);
		if (ret != -E2BIG)
			return ret;
	}
	return -E2BIG;
}

static int set_cpuid(hv_vm *vm, hv_vcpu *vcpu, mv_error *err)
{
	hv_x86_cpuid *e = NULL;
	size_t n = 0;
	int ret = supported_cpuid(vm, &e, &n);

	if (ret)
		return mv_error_set(err, ret, "vCPU %u: cannot read the supported CPUID: %s",
				    hv_vcpu_id(vcpu), strerror(-ret));
	cpuid_set_apic_id(e, n, hv_vcpu_id(vcpu));
	ret = hv_vcpu_set_cpuid(vcpu, e, n);
	mv_free(NULL, e);
	if (ret)
		return mv_error_set(err, ret, "vCPU %u: cannot set its CPUID: %s", hv_vcpu_id(vcpu),
				    strerror(-ret));
	return 0;
}

int vmm_x86_vcpu_boot_state(hv_vm *vm, hv_vcpu *vcpu, const vmm_pvh_boot *boot,
			    mv_error *err)
{
	int ret = set_cpuid(vm, vcpu, err);

	if (!ret)
		ret = set_sregs(vcpu, err);
	if (!ret)
		ret = set_regs(vcpu, boot, err);
	return ret;
}
