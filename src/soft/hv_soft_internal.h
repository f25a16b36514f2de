/*
 * The "soft" accelerator (include/memvirt/hv_soft.h) as its files share
 * it: hv_soft.c (the hv_ops table, VMs, capabilities, memslots, dirty
 * logs and rings), hv_soft_io.c (coalesced MMIO/PIO and ioeventfd
 * devices on the soft VM's buses), hv_soft_vcpu.c (vCPUs: run, kick and
 * the program thread handoff), hv_soft_program.c (the program's access
 * calls), and one glue file per guest architecture (hv_soft_x86.c over
 * soft_x86.h, hv_soft_arm64.c over soft_arm64.h) behind soft_arch.
 *
 * Lock order: soft_vm.lock -> the arch VM's locks. A vCPU's handoff mutex
 * is never held while calling into the arch.
 */
#ifndef MV_SOFT_HV_SOFT_INTERNAL_H
#define MV_SOFT_HV_SOFT_INTERNAL_H

#include "hv/backend.h"
#include "memvirt/hv_soft.h"
#include "memvirt/soft_arm64.h"
#include "memvirt/soft_iobus.h"
#include "memvirt/soft_x86.h"

#include <pthread.h>

/*
 * Capabilities that match what this host's KVM reports, so that a test can
 * compare the two accelerators: KVM_CAP_NR_MEMSLOTS is KVM_USER_MEM_SLOTS =
 * KVM_MEM_SLOTS_NUM (32767) minus the arch's internal slots (x86: 3).
 */
#define SOFT_X86_NR_MEMSLOTS 32764u
#define SOFT_ARM64_NR_MEMSLOTS 32767u
/* vCPUs per soft VM (the arch VMs' default). */
#define SOFT_MAX_VCPUS 64u
/* KVM_DIRTY_RING_MAX_ENTRIES, and the smallest ring KVM accepts here (one 4 KiB page). */
#define SOFT_DIRTY_RING_MAX 65536u
#define SOFT_DIRTY_RING_MIN 256u

typedef struct soft_vm soft_vm;
typedef struct hv_soft_cpu soft_vcpu;

/* ---- coalesced MMIO/PIO and ioeventfd (hv_soft_io.c) ---- */

/*
 * KVM_COALESCED_MMIO_MAX: entries of the one-page ring, (4096 - 8) / 24;
 * one stays free, so 169 writes fit.
 */
#define SOFT_COALESCED_MAX 170u
/* NR_IOBUS_DEVS: in-kernel devices per bus, ioeventfds not counted. */
#define SOFT_IOBUS_DEVS 1000u

typedef struct soft_iodev soft_iodev;

/* One bus's devices, sorted by (addr, len) as kvm_io_bus keeps them. */
typedef struct soft_io_bus {
	struct soft_io *io;
	hv_bus bus;
	soft_iodev *devs;
	size_t nr, cap;
	unsigned nr_zones;          /* coalesced zones among @devs */
} soft_io_bus;

typedef struct soft_io {
	const mv_allocator *alloc;
	pthread_rwlock_t lock;      /* the device lists: read by guest writes */
	soft_io_bus bus[2];         /* by hv_bus */
	pthread_mutex_t ring_lock;  /* the coalesced ring (producers and the consumer) */
	pthread_mutex_t drain_lock; /* one drainer at a time: writes reach the VMM in order */
	hv_coalesced_write ring[SOFT_COALESCED_MAX];
	uint32_t first, last;
} soft_io;

/* Set up an empty @io (nothing can fail). */
void soft_io_init(soft_io *io, const mv_allocator *alloc);
/*
 * Put @io's dispatcher on the arch VM's buses (@pio may be NULL: arm64 has
 * no port bus). It claims each bus whole: every guest write that reaches
 * it is offered to the coalesced zones and ioeventfds in kvm_io_bus order;
 * reads and unclaimed writes exit. 0 or -ENOMEM.
 */
int soft_io_attach(soft_io *io, mv_iobus *mmio, mv_iobus *pio);
/* Release @io's devices (the buses must be gone, or no guest runs). */
void soft_io_destroy(soft_io *io);
int soft_io_coalesced_zone(soft_io *io, hv_bus bus, uint64_t addr, uint32_t size, bool add);
int soft_io_coalesced_drain(soft_io *io, void (*fn)(void *, const hv_coalesced_write *),
			    void *opaque);
int soft_io_ioeventfd(soft_io *io, const hv_ioeventfd *e, bool add);

/* ---- the architecture glue ---- */

/* One guest access of a program (hv_soft_program.c). */
typedef enum soft_op {
	SOFT_READ,
	SOFT_WRITE,
	SOFT_FETCH,
	SOFT_PIO_IN,
	SOFT_PIO_OUT,
} soft_op;

typedef struct soft_access {
	soft_op op;
	uint64_t addr;              /* GVA, or the port */
	unsigned size;              /* 1, 2, 4, 8 (fetch: 4) */
	uint64_t value;             /* data of a write */
	bool user;                  /* CPL 3 / EL0 */
} soft_access;

typedef enum soft_result {
	SOFT_DONE,                  /* performed: value */
	SOFT_EXIT,                  /* left the guest: exit (the arch vCPU's record) */
	SOFT_FAULT,                 /* a fault the guest takes: fault */
} soft_result;

typedef struct soft_outcome {
	soft_result result;
	uint64_t value;
	hv_exit *exit;
	hv_soft_fault fault;
} soft_outcome;

