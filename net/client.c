/* The blocking client of the dqlite wire protocol (API and error rules in
 * net.h): connections, leader discovery, requests and their I/O.  Result
 * sets are in client_rows.c, cluster requests in client_admin.c.  Plain POSIX
 * sockets, no event loop: the socket is non-blocking and every wait is a poll()
 * bounded by the current call's deadline.
 *
 * Any thread may use its own clients; a client is used by one thread at a
 * time and holds no global state.
 *
 * Happy path of a request: encode it into c->out with the codec, send it
 * whole, then read responses through the codec's incremental decoder fed
 * from c->rbuf.  A response body may point into c->rbuf or into the
 * decoder: either way it stays valid until the next read, which is never
 * before the caller is done with it (row values are documented to live
 * until the next net_client_rows_next()).
 *
 * Failure modes: the server's FAILURE is NET_EFAILURE and keeps the
 * connection; anything that leaves the stream in an unknown place (a
 * deadline, an I/O error, EOF, a malformed or unexpected response) closes
 * it, so that a later call cannot read a stale response as its own. */
#include "client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_MS 5000	 /* go-dqlite's dial timeout (§12) */
#define ATTEMPT_TIMEOUT_MS 15000 /* go-dqlite's AttemptTimeout (§12) */
#define BACKOFF_FIRST_MS 200	 /* 100 ms x 2^attempt, capped (§8.1) */
#define BACKOFF_MAX_MS 1000
#define VFS_NAME "volatile" /* what go-dqlite sends in OPEN (§4.3) */

/* Our value types and roles are the wire codes (§6.2, §11). */
#define SAME(a, b) ((int)(a) == (int)(b))
_Static_assert(SAME(NET_SQL_INTEGER, NET_INTEGER) &&
		   SAME(NET_SQL_FLOAT, NET_FLOAT) &&
		   SAME(NET_SQL_TEXT, NET_TEXT) &&
		   SAME(NET_SQL_BLOB, NET_BLOB) &&
		   SAME(NET_SQL_NULL, NET_NULL) &&
		   SAME(NET_SQL_UNIXTIME, NET_UNIXTIME) &&
		   SAME(NET_SQL_ISO8601, NET_ISO8601) &&
		   SAME(NET_SQL_BOOLEAN, NET_BOOLEAN),
	       "value type codes");
_Static_assert(SAME(NET_VOTER, NET_ROLE_VOTER) &&
		   SAME(NET_STANDBY, NET_ROLE_STANDBY) &&
		   SAME(NET_SPARE, NET_ROLE_SPARE),
	       "role codes");
#undef SAME

/* ---- errors and time ---- */

int net__cli_error(struct net_client *c, int rv, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
	va_end(ap);
	return rv;
}

static void drop_connection(struct net_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->address);
	c->address = NULL;
	c->legacy = false;
	net_decoder_close(&c->dec);
	net_decoder_init(&c->dec, c->cfg.max_msg, false);
	c->rpos = c->rlen = 0;
	/* A result set still open cannot go on without its connection. */
	if (c->rs.open && !c->rs.over) {
		c->rs.status = -ENOTCONN;
		c->rs.over = true;
	}
	c->rs.more = false;
}

