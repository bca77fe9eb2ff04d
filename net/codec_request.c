/* Wire codec, part 2: requests (§4), their parameter tuples (§6.1) and the
 * schema revisions (§3).  Contract in codec.h.
 *
 * Decoding a request is two steps, because its two halves fail
 * differently (§1.5, §7.2): the fixed fields (net_decode_request and the
 * net_decode_<type> functions), whose failure closes the connection, and
 * the parameter tuple (net_tuple_init), whose failure is FAILURE 1005.
 * The tuple is validated entirely, values included, before the first value
 * is returned, so nothing is ever half-bound. */
#include <errno.h>
#include <string.h>

#include "codec.h"

/* The rest of the body after the fixed fields: the parameter tuple. */
static void rest(const struct net_cursor *c, struct net_slice *s)
{
	s->p = c->p;
	s->len = c->left;
}

/* ---- body decoders ---- */

/* The one-u64 bodies. */
static int decode_u64(const struct net_slice *body, uint64_t *v)
{
	struct net_cursor c;

	net_cursor_init(&c, body);
	return net_get_u64(&c, v);
}

int net_decode_leader(const struct net_slice *body, struct net_leader *m)
{
	return decode_u64(body, &m->unused);
}

int net_decode_client(const struct net_slice *body, struct net_client_req *m)
{
	return decode_u64(body, &m->id);
}

int net_decode_heartbeat(const struct net_slice *body, struct net_heartbeat *m)
{
	return decode_u64(body, &m->timestamp);
}

int net_decode_interrupt(const struct net_slice *body, struct net_interrupt *m)
{
	return decode_u64(body, &m->db_id);
}

int net_decode_remove(const struct net_slice *body, struct net_remove *m)
{
	return decode_u64(body, &m->id);
}

int net_decode_cluster(const struct net_slice *body, struct net_cluster *m)
{
	return decode_u64(body, &m->format);
}

int net_decode_transfer(const struct net_slice *body, struct net_transfer *m)
{
	return decode_u64(body, &m->id);
}

int net_decode_describe(const struct net_slice *body, struct net_describe *m)
{
	return decode_u64(body, &m->format);
}

int net_decode_weight(const struct net_slice *body, struct net_weight *m)
{
	return decode_u64(body, &m->weight);
}

/* §4.3: text name, u64 flags, text vfs. */
int net_decode_open(const struct net_slice *body, struct net_open *m)
{
	struct net_cursor c;
	int rv;

	net_cursor_init(&c, body);
	rv = net_get_text(&c, &m->name, NULL);
	if (rv == 0)
		rv = net_get_u64(&c, &m->flags);
	if (rv == 0)
		rv = net_get_text(&c, &m->vfs, NULL);
	return rv;
}

/* §4.4: u64 db id, text SQL. */
int net_decode_prepare(const struct net_slice *body, struct net_prepare *m)
{
	struct net_cursor c;
	int rv;

	net_cursor_init(&c, body);
	rv = net_get_u64(&c, &m->db_id);
	if (rv == 0)
		rv = net_get_text(&c, &m->sql, NULL);
	return rv;
}

/* §4.5, §4.6: u32 db id, u32 stmt id, then the tuple if any. */
int net_decode_exec(const struct net_slice *body, struct net_exec *m)
{
	struct net_cursor c;
	int rv;

	net_cursor_init(&c, body);
	rv = net_get_u32(&c, &m->db_id);
	if (rv == 0)
		rv = net_get_u32(&c, &m->stmt_id);
	if (rv == 0)
		rest(&c, &m->params);
	return rv;
}

/* §4.7: u32 db id, u32 stmt id. */
int net_decode_finalize(const struct net_slice *body, struct net_finalize *m)
{
	struct net_cursor c;
	int rv;

	net_cursor_init(&c, body);
	rv = net_get_u32(&c, &m->db_id);
	if (rv == 0)
		rv = net_get_u32(&c, &m->stmt_id);
	return rv;
}

/* §4.8, §4.9: u64 db id, text SQL, then the tuple if any. */
int net_decode_exec_sql(const struct net_slice *body, struct net_exec_sql *m)
{
	struct net_cursor c;
	int rv;

	net_cursor_init(&c, body);
	rv = net_get_u64(&c, &m->db_id);
	if (rv == 0)
		rv = net_get_text(&c, &m->sql, NULL);
	if (rv == 0)
		rest(&c, &m->params);
	return rv;
}

