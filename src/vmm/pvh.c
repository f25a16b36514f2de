/*
 * PVH boot (the Xen PVH ABI, as used by QEMU's and Firecracker's direct
 * kernel boot): load the PT_LOAD segments of an ELF image at their
 * physical addresses, find the entry point in the ELF note
 * XEN_ELFNOTE_PHYS32_ENTRY, and leave an hvm_start_info (version 1) with
 * the memory map and the command line for the kernel (EBX points to it).
 *
 * Everything is checked before the first byte is written, so a bad image
 * leaves guest memory as it was. Multi-byte fields are decoded as little
 * endian byte by byte: the image may sit at any alignment in memory.
 * "Segment N" in messages is program header N (0-based), as readelf -l
 * numbers them.
 */
#include "vmm/machine_x86.h"

#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <string.h>

/* Xen public headers: arch-x86/hvm/start_info.h and elfnote.h. */
#define XEN_HVM_START_MAGIC_VALUE 0x336ec578u
#define XEN_HVM_MEMMAP_TYPE_RAM 1u
#define XEN_ELFNOTE_PHYS32_ENTRY 18u

/* hvm_start_info version 1: field offsets and size. */
#define SI_MAGIC 0
#define SI_VERSION 4
#define SI_FLAGS 8
#define SI_NR_MODULES 12
#define SI_MODLIST_PADDR 16
#define SI_CMDLINE_PADDR 24
#define SI_RSDP_PADDR 32
#define SI_MEMMAP_PADDR 40
#define SI_MEMMAP_ENTRIES 48
#define SI_SIZE 56
/* hvm_memmap_table_entry: addr, size, type, reserved. */
#define MM_ENTRY_SIZE 24

/* The boot area (see machine_x86.h): start_info, memmap, command line. */
#define PVH_MEMMAP_PADDR (VMM_PVH_START_INFO + 0x80)
#define PVH_MEMMAP_MAX 8
#define PVH_CMDLINE_PADDR (VMM_PVH_START_INFO + 0x200)

/* The parts of an ELF header the loader uses, for either class. */
typedef struct pvh_elf {
	const uint8_t *buf;
	size_t size;
	const char *name;
	bool is64;
	uint64_t phoff;
	unsigned phnum, phentsize;
} pvh_elf;

/* One program header, widened to 64 bits. */
typedef struct pvh_phdr {
	uint32_t type;
	uint64_t offset, paddr, filesz, memsz;
} pvh_phdr;

/* ------------------------------------------------------------------ */
/* Little-endian field access                                           */

