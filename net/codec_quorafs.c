/* Wire codec, part 4: quorafs's own extension, DATABASES.  A dqlite
 * server answers its request type with FAILURE ("unknown request
 * type"), so clients can tell.
 *
 * Request  NET_QF_REQ_DATABASES: u64 format (0).
 * Response NET_QF_RESP_DATABASES: u64 raft applied index, u64 flags
 *   (bit 0: every replicated transaction is in the files), u64 count,
 *   then per database: text name, u64 applied, u64 seq, u64 checksum,
 *   u64 pages, u64 page size, u64 flags (bit 0: diverged). */
#include <string.h>

#include "codec.h"

int net_encode_databases_req(struct net_buf *b)
{
	size_t start = net_msg_begin(b, NET_QF_REQ_DATABASES, 0);

	net_put_u64(b, 0);
	return net_msg_end(b, start);
}

int net_encode_databases(struct net_buf *b, uint64_t applied, bool idle,
			 const struct net_db_info *dbs, size_t n)
{
	size_t start = net_msg_begin(b, NET_QF_RESP_DATABASES, 0);
	size_t i;

	net_put_u64(b, applied);
	net_put_u64(b, idle ? 1 : 0);
	net_put_u64(b, n);
	for (i = 0; i < n; i++) {
		net_put_text(b, dbs[i].name);
		net_put_u64(b, dbs[i].applied);
		net_put_u64(b, dbs[i].seq);
		net_put_u64(b, dbs[i].cksum);
		net_put_u64(b, dbs[i].pages);
		net_put_u64(b, dbs[i].page_size);
		net_put_u64(b, dbs[i].diverged ? 1 : 0);
	}
	return net_msg_end(b, start);
}

int net_databases_init(struct net_databases *d, const struct net_slice *body)
{
	uint64_t flags = 0;
	int rv;

	memset(d, 0, sizeof *d);
	net_cursor_init(&d->cur, body);
	rv = net_get_u64(&d->cur, &d->applied);
	if (rv == 0)
		rv = net_get_u64(&d->cur, &flags);
	if (rv == 0)
		rv = net_get_u64(&d->cur, &d->n);
	if (rv == 0 && d->n > d->cur.left / 56) /* 1-word name + 6 words */
		rv = QF_EMALFORMED;
	if (rv != 0)
		d->n = 0;
	d->idle = (flags & 1) != 0;
	return rv;
}

int net_databases_next(struct net_databases *d, struct net_db_info *db)
{
	struct net_cursor c = d->cur;
	uint64_t flags = 0;
	int rv;

	if (d->i >= d->n)
		return 0;
	rv = net_get_text(&c, &db->name, NULL);
	if (rv == 0)
		rv = net_get_u64(&c, &db->applied);
	if (rv == 0)
		rv = net_get_u64(&c, &db->seq);
	if (rv == 0)
		rv = net_get_u64(&c, &db->cksum);
	if (rv == 0)
		rv = net_get_u64(&c, &db->pages);
	if (rv == 0)
		rv = net_get_u64(&c, &db->page_size);
	if (rv == 0)
		rv = net_get_u64(&c, &flags);
	if (rv != 0)
		return rv;
	db->diverged = (flags & 1) != 0;
	d->cur = c;
	d->i++;
	return 1;
}
