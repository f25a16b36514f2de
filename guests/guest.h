/*
 * memvirt test guest: shared declarations. Freestanding x86-64 code; the
 * boot path (entry.S, setup.c) runs at CPL0, everything from user_main()
 * on runs at CPL3 with IOPL=3. See docs/guests.md.
 */
#ifndef GUEST_H
#define GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memvirt/guest_gen.h"
#include "memvirt/testdev_abi.h"

#define KSTACK_SIZE 8192            /* per-vCPU CPL0 stack (setup, exceptions) */
#define ISTACK_SIZE 4096            /* per-vCPU IST1 stack (#NMI, #DF, #MC) */
#define USTACK_SIZE 32768           /* per-vCPU CPL3 stack */
#define PAGE_SIZE ((uint64_t)4096)
#define MIB ((uint64_t)1 << 20)

/* GDT selectors: null, code64 DPL0, data DPL0, code64 DPL3, data DPL3, TSS. */
#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UCODE (0x18 | 3)
#define SEL_UDATA (0x20 | 3)
#define SEL_TSS 0x28

/* ---- port and MMIO access ---- */
static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint32_t inl(uint16_t port) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }

static inline uint64_t mmio_read(uint64_t reg)
{
	return *(volatile uint64_t *)(uintptr_t)(MVT_MMIO_BASE + reg);
}
static inline void mmio_write(uint64_t reg, uint64_t v)
{
	*(volatile uint64_t *)(uintptr_t)(MVT_MMIO_BASE + reg) = v;
}

/* ---- what setup (vCPU 0, CPL0) learned from hvm_start_info ---- */
#define STATIC_MAP_END (16 * MIB)   /* entry.S's final tables map [0, this) */
struct boot_info {
	char cmdline[MVG_CMDLINE_MAX];
	uint64_t cmdline_src;       /* non-zero: CPL3 still copies the command line from here */
	unsigned nr_ram;
	struct mvg_ram_range ram[MVG_MAX_RAM_RANGES];
};
extern struct boot_info g_boot;

/* CPL3 -> CPL0 service call (`ud2`, number in RAX; setup.c user_service). */
#define SVC_FLUSH_TLB 0             /* reload CR3 */
static inline uint64_t svc_call(uint64_t nr)
{
	__asm__ volatile("ud2" : "+a"(nr) : : "memory");
	return nr;
}

/* Map the RAM ranges of g_boot above the static part (paging.c, CPL3, vCPU 0). */
void map_guest_ram(void);

/* ---- console (console.c): whole lines on debugcon, one vCPU at a time ---- */
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void vsay(const char *fmt, va_list ap);
void say_unlocked(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* For the exception handler: takes the console lock only if it gets it soon. */
void say_forced(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void guest_exit(uint8_t value);
void spin_lock(volatile uint32_t *l);
void spin_unlock(volatile uint32_t *l);

/* A check failed: prints "guest: FAIL <what>"; the guest then ends with 1. */
void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern volatile uint32_t g_failures;

/* ---- workloads (work_*.c), all at CPL3 ---- */
struct cpu_ctx {
	unsigned cpu;
	unsigned nr_cpus;           /* vCPUs running the workloads */
	bool dev;                   /* the memvirt test device answered */
	uint64_t base;              /* this vCPU's slice of the workload area */
	uint64_t slice;             /* bytes */
	uint64_t seq;               /* next MVT_REG_SEQ value (per vCPU, persists) */
};
void wl_touch(struct cpu_ctx *c, const struct mvg_config *cfg);
void wl_dirty(struct cpu_ctx *c, const struct mvg_config *cfg);
void wl_mmio(struct cpu_ctx *c, const struct mvg_config *cfg);
void wl_pio(struct cpu_ctx *c, const struct mvg_config *cfg);
void wl_verify(struct cpu_ctx *c, const struct mvg_config *cfg);
void wl_rom(struct cpu_ctx *c, const struct mvg_config *cfg);

/* ---- libc functions the compiler may call (console.c) ---- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
size_t strlen(const char *s);

/* CPL3 entry of every vCPU (main.c). */
__attribute__((noreturn)) void user_main(unsigned cpu);

#endif