/* §4.11, §4.12: u64 id, text address. */
static int decode_id_address(const struct net_slice *body, uint64_t *id,
			     const char **address)
{
	struct net_cursor c;
	int rv;

	net_cursor_init(&c, body);
	rv = net_get_u64(&c, id);
	if (rv == 0)
		rv = net_get_text(&c, address, NULL);
	return rv;
}

int net_decode_connect(const struct net_slice *body, struct net_connect *m)
{
	return decode_id_address(body, &m->id, &m->address);
}

int net_decode_add(const struct net_slice *body, struct net_add *m)
{
	return decode_id_address(body, &m->id, &m->address);
}

/* §4.13: u64 id, and a u64 role unless the body is the 1-word PROMOTE. */
int net_decode_assign(const struct net_slice *body, struct net_assign *m)
{
	struct net_cursor c;
	int rv;

	net_cursor_init(&c, body);
	rv = net_get_u64(&c, &m->id);
	if (rv != 0)
		return rv;
	m->has_role = c.left > 0; /* a partial role word is malformed */
	m->role = NET_ROLE_VOTER;
	if (m->has_role)
		rv = net_get_u64(&c, &m->role);
	return rv;
}

/* §4.15: text name. */
int net_decode_dump(const struct net_slice *body, struct net_dump *m)
{
	struct net_cursor c;

	net_cursor_init(&c, body);
	return net_get_text(&c, &m->name, NULL);
}

/* ---- dispatch ---- */

static const struct {
	const char *name;
	bool rev1; /* has schema revision 1 (§3) */
} types[NET_REQ_COUNT] = {
	[NET_REQ_LEADER] = {"leader", false},
	[NET_REQ_CLIENT] = {"client", false},
	[NET_REQ_HEARTBEAT] = {"heartbeat", false},
	[NET_REQ_OPEN] = {"open", false},
	[NET_REQ_PREPARE] = {"prepare", true},
	[NET_REQ_EXEC] = {"exec", true},
	[NET_REQ_QUERY] = {"query", true},
	[NET_REQ_FINALIZE] = {"finalize", false},
	[NET_REQ_EXEC_SQL] = {"exec_sql", true},
	[NET_REQ_QUERY_SQL] = {"query_sql", true},
	[NET_REQ_INTERRUPT] = {"interrupt", false},
	[NET_REQ_CONNECT] = {"connect", false},
	[NET_REQ_ADD] = {"add", false},
	[NET_REQ_ASSIGN] = {"assign", false},
	[NET_REQ_REMOVE] = {"remove", false},
	[NET_REQ_DUMP] = {"dump", false},
	[NET_REQ_CLUSTER] = {"cluster", false},
	[NET_REQ_TRANSFER] = {"transfer", false},
	[NET_REQ_DESCRIBE] = {"describe", false},
	[NET_REQ_WEIGHT] = {"weight", false},
};

const char *net_request_name(unsigned type)
{
	return type < NET_REQ_COUNT ? types[type].name : "unknown";
}

bool net_request_has_rev1(unsigned type)
{
	return type < NET_REQ_COUNT && types[type].rev1;
}

