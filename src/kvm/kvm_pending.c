/* Temporary: entries not written yet answer -ENOSYS. */
#include "kvm/kvm_internal.h"

#include <errno.h>

int kvm_enable_manual_dirty_protect(hv_vm *vm, uint32_t flags) { (void)vm; (void)flags; return -ENOSYS; }
int kvm_get_dirty_log(hv_vm *vm, uint32_t slot, uint64_t *bitmap) { (void)vm; (void)slot; (void)bitmap; return -ENOSYS; }
int kvm_clear_dirty_log(hv_vm *vm, uint32_t slot, uint64_t first_page, uint32_t num_pages, const uint64_t *bitmap) { (void)vm; (void)slot; (void)first_page; (void)num_pages; (void)bitmap; return -ENOSYS; }
int kvm_enable_dirty_ring(hv_vm *vm, uint32_t entries) { (void)vm; (void)entries; return -ENOSYS; }
int kvm_dirty_ring_harvest(hv_vcpu *vcpu, void (*fn)(void *, const hv_dirty_gfn *), void *opaque) { (void)vcpu; (void)fn; (void)opaque; return -ENOSYS; }
int kvm_dirty_rings_reset(hv_vm *vm) { (void)vm; return -ENOSYS; }
int kvm_coalesced_zone(hv_vm *vm, hv_bus bus, uint64_t addr, uint32_t size, bool add) { (void)vm; (void)bus; (void)addr; (void)size; (void)add; return -ENOSYS; }
int kvm_coalesced_drain(hv_vm *vm, void (*fn)(void *, const hv_coalesced_write *), void *opaque) { (void)vm; (void)fn; (void)opaque; return -ENOSYS; }
void kvm_coalesced_unmap(kvm_vm *vm) { (void)vm; }
int kvm_ioeventfd(hv_vm *vm, const hv_ioeventfd *e, bool add) { (void)vm; (void)e; (void)add; return -ENOSYS; }
int kvm_vcpu_create(hv_vm *vm, uint32_t id, hv_vcpu **out, mv_error *err) { (void)vm; (void)id; (void)out; return mv_error_set(err, -ENOSYS, "kvm vCPUs are not implemented yet"); }
void kvm_vcpu_destroy(hv_vcpu *vcpu) { (void)vcpu; }
int kvm_vcpu_run(hv_vcpu *vcpu, hv_exit **exit) { (void)vcpu; (void)exit; return -ENOSYS; }
void kvm_vcpu_kick(hv_vcpu *vcpu) { (void)vcpu; }
int kvm_get_regs(hv_vcpu *vcpu, hv_x86_regs *r) { (void)vcpu; (void)r; return -ENOSYS; }
int kvm_set_regs(hv_vcpu *vcpu, const hv_x86_regs *r) { (void)vcpu; (void)r; return -ENOSYS; }
int kvm_get_sregs(hv_vcpu *vcpu, hv_x86_sregs *s) { (void)vcpu; (void)s; return -ENOSYS; }
int kvm_set_sregs(hv_vcpu *vcpu, const hv_x86_sregs *s) { (void)vcpu; (void)s; return -ENOSYS; }
int kvm_supported_cpuid(hv_vm *vm, hv_x86_cpuid *out, size_t max) { (void)vm; (void)out; (void)max; return -ENOSYS; }
int kvm_set_cpuid(hv_vcpu *vcpu, const hv_x86_cpuid *entries, size_t n) { (void)vcpu; (void)entries; (void)n; return -ENOSYS; }
int kvm_translate(hv_vcpu *vcpu, uint64_t gva, uint64_t *gpa) { (void)vcpu; (void)gva; (void)gpa; return -ENOSYS; }
