/* The wire-protocol server: one listener on the node's address, on the
 * engine's loop thread.
 *
 * A connection first sends the version word, then requests.  Reads are
 * exact-sized (the version word, a header, a body), so that when the
 * first request is a raft CONNECT no byte of what follows has been taken:
 * the stream then goes to raft whole (§10).  Requests about the cluster
 * (LEADER, CLIENT, HEARTBEAT, CLUSTER, DESCRIBE, WEIGHT, membership) are
 * answered here, on the loop.  SQL requests go to the connection's
 * session (session.h), whose thread runs SQLite through the mount; it
 * hands encoded responses back through out_cb, which queues them for the
 * loop to write and blocks while too much is unsent (flow control for
 * streamed results).  The loop never waits for a session: a connection's
 * session is freed on a thread of its own.
 *
 * Malformed framing, an oversized message or a bad version closes the
 * connection; a malformed body gets FAILURE. */
#include <errno.h>
#include <pthread.h>
#include <raft.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "codec.h"
#include "net.h"
#include "session.h"
#include "transport.h"

#define OUT_LIMIT (256u << 10) /* unsent bytes before a session waits */

enum { READ_VERSION, READ_HEADER, READ_BODY };

struct out {
	uint8_t *bytes;
	size_t len;
	struct out *next;
};

struct conn {
	struct net_server *srv;
	uv_tcp_t *tcp; /* raft_malloc'd: raft may take it over */
	int state;
	uint8_t word[8];
	size_t got;
	struct net_header h;
	uint8_t *body;
	size_t need;
	uint64_t version;
	bool first; /* no request read yet: CONNECT is still possible */
	uint64_t serial; /* names the connection to late callbacks */
	bool closing;
	struct net_session *session;
	/* Output from the session thread, under @mu. */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct out *out_head, *out_tail;
	size_t unsent;
	bool gone; /* no more output is accepted */
	bool close_requested; /* by the session: close at the next flush */
	struct conn *next;
};

struct net_server {
	struct eng *engine;
	struct raft_uv_transport *transport;
	struct net_server_config cfg;
	char *address, *mount;
	uv_tcp_t listener;
	uv_async_t flush; /* sessions queued output */
	uint64_t next_serial;
	struct conn *conns;
	unsigned n_conns;
	/* Start/stop handshake with the main thread. */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool done;
	int status;
	int handles_open;
};

static void conn_close(struct conn *c);

/* ---- writing ---- */

struct write_req {
	uv_write_t w;
	struct conn *c; /* NULL for loop-side writes */
	uint8_t *bytes;
	size_t len;
};

static void written_cb(uv_write_t *w, int status)
{
	struct write_req *r = QF_CONTAINER_OF(w, struct write_req, w);

	(void)status;
	if (r->c != NULL) {
		pthread_mutex_lock(&r->c->mu);
		r->c->unsent -= r->len;
		pthread_cond_broadcast(&r->c->cond);
		pthread_mutex_unlock(&r->c->mu);
	}
	free(r->bytes);
	free(r);
}

/* Loop thread: write @bytes (taken) to @c; @from_session for accounting. */
static void conn_write(struct conn *c, uint8_t *bytes, size_t len,
		       bool from_session)
{
	struct write_req *r = calloc(1, sizeof *r);
	uv_buf_t buf = uv_buf_init((char *)bytes, (unsigned)len);

	if (r == NULL || c->closing) {
		free(r);
		free(bytes);
		if (from_session) {
			pthread_mutex_lock(&c->mu);
			c->unsent -= len;
			pthread_cond_broadcast(&c->cond);
			pthread_mutex_unlock(&c->mu);
		}
		return;
	}
	r->c = from_session ? c : NULL;
	r->bytes = bytes;
	r->len = len;
	if (uv_write(&r->w, (uv_stream_t *)c->tcp, &buf, 1, written_cb) != 0)
		written_cb(&r->w, -1);
}