static uint64_t rd_le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void wr_le(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Field @f of the ELF structure @T stored at @p (its width from <elf.h>). */
#define ELF_FIELD(p, T, f) rd_le((p) + offsetof(T, f), sizeof(((T *)0)->f))
/* The same field from the ELF32 or ELF64 variant of a structure. */
#define ELF_CLS(e, p, T32, T64, f) \
	((e)->is64 ? ELF_FIELD(p, T64, f) : ELF_FIELD(p, T32, f))

/* ------------------------------------------------------------------ */
/* Headers                                                              */

static int check_ident(const pvh_elf *e, mv_error *err)
{
	const uint8_t *id = e->buf;

	if (e->size < EI_NIDENT || memcmp(id, ELFMAG, SELFMAG))
		return mv_error_set(err, -EINVAL, "%s: not an ELF file", e->name);
	if (id[EI_CLASS] != ELFCLASS32 && id[EI_CLASS] != ELFCLASS64)
		return mv_error_set(err, -EINVAL, "%s: unsupported ELF class %u (expected ELF32 or ELF64)",
				    e->name, id[EI_CLASS]);
	if (id[EI_DATA] != ELFDATA2LSB)
		return mv_error_set(err, -EINVAL, "%s: not a little-endian ELF file", e->name);
	return 0;
}

/* The program header table must lie in the file, entry by entry. */
static int check_phdr_table(const pvh_elf *e, mv_error *err)
{
	unsigned want = e->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
	uint64_t fit;

	if (e->phnum == 0 || e->phnum == PN_XNUM)
		return mv_error_set(err, -EINVAL, "%s: %s program headers", e->name,
				    e->phnum ? "too many (extended numbering)" : "no");
	if (e->phentsize != want)
		return mv_error_set(err, -EINVAL, "%s: program header size is %u bytes, expected %u for ELF%d",
				    e->name, e->phentsize, want, e->is64 ? 64 : 32);
	if (e->phoff > e->size)
		return mv_error_set(err, -EINVAL, "%s: truncated: program headers start at byte %" PRIu64 " of %zu",
				    e->name, e->phoff, e->size);
	fit = (e->size - e->phoff) / e->phentsize;
	if (fit < e->phnum)
		return mv_error_set(err, -EINVAL, "%s: truncated: program header %" PRIu64 " ends at byte %" PRIu64 " of %zu",
				    e->name, fit, e->phoff + (fit + 1) * e->phentsize, e->size);
	return 0;
}

static int parse_ehdr(pvh_elf *e, mv_error *err)
{
	const uint8_t *p = e->buf;
	size_t ehsize;
	unsigned machine;
	int ret = check_ident(e, err);

	if (ret)
		return ret;
	e->is64 = p[EI_CLASS] == ELFCLASS64;
	ehsize = e->is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
	if (e->size < ehsize)
		return mv_error_set(err, -EINVAL, "%s: truncated: ELF header ends at byte %zu of %zu",
				    e->name, ehsize, e->size);
	machine = ELF_CLS(e, p, Elf32_Ehdr, Elf64_Ehdr, e_machine);
	if (machine != EM_X86_64 && machine != EM_386)
		return mv_error_set(err, -EINVAL, "%s: ELF machine %u is not x86 (EM_X86_64 or EM_386)",
				    e->name, machine);
	e->phoff = ELF_CLS(e, p, Elf32_Ehdr, Elf64_Ehdr, e_phoff);
	e->phnum = ELF_CLS(e, p, Elf32_Ehdr, Elf64_Ehdr, e_phnum);
	e->phentsize = ELF_CLS(e, p, Elf32_Ehdr, Elf64_Ehdr, e_phentsize);
	return check_phdr_table(e, err);
}

/* Program header @i (the table was checked to be inside the file). */
static pvh_phdr read_phdr(const pvh_elf *e, unsigned i)
{
	const uint8_t *p = e->buf + e->phoff + (uint64_t)i * e->phentsize;

	return (pvh_phdr){
		.type = ELF_CLS(e, p, Elf32_Phdr, Elf64_Phdr, p_type),
		.offset = ELF_CLS(e, p, Elf32_Phdr, Elf64_Phdr, p_offset),
		.paddr = ELF_CLS(e, p, Elf32_Phdr, Elf64_Phdr, p_paddr),
		.filesz = ELF_CLS(e, p, Elf32_Phdr, Elf64_Phdr, p_filesz),
		.memsz = ELF_CLS(e, p, Elf32_Phdr, Elf64_Phdr, p_memsz),
	};
}

/* ------------------------------------------------------------------ */
/* Segments                                                             */

static int check_file_bytes(const pvh_elf *e, unsigned i, const pvh_phdr *ph, mv_error *err)
{
	uint64_t end;

	if (__builtin_add_overflow(ph->offset, ph->filesz, &end))
		return mv_error_set(err, -EINVAL, "%s: segment %u: file offset 0x%" PRIx64 " plus size 0x%" PRIx64 " overflows",
				    e->name, i, ph->offset, ph->filesz);
	if (end > e->size)
		return mv_error_set(err, -EINVAL, "%s: truncated: segment %u ends at byte %" PRIu64 " of %zu",
				    e->name, i, end, e->size);
	return 0;
}

static bool in_ram(const vmm_x86_machine *m, uint64_t start, uint64_t end)
{
	uint64_t r[2][2];
	size_t n = vmm_x86_ram_ranges(m, r, 2);

	for (size_t k = 0; k < n && k < 2; k++)
		if (start >= r[k][0] && end <= r[k][0] + r[k][1])
			return true;
	return false;
}

/* Where a PT_LOAD segment goes: whole inside one RAM range, off the boot area. */
static int check_placement(const vmm_x86_machine *m, const pvh_elf *e, unsigned i,
			   const pvh_phdr *ph, mv_error *err)
{
	uint64_t end;

	if (ph->filesz > ph->memsz)
		return mv_error_set(err, -EINVAL, "%s: segment %u has more file bytes (0x%" PRIx64 ") than memory bytes (0x%" PRIx64 ")",
				    e->name, i, ph->filesz, ph->memsz);
	if (__builtin_add_overflow(ph->paddr, ph->memsz, &end))
		return mv_error_set(err, -EINVAL, "%s: segment %u at 0x%" PRIx64 " with 0x%" PRIx64 " bytes wraps past the end of the address space",
				    e->name, i, ph->paddr, ph->memsz);
	if (!in_ram(m, ph->paddr, end))
		return mv_error_set(err, -EINVAL, "%s: segment %u [0x%" PRIx64 ", 0x%" PRIx64 ") is outside guest RAM",
				    e->name, i, ph->paddr, end);
	if (ph->paddr < VMM_PVH_BOOT_END && end > VMM_PVH_START_INFO)
		return mv_error_set(err, -EINVAL, "%s: segment %u [0x%" PRIx64 ", 0x%" PRIx64 ") overlaps the PVH boot area [0x%x, 0x%x)",
				    e->name, i, ph->paddr, end, VMM_PVH_START_INFO, VMM_PVH_BOOT_END);
	return 0;
}

static bool is_loaded(const pvh_phdr *ph)
{
	return ph->type == PT_LOAD && ph->memsz;
}

/* Every PT_LOAD and PT_NOTE segment; the image's extent into @out. */
static int check_segments(const vmm_x86_machine *m, const pvh_elf *e, vmm_pvh_boot *out,
			  mv_error *err)
{
	out->image_start = UINT64_MAX;
	out->image_end = 0;
	for (unsigned i = 0; i < e->phnum; i++) {
		pvh_phdr ph = read_phdr(e, i);
		int ret;

		if (ph.type != PT_LOAD && ph.type != PT_NOTE)
			continue;
		ret = check_file_bytes(e, i, &ph, err);
		if (!ret && is_loaded(&ph))
			ret = check_placement(m, e, i, &ph, err);
		if (ret)
			return ret;
		if (!is_loaded(&ph))
			continue;
		if (ph.paddr < out->image_start)
			out->image_start = ph.paddr;
		if (ph.paddr + ph.memsz > out->image_end)
			out->image_end = ph.paddr + ph.memsz;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The entry point note                                                 */

static uint64_t align4(uint64_t v)
{
	return (v + 3) & ~3ULL;
}

/* The descriptor of the entry note: a 32-bit address, in 4 or 8 bytes. */
static int note_entry(const pvh_elf *e, const uint8_t *desc, uint32_t descsz, uint32_t *entry,
		      mv_error *err)
{
	uint64_t v;

	if (descsz != 4 && descsz != 8)
		return mv_error_set(err, -EINVAL, "%s: the XEN_ELFNOTE_PHYS32_ENTRY note has a %" PRIu32 "-byte value (expected 4 or 8)",
				    e->name, descsz);
	v = rd_le(desc, descsz);
	if (v > UINT32_MAX)
		return mv_error_set(err, -EINVAL, "%s: PVH entry 0x%" PRIx64 " is above 4 GiB", e->name, v);
	*entry = (uint32_t)v;
	return 0;
}

/*
 * Walk the notes of PT_NOTE segment @i (header, name, descriptor, each
 * padded to 4 bytes). Returns 1 with *entry set when found, 0 if absent.
 */
static int walk_notes(const pvh_elf *e, unsigned i, const pvh_phdr *ph, uint32_t *entry,
		      mv_error *err)
{
	uint64_t pos = ph->offset, end = ph->offset + ph->filesz;

	while (pos < end) {
		const uint8_t *n = e->buf + pos;
		uint32_t namesz, descsz, type;
		uint64_t desc;

		if (end - pos < sizeof(Elf64_Nhdr))
			return mv_error_set(err, -EINVAL, "%s: note at byte %" PRIu64 " is cut off by the end of segment %u",
					    e->name, pos, i);
		namesz = ELF_FIELD(n, Elf64_Nhdr, n_namesz);
		descsz = ELF_FIELD(n, Elf64_Nhdr, n_descsz);
		type = ELF_FIELD(n, Elf64_Nhdr, n_type);
		/* 32-bit sizes: these sums cannot wrap 64 bits. */
		desc = pos + sizeof(Elf64_Nhdr) + align4(namesz);
		if (desc + descsz > end)
			return mv_error_set(err, -EINVAL, "%s: note at byte %" PRIu64 " (%" PRIu32 "-byte name, %" PRIu32 "-byte value) runs past the end of segment %u",
					    e->name, pos, namesz, descsz, i);
		if (type == XEN_ELFNOTE_PHYS32_ENTRY && namesz == 4 &&
		    !memcmp(n + sizeof(Elf64_Nhdr), "Xen", 4)) {
			int ret = note_entry(e, e->buf + desc, descsz, entry, err);

			return ret ? ret : 1;
		}
		pos = desc + align4(descsz);
	}
	return 0;
}

static int find_entry(const pvh_elf *e, uint32_t *entry, mv_error *err)
{
	for (unsigned i = 0; i < e->phnum; i++) {
		pvh_phdr ph = read_phdr(e, i);
		int ret;

		if (ph.type != PT_NOTE)
			continue;
		ret = walk_notes(e, i, &ph, entry, err);
		if (ret < 0)
			return ret;
		if (ret)
			return 0;
	}
	return mv_error_set(err, -EINVAL, "%s: no XEN_ELFNOTE_PHYS32_ENTRY note (not a PVH kernel)",
			    e->name);
}

/* The entry must be an instruction the image loads. */
static int check_entry(const pvh_elf *e, uint32_t entry, mv_error *err)
{
	for (unsigned i = 0; i < e->phnum; i++) {
		pvh_phdr ph = read_phdr(e, i);

		if (is_loaded(&ph) && entry >= ph.paddr && entry - ph.paddr < ph.memsz)
			return 0;
	}
	return mv_error_set(err, -EINVAL, "%s: PVH entry 0x%" PRIx32 " is not inside any loaded segment",
			    e->name, entry);
}

/* ------------------------------------------------------------------ */
/* Writing guest memory                                                 */

/*
 * Host address of [gpa, gpa + len), which the checks placed inside one
 * RAM range: RAM below MVT_LOWMEM_END is block offset = gpa, RAM above
 * 4 GiB continues the block where the low part ends.
 */
static uint8_t *ram_host(vmm_x86_machine *m, uint64_t gpa, uint64_t *block_off)
{
	uint64_t r[2][2];
	size_t n = vmm_x86_ram_ranges(m, r, 2);
	uint64_t off = gpa;

	if (n > 1 && gpa >= r[1][0])
		off = r[0][1] + (gpa - r[1][0]);
	*block_off = off;
	return (uint8_t *)mv_ramblock_host(vmm_x86_ram(m)) + off;
}

/* Copy @len bytes of @src (NULL: zeroes) to @gpa; dirty as a guest write would be. */
static void guest_write(vmm_x86_machine *m, uint64_t gpa, const void *src, uint64_t len)
{
	uint64_t off;
	uint8_t *host;

	if (!len)
		return;
	host = ram_host(m, gpa, &off);
	if (!src) {
		/* Validated to lie inside RAM, so this cannot fail. */
		mv_ramblock_zero(vmm_x86_ram(m), off, len);
		return;
	}
	memcpy(host, src, len);
	mv_ramblock_set_dirty(vmm_x86_ram(m), off, len);
}

static void load_segments(vmm_x86_machine *m, const pvh_elf *e)
{
	for (unsigned i = 0; i < e->phnum; i++) {
		pvh_phdr ph = read_phdr(e, i);

		if (!is_loaded(&ph))
			continue;
		guest_write(m, ph.paddr, e->buf + ph.offset, ph.filesz);
		guest_write(m, ph.paddr + ph.filesz, NULL, ph.memsz - ph.filesz);
	}
}

/* hvm_start_info, its memory map (the RAM ranges) and the command line. */
static void write_start_info(vmm_x86_machine *m, const char *cmdline)
{
	uint8_t si[SI_SIZE] = { 0 }, mm[PVH_MEMMAP_MAX * MM_ENTRY_SIZE] = { 0 };
	uint64_t r[PVH_MEMMAP_MAX][2];
	size_t n = vmm_x86_ram_ranges(m, r, PVH_MEMMAP_MAX);

	if (n > PVH_MEMMAP_MAX)
		n = PVH_MEMMAP_MAX;
	for (size_t k = 0; k < n; k++) {
		wr_le(mm + k * MM_ENTRY_SIZE, r[k][0], 8);
		wr_le(mm + k * MM_ENTRY_SIZE + 8, r[k][1], 8);
		wr_le(mm + k * MM_ENTRY_SIZE + 16, XEN_HVM_MEMMAP_TYPE_RAM, 4);
	}
	wr_le(si + SI_MAGIC, XEN_HVM_START_MAGIC_VALUE, 4);
	wr_le(si + SI_VERSION, 1, 4);
	wr_le(si + SI_CMDLINE_PADDR, cmdline ? PVH_CMDLINE_PADDR : 0, 8);
	wr_le(si + SI_MEMMAP_PADDR, PVH_MEMMAP_PADDR, 8);
	wr_le(si + SI_MEMMAP_ENTRIES, n, 4);
	/* flags, nr_modules, modlist_paddr and rsdp_paddr stay 0 */
	guest_write(m, VMM_PVH_START_INFO, si, sizeof(si));
	guest_write(m, PVH_MEMMAP_PADDR, mm, n * MM_ENTRY_SIZE);
	if (cmdline)
		guest_write(m, PVH_CMDLINE_PADDR, cmdline, strlen(cmdline) + 1);
}

/* ------------------------------------------------------------------ */

static int check_cmdline(const char *cmdline, mv_error *err)
{
	size_t room = VMM_PVH_BOOT_END - PVH_CMDLINE_PADDR;

	if (cmdline && strlen(cmdline) >= room)
		return mv_error_set(err, -EINVAL, "command line: %zu bytes do not fit the %zu the PVH boot area holds",
				    strlen(cmdline) + 1, room);
	return 0;
}

int vmm_pvh_load(vmm_x86_machine *m, const void *elf, size_t size, const char *name,
		 const char *cmdline, vmm_pvh_boot *out, mv_error *err)
{
	pvh_elf e = { .buf = elf, .size = elf ? size : 0, .name = name ? name : "kernel" };
	vmm_pvh_boot boot = { .start_info = VMM_PVH_START_INFO };
	int ret = parse_ehdr(&e, err);

	if (!ret)
		ret = check_segments(m, &e, &boot, err);
	if (!ret)
		ret = find_entry(&e, &boot.entry, err);
	if (!ret)
		ret = check_entry(&e, boot.entry, err);
	if (!ret)
		ret = check_cmdline(cmdline, err);
	if (ret)
		return ret;
	load_segments(m, &e);
	write_start_info(m, cmdline);
	if (out)
		*out = boot;
	return 0;
}
