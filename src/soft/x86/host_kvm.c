/*
 * What this host's CPU and KVM say about physical addresses: MAXPHYADDR
 * (CPUID) and the guest-physical bits KVM's memslots reach, which depend
 * on whether it uses EPT / NPT (module parameters in sysfs).
 */
#include "memvirt/soft_x86.h"

#include <fcntl.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

/* kvm_mmu_max_gfn() with shadow paging: 52 guest-physical bits. */
#define X86_SHADOW_PHYS_BITS 52

unsigned mv_x86_host_maxphyaddr(void)
{
#if defined(__x86_64__) || defined(__i386__)
	unsigned eax, ebx, ecx, edx;

	if (__get_cpuid(0x80000008u, &eax, &ebx, &ecx, &edx))
		return eax & 0xffu;
	return 36;
#else
	return 48;     /* no CPUID: the common 48-bit physical address size */
#endif
}

/* First character of a sysfs parameter, 0 when the file is absent. */
static char x86_sysfs_param(const char *path)
{
	char c = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	if (read(fd, &c, 1) != 1)
		c = 0;
	close(fd);
	return c;
}

bool mv_x86_host_kvm_tdp(void)
{
	char ept = x86_sysfs_param("/sys/module/kvm_intel/parameters/ept");
	char npt = x86_sysfs_param("/sys/module/kvm_amd/parameters/npt");

	return ept == 'Y' || ept == '1' || npt == 'Y' || npt == '1';
}

unsigned mv_x86_host_kvm_phys_bits(void)
{
	return mv_x86_host_kvm_tdp() ? mv_x86_host_maxphyaddr() : X86_SHADOW_PHYS_BITS;
}
