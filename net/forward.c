/* Forwarding a client connection to the leader (forward.h).
 *
 * The connection's stream is taken over whole: after the bytes already
 * read (the version word and the first SQL request) are sent to the
 * leader, everything is piped both ways unchanged.  A side whose peer has
 * more than HIGH_WATER bytes queued stops being read until the queue
 * drains below LOW_WATER, so a slow end never makes memory grow.  Either
 * side ending closes both. */
#include <errno.h>
#include <raft.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/lib/lib.h"
#include "forward.h"
#include "transport.h"

#define CHUNK (64u << 10)
#define HIGH_WATER (4u << 20)
#define LOW_WATER (1u << 20)

struct side {
	struct fwd *f;
	uv_tcp_t *tcp;
	struct side *peer;
	bool paused; /* reading stopped: the peer has too much queued */
};

struct fwd {
	struct side client, leader;
	uv_tcp_t leader_tcp;
	uv_connect_t connect;
	uint8_t *prefix;
	size_t prefix_len;
	int open_handles;
	bool closing;
};

struct chunk_write {
	uv_write_t w;
	struct side *to;
	char *bytes;
};

static void handle_closed_cb(uv_handle_t *h)
{
	struct side *s = h->data;
	struct fwd *f = s->f;

	if (s == &f->client)
		raft_free(h); /* the server's handle (raft_malloc'd) */
	if (--f->open_handles == 0) {
		free(f->prefix);
		free(f);
	}
}

static void fwd_close(struct fwd *f)
{
	if (f->closing)
		return;
	f->closing = true;
	uv_close((uv_handle_t *)f->client.tcp, handle_closed_cb);
	uv_close((uv_handle_t *)f->leader.tcp, handle_closed_cb);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	char *p = malloc(CHUNK);

	(void)h;
	(void)suggested;
	*buf = uv_buf_init(p, p != NULL ? CHUNK : 0);
}

static void read_cb(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf);

static void resume(struct side *s)
{
	if (s->paused && !s->f->closing &&
	    uv_read_start((uv_stream_t *)s->tcp, alloc_cb, read_cb) == 0)
		s->paused = false;
}

static void written_cb(uv_write_t *w, int status)
{
	struct chunk_write *cw = QF_CONTAINER_OF(w, struct chunk_write, w);
	struct side *to = cw->to;

	free(cw->bytes);
	free(cw);
	if (status != 0) {
		fwd_close(to->f);
		return;
	}
	if (uv_stream_get_write_queue_size((uv_stream_t *)to->tcp) < LOW_WATER)
		resume(to->peer); /* the side that feeds @to */
}

static void read_cb(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf)
{
	struct side *from = stream->data, *to = from->peer;
	struct chunk_write *cw;
	uv_buf_t out;

	if (n <= 0) {
		free(buf->base);
		if (n < 0)
			fwd_close(from->f); /* EOF or error: both go */
		return;
	}
	cw = malloc(sizeof *cw);
	if (cw == NULL) {
		free(buf->base);
		fwd_close(from->f);
		return;
	}
	cw->to = to;
	cw->bytes = buf->base;
	out = uv_buf_init(buf->base, (unsigned)n);
	if (uv_write(&cw->w, (uv_stream_t *)to->tcp, &out, 1, written_cb)) {
		free(cw->bytes);
		free(cw);
		fwd_close(from->f);
		return;
	}
	if (uv_stream_get_write_queue_size((uv_stream_t *)to->tcp) >
	    HIGH_WATER) {
		uv_read_stop(stream);
		from->paused = true;
	}
}

static void prefix_written_cb(uv_write_t *w, int status)
{
	struct fwd *f = w->data;

	free(w);
	if (status != 0 || f->closing) {
		fwd_close(f);
		return;
	}
	if (uv_read_start((uv_stream_t *)f->leader.tcp, alloc_cb, read_cb) ||
	    uv_read_start((uv_stream_t *)f->client.tcp, alloc_cb, read_cb))
		fwd_close(f);
}

static void connected_cb(uv_connect_t *req, int status)
{
	struct fwd *f = req->data;
	uv_write_t *w;
	uv_buf_t buf;

	if (status != 0 || f->closing) {
		if (status != 0)
			QF_LOG(QF_WARN, "forwarding to the leader: %s",
			       uv_strerror(status));
		fwd_close(f);
		return;
	}
	(void)uv_tcp_nodelay(f->leader.tcp, 1);
	w = malloc(sizeof *w);
	buf = uv_buf_init((char *)f->prefix, (unsigned)f->prefix_len);
	if (w == NULL) {
		fwd_close(f);
		return;
	}
	w->data = f;
	if (uv_write(w, (uv_stream_t *)f->leader.tcp, &buf, 1,
		     prefix_written_cb) != 0) {
		free(w);
		fwd_close(f);
	}
}

int net__forward(uv_loop_t *loop, uv_tcp_t *client, const char *leader,
		 uint8_t *prefix, size_t len)
{
	struct sockaddr_storage sa;
	struct fwd *f;
	int rv;

	rv = net__parse_address(leader, &sa);
	if (rv != 0)
		return rv;
	f = calloc(1, sizeof *f);
	if (f == NULL)
		return -ENOMEM;
	rv = uv_tcp_init(loop, &f->leader_tcp);
	if (rv != 0) {
		free(f);
		return rv;
	}
	f->client = (struct side){.f = f, .tcp = client, .peer = &f->leader};
	f->leader = (struct side){.f = f, .tcp = &f->leader_tcp,
				  .peer = &f->client};
	client->data = &f->client;
	f->leader_tcp.data = &f->leader;
	f->open_handles = 2;
	f->prefix = prefix;
	f->prefix_len = len;
	f->connect.data = f;
	(void)uv_read_stop((uv_stream_t *)client);
	rv = uv_tcp_connect(&f->connect, &f->leader_tcp,
			    (struct sockaddr *)&sa, connected_cb);
	if (rv != 0)
		fwd_close(f); /* frees @prefix and closes @client */
	return 0;
}