int net__cli_fail(struct net_client *c, int rv, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
	va_end(ap);
	drop_connection(c);
	return rv;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t net__cli_deadline_in(unsigned ms)
{
	return ms == 0 ? 0 : now_ms() + (int64_t)ms;
}

void net__cli_call(struct net_client *c)
{
	c->deadline = net__cli_deadline_in(c->cfg.timeout_ms);
}

/* Milliseconds left before @deadline for poll(): -1 for none. */
static int poll_ms(int64_t deadline)
{
	int64_t left;

	if (deadline == 0)
		return -1;
	left = deadline - now_ms();
	if (left <= 0)
		return 0;
	return left > 1000000 ? 1000000 : (int)left;
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

bool net__cli_cancelled(struct net_client *c, int64_t ms)
{
	struct pollfd p = {.fd = c->cancel_fd, .events = POLLIN};
	int64_t end = now_ms() + ms;
	int n;

	if (c->cancel_fd < 0) {
		if (ms > 0)
			sleep_ms(ms);
		return false;
	}
	for (;;) {
		n = poll(&p, 1, (int)(ms > 0 ? ms : 0));
		if (n > 0)
			return true;
		if (n == 0 || errno != EINTR)
			return false;
		ms = end - now_ms();
	}
}

/* Wait for @events on the socket until @deadline, or until @cancel_fd
 * (-1: none) is readable: 0, -ETIMEDOUT or -ECANCELED. */
static int wait_fd(int fd, short events, int64_t deadline, int cancel_fd)
{
	struct pollfd p[2] = {{.fd = fd, .events = events},
			      {.fd = cancel_fd, .events = POLLIN}};
	int n, ms;

	for (;;) {
		ms = poll_ms(deadline);
		if (ms == 0)
			return -ETIMEDOUT;
		n = poll(p, cancel_fd >= 0 ? 2 : 1, ms);
		if (n > 0 && cancel_fd >= 0 && p[1].revents != 0)
			return -ECANCELED;
		if (n > 0)
			return 0; /* ready, or an error the next call reports */
		if (n == 0)
			continue; /* poll_ms() decides whether time is up */
		if (errno != EINTR)
			return -errno;
	}
}

/* ---- addresses and connecting ---- */

/* Split "host:port" or "[v6]:port" into @host (NUL-terminated). */
static int split_address(const char *address, char *host, size_t cap,
			 const char **port)
{
	const char *colon, *h = address, *end;

	if (address[0] == '[') {
		end = strchr(address, ']');
		if (end == NULL || end[1] != ':')
			return -EINVAL;
		h = address + 1;
		colon = end + 1;
	} else {
		colon = strrchr(address, ':');
		if (colon == NULL ||
		    memchr(address, ':', (size_t)(colon - address)) != NULL)
			return -EINVAL; /* no port, or IPv6 without brackets */
		end = colon;
	}
	if (end == h || (size_t)(end - h) >= cap || colon[1] == '\0')
		return -EINVAL;
	memcpy(host, h, (size_t)(end - h));
	host[end - h] = '\0';
	*port = colon + 1;
	return 0;
}

/* One TCP connect to @ai until @deadline: the socket, or -errno. */
static int connect_one(const struct addrinfo *ai, int64_t deadline,
		       int cancel_fd)
{
	int fd, rv, err = 0, one = 1;
	socklen_t len = sizeof err;

	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		if (errno != EINPROGRESS) {
			rv = -errno;
			goto err_after_socket;
		}
		rv = wait_fd(fd, POLLOUT, deadline, cancel_fd);
		if (rv != 0)
			goto err_after_socket;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
			rv = -errno;
			goto err_after_socket;
		}
		if (err != 0) {
			rv = -err;
			goto err_after_socket;
		}
	}
	/* Requests are small and answered one at a time (§1.4). */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;

err_after_socket:
	close(fd);
	return rv;
}

/* Connect to @address; on 0 the client holds the new connection. */
static int dial(struct net_client *c, const char *address)
{
	struct addrinfo hints, *res, *ai;
	char host[256];
	const char *port;
	int64_t deadline = net__cli_deadline_in(c->cfg.connect_timeout_ms);
	int rv, fd = -ENOENT;

	drop_connection(c);
	if (address[0] == '@')
		return net__cli_error(c, -EINVAL,
				      "%s: unix socket addresses are "
				      "not supported",
				      address);
	if (split_address(address, host, sizeof host, &port) != 0)
		return net__cli_error(c, -EINVAL, "%s: not HOST:PORT", address);
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	rv = getaddrinfo(host, port, &hints, &res);
	if (rv != 0)
		return net__cli_error(c, -EHOSTUNREACH, "%s: %s", address,
				      gai_strerror(rv));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = connect_one(ai, deadline, c->cancel_fd);
		if (fd >= 0 || fd == -ETIMEDOUT || fd == -ECANCELED)
			break;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return net__cli_error(c, fd, "%s: connect: %s", address,
				      fd == -ETIMEDOUT ? "timed out"
						       : qf_strerror(fd));
	c->address = strdup(address);
	if (c->address == NULL) {
		close(fd);
		return net__cli_error(c, -ENOMEM, "out of memory");
	}
	c->fd = fd;
	return 0;
}

