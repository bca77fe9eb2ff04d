/* quorafs verify: are the nodes' databases identical?
 *
 * 1. Waits (bounded) until every node answers DATABASES (quorafs's wire
 *    extension) with the same raft applied index and nothing waiting for
 *    its applier.
 * 2. Compares each database's engine state across the nodes: sequence
 *    number, page count, page size and checksum (XOR of qf_page_hash over
 *    its pages), and that none is marked diverged.
 * 3. Reads each database from each node with DUMP (the image SQLite sees
 *    through that node's mount, WAL included) and checks that its pages
 *    hash to the checksum the node's state claims: the files match the
 *    state, and so match each other.
 *
 * Exit status 0 when all is identical, 1 with what differs on stdout, 2
 * for a usage error. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../net/net.h"
#include "tools.h"

struct node {
	const char *address;
	struct net_client *c;
	struct net_client_db *dbs;
	size_t n;
	uint64_t applied;
	bool idle;
	int rv; /* of the last DATABASES */
};

static void usage(FILE *out)
{
	fprintf(out,
"usage: quorafs verify -s ADDR[,ADDR...] [-t SECONDS]\n\n"
"Check that the quorafs nodes at these addresses hold identical databases:\n"
"wait until they have applied the same raft index, compare every\n"
"database's page count and checksum, and check each node's files (as\n"
"SQLite reads them through its mount) against its state.  Exits 0 when\n"
"all is identical, 1 otherwise (printing what differs).\n\n"
"  -s, --servers ADDR,...  the nodes (repeatable)\n"
"  -t, --timeout SECONDS   how long to wait for the same index (default 30)\n"
"  -h, --help              this text\n");
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void poll_node(struct node *n)
{
	net_client_dbs_free(n->dbs, n->n);
	n->dbs = NULL;
	n->n = 0;
	n->rv = net_client_connect(n->c, n->address);
	if (n->rv == 0)
		n->rv = net_client_databases(n->c, &n->dbs, &n->n, &n->applied,
					     &n->idle);
	net_client_disconnect(n->c);
}

/* Step 1.  0 once all agree, else 1 after printing why not. */
static int wait_same_index(struct node *nodes, size_t k, unsigned timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;
	bool same;
	size_t i;

	for (;;) {
		same = true;
		for (i = 0; i < k; i++) {
			poll_node(&nodes[i]);
			same = same && nodes[i].rv == 0 && nodes[i].idle &&
			       nodes[i].applied == nodes[0].applied;
		}
		if (same)
			return 0;
		if (now_ms() > end)
			break;
		usleep(100 * 1000);
	}
	printf("the nodes did not reach the same applied index within %u s:\n",
	       timeout_ms / 1000);
	for (i = 0; i < k; i++) {
		if (nodes[i].rv != 0)
			printf("  %s: %s\n", nodes[i].address,
			       nodes[i].rv == NET_EFAILURE
				       ? net_client_errmsg(nodes[i].c)
				       : qf_strerror(nodes[i].rv));
		else
			printf("  %s: applied index %llu%s\n", nodes[i].address,
			       (unsigned long long)nodes[i].applied,
			       nodes[i].idle ? "" : " (still applying)");
	}
	return 1;
}

static const struct net_client_db *find_db(const struct node *n,
					   const char *name)
{
	size_t i;

	for (i = 0; i < n->n; i++)
		if (strcmp(n->dbs[i].name, name) == 0)
			return &n->dbs[i];
	return NULL;
}

/* Step 2: @name on every node against node 0's (or the first that has
 * it).  The number of differences printed. */
static int compare_state(struct node *nodes, size_t k, const char *name)
{
	const struct net_client_db *ref = NULL, *d;
	const char *ref_addr = NULL;
	int bad = 0;
	size_t i;

	for (i = 0; i < k; i++) {
		d = find_db(&nodes[i], name);
		if (d == NULL) {
			printf("%s: missing on %s\n", name, nodes[i].address);
			bad++;
			continue;
		}
		if (d->diverged) {
			printf("%s: marked diverged on %s\n", name,
			       nodes[i].address);
			bad++;
		}
		if (ref == NULL) {
			ref = d;
			ref_addr = nodes[i].address;
			continue;
		}
		if (d->seq != ref->seq || d->cksum != ref->cksum ||
		    d->pages != ref->pages || d->page_size != ref->page_size) {
			printf("%s: %s has seq %llu, %llu pages of %llu, "
			       "checksum %016llx; %s has seq %llu, %llu pages "
			       "of %llu, checksum %016llx\n", name,
			       nodes[i].address, (unsigned long long)d->seq,
			       (unsigned long long)d->pages,
			       (unsigned long long)d->page_size,
			       (unsigned long long)d->cksum, ref_addr,
			       (unsigned long long)ref->seq,
			       (unsigned long long)ref->pages,
			       (unsigned long long)ref->page_size,
			       (unsigned long long)ref->cksum);
			bad++;
		}
	}
	return bad;
}

struct image {
	const char *db;
	uint64_t page_size;
	uint64_t pages;
	uint64_t cksum;
	bool seen;
	bool bad_size;
};

static int image_cb(void *data, const char *name, const void *bytes,
		    uint64_t size)
{
	struct image *im = data;
	uint64_t p;

	if (strcmp(name, im->db) != 0)
		return 0; /* the WAL file: the image already includes it */
	im->seen = true;
	if (im->page_size == 0 || size % im->page_size != 0) {
		im->bad_size = size != 0;
		return 0;
	}
	im->pages = size / im->page_size;
	for (p = 0; p < im->pages; p++)
		im->cksum ^= qf_page_hash((uint32_t)(p + 1),
					  (const uint8_t *)bytes +
						  p * im->page_size,
					  (size_t)im->page_size);
	return 0;
}

/* Step 3: @name's pages as node @n's mount shows them, against its state.
 * The number of differences printed. */
static int check_files(struct node *n, const struct net_client_db *d)
{
	struct image im = {.db = d->name, .page_size = d->page_size};
	int rv;

	rv = net_client_connect(n->c, n->address);
	if (rv == 0)
		rv = net_client_dump(n->c, d->name, image_cb, &im);
	net_client_disconnect(n->c);
	if (rv != 0) {
		printf("%s: cannot read it from %s: %s\n", d->name, n->address,
		       rv == NET_EFAILURE ? net_client_errmsg(n->c)
					  : qf_strerror(rv));
		return 1;
	}
	if (im.bad_size || (im.seen && im.pages != d->pages) ||
	    (im.seen && im.cksum != d->cksum) || (!im.seen && d->pages != 0)) {
		printf("%s: the files on %s (%llu pages, checksum %016llx) do "
		       "not match its state (%llu pages, checksum %016llx)\n",
		       d->name, n->address, (unsigned long long)im.pages,
		       (unsigned long long)im.cksum,
		       (unsigned long long)d->pages,
		       (unsigned long long)d->cksum);
		return 1;
	}
	return 0;
}

static int verify(struct node *nodes, size_t k, unsigned timeout_ms)
{
	size_t i, j, n_dbs = 0;
	int bad = 0;

	if (wait_same_index(nodes, k, timeout_ms) != 0)
		return 1;
	/* Every name any node has, each compared once. */
	for (i = 0; i < k; i++)
		for (j = 0; j < nodes[i].n; j++) {
			const char *name = nodes[i].dbs[j].name;
			size_t prev;
			bool done = false;

			for (prev = 0; prev < i && !done; prev++)
				done = find_db(&nodes[prev], name) != NULL;
			if (done)
				continue;
			n_dbs++;
			bad += compare_state(nodes, k, name);
		}
	for (i = 0; i < k; i++)
		for (j = 0; j < nodes[i].n; j++)
			bad += check_files(&nodes[i], &nodes[i].dbs[j]);
	if (bad == 0)
		printf("%zu nodes identical at applied index %llu: %zu "
		       "database%s\n", k,
		       (unsigned long long)nodes[0].applied, n_dbs,
		       n_dbs == 1 ? "" : "s");
	return bad == 0 ? 0 : 1;
}

int qf_cmd_verify(int argc, char **argv)
{
	static const struct option longs[] = {
		{"servers", required_argument, NULL, 's'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct net_client_config cfg = {.timeout_ms = 30000};
	struct node *nodes = NULL;
	char **servers = NULL;
	size_t n = 0, i;
	unsigned timeout_ms = 30000;
	int opt, rv = 2;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "s:t:h", longs, NULL)) != -1) {
		switch (opt) {
		case 's':
			if (qf_servers_add(&servers, &n, optarg) != 0) {
				fprintf(stderr, "quorafs verify: out of memory\n");
				goto out;
			}
			break;
		case 't':
			if (qf_parse_seconds(optarg, &timeout_ms) != 0) {
				fprintf(stderr, "quorafs verify: bad timeout '%s'\n",
					optarg);
				goto out;
			}
			break;
		case 'h':
			usage(stdout);
			rv = 0;
			goto out;
		default:
			usage(stderr);
			goto out;
		}
	}
	if (n == 0 || optind < argc) {
		usage(stderr);
		goto out;
	}
	nodes = calloc(n, sizeof *nodes);
	if (nodes == NULL) {
		fprintf(stderr, "quorafs verify: out of memory\n");
		rv = 1;
		goto out;
	}
	for (i = 0; i < n; i++) {
		nodes[i].address = servers[i];
		if (net_client_new(&cfg, &nodes[i].c) != 0) {
			fprintf(stderr, "quorafs verify: out of memory\n");
			rv = 1;
			goto out;
		}
	}
	rv = verify(nodes, n, timeout_ms);
out:
	for (i = 0; nodes != NULL && i < n; i++) {
		net_client_dbs_free(nodes[i].dbs, nodes[i].n);
		net_client_free(nodes[i].c);
	}
	free(nodes);
	qf_servers_free(servers, n);
	return rv;
}
