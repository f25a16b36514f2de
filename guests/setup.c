/*
 * CPL0 set-up, run once per vCPU right after entry.S switched to long mode
 * on the static boot page tables. vCPU 0 checks hvm_start_info, copies
 * the RAM ranges of its memory map and builds the IDT, then publishes
 * g_tables_ready; every vCPU then switches to the final page tables
 * (their fixed part is static, in entry.S), loads its own GDT/TSS and
 * drops to CPL3 (user_main), where vCPU 0 maps the rest of RAM.
 * On kvm_pvm hosts every instruction here goes through KVM's emulator
 * (~10 us each measured), so this stays a few hundred instructions:
 * no loops over memory.
 */
#include "guest.h"

struct tss {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
} __attribute__((packed));

struct idt_gate {
	uint16_t off0;
	uint16_t sel;
	uint8_t ist;
	uint8_t type;               /* P | DPL | type (0xe = interrupt gate) */
	uint16_t off1;
	uint32_t off2;
	uint32_t reserved;
} __attribute__((packed));

struct desc_ptr {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed));

/* The frame exc_common hands to exception_handler. */
struct exc_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rdi, rsi, rbp, rbx, rdx, rcx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;
};

struct boot_info g_boot;
uint8_t kstacks[MVG_MAX_CPUS][KSTACK_SIZE] __attribute__((aligned(4096)));
static uint8_t istacks[MVG_MAX_CPUS][ISTACK_SIZE] __attribute__((aligned(4096)));
static uint8_t ustacks[MVG_MAX_CPUS][USTACK_SIZE] __attribute__((aligned(4096)));
static uint64_t gdts[MVG_MAX_CPUS][8] __attribute__((aligned(64)));
static struct tss tsses[MVG_MAX_CPUS] __attribute__((aligned(128)));
static struct idt_gate idt[32] __attribute__((aligned(16)));
static volatile uint32_t g_tables_ready;

extern const uint64_t exc_stubs[32];
extern uint64_t fin_pml4[512];

__attribute__((noreturn)) static void setup_fatal(const char *what, uint64_t v)
{
	say_unlocked(MVG_FMT_SETUP_FAIL, what, v);
	guest_exit(MVG_EXIT_FAIL);
}

static void read_start_info(uint32_t paddr)
{
	const struct mvg_hvm_start_info *si = (const void *)(uintptr_t)paddr;
	uint64_t bad;
	const char *problem = mvg_start_info_problem(si, &bad);

	if (problem)
		setup_fatal(problem, bad);
	if (si->cmdline_paddr + MVG_CMDLINE_MAX <= STATIC_MAP_END) {
		g_boot.cmdline_src = si->cmdline_paddr;     /* CPL3 copies it */
	} else if (si->cmdline_paddr) {
		/* not in the final tables' fixed part: copy it here (slow) */
		const char *s = (const char *)(uintptr_t)si->cmdline_paddr;
		size_t n = 0;
		while (n < MVG_CMDLINE_MAX - 1 && s[n])
			n++;
		memcpy(g_boot.cmdline, s, n);
	}
	const struct mvg_hvm_memmap_entry *mm = (const void *)(uintptr_t)si->memmap_paddr;
	for (uint32_t k = 0; k < si->memmap_entries; k++)
		if (!mvg_ram_add(g_boot.ram, &g_boot.nr_ram, &mm[k]))
			setup_fatal(MVG_SETUP_RAM_FULL, si->memmap_entries);
	if (!g_boot.nr_ram)
		setup_fatal(MVG_SETUP_NO_RAM, si->memmap_entries);
}

static void build_idt(void)
{
	for (unsigned v = 0; v < 32; v++) {
		uint64_t a = exc_stubs[v];
		idt[v].off0 = (uint16_t)a;
		idt[v].sel = SEL_KCODE;
		idt[v].ist = (v == 2 || v == 8 || v == 18) ? 1 : 0;
		idt[v].type = 0x8e;         /* present, DPL0, 64-bit interrupt gate */
		idt[v].off1 = (uint16_t)(a >> 16);
		idt[v].off2 = (uint32_t)(a >> 32);
	}
}