/* What differs between the x86 and arm64 soft VMs (hv_soft_x86.c, hv_soft_arm64.c). */
typedef struct soft_arch {
	long nr_memslots;           /* HV_CAP_NR_MEMSLOTS */
	/* HV_CAP_COALESCED_MMIO: KVM answers the ring's page offset in the vCPU mapping */
	long coalesced_mmio_page;
	bool arm_nisv;              /* HV_CAP_ARM_NISV */
	/* Create / free the arch VM (soft_vm.x86 / .a64). */
	int (*vm_new)(soft_vm *vm, mv_error *err);
	void (*vm_free)(soft_vm *vm);
	mv_iobus *(*bus)(soft_vm *vm, hv_bus bus);   /* NULL: no such bus */
	int (*set_memslot)(soft_vm *vm, const hv_memslot *m);
	int (*enable_manual_dirty_protect)(soft_vm *vm, uint32_t flags);
	int (*get_dirty_log)(soft_vm *vm, uint32_t slot, uint64_t *bitmap);
	int (*clear_dirty_log)(soft_vm *vm, uint32_t slot, uint64_t first_page,
			       uint32_t num_pages, const uint64_t *bitmap);
	int (*enable_dirty_ring)(soft_vm *vm, uint32_t entries);
	int (*dirty_rings_reset)(soft_vm *vm);
	void (*invalidate)(soft_vm *vm, uint64_t hva_start, uint64_t hva_end, bool start);
	/* Create / free the arch vCPU (soft_vcpu.x86 / .a64). */
	int (*vcpu_new)(soft_vcpu *v, mv_error *err);
	void (*vcpu_free)(soft_vcpu *v);
	int (*dirty_ring_harvest)(soft_vcpu *v, void (*fn)(void *, const hv_dirty_gfn *),
				  void *opaque);
	/*
	 * Perform @a: 0 with *out, -ENOTSUP for an access the arch has not
	 * (port I/O on arm64), -EINVAL malformed, -EAGAIN nothing done (enter
	 * again).
	 */
	int (*access)(soft_vcpu *v, const soft_access *a, soft_outcome *out);
	/*
	 * Finish the MMIO / port access the vCPU last exited for, with the data
	 * now in its exit record; *value gets a read's value.
	 */
	void (*complete)(soft_vcpu *v, uint64_t *value);
} soft_arch;

extern const soft_arch soft_arch_x86;
extern const soft_arch soft_arch_arm64;

/* ---- VMs and vCPUs ---- */

struct soft_vm {
	hv_vm base;                 /* first: hv_vm * casts back */
	const mv_allocator *alloc;
	const soft_arch *arch;
	union {
		mv_x86_vm *x86;
		mv_a64_vm *a64;
	};
	pthread_mutex_t lock;       /* vcpus, nr_vcpus, ring_entries */
	/*
	 * Every vCPU ever created: as in KVM, a vCPU lives until its VM (its id
	 * stays taken and its dirty ring is still reset); hv_vcpu_destroy only
	 * ends its program.
	 */
	soft_vcpu **vcpus;
	size_t nr_vcpus, cap_vcpus;
	uint32_t ring_entries;      /* 0: no dirty ring */
	soft_io io;
};

/* What the program thread and hv_vcpu_run hand to each other. */
typedef enum soft_turn {
	SOFT_TURN_CALLER,           /* hv_vcpu_run returns / is not running the program */
	SOFT_TURN_PROGRAM,          /* the program runs; hv_vcpu_run waits */
} soft_turn;

struct hv_soft_cpu {
	hv_vcpu base;               /* first: hv_vcpu * casts back */
	soft_vm *vm;
	unsigned id;
	union {
		mv_x86_vcpu *x86;
		mv_a64_vcpu *a64;
	};
	hv_exit exit;               /* the record hv_vcpu_run returns */
	int kicked;                 /* atomic: the current or next run returns HV_EXIT_INTR */

	/* The program and its thread; the handoff fields are under @lock. */
	hv_soft_program_fn fn;
	void *arg;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	soft_turn turn;
	bool started;               /* the thread exists */
	bool finished;              /* the program returned */
	bool cancel;                /* hv_vcpu_destroy: accesses return -ECANCELED */
	int result;                 /* the program's return value */

	/* The program's own state (its thread only). */
	bool user;
	hv_soft_fault fault;
};

static inline soft_vm *soft_vm_of(hv_vm *vm) { return (soft_vm *)vm; }
static inline soft_vcpu *soft_vcpu_of(hv_vcpu *vcpu) { return (soft_vcpu *)vcpu; }

/* hv_soft_vcpu.c: the vCPU ops. */
int soft_vcpu_create(hv_vm *vm, uint32_t id, hv_vcpu **out, mv_error *err);
void soft_vcpu_destroy(hv_vcpu *vcpu);
int soft_vcpu_run(hv_vcpu *vcpu, hv_exit **exit);
void soft_vcpu_kick(hv_vcpu *vcpu);
int soft_vcpu_dirty_ring_harvest(hv_vcpu *vcpu, void (*fn)(void *, const hv_dirty_gfn *),
				 void *opaque);
/* End @v's program (cancelling a suspended one) and free it with its arch vCPU. */
void soft_vcpu_free(soft_vcpu *v);
/*
 * The program thread's side of the handoff: publish the exit in v->exit,
 * give the turn to hv_vcpu_run and wait for the next run. False when the
 * vCPU is being destroyed instead (the program must return).
 */
bool soft_vcpu_yield(soft_vcpu *v);

#endif
