/* ELF images built in memory for tests (see pvh_image.h). */
#include "pvh_image.h"

#include <elf.h>
#include <string.h>

void pvh_img_ehdr(img *im, uint16_t machine)
{
	if (im->is64) {
		Elf64_Ehdr h = { .e_type = ET_EXEC, .e_machine = machine, .e_version = EV_CURRENT,
				 .e_entry = im->entry, .e_phoff = im->phoff, .e_ehsize = sizeof(h),
				 .e_phentsize = sizeof(Elf64_Phdr), .e_phnum = im->phnum };

		memcpy(h.e_ident, ELFMAG, SELFMAG);
		h.e_ident[EI_CLASS] = ELFCLASS64;
		h.e_ident[EI_DATA] = ELFDATA2LSB;
		h.e_ident[EI_VERSION] = EV_CURRENT;
		memcpy(im->buf, &h, sizeof(h));
	} else {
		Elf32_Ehdr h = { .e_type = ET_EXEC, .e_machine = machine, .e_version = EV_CURRENT,
				 .e_entry = im->entry, .e_phoff = im->phoff, .e_ehsize = sizeof(h),
				 .e_phentsize = sizeof(Elf32_Phdr), .e_phnum = im->phnum };

		memcpy(h.e_ident, ELFMAG, SELFMAG);
		h.e_ident[EI_CLASS] = ELFCLASS32;
		h.e_ident[EI_DATA] = ELFDATA2LSB;
		h.e_ident[EI_VERSION] = EV_CURRENT;
		memcpy(im->buf, &h, sizeof(h));
	}
}

void pvh_img_phdr(img *im, unsigned i, const seg *s)
{
	if (im->is64) {
		Elf64_Phdr p = { .p_type = s->type, .p_offset = s->offset, .p_vaddr = s->paddr,
				 .p_paddr = s->paddr, .p_filesz = s->filesz, .p_memsz = s->memsz,
				 .p_align = 4 };

		memcpy(im->buf + im->phoff + i * sizeof(p), &p, sizeof(p));
	} else {
		Elf32_Phdr p = { .p_type = s->type, .p_offset = s->offset, .p_vaddr = s->paddr,
				 .p_paddr = s->paddr, .p_filesz = s->filesz, .p_memsz = s->memsz,
				 .p_align = 4 };

		memcpy(im->buf + im->phoff + i * sizeof(p), &p, sizeof(p));
	}
}

size_t pvh_img_note(uint8_t *p, const char *name, uint32_t type, const void *desc,
		       uint32_t descsz)
{
	Elf64_Nhdr n = { .n_namesz = strlen(name) + 1, .n_descsz = descsz, .n_type = type };
	size_t name_pad = (n.n_namesz + 3) & ~3u;

	memcpy(p, &n, sizeof(n));
	memset(p + sizeof(n), 0, name_pad);
	memcpy(p + sizeof(n), name, n.n_namesz);
	memcpy(p + sizeof(n) + name_pad, desc, descsz);
	return sizeof(n) + name_pad + ((descsz + 3) & ~3u);
}

