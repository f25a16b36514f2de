/*
 * Stage 2 of one IPA for one access, as the hardware walker does it (ARM
 * ARM D8, "VMSAv8-64 translation", stage 2 of the EL1&0 regime): the leaf
 * covering the IPA, then in order
 *   IPA beyond VTCR_EL2.T0SZ          translation fault, level 0
 *   invalid entry / reserved encoding translation fault at its level
 *   OA above VTCR_EL2.PS              address size fault at its level
 *   AF = 0                            access flag fault (no hardware AF update)
 *   S2AP / XN forbid the access       permission fault at its level
 * Table descriptors point to host memory of the VM's own pool, never to
 * guest-controlled addresses, so only leaf output addresses are checked
 * against PS. Without FEAT_XNX only XN[1] (bit 54) is honoured, and it
 * forbids execution at both EL0 and EL1.
 */
#include "soft/arm64/a64_access.h"

/* Fill @f for a stage-2 fault of @kind at @level. */
static bool s2_fault(a64_xfault *f, a64_fault_kind kind, int level)
{
	f->kind = kind;
	f->level = level;
	f->stage2 = true;
	return false;
}

/*
 * A leaf the walker may use: a page at the last level (bits[1:0] = 0b11),
 * a block at a level that has blocks for the granule (4 KiB: 1 and 2;
 * 16/64 KiB: 2), ARM ARM D8.3 "Block descriptors".
 */
static bool s2_leaf_ok(const mv_pgt *pgt, mv_pte pte, int level)
{
	if (level == pgt->last_level)
		return (pte & MV_S2_TYPE_TABLE) != 0;
	return level == 2 || (level == 1 && pgt->granule_shift == 12);
}

/* What the leaf grants (S2AP[0] read, S2AP[1] write, XN[1] no execution). */
static unsigned s2_rights(mv_pte pte)
{
	unsigned r = 0;

	if (pte & MV_S2_S2AP_R)
		r |= MV_TLB_R;
	if (pte & MV_S2_S2AP_W)
		r |= MV_TLB_W;
	if (!(pte & MV_S2_XN))
		r |= MV_TLB_X;
	return r;
}

bool a64_s2_translate(mv_a64_vm *vm, uint64_t ipa, unsigned need, uint64_t *host, unsigned *rights,
		      a64_xfault *f)
{
	mv_pgt *pgt = &vm->s2.pgt;
	uint64_t size, oa;
	mv_pte pte;
	int level;

	f->ipa = ipa;
	/* MV_PGT_RANGE: beyond the IPA size; host-memory tables are always reachable. */
	if (mv_pgt_get_leaf(pgt, ipa, &pte, &level) != MV_PGT_OK)
		return s2_fault(f, A64_FAULT_TRANS, 0);
	if (!(pte & MV_S2_VALID) || !s2_leaf_ok(pgt, pte, level))
		return s2_fault(f, A64_FAULT_TRANS, level);
	oa = mv_s2_pte_oa(pte, pgt->granule_shift);
	if (oa >> vm->s2.cfg.oa_bits)
		return s2_fault(f, A64_FAULT_ADDR_SIZE, level);
	if (!(pte & MV_S2_AF))
		return s2_fault(f, A64_FAULT_ACCESS, level);
	*rights = s2_rights(pte);
	if (need & ~*rights)
		return s2_fault(f, A64_FAULT_PERM, level);
	size = mv_pgt_level_size(pgt, level);
	*host = (oa & ~(size - 1)) | (ipa & (size - 1));
	return true;
}
