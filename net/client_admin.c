/* Cluster requests of the client library (net.h): CLUSTER, ADD, ASSIGN,
 * REMOVE, TRANSFER, WEIGHT, DESCRIBE and DUMP (wire-protocol.md §4.12-
 * §4.20, §9), and role names (§11).  Each is one request and one answer
 * through client.c; same threading rules. */
#include "client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void net_members_free(struct net_member *members, size_t n)
{
	size_t i;

	if (members == NULL)
		return;
	for (i = 0; i < n; i++)
		free(members[i].address);
	free(members);
}

int net_client_cluster(struct net_client *c, struct net_member **members,
		       size_t *n)
{
	struct net_member *a = NULL;
	struct net_servers s;
	struct net_node node;
	struct net_msg m;
	size_t k = 0;
	int rv = net__cli_ready(c);

	if (rv != 0)
		return rv;
	/* go-dqlite always asks for roles (§4.16). */
	rv = net_encode_cluster(&c->out, 1);
	if (rv != 0)
		return net__cli_encode_failed(c, rv);
	rv = net__cli_roundtrip(c, NET_RESP_SERVERS, &m);
	if (rv != 0)
		return rv;
	if (net_servers_init(&s, &m.body, 1) != 0)
		return net__cli_malformed(c, "SERVERS");
	if (s.n > 0) { /* bounded by the body size (init checked it) */
		a = calloc((size_t)s.n, sizeof *a);
		if (a == NULL)
			return net__cli_fail(c, -ENOMEM, "out of memory");
	}
	while ((rv = net_servers_next(&s, &node)) == 1) {
		if (node.role > NET_SPARE) {
			rv = QF_EMALFORMED;
			break;
		}
		a[k].id = node.id;
		a[k].role = (int)node.role;
		a[k].address = strdup(node.address);
		if (a[k].address == NULL) {
			net_members_free(a, k);
			return net__cli_fail(c, -ENOMEM, "out of memory");
		}
		k++;
	}
	if (rv != 0) {
		net_members_free(a, k);
		return net__cli_malformed(c, "SERVERS");
	}
	*members = a;
	*n = k;
	return 0;
}

void net_client_dbs_free(struct net_client_db *dbs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(dbs[i].name);
	free(dbs);
}

int net_client_databases(struct net_client *c, struct net_client_db **dbs,
			 size_t *n, uint64_t *applied, bool *idle)
{
	struct net_client_db *a = NULL;
	struct net_databases d;
	struct net_db_info info;
	struct net_msg m;
	size_t k = 0;
	int rv = net__cli_ready(c);

	if (rv != 0)
		return rv;
	rv = net_encode_databases_req(&c->out);
	if (rv != 0)
		return net__cli_encode_failed(c, rv);
	rv = net__cli_roundtrip(c, NET_QF_RESP_DATABASES, &m);
	if (rv != 0)
		return rv;
	if (net_databases_init(&d, &m.body) != 0)
		return net__cli_malformed(c, "DATABASES");
	if (d.n > 0) {
		a = calloc((size_t)d.n, sizeof *a);
		if (a == NULL)
			return net__cli_fail(c, -ENOMEM, "out of memory");
	}
	while ((rv = net_databases_next(&d, &info)) == 1) {
		a[k].name = strdup(info.name);
		if (a[k].name == NULL) {
			net_client_dbs_free(a, k);
			return net__cli_fail(c, -ENOMEM, "out of memory");
		}
		a[k].applied = info.applied;
		a[k].seq = info.seq;
		a[k].cksum = info.cksum;
		a[k].pages = info.pages;
		a[k].page_size = info.page_size;
		a[k].diverged = info.diverged;
		k++;
	}
	if (rv != 0) {
		net_client_dbs_free(a, k);
		return net__cli_malformed(c, "DATABASES");
	}
	*dbs = a;
	*n = k;
	*applied = d.applied;
	*idle = d.idle;
	return 0;
}

int net_client_add(struct net_client *c, uint64_t id, const char *address)
{
	int rv = net__cli_ready(c);

	if (rv != 0)
		return rv;
	rv = net_encode_add(&c->out, id, address);
	return rv != 0 ? net__cli_encode_failed(c, rv) : net__cli_empty(c);
}

int net_client_assign(struct net_client *c, uint64_t id, int role)
{
	int rv = net__cli_ready(c);

	if (rv != 0)
		return rv;
	if (role < NET_VOTER || role > NET_SPARE)
		return net__cli_error(c, -EINVAL, "unknown role %d", role);
	rv = net_encode_assign(&c->out, id, (uint64_t)role);
	return rv != 0 ? net__cli_encode_failed(c, rv) : net__cli_empty(c);
}

int net_client_remove(struct net_client *c, uint64_t id)
{
	int rv = net__cli_ready(c);

	if (rv != 0)
		return rv;
	rv = net_encode_remove(&c->out, id);
	return rv != 0 ? net__cli_encode_failed(c, rv) : net__cli_empty(c);
}

int net_client_transfer(struct net_client *c, uint64_t id)
{
	int rv = net__cli_ready(c);

	if (rv != 0)
		return rv;
	rv = net_encode_transfer(&c->out, id);
	return rv != 0 ? net__cli_encode_failed(c, rv) : net__cli_empty(c);
}

int net_client_weight(struct net_client *c, uint64_t weight)
{
	int rv = net__cli_ready(c);

	if (rv != 0)
		return rv;
	rv = net_encode_weight(&c->out, weight);
	return rv != 0 ? net__cli_encode_failed(c, rv) : net__cli_empty(c);
}