/* Loop thread: send the message encoded in @b (taken). */
static void reply(struct conn *c, struct net_buf *b)
{
	conn_write(c, b->data, b->len, false);
	b->data = NULL;
	net_buf_close(b);
}

static void reply_failure(struct conn *c, uint64_t code, const char *msg)
{
	struct net_buf b;

	net_buf_init(&b, 1 << 16);
	if (net_encode_failure(&b, code, msg) == 0)
		reply(c, &b);
	else
		net_buf_close(&b);
}

/* Session thread: queue output for the loop; wait while too much is
 * unsent.  Non-zero once the connection is gone. */
static int session_out(void *arg, uint8_t *bytes, size_t len)
{
	struct conn *c = arg;
	struct out *o = malloc(sizeof *o);

	pthread_mutex_lock(&c->mu);
	if (c->gone || o == NULL || bytes == NULL) {
		/* bytes == NULL: the session cannot answer (out of memory);
		 * the client must not wait forever, so close. */
		if (bytes == NULL || o == NULL)
			c->close_requested = true;
		pthread_mutex_unlock(&c->mu);
		free(o);
		free(bytes);
		uv_async_send(&c->srv->flush);
		return -1;
	}
	o->bytes = bytes;
	o->len = len;
	o->next = NULL;
	if (c->out_tail)
		c->out_tail->next = o;
	else
		c->out_head = o;
	c->out_tail = o;
	c->unsent += len;
	pthread_mutex_unlock(&c->mu);
	uv_async_send(&c->srv->flush);
	pthread_mutex_lock(&c->mu);
	while (c->unsent > OUT_LIMIT && !c->gone)
		pthread_cond_wait(&c->cond, &c->mu);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

/* Loop thread: write what sessions queued. */
static void flush_cb(uv_async_t *h)
{
	struct net_server *s = h->data;
	struct conn *c;
	struct out *o, *next;

	struct conn *next_conn;
	bool close_it;

	for (c = s->conns; c != NULL; c = next_conn) {
		next_conn = c->next;
		pthread_mutex_lock(&c->mu);
		o = c->out_head;
		c->out_head = c->out_tail = NULL;
		close_it = c->close_requested;
		pthread_mutex_unlock(&c->mu);
		for (; o != NULL; o = next) {
			next = o->next;
			conn_write(c, o->bytes, o->len, true);
			free(o);
		}
		if (close_it)
			conn_close(c);
	}
}

/* ---- connection lifecycle ---- */

static int session_is_leader(void *arg)
{
	struct conn *c = arg;

	return eng_is_leader(c->srv->engine) ? 1 : 0;
}

/* Session frees in flight: net_server_stop waits for them, because a
 * session closing its SQLite connection still needs the mount served. */
static pthread_mutex_t frees_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t frees_cond = PTHREAD_COND_INITIALIZER;
static unsigned frees_in_flight;

static void *free_session_main(void *arg)
{
	net_session_free(arg);
	pthread_mutex_lock(&frees_mu);
	frees_in_flight--;
	pthread_cond_broadcast(&frees_cond);
	pthread_mutex_unlock(&frees_mu);
	return NULL;
}

/* Free a session without the loop waiting for its thread: it may be
 * inside SQLite, waiting on a commit that needs this very loop. */
static void free_session_async(struct net_session *session)
{
	pthread_t th;
	pthread_attr_t attr;

	pthread_mutex_lock(&frees_mu);
	frees_in_flight++;
	pthread_mutex_unlock(&frees_mu);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, free_session_main, session) != 0)
		free_session_main(session); /* last resort */
	pthread_attr_destroy(&attr);
}

static void unlink_conn(struct conn *c)
{
	struct conn **pp;

	for (pp = &c->srv->conns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			c->srv->n_conns--;
			return;
		}
}

static void conn_free(struct conn *c)
{
	struct out *o, *next;

	for (o = c->out_head; o != NULL; o = next) {
		next = o->next;
		free(o->bytes);
		free(o);
	}
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cond);
	free(c->body);
	free(c);
}