static void load_cpu_tables(unsigned cpu)
{
	uint64_t *gdt = gdts[cpu];
	struct tss *tss = &tsses[cpu];
	uint64_t base = (uint64_t)(uintptr_t)tss, limit = sizeof(*tss) - 1;
	struct desc_ptr gdtr = { sizeof(gdts[0]) - 1, (uint64_t)(uintptr_t)gdt };
	struct desc_ptr idtr = { sizeof(idt) - 1, (uint64_t)(uintptr_t)idt };

	tss->rsp[0] = (uint64_t)(uintptr_t)&kstacks[cpu + 1];
	tss->ist[0] = (uint64_t)(uintptr_t)&istacks[cpu + 1];
	tss->iomap_base = sizeof(*tss);     /* no I/O bitmap: IOPL=3 decides */
	gdt[0] = 0;
	gdt[1] = 0x00af9a000000ffffULL;     /* code64, DPL0 */
	gdt[2] = 0x00cf92000000ffffULL;     /* data, DPL0 */
	gdt[3] = 0x00affa000000ffffULL;     /* code64, DPL3 */
	gdt[4] = 0x00cff2000000ffffULL;     /* data, DPL3 */
	gdt[5] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ULL << 40) |
		 (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56); /* TSS, available */
	gdt[6] = base >> 32;
	gdt[7] = 0;

	__asm__ volatile(
		"lgdt %0\n\t"
		"pushq %2\n\t"
		"leaq 1f(%%rip), %%rax\n\t"
		"pushq %%rax\n\t"
		"lretq\n"
		"1:\tmovl %3, %%eax\n\t"
		"movl %%eax, %%ds\n\t"
		"movl %%eax, %%es\n\t"
		"movl %%eax, %%ss\n\t"
		"movw %4, %%ax\n\t"
		"ltr %%ax\n\t"
		"lidt %1"
		: : "m"(gdtr), "m"(idtr), "i"(SEL_KCODE), "i"(SEL_KDATA), "i"(SEL_TSS) : "rax", "memory");
}

__attribute__((noreturn)) void cpu_setup(unsigned cpu, uint32_t start_info)
{
	if (cpu == 0) {
		read_start_info(start_info);
		build_idt();
		__atomic_store_n(&g_tables_ready, 1, __ATOMIC_RELEASE);
	} else {
		while (!__atomic_load_n(&g_tables_ready, __ATOMIC_ACQUIRE))
			cpu_relax();
	}
	__asm__ volatile("mov %0, %%cr3" : : "r"((uint64_t)(uintptr_t)fin_pml4) : "memory");
	load_cpu_tables(cpu);

	/* iretq to CPL3 with IOPL=3 (RFLAGS 0x3002: IF clear), stack aligned as after a call. */
	uint64_t ursp = (uint64_t)(uintptr_t)&ustacks[cpu + 1] - 8;
	__asm__ volatile(
		"movl %k0, %%ds\n\t"
		"movl %k0, %%es\n\t"
		"pushq %0\n\t"
		"pushq %1\n\t"
		"pushq $0x3002\n\t"
		"pushq %2\n\t"
		"pushq %3\n\t"
		"iretq"
		: : "r"((uint64_t)SEL_UDATA), "r"(ursp), "r"((uint64_t)SEL_UCODE),
		    "r"((uint64_t)(uintptr_t)user_main), "D"((uint64_t)cpu) : "memory");
	__builtin_unreachable();
}

/*
 * CPL3 port I/O. The workloads run with RFLAGS.IOPL=3 and use in/out
 * directly; where the hypervisor does not honour IOPL for the guest's user
 * mode (kvm_pvm runs it at hardware ring 3 with IOPL 0) the instruction
 * raises #GP(0) instead, and this handler performs the same access at CPL0
 * and steps over it. Handles in/out with imm8 or DX, 8/16/32 bits, and
 * ins/outs with or without rep (DF = 0). Returns false for anything else.
 */
