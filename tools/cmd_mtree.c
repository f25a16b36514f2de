/*
 * `memvirt mtree`: build a built-in machine or a JSON config in a fresh
 * memory system and print it as QEMU's `info mtree` (or `info mtree -f`),
 * optionally drawing the FlatViews as SVG.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "memvirt/machine.h"
#include "memvirt/mtree.h"
#include "cli.h"

struct mtree_args {
	bool flat;
	const char *svg;        /* SVG output file, or NULL */
	const char *machine;    /* --machine NAME */
	const char *mem;        /* -m SIZE[,slots=N,maxmem=SIZE] */
	const char *config;     /* CONFIG.json */
};

/* What the layout was built from; released by layout_free. */
struct layout {
	mv_memory *mem;
	mv_machine *machine;
	mv_config *config;
};

void cmd_mtree_usage(FILE *out)
{
	fputs("usage: memvirt mtree [-f] [--svg FILE] --machine NAME [-m SIZE[,slots=N,maxmem=SIZE]]\n"
	      "       memvirt mtree [-f] [--svg FILE] CONFIG.json\n"
	      "\n"
	      "Print the memory regions of a built-in machine or of a JSON layout\n"
	      "(docs/config.md) as QEMU's 'info mtree' does: the region tree of every\n"
	      "address space, then every region reached through an alias.\n"
	      "\n"
	      "options:\n"
	      "  -f, --flat         print the rendered FlatViews ('info mtree -f') instead\n"
	      "      --svg FILE     also draw the FlatViews as an SVG image into FILE\n"
	      "  -M, --machine NAME build machine NAME (see 'memvirt machines')\n"
	      "  -m, --memory SIZE  RAM size as QEMU's -m: MiB by default, K/M/G/T suffixes,\n"
	      "                     optional ,slots=N,maxmem=SIZE for a DIMM window\n"
	      "  -h, --help         show this help\n"
	      "\n"
	      "examples:\n"
	      "  memvirt mtree -f --machine pc -m 4G\n"
	      "  memvirt mtree --svg map.svg layout.json\n", out);
}

/* Fill @a from the command line; returns -1 to go on, else an exit status. */
static int parse_args(int argc, char *argv[], struct mtree_args *a)
{
	static const struct option opts[] = {
		{ "flat", no_argument, NULL, 'f' },
		{ "svg", required_argument, NULL, 'S' },
		{ "machine", required_argument, NULL, 'M' },
		{ "memory", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":fM:m:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f': a->flat = true; break;
		case 'S': a->svg = optarg; break;
		case 'M': a->machine = optarg; break;
		case 'm': a->mem = optarg; break;
		case 'h': cmd_mtree_usage(stdout); return CLI_OK;
		default: return cli_bad_option("mtree", c, argv);
		}
	}
	if (optind < argc)
		a->config = argv[optind++];
	if (optind < argc)
		return cli_error(CLI_USAGE, "mtree: unexpected argument '%s' "
				 "(see 'memvirt mtree --help')", argv[optind]);
	if (!a->machine == !a->config)
		return cli_error(CLI_USAGE, "mtree: give either --machine NAME or a CONFIG.json "
				 "file (see 'memvirt mtree --help')");
	if (a->mem && !a->machine)
		return cli_error(CLI_USAGE, "mtree: -m applies to --machine only "
				 "(see 'memvirt mtree --help')");
	return -1;
}

static int build_machine(struct layout *l, const struct mtree_args *a)
{
	mv_machine_opts opts = { 0 };
	mv_error err = { 0 };

	if (a->mem && mv_machine_parse_mem(a->mem, &opts, &err))
		return cli_error(CLI_FAIL, "%s", err.msg);
	if (mv_machine_new(l->mem, a->machine, &opts, &l->machine, &err))
		return cli_error(CLI_FAIL, "%s", err.msg);
	return CLI_OK;
}

static int build_config(struct layout *l, const struct mtree_args *a)
{
	mv_error err = { 0 };

	if (mv_config_load(l->mem, a->config, NULL, &l->config, &err))
		return cli_error(CLI_FAIL, "%s", err.msg);
	return CLI_OK;
}

static void layout_free(struct layout *l)
{
	if (l->machine)
		mv_machine_free(l->machine);
	mv_config_free(l->config);
	if (l->mem)
		mv_memory_free(l->mem);
}

static int write_svg(mv_memory *mem, const char *path)
{
	FILE *f = fopen(path, "w");
	int ret;

	if (!f)
		return cli_error(CLI_FAIL, "cannot create %s: %s", path, strerror(errno));
	ret = mv_mtree_print_svg(f, mem);
	if (fclose(f) && !ret)
		ret = -errno;
	if (ret)
		return cli_error(CLI_FAIL, "cannot write %s: %s", path, strerror(-ret));
	return CLI_OK;
}

/* Print the layout as asked; the memory system is fully built. */
static int print_layout(mv_memory *mem, const struct mtree_args *a)
{
	int ret = a->flat ? mv_mtree_print_flat(stdout, mem) : mv_mtree_print_tree(stdout, mem);

	if (ret)
		return cli_error(CLI_FAIL, "cannot print the memory tree: %s", strerror(-ret));
	return a->svg ? write_svg(mem, a->svg) : CLI_OK;
}

/**
 * cmd_mtree - `memvirt mtree`
 * @argc, @argv: arguments, argv[0] being "mtree"
 *
 * Returns the exit status: 0, 1 (the layout could not be built or
 * printed) or 2 (bad command line).
 */
int cmd_mtree(int argc, char *argv[])
{
	struct mtree_args a = { 0 };
	struct layout l = { 0 };
	int status = parse_args(argc, argv, &a);

	if (status >= 0)
		return status;
	if (mv_memory_new(NULL, &l.mem))
		return cli_error(CLI_FAIL, "out of memory");
	status = a.machine ? build_machine(&l, &a) : build_config(&l, &a);
	if (status == CLI_OK)
		status = print_layout(l.mem, &a);
	layout_free(&l);
	return status;
}