static void tcp_closed_cb(uv_handle_t *h)
{
	struct conn *c = h->data;

	raft_free(h);
	if (c != NULL)
		conn_free(c);
}

/* Loop thread: drop @c.  Its session is told to stop and freed aside. */
static void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	unlink_conn(c);
	pthread_mutex_lock(&c->mu);
	c->gone = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->mu);
	if (c->session != NULL) {
		net_session_interrupt(c->session);
		free_session_async(c->session);
		c->session = NULL;
	}
	uv_close((uv_handle_t *)c->tcp, tcp_closed_cb);
}

static int ensure_session(struct conn *c)
{
	struct net_session_config sc;

	if (c->session != NULL)
		return 0;
	memset(&sc, 0, sizeof sc);
	sc.mount = c->srv->mount;
	sc.busy_timeout_ms = c->srv->cfg.busy_timeout_ms;
	sc.batch_bytes = 4096;
	sc.max_msg = c->srv->cfg.max_msg;
	sc.max_stmts = 1024;
	sc.is_leader = session_is_leader;
	sc.out = session_out;
	sc.arg = c;
	return net_session_new(&c->session, &sc);
}

/* ---- requests answered on the loop ---- */

static void handle_leader(struct conn *c)
{
	struct net_buf b;
	char address[256];
	uint64_t id;

	eng_leader(c->srv->engine, &id, address, sizeof address);
	net_buf_init(&b, 1 << 16);
	if ((c->version == NET_PROTO_LEGACY
		     ? net_encode_server_legacy(&b, address)
		     : net_encode_server(&b, id, address)) == 0)
		reply(c, &b);
	else
		net_buf_close(&b);
}

static void handle_servers(struct conn *c, uint64_t format)
{
	struct eng_member members[64];
	struct net_node nodes[64];
	struct net_buf b;
	unsigned n, i;

	n = eng_members(c->srv->engine, members, 64);
	if (n > 64)
		n = 64;
	for (i = 0; i < n; i++) {
		nodes[i].id = members[i].id;
		nodes[i].address = members[i].address;
		nodes[i].role = (uint64_t)members[i].role; /* same numbering */
	}
	net_buf_init(&b, 1 << 20);
	if (net_encode_servers(&b, nodes, n, format) == 0)
		reply(c, &b);
	else
		net_buf_close(&b);
}

static void handle_simple(struct conn *c, int type)
{
	struct net_buf b;
	int rv;

	net_buf_init(&b, 1 << 16);
	switch (type) {
	case NET_REQ_CLIENT:
		rv = net_encode_welcome(&b, NET_HEARTBEAT_TIMEOUT_MS);
		break;
	case NET_REQ_DESCRIBE:
		rv = net_encode_metadata(&b, 0, 0);
		break;
	default: /* WEIGHT */
		rv = net_encode_empty(&b);
		break;
	}
	if (rv == 0)
		reply(c, &b);
	else
		net_buf_close(&b);
}

/* A membership request waiting for raft: it names its connection by
 * serial number, since the connection may close meanwhile. */
struct change_wait {
	struct net_server *srv;
	uint64_t serial;
};

static struct conn *find_conn(struct net_server *s, uint64_t serial)
{
	struct conn *c;

	for (c = s->conns; c != NULL; c = c->next)
		if (c->serial == serial)
			return c;
	return NULL;
}

static void change_done(void *arg, int status, const char *message)
{
	struct change_wait *w = arg;
	struct conn *c = find_conn(w->srv, w->serial);
	struct net_buf b;

	free(w);
	if (c == NULL)
		return;
	if (status != 0) {
		/* SQLITE_BUSY for a change already pending, as 1.11 does. */
		reply_failure(c, status == QF_ENOTLEADER ? 10250 : 1, message);
		return;
	}
	net_buf_init(&b, 1 << 16);
	if (net_encode_empty(&b) == 0)
		reply(c, &b);
	else
		net_buf_close(&b);
}