static bool emulate_user_io(struct exc_frame *f)
{
	const uint8_t *ip = (const uint8_t *)(uintptr_t)f->rip;
	bool opsize16 = false, rep = false;
	unsigned len = 0;

	if (f->vector != 13 || f->error != 0 || (f->cs & 3) != 3)
		return false;
	for (;; len++) {
		if (len == 4)
			return false;
		if (ip[len] == 0x66)
			opsize16 = true;
		else if (ip[len] == 0xf3)
			rep = true;
		else
			break;
	}
	uint8_t op = ip[len++];
	unsigned size = (op & 1) ? (opsize16 ? 2 : 4) : 1;
	uint16_t port = (uint16_t)f->rdx;

	switch (op) {
	case 0xe4: case 0xe5: case 0xe6: case 0xe7:
		port = ip[len++];
		/* fall through */
	case 0xec: case 0xed: case 0xee: case 0xef:
		if (rep)
			return false;
		if (op & 2) {               /* out */
			if (size == 1)
				__asm__ volatile("outb %b0, %w1" : : "a"(f->rax), "Nd"(port));
			else if (size == 2)
				__asm__ volatile("outw %w0, %w1" : : "a"(f->rax), "Nd"(port));
			else
				__asm__ volatile("outl %k0, %w1" : : "a"(f->rax), "Nd"(port));
		} else {                    /* in */
			uint32_t v;
			if (size == 1) {
				uint8_t b;
				__asm__ volatile("inb %w1, %b0" : "=a"(b) : "Nd"(port));
				f->rax = (f->rax & ~0xffULL) | b;
			} else if (size == 2) {
				uint16_t w;
				__asm__ volatile("inw %w1, %w0" : "=a"(w) : "Nd"(port));
				f->rax = (f->rax & ~0xffffULL) | w;
			} else {
				__asm__ volatile("inl %w1, %k0" : "=a"(v) : "Nd"(port));
				f->rax = v;         /* a 32-bit destination zero-extends */
			}
		}
		break;
	case 0x6c: case 0x6d: case 0x6e: case 0x6f: {
		uint64_t n = rep ? f->rcx : 1;
		if (f->rflags & (1 << 10))  /* DF */
			return false;
		if (op & 2) {               /* outs */
			const void *src = (const void *)(uintptr_t)f->rsi;
			if (size == 1)
				__asm__ volatile("cld; rep outsb" : "+S"(src), "+c"(n) : "d"(port) : "memory");
			else if (size == 2)
				__asm__ volatile("cld; rep outsw" : "+S"(src), "+c"(n) : "d"(port) : "memory");
			else
				__asm__ volatile("cld; rep outsl" : "+S"(src), "+c"(n) : "d"(port) : "memory");
			f->rsi = (uint64_t)(uintptr_t)src;
		} else {                    /* ins */
			void *dst = (void *)(uintptr_t)f->rdi;
			if (size == 1)
				__asm__ volatile("cld; rep insb" : "+D"(dst), "+c"(n) : "d"(port) : "memory");
			else if (size == 2)
				__asm__ volatile("cld; rep insw" : "+D"(dst), "+c"(n) : "d"(port) : "memory");
			else
				__asm__ volatile("cld; rep insl" : "+D"(dst), "+c"(n) : "d"(port) : "memory");
			f->rdi = (uint64_t)(uintptr_t)dst;
		}
		if (rep)
			f->rcx = 0;
		break;
	}
	default:
		return false;
	}
	f->rip += len;
	return true;
}

/*
 * The service call of CPL3: `ud2` with the service number in RAX (the
 * CPL3 side is svc_call() in guest.h). A software interrupt would be the
 * usual gate, but kvm_pvm raises #UD for `int n` in the guest's user mode;
 * an exception reaches the guest everywhere. Service SVC_FLUSH_TLB reloads
 * CR3. Returns false when @f is not a service call.
 */
static bool user_service(struct exc_frame *f)
{
	const uint8_t *ip = (const uint8_t *)(uintptr_t)f->rip;

	if (f->vector != 6 || (f->cs & 3) != 3 || ip[0] != 0x0f || ip[1] != 0x0b)
		return false;
	switch (f->rax) {
	case SVC_FLUSH_TLB: {
		uint64_t cr3;
		__asm__ volatile("mov %%cr3, %0\n\tmov %0, %%cr3" : "=r"(cr3) : : "memory");
		f->rax = 0;
		break;
	}
	default:
		f->rax = (uint64_t)-1;
		break;
	}
	f->rip += 2;
	return true;
}

/* Vectors 0..31: a CPL3 port access or service call, or report and end the VM. */
void exception_handler(struct exc_frame *f)
{
	uint64_t cr2;

	if (emulate_user_io(f) || user_service(f))
		return;
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	say_forced(MVG_FMT_EXCEPTION, f->vector, f->error, f->rip, cr2);
	guest_exit(MVG_EXIT_EXCEPTION);
}
