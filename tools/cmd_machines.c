/* `memvirt machines`: the built-in machine types, one per line. */
#include <getopt.h>
#include <stdio.h>

#include "memvirt/machine.h"
#include "cli.h"

void cmd_machines_usage(FILE *out)
{
	fputs("usage: memvirt machines\n"
	      "\n"
	      "List the built-in machine types accepted by 'memvirt mtree --machine'.\n"
	      "\n"
	      "options:\n"
	      "  -h, --help   show this help\n", out);
}

int cmd_machines(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *const *types;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		if (c != 'h')
			return cli_bad_option("machines", c, argv);
		cmd_machines_usage(stdout);
		return CLI_OK;
	}
	if (optind < argc)
		return cli_error(CLI_USAGE, "machines: unexpected argument '%s' "
				 "(see 'memvirt machines --help')", argv[optind]);
	for (types = mv_machine_types(); *types; types++)
		printf("%s\n", *types);
	return CLI_OK;
}
