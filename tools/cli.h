/*
 * The memvirt command: one function per subcommand (cmd_*.c), dispatched
 * by memvirt.c. Subcommands return the process exit status.
 */
#ifndef MEMVIRT_CLI_H
#define MEMVIRT_CLI_H

#include <stdio.h>

/* Exit statuses: success, a failure to do the job, a bad command line. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Print "memvirt: <sentence>" on stderr; returns @status for `return cli_error(...)`. */
int cli_error(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Report getopt_long's problem with argv[optind - 1] for @cmd (status 2). */
int cli_bad_option(const char *cmd, int opt, char *const argv[]);

/* Subcommands: argv[0] is the subcommand name. */
int cmd_mtree(int argc, char *argv[]);
void cmd_mtree_usage(FILE *out);
int cmd_machines(int argc, char *argv[]);
void cmd_machines_usage(FILE *out);
int cmd_run(int argc, char *argv[]);
void cmd_run_usage(FILE *out);
int cmd_mmu(int argc, char *argv[]);
void cmd_mmu_usage(FILE *out);

#endif
