/* Wire codec, part 3: responses (§5), ROWS (§6.3, §6.4), SERVERS (§4.17)
 * and FILES (§9).  Contract in codec.h.
 *
 * The server encodes these; the client library decodes them.  Decoders
 * that return many items (SERVERS, FILES, rows) are iterators over the
 * body, so they allocate nothing, except the ROWS reader, which keeps the
 * column names and the current row in two arrays whose size the body
 * bounds (each name takes a word, each value at least a word). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

static uint64_t pad8(uint64_t n)
{
	return (n + 7) & ~(uint64_t)7;
}

/* ---- encoders ---- */

int net_encode_failure(struct net_buf *b, uint64_t code, const char *message)
{
	size_t start = net_msg_begin(b, NET_RESP_FAILURE, 0);

	net_put_u64(b, code);
	net_put_text(b, message);
	return net_msg_end(b, start);
}

int net_encode_server(struct net_buf *b, uint64_t id, const char *address)
{
	size_t start = net_msg_begin(b, NET_RESP_SERVER, 0);

	net_put_u64(b, id);
	net_put_text(b, address);
	return net_msg_end(b, start);
}

int net_encode_server_legacy(struct net_buf *b, const char *address)
{
	size_t start = net_msg_begin(b, NET_RESP_SERVER, 0);

	net_put_text(b, address);
	return net_msg_end(b, start);
}

static int encode_u64s(struct net_buf *b, uint8_t type, uint64_t v1,
		       uint64_t v2, int n)
{
	size_t start = net_msg_begin(b, type, 0);

	net_put_u64(b, v1);
	if (n > 1)
		net_put_u64(b, v2);
	return net_msg_end(b, start);
}

int net_encode_welcome(struct net_buf *b, uint64_t heartbeat_timeout)
{
	return encode_u64s(b, NET_RESP_WELCOME, heartbeat_timeout, 0, 1);
}

int net_encode_result(struct net_buf *b, uint64_t last_insert_id,
		      uint64_t rows_affected)
{
	return encode_u64s(b, NET_RESP_RESULT, last_insert_id, rows_affected,
			   2);
}

int net_encode_empty(struct net_buf *b)
{
	return encode_u64s(b, NET_RESP_EMPTY, 0, 0, 1);
}

int net_encode_metadata(struct net_buf *b, uint64_t failure_domain,
			uint64_t weight)
{
	return encode_u64s(b, NET_RESP_METADATA, failure_domain, weight, 2);
}

int net_encode_servers(struct net_buf *b, const struct net_node *nodes,
		       size_t n, uint64_t format)
{
	size_t start = net_msg_begin(b, NET_RESP_SERVERS, 0);
	size_t i;

	net_put_u64(b, n);
	for (i = 0; i < n; i++) {
		net_put_u64(b, nodes[i].id);
		net_put_text(b, nodes[i].address);
		if (format != 0) /* 1.11: any format but 0 has roles */
			net_put_u64(b, nodes[i].role);
	}
	return net_msg_end(b, start);
}

/* §5: u32 id, u32 padding. */
int net_encode_db(struct net_buf *b, uint32_t id)
{
	size_t start = net_msg_begin(b, NET_RESP_DB, 0);

	net_put_u32(b, id);
	net_put_u32(b, 0);
	return net_msg_end(b, start);
}

int net_encode_stmt(struct net_buf *b, const struct net_stmt *s,
		    uint8_t schema)
{
	size_t start;

	if (schema > 1)
		return -EINVAL;
	start = net_msg_begin(b, NET_RESP_STMT, schema);
	net_put_u32(b, s->db_id);
	net_put_u32(b, s->stmt_id);
	net_put_u64(b, s->n_params);
	if (schema == 1)
		net_put_u64(b, s->offset);
	return net_msg_end(b, start);
}

/* §9: sizes must stay multiples of 8, since go-dqlite reads the next name
 * right after the data, without padding. */
int net_encode_files(struct net_buf *b, const struct net_file *files,
		     size_t n)
{
	size_t start, i;

	for (i = 0; i < n; i++)
		if (files[i].size % NET_WORD != 0 || files[i].size > SIZE_MAX)
			return -EINVAL;
	start = net_msg_begin(b, NET_RESP_FILES, 0);
	net_put_u64(b, n);
	for (i = 0; i < n; i++) {
		net_put_text(b, files[i].name);
		net_put_u64(b, files[i].size);
		net_put_raw(b, files[i].data, (size_t)files[i].size);
	}
	return net_msg_end(b, start);
}

/* ---- ROWS encoder ---- */

/* Undo a failed step back to @len and return its error. */
static int rows_undo(struct net_rows_enc *w, size_t len)
{
	int rv = w->b->status;

	net_buf_truncate(w->b, len);
	w->b->status = 0;
	return rv;
}