/* ---- sending and receiving ---- */

static int send_bytes(struct net_client *c, const uint8_t *p, size_t n)
{
	ssize_t k;
	int rv;

	while (n > 0) {
		k = send(c->fd, p, n, MSG_NOSIGNAL);
		if (k > 0) {
			p += k;
			n -= (size_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			rv = wait_fd(c->fd, POLLOUT, c->deadline, c->cancel_fd);
			if (rv != 0)
				return net__cli_fail(
				    c, rv, "%s: %s", c->address,
				    rv == -ETIMEDOUT ? "timed out sending"
						     : qf_strerror(rv));
			continue;
		}
		rv = k < 0 ? -errno : -EIO;
		return net__cli_fail(c, rv, "%s: send: %s", c->address,
				     qf_strerror(rv));
	}
	return 0;
}

/* Send what c->out holds, then empty it. */
int net__cli_send(struct net_client *c)
{
	int rv = send_bytes(c, c->out.data, c->out.len);

	net_buf_reset(&c->out);
	return rv;
}

/* The next whole response.  Its body lives until the next read. */
int net__cli_recv(struct net_client *c, struct net_msg *m)
{
	size_t used;
	ssize_t k;
	int rv;

	for (;;) {
		if (c->rpos < c->rlen) {
			rv = net_decoder_feed(&c->dec, c->rbuf + c->rpos,
					      c->rlen - c->rpos, &used, m);
			c->rpos += used;
			if (rv == NET_FEED_MESSAGE)
				return 0;
			if (rv < 0)
				return net__cli_fail(
				    c, rv, "%s: bad response: %s", c->address,
				    rv == -EMSGSIZE ? "message too large"
						    : qf_strerror(rv));
			continue; /* all fed, message incomplete */
		}
		c->rpos = c->rlen = 0;
		k = recv(c->fd, c->rbuf, NET_CLIENT_RBUF, 0);
		if (k > 0) {
			c->rlen = (size_t)k;
			continue;
		}
		if (k == 0)
			return net__cli_fail(
			    c, -ECONNRESET,
			    "%s: connection closed by the server", c->address);
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			rv = -errno;
			return net__cli_fail(c, rv, "%s: recv: %s", c->address,
					     qf_strerror(rv));
		}
		rv = wait_fd(c->fd, POLLIN, c->deadline, c->cancel_fd);
		if (rv != 0)
			return net__cli_fail(
			    c, rv, "%s: %s", c->address,
			    rv == -ETIMEDOUT
				? "timed out waiting for the server"
				: qf_strerror(rv));
	}
}

/* A FAILURE response: keep its code and message; NET_EFAILURE. */
int net__cli_failure(struct net_client *c, const struct net_msg *m)
{
	struct net_failure f;

	if (net_decode_failure(&m->body, &f) != 0)
		return net__cli_fail(c, QF_EMALFORMED,
				     "%s: malformed FAILURE response",
				     c->address);
	c->failure_code = f.code;
	return net__cli_error(c, NET_EFAILURE, "%s", f.message);
}

/* The response to the request just sent must be @type (or FAILURE). */
static int expect(struct net_client *c, uint8_t type, struct net_msg *m)
{
	int rv = net__cli_recv(c, m);

	if (rv != 0)
		return rv;
	if (m->h.type == NET_RESP_FAILURE)
		return net__cli_failure(c, m);
	if (m->h.type != type)
		return net__cli_fail(
		    c, QF_EMALFORMED,
		    "%s: unexpected response type %u (expected %u)", c->address,
		    m->h.type, type);
	return 0;
}

