/*
 * Running a parsed `memvirt mmu run` script on a soft arm64 VM with one
 * vCPU (docs/mmu_script.md says what each line does and prints).
 */
#ifndef MEMVIRT_MMU_EXEC_H
#define MEMVIRT_MMU_EXEC_H

#include <stdio.h>

#include "mmu_script.h"

/*
 * Run @s, printing every access, stage-2 abort and handler action to @out.
 * Returns the exit status: 0; 1 when an expect line failed (each failure
 * is reported on stderr as "memvirt: SCRIPT:LINE: ...", and the script
 * goes on) or the host refused something (memory); 2 when a line cannot
 * be carried out (one "SCRIPT:LINE: ..." sentence; the run stops there).
 */
int mmu_script_run(const mmu_script *s, FILE *out);

#endif
