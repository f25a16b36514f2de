/*
 * mv_ept_violation_pferr: every combination of the exit-qualification
 * bits KVM looks at (SDM Vol. 3C, "Exit Qualification for EPT
 * Violations": bits 8:0) against the error code Linux 6.18's
 * __vmx_handle_ept_violation builds, written as three hand-made tables
 * (access bits, permission bits, linear-address bits) whose values OR
 * together; the other bits (NMI unblocking, 9..11, 13..63) must not
 * matter. Some whole values as they appear in traces are checked as
 * literal numbers too.
 */
#include "testutil.h"

#include "memvirt/soft_x86.h"

#include <inttypes.h>
#include <stdio.h>

/* Error-code bits, spelled out (SDM 4.7 and KVM's PFERR_GUEST_*). */
#define PF_P (1ull << 0)
#define PF_W (1ull << 1)
#define PF_U (1ull << 2)
#define PF_F (1ull << 4)
#define PF_FINAL (1ull << 32)
#define PF_PAGE (1ull << 33)

/* Bits 2:0 (read, write, instruction fetch) -> USER / WRITE / FETCH. */
static const uint64_t acc_table[8] = {
	[0] = 0,
	[1] = PF_U,
	[2] = PF_W,
	[3] = PF_U | PF_W,
	[4] = PF_F,
	[5] = PF_U | PF_F,
	[6] = PF_W | PF_F,
	[7] = PF_U | PF_W | PF_F,
};

/* Bits 6:3 (readable, writable, executable, user-executable) -> PRESENT from 5:3 only. */
static const uint64_t prot_table[16] = {
	[0x0] = 0,    [0x1] = PF_P, [0x2] = PF_P, [0x3] = PF_P,
	[0x4] = PF_P, [0x5] = PF_P, [0x6] = PF_P, [0x7] = PF_P,
	[0x8] = 0,    [0x9] = PF_P, [0xa] = PF_P, [0xb] = PF_P,
	[0xc] = PF_P, [0xd] = PF_P, [0xe] = PF_P, [0xf] = PF_P,
};

/* Bits 8:7 (GVA valid, GVA translated) -> nothing / GUEST_PAGE / nothing / GUEST_FINAL. */
static const uint64_t gva_table[4] = {
	[0] = 0,
	[1] = PF_PAGE,     /* valid, paging-structure access */
	[2] = 0,           /* "translated" without "valid": ignored */
	[3] = PF_FINAL,
};

static uint64_t expected(uint64_t q)
{
	return acc_table[q & 7] | prot_table[(q >> 3) & 0xf] | gva_table[(q >> 7) & 3];
}

static void test_every_combination(void **state)
{
	(void)state;
	for (uint64_t q = 0; q < 512; q++) {
		uint64_t got = mv_ept_violation_pferr(q);

		if (got != expected(q))
			fail_msg("exit qualification %#" PRIx64 ": got %#" PRIx64 ", want %#" PRIx64, q, got,
				 expected(q));
	}
}

static void test_other_bits_ignored(void **state)
{
	uint64_t rng = tu_seed(0x5eed);

	(void)state;
	for (uint64_t q = 0; q < 512; q++) {
		uint64_t noise = (tu_rand(&rng) & ~0x1ffull);

		assert_int_equal(mv_ept_violation_pferr(q | noise), expected(q));
		assert_int_equal(mv_ept_violation_pferr(q | MV_EPT_VIOL_NMI_UNBLOCK), expected(q));
		assert_int_equal(mv_ept_violation_pferr(q | ~0x1ffull), expected(q));
	}
}

static void test_literal_values(void **state)
{
	(void)state;
	/* A read of a GPA with no EPT mapping, reached through the guest's paging. */
	assert_int_equal(mv_ept_violation_pferr(0x181), 0x100000004ull);
	/* A write to a read-only (R+X) mapping: present. */
	assert_int_equal(mv_ept_violation_pferr(0x1aa), 0x100000003ull);
	/* A fetch from a non-executable (R+W) mapping. */
	assert_int_equal(mv_ept_violation_pferr(0x19c), 0x100000011ull);
	/* A guest A/D update with EPT A/D on: read and write set, paging-structure access. */
	assert_int_equal(mv_ept_violation_pferr(0x083), 0x200000006ull);
	/* A guest table read with no EPT mapping. */
	assert_int_equal(mv_ept_violation_pferr(0x081), 0x200000004ull);
	/* No linear address (e.g. a PDPTE load): neither GUEST_FINAL nor GUEST_PAGE. */
	assert_int_equal(mv_ept_violation_pferr(0x001), 0x4ull);
	assert_int_equal(mv_ept_violation_pferr(0x1002), 0x2ull);
	/* User-executable alone is not "present" in 6.18. */
	assert_int_equal(mv_ept_violation_pferr(0x044), 0x10ull);
	assert_int_equal(mv_ept_violation_pferr(0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_combination),
		cmocka_unit_test(test_other_bits_ignored),
		cmocka_unit_test(test_literal_values),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