/* Checks common to every request: connected, no result set open. */
int net__cli_ready(struct net_client *c)
{
	if (c->rs.open)
		return net__cli_error(c, -EBUSY, "a result set is still open");
	if (c->fd < 0)
		return net__cli_error(c, -ENOTCONN, "not connected");
	return 0;
}

/* An encoder's failure: nothing was sent. */
int net__cli_encode_failed(struct net_client *c, int rv)
{
	net_buf_reset(&c->out);
	return net__cli_error(c, rv, "cannot encode the request: %s",
			      qf_strerror(rv));
}

/* Send c->out (one encoded request) and read a response of @type. */
int net__cli_roundtrip(struct net_client *c, uint8_t type, struct net_msg *m)
{
	int rv;

	net__cli_call(c);
	rv = net__cli_send(c);
	if (rv == 0)
		rv = expect(c, type, m);
	return rv;
}

int net__cli_malformed(struct net_client *c, const char *what)
{
	return net__cli_fail(c, QF_EMALFORMED, "%s: malformed %s response",
			     c->address, what);
}

/* A request answered by EMPTY (§5). */
int net__cli_empty(struct net_client *c)
{
	struct net_msg m;
	int rv = net__cli_roundtrip(c, NET_RESP_EMPTY, &m);

	if (rv == 0 && net_decode_empty(&m.body) != 0)
		rv = net__cli_malformed(c, "EMPTY");
	return rv;
}

/* ---- parameters and values ---- */

/* @params in codec form, in c->wire. */
int net__cli_params(struct net_client *c, const struct net_sql_value *params,
		    size_t n)
{
	struct net_value *w;
	size_t i;

	if (n > c->wire_cap) {
		w = realloc(c->wire, n * sizeof *w);
		if (w == NULL)
			return net__cli_error(c, -ENOMEM, "out of memory");
		c->wire = w;
		c->wire_cap = n;
	}
	for (i = 0; i < n; i++) {
		const struct net_sql_value *v = &params[i];

		w = &c->wire[i];
		memset(w, 0, sizeof *w);
		if (!net_value_type_valid((unsigned)v->type))
			return net__cli_error(c, -EINVAL,
					      "parameter %zu: unknown type %d",
					      i + 1, v->type);
		w->type = (uint8_t)v->type;
		switch (v->type) {
		case NET_SQL_INTEGER:
		case NET_SQL_UNIXTIME:
			w->integer = v->integer;
			break;
		case NET_SQL_FLOAT:
			w->real = v->real;
			break;
		case NET_SQL_TEXT:
		case NET_SQL_ISO8601:
			w->text.p = v->text.p != NULL ? v->text.p : "";
			w->text.len = v->text.p != NULL ? v->text.len : 0;
			break;
		case NET_SQL_BLOB:
			w->blob.p = v->blob.p != NULL ? v->blob.p : "";
			w->blob.len = v->blob.p != NULL ? v->blob.len : 0;
			break;
		case NET_SQL_BOOLEAN:
			w->word = v->boolean ? 1 : 0;
			break;
		default: /* NULL: one zero word */
			w->word = 0;
			break;
		}
	}
	return 0;
}

/* ---- lifecycle ---- */

int net_client_new(const struct net_client_config *config,
		   struct net_client **out)
{
	struct net_client *c = calloc(1, sizeof *c);

