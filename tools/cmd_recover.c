/* quorafs recover: quorum-loss recovery (raft_recover) on a stopped
 * node's data dir.  See usage(). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../engine/engine.h"
#include "tools.h"

#define MAX_MEMBERS 64

static void usage(FILE *out)
{
	fprintf(out,
"usage: quorafs recover --data-dir DIR --members ID=HOST:PORT[,...] --yes\n\n"
"Recover a cluster that lost its quorum for good (a majority of its voters\n"
"is gone): force this node's raft log to a new membership of exactly the\n"
"given voters (raft_recover).\n\n"
"WARNING: this can lose acknowledged writes and split the cluster if done\n"
"wrong.  Only:\n"
"  1. stop every node of the cluster;\n"
"  2. run this once, on the surviving node with the longest log (check\n"
"     'applied=' in 'quorafs cluster list' output you saved, or the\n"
"     newest raft segment in DATA/raft);\n"
"  3. start that node alone (no --join): it leads the new membership;\n"
"  4. give the other surviving nodes empty data dirs and start them with\n"
"     --join to the recovered node.\n"
"Writes that only the lost nodes held are gone.\n\n"
"  --data-dir DIR            the stopped node's data dir\n"
"  --members ID=ADDR,...     the new voters, this node included\n"
"  --yes                     I have read the warning\n"
"  -h, --help                this text\n");
}

static int parse_members(const char *list, struct eng_member *m, unsigned *n)
{
	char *copy = strdup(list), *tok, *save = NULL, *eq, *end;
	unsigned long long id;

	if (copy == NULL)
		return -ENOMEM;
	*n = 0;
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		eq = strchr(tok, '=');
		if (eq == NULL || *n >= MAX_MEMBERS)
			goto bad;
		*eq = '\0';
		errno = 0;
		id = strtoull(tok, &end, 10);
		if (errno != 0 || *end != '\0' || id == 0 || eq[1] == '\0' ||
		    strlen(eq + 1) >= sizeof m->address)
			goto bad;
		m[*n].id = id;
		strcpy(m[*n].address, eq + 1);
		m[*n].role = ENG_VOTER;
		(*n)++;
	}
	free(copy);
	return *n > 0 ? 0 : -EINVAL;
bad:
	free(copy);
	return -EINVAL;
}

/* The daemon holds DATA/LOCK while it runs: refuse a live node. */
static int node_stopped(const char *dir)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	char path[4096];
	int fd, rv;

	snprintf(path, sizeof path, "%s/LOCK", dir);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	rv = fcntl(fd, F_OFD_GETLK, &fl);
	close(fd);
	if (rv != 0)
		return -errno;
	return fl.l_type == F_UNLCK ? 0 : -EBUSY;
}

int qf_cmd_recover(int argc, char **argv)
{
	static const struct option longs[] = {
		{"data-dir", required_argument, NULL, 'd'},
		{"members", required_argument, NULL, 'm'},
		{"yes", no_argument, NULL, 'y'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct eng_member members[MAX_MEMBERS];
	const char *dir = NULL, *list = NULL;
	unsigned n = 0;
	bool yes = false;
	int opt, rv;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
		switch (opt) {
		case 'd': dir = optarg; break;
		case 'm': list = optarg; break;
		case 'y': yes = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (dir == NULL || list == NULL || optind < argc) {
		usage(stderr);
		return 2;
	}
	if (parse_members(list, members, &n) != 0) {
		fprintf(stderr, "quorafs recover: --members wants ID=HOST:PORT "
			"pairs separated by commas, not '%s'\n", list);
		return 2;
	}
	if (!yes) {
		usage(stderr);
		fprintf(stderr, "\nquorafs recover: add --yes to go ahead\n");
		return 2;
	}
	rv = node_stopped(dir);
	if (rv != 0) {
		fprintf(stderr, "quorafs recover: %s: %s\n", dir,
			rv == -EBUSY ? "a daemon is running on it: stop it first"
				     : qf_strerror(rv));
		return 1;
	}
	rv = eng_recover(dir, members, n);
	if (rv != 0) {
		fprintf(stderr, "quorafs recover: %s: %s\n", dir,
			qf_strerror(rv));
		return 1;
	}
	printf("recovered %s: the new membership has %u voter%s; start this "
	       "node without --join\n", dir, n, n == 1 ? "" : "s");
	return 0;
}