int net_decode_request(const struct net_msg *msg, struct net_request *r)
{
	const struct net_slice *body = &msg->body;

	memset(r, 0, sizeof *r);
	r->type = msg->h.type;
	r->schema = msg->h.schema;
	if (r->type >= NET_REQ_COUNT)
		return -ENOSYS;
	if (r->schema > 1 || (r->schema == 1 && !types[r->type].rev1))
		return -EPROTONOSUPPORT;
	switch (r->type) {
	case NET_REQ_LEADER:
		return net_decode_leader(body, &r->u.leader);
	case NET_REQ_CLIENT:
		return net_decode_client(body, &r->u.client);
	case NET_REQ_HEARTBEAT:
		return net_decode_heartbeat(body, &r->u.heartbeat);
	case NET_REQ_OPEN:
		return net_decode_open(body, &r->u.open);
	case NET_REQ_PREPARE:
		return net_decode_prepare(body, &r->u.prepare);
	case NET_REQ_EXEC:
	case NET_REQ_QUERY:
		return net_decode_exec(body, &r->u.exec);
	case NET_REQ_FINALIZE:
		return net_decode_finalize(body, &r->u.finalize);
	case NET_REQ_EXEC_SQL:
	case NET_REQ_QUERY_SQL:
		return net_decode_exec_sql(body, &r->u.exec_sql);
	case NET_REQ_INTERRUPT:
		return net_decode_interrupt(body, &r->u.interrupt);
	case NET_REQ_CONNECT:
		return net_decode_connect(body, &r->u.connect);
	case NET_REQ_ADD:
		return net_decode_add(body, &r->u.add);
	case NET_REQ_ASSIGN:
		return net_decode_assign(body, &r->u.assign);
	case NET_REQ_REMOVE:
		return net_decode_remove(body, &r->u.remove);
	case NET_REQ_DUMP:
		return net_decode_dump(body, &r->u.dump);
	case NET_REQ_CLUSTER:
		return net_decode_cluster(body, &r->u.cluster);
	case NET_REQ_TRANSFER:
		return net_decode_transfer(body, &r->u.transfer);
	case NET_REQ_DESCRIBE:
		return net_decode_describe(body, &r->u.describe);
	case NET_REQ_WEIGHT:
		return net_decode_weight(body, &r->u.weight);
	default:
		return -ENOSYS; /* unreachable: checked above */
	}
}

/* ---- parameter tuples ---- */

/* Revision 0: u8 n, n type bytes, padding to a word.  Revision 1: u32 n,
 * n type bytes, padding to a word.  The padding is never checked: go-dqlite
 * leaves stale bytes in it (§1.5). */
static int tuple_header(struct net_tuple *t, struct net_cursor *c,
			uint8_t schema)
{
	uint8_t n8;
	int rv;

	if (schema == 0) {
		rv = net_get_u8(c, &n8);
		t->n = n8;
	} else {
		rv = net_get_u32(c, &t->n);
	}
	if (rv != 0)
		return rv;
	if (t->n > c->left)
		return QF_EMALFORMED;
	t->types = c->p;
	c->p += t->n;
	c->left -= t->n;
	c->off += t->n;
	return net_get_pad(c);
}

int net_tuple_init(struct net_tuple *t, const struct net_slice *params,
		   uint8_t schema)
{
	struct net_cursor c, check;
	struct net_value v;
	uint32_t i;
	int rv;

	memset(t, 0, sizeof *t);
	if (schema > 1)
		return QF_EMALFORMED;
	net_cursor_init(&c, params);
	if (c.left == 0)
		return 0; /* no tuple: no parameters (§4.5) */
	rv = tuple_header(t, &c, schema);
	if (rv != 0)
		return rv;
	/* Walk every value once now, so that next() cannot fail later. */
	check = c;
	for (i = 0; i < t->n; i++) {
		rv = net_get_value(&check, t->types[i], &v);
		if (rv != 0) {
			memset(t, 0, sizeof *t);
			return rv;
		}
	}
	t->values = c;
	return 0;
}

int net_tuple_next(struct net_tuple *t, struct net_value *v)
{
	int rv;

	if (t->i >= t->n)
		return 0;
	rv = net_get_value(&t->values, t->types[t->i], v);
	if (rv != 0)
		return rv; /* cannot happen after init's walk */
	t->i++;
	return 1;
}

/* ---- encoders ---- */

static int encode_u64_body(struct net_buf *b, uint8_t type, uint64_t v)
{
	size_t start = net_msg_begin(b, type, 0);

	net_put_u64(b, v);
	return net_msg_end(b, start);
}

int net_encode_leader(struct net_buf *b)
{
	return encode_u64_body(b, NET_REQ_LEADER, 0);
}

int net_encode_client(struct net_buf *b, uint64_t id)
{
	return encode_u64_body(b, NET_REQ_CLIENT, id);
}

int net_encode_heartbeat(struct net_buf *b, uint64_t timestamp)
{
	return encode_u64_body(b, NET_REQ_HEARTBEAT, timestamp);
}

int net_encode_interrupt(struct net_buf *b, uint64_t db_id)
{
	return encode_u64_body(b, NET_REQ_INTERRUPT, db_id);
}

int net_encode_remove(struct net_buf *b, uint64_t id)
{
	return encode_u64_body(b, NET_REQ_REMOVE, id);
}

