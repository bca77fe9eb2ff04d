/* quorafs sql-worker: the daemon's SQL worker process (net/net.h).  Not
 * for people: `quorafs mount` starts it with the link on fd 3. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../net/net.h"
#include "tools.h"

static void usage(FILE *out)
{
	fprintf(out,
"usage: quorafs " NET_WORKER_COMMAND " --mount DIR [--busy-timeout MS]\n"
"                 [--max-msg BYTES] [--max-statements N]\n"
"                 [--log-level LEVEL]\n\n"
"Runs the SQL sessions of a quorafs daemon's wire-protocol server in a\n"
"process of its own.  The daemon starts it with the link on fd %d; it is\n"
"not meant to be run by hand.\n", NET_WORKER_FD);
}

static int parse_positive(const char *s, unsigned long long *v)
{
	char *end;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	*v = strtoull(s, &end, 10);
	return *end == '\0' && *v > 0 && *v <= (1ull << 32) ? 0 : -1;
}

int qf_cmd_worker(int argc, char **argv)
{
	static const struct option longs[] = {
		{"mount", required_argument, NULL, 'm'},
		{"busy-timeout", required_argument, NULL, 'B'},
		{"max-msg", required_argument, NULL, 'M'},
		{"max-statements", required_argument, NULL, 'S'},
		{"log-level", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct net_worker_config c = {.fd = NET_WORKER_FD,
				      .busy_timeout_ms = 10000};
	unsigned long long v;
	int opt, level;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
		switch (opt) {
		case 'm':
			c.mount = optarg;
			break;
		case 'S':
			/* 0: the session's default */
			if (strcmp(optarg, "0") != 0 &&
			    parse_positive(optarg, &v) != 0) {
				fprintf(stderr, "quorafs %s: bad number '%s'\n",
					NET_WORKER_COMMAND, optarg);
				return 2;
			}
			c.max_stmts = strcmp(optarg, "0") == 0 ? 0 : (unsigned)v;
			break;
		case 'B':
		case 'M':
			if (parse_positive(optarg, &v) != 0) {
				fprintf(stderr, "quorafs %s: bad number '%s'\n",
					NET_WORKER_COMMAND, optarg);
				return 2;
			}
			if (opt == 'B')
				c.busy_timeout_ms = (unsigned)v;
			else
				c.max_msg = (size_t)v;
			break;
		case 'l':
			level = qf_log_parse_level(optarg);
			if (level < 0) {
				fprintf(stderr, "quorafs %s: unknown log level '%s'\n",
					NET_WORKER_COMMAND, optarg);
				return 2;
			}
			qf_log_set_level(level);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (c.mount == NULL || optind < argc) {
		usage(stderr);
		return 2;
	}
	return net_worker_run(&c);
}