static void handle_membership(struct conn *c, const struct net_request *r)
{
	struct change_wait *w;

	if (!eng_is_leader(c->srv->engine)) {
		reply_failure(c, 10250, "not leader");
		return;
	}
	if (r->type == NET_REQ_ASSIGN && r->u.assign.role > NET_ROLE_SPARE) {
		reply_failure(c, 1, "bad role");
		return;
	}
	w = calloc(1, sizeof *w);
	if (w == NULL) {
		reply_failure(c, 10, "out of memory");
		return;
	}
	w->srv = c->srv;
	w->serial = c->serial;
	switch (r->type) {
	case NET_REQ_ADD:
		eng_change(c->srv->engine, ENG_ADD, r->u.add.id,
			   r->u.add.address, 0, change_done, w);
		break;
	case NET_REQ_ASSIGN:
		eng_change(c->srv->engine, ENG_ASSIGN, r->u.assign.id, NULL,
			   (int)r->u.assign.role, change_done, w);
		break;
	case NET_REQ_REMOVE:
		eng_change(c->srv->engine, ENG_REMOVE, r->u.remove.id, NULL, 0,
			   change_done, w);
		break;
	default:
		eng_change(c->srv->engine, ENG_TRANSFER, r->u.transfer.id, NULL,
			   0, change_done, w);
		break;
	}
}

/* @c's first request is CONNECT: the stream now belongs to raft. */
static void handle_connect(struct conn *c, const struct net_request *r)
{
	uv_tcp_t *tcp = c->tcp;

	uv_read_stop((uv_stream_t *)tcp);
	unlink_conn(c);
	c->closing = true;
	tcp->data = NULL; /* raft owns the handle; free the conn here */
	net__transport_accept(c->srv->transport, r->u.connect.id,
			      r->u.connect.address, tcp);
	conn_free(c);
}

/* Loop thread: one complete request in c->h / c->body. */
static int dispatch(struct conn *c)
{
	struct net_msg msg = {.h = c->h,
			      .body = {.p = c->body, .len = c->need}};
	struct net_request r;
	bool first = c->first;
	int rv;

	c->first = false;
	rv = net_decode_request(&msg, &r);
	if (rv == -ENOSYS) {
		reply_failure(c, 1, "unknown request type");
		return 0;
	}
	if (rv != 0) {
		reply_failure(c, rv == -EPROTONOSUPPORT ? 1 : 1005,
			      "malformed request");
		return 0;
	}
	switch (r.type) {
	case NET_REQ_LEADER:
		handle_leader(c);
		return 0;
	case NET_REQ_CLIENT:
	case NET_REQ_DESCRIBE:
	case NET_REQ_WEIGHT:
		handle_simple(c, r.type);
		return 0;
	case NET_REQ_HEARTBEAT:
		handle_servers(c, 0);
		return 0;
	case NET_REQ_CLUSTER:
		handle_servers(c, r.u.cluster.format);
		return 0;
	case NET_REQ_CONNECT:
		if (!first)
			return -EPROTO; /* only as a connection's first request */
		handle_connect(c, &r);
		return 1; /* @c is gone */
	case NET_REQ_ADD:
	case NET_REQ_ASSIGN:
	case NET_REQ_REMOVE:
	case NET_REQ_TRANSFER:
		handle_membership(c, &r);
		return 0;
	default:
		break;
	}
	/* SQL: OPEN, PREPARE, EXEC, QUERY, FINALIZE, EXEC_SQL, QUERY_SQL,
	 * INTERRUPT, DUMP run in order on the connection's session. */
	rv = ensure_session(c);
	if (rv != 0) {
		reply_failure(c, 10, "cannot start a session");
		return 0;
	}
	if (r.type == NET_REQ_INTERRUPT)
		net_session_interrupt(c->session);
	rv = net_session_submit(c->session, c->h.type, c->h.schema, c->body,
				c->need);
	if (rv != 0)
		reply_failure(c, 10, "cannot queue the request");
	return 0;
}

