/*
 * Small ELF images built in memory for the PVH loader and VMM tests: an
 * ELF header, program headers and ELF notes written into a buffer.
 */
#ifndef MV_TEST_PVH_IMAGE_H
#define MV_TEST_PVH_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One program header. */
typedef struct seg {
	uint32_t type;
	uint64_t offset, paddr, filesz, memsz;
} seg;

/* An image being built: ELF64 or ELF32, little endian. */
typedef struct img {
	bool is64;
	uint32_t entry;          /* e_entry */
	uint8_t buf[8192] __attribute__((aligned(8)));
	size_t size;             /* bytes of buf that form the file */
	uint64_t phoff;
	unsigned phnum;
} img;

/* Write the ELF header for @machine (EM_X86_64, EM_386, ...). */
void pvh_img_ehdr(img *im, uint16_t machine);
/* Write program header @i. */
void pvh_img_phdr(img *im, unsigned i, const seg *s);
/* Write an ELF note at @p; returns its size with padding. */
size_t pvh_img_note(uint8_t *p, const char *name, uint32_t type, const void *desc,
		    uint32_t descsz);

#endif
