/*
 * memvirt: git-style front end. `memvirt <command> [args]`; every command
 * and the top level take --help. Errors are one "memvirt: ..." line on
 * stderr with exit status 1, or 2 for a bad command line.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "memvirt/memory.h"
#include "cli.h"

struct command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char *argv[]);
	void (*usage)(FILE *out);
};

static int cmd_help(int argc, char *argv[]);
static void cmd_help_usage(FILE *out);

static const struct command commands[] = {
	{ "mtree", "print the memory tree or flat map of a machine or JSON config",
	  cmd_mtree, cmd_mtree_usage },
	{ "machines", "list the built-in machine types", cmd_machines, cmd_machines_usage },
	{ "run", "boot a PVH guest on KVM and summarise the run", cmd_run, cmd_run_usage },
	{ "mmu", "run a scenario script on the software arm64 KVM MMU", cmd_mmu, cmd_mmu_usage },
	{ "help", "show help for memvirt or one of its commands", cmd_help, cmd_help_usage },
};
#define NR_COMMANDS (sizeof(commands) / sizeof(commands[0]))

int cli_error(int status, const char *fmt, ...)
{
	va_list ap;

	fputs("memvirt: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return status;
}

int cli_bad_option(const char *cmd, int opt, char *const argv[])
{
	const char *arg = optind > 0 ? argv[optind - 1] : "?";
	char shortopt[3] = { '-', (char)optopt, 0 };

	/* An unknown short option may sit inside a cluster such as -fx. */
	if (opt == '?' && optopt)
		arg = shortopt;
	if (opt == ':')
		return cli_error(CLI_USAGE, "%s: option '%s' needs an argument "
				 "(see 'memvirt %s --help')", cmd, arg, cmd);
	return cli_error(CLI_USAGE, "%s: unknown option '%s' (see 'memvirt %s --help')",
			 cmd, arg, cmd);
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < NR_COMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static void top_usage(FILE *out)
{
	fputs("usage: memvirt [--help] <command> [<args>]\n"
	      "\n"
	      "A guest-physical memory model with QEMU's semantics.\n"
	      "\n"
	      "commands:\n", out);
	for (size_t i = 0; i < NR_COMMANDS; i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fputs("\n"
	      "Run 'memvirt <command> --help' for the options of a command.\n"
	      "Example: memvirt mtree -f --machine pc -m 4G\n", out);
}

static void cmd_help_usage(FILE *out)
{
	fputs("usage: memvirt help [<command>]\n"
	      "\n"
	      "Show the list of commands, or the help of <command>.\n", out);
}

/* `memvirt help [COMMAND]` */
static int cmd_help(int argc, char *argv[])
{
	const struct command *c;

	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		cmd_help_usage(stdout);
		return CLI_OK;
	}
	if (argc > 2)
		return cli_error(CLI_USAGE, "help: too many arguments (see 'memvirt help --help')");
	if (argc < 2) {
		top_usage(stdout);
		return CLI_OK;
	}
	c = find_command(argv[1]);
	if (!c)
		return cli_error(CLI_USAGE, "help: unknown command '%s' (see 'memvirt help')",
				 argv[1]);
	c->usage(stdout);
	return CLI_OK;
}

int main(int argc, char *argv[])
{
	const struct command *c;
	int status;

	if (argc < 2)
		return cli_error(CLI_USAGE, "no command given (see 'memvirt --help')");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		top_usage(stdout);
		return CLI_OK;
	}
	c = find_command(argv[1]);
	if (!c) {
		if (argv[1][0] == '-')
			return cli_error(CLI_USAGE, "unknown option '%s' (see 'memvirt --help')",
					 argv[1]);
		return cli_error(CLI_USAGE, "'%s' is not a memvirt command (see 'memvirt --help')",
				 argv[1]);
	}
	mv_rcu_register_thread();
	status = c->run(argc - 1, argv + 1);
	mv_rcu_unregister_thread();
	if (fflush(stdout) || ferror(stdout))
		return cli_error(CLI_FAIL, "cannot write the output");
	return status;
}
