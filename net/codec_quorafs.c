/* Wire codec, part 4: quorafs's own extensions, DATABASES and IMAGE.  A dqlite
 * server answers its request type with FAILURE ("unknown request
 * type"), so clients can tell.
 *
 * Request  NET_QF_REQ_DATABASES: u64 format (0).
 * Response NET_QF_RESP_DATABASES: u64 raft applied index, u64 flags
 *   (bit 0: every replicated transaction is in the files), u64 count,
 *   then per database: text name, u64 applied, u64 seq, u64 checksum,
 *   u64 pages, u64 page size, u64 flags (bit 0: diverged).
 *
 * Request  NET_QF_REQ_IMAGE: text database name.
 * Response NET_QF_RESP_IMAGE, one or more in a row: u64 seq, u64
 *   checksum, u64 page size, u64 pages, u64 first, u64 n, then pages
 *   first..first+n-1 (n * page size bytes), nothing after; the next
 *   message starts at first+n, the last ends at page pages.  (A FAILURE
 *   instead of the first: no image.) */
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

int net_encode_image_req(struct net_buf *b, const char *db)
{
	size_t start = net_msg_begin(b, NET_QF_REQ_IMAGE, 0);

	net_put_text(b, db);
	return net_msg_end(b, start);
}

int net_decode_image_req(const struct net_slice *body, const char **db)
{
	struct net_cursor cur;
	size_t len;

	net_cursor_init(&cur, body);
	if (net_get_text(&cur, db, &len) != 0 || len == 0 || cur.left != 0)
		return QF_EMALFORMED;
	return 0;
}

int net_encode_image_begin(struct net_buf *b, const struct net_image *im,
			   size_t *start, uint8_t **pages)
{
	size_t size = (size_t)im->n * im->page_size, at;

	*start = net_msg_begin(b, NET_QF_RESP_IMAGE, 0);
	net_put_u64(b, im->seq);
	net_put_u64(b, im->cksum);
	net_put_u64(b, im->page_size);
	net_put_u64(b, im->db_pages);
	net_put_u64(b, im->first);
	net_put_u64(b, im->n);
	at = b->len;
	net_put_raw(b, NULL, size); /* zeros, overwritten by the caller */
	if (b->status != 0) {
		int rv = b->status;

		net_buf_truncate(b, *start);
		b->status = 0;
		return rv;
	}
	*pages = b->data + at;
	return 0;
}

static bool page_size_ok(uint64_t ps)
{
	return ps >= 512 && ps <= 65536 && (ps & (ps - 1)) == 0;
}

int net_decode_image(const struct net_slice *body, struct net_image *im)
{
	struct net_cursor cur;
	uint64_t ps = 0, total = 0, first = 0, n = 0;

	net_cursor_init(&cur, body);
	if (net_get_u64(&cur, &im->seq) != 0 ||
	    net_get_u64(&cur, &im->cksum) != 0 ||
	    net_get_u64(&cur, &ps) != 0 || net_get_u64(&cur, &total) != 0 ||
	    net_get_u64(&cur, &first) != 0 || net_get_u64(&cur, &n) != 0 ||
	    !page_size_ok(ps) || total == 0 || total > UINT32_MAX ||
	    first == 0 || n == 0 || first - 1 > total - n || n > total ||
	    cur.left / ps != n || cur.left % ps != 0)
		return QF_EMALFORMED;
	im->page_size = (uint32_t)ps;
	im->db_pages = (uint32_t)total;
	im->first = (uint32_t)first;
	im->n = (uint32_t)n;
	im->pages = cur.p;
	return 0;
}
