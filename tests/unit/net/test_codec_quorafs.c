/* Unit tests for quorafs's DATABASES and IMAGE extensions
 * (net/codec_quorafs.c). */
#include <errno.h>
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

/* ---- IMAGE ---- */

/* Byte @k of page @p (0-based) of the test images: every page differs. */
static uint8_t image_byte(uint32_t p, size_t k)
{
	return (uint8_t)(p * 37 + k * 11 + k / 256);
}

/* An IMAGE response in @b for the header @im, whatever its values: the
 * encoder does not check them, so it also builds malformed messages.  The
 * pages are filled with image_byte().  0 or -errno. */
static int encode_image(struct net_buf *b, const struct net_image *in)
{
	struct net_image whole = *in, *im = &whole;
	uint8_t *pages = NULL;
	size_t start, k, size;
	int rv;

	if (im->n == 0 && im->first == 0) { /* all pages in one message */
		im->first = 1;
		im->n = im->db_pages;
	}
	size = (size_t)im->n * im->page_size;
	rv = net_encode_image_begin(b, im, &start, &pages);
	if (rv != 0)
		return rv;
	for (k = 0; k < size; k++)
		pages[k] = image_byte((uint32_t)(k / im->page_size), k);
	return net_msg_end(b, start);
}

TEST(codec_image, round_trip)
{
	struct net_image in = {.seq = 17, .cksum = 0x0123456789abcdefull,
			       .page_size = 512, .db_pages = 3};
	struct net_image out;
	struct net_buf b;
	struct net_msg m;
	uint32_t p;
	size_t k;

	net_buf_init(&b, 1 << 16);
	ASSERT_EQ(encode_image(&b, &in), 0);
	ASSERT_EQ(decode_msg(&b, &m), 0);
	ASSERT_EQ(m.h.type, NET_QF_RESP_IMAGE);
	ASSERT_EQ(m.body.len, 48 + 3 * 512);
	memset(&out, 0, sizeof out);
	ASSERT_EQ(net_decode_image(&m.body, &out), 0);
	ASSERT_U64_EQ(out.seq, 17);
	ASSERT_U64_EQ(out.cksum, 0x0123456789abcdefull);
	ASSERT_EQ(out.page_size, 512);
	ASSERT_EQ(out.db_pages, 3);
	ASSERT_EQ(out.first, 1);
	ASSERT_EQ(out.n, 3);
	ASSERT_TRUE(out.pages == m.body.p + 48); /* in place, not copied */
	for (p = 0; p < 3; p++)
		for (k = 0; k < 512; k++)
			ASSERT_EQ(out.pages[p * 512 + k],
				  image_byte(p, p * 512 + k));
	/* The pages really differ from each other. */
	ASSERT_TRUE(memcmp(out.pages, out.pages + 512, 512) != 0);
	ASSERT_TRUE(memcmp(out.pages + 512, out.pages + 1024, 512) != 0);
	net_buf_close(&b);
	return TEST_OK;
}

/* Page bytes one page or one word short of db_pages * page_size, or with
 * a word or a page more, are malformed; the exact length is accepted. */
TEST(codec_image, refuses_wrong_page_bytes)
{
	static const long delta[] = {-512, -8, 8, 512};
	struct net_image in = {.seq = 2, .cksum = 9, .page_size = 512,
			       .db_pages = 3};
	struct net_image out;
	struct net_slice s;
	struct net_buf b;
	struct net_msg m;
	size_t i, len;

	net_buf_init(&b, 1 << 16);
	ASSERT_EQ(encode_image(&b, &in), 0);
	ASSERT_EQ(decode_msg(&b, &m), 0);
	len = m.body.len;
	ASSERT_EQ(net_decode_image(&m.body, &out), 0);
	/* Room for the longer bodies: bytes after the message. */
	net_put_raw(&b, NULL, 512);
	ASSERT_EQ(b.status, 0);
	for (i = 0; i < sizeof delta / sizeof delta[0]; i++) {
		s.p = b.data + 8;
		s.len = (size_t)((long)len + delta[i]);
		if (net_decode_image(&s, &out) != QF_EMALFORMED) {
			fprintf(stderr, "accepted %ld bytes off\n", delta[i]);
			return TEST_FAIL;
		}
	}
	net_buf_close(&b);
	return TEST_OK;
}

/* A page size that is not a power of two, below 512 or above 65536 is
 * malformed, even when the pages fill the body exactly. */