/* ---- reading: exact-sized, so nothing past a CONNECT is consumed ---- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;

	(void)suggested;
	if (c->state == READ_BODY)
		*buf = uv_buf_init((char *)c->body + c->got,
				   (unsigned)(c->need - c->got));
	else
		*buf = uv_buf_init((char *)c->word + c->got,
				   (unsigned)(8 - c->got));
}

/* Advance after @n bytes landed.  0 to go on, 1 if @c is gone, <0 to
 * close the connection. */
static int advance(struct conn *c, size_t n)
{
	int rv;

	c->got += n;
	switch (c->state) {
	case READ_VERSION:
		if (c->got < 8)
			return 0;
		if (net_handshake_decode(c->word, &c->version) != 0)
			return -EPROTONOSUPPORT;
		c->state = READ_HEADER;
		c->got = 0;
		return 0;
	case READ_HEADER:
		if (c->got < 8)
			return 0;
		rv = net_header_decode(c->word, &c->h);
		if (rv != 0)
			return rv;
		c->need = (size_t)c->h.words * 8;
		if (c->need + 8 > c->srv->cfg.max_msg)
			return -EMSGSIZE;
		free(c->body);
		c->body = malloc(c->need);
		if (c->body == NULL)
			return -ENOMEM;
		c->state = READ_BODY;
		c->got = 0;
		return 0;
	default:
		if (c->got < c->need)
			return 0;
		c->state = READ_HEADER;
		c->got = 0;
		return dispatch(c);
	}
}

static void read_cb(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf)
{
	struct conn *c = stream->data;
	int rv;

	(void)buf;
	if (n == 0)
		return;
	if (n < 0) {
		conn_close(c);
		return;
	}
	rv = advance(c, (size_t)n);
	if (rv < 0) {
		if (rv != UV_EOF)
			QF_LOG(QF_DEBUG, "closing a client connection: %s",
			       qf_strerror(rv));
		conn_close(c);
	}
}