int net_encode_cluster(struct net_buf *b, uint64_t format)
{
	return encode_u64_body(b, NET_REQ_CLUSTER, format);
}

int net_encode_transfer(struct net_buf *b, uint64_t id)
{
	return encode_u64_body(b, NET_REQ_TRANSFER, id);
}

int net_encode_describe(struct net_buf *b, uint64_t format)
{
	return encode_u64_body(b, NET_REQ_DESCRIBE, format);
}

int net_encode_weight(struct net_buf *b, uint64_t weight)
{
	return encode_u64_body(b, NET_REQ_WEIGHT, weight);
}

int net_encode_open(struct net_buf *b, const char *name, uint64_t flags,
		    const char *vfs)
{
	size_t start = net_msg_begin(b, NET_REQ_OPEN, 0);

	net_put_text(b, name);
	net_put_u64(b, flags);
	net_put_text(b, vfs);
	return net_msg_end(b, start);
}

int net_encode_prepare(struct net_buf *b, uint64_t db_id, const char *sql)
{
	size_t start = net_msg_begin(b, NET_REQ_PREPARE, 0);

	net_put_u64(b, db_id);
	net_put_text(b, sql);
	return net_msg_end(b, start);
}

/* The schema byte a request with @n parameters needs. */
static uint8_t tuple_schema(size_t n)
{
	return n > UINT8_MAX ? 1 : 0;
}

/* Header and values of a tuple of @n parameters (none: nothing at all). */
static void put_tuple(struct net_buf *b, const struct net_value *params,
		      size_t n)
{
	size_t i;

	if (n == 0)
		return;
	if (n > UINT32_MAX) {
		if (b->status == 0)
			b->status = -EINVAL;
		return;
	}
	if (tuple_schema(n) == 0)
		net_put_u8(b, (uint8_t)n);
	else
		net_put_u32(b, (uint32_t)n);
	for (i = 0; i < n; i++) {
		if (!net_value_type_valid(params[i].type) && b->status == 0)
			b->status = -EINVAL;
		net_put_u8(b, params[i].type);
	}
	net_put_pad(b);
	for (i = 0; i < n; i++)
		net_put_value(b, &params[i]);
}

static int encode_exec(struct net_buf *b, uint8_t type, uint32_t db_id,
		       uint32_t stmt_id, const struct net_value *params,
		       size_t n)
{
	size_t start = net_msg_begin(b, type, tuple_schema(n));

	net_put_u32(b, db_id);
	net_put_u32(b, stmt_id);
	put_tuple(b, params, n);
	return net_msg_end(b, start);
}

int net_encode_exec(struct net_buf *b, uint32_t db_id, uint32_t stmt_id,
		    const struct net_value *params, size_t n)
{
	return encode_exec(b, NET_REQ_EXEC, db_id, stmt_id, params, n);
}

int net_encode_query(struct net_buf *b, uint32_t db_id, uint32_t stmt_id,
		     const struct net_value *params, size_t n)
{
	return encode_exec(b, NET_REQ_QUERY, db_id, stmt_id, params, n);
}

int net_encode_finalize(struct net_buf *b, uint32_t db_id, uint32_t stmt_id)
{
	size_t start = net_msg_begin(b, NET_REQ_FINALIZE, 0);

	net_put_u32(b, db_id);
	net_put_u32(b, stmt_id);
	return net_msg_end(b, start);
}

static int encode_exec_sql(struct net_buf *b, uint8_t type, uint64_t db_id,
			   const char *sql, const struct net_value *params,
			   size_t n)
{
	size_t start = net_msg_begin(b, type, tuple_schema(n));

	net_put_u64(b, db_id);
	net_put_text(b, sql);
	put_tuple(b, params, n);
	return net_msg_end(b, start);
}

int net_encode_exec_sql(struct net_buf *b, uint64_t db_id, const char *sql,
			const struct net_value *params, size_t n)
{
	return encode_exec_sql(b, NET_REQ_EXEC_SQL, db_id, sql, params, n);
}

int net_encode_query_sql(struct net_buf *b, uint64_t db_id, const char *sql,
			 const struct net_value *params, size_t n)
{
	return encode_exec_sql(b, NET_REQ_QUERY_SQL, db_id, sql, params, n);
}

