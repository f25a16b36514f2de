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

#include "memvirt/testdev_abi.h"

#define MAX_CPUS 64                 /* initial APIC ids 0..MAX_CPUS-1 */
#define KSTACK_SIZE 8192            /* per-vCPU CPL0 stack (setup, exceptions) */
#define ISTACK_SIZE 4096            /* per-vCPU IST1 stack (#NMI, #DF, #MC) */
#define USTACK_SIZE 32768           /* per-vCPU CPL3 stack */
#define PAGE_SIZE ((uint64_t)4096)
#define MIB ((uint64_t)1 << 20)
#define MAX_RAM_RANGES 64
#define CMDLINE_MAX 1024
#define WS_MAX_MIB 2048             /* largest dirty working set per vCPU */
#define MAX_WORKLOADS 32

/* GDT selectors: null, code64 DPL0, data DPL0, code64 DPL3, data DPL3, TSS. */
#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UCODE (0x18 | 3)
#define SEL_UDATA (0x20 | 3)
#define SEL_TSS 0x28

/* Exit values written to isa-debug-exit (status = value * 2 + 1). */
#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_CMDLINE 2
#define EXIT_EXCEPTION 0x7f

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
struct ram_range {
	uint64_t start, end;        /* [start, end), e820 type 1 */
};
#define STATIC_MAP_END (16 * MIB)   /* entry.S's final tables map [0, this) */
struct boot_info {
	char cmdline[CMDLINE_MAX];
	uint64_t cmdline_src;       /* non-zero: CPL3 still copies the command line from here */
	unsigned nr_ram;
	struct ram_range ram[MAX_RAM_RANGES];
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

/* ---- command line (cmdline.c) ---- */
enum workload { WL_TOUCH, WL_DIRTY, WL_MMIO, WL_PIO, WL_VERIFY, WL_ROM };
struct config {
	unsigned nr_wl;
	uint8_t wl[MAX_WORKLOADS];
	uint64_t base_mib;
	uint64_t touch_mib;
	uint64_t ws_mib, rounds, pages, dirty_seed, spin;
	uint64_t mmio_count, pio_count;
	uint64_t seq_count;          /* mmio's SEQ writes; mmio_count unless given */
	uint64_t verify_mib, verify_seed;
};
/* 0, or -1 with the offending token copied to @bad. */
int parse_cmdline(const char *s, struct config *c, char *bad, size_t badsz);

/* ---- workloads (work_*.c), all at CPL3 ---- */
struct cpu_ctx {
	unsigned cpu;
	unsigned nr_cpus;           /* vCPUs running the workloads */
	bool dev;                   /* the memvirt test device answered */
	uint64_t base;              /* this vCPU's slice of the workload area */
	uint64_t slice;             /* bytes */
	uint64_t seq;               /* next MVT_REG_SEQ value (per vCPU, persists) */
};
void wl_touch(struct cpu_ctx *c, const struct config *cfg);
void wl_dirty(struct cpu_ctx *c, const struct config *cfg);
void wl_mmio(struct cpu_ctx *c, const struct config *cfg);
void wl_pio(struct cpu_ctx *c, const struct config *cfg);
void wl_verify(struct cpu_ctx *c, const struct config *cfg);
void wl_rom(struct cpu_ctx *c, const struct config *cfg);

/* ---- helpers (util.c) ---- */
static inline uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}
/* The PRNG seed of @cpu for a workload seeded with @seed. */
static inline uint64_t cpu_seed(uint64_t seed, unsigned cpu)
{
	return seed ^ ((uint64_t)cpu * 0xd1b54a32d192ed03ULL);
}
#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL
/* FNV-1a 64 over the 8 little-endian bytes of @v. */
static inline uint64_t fnv1a_u64(uint64_t h, uint64_t v)
{
	for (int i = 0; i < 8; i++) {
		h ^= (v >> (8 * i)) & 0xff;
		h *= FNV_PRIME;
	}
	return h;
}

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
size_t strlen(const char *s);

/* CPL3 entry of every vCPU (main.c). */
__attribute__((noreturn)) void user_main(unsigned cpu);

#endif