int net_client_describe(struct net_client *c, uint64_t *failure_domain,
			uint64_t *weight)
{
	struct net_metadata md;
	struct net_msg m;
	int rv = net__cli_ready(c);

	if (rv != 0)
		return rv;
	rv = net_encode_describe(&c->out, 0);
	if (rv != 0)
		return net__cli_encode_failed(c, rv);
	rv = net__cli_roundtrip(c, NET_RESP_METADATA, &m);
	if (rv == 0 && net_decode_metadata(&m.body, &md) != 0)
		rv = net__cli_malformed(c, "METADATA");
	if (rv != 0)
		return rv;
	*failure_domain = md.failure_domain;
	*weight = md.weight;
	return 0;
}

int net_client_dump(struct net_client *c, const char *name,
		    net_client_file_cb cb, void *data)
{
	struct net_files files;
	struct net_file f;
	struct net_msg m;
	int rv = net__cli_ready(c);

	if (rv != 0)
		return rv;
	rv = net_encode_dump(&c->out, name);
	if (rv != 0)
		return net__cli_encode_failed(c, rv);
	rv = net__cli_roundtrip(c, NET_RESP_FILES, &m);
	if (rv != 0)
		return rv;
	if (net_files_init(&files, &m.body) != 0)
		return net__cli_malformed(c, "FILES");
	while ((rv = net_files_next(&files, &f)) == 1) {
		rv = cb(data, f.name, f.data, f.size);
		if (rv != 0)
			return net__cli_error(c, rv,
					      "dump stopped by the caller");
	}
	return rv == 0 ? 0 : net__cli_malformed(c, "FILES");
}

/* ---- roles ---- */

const char *net_role_name(int role)
{
	switch (role) {
	case NET_VOTER:
		return "voter";
	case NET_STANDBY:
		return "stand-by";
	case NET_SPARE:
		return "spare";
	default:
		return "unknown";
	}
}

int net_role_parse(const char *name)
{
	static const struct {
		const char *name;
		int role;
	} names[] = {
	    {"voter", NET_VOTER},      {"0", NET_VOTER},
	    {"stand-by", NET_STANDBY}, {"standby", NET_STANDBY},
	    {"1", NET_STANDBY},	       {"spare", NET_SPARE},
	    {"2", NET_SPARE},
	};
	size_t i;

	for (i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcasecmp(name, names[i].name) == 0)
			return names[i].role;
	return -1;
}

/* Check one IMAGE message against the first (@out, filled from it when
 * *@next is 1) and write its pages to @fd, hashing them. */
static int image_part(struct net_client *c, const struct net_image *im,
		      int fd, uint32_t *next, struct net_client_image *out)
{
	size_t ps = im->page_size;
	uint32_t i;
	int rv;

	if (*next == 1) {
		out->seq = im->seq;
		out->cksum = im->cksum;
		out->page_size = im->page_size;
		out->db_pages = im->db_pages;
		out->hashes = malloc((size_t)im->db_pages * sizeof *out->hashes);
		if (out->hashes == NULL)
			return net__cli_fail(c, -ENOMEM, "out of memory");
	}
	if (im->seq != out->seq || im->cksum != out->cksum ||
	    im->page_size != out->page_size ||
	    im->db_pages != out->db_pages || im->first != *next)
		return net__cli_malformed(c, "IMAGE part");
	for (i = 0; i < im->n; i++)
		out->hashes[im->first - 1 + i] =
			qf_page_hash(im->first + i, im->pages + i * ps, ps);
	rv = qf_pwrite_full(fd, im->pages, (size_t)im->n * ps,
			    (int64_t)(im->first - 1) * (int64_t)ps);
	if (rv != 0)
		return net__cli_fail(c, rv, "writing the image: %s",
				     qf_strerror(rv));
	*next = im->first + im->n;
	return 0;
}

int net_client_image(struct net_client *c, const char *db, int fd,
		     unsigned part_timeout_ms, struct net_client_image *out)
{
	struct net_image im;
	struct net_msg m;
	uint32_t next = 1, i;
	uint64_t ck = 0;
	int rv = net__cli_ready(c);

	memset(out, 0, sizeof *out);
	if (rv != 0)
		return rv;
	rv = net_encode_image_req(&c->out, db);
	if (rv != 0)
		return net__cli_encode_failed(c, rv);
	rv = net__cli_roundtrip(c, NET_QF_RESP_IMAGE, &m);
	while (rv == 0) {
		if (net_decode_image(&m.body, &im) != 0) {
			rv = net__cli_malformed(c, "IMAGE");
			break;
		}
		rv = image_part(c, &im, fd, &next, out);
		if (rv != 0 || next > out->db_pages)
			break;
		if (part_timeout_ms != 0)
			c->deadline = net__cli_deadline_in(part_timeout_ms);
		/* Parts that keep coming never make a wait poll it. */
		rv = net__cli_cancelled(c, 0)
			     ? net__cli_fail(c, -ECANCELED, "cancelled")
			     : net__cli_recv(c, &m);
		if (rv == 0 && m.h.type != NET_QF_RESP_IMAGE)
			rv = m.h.type == NET_RESP_FAILURE
				     ? net__cli_failure(c, &m)
				     : net__cli_malformed(c, "IMAGE");
	}
	for (i = 0; rv == 0 && i < out->db_pages; i++)
		ck ^= out->hashes[i];
	if (rv == 0 && ck != out->cksum)
		rv = net__cli_fail(c, QF_EMALFORMED, "%s: the image of %s does "
				   "not make its checksum", c->address, db);
	if (rv != 0) {
		free(out->hashes);
		out->hashes = NULL;
	}
	return rv;
}