static int encode_id_address(struct net_buf *b, uint8_t type, uint64_t id,
			     const char *address)
{
	size_t start = net_msg_begin(b, type, 0);

	net_put_u64(b, id);
	net_put_text(b, address);
	return net_msg_end(b, start);
}

int net_encode_connect(struct net_buf *b, uint64_t id, const char *address)
{
	return encode_id_address(b, NET_REQ_CONNECT, id, address);
}

int net_encode_add(struct net_buf *b, uint64_t id, const char *address)
{
	return encode_id_address(b, NET_REQ_ADD, id, address);
}

int net_encode_assign(struct net_buf *b, uint64_t id, uint64_t role)
{
	size_t start = net_msg_begin(b, NET_REQ_ASSIGN, 0);

	net_put_u64(b, id);
	net_put_u64(b, role);
	return net_msg_end(b, start);
}

int net_encode_dump(struct net_buf *b, const char *name)
{
	size_t start = net_msg_begin(b, NET_REQ_DUMP, 0);

	net_put_text(b, name);
	return net_msg_end(b, start);
}

/* A raw tuple as it came: the message keeps the request's schema byte. */
static int encode_raw_exec(struct net_buf *b, const struct net_request *r)
{
	const struct net_exec *m = &r->u.exec;
	size_t start = net_msg_begin(b, r->type, r->schema);

	net_put_u32(b, m->db_id);
	net_put_u32(b, m->stmt_id);
	net_put_raw(b, m->params.p, m->params.len);
	return net_msg_end(b, start);
}

static int encode_raw_exec_sql(struct net_buf *b, const struct net_request *r)
{
	const struct net_exec_sql *m = &r->u.exec_sql;
	size_t start = net_msg_begin(b, r->type, r->schema);

	net_put_u64(b, m->db_id);
	net_put_text(b, m->sql);
	net_put_raw(b, m->params.p, m->params.len);
	return net_msg_end(b, start);
}

int net_encode_request(struct net_buf *b, const struct net_request *r)
{
	size_t start;

	switch (r->type) {
	case NET_REQ_LEADER:
		return encode_u64_body(b, r->type, r->u.leader.unused);
	case NET_REQ_CLIENT:
		return net_encode_client(b, r->u.client.id);
	case NET_REQ_HEARTBEAT:
		return net_encode_heartbeat(b, r->u.heartbeat.timestamp);
	case NET_REQ_OPEN:
		return net_encode_open(b, r->u.open.name, r->u.open.flags,
				       r->u.open.vfs);
	case NET_REQ_PREPARE:
		start = net_msg_begin(b, r->type, r->schema);
		net_put_u64(b, r->u.prepare.db_id);
		net_put_text(b, r->u.prepare.sql);
		return net_msg_end(b, start);
	case NET_REQ_EXEC:
	case NET_REQ_QUERY:
		return encode_raw_exec(b, r);
	case NET_REQ_FINALIZE:
		return net_encode_finalize(b, r->u.finalize.db_id,
					   r->u.finalize.stmt_id);
	case NET_REQ_EXEC_SQL:
	case NET_REQ_QUERY_SQL:
		return encode_raw_exec_sql(b, r);
	case NET_REQ_INTERRUPT:
		return net_encode_interrupt(b, r->u.interrupt.db_id);
	case NET_REQ_CONNECT:
		return net_encode_connect(b, r->u.connect.id,
					  r->u.connect.address);
	case NET_REQ_ADD:
		return net_encode_add(b, r->u.add.id, r->u.add.address);
	case NET_REQ_ASSIGN:
		if (r->u.assign.has_role)
			return net_encode_assign(b, r->u.assign.id,
						 r->u.assign.role);
		return encode_u64_body(b, r->type, r->u.assign.id);
	case NET_REQ_REMOVE:
		return net_encode_remove(b, r->u.remove.id);
	case NET_REQ_DUMP:
		return net_encode_dump(b, r->u.dump.name);
	case NET_REQ_CLUSTER:
		return net_encode_cluster(b, r->u.cluster.format);
	case NET_REQ_TRANSFER:
		return net_encode_transfer(b, r->u.transfer.id);
	case NET_REQ_DESCRIBE:
		return net_encode_describe(b, r->u.describe.format);
	case NET_REQ_WEIGHT:
		return net_encode_weight(b, r->u.weight.weight);
	default:
		return -EINVAL;
	}
}
