/* quorafs cluster: membership of a quorafs (or dqlite) cluster over the
 * dqlite wire protocol: list, add, assign, remove, transfer.
 *
 * Every command finds the leader among the -s addresses first (§8.1 of
 * wire-protocol.md) and sends its request there, as go-dqlite's client
 * does.  `list` asks the leader for CLUSTER and LEADER and prints one
 * line per member, "ID ADDRESS ROLE", with " leader" appended to the
 * leader's line; when no leader can be found it lists what the first
 * reachable server knows, marks no line, and says so on stderr.
 *
 * Exit status: 0, 1 when the cluster refused or could not be reached (the
 * reason on stderr), 2 for a usage error.  Single-threaded. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../net/net.h"
#include "tools.h"

#define DEFAULT_TIMEOUT_MS 10000

static void usage(FILE *out)
{
	fprintf(out,
"usage: quorafs cluster -s ADDR[,ADDR...] [-t SECONDS] COMMAND [ARGS]\n\n"
"Show or change the members of a cluster through its leader, found among\n"
"the servers as 'dqlite -s' finds it.\n\n"
"commands:\n"
"  list                  one line per member: ID ADDRESS ROLE, then\n"
"                        applied=N (its raft applied index, for quorafs\n"
"                        nodes that answer), and the word 'leader' at the\n"
"                        end of the leader's line\n"
"  add ID ADDRESS        add a node (it joins as a spare)\n"
"  assign ID ROLE        give a member a role: voter, stand-by or spare\n"
"  remove ID             remove a member\n"
"  transfer ID           hand leadership to member ID (0: any voter)\n\n"
"IDs are decimal or 0x-prefixed hexadecimal.\n\n"
"  -s, --servers ADDR,...  HOST:PORT of cluster members (repeatable)\n"
"  -t, --timeout SECONDS   give up finding a leader, or waiting for an\n"
"                          answer, after this long (default 10)\n"
"  -h, --help              this text\n");
}

static int parse_id(const char *s, uint64_t *id)
{
	unsigned long long v;
	char *end;

	if (*s == '\0' || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0 || *end != '\0' || (s[0] == '0' && s[1] != '\0' &&
					   s[1] != 'x' && s[1] != 'X'))
		return -1; /* no octal surprises */
	*id = v;
	return 0;
}

static int fail(struct net_client *c, const char *what)
{
	fprintf(stderr, "quorafs cluster: %s: %s\n", what,
		net_client_errmsg(c));
	return 1;
}

/* A quorafs node's raft applied index (DATABASES), as " applied=N", or ""
 * when it cannot say (down, or a dqlite node). */
static void applied_of(const char *address, char *out, size_t size)
{
	struct net_client_config cfg = {.connect_timeout_ms = 1000,
					.timeout_ms = 2000};
	struct net_client_db *dbs = NULL;
	struct net_client *c = NULL;
	uint64_t applied;
	size_t n = 0;
	bool idle;

	out[0] = '\0';
	if (net_client_new(&cfg, &c) != 0)
		return;
	if (net_client_connect(c, address) == 0 &&
	    net_client_databases(c, &dbs, &n, &applied, &idle) == 0)
		snprintf(out, size, " applied=%llu", (unsigned long long)applied);
	net_client_dbs_free(dbs, n);
	net_client_free(c);
}

static void print_members(const struct net_member *m, size_t n,
			  uint64_t leader_id, const char *leader)
{
	char applied[48];
	bool is_leader;
	size_t i;

	for (i = 0; i < n; i++) {
		/* 1.11 names the leader by id; legacy answers have 0. */
		if (leader == NULL || leader[0] == '\0')
			is_leader = false;
		else if (leader_id != 0)
			is_leader = m[i].id == leader_id;
		else
			is_leader = strcmp(m[i].address, leader) == 0;
		applied_of(m[i].address, applied, sizeof applied);
		printf("%llu %s %s%s%s\n", (unsigned long long)m[i].id,
		       m[i].address, net_role_name(m[i].role), applied,
		       is_leader ? " leader" : "");
	}
}

/* No leader: what does any reachable server know? */
static int list_without_leader(struct net_client *c, char **servers,
			       size_t n_servers)
{
	struct net_member *m;
	size_t i, n;

	fprintf(stderr, "quorafs cluster: %s\n", net_client_errmsg(c));
	for (i = 0; i < n_servers; i++) {
		if (net_client_connect(c, servers[i]) != 0 ||
		    net_client_cluster(c, &m, &n) != 0)
			continue;
		fprintf(stderr, "quorafs cluster: members as %s knows them "
			"(no leader):\n", servers[i]);
		print_members(m, n, 0, NULL);
		net_members_free(m, n);
		return 0;
	}
	return fail(c, "list");
}

static int cmd_list(struct net_client *c)
{
	struct net_member *m;
	const char *leader;
	char *copy;
	uint64_t id;
	size_t n;

	if (net_client_leader(c, &id, &leader) != 0)
		return fail(c, "leader");
	copy = strdup(leader); /* the next call reuses the client's string */
	if (copy == NULL) {
		fprintf(stderr, "quorafs cluster: out of memory\n");
		return 1;
	}
	if (net_client_cluster(c, &m, &n) != 0) {
		free(copy);
		return fail(c, "list");
	}
	print_members(m, n, id, copy);
	net_members_free(m, n);
	free(copy);
	return 0;
}