TEST(codec_image, refuses_bad_page_size)
{
	static const struct {
		uint32_t ps, n;
	} bad[] = {{768, 2}, {1536, 1}, {1000, 1}, {256, 6},
		   {1, 8}, {0, 0}, {0, 3}, {131072, 1}};
	static const uint32_t good[] = {512, 1024, 65536};
	struct net_image in, out;
	struct net_buf b;
	struct net_msg m;
	size_t i;

	net_buf_init(&b, 1 << 20);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		in = (struct net_image){.seq = 1, .cksum = 1,
					.page_size = bad[i].ps,
					.db_pages = bad[i].n};
		net_buf_reset(&b);
		ASSERT_EQ(encode_image(&b, &in), 0);
		ASSERT_EQ(decode_msg(&b, &m), 0);
		if (net_decode_image(&m.body, &out) != QF_EMALFORMED) {
			fprintf(stderr, "accepted page size %u\n", bad[i].ps);
			return TEST_FAIL;
		}
	}
	/* The limits themselves are valid. */
	for (i = 0; i < sizeof good / sizeof good[0]; i++) {
		in = (struct net_image){.seq = 1, .cksum = 1,
					.page_size = good[i], .db_pages = 1};
		net_buf_reset(&b);
		ASSERT_EQ(encode_image(&b, &in), 0);
		ASSERT_EQ(decode_msg(&b, &m), 0);
		ASSERT_EQ(net_decode_image(&m.body, &out), 0);
		ASSERT_EQ(out.page_size, good[i]);
	}
	net_buf_close(&b);
	return TEST_OK;
}

/* A message holds a run of the pages: from @first (1-based), @n of them,
 * within db_pages; anything outside is malformed. */
TEST(codec_image, pages_in_parts)
{
	static const struct {
		uint32_t first, n;
		bool ok;
	} cases[] = {{1, 1, true}, {2, 3, true}, {5, 1, true}, {1, 5, true},
		     {0, 1, false}, {5, 2, false}, {6, 1, false},
		     {3, 4, false}};
	struct net_image in, out;
	struct net_buf b;
	struct net_msg m;
	size_t i;

	net_buf_init(&b, 1 << 16);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		in = (struct net_image){.seq = 1, .cksum = 1, .page_size = 512,
					.db_pages = 5,
					.first = cases[i].first,
					.n = cases[i].n};
		net_buf_reset(&b);
		ASSERT_EQ(encode_image(&b, &in), 0);
		ASSERT_EQ(decode_msg(&b, &m), 0);
		if ((net_decode_image(&m.body, &out) == 0) != cases[i].ok) {
			fprintf(stderr, "first %u n %u: wrong verdict\n",
				cases[i].first, cases[i].n);
			return TEST_FAIL;
		}
		if (cases[i].ok) {
			ASSERT_EQ(out.first, cases[i].first);
			ASSERT_EQ(out.n, cases[i].n);
			ASSERT_EQ(out.db_pages, 5);
		}
	}
	net_buf_close(&b);
	return TEST_OK;
}

/* An image of no pages is malformed (a database has at least one). */
TEST(codec_image, refuses_zero_pages)
{
	struct net_image in = {.seq = 4, .cksum = 0, .page_size = 4096,
			       .db_pages = 0};
	struct net_image out;
	struct net_buf b;
	struct net_msg m;

	net_buf_init(&b, 1 << 16);
	ASSERT_EQ(encode_image(&b, &in), 0);
	ASSERT_EQ(decode_msg(&b, &m), 0);
	ASSERT_EQ(m.body.len, 48);
	ASSERT_EQ(net_decode_image(&m.body, &out), QF_EMALFORMED);
	net_buf_close(&b);
	return TEST_OK;
}

/* A body cut anywhere inside the 48-byte header is malformed. */
TEST(codec_image, refuses_truncated_header)
{
	struct net_image in = {.seq = 3, .cksum = 5, .page_size = 512,
			       .db_pages = 1};
	struct net_image out;
	struct net_slice s;
	struct net_buf b;
	struct net_msg m;
	size_t cut;

	net_buf_init(&b, 1 << 16);
	ASSERT_EQ(encode_image(&b, &in), 0);
	ASSERT_EQ(decode_msg(&b, &m), 0);
	for (cut = 0; cut < 48; cut++) {
		s.p = m.body.p;
		s.len = cut;
		ASSERT_EQ(net_decode_image(&s, &out), QF_EMALFORMED);
	}
	net_buf_close(&b);
	return TEST_OK;
}