	if (c == NULL)
		return -ENOMEM;
	if (config != NULL)
		c->cfg = *config;
	if (c->cfg.connect_timeout_ms == 0)
		c->cfg.connect_timeout_ms = CONNECT_TIMEOUT_MS;
	if (c->cfg.attempt_timeout_ms == 0)
		c->cfg.attempt_timeout_ms = ATTEMPT_TIMEOUT_MS;
	if (c->cfg.max_msg == 0)
		c->cfg.max_msg = NET_MAX_MSG_DEFAULT;
	c->rbuf = malloc(NET_CLIENT_RBUF);
	if (c->rbuf == NULL) {
		free(c);
		return -ENOMEM;
	}
	c->fd = -1;
	c->cancel_fd = -1;
	net_buf_init(&c->out, c->cfg.max_msg);
	net_decoder_init(&c->dec, c->cfg.max_msg, false);
	*out = c;
	return 0;
}

void net_client_free(struct net_client *c)
{
	if (c == NULL)
		return;
	drop_connection(c);
	net__cli_rs_free(c);
	net_decoder_close(&c->dec);
	net_buf_close(&c->out);
	free(c->rbuf);
	free(c->wire);
	free(c->scratch);
	free(c);
}

void net_client_disconnect(struct net_client *c)
{
	drop_connection(c);
}

const char *net_client_address(const struct net_client *c)
{
	return c->fd >= 0 ? c->address : NULL;
}

void net_client_set_timeout(struct net_client *c, unsigned timeout_ms)
{
	c->cfg.timeout_ms = timeout_ms;
}

void net_client_set_cancel(struct net_client *c, int fd)
{
	c->cancel_fd = fd;
}

const char *net_client_errmsg(const struct net_client *c)
{
	return c->errmsg;
}

uint64_t net_client_failure_code(const struct net_client *c)
{
	return c->failure_code;
}

/* ---- connecting and leader discovery (§1.2, §8.1) ---- */

/* Connect and send the version word alone (§1.2), within @deadline. */
static int connect_version(struct net_client *c, const char *address,
			   uint64_t version, int64_t deadline)
{
	int rv;

	if (c->rs.open)
		return net__cli_error(c, -EBUSY, "a result set is still open");
	rv = dial(c, address);
	if (rv != 0)
		return rv;
	c->legacy = version == NET_PROTO_LEGACY;
	c->deadline = deadline;
	rv = net_encode_handshake(&c->out, version);
	if (rv != 0)
		return net__cli_encode_failed(c, rv);
	return net__cli_send(c);
}

int net_client_connect(struct net_client *c, const char *address)
{
	return connect_version(c, address, NET_PROTO_VERSION,
			       net__cli_deadline_in(c->cfg.timeout_ms));
}

/* LEADER on the current connection, within c->deadline.  *@leader is a
 * copy for the caller. */
static int ask_leader(struct net_client *c, uint64_t *id, char **leader)
{
	struct net_server_info s;
	struct net_msg m;
	int rv;

	rv = net_encode_leader(&c->out);
	if (rv != 0)
		return net__cli_encode_failed(c, rv);
	rv = net__cli_send(c);
	if (rv == 0)
		rv = expect(c, NET_RESP_SERVER, &m);
	if (rv != 0)
		return rv;
	if (net_decode_server(&m.body, c->legacy, &s) != 0)
		return net__cli_malformed(c, "SERVER");
	*leader = strdup(s.address);
	if (*leader == NULL)
		return net__cli_fail(c, -ENOMEM, "out of memory");
	if (id != NULL)
		*id = s.id;
	return 0;
}

/* Connect to @address and ask it for the leader, with go-dqlite's legacy
 * retry: EOF or a network error (not a timeout) after connecting makes a
 * second attempt with the legacy version word (§1.2).  One attempt
 * deadline covers it all, and the CLIENT that may follow. */
static int probe(struct net_client *c, const char *address, char **leader)
{
	int64_t deadline = net__cli_deadline_in(c->cfg.attempt_timeout_ms);
	int rv;

	rv = connect_version(c, address, NET_PROTO_VERSION, deadline);
	if (rv != 0)
		return rv;
	rv = ask_leader(c, NULL, leader);
	if (rv == -ECONNRESET || rv == -EPIPE) {
		rv = connect_version(c, address, NET_PROTO_LEGACY, deadline);
		if (rv == 0)
			rv = ask_leader(c, NULL, leader);
	}
	return rv;
}