static void accept_cb(uv_stream_t *listener, int status)
{
	struct net_server *s = listener->data;
	struct conn *c;

	if (status != 0)
		return;
	c = calloc(1, sizeof *c);
	if (c != NULL)
		c->tcp = raft_malloc(sizeof *c->tcp);
	if (c == NULL || c->tcp == NULL || uv_tcp_init(listener->loop, c->tcp) != 0) {
		if (c != NULL)
			raft_free(c->tcp);
		free(c);
		return;
	}
	c->srv = s;
	c->serial = ++s->next_serial;
	c->tcp->data = c;
	c->state = READ_VERSION;
	c->first = true;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->next = s->conns;
	s->conns = c;
	s->n_conns++;
	if (uv_accept(listener, (uv_stream_t *)c->tcp) != 0 ||
	    s->n_conns > s->cfg.max_conns) {
		if (s->n_conns > s->cfg.max_conns)
			QF_LOG(QF_WARN, "refusing a connection: %u open "
			       "(--max-conns)", s->cfg.max_conns);
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(c->tcp, 1);
	if (uv_read_start((uv_stream_t *)c->tcp, alloc_cb, read_cb) != 0)
		conn_close(c);
}

/* ---- start and stop (main thread, through eng_call) ---- */

static void signal_done(struct net_server *s, int status)
{
	pthread_mutex_lock(&s->mu);
	s->done = true;
	s->status = status;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
}

static int wait_done(struct net_server *s)
{
	int rv;

	pthread_mutex_lock(&s->mu);
	while (!s->done)
		pthread_cond_wait(&s->cond, &s->mu);
	s->done = false;
	rv = s->status;
	pthread_mutex_unlock(&s->mu);
	return rv;
}

static int parse_listen(const char *address, struct sockaddr_storage *sa)
{
	char host[256];
	const char *colon = strrchr(address, ':');
	size_t n = colon ? (size_t)(colon - address) : 0;

	if (colon == NULL || n >= sizeof host)
		return -EINVAL;
	memcpy(host, address, n);
	host[n] = '\0';
	if (host[0] == '[' && n > 2) {
		host[n - 1] = '\0';
		return uv_ip6_addr(host + 1, atoi(colon + 1),
				   (struct sockaddr_in6 *)sa);
	}
	return uv_ip4_addr(host, atoi(colon + 1), (struct sockaddr_in *)sa);
}

static void start_on_loop(void *arg)
{
	struct net_server *s = arg;
	uv_loop_t *loop = eng_loop(s->engine);
	struct sockaddr_storage sa;
	int rv;

	rv = parse_listen(s->address, &sa);
	if (rv == 0)
		rv = uv_tcp_init(loop, &s->listener);
	if (rv == 0) {
		s->handles_open++;
		s->listener.data = s;
		rv = uv_tcp_bind(&s->listener, (struct sockaddr *)&sa, 0);
		if (rv == 0)
			rv = uv_listen((uv_stream_t *)&s->listener, 128,
				       accept_cb);
	}
	if (rv == 0 && uv_async_init(loop, &s->flush, flush_cb) == 0) {
		s->handles_open++;
		s->flush.data = s;
	} else if (rv == 0) {
		rv = -ENOMEM;
	}
	if (rv != 0)
		QF_LOG(QF_ERROR, "listening on %s: %s", s->address,
		       uv_strerror(rv));
	signal_done(s, rv);
}

static void handle_closed_cb(uv_handle_t *h)
{
	struct net_server *s = h->data;

	if (--s->handles_open == 0)
		signal_done(s, 0);
}

static void stop_on_loop(void *arg)
{
	struct net_server *s = arg;

	while (s->conns != NULL)
		conn_close(s->conns);
	if (s->handles_open == 0) {
		signal_done(s, 0);
		return;
	}
	if (uv_is_active((uv_handle_t *)&s->listener) ||
	    !uv_is_closing((uv_handle_t *)&s->listener))
		uv_close((uv_handle_t *)&s->listener, handle_closed_cb);
	if (s->handles_open > 1)
		uv_close((uv_handle_t *)&s->flush, handle_closed_cb);
}

static void server_free(struct net_server *s)
{
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cond);
	free(s->address);
	free(s->mount);
	free(s);
}

int net_server_start(struct net_server **out, struct eng *e,
		     struct raft_uv_transport *t,
		     const struct net_server_config *c)
{
	struct net_server *s = calloc(1, sizeof *s);
	int rv;

	if (s == NULL)
		return -ENOMEM;
	s->engine = e;
	s->transport = t;
	s->cfg = *c;
	if (s->cfg.max_conns == 0)
		s->cfg.max_conns = 256;
	if (s->cfg.max_msg == 0)
		s->cfg.max_msg = NET_MAX_MSG_DEFAULT;
	if (s->cfg.busy_timeout_ms == 0)
		s->cfg.busy_timeout_ms = 10000;
	s->address = strdup(c->address);
	s->mount = strdup(c->mount);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cond, NULL);
	if (s->address == NULL || s->mount == NULL) {
		server_free(s);
		return -ENOMEM;
	}
	rv = eng_call(e, start_on_loop, s);
	if (rv == 0)
		rv = wait_done(s);
	if (rv != 0) {
		if (s->handles_open > 0 && eng_call(e, stop_on_loop, s) == 0)
			(void)wait_done(s);
		server_free(s);
		return rv;
	}
	*out = s;
	return 0;
}

void net_server_stop(struct net_server *s)
{
	if (s == NULL)
		return;
	if (eng_call(s->engine, stop_on_loop, s) == 0)
		(void)wait_done(s);
	pthread_mutex_lock(&frees_mu);
	while (frees_in_flight > 0)
		pthread_cond_wait(&frees_cond, &frees_mu);
	pthread_mutex_unlock(&frees_mu);
	server_free(s);
}