/* Pages that do not fit in the buffer's max: -EMSGSIZE, and the buffer is
 * left as it was (the message before intact, no partial one), ready for
 * the next message.  The exact fit is accepted. */
TEST(codec_image, begin_too_big)
{
	struct net_image in = {.seq = 1, .cksum = 2, .page_size = 512,
			       .db_pages = 3, .first = 1, .n = 3};
	uint8_t *pages = NULL;
	const char *name;
	size_t start, before;
	struct net_buf b;
	struct net_msg m;

	/* req (16 bytes) + header and body of the image (8 + 48 + 1536) */
	net_buf_init(&b, 16 + 8 + 48 + 3 * 512 - 1);
	ASSERT_EQ(net_encode_image_req(&b, "a.db"), 0);
	before = b.len;
	ASSERT_EQ(before, 16);
	ASSERT_EQ(net_encode_image_begin(&b, &in, &start, &pages), -EMSGSIZE);
	ASSERT_EQ(b.len, before);
	ASSERT_EQ(b.status, 0);
	ASSERT_EQ(decode_msg(&b, &m), 0); /* only the request is there */
	ASSERT_EQ(m.h.type, NET_QF_REQ_IMAGE);
	ASSERT_EQ(net_decode_image_req(&m.body, &name), 0);
	ASSERT_TRUE(strcmp(name, "a.db") == 0);
	/* A smaller part still fits after the failure. */
	in.n = 2;
	ASSERT_EQ(net_encode_image_begin(&b, &in, &start, &pages), 0);
	ASSERT_EQ(start, before);
	ASSERT_EQ(net_msg_end(&b, start), 0);
	net_buf_close(&b);

	/* One byte more of max: the three pages fit exactly. */
	net_buf_init(&b, 8 + 48 + 3 * 512);
	in.n = 3;
	ASSERT_EQ(encode_image(&b, &in), 0);
	ASSERT_EQ(b.len, 8 + 48 + 3 * 512);
	net_buf_close(&b);
	return TEST_OK;
}

TEST(codec_image, request_round_trip)
{
	const char *name = NULL;
	struct net_buf b;
	struct net_msg m;

	net_buf_init(&b, 1 << 10);
	ASSERT_EQ(net_encode_image_req(&b, "sub/dir/b.db"), 0);
	ASSERT_EQ(decode_msg(&b, &m), 0);
	ASSERT_EQ(m.h.type, NET_QF_REQ_IMAGE);
	ASSERT_EQ(m.body.len, 16);
	ASSERT_EQ(net_decode_image_req(&m.body, &name), 0);
	ASSERT_NOT_NULL(name);
	ASSERT_TRUE(strcmp(name, "sub/dir/b.db") == 0);
	ASSERT_TRUE(name == (const char *)m.body.p); /* points into the body */
	net_buf_close(&b);
	return TEST_OK;
}

/* A request naming no database, with bytes after the name, or with no
 * name at all is malformed. */
TEST(codec_image, request_refuses_bad_bodies)
{
	const char *name;
	struct net_slice s;
	struct net_buf b;
	struct net_msg m;

	net_buf_init(&b, 1 << 10);
	ASSERT_EQ(net_encode_image_req(&b, ""), 0);
	ASSERT_EQ(decode_msg(&b, &m), 0);
	ASSERT_EQ(m.body.len, 8);
	ASSERT_EQ(net_decode_image_req(&m.body, &name), QF_EMALFORMED);

	net_buf_reset(&b);
	ASSERT_EQ(net_encode_image_req(&b, "a.db"), 0);
	ASSERT_EQ(decode_msg(&b, &m), 0);
	ASSERT_EQ(net_decode_image_req(&m.body, &name), 0);
	net_put_u64(&b, 0); /* one word after the name */
	ASSERT_EQ(b.status, 0);
	s.p = b.data + 8;
	s.len = b.len - 8;
	ASSERT_EQ(s.len, 16);
	ASSERT_EQ(net_decode_image_req(&s, &name), QF_EMALFORMED);
	net_put_u64(&b, 0x6264782e6c6c7566ull); /* "full.xdb", no NUL */
	ASSERT_EQ(b.status, 0);
	s.p = b.data + b.len - 8;
	s.len = 8;
	ASSERT_EQ(net_decode_image_req(&s, &name), QF_EMALFORMED);
	s.len = 0;
	ASSERT_EQ(net_decode_image_req(&s, &name), QF_EMALFORMED);
	net_buf_close(&b);
	return TEST_OK;
}