static int do_register(struct net_client *c, uint64_t id,
		       uint64_t *heartbeat_ms)
{
	struct net_welcome w;
	struct net_msg m;
	int rv;

	rv = net_encode_client(&c->out, id);
	if (rv != 0)
		return net__cli_encode_failed(c, rv);
	rv = net__cli_send(c);
	if (rv == 0)
		rv = expect(c, NET_RESP_WELCOME, &m);
	if (rv == 0 && net_decode_welcome(&m.body, &w) != 0)
		rv = net__cli_malformed(c, "WELCOME");
	if (rv == 0 && heartbeat_ms != NULL)
		*heartbeat_ms = w.heartbeat_timeout;
	return rv;
}

/* Append "; @address: why" to the discovery report in @report. */
static void note(char *report, size_t cap, const char *address, const char *why)
{
	size_t len = strlen(report);
	int n;

	if (len + 1 >= cap)
		return;
	/* Most messages already start with the address. */
	if (strncmp(why, address, strlen(address)) == 0)
		n = snprintf(report + len, cap - len, "%s%s",
			     len > 0 ? "; " : "", why);
	else
		n = snprintf(report + len, cap - len, "%s%s: %s",
			     len > 0 ? "; " : "", address, why);
	if (n < 0)
		report[len] = '\0';
	/* Else it may be cut short: a long report loses its tail. */
}

/* One server of the list (§8.1 step 2).  0: connected to the leader.
 * @answered is set when some server gave a LEADER answer. */
static int discover_one(struct net_client *c, const char *address,
			bool *answered, char *report, size_t cap)
{
	char *leader = NULL, *named = NULL;
	int rv;

	rv = probe(c, address, &leader);
	if (rv != 0) {
		note(report, cap, address, c->errmsg);
		return rv;
	}
	*answered = true;
	if (leader[0] == '\0') {
		rv = QF_ENOTLEADER;
		note(report, cap, address, "knows no leader");
		goto out;
	}
	if (strcmp(leader, address) != 0) {
		/* One hop only, to whom it named; that one must name
		 * itself (§8.1). */
		rv = probe(c, leader, &named);
		if (rv != 0) {
			note(report, cap, leader, c->errmsg);
			goto out;
		}
		if (strcmp(named, leader) != 0) {
			rv = QF_ENOTLEADER;
			note(report, cap, leader,
			     named[0] == '\0' ? "knows no leader"
					      : "is not the leader it named");
			goto out;
		}
	}
	rv = do_register(c, 0, NULL);
	if (rv != 0)
		note(report, cap, c->address ? c->address : leader, c->errmsg);

out:
	if (rv != 0)
		drop_connection(c);
	free(named);
	free(leader);
	return rv;
}

