/* The raft transport sharing the node's port.  See transport.h. */
#include "transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/lib/lib.h"
#include "codec.h"
#include "net.h"

struct impl {
	uv_loop_t *loop;
	raft_id id;
	char address[256];
	raft_uv_accept_cb accept_cb;
	struct dial *dials; /* connects in progress */
	bool closing;
};

/* One outgoing connection being set up. */
struct dial {
	struct impl *impl;
	struct raft_uv_connect *req;
	uv_tcp_t *tcp; /* raft_malloc'd: raft frees it */
	uv_connect_t connect;
	uv_write_t write;
	struct net_buf greeting;
	bool canceled;
	struct dial *next;
};

static void dial_unlink(struct dial *d)
{
	struct dial **pp;

	for (pp = &d->impl->dials; *pp != NULL; pp = &(*pp)->next)
		if (*pp == d) {
			*pp = d->next;
			return;
		}
}

static void dial_closed_cb(uv_handle_t *h)
{
	raft_free(h);
}

/* Finish @d: hand the stream to raft on success, otherwise fail. */
static void dial_done(struct dial *d, int status)
{
	struct raft_uv_connect *req = d->req;

	dial_unlink(d);
	net_buf_close(&d->greeting);
	if (status == 0 && !d->canceled) {
		req->cb(req, (struct uv_stream_s *)d->tcp, 0);
	} else {
		uv_close((uv_handle_t *)d->tcp, dial_closed_cb);
		req->cb(req, NULL, d->canceled ? RAFT_CANCELED : RAFT_NOCONNECTION);
	}
	free(d);
}

static void greeting_written_cb(uv_write_t *w, int status)
{
	dial_done(w->data, status);
}

static void connected_cb(uv_connect_t *c, int status)
{
	struct dial *d = c->data;
	uv_buf_t buf;
	int rv;

	if (status != 0 || d->canceled) {
		dial_done(d, status != 0 ? status : UV_ECANCELED);
		return;
	}
	/* Raft's messages are small and latency-bound: Nagle plus delayed
	 * ACKs would hold a commit ~40 ms (the accepting side sets it too). */
	(void)uv_tcp_nodelay(d->tcp, 1);
	/* The version word and CONNECT{id, address}: §10 steps 2-3. */
	net_buf_init(&d->greeting, 4096);
	rv = net_encode_handshake(&d->greeting, NET_PROTO_VERSION);
	if (rv == 0)
		rv = net_encode_connect(&d->greeting, d->impl->id,
					d->impl->address);
	if (rv != 0) {
		dial_done(d, rv);
		return;
	}
	buf = uv_buf_init((char *)d->greeting.data, (unsigned)d->greeting.len);
	d->write.data = d;
	rv = uv_write(&d->write, (uv_stream_t *)d->tcp, &buf, 1,
		      greeting_written_cb);
	if (rv != 0)
		dial_done(d, rv);
}

/* Parse "HOST:PORT" (IPv4 or a bracketed IPv6). */
int net__parse_address(const char *address, struct sockaddr_storage *sa)
{
	char host[256];
	const char *colon = strrchr(address, ':');
	size_t n;
	int port;

	if (colon == NULL)
		return -EINVAL;
	n = (size_t)(colon - address);
	if (n >= sizeof host)
		return -EINVAL;
	memcpy(host, address, n);
	host[n] = '\0';
	port = atoi(colon + 1);
	if (port <= 0 || port > 65535)
		return -EINVAL;
	if (host[0] == '[' && n > 2 && host[n - 1] == ']') {
		host[n - 1] = '\0';
		return uv_ip6_addr(host + 1, port, (struct sockaddr_in6 *)sa);
	}
	return uv_ip4_addr(host, port, (struct sockaddr_in *)sa);
}

static int t_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
	struct impl *impl = t->impl;

	impl->loop = t->data; /* engine.h: the engine's loop */
	impl->id = id;
	snprintf(impl->address, sizeof impl->address, "%s", address);
	return 0;
}

static int t_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
	struct impl *impl = t->impl;

	impl->accept_cb = cb; /* the server's listener delivers CONNECTs */
	return 0;
}

static int t_connect(struct raft_uv_transport *t, struct raft_uv_connect *req,
		     raft_id id, const char *address, raft_uv_connect_cb cb)
{
	struct impl *impl = t->impl;
	struct sockaddr_storage sa;
	struct dial *d;
	int rv;

	(void)id;
	if (impl->closing)
		return RAFT_CANCELED;
	if (net__parse_address(address, &sa) != 0) {
		snprintf(t->errmsg, sizeof t->errmsg, "bad address %s", address);
		return RAFT_NOCONNECTION;
	}
	d = calloc(1, sizeof *d);
	if (d == NULL)
		return RAFT_NOMEM;
	d->tcp = raft_malloc(sizeof *d->tcp);
	if (d->tcp == NULL) {
		free(d);
		return RAFT_NOMEM;
	}
	req->cb = cb;
	d->impl = impl;
	d->req = req;
	rv = uv_tcp_init(impl->loop, d->tcp);
	if (rv != 0) {
		raft_free(d->tcp);
		free(d);
		return RAFT_NOCONNECTION;
	}
	d->connect.data = d;
	rv = uv_tcp_connect(&d->connect, d->tcp, (struct sockaddr *)&sa,
			    connected_cb);
	if (rv != 0) {
		uv_close((uv_handle_t *)d->tcp, dial_closed_cb);
		free(d);
		return RAFT_NOCONNECTION;
	}
	d->next = impl->dials;
	impl->dials = d;
	return 0;
}

static void t_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
	struct impl *impl = t->impl;
	struct dial *d;

	impl->closing = true;
	impl->accept_cb = NULL;
	/* Pending dials finish through their callbacks with RAFT_CANCELED. */
	for (d = impl->dials; d != NULL; d = d->next)
		d->canceled = true;
	cb(t);
}

int net_transport_new(struct raft_uv_transport **out)
{
	struct raft_uv_transport *t = calloc(1, sizeof *t);
	struct impl *impl = calloc(1, sizeof *impl);

	if (t == NULL || impl == NULL) {
		free(t);
		free(impl);
		return -ENOMEM;
	}
	t->impl = impl;
	t->init = t_init;
	t->listen = t_listen;
	t->connect = t_connect;
	t->close = t_close;
	*out = t;
	return 0;
}

void net_transport_free(struct raft_uv_transport *t)
{
	if (t == NULL)
		return;
	free(t->impl);
	free(t);
}

static void accept_closed_cb(uv_handle_t *h)
{
	raft_free(h);
}

void net__transport_accept(struct raft_uv_transport *t, uint64_t id,
			   const char *address, uv_tcp_t *tcp)
{
	struct impl *impl = t->impl;

	if (impl == NULL || impl->accept_cb == NULL || impl->closing) {
		uv_close((uv_handle_t *)tcp, accept_closed_cb);
		return;
	}
	impl->accept_cb(t, id, address, (struct uv_stream_s *)tcp);
}
