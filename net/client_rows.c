/* Result sets of the client library (net.h): QUERY and QUERY_SQL, their
 * ROWS batches read one at a time as rows are consumed (wire-protocol.md
 * §6.3, §6.4), and INTERRUPT (§6.5).
 *
 * The first batch fixes the columns; their names are copied once, since
 * each batch's body goes away with the next read.  Row values point into
 * the current batch and live until the next net_client_rows_next().  The
 * last word of each batch tells whether the server is still sending: if
 * it is when the caller closes early, INTERRUPT and a drain up to EMPTY
 * bring the connection back to a request boundary.  Same threading rules
 * as client.c. */
#include "client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void from_wire(const struct net_value *w, struct net_sql_value *v)
{
	memset(v, 0, sizeof *v);
	v->type = w->type;
	switch (w->type) {
	case NET_INTEGER:
	case NET_UNIXTIME:
		v->integer = w->integer;
		break;
	case NET_FLOAT:
		v->real = w->real;
		break;
	case NET_TEXT:
	case NET_ISO8601:
		v->text.p = w->text.p;
		v->text.len = w->text.len;
		break;
	case NET_BLOB:
		v->blob.p = w->blob.p;
		v->blob.len = w->blob.len;
		break;
	case NET_BOOLEAN:
		v->boolean = w->word != 0;
		break;
	default: /* NULL */
		break;
	}
}

/* The last word of a ROWS body: does the server send more after it? */
static bool ends_in_part(const struct net_msg *m)
{
	size_t len = m->body.len;

	return len >= NET_WORD &&
	       qf_get_le64(m->body.p + len - NET_WORD) == NET_ROWS_PART;
}

/* Take a ROWS message as the current batch; the first one also fixes the
 * columns.  Every batch repeats the column names (§6.3). */
static int take_batch(struct net_client *c, const struct net_msg *m)
{
	struct net_client_rs *rs = &c->rs;
	size_t size = 0, off = 0;
	uint64_t i;

	net_rows_close(&rs->batch);
	if (net_rows_init(&rs->batch, &m->body) != 0)
		return net__cli_malformed(c, "ROWS");
	if (rs->names != NULL) {
		if (rs->batch.n_cols != rs->n_cols)
			return net__cli_fail(c, QF_EMALFORMED,
					     "%s: the column count "
					     "changed between batches",
					     c->address);
		rs->more = ends_in_part(m);
		return 0;
	}
	rs->n_cols = rs->batch.n_cols;
	for (i = 0; i < rs->n_cols; i++)
		size += strlen(rs->batch.names[i]) + 1;
	rs->names_mem = malloc(size);
	rs->names = calloc((size_t)rs->n_cols, sizeof *rs->names);
	rs->row = calloc((size_t)rs->n_cols, sizeof *rs->row);
	if (rs->names_mem == NULL || rs->names == NULL || rs->row == NULL)
		return net__cli_fail(c, -ENOMEM, "out of memory");
	for (i = 0; i < rs->n_cols; i++) {
		size_t len = strlen(rs->batch.names[i]) + 1;

		memcpy(rs->names_mem + off, rs->batch.names[i], len);
		rs->names[i] = rs->names_mem + off;
		off += len;
	}
	rs->more = ends_in_part(m);
	return 0;
}

/* Send the encoded query in c->out and open the result set. */
static int start_query(struct net_client *c, struct net_client_rows *rows)
{
	struct net_msg m;
	int rv;

	memset(rows, 0, sizeof *rows);
	rv = net__cli_roundtrip(c, NET_RESP_ROWS, &m);
	if (rv != 0)
		return rv;
	rv = take_batch(c, &m);
	if (rv != 0) {
		net__cli_rs_free(c);
		return rv;
	}
	c->rs.open = true;
	c->rs.rows = rows;
	rows->client = c;
	rows->n_cols = (unsigned)c->rs.n_cols;
	rows->names = c->rs.names;
	rows->batches = 1;
	return 0;
}

int net_client_query_sql(struct net_client *c, const char *sql,
			 const struct net_sql_value *params, size_t n,
			 struct net_client_rows *rows)
{
	int rv = net__cli_ready(c);