int net_client_connect_leader(struct net_client *c,
			      const char *const *addresses, size_t n)
{
	int64_t start = now_ms(), left, backoff = BACKOFF_FIRST_MS;
	char report[NET_CLIENT_ERRMSG];
	bool answered = false;
	int rv = -EINVAL;
	size_t i;

	if (c->rs.open)
		return net__cli_error(c, -EBUSY, "a result set is still open");
	if (n == 0)
		return net__cli_error(c, -EINVAL, "no server address given");
	for (;;) {
		report[0] = '\0';
		for (i = 0; i < n; i++) {
			rv = discover_one(c, addresses[i], &answered, report,
					  sizeof report);
			if (rv == 0 || rv == -ECANCELED)
				return rv;
		}
		left = start + (int64_t)c->cfg.discovery_timeout_ms - now_ms();
		if (left <= 0)
			break;
		if (net__cli_cancelled(c, backoff < left ? backoff : left))
			return net__cli_error(c, -ECANCELED, "cancelled");
		backoff =
		    backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
	if (answered)
		rv = QF_ENOTLEADER;
	return net__cli_error(c, rv, "no leader found (%s)", report);
}

/* ---- requests ---- */

int net_client_leader(struct net_client *c, uint64_t *id, const char **address)
{
	char *leader = NULL;
	int rv = net__cli_ready(c);

	if (rv != 0)
		return rv;
	net__cli_call(c);
	rv = ask_leader(c, id, &leader);
	if (rv != 0)
		return rv;
	free(c->scratch);
	c->scratch = leader;
	*address = leader;
	return 0;
}

int net_client_register(struct net_client *c, uint64_t id,
			uint64_t *heartbeat_ms)
{
	int rv = net__cli_ready(c);

	if (rv != 0)
		return rv;
	net__cli_call(c);
	return do_register(c, id, heartbeat_ms);
}

int net_client_open(struct net_client *c, const char *name)
{
	struct net_msg m;
	struct net_db db;
	int rv = net__cli_ready(c);

	if (rv != 0)
		return rv;
	rv = net_encode_open(&c->out, name, 0, VFS_NAME);
	if (rv != 0)
		return net__cli_encode_failed(c, rv);
	rv = net__cli_roundtrip(c, NET_RESP_DB, &m);
	if (rv == 0 && net_decode_db(&m.body, &db) != 0)
		rv = net__cli_malformed(c, "DB");
	return rv;
}

static int read_result(struct net_client *c, struct net_client_result *res)
{
	struct net_result r;
	struct net_msg m;
	int rv = net__cli_roundtrip(c, NET_RESP_RESULT, &m);

	if (rv == 0 && net_decode_result(&m.body, &r) != 0)
		rv = net__cli_malformed(c, "RESULT");
	if (rv == 0 && res != NULL) {
		res->last_insert_id = r.last_insert_id;
		res->rows_affected = r.rows_affected;
	}
	return rv;
}

int net_client_exec_sql(struct net_client *c, const char *sql,
			const struct net_sql_value *params, size_t n,
			struct net_client_result *result)
{
	int rv = net__cli_ready(c);

	if (rv == 0)
		rv = net__cli_params(c, params, n);
	if (rv != 0)
		return rv;
	rv = net_encode_exec_sql(&c->out, 0, sql, c->wire, n);
	if (rv != 0)
		return net__cli_encode_failed(c, rv);
	return read_result(c, result);
}

int net_client_exec(struct net_client *c, uint32_t stmt_id,
		    const struct net_sql_value *params, size_t n,
		    struct net_client_result *result)
{
	int rv = net__cli_ready(c);

	if (rv == 0)
		rv = net__cli_params(c, params, n);
	if (rv != 0)
		return rv;
	rv = net_encode_exec(&c->out, 0, stmt_id, c->wire, n);
	if (rv != 0)
		return net__cli_encode_failed(c, rv);
	return read_result(c, result);
}

int net_client_prepare(struct net_client *c, const char *sql, uint32_t *stmt_id,
		       uint64_t *n_params)
{
	struct net_stmt s;
	struct net_msg m;
	int rv = net__cli_ready(c);

	if (rv != 0)
		return rv;
	rv = net_encode_prepare(&c->out, 0, sql);
	if (rv != 0)
		return net__cli_encode_failed(c, rv);
	rv = net__cli_roundtrip(c, NET_RESP_STMT, &m);
	if (rv == 0 && net_decode_stmt(&m.body, m.h.schema, &s) != 0)
		rv = net__cli_malformed(c, "STMT");
	if (rv != 0)
		return rv;
	*stmt_id = s.stmt_id;
	if (n_params != NULL)
		*n_params = s.n_params;
	return 0;
}

int net_client_finalize(struct net_client *c, uint32_t stmt_id)
{
	int rv = net__cli_ready(c);

	if (rv != 0)
		return rv;
	rv = net_encode_finalize(&c->out, 0, stmt_id);
	if (rv != 0)
		return net__cli_encode_failed(c, rv);
	return net__cli_empty(c);
}
