/* The wire-protocol server: one listener on the node's address, on the
 * engine's loop thread.
 *
 * A connection first sends the version word, then requests.  Reads are
 * exact-sized (the version word, a header, a body), so that when the
 * first request is a raft CONNECT no byte of what follows has been taken:
 * the stream then goes to raft whole (§10).  Requests about the cluster
 * (LEADER, CLIENT, HEARTBEAT, CLUSTER, DESCRIBE, WEIGHT, membership) are
 * answered here, on the loop.  SQL requests go to the connection's
 * session in the SQL worker process (link.h says why a process, worker.c
 * runs it), whose thread runs SQLite through the mount; its responses
 * come back over the link and are written here, each acknowledged to the
 * worker once written (flow control for streamed results).  The loop
 * never waits for the worker.  Closing a connection tells the worker to
 * free its session; stopping ends the link, and the worker frees every
 * session (with the mount still served) and exits.
 *
 * Malformed framing, an oversized message or a bad version closes the
 * connection; a malformed body gets FAILURE. */
#include <errno.h>
#include <pthread.h>
#include <raft.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "forward.h"
#include "server.h"
#include "transport.h"

enum { READ_VERSION, READ_HEADER, READ_BODY };

/* ---- writing ---- */

struct write_req {
	uv_write_t w;
	struct net_server *srv;
	uint64_t ack_serial; /* a session's output: ACK it to the worker */
	uint8_t *bytes;
	size_t len;
};

static void written_cb(uv_write_t *w, int status)
{
	struct write_req *r = QF_CONTAINER_OF(w, struct write_req, w);

	if (r->ack_serial != 0 && status == 0)
		net__send_ack(r->srv, r->ack_serial, r->len);
	free(r->bytes);
	free(r);
}

/* Loop thread: write @bytes (taken) to @stream; @ack_serial non-zero for
 * a session's output, acknowledged to the worker once written. */
void net__stream_write(struct net_server *s, uv_stream_t *stream,
			 uint8_t *bytes, size_t len, uint64_t ack_serial)
{
	struct write_req *r = calloc(1, sizeof *r);
	uv_buf_t buf = uv_buf_init((char *)bytes, (unsigned)len);

	if (r == NULL) {
		free(bytes);
		return;
	}
	r->srv = s;
	r->ack_serial = ack_serial;
	r->bytes = bytes;
	r->len = len;
	if (uv_write(&r->w, stream, &buf, 1, written_cb) != 0) {
		r->ack_serial = 0;
		written_cb(&r->w, -1);
	}
}

void net__conn_write(struct conn *c, uint8_t *bytes, size_t len,
		       uint64_t ack_serial)
{
	if (c->closing) {
		free(bytes);
		return;
	}
	net__stream_write(c->srv, (uv_stream_t *)c->tcp, bytes, len, ack_serial);
}

/* Loop thread: send the message encoded in @b (taken). */
void net__reply(struct conn *c, struct net_buf *b)
{
	net__conn_write(c, b->data, b->len, 0);
	b->data = NULL;
	net_buf_close(b);
}

void net__reply_failure(struct conn *c, uint64_t code, const char *msg)
{
	struct net_buf b;

	net_buf_init(&b, 1 << 16);
	if (net_encode_failure(&b, code, msg) == 0)
		net__reply(c, &b);
	else
		net_buf_close(&b);
}

struct conn *net__find_conn(struct net_server *s, uint64_t serial)
{
	struct conn *c;

	for (c = s->conns; c != NULL; c = c->next)
		if (c->serial == serial)
			return c;
	return NULL;
}

static void conn_free(struct conn *c);
static void unlink_conn(struct conn *c);

/* A follower's client that did not look for the leader (go-dqlite's
 * clients do, and talk to it directly): its connection is forwarded to
 * the leader whole, from the first SQL request on (but a DUMP).  True once @c is
 * gone (forwarded). */
