/*
 * The state of one `memvirt mmu run`, shared by the runner's parts:
 * mmu_exec.c (set-up lines and accesses), mmu_report.c (what is printed)
 * and mmu_expect.c (the checks).
 */
#ifndef MEMVIRT_MMU_RUN_H
#define MEMVIRT_MMU_RUN_H

#include "mmu_s1.h"
#include "mmu_script.h"

/* A ram line: anonymous host memory. */
typedef struct mmu_ram {
	const char *name;
	uint8_t *hva;
	uint64_t size;
	void *map;             /* what to munmap */
	size_t map_len;
} mmu_ram;

/* A slot line that KVM accepted. */
typedef struct mmu_slot {
	unsigned id;
	uint64_t gpa, size;
	uint8_t *hva;
} mmu_slot;

/* The last access an in-kernel device saw (printed with the mmio-kernel action). */
typedef struct mmu_dev_access {
	bool seen, is_write;
	uint64_t addr, data;
	unsigned len;
} mmu_dev_access;

/* An iodev line: an in-kernel device whose reads return @value. */
typedef struct mmu_iodev {
	uint64_t value;
	mmu_dev_access *last;  /* the run's record */
} mmu_iodev;

/* What the last access did, for expect. */
typedef struct mmu_last {
	bool ran;
	unsigned nr_aborts;
	mv_a64_abort_event ev;  /* the last stage-2 abort */
	mmu_result result;
} mmu_last;

typedef struct mmu_run {
	const mmu_script *s;
	const mmu_line *l;      /* the line being run */
	FILE *out;
	uint64_t vtcr;
	mv_a64_vm *vm;
	mv_a64_vcpu *vcpu;
	mmu_ram *rams;          /* arrays of s->nr entries at most */
	size_t nr_rams;
	mmu_slot *slots;
	size_t nr_slots;
	mmu_iodev *devs;
	size_t nr_devs;
	mmu_dev_access dev_access;
	mmu_s1_pool pool;
	uint64_t mmio_reply;
	mmu_last last;
	unsigned accesses, aborts, expects, mismatches;
	char msg[600];          /* the sentence of a failed line */
} mmu_run;

/* Record "<sentence>" for the current line; returns @status (CLI_FAIL / CLI_USAGE). */
int mmu_fail(mmu_run *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Host address of [ipa, ipa + len) when one slot holds it all, else NULL (mmu_guest_ptr_fn). */
void *mmu_guest_ptr(void *run, uint64_t ipa, uint64_t len);

/* Guest byte order is little-endian: @len bytes (at most 8 count) to and from a value. */
uint64_t mmu_le_load(const void *p, unsigned len);
void mmu_le_store(void *p, unsigned len, uint64_t v);

/* "EFAULT" for -EFAULT. */
const char *mmu_errno_name(int err);

/* "4K", "2M", "1G", "48K", or a byte count, into @buf. */
const char *mmu_size_name(uint64_t size, char buf[24]);

/* ---- mmu_report.c ---- */
/* The abort line and the handler line of one stage-2 abort. */
void mmu_report_abort(mmu_run *r, const mv_a64_abort_event *ev);
/* "N: <instruction>" before an access. */
void mmu_report_access(mmu_run *r, const mmu_line *l);
/*
 * The outcome line(s) of an access that returned @ret with @o (MMIO
 * exits: the exit, then @reply / @value once it was completed).
 */
void mmu_report_outcome(mmu_run *r, const mv_a64_insn *in, int ret, const mv_a64_outcome *o,
			uint64_t value);
/* `show s2 IPA`: the stage-2 leaf covering @ipa. */
void mmu_report_leaf(mmu_run *r, uint64_t ipa);

/* Read @width bytes of guest memory at @ipa (little-endian); false when no slot holds them. */
bool mmu_guest_read(mmu_run *r, uint64_t ipa, unsigned width, uint64_t *value);
/* The valid stage-2 leaf covering @ipa: its size (0 = none), first IPA and descriptor. */
void mmu_s2_leaf(mmu_run *r, uint64_t ipa, uint64_t *size, uint64_t *base, mv_pte *pte);

/* ---- mmu_expect.c ---- */
/* Check one expect line; 0, CLI_FAIL after reporting a mismatch, CLI_USAGE when it cannot run. */
int mmu_expect(mmu_run *r, const mmu_line *l);

#endif
