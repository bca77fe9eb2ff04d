/* Unit tests for the daemon <-> SQL worker link (net/link.c) and the
 * worker itself (net/worker.c), which runs here on a thread over a
 * socketpair with a plain temporary directory as its "mount". */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "net/codec.h"
#include "net/link.h"
#include "net/net.h"
#include "tests/lib/unit.h"

/* ---- frames and the incremental reader ---- */

struct got {
	int n;
	struct net_link_hdr h[8];
	uint8_t *p[8];
};

static void collect_cb(void *arg, const struct net_link_hdr *h,
		       uint8_t *payload)
{
	struct got *g = arg;

	if (g->n < 8) {
		g->h[g->n] = *h;
		g->p[g->n] = payload;
	} else {
		free(payload);
	}
	g->n++;
}

static void got_free(struct got *g)
{
	int i;

	for (i = 0; i < g->n && i < 8; i++)
		free(g->p[i]);
	memset(g, 0, sizeof *g);
}

TEST(link_hdr, round_trip)
{
	struct net_link_hdr h = {.len = 0x01020304, .kind = NET_LINK_OUT,
				 .type = 7, .schema = 1, .flags = 1,
				 .serial = 0x1122334455667788ull};
	struct net_link_hdr d;
	uint8_t b[NET_LINK_HDR];

	net__link_hdr_encode(&h, b);
	ASSERT_EQ(b[0], 0x04); /* little-endian */
	ASSERT_EQ(net__link_hdr_decode(b, 0x01020304, &d), 0);
	ASSERT_EQ(d.len, h.len);
	ASSERT_EQ(d.kind, h.kind);
	ASSERT_EQ(d.type, 7);
	ASSERT_EQ(d.schema, 1);
	ASSERT_EQ(d.flags, 1);
	ASSERT_U64_EQ(d.serial, h.serial);
	return TEST_OK;
}

TEST(link_hdr, refuses_bad_kind_and_length)
{
	struct net_link_hdr h = {.len = 100, .kind = NET_LINK_SUBMIT};
	struct net_link_hdr d;
	uint8_t b[NET_LINK_HDR];

	net__link_hdr_encode(&h, b);
	ASSERT_EQ(net__link_hdr_decode(b, 99, &d), QF_EMALFORMED);
	ASSERT_EQ(net__link_hdr_decode(b, 100, &d), 0);
	b[4] = 0;
	ASSERT_EQ(net__link_hdr_decode(b, 100, &d), QF_EMALFORMED);
	b[4] = NET_LINK_KIND_MAX + 1;
	ASSERT_EQ(net__link_hdr_decode(b, 100, &d), QF_EMALFORMED);
	return TEST_OK;
}

/* Three frames (one empty) fed in every split of two chunks and byte by
 * byte come out whole and in order. */
TEST(link_reader, any_fragmentation)
{
	struct net_link_hdr a = {.len = 5, .kind = NET_LINK_OUT, .serial = 1};
	struct net_link_hdr b = {.len = 0, .kind = NET_LINK_CLOSE, .serial = 2};
	struct net_link_hdr c = {.len = 3, .kind = NET_LINK_SUBMIT, .type = 9,
				 .serial = 3};
	uint8_t stream[3 * NET_LINK_HDR + 8];
	uint8_t *f;
	struct net_link_reader r;
	struct got g = {0};
	size_t split, i, n = sizeof stream;

	f = net__link_frame(&a, "hello");
	memcpy(stream, f, NET_LINK_HDR + 5);
	free(f);
	f = net__link_frame(&b, NULL);
	memcpy(stream + NET_LINK_HDR + 5, f, NET_LINK_HDR);
	free(f);
	f = net__link_frame(&c, "abc");
	memcpy(stream + 2 * NET_LINK_HDR + 5, f, NET_LINK_HDR + 3);
	free(f);
	for (split = 0; split <= n + 1; split++) {
		net__link_reader_init(&r, 1 << 20);
		if (split <= n) {
			ASSERT_EQ(net__link_reader_feed(&r, stream, split,
							collect_cb, &g), 0);
			ASSERT_EQ(net__link_reader_feed(&r, stream + split,
							n - split, collect_cb,
							&g), 0);
		} else {
			for (i = 0; i < n; i++)
				ASSERT_EQ(net__link_reader_feed(
						  &r, stream + i, 1,
						  collect_cb, &g), 0);
		}
		ASSERT_EQ(g.n, 3);
		ASSERT_EQ(g.h[0].kind, NET_LINK_OUT);
		ASSERT_MEM_EQ(g.p[0], "hello", 5);
		ASSERT_EQ(g.h[1].kind, NET_LINK_CLOSE);
		ASSERT_NULL(g.p[1]);
		ASSERT_U64_EQ(g.h[1].serial, 2);
		ASSERT_EQ(g.h[2].type, 9);
		ASSERT_MEM_EQ(g.p[2], "abc", 3);
		got_free(&g);
		net__link_reader_close(&r);
	}
	return TEST_OK;
}