static bool forward_to_leader(struct conn *c)
{
	struct net_server *s = c->srv;
	char leader[256];
	struct net_buf b;
	uint8_t *prefix;
	uint64_t id;
	size_t len;

	/* DUMP reads this node's own files (quorafs verify relies on it). */
	if (c->has_session || c->h.type == NET_REQ_DUMP ||
	    eng_is_leader(s->engine))
		return false;
	eng_leader(s->engine, &id, leader, sizeof leader);
	if (id == 0 || id == eng_id(s->engine) || leader[0] == '\0')
		return false; /* no leader known: the session says so */
	len = 8 + 8 + c->need;
	prefix = malloc(len);
	if (prefix == NULL)
		return false;
	net_buf_init(&b, 64);
	if (net_encode_handshake(&b, c->version) != 0 || b.len != 8) {
		net_buf_close(&b);
		free(prefix);
		return false;
	}
	memcpy(prefix, b.data, 8);
	net_buf_close(&b);
	memcpy(prefix + 8, c->word, 8); /* the request's header */
	memcpy(prefix + 16, c->body, c->need);
	if (net__forward(eng_loop(s->engine), c->tcp, leader, prefix, len)) {
		free(prefix);
		return false;
	}
	QF_LOG(QF_DEBUG, "forwarding a client connection to the leader %s",
	       leader);
	unlink_conn(c);
	c->closing = true;
	conn_free(c); /* the stream belongs to the forwarder now */
	return true;
}

/* Loop thread: hand one SQL request of @c to the worker.  1 when @c is
 * gone (forwarded to the leader), else 0. */
static int submit_sql(struct conn *c)
{
	struct net_server *s = c->srv;
	struct net_link_hdr h = {.len = (uint32_t)c->need,
				 .kind = NET_LINK_SUBMIT,
				 .type = c->h.type,
				 .schema = c->h.schema,
				 .serial = c->serial};
	struct net_link_hdr i = {.kind = NET_LINK_INTERRUPT,
				 .serial = c->serial};

	if (!s->open) {
		net__reply_failure(c, 5, "the node is starting: its mount is not "
			      "up yet");
		return 0;
	}
	if (forward_to_leader(c))
		return 1;
	if (s->worker == NULL && !net__worker_may_spawn(s)) {
		/* The last worker started less than a second ago: the request
		 * waits for the next one, reading nothing more meanwhile. */
		c->parked = true;
		s->n_parked++;
		uv_read_stop((uv_stream_t *)c->tcp);
		net__worker_respawn_soon(s);
		return 0;
	}
	if (s->worker == NULL && net__worker_spawn(s) != 0) {
		net__reply_failure(c, 10, "cannot start a session");
		return 0;
	}
	if (eng_is_leader(s->engine))
		h.flags |= NET_LINK_LEADER;
	/* An INTERRUPT stops what runs before it, so it overtakes. */
	if ((c->h.type == NET_REQ_INTERRUPT && net__worker_send(s, &i, NULL) != 0) ||
	    net__worker_send(s, &h, c->body) != 0) {
		net__reply_failure(c, 10, "cannot queue the request");
		return 0;
	}
	c->has_session = true;
	return 0;
}

/* ---- connection lifecycle ---- */

static void unlink_conn(struct conn *c)
{
	struct conn **pp;

	for (pp = &c->srv->conns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			c->srv->n_conns--;
			break;
		}
	if (c->parked) {
		c->parked = false;
		c->srv->n_parked--;
	}
}

