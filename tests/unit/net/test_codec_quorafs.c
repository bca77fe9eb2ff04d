/* Unit tests for quorafs's DATABASES extension (net/codec_quorafs.c). */
#include <stdlib.h>

#include "net/codec.h"
#include "tests/lib/unit.h"

/* The message in @b: header and body. */
static int decode_msg(struct net_buf *b, struct net_msg *m)
{
	if (b->len < 8 || net_header_decode(b->data, &m->h) != 0 ||
	    b->len != 8 + (size_t)m->h.words * 8)
		return -1;
	m->body.p = b->data + 8;
	m->body.len = b->len - 8;
	return 0;
}

TEST(codec_databases, round_trip)
{
	struct net_db_info in[2] = {
		{.name = "a.db", .applied = 7, .seq = 3, .cksum = 0xfeedull,
		 .pages = 2, .page_size = 4096},
		{.name = "sub/a-much-longer-name.db", .applied = 9, .seq = 1,
		 .cksum = 1, .pages = 1, .page_size = 512, .diverged = true},
	};
	struct net_databases d;
	struct net_db_info out;
	struct net_buf b;
	struct net_msg m;

	net_buf_init(&b, 1 << 16);
	ASSERT_EQ(net_encode_databases(&b, 42, true, in, 2), 0);
	ASSERT_EQ(decode_msg(&b, &m), 0);
	ASSERT_EQ(m.h.type, NET_QF_RESP_DATABASES);
	ASSERT_EQ(net_databases_init(&d, &m.body), 0);
	ASSERT_U64_EQ(d.applied, 42);
	ASSERT_TRUE(d.idle);
	ASSERT_EQ(d.n, 2);
	ASSERT_EQ(net_databases_next(&d, &out), 1);
	ASSERT_TRUE(strcmp(out.name, "a.db") == 0);
	ASSERT_U64_EQ(out.cksum, 0xfeedull);
	ASSERT_EQ(out.pages, 2);
	ASSERT_TRUE(!out.diverged);
	ASSERT_EQ(net_databases_next(&d, &out), 1);
	ASSERT_TRUE(strcmp(out.name, "sub/a-much-longer-name.db") == 0);
	ASSERT_EQ(out.page_size, 512);
	ASSERT_TRUE(out.diverged);
	ASSERT_EQ(net_databases_next(&d, &out), 0);
	net_buf_close(&b);
	return TEST_OK;
}

/* A count beyond what the body can hold, and a body cut short, are
 * malformed: no read past the end. */
TEST(codec_databases, refuses_truncated_bodies)
{
	struct net_db_info in = {.name = "x.db", .pages = 1, .page_size = 512};
	struct net_databases d;
	struct net_db_info out;
	struct net_slice s;
	struct net_buf b;
	struct net_msg m;
	size_t cut;

	net_buf_init(&b, 1 << 16);
	ASSERT_EQ(net_encode_databases(&b, 1, false, &in, 1), 0);
	ASSERT_EQ(decode_msg(&b, &m), 0);
	for (cut = 0; cut < m.body.len; cut += 8) {
		s.p = m.body.p;
		s.len = cut;
		if (net_databases_init(&d, &s) != 0)
			continue;
		ASSERT_TRUE(net_databases_next(&d, &out) != 1);
	}
	net_buf_close(&b);
	return TEST_OK;
}

TEST(codec_databases, request)
{
	struct net_buf b;
	struct net_msg m;

	net_buf_init(&b, 1 << 10);
	ASSERT_EQ(net_encode_databases_req(&b), 0);
	ASSERT_EQ(decode_msg(&b, &m), 0);
	ASSERT_EQ(m.h.type, NET_QF_REQ_DATABASES);
	ASSERT_EQ(m.body.len, 8);
	net_buf_close(&b);
	return TEST_OK;
}