TEST(link_reader, bad_header_is_an_error)
{
	struct net_link_hdr a = {.len = 10, .kind = NET_LINK_OUT};
	uint8_t b[NET_LINK_HDR];
	struct net_link_reader r;
	struct got g = {0};

	net__link_hdr_encode(&a, b);
	net__link_reader_init(&r, 9);
	ASSERT_EQ(net__link_reader_feed(&r, b, sizeof b, collect_cb, &g),
		  QF_EMALFORMED);
	ASSERT_EQ(g.n, 0);
	net__link_reader_close(&r);
	return TEST_OK;
}

/* ---- the worker, on a thread, over a socketpair ---- */

struct wfx {
	char dir[64];
	int fd;	    /* the daemon's end */
	int status; /* net_worker_run's */
	int hello;  /* HELLO frames seen */
	struct net_worker_config c;
	pthread_t th;
};

static void *worker_main(void *arg)
{
	struct wfx *f = arg;

	f->status = net_worker_run(&f->c);
	return NULL;
}

static int wfx_start(struct wfx *f)
{
	int sv[2];
	struct timeval tv = {.tv_sec = 30};

	memset(f, 0, sizeof *f);
	strcpy(f->dir, "/tmp/qf_link_XXXXXX");
	if (mkdtemp(f->dir) == NULL ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return -1;
	/* A test that waits for a frame that never comes fails, not hangs. */
	setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	f->fd = sv[0];
	f->c.fd = sv[1];
	f->c.mount = f->dir;
	f->c.busy_timeout_ms = 1000;
	f->c.max_msg = 1 << 20;
	return pthread_create(&f->th, NULL, worker_main, f) == 0 ? 0 : -1;
}

/* End the link and collect the worker's exit status. */
static int wfx_stop(struct wfx *f)
{
	char cmd[128];

	shutdown(f->fd, SHUT_WR);
	pthread_join(f->th, NULL);
	close(f->fd);
	close(f->c.fd);
	snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
	if (system(cmd) != 0)
		return -1;
	return f->status;
}

static int send_frame_flags(struct wfx *f, uint8_t kind, uint8_t flags,
			    uint64_t serial, const void *payload, size_t len,
			    uint8_t type, uint8_t schema)
{
	struct net_link_hdr h = {.len = (uint32_t)len, .kind = kind,
				 .type = type, .schema = schema,
				 .flags = flags, .serial = serial};
	uint8_t *frame = net__link_frame(&h, payload);
	int rv;

	if (frame == NULL)
		return -ENOMEM;
	rv = qf_write_full(f->fd, frame, NET_LINK_HDR + len);
	free(frame);
	return rv;
}

static int send_frame(struct wfx *f, uint8_t kind, uint64_t serial,
		      const void *payload, size_t len, uint8_t type,
		      uint8_t schema)
{
	return send_frame_flags(f, kind, NET_LINK_LEADER, serial, payload,
				len, type, schema);
}

/* Submit the request encoded in @b (a whole message) for @serial. */
static int submit(struct wfx *f, uint64_t serial, struct net_buf *b)
{
	struct net_header h;

	if (b->status != 0 || net_header_decode(b->data, &h) != 0)
		return -1;
	return send_frame(f, NET_LINK_SUBMIT, serial, b->data + 8,
			  b->len - 8, h.type, h.schema);
}

/* Read the next frame: its header, and the response type of an OUT. */
static int recv_frame(struct wfx *f, struct net_link_hdr *h, uint8_t *type,
		      uint8_t **payload)
{
	uint8_t hdr[NET_LINK_HDR];
	int rv;

again:
	*payload = NULL;
	rv = qf_read_full(f->fd, hdr, sizeof hdr);
	if (rv == 0)
		rv = net__link_hdr_decode(hdr, 1 << 24, h);
	if (rv != 0)
		return rv;
	if (h->kind == NET_LINK_HELLO) {
		/* The applier thread announces itself once, with its tid. */
		if (h->len != 0 || h->serial == 0)
			return QF_EMALFORMED;
		f->hello++;
		goto again;
	}
	if (h->len > 0) {
		*payload = malloc(h->len);
		if (*payload == NULL)
			return -ENOMEM;
		rv = qf_read_full(f->fd, *payload, h->len);
		if (rv != 0)
			return rv;
	}
	*type = h->len >= 8 ? (*payload)[4] : 0xff;
	return 0;
}

static int expect_out(struct wfx *f, uint64_t serial, uint8_t want_type)
{
	struct net_link_hdr h;
	uint8_t type, *p;
	int rv = recv_frame(f, &h, &type, &p);

	free(p);
	if (rv != 0 || h.kind != NET_LINK_OUT || h.serial != serial ||
	    type != want_type) {
		fprintf(stderr, "frame rv %d kind %u serial %llu type %u, "
			"wanted OUT serial %llu type %u\n", rv, h.kind,
			(unsigned long long)h.serial, type,
			(unsigned long long)serial, want_type);
		return -1;
	}
	return 0;
}

TEST(worker, serves_two_connections_by_serial)
{
	struct wfx f;
	struct net_buf b;

	ASSERT_EQ(wfx_start(&f), 0);
	net_buf_init(&b, 1 << 16);
	ASSERT_EQ(net_encode_open(&b, "a.db", 6, "x"), 0);
	ASSERT_EQ(submit(&f, 7, &b), 0);
	ASSERT_EQ(expect_out(&f, 7, NET_RESP_DB), 0);
	b.len = 0;
	ASSERT_EQ(net_encode_open(&b, "a.db", 6, "x"), 0);
	ASSERT_EQ(submit(&f, 8, &b), 0);
	ASSERT_EQ(expect_out(&f, 8, NET_RESP_DB), 0);
	b.len = 0;
	ASSERT_EQ(net_encode_exec_sql(&b, 0, "CREATE TABLE t(x)", NULL, 0), 0);
	ASSERT_EQ(submit(&f, 7, &b), 0);
	ASSERT_EQ(expect_out(&f, 7, NET_RESP_RESULT), 0);
	b.len = 0;
	ASSERT_EQ(net_encode_query_sql(&b, 0, "SELECT count(*) FROM t", NULL,
				       0), 0);
	ASSERT_EQ(submit(&f, 8, &b), 0);
	ASSERT_EQ(expect_out(&f, 8, NET_RESP_ROWS), 0);
	/* A closed connection's session is gone: its serial starts anew and
	 * has no database open. */
	ASSERT_EQ(send_frame(&f, NET_LINK_CLOSE, 7, NULL, 0, 0, 0), 0);
	b.len = 0;
	ASSERT_EQ(net_encode_exec_sql(&b, 0, "SELECT 1", NULL, 0), 0);
	ASSERT_EQ(submit(&f, 7, &b), 0);
	ASSERT_EQ(expect_out(&f, 7, NET_RESP_FAILURE), 0);
	ASSERT_EQ(f.hello, 1);
	net_buf_close(&b);
	ASSERT_EQ(wfx_stop(&f), 0);
	return TEST_OK;
}

/* A big result stops at about 256 KiB unacknowledged, and goes on once
 * the daemon ACKs. */
TEST(worker, flow_control_waits_for_acks)
{
	struct wfx f;
	struct net_buf b;
	struct net_link_hdr h;
	uint8_t type, *p, ack[8];
	size_t got = 0;
	int frames = 0, rv, done = 0;
	struct timeval tv = {.tv_sec = 1};

	ASSERT_EQ(wfx_start(&f), 0);
	net_buf_init(&b, 1 << 16);
	ASSERT_EQ(net_encode_open(&b, "big.db", 6, "x"), 0);
	ASSERT_EQ(submit(&f, 1, &b), 0);
	ASSERT_EQ(expect_out(&f, 1, NET_RESP_DB), 0);
	b.len = 0;
	ASSERT_EQ(net_encode_query_sql(&b, 0,
		"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c "
		"WHERE i < 4000) SELECT i, zeroblob(1000) FROM c", NULL, 0), 0);
	ASSERT_EQ(submit(&f, 1, &b), 0);
	net_buf_close(&b);
	/* Without ACKs the frames stop (a 1 s read timeout ends the loop). */
	setsockopt(f.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	while ((rv = recv_frame(&f, &h, &type, &p)) == 0) {
		ASSERT_EQ(h.kind, NET_LINK_OUT);
		ASSERT_EQ(type, NET_RESP_ROWS);
		got += h.len;
		frames++;
		free(p);
	}
	ASSERT_TRUE(rv == -EAGAIN || rv == -EWOULDBLOCK);
	ASSERT_TRUE(got > (256u << 10));
	ASSERT_TRUE(got < (256u << 10) + 16384);
	/* ACK everything each time: the rest flows to the DONE batch. */
	qf_put_le64(ack, got);
	ASSERT_EQ(send_frame(&f, NET_LINK_ACK, 1, ack, 8, 0, 0), 0);
	while (!done) {
		ASSERT_EQ(recv_frame(&f, &h, &type, &p), 0);
		ASSERT_EQ(type, NET_RESP_ROWS);
		got += h.len;
		/* The last batch ends with the DONE marker word. */
		done = h.len >= 16 &&
		       qf_get_le64(p + h.len - 8) == NET_ROWS_DONE;
		free(p);
		qf_put_le64(ack, h.len);
		ASSERT_EQ(send_frame(&f, NET_LINK_ACK, 1, ack, 8, 0, 0), 0);
	}
	ASSERT_TRUE(got > 4000u * 1000u);
	ASSERT_EQ(wfx_stop(&f), 0);
	return TEST_OK;
}

/* An APPLY the applier cannot decode is still answered, with an error
 * and no database name, so that the daemon can match it by its index and
 * repair the database instead of waiting for it forever. */
TEST(worker, undecodable_apply_is_answered_by_index)
{
	struct wfx f;
	struct net_link_hdr h;
	uint8_t type, *p;
	uint8_t bad_entry[12] = {5, 0, 0, 0}; /* 5 hashes, then nothing */
	uint8_t bad_image[20];

	memset(bad_image, 0, sizeof bad_image);
	qf_put_le32(bad_image, NET_APPLY_IMAGE_FILE); /* no name, no path */
	ASSERT_EQ(wfx_start(&f), 0);
	ASSERT_EQ(send_frame_flags(&f, NET_LINK_APPLY, 0, 41, bad_entry,
				   sizeof bad_entry, 0, 0), 0);
	ASSERT_EQ(send_frame_flags(&f, NET_LINK_APPLY, 0, 42, bad_image,
				   sizeof bad_image, 0, 0), 0);
	for (uint64_t index = 41; index <= 42; index++) {
		ASSERT_EQ(recv_frame(&f, &h, &type, &p), 0);
		ASSERT_EQ(h.kind, NET_LINK_APPLIED);
		ASSERT_EQ(h.serial, index);
		ASSERT_EQ(h.len, 12); /* status, frames, and an empty name */
		ASSERT_EQ((int)qf_get_le32(p), QF_EMALFORMED);
		free(p);
	}
	ASSERT_EQ(wfx_stop(&f), 0);
	return TEST_OK;
}

TEST(worker, malformed_link_ends_with_status_1)
{
	struct wfx f;
	uint8_t junk[NET_LINK_HDR];

	ASSERT_EQ(wfx_start(&f), 0);
	memset(junk, 0xee, sizeof junk);
	ASSERT_EQ(qf_write_full(f.fd, junk, sizeof junk), 0);
	ASSERT_EQ(wfx_stop(&f), 1);
	return TEST_OK;
}

int main(int argc, char **argv)
{
	return unit_main(argc, argv);
}