int net_rows_begin(struct net_rows_enc *w, struct net_buf *b,
		   const char *const *names, uint64_t n_cols)
{
	uint64_t i;

	w->b = b;
	w->n_cols = n_cols;
	w->n_rows = 0;
	w->start = b->len;
	if (n_cols == 0)
		return -EINVAL; /* N >= 1 (§6.3) */
	w->start = net_msg_begin(b, NET_RESP_ROWS, 0);
	net_put_u64(b, n_cols);
	for (i = 0; i < n_cols && b->status == 0; i++)
		net_put_text(b, names[i]);
	if (b->status != 0)
		return rows_undo(w, w->start);
	return 0;
}

/* Row header: a type nibble per column, even columns in the low nibble
 * (§6.3), zero-padded to a word. */
int net_rows_add(struct net_rows_enc *w, const struct net_value *row)
{
	struct net_buf *b = w->b;
	size_t at = b->len;
	uint64_t hdr = pad8((w->n_cols + 1) / 2), i;

	for (i = 0; i < w->n_cols; i++)
		if (!net_value_type_valid(row[i].type))
			return -EINVAL;
	if (hdr > SIZE_MAX)
		return -EMSGSIZE;
	net_put_raw(b, NULL, (size_t)hdr);
	if (b->status != 0)
		return rows_undo(w, at);
	for (i = 0; i < w->n_cols; i++)
		b->data[at + i / 2] |= (uint8_t)(row[i].type << (i % 2 * 4));
	for (i = 0; i < w->n_cols && b->status == 0; i++)
		net_put_value(b, &row[i]);
	if (b->status != 0)
		return rows_undo(w, at);
	w->n_rows++;
	return 0;
}

int net_rows_end(struct net_rows_enc *w, bool done)
{
	net_put_u64(w->b, done ? NET_ROWS_DONE : NET_ROWS_PART);
	return net_msg_end(w->b, w->start);
}

void net_rows_abort(struct net_rows_enc *w)
{
	net_buf_truncate(w->b, w->start);
	w->b->status = 0;
	w->b->mark = w->b->len;
	w->n_rows = 0;
}

/* ---- decoders ---- */

int net_decode_failure(const struct net_slice *body, struct net_failure *m)
{
	struct net_cursor c;
	int rv;

	net_cursor_init(&c, body);
	rv = net_get_u64(&c, &m->code);
	if (rv == 0)
		rv = net_get_text(&c, &m->message, NULL);
	return rv;
}

int net_decode_server(const struct net_slice *body, bool legacy,
		      struct net_server_info *m)
{
	struct net_cursor c;
	int rv = 0;

	net_cursor_init(&c, body);
	m->id = 0;
	if (!legacy)
		rv = net_get_u64(&c, &m->id);
	if (rv == 0)
		rv = net_get_text(&c, &m->address, NULL);
	return rv;
}

int net_decode_welcome(const struct net_slice *body, struct net_welcome *m)
{
	struct net_cursor c;

	net_cursor_init(&c, body);
	return net_get_u64(&c, &m->heartbeat_timeout);
}

int net_decode_db(const struct net_slice *body, struct net_db *m)
{
	struct net_cursor c;
	uint32_t pad;
	int rv;

	net_cursor_init(&c, body);
	rv = net_get_u32(&c, &m->id);
	if (rv == 0)
		rv = net_get_u32(&c, &pad); /* present, never checked */
	return rv;
}

int net_decode_stmt(const struct net_slice *body, uint8_t schema,
		    struct net_stmt *m)
{
	struct net_cursor c;
	int rv;

	if (schema > 1)
		return -EPROTONOSUPPORT;
	net_cursor_init(&c, body);
	m->offset = 0;
	rv = net_get_u32(&c, &m->db_id);
	if (rv == 0)
		rv = net_get_u32(&c, &m->stmt_id);
	if (rv == 0)
		rv = net_get_u64(&c, &m->n_params);
	if (rv == 0 && schema == 1)
		rv = net_get_u64(&c, &m->offset);
	return rv;
}

int net_decode_result(const struct net_slice *body, struct net_result *m)
{
	struct net_cursor c;
	int rv;

	net_cursor_init(&c, body);
	rv = net_get_u64(&c, &m->last_insert_id);
	if (rv == 0)
		rv = net_get_u64(&c, &m->rows_affected);
	return rv;
}

int net_decode_empty(const struct net_slice *body)
{
	struct net_cursor c;
	uint64_t zero;

	net_cursor_init(&c, body);
	return net_get_u64(&c, &zero); /* value unchecked, as go-dqlite */
}

int net_decode_metadata(const struct net_slice *body, struct net_metadata *m)
{
	struct net_cursor c;
	int rv;

	net_cursor_init(&c, body);
	rv = net_get_u64(&c, &m->failure_domain);
	if (rv == 0)
		rv = net_get_u64(&c, &m->weight);
	return rv;
}

/* ---- SERVERS ---- */

