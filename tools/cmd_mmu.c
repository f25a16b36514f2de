/*
 * `memvirt mmu run SCRIPT`: run a scenario script (docs/mmu_script.md) on
 * the software KVM MMU for arm64 and print every access, stage-2 abort and
 * handler decision.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "mmu_exec.h"
#include "mmu_script.h"

void cmd_mmu_usage(FILE *out)
{
	fputs("usage: memvirt mmu run SCRIPT\n"
	      "       memvirt mmu run -          (read the script from stdin)\n"
	      "\n"
	      "Run a scenario on the software KVM MMU for arm64: set VTCR_EL2, create RAM\n"
	      "and memslots, pre-install stage-2 mappings, write guest stage-1 tables and\n"
	      "data, then perform accesses written as the A64 instruction they model\n"
	      "('ldrsh x3, [0x40404002]'). Every access is printed with each stage-2 abort\n"
	      "(ESR_EL2, HPFAR_EL2, FAR_EL2), what KVM's abort handler did and the outcome.\n"
	      "docs/mmu_script.md describes the script language; examples/mmu/ has scenarios.\n"
	      "\n"
	      "Exit status: 0 when every expect line holds, 1 when one does not (each is\n"
	      "reported) or the host refuses memory, 2 for a bad command line or script.\n", out);
}

static int mmu_run_file(const char *path)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	mmu_script *s = NULL;
	mv_error err = { 0 };
	int status;

	if (!f)
		return cli_error(CLI_FAIL, "mmu run: cannot open %s: %s", path, strerror(errno));
	status = mmu_script_parse(f, path, &s, &err);
	if (f != stdin)
		fclose(f);
	if (status)
		return cli_error(err.code == -EINVAL ? CLI_USAGE : CLI_FAIL, "%s", err.msg);
	status = mmu_script_run(s, stdout);
	mmu_script_free(s);
	return status;
}

/**
 * cmd_mmu - `memvirt mmu`
 * @argc, @argv: arguments, argv[0] being "mmu"
 *
 * Returns the exit status (see cmd_mmu_usage).
 */
int cmd_mmu(int argc, char *argv[])
{
	if (argc < 2)
		return cli_error(CLI_USAGE, "mmu: no subcommand given (see 'memvirt mmu --help')");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		cmd_mmu_usage(stdout);
		return CLI_OK;
	}
	if (strcmp(argv[1], "run"))
		return cli_error(CLI_USAGE, "mmu: unknown subcommand '%s' (see 'memvirt mmu --help')",
				 argv[1]);
	if (argc == 3 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))) {
		cmd_mmu_usage(stdout);
		return CLI_OK;
	}
	if (argc != 3)
		return cli_error(CLI_USAGE, "mmu run: give one SCRIPT, or - for stdin "
				 "(see 'memvirt mmu --help')");
	if (argv[2][0] == '-' && argv[2][1])
		return cli_error(CLI_USAGE, "mmu run: unknown option '%s' (see 'memvirt mmu --help')",
				 argv[2]);
	return mmu_run_file(argv[2]);
}
