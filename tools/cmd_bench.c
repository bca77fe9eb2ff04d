/* quorafs bench: runs tools/bench.py, the benchmark driver (Python's
 * sqlite3 module drives raw SQLite and the mount alike, so both sides pay
 * the same client overhead). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tools.h"

int qf_cmd_bench(int argc, char **argv)
{
	char **args = calloc((size_t)argc + 2, sizeof *args);
	int i;

	if (args == NULL)
		return 1;
	args[0] = "/usr/bin/python3";
	args[1] = QF_SOURCE_ROOT "/tools/bench.py";
	for (i = 1; i < argc; i++)
		args[i + 1] = argv[i];
	execv(args[0], args);
	perror("quorafs bench: python3");
	free(args);
	return 1;
}
