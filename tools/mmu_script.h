/*
 * Scenario scripts of `memvirt mmu run` (docs/mmu_script.md): the parsed
 * form. mmu_script.c turns the text into a list of lines, checking
 * everything that can be checked before anything runs (syntax, numbers,
 * register names, instruction forms, the order of set-up lines);
 * mmu_exec.c runs them on a soft arm64 VM.
 */
#ifndef MEMVIRT_MMU_SCRIPT_H
#define MEMVIRT_MMU_SCRIPT_H

#include <stdio.h>

#include "memvirt/soft_arm64.h"

typedef enum mmu_op {
	MMU_VTCR,        /* vtcr VALUE, or ipa BITS [granule G] [start-level N] (encoded) */
	MMU_RAM,         /* ram NAME SIZE [thp | hugetlb PAGESIZE] */
	MMU_SLOT,        /* slot ID GPA RAM [offset OFF] [size SIZE] [ro] [log] */
	MMU_S2MAP,       /* s2map IPA BLOCK [count N] [ap ..] [af 0|1] [xn] [device] */
	MMU_HANDLER,     /* handler on|off */
	MMU_NISV,        /* nisv on|off */
	MMU_IODEV,       /* iodev ADDR SIZE [value V] */
	MMU_MMIO_REPLY,  /* mmio-reply VALUE */
	MMU_SET,         /* set REG VALUE */
	MMU_WRITE,       /* write8/16/32/64 IPA VALUE */
	MMU_S1POOL,      /* s1pool IPA SIZE */
	MMU_S1MAP,       /* s1map VA IPA [BLOCK] [count N] [ap ..] [uxn] [pxn] [af 0|1] */
	MMU_TLBI,        /* tlbi */
	MMU_SHOW_S2,     /* show s2 IPA */
	MMU_ECHO,        /* echo TEXT */
	MMU_ACCESS,      /* an instruction */
	MMU_EXPECT,      /* expect ... */
} mmu_op;

/* A register of `set` / `expect`. */
typedef enum mmu_reg_kind {
	MMU_REG_X,       /* Xn (num) */
	MMU_REG_W,       /* Wn (num): the low 32 bits */
	MMU_REG_SP,
	MMU_REG_PC,
	MMU_REG_EL,
	MMU_REG_SYS,     /* an EL1 system register: num = offset in mv_a64_sysregs */
} mmu_reg_kind;

typedef struct mmu_reg {
	mmu_reg_kind kind;
	unsigned num;
	const char *name;    /* as the script names it (static) */
} mmu_reg;

typedef enum mmu_backing {
	MMU_RAM_PAGES,
	MMU_RAM_THP,
	MMU_RAM_HUGETLB,
} mmu_backing;

/* Stage-2 permissions (S2AP[1:0], ARM ARM D8.4.3). */
typedef enum mmu_s2ap { MMU_S2AP_NONE, MMU_S2AP_RO, MMU_S2AP_WO, MMU_S2AP_RW } mmu_s2ap;
/* Script names of the S2AP values, indexed by mmu_s2ap (also S2AP[1:0]). */
extern const char *const mmu_s2ap_names[4];

/* What `expect` checks. */
typedef enum mmu_expect_kind {
	MMU_EXP_REG,     /* a register */
	MMU_EXP_ESR,     /* ESR_EL2 of the last stage-2 abort of the last access */
	MMU_EXP_HPFAR,
	MMU_EXP_FAR,
	MMU_EXP_ABORTS,  /* how many stage-2 aborts the last access took */
	MMU_EXP_ACTION,  /* the handler's action on the last abort (and map size) */
	MMU_EXP_RESULT,  /* how the last access ended (mmu_result) */
	MMU_EXP_MEM,     /* guest memory at an IPA (width bytes) */
	MMU_EXP_S2,      /* the stage-2 leaf covering an IPA */
} mmu_expect_kind;

/* How an access ended, as `expect result` names it. */
typedef enum mmu_result {
	MMU_RES_DONE,
	MMU_RES_MMIO,          /* exit: HV_EXIT_MMIO */
	MMU_RES_NISV,          /* exit: HV_EXIT_ARM_NISV */
	MMU_RES_INTERNAL,      /* exit: HV_EXIT_INTERNAL_ERROR */
	MMU_RES_GUEST_FAULT,
	MMU_RES_INJECTED,
	MMU_RES_SKIPPED,
	MMU_RES_EXIT,          /* another exit (HV_EXIT_INTR after a host-claimed external abort) */
	MMU_RES_FAILED,        /* mv_a64_vcpu_exec returned an errno */
	MMU_NR_RESULTS,
} mmu_result;

/* Names of mmu_result ("done", "mmio", ...). */
extern const char *const mmu_result_names[MMU_NR_RESULTS];

typedef struct mmu_line {
	mmu_op op;
	unsigned lineno;
	char *text;          /* the line without comment and outer blanks (owned) */
	union {
		uint64_t vtcr;
		struct { char *name; uint64_t size; mmu_backing backing; uint64_t page_size; } ram;
		struct { unsigned id; uint64_t gpa; char *ram; uint64_t offset, size; uint32_t flags; } slot;
		struct { uint64_t ipa, block, count; mmu_s2ap ap; bool af, xn, device; } s2map;
		bool on;             /* handler, nisv */
		struct { uint64_t addr, size, value; } iodev;
		uint64_t mmio_reply;
		struct { mmu_reg reg; uint64_t value; } set;
		struct { uint64_t ipa, value; unsigned width; } write;
		struct { uint64_t ipa, size; } s1pool;
		struct { uint64_t va, ipa, block, count; unsigned ap; bool uxn, pxn, af; } s1map;
		uint64_t show_ipa;
		const char *echo;    /* points into text */
		mv_a64_insn insn;    /* insn.text points into text */
		struct {
			mmu_expect_kind kind;
			mmu_reg reg;
			uint64_t value;          /* REG, ESR, HPFAR, FAR, ABORTS, MEM */
			uint64_t addr;           /* MEM, S2 */
			unsigned width;          /* MEM: 1, 2, 4, 8 */
			mv_a64_action action;    /* ACTION */
			uint64_t block;          /* ACTION (MAPPED; 0 = any), S2 (0 = no leaf) */
			mmu_result result;       /* RESULT */
			int ap, af;              /* S2: -1 = not checked */
		} expect;
	};
} mmu_line;

typedef struct mmu_script {
	char *name;          /* as given on the command line ("-" = stdin) */
	mmu_line *lines;
	size_t nr, cap;
} mmu_script;

/*
 * Read and check the script @f called @name. Returns 0, or -1 with
 * "NAME:LINE: <sentence>" in @err (a syntax error or an impossible line)
 * and nothing allocated. -ENOMEM / read errors also come back as -1 with
 * a sentence.
 */
int mmu_script_parse(FILE *f, const char *name, mmu_script **out, mv_error *err);
void mmu_script_free(mmu_script *s);

#endif
