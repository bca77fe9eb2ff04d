/* quorafs: the command-line entry point.  Dispatches to one subcommand. */
#include <stdio.h>
#include <string.h>

#include "../net/net.h"
#include "tools.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} commands[] = {
	{"mount", qf_cmd_mount, "run a node: mount its databases and serve them"},
	{"bench", qf_cmd_bench, "measure commits and reads through a mount against raw SQLite"},
	{"shell", qf_cmd_shell, "an SQL shell over the dqlite wire protocol"},
	{"cluster", qf_cmd_cluster, "list or change the members of a cluster"},
	{"verify", qf_cmd_verify, "check that the nodes' databases are identical"},
	{"recover", qf_cmd_recover, "force a new membership after a lost quorum"},
};

static void usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: quorafs COMMAND [OPTIONS]\n\n"
		     "A highly-available SQLite: database files on a FUSE mount whose\n"
		     "every commit is replicated through Raft.\n\ncommands:\n");
	for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].help);
	fprintf(out, "\nRun 'quorafs COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
	size_t i;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("quorafs 0.1.0\n");
		return 0;
	}
	/* Internal, so not listed: the daemon's SQL worker process. */
	if (strcmp(argv[1], NET_WORKER_COMMAND) == 0)
		return qf_cmd_worker(argc - 1, argv + 1);
	for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "quorafs: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