	if (rv == 0)
		rv = net__cli_params(c, params, n);
	if (rv != 0)
		return rv;
	rv = net_encode_query_sql(&c->out, 0, sql, c->wire, n);
	if (rv != 0)
		return net__cli_encode_failed(c, rv);
	return start_query(c, rows);
}

int net_client_query(struct net_client *c, uint32_t stmt_id,
		     const struct net_sql_value *params, size_t n,
		     struct net_client_rows *rows)
{
	int rv = net__cli_ready(c);

	if (rv == 0)
		rv = net__cli_params(c, params, n);
	if (rv != 0)
		return rv;
	rv = net_encode_query(&c->out, 0, stmt_id, c->wire, n);
	if (rv != 0)
		return net__cli_encode_failed(c, rv);
	return start_query(c, rows);
}

/* End the result set with @status (0: DONE); returns @status. */
static int rs_end(struct net_client_rs *rs, int status)
{
	rs->status = status; /* even if a dropped connection ended it */
	rs->over = true;
	if (status == 0 || status == NET_EFAILURE)
		rs->more = false; /* the server has finished this result */
	return rs->status;
}

int net_client_rows_next(struct net_client_rows *rows)
{
	struct net_client *c = rows->client;
	struct net_client_rs *rs;
	struct net_msg m;
	uint64_t i;
	int rv;

	if (c == NULL || !c->rs.open || c->rs.rows != rows)
		return -EINVAL;
	rs = &c->rs;
	rows->row = NULL;
	while (!rs->over) {
		rv = net_rows_next(&rs->batch);
		if (rv == 1) {
			for (i = 0; i < rs->n_cols; i++)
				from_wire(&rs->batch.row[i], &rs->row[i]);
			rows->row = rs->row;
			return 1;
		}
		if (rv < 0)
			return rs_end(rs, net__cli_malformed(c, "ROWS"));
		if (rs->batch.end == NET_ROWS_DONE)
			return rs_end(rs, 0);
		/* PART: the next batch is already on its way (§6.4). */
		net__cli_call(c);
		rv = net__cli_recv(c, &m);
		if (rv == 0 && m.h.type == NET_RESP_FAILURE)
			rv = net__cli_failure(c, &m);
		else if (rv == 0 && m.h.type != NET_RESP_ROWS)
			rv = net__cli_fail(c, QF_EMALFORMED,
					   "%s: unexpected response "
					   "type %u in a result set",
					   c->address, m.h.type);
		else if (rv == 0)
			rv = take_batch(c, &m);
		if (rv != 0)
			return rs_end(rs, rv);
		rows->batches++;
	}
	return rs->status;
}

/* INTERRUPT, then discard everything up to its EMPTY (§6.5). */
static int interrupt(struct net_client *c)
{
	struct net_msg m;
	int rv;

	rv = net_encode_interrupt(&c->out, 0);
	if (rv != 0)
		return net__cli_encode_failed(c, rv);
	net__cli_call(c);
	rv = net__cli_send(c);
	while (rv == 0) {
		rv = net__cli_recv(c, &m);
		if (rv != 0)
			break;
		if (m.h.type == NET_RESP_EMPTY)
			return net_decode_empty(&m.body) == 0
				   ? 0
				   : net__cli_malformed(c, "EMPTY");
		if (m.h.type != NET_RESP_ROWS && m.h.type != NET_RESP_FAILURE)
			rv = net__cli_fail(c, QF_EMALFORMED,
					   "%s: unexpected response "
					   "type %u after INTERRUPT",
					   c->address, m.h.type);
	}
	return rv;
}

int net_client_rows_close(struct net_client_rows *rows)
{
	struct net_client *c = rows->client;
	int rv = 0;

	if (c == NULL || !c->rs.open || c->rs.rows != rows)
		return -EINVAL;
	if (c->rs.more && c->fd >= 0)
		rv = interrupt(c);
	net__cli_rs_free(c);
	memset(rows, 0, sizeof *rows);
	return rv;
}

int net_client_interrupt(struct net_client *c)
{
	int rv = net__cli_ready(c);

	return rv != 0 ? rv : interrupt(c);
}

void net__cli_rs_free(struct net_client *c)
{
	net_rows_close(&c->rs.batch);
	free(c->rs.names_mem);
	free(c->rs.names);
	free(c->rs.row);
	memset(&c->rs, 0, sizeof c->rs);
}