static void conn_free(struct conn *c)
{
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

/* Loop thread: drop @c; the worker frees its session. */
void net__conn_close(struct conn *c)
{
	struct net_link_hdr h = {.kind = NET_LINK_CLOSE, .serial = c->serial};

	if (c->closing)
		return;
	c->closing = true;
	unlink_conn(c);
	if (c->has_session)
		(void)net__worker_send(c->srv, &h, NULL); /* none: nothing to free */
	uv_close((uv_handle_t *)c->tcp, tcp_closed_cb);
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
		net__reply(c, &b);
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
		net__reply(c, &b);
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
		net__reply(c, &b);
	else
		net_buf_close(&b);
}

/* quorafs's DATABASES: this node's engine state of every database. */
static void handle_databases(struct conn *c)
{
	struct eng_db_state *st = NULL;
	struct net_db_info *info = NULL;
	struct net_buf b;
	uint64_t applied;
	size_t n, i;
	bool idle;

	n = eng_databases(c->srv->engine, NULL, 0, &applied, &idle);
	st = calloc(n + 1, sizeof *st);
	info = calloc(n + 1, sizeof *info);
	if (st == NULL || info == NULL) {
		free(st);
		free(info);
		net__reply_failure(c, 10, "out of memory");
		return;
	}
	n = eng_databases(c->srv->engine, st, n, &applied, &idle);
	for (i = 0; i < n; i++) {
		info[i].name = st[i].name;
		info[i].applied = st[i].applied;
		info[i].seq = st[i].seq;
		info[i].cksum = st[i].cksum;
		info[i].pages = st[i].pages;
		info[i].page_size = st[i].page_size;
		info[i].diverged = st[i].diverged;
	}
	net_buf_init(&b, c->srv->cfg.max_msg);
	if (net_encode_databases(&b, applied, idle, info, n) == 0)
		net__reply(c, &b);
	else
		net_buf_close(&b);
	free(st);
	free(info);
}

/* A membership request waiting for raft: it names its connection by
 * serial number, since the connection may close meanwhile. */
struct change_wait {
	struct net_server *srv;
	uint64_t serial;
};


static void change_done(void *arg, int status, const char *message)
{
	struct change_wait *w = arg;
	struct conn *c = net__find_conn(w->srv, w->serial);
	struct net_buf b;

	free(w);
	if (c == NULL)
		return;
	if (status != 0) {
		/* SQLITE_BUSY for a change already pending, as 1.11 does. */
		net__reply_failure(c, status == QF_ENOTLEADER ? 10250 : 1, message);
		return;
	}
	net_buf_init(&b, 1 << 16);
	if (net_encode_empty(&b) == 0)
		net__reply(c, &b);
	else
		net_buf_close(&b);
}

static void handle_membership(struct conn *c, const struct net_request *r)
{
	struct change_wait *w;

	if (!eng_is_leader(c->srv->engine)) {
		net__reply_failure(c, 10250, "not leader");
		return;
	}
	if (r->type == NET_REQ_ASSIGN && r->u.assign.role > NET_ROLE_SPARE) {
		net__reply_failure(c, 1, "bad role");
		return;
	}
	w = calloc(1, sizeof *w);
	if (w == NULL) {
		net__reply_failure(c, 10, "out of memory");
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
	if (c->h.type == NET_QF_REQ_DATABASES) {
		handle_databases(c);
		return 0;
	}
	if (c->h.type == NET_QF_REQ_IMAGE) {
		net__handle_image(c, &msg.body);
		return 0;
	}
	rv = net_decode_request(&msg, &r);
	if (rv == -ENOSYS) {
		net__reply_failure(c, 1, "unknown request type");
		return 0;
	}
	if (rv != 0) {
		net__reply_failure(c, rv == -EPROTONOSUPPORT ? 1 : 1005,
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
	return submit_sql(c);
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
		net__conn_close(c);
		return;
	}
	rv = advance(c, (size_t)n);
	if (rv < 0) {
		if (rv != UV_EOF)
			QF_LOG(QF_DEBUG, "closing a client connection: %s",
			       qf_strerror(rv));
		net__conn_close(c);
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
	c->next = s->conns;
	s->conns = c;
	s->n_conns++;
	if (uv_accept(listener, (uv_stream_t *)c->tcp) != 0 ||
	    s->n_conns > s->cfg.max_conns) {
		if (s->n_conns > s->cfg.max_conns)
			QF_LOG(QF_WARN, "refusing a connection: %u open "
			       "(--max-conns)", s->cfg.max_conns);
		net__conn_close(c);
		return;
	}
	uv_tcp_nodelay(c->tcp, 1);
	if (uv_read_start((uv_stream_t *)c->tcp, alloc_cb, read_cb) != 0)
		net__conn_close(c);
}

void net__resume_parked(struct net_server *s)
{
	struct conn *c, *next;

	for (c = s->conns; c != NULL && s->n_parked > 0; c = next) {
		next = c->next;
		if (!c->parked)
			continue;
		c->parked = false;
		s->n_parked--;
		if (uv_read_start((uv_stream_t *)c->tcp, alloc_cb, read_cb) != 0) {
			net__conn_close(c);
			continue;
		}
		(void)submit_sql(c); /* may forward it: @c gone */
	}
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

/* Every handle of the server counts in handles_open; once stopping,
 * the last one closed ends the stop. */
void net__handle_closed(struct net_server *s)
{
	if (--s->handles_open == 0 && s->stopping)
		signal_done(s, 0);
}

static void handle_closed_cb(uv_handle_t *h)
{
	net__handle_closed(h->data);
}

static void start_on_loop(void *arg)
{
	struct net_server *s = arg;
	uv_loop_t *loop = eng_loop(s->engine);
	struct sockaddr_storage sa;
	int rv;

	rv = uv_timer_init(loop, &s->kill_timer);
	if (rv == 0) {
		s->handles_open++;
		s->kill_timer.data = s;
		rv = net__parse_address(s->address, &sa);
	}
	if (rv == 0)
		rv = uv_tcp_init(loop, &s->listener);
	if (rv == 0) {
		s->handles_open++;
		s->listener.data = s;
		rv = uv_tcp_bind(&s->listener, (struct sockaddr *)&sa, 0);
		if (rv == 0)
			rv = uv_listen((uv_stream_t *)&s->listener, 128,
				       accept_cb);
		if (rv != 0)
			QF_LOG(QF_ERROR, "listening on %s: %s", s->address,
			       uv_strerror(rv));
	}
	/* Started now, while the daemon is young, so that a broken install
	 * fails at once rather than at the first client. */
	if (rv == 0)
		rv = net__worker_spawn(s);
	signal_done(s, rv);
}

static void kill_worker_cb(uv_timer_t *t)
{
	struct net_server *s = t->data;

	if (s->worker != NULL) {
		QF_LOG(QF_WARN, "the SQL worker did not stop in time: killing it");
		uv_process_kill(&s->worker->proc, SIGKILL);
	}
}

/* The worker is told to stop by the end of its link (after the CLOSEs
 * queued before it), and gets WORKER_STOP_MS to close its databases. */
#define WORKER_STOP_MS 20000

static void shutdown_cb(uv_shutdown_t *req, int status)
{
	(void)req;
	(void)status; /* an error means the worker is gone already */
}

static void stop_on_loop(void *arg)
{
	struct net_server *s = arg;

	s->stopping = true;
	net__resync_cancel_all(s); /* a fetch in the threadpool ends now */
	while (s->conns != NULL)
		net__conn_close(s->conns);
	if (s->handles_open == 0) {
		signal_done(s, 0);
		return;
	}
	if (uv_is_active((uv_handle_t *)&s->listener) ||
	    !uv_is_closing((uv_handle_t *)&s->listener))
		uv_close((uv_handle_t *)&s->listener, handle_closed_cb);
	if (s->worker != NULL && !s->worker->lost) {
		if (uv_shutdown(&s->worker->shutdown,
				(uv_stream_t *)&s->worker->pipe,
				shutdown_cb) != 0)
			uv_process_kill(&s->worker->proc, SIGKILL);
		(void)uv_timer_start(&s->kill_timer, kill_worker_cb,
				     WORKER_STOP_MS, 0);
	}
	uv_close((uv_handle_t *)&s->kill_timer, handle_closed_cb);
}

static void open_on_loop(void *arg)
{
	struct net_server *s = arg;

	s->open = true;
}

int net_server_open(struct net_server *s)
{
	return eng_call(s->engine, open_on_loop, s);
}

static void server_free(struct net_server *s)
{
	struct applying *a;

	while ((a = s->applying) != NULL) {
		s->applying = a->next;
		free(a->entry);
		free(a->db);
		free(a);
	}
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
	s->open = !c->start_closed;
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
	/* Queued before the stop (eng_call runs in order): the engine then
	 * never calls into the server after it is freed. */
	(void)eng_set_applier(s->engine, NULL, NULL);
	(void)eng_set_resync(s->engine, NULL, NULL);
	if (eng_call(s->engine, stop_on_loop, s) == 0)
		(void)wait_done(s);
	server_free(s);
}