int net_servers_init(struct net_servers *s, const struct net_slice *body,
		     uint64_t format)
{
	uint64_t min = format != 0 ? 24 : 16; /* id, 1-word address, role */
	int rv;

	memset(s, 0, sizeof *s);
	s->format = format;
	net_cursor_init(&s->cur, body);
	rv = net_get_u64(&s->cur, &s->n);
	if (rv == 0 && s->n > s->cur.left / min)
		rv = QF_EMALFORMED;
	if (rv != 0)
		s->n = 0;
	return rv;
}

int net_servers_next(struct net_servers *s, struct net_node *node)
{
	struct net_cursor c = s->cur;
	int rv;

	if (s->i >= s->n)
		return 0;
	node->role = 0;
	rv = net_get_u64(&c, &node->id);
	if (rv == 0)
		rv = net_get_text(&c, &node->address, NULL);
	if (rv == 0 && s->format != 0)
		rv = net_get_u64(&c, &node->role);
	if (rv != 0)
		return rv;
	s->cur = c;
	s->i++;
	return 1;
}

/* ---- FILES ---- */

int net_files_init(struct net_files *f, const struct net_slice *body)
{
	int rv;

	memset(f, 0, sizeof *f);
	net_cursor_init(&f->cur, body);
	rv = net_get_u64(&f->cur, &f->n);
	if (rv == 0 && f->n > f->cur.left / 16) /* name word + size word */
		rv = QF_EMALFORMED;
	if (rv != 0)
		f->n = 0;
	return rv;
}

/* go-dqlite reads exactly @size bytes of data, with no padding after. */
int net_files_next(struct net_files *f, struct net_file *file)
{
	struct net_cursor c = f->cur;
	int rv;

	if (f->i >= f->n)
		return 0;
	rv = net_get_text(&c, &file->name, NULL);
	if (rv == 0)
		rv = net_get_u64(&c, &file->size);
	if (rv == 0 && file->size > c.left)
		rv = QF_EMALFORMED;
	if (rv != 0)
		return rv;
	file->data = c.p;
	c.p += file->size;
	c.left -= (size_t)file->size;
	c.off += (size_t)file->size;
	f->cur = c;
	f->i++;
	return 1;
}

/* ---- ROWS reader ---- */

int net_rows_init(struct net_rows *r, const struct net_slice *body)
{
	uint64_t i;
	int rv;

	memset(r, 0, sizeof *r);
	net_cursor_init(&r->cur, body);
	rv = net_get_u64(&r->cur, &r->n_cols);
	if (rv != 0)
		goto err;
	/* Each name takes at least a word: this bounds the allocations by
	 * the body size, whatever the count claims. */
	rv = QF_EMALFORMED;
	if (r->n_cols == 0 || r->n_cols > r->cur.left / NET_WORD)
		goto err;
	rv = -ENOMEM;
	r->names = calloc((size_t)r->n_cols, sizeof *r->names);
	if (r->names == NULL)
		goto err;
	r->row = calloc((size_t)r->n_cols, sizeof *r->row);
	if (r->row == NULL)
		goto err_after_names;
	for (i = 0; i < r->n_cols; i++) {
		rv = net_get_text(&r->cur, &r->names[i], NULL);
		if (rv != 0)
			goto err_after_row;
	}
	return 0;

err_after_row:
	free(r->row);
err_after_names:
	free(r->names);
err:
	memset(r, 0, sizeof *r);
	return rv;
}

/* Type of column @i from a row header: even columns in the low nibble. */
static uint8_t row_type(const uint8_t *head, uint64_t i)
{
	return (uint8_t)(head[i / 2] >> (i % 2 * 4) & 0x0f);
}

/* At a row boundary a whole DONE or PART word ends the rows.  A header
 * byte can never look like one, since type nibbles are at most 0xb. */
int net_rows_next(struct net_rows *r)
{
	struct net_cursor c = r->cur;
	const uint8_t *head;
	uint64_t hdr, i, word;
	int rv;

	if (r->end != 0)
		return 0;
	if (r->names == NULL || c.left < 8)
		return QF_EMALFORMED; /* no end marker */
	word = qf_get_le64(c.p);
	if (word == NET_ROWS_DONE || word == NET_ROWS_PART) {
		r->end = word;
		r->cur.p += 8;
		r->cur.left -= 8;
		r->cur.off += 8;
		return 0;
	}
	hdr = pad8((r->n_cols + 1) / 2);
	if (hdr > c.left)
		return QF_EMALFORMED;
	head = c.p;
	for (i = 0; i < r->n_cols; i++)
		if (!net_value_type_valid(row_type(head, i)))
			return QF_EMALFORMED;
	c.p += hdr;
	c.left -= (size_t)hdr;
	c.off += (size_t)hdr;
	for (i = 0; i < r->n_cols; i++) {
		rv = net_get_value(&c, row_type(head, i), &r->row[i]);
		if (rv != 0)
			return rv;
	}
	r->cur = c;
	return 1;
}

void net_rows_close(struct net_rows *r)
{
	free(r->names);
	free(r->row);
	memset(r, 0, sizeof *r);
}