/* Check the argument count of a command: 0 or print usage and 2. */
static int want(const char *cmd, int have, int need, const char *args)
{
	if (have == need)
		return 0;
	fprintf(stderr, "quorafs cluster: usage: %s %s\n"
		"Run 'quorafs cluster --help' for usage.\n", cmd, args);
	return 2;
}

static int get_id(const char *s, uint64_t *id)
{
	if (parse_id(s, id) == 0)
		return 0;
	fprintf(stderr, "quorafs cluster: '%s' is not a node id\n", s);
	return 2;
}

int qf_cmd_cluster(int argc, char **argv)
{
	static const struct option longs[] = {
		{"servers", required_argument, NULL, 's'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct net_client_config cfg = {0};
	struct net_client *c = NULL;
	char **servers = NULL;
	size_t n_servers = 0;
	unsigned timeout_ms = DEFAULT_TIMEOUT_MS;
	const char *cmd;
	uint64_t id = 0;
	int opt, nargs, role = 0, rv;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+s:t:h", longs, NULL)) != -1) {
		switch (opt) {
		case 's':
			if (qf_servers_add(&servers, &n_servers, optarg) != 0) {
				fprintf(stderr,
					"quorafs cluster: out of memory\n");
				rv = 1;
				goto out;
			}
			break;
		case 't':
			if (qf_parse_seconds(optarg, &timeout_ms) != 0) {
				fprintf(stderr,
					"quorafs cluster: --timeout needs a "
					"number of seconds, not '%s'\n",
					optarg);
				goto usage_error;
			}
			break;
		case 'h':
			usage(stdout);
			rv = 0;
			goto out;
		default:
			fprintf(stderr,
				"quorafs cluster: unknown or incomplete "
				"option '%s'\n",
				argv[optind - 1]);
			goto usage_error;
		}
	}
	if (n_servers == 0) {
		fprintf(stderr,
			"quorafs cluster: -s ADDR[,ADDR...] is required\n");
		goto usage_error;
	}
	if (optind >= argc) {
		fprintf(stderr, "quorafs cluster: a command is required\n");
		goto usage_error;
	}
	cmd = argv[optind];
	nargs = argc - optind - 1;
	argv += optind + 1;

	/* Check the arguments before touching the network. */
	if (strcmp(cmd, "list") == 0) {
		rv = want(cmd, nargs, 0, "");
	} else if (strcmp(cmd, "add") == 0) {
		rv = want(cmd, nargs, 2, "ID ADDRESS");
		if (rv == 0)
			rv = get_id(argv[0], &id);
	} else if (strcmp(cmd, "assign") == 0) {
		rv = want(cmd, nargs, 2, "ID voter|stand-by|spare");
		if (rv == 0)
			rv = get_id(argv[0], &id);
		if (rv == 0 && (role = net_role_parse(argv[1])) < 0) {
			fprintf(stderr, "quorafs cluster: unknown role '%s' "
				"(voter, stand-by or spare)\n", argv[1]);
			rv = 2;
		}
	} else if (strcmp(cmd, "remove") == 0 || strcmp(cmd, "transfer") == 0) {
		rv = want(cmd, nargs, 1, "ID");
		if (rv == 0)
			rv = get_id(argv[0], &id);
	} else {
		fprintf(stderr, "quorafs cluster: unknown command '%s'\n", cmd);
		goto usage_error;
	}
	if (rv != 0)
		goto out;

	cfg.discovery_timeout_ms = timeout_ms;
	cfg.timeout_ms = timeout_ms;
	if (net_client_new(&cfg, &c) != 0) {
		fprintf(stderr, "quorafs cluster: out of memory\n");
		rv = 1;
		goto out;
	}
	if (net_client_connect_leader(c, (const char *const *)servers,
				      n_servers) != 0) {
		rv = strcmp(cmd, "list") == 0
			     ? list_without_leader(c, servers, n_servers)
			     : fail(c, "connect");
		goto out;
	}
	if (strcmp(cmd, "list") == 0)
		rv = cmd_list(c);
	else if (strcmp(cmd, "add") == 0)
		rv = net_client_add(c, id, argv[1]) != 0 ? fail(c, cmd) : 0;
	else if (strcmp(cmd, "assign") == 0)
		rv = net_client_assign(c, id, role) != 0 ? fail(c, cmd) : 0;
	else if (strcmp(cmd, "remove") == 0)
		rv = net_client_remove(c, id) != 0 ? fail(c, cmd) : 0;
	else
		rv = net_client_transfer(c, id) != 0 ? fail(c, cmd) : 0;

out:
	if (fflush(stdout) != 0 && rv == 0)
		rv = 1;
	net_client_free(c);
	qf_servers_free(servers, n_servers);
	return rv;

usage_error:
	fprintf(stderr, "Run 'quorafs cluster --help' for usage.\n");
	rv = 2;
	goto out;
}
