/* Unit tests for the wire codec (net/codec*.c).
 *
 * The reference bytes are the captures of wire-protocol.md (§4, §5, §10,
 * §14), pasted as hex: the encoders must produce them byte for byte and the
 * decoders must parse them.  Everything decoded is first copied into a heap
 * block of exactly its length, so that an over-read shows up under valgrind
 * or ASan.  Messages reach the body decoders through the incremental
 * decoder, as on a connection. */
#include <errno.h>
#include <stdlib.h>

#include "net/codec.h"
#include "tests/lib/unit.h"

#define MAX (1u << 24)

#define ASSERT_STR(a, b) ASSERT_TRUE(strcmp((a), (b)) == 0)

/* ---- helpers ---- */

/* Hex digits to bytes; spaces, '|' and '.' are ignored. */
static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = 0;
	int hi = -1, d;

	for (; *hex != '\0'; hex++) {
		if (*hex >= '0' && *hex <= '9')
			d = *hex - '0';
		else if (*hex >= 'a' && *hex <= 'f')
			d = *hex - 'a' + 10;
		else
			continue;
		if (hi < 0) {
			hi = d;
			continue;
		}
		if (n == cap)
			abort();
		out[n++] = (uint8_t)(hi << 4 | d);
		hi = -1;
	}
	return n;
}

static uint8_t *dup_exact(const void *p, size_t n)
{
	uint8_t *c = malloc(n > 0 ? n : 1);

	if (c == NULL)
		abort();
	if (n > 0)
		memcpy(c, p, n);
	return c;
}

/* A buffer, one framed message and its decoded request. */
struct fx {
	struct net_buf b;
	struct net_decoder d;
	uint8_t *copy;
	struct net_msg m;
	struct net_request r;
};

static void fx_init(struct fx *x)
{
	memset(x, 0, sizeof *x);
	net_buf_init(&x->b, MAX);
	net_decoder_init(&x->d, MAX, false);
}

static void fx_close(struct fx *x)
{
	net_decoder_close(&x->d);
	free(x->copy);
	net_buf_close(&x->b);
}

/* Frame @n bytes that must be exactly one message; 0 or -1. */
static int fx_frame(struct fx *x, const void *p, size_t n)
{
	size_t used;

	free(x->copy);
	x->copy = dup_exact(p, n);
	if (net_decoder_feed(&x->d, x->copy, n, &used, &x->m) !=
	    NET_FEED_MESSAGE)
		return -1;
	return used == n ? 0 : -1;
}

/* Frame the buffer's one message and decode it as a request. */
static int fx_req(struct fx *x)
{
	if (fx_frame(x, x->b.data, x->b.len) != 0)
		return -1;
	return net_decode_request(&x->m, &x->r);
}

/* Frame the buffer's one message as a response of @type; 0 or -1. */
static int fx_resp(struct fx *x, uint8_t type)
{
	if (fx_frame(x, x->b.data, x->b.len) != 0)
		return -1;
	return x->m.h.type == type && x->m.h.schema == 0 ? 0 : -1;
}

/* A message of @type whose body is the one word @v. */
static int encode_one_word(struct net_buf *b, uint8_t type, uint64_t v)
{
	size_t start = net_msg_begin(b, type, 0);

	net_put_u64(b, v);
	return net_msg_end(b, start);
}

/* One request of each of the 20 types, in type order; the four that carry
 * a tuple carry @p (every value type). */
static void stream_add_all(struct net_buf *b, const struct net_value *p)
{
	int rv = 0;

	rv |= net_encode_leader(b);
	rv |= net_encode_client(b, 0);
	rv |= net_encode_heartbeat(b, 1);
	rv |= net_encode_open(b, "demo", 0, "volatile");
	rv |= net_encode_prepare(b, 0, "SELECT ?");
	rv |= net_encode_exec(b, 0, 1, p, 8);
	rv |= net_encode_query(b, 0, 1, p, 8);
	rv |= net_encode_finalize(b, 0, 1);
	rv |= net_encode_exec_sql(b, 0, "INSERT INTO t VALUES(?)", p, 8);
	rv |= net_encode_query_sql(b, 0, "SELECT ?", p, 8);
	rv |= net_encode_interrupt(b, 0);
	rv |= net_encode_connect(b, 1, "127.0.0.1:9001");
	rv |= net_encode_add(b, 2, "127.0.0.1:9002");
	rv |= net_encode_assign(b, 2, NET_ROLE_STANDBY);
	rv |= net_encode_remove(b, 2);
	rv |= net_encode_dump(b, "demo");
	rv |= net_encode_cluster(b, 1);
	rv |= net_encode_transfer(b, 0);
	rv |= net_encode_describe(b, 0);
	rv |= net_encode_weight(b, 5);
	if (rv != 0)
		abort();
}

/* Frame every message of @p (no handshake), decode each as a request and
 * re-encode it into @out.  Returns the number of messages, or -1. */
static int stream_each(const uint8_t *p, size_t n, struct net_buf *out)
{
	struct net_decoder d;
	struct net_msg m;
	struct net_request r;
	uint8_t *c = dup_exact(p, n);
	size_t off = 0, used;
	int count = 0;

	net_decoder_init(&d, MAX, false);
	while (off < n && count >= 0) {
		if (net_decoder_feed(&d, c + off, n - off, &used, &m) !=
			    NET_FEED_MESSAGE ||
		    net_decode_request(&m, &r) != 0 ||
		    net_encode_request(out, &r) != 0)
			count = -1;
		else
			count++;
		off += used;
	}
	net_decoder_close(&d);
	free(c);
	return count;
}

static int buf_is_hex(const struct net_buf *b, const char *hex)
{
	static uint8_t want[8192];
	size_t n = unhex(hex, want, sizeof want);

	ASSERT_EQ(b->len, n);
	ASSERT_MEM_EQ(b->data, want, n);
	return TEST_OK;
}

static struct net_value v_int(int64_t i)
{
	struct net_value v = {.type = NET_INTEGER, .integer = i};
	return v;
}

static struct net_value v_float(double d)
{
	struct net_value v = {.type = NET_FLOAT, .real = d};
	return v;
}

static struct net_value v_text(uint8_t type, const char *s)
{
	struct net_value v = {.type = type};

	v.text.p = s;
	v.text.len = strlen(s);
	return v;
}

static struct net_value v_blob(const void *p, size_t n)
{
	struct net_value v = {.type = NET_BLOB};

	v.blob.p = p;
	v.blob.len = n;
	return v;
}

static struct net_value v_word(uint8_t type, uint64_t w)
{
	struct net_value v = {.type = type, .word = w};
	return v;
}

/* One value of each of the eight types of §6.2. */
static void every_type(struct net_value v[8])
{
	static const uint8_t blob[] = {0, 1, 2, 0xff, 0xfe};

	v[0] = v_int(INT64_MIN);
	v[1] = v_float(3.25);
	v[2] = v_text(NET_TEXT, "eight ch"); /* 8 bytes: NUL takes a word */
	v[3] = v_blob(blob, sizeof blob);
	v[4] = v_word(NET_NULL, 0);
	v[5] = v_int(1700000000);
	v[5].type = NET_UNIXTIME;
	v[6] = v_text(NET_ISO8601, "2006-01-02 15:04:05.5+01:00");
	v[7] = v_word(NET_BOOLEAN, 1);
}

static int same_value(const struct net_value *a, const struct net_value *b)
{
	ASSERT_EQ(a->type, b->type);
	switch (a->type) {
	case NET_INTEGER:
	case NET_UNIXTIME:
		ASSERT_EQ(a->integer, b->integer);
		break;
	case NET_FLOAT:
		ASSERT_MEM_EQ(&a->real, &b->real, sizeof a->real);
		break;
	case NET_TEXT:
	case NET_ISO8601:
		ASSERT_EQ(a->text.len, b->text.len);
		ASSERT_MEM_EQ(a->text.p, b->text.p, a->text.len);
		break;
	case NET_BLOB:
		ASSERT_EQ(a->blob.len, b->blob.len);
		ASSERT_MEM_EQ(a->blob.p, b->blob.p, a->blob.len);
		break;
	default:
		ASSERT_U64_EQ(a->word, b->word);
		break;
	}
	return TEST_OK;
}

/* Decode @params (schema @schema) and compare with @want[0..n). */
static int check_tuple(const struct net_slice *params, uint8_t schema,
		       const struct net_value *want, size_t n)
{
	struct net_tuple t;
	struct net_value v;
	size_t i;

	ASSERT_EQ(net_tuple_init(&t, params, schema), 0);
	ASSERT_EQ(t.n, n);
	for (i = 0; i < n; i++) {
		ASSERT_EQ(net_tuple_next(&t, &v), 1);
		ASSERT_EQ(same_value(&v, &want[i]), TEST_OK);
	}
	ASSERT_EQ(net_tuple_next(&t, &v), 0);
	return TEST_OK;
}

/* Tuple decoding of @len bytes of @p, from an exact heap copy. */
static int tuple_rv(const void *p, size_t len, uint8_t schema)
{
	uint8_t *c = dup_exact(p, len);
	struct net_slice s = {c, len};
	struct net_tuple t;
	int rv = net_tuple_init(&t, &s, schema);

	free(c);
	return rv;
}

/* ---- captures of wire-protocol.md ---- */

#define CAP_14_1                                                            \
	"0b00000008000000 0000000000000000 494e5345525420494e544f206b762056" \
	"414c554553283f2c203f2c203f2c203f2900000000000000 0403010205000000" \
	"6b31000000000000 2a00000000000000 000000000000e0bf 0000000000000000"
#define CAP_14_1_RESULT "02000000 06 00 0000 0100000000000000 0100000000000000"
#define CAP_14_2_REQ                                                        \
	"05000000 09 00 0000 | 0000000000000000 | 53454c454354206b2c20762c20" \
	"662c206e2046524f4d206b7600000000000000"
#define CAP_14_2_ROWS                                                       \
	"0b00000007000000 0400000000000000 6b00000000000000 7600000000000000" \
	"6600000000000000 6e00000000000000 1352000000000000 6b31000000000000" \
	"2a00000000000000 000000000000e0bf 0000000000000000 ffffffffffffffff"
#define CAP_14_3_EXEC                                                       \
	"0b00000008000000 0000000000000000 494e53455254204f52205245504c4143" \
	"4520494e544f206d6f64656c286b6579 2c2076616c7565292056414c554553" \
	"283f2c203f29000000 020303515545286b 68656c6c6f000000 776f726c64000000"
#define CAP_14_3_ROWS                                                       \
	"0700000007000000 0200000000000000 6964000000000000 6e616d6500000000" \
	"3100000000000000 0100000000000000 68656c6c6f000000 ffffffffffffffff"
#define CAP_LEADER                                                          \
	"03000000 01 00 0000 | be55318c8571c12d | 3132372e302e302e "          \
	"313a393030310000"
#define CAP_STANDBY "02000000 01000000 | 0000000000000000 0000000000000000"
#define CAP_LEGACY "02000000 01000000 | 3132372e302e302e313a393030310000"
#define CAP_OPEN                                                            \
	"04000000 03 00 0000 64656d6f00000000 | 0000000000000000 | "         \
	"766f6c6174696c65 0000000000000000"
#define CAP_SERVERS                                                         \
	"05000000 03 00 0000 | 0100000000000000 | be55318c8571c12d | "       \
	"3132372e302e302e 313a393030310000 | 0000000000000000"
#define CAP_WELCOME "01000000 02 00 0000 | 983a000000000000"
#define CAP_EMPTY "01000000 08 00 0000 | 0000000000000000"
#define CAP_DB "01000000 04 00 0000 | 00000000 00000000"
#define CAP_STMT "02000000 05 00 0000 | 00000000 01000000 | 0100000000000000"
#define CAP_NOT_LEADER                                                      \
	"03000000 00 00 0000 | 0a28000000000000 | 6e6f74206c656164 "         \
	"6572000000000000"
#define CAP_CONNECT                                                         \
	"0100000000000000 | 030000000b000000 | be55318c8571c12d | "          \
	"3132372e302e302e313a393030310000"
#define CAP_NO_ROWS                                                         \
	"03000000 07 00 0000 | 0100000000000000 | 76616c7565000000 | "       \
	"ffffffffffffffff"

#define CAP_14_1_SQL "INSERT INTO kv VALUES(?, ?, ?, ?)"
#define CAP_14_3_SQL "INSERT OR REPLACE INTO model(key, value) VALUES(?, ?)"
#define BOOTSTRAP_ID 0x2dc171858c3155beULL

static void cap_14_1_params(struct net_value p[4])
{
	p[0] = v_text(NET_TEXT, "k1");
	p[1] = v_int(42);
	p[2] = v_float(-0.5);
	p[3] = v_word(NET_NULL, 0);
}

/* Frame the hex capture @hex (one message) into @x. */
static int fx_hex(struct fx *x, const char *hex)
{
	static uint8_t bytes[8192];

	return fx_frame(x, bytes, unhex(hex, bytes, sizeof bytes));
}

/* §14.1: EXEC_SQL with ('k1', 42, -0.5, NULL) encodes byte for byte. */
TEST(capture, exec_sql_encode)
{
	struct net_buf b;
	struct net_value p[4];

	net_buf_init(&b, MAX);
	cap_14_1_params(p);
	ASSERT_EQ(net_encode_exec_sql(&b, 0, CAP_14_1_SQL, p, 4), 0);
	ASSERT_EQ(buf_is_hex(&b, CAP_14_1), TEST_OK);
	net_buf_close(&b);
	return TEST_OK;
}

/* §14.1: the captured EXEC_SQL decodes to its SQL and four parameters. */
TEST(capture, exec_sql_decode)
{
	struct fx x;
	struct net_value p[4];

	fx_init(&x);
	cap_14_1_params(p);
	ASSERT_EQ(fx_hex(&x, CAP_14_1), 0);
	ASSERT_EQ(net_decode_request(&x.m, &x.r), 0);
	ASSERT_EQ(x.r.type, NET_REQ_EXEC_SQL);
	ASSERT_U64_EQ(x.r.u.exec_sql.db_id, 0);
	ASSERT_STR(x.r.u.exec_sql.sql, CAP_14_1_SQL);
	ASSERT_EQ(check_tuple(&x.r.u.exec_sql.params, 0, p, 4), TEST_OK);
	fx_close(&x);
	return TEST_OK;
}

/* §14.1: RESULT {1, 1} encodes and decodes as captured. */
TEST(capture, result)
{
	struct fx x;
	struct net_result r;

	fx_init(&x);
	ASSERT_EQ(net_encode_result(&x.b, 1, 1), 0);
	ASSERT_EQ(buf_is_hex(&x.b, CAP_14_1_RESULT), TEST_OK);
	ASSERT_EQ(fx_hex(&x, CAP_14_1_RESULT), 0);
	ASSERT_EQ(net_decode_result(&x.m.body, &r), 0);
	ASSERT_U64_EQ(r.last_insert_id, 1);
	ASSERT_U64_EQ(r.rows_affected, 1);
	fx_close(&x);
	return TEST_OK;
}

/* §14.2: QUERY_SQL without parameters encodes and decodes as captured. */
TEST(capture, query_sql)
{
	struct fx x;

	fx_init(&x);
	ASSERT_EQ(net_encode_query_sql(&x.b, 0, "SELECT k, v, f, n FROM kv",
				       NULL, 0),
		  0);
	ASSERT_EQ(buf_is_hex(&x.b, CAP_14_2_REQ), TEST_OK);
	ASSERT_EQ(fx_req(&x), 0);
	ASSERT_EQ(x.r.type, NET_REQ_QUERY_SQL);
	ASSERT_STR(x.r.u.exec_sql.sql, "SELECT k, v, f, n FROM kv");
	ASSERT_EQ(x.r.u.exec_sql.params.len, 0);
	fx_close(&x);
	return TEST_OK;
}

/* §14.2: the ROWS response encodes byte for byte. */
TEST(capture, rows_encode)
{
	static const char *const names[] = {"k", "v", "f", "n"};
	struct net_buf b;
	struct net_rows_enc w;
	struct net_value row[4];

	net_buf_init(&b, MAX);
	cap_14_1_params(row);
	ASSERT_EQ(net_rows_begin(&w, &b, names, 4), 0);
	ASSERT_EQ(net_rows_add(&w, row), 0);
	ASSERT_EQ(net_rows_end(&w, true), 0);
	ASSERT_EQ(buf_is_hex(&b, CAP_14_2_ROWS), TEST_OK);
	net_buf_close(&b);
	return TEST_OK;
}

/* §14.2: the captured ROWS decodes to four names, one row and DONE. */
TEST(capture, rows_decode)
{
	struct fx x;
	struct net_rows r;
	struct net_value want[4];
	int i;

	fx_init(&x);
	cap_14_1_params(want);
	ASSERT_EQ(fx_hex(&x, CAP_14_2_ROWS), 0);
	ASSERT_EQ(net_rows_init(&r, &x.m.body), 0);
	ASSERT_EQ(r.n_cols, 4);
	ASSERT_STR(r.names[0], "k");
	ASSERT_STR(r.names[3], "n");
	ASSERT_EQ(net_rows_next(&r), 1);
	for (i = 0; i < 4; i++)
		ASSERT_EQ(same_value(&r.row[i], &want[i]), TEST_OK);
	ASSERT_EQ(net_rows_next(&r), 0);
	ASSERT_U64_EQ(r.end, NET_ROWS_DONE);
	net_rows_close(&r);
	fx_close(&x);
	return TEST_OK;
}

/* §14.3: go-dqlite's EXEC_SQL with garbage tuple padding decodes. */
TEST(capture, go_exec_sql_garbage_padding)
{
	struct fx x;
	struct net_value p[2];

	fx_init(&x);
	p[0] = v_text(NET_TEXT, "hello");
	p[1] = v_text(NET_TEXT, "world");
	ASSERT_EQ(fx_hex(&x, CAP_14_3_EXEC), 0);
	ASSERT_EQ(net_decode_request(&x.m, &x.r), 0);
	ASSERT_STR(x.r.u.exec_sql.sql, CAP_14_3_SQL);
	ASSERT_EQ(check_tuple(&x.r.u.exec_sql.params, 0, p, 2), TEST_OK);
	fx_close(&x);
	return TEST_OK;
}

/* §14.3: our encoding of that request differs only in the padding, which
 * we zero. */
TEST(capture, go_exec_sql_encode)
{
	struct net_buf b;
	struct net_value p[2];
	uint8_t want[256];
	size_t n = unhex(CAP_14_3_EXEC, want, sizeof want);

	net_buf_init(&b, MAX);
	p[0] = v_text(NET_TEXT, "hello");
	p[1] = v_text(NET_TEXT, "world");
	ASSERT_EQ(net_encode_exec_sql(&b, 0, CAP_14_3_SQL, p, 2), 0);
	memset(want + 8 + 64 + 3, 0, 5); /* "QUE(k" */
	ASSERT_EQ(b.len, n);
	ASSERT_MEM_EQ(b.data, want, n);
	net_buf_close(&b);
	return TEST_OK;
}

/* §14.3: the shell's ROWS (1, "hello") encodes byte for byte. */
TEST(capture, go_rows_encode)
{
	static const char *const names[] = {"id", "name"};
	struct net_buf b;
	struct net_rows_enc w;
	struct net_value row[2];

	net_buf_init(&b, MAX);
	row[0] = v_int(1);
	row[1] = v_text(NET_TEXT, "hello");
	ASSERT_EQ(net_rows_begin(&w, &b, names, 2), 0);
	ASSERT_EQ(net_rows_add(&w, row), 0);
	ASSERT_EQ(net_rows_end(&w, true), 0);
	ASSERT_EQ(buf_is_hex(&b, CAP_14_3_ROWS), TEST_OK);
	net_buf_close(&b);
	return TEST_OK;
}

/* §14.3: that ROWS decodes to INTEGER 1 and TEXT "hello". */
TEST(capture, go_rows_decode)
{
	struct fx x;
	struct net_rows r;

	fx_init(&x);
	ASSERT_EQ(fx_hex(&x, CAP_14_3_ROWS), 0);
	ASSERT_EQ(net_rows_init(&r, &x.m.body), 0);
	ASSERT_STR(r.names[1], "name");
	ASSERT_EQ(net_rows_next(&r), 1);
	ASSERT_EQ(r.row[0].type, NET_INTEGER);
	ASSERT_EQ(r.row[0].integer, 1);
	ASSERT_EQ(r.row[1].type, NET_TEXT);
	ASSERT_STR(r.row[1].text.p, "hello");
	ASSERT_EQ(net_rows_next(&r), 0);
	net_rows_close(&r);
	fx_close(&x);
	return TEST_OK;
}

/* §4.1: the leader's SERVER answer encodes and decodes as captured. */
TEST(capture, leader_server)
{
	struct fx x;
	struct net_server_info s;

	fx_init(&x);
	ASSERT_EQ(net_encode_server(&x.b, BOOTSTRAP_ID, "127.0.0.1:9001"), 0);
	ASSERT_EQ(buf_is_hex(&x.b, CAP_LEADER), TEST_OK);
	ASSERT_EQ(fx_resp(&x, NET_RESP_SERVER), 0);
	ASSERT_EQ(net_decode_server(&x.m.body, false, &s), 0);
	ASSERT_U64_EQ(s.id, BOOTSTRAP_ID);
	ASSERT_STR(s.address, "127.0.0.1:9001");
	fx_close(&x);
	return TEST_OK;
}

/* §4.1: a stand-by's SERVER(0, "") encodes as captured. */
TEST(capture, standby_server)
{
	struct net_buf b;

	net_buf_init(&b, MAX);
	ASSERT_EQ(net_encode_server(&b, 0, ""), 0);
	ASSERT_EQ(buf_is_hex(&b, CAP_STANDBY), TEST_OK);
	net_buf_close(&b);
	return TEST_OK;
}

/* §4.1: the legacy address-only SERVER encodes and decodes as captured. */
TEST(capture, legacy_server)
{
	struct fx x;
	struct net_server_info s;

	fx_init(&x);
	ASSERT_EQ(net_encode_server_legacy(&x.b, "127.0.0.1:9001"), 0);
	ASSERT_EQ(buf_is_hex(&x.b, CAP_LEGACY), TEST_OK);
	ASSERT_EQ(fx_resp(&x, NET_RESP_SERVER), 0);
	ASSERT_EQ(net_decode_server(&x.m.body, true, &s), 0);
	ASSERT_U64_EQ(s.id, 0);
	ASSERT_STR(s.address, "127.0.0.1:9001");
	fx_close(&x);
	return TEST_OK;
}

/* §4.3: OPEN("demo", 0, "volatile") encodes and decodes as captured. */
TEST(capture, open)
{
	struct fx x;

	fx_init(&x);
	ASSERT_EQ(net_encode_open(&x.b, "demo", 0, "volatile"), 0);
	ASSERT_EQ(buf_is_hex(&x.b, CAP_OPEN), TEST_OK);
	ASSERT_EQ(fx_req(&x), 0);
	ASSERT_STR(x.r.u.open.name, "demo");
	ASSERT_U64_EQ(x.r.u.open.flags, 0);
	ASSERT_STR(x.r.u.open.vfs, "volatile");
	fx_close(&x);
	return TEST_OK;
}

/* §4.17: the 1-node SERVERS with roles encodes and decodes as captured. */
TEST(capture, servers)
{
	struct fx x;
	struct net_node node = {BOOTSTRAP_ID, "127.0.0.1:9001", 0}, got;
	struct net_servers s;

	fx_init(&x);
	ASSERT_EQ(net_encode_servers(&x.b, &node, 1, 1), 0);
	ASSERT_EQ(buf_is_hex(&x.b, CAP_SERVERS), TEST_OK);
	ASSERT_EQ(fx_resp(&x, NET_RESP_SERVERS), 0);
	ASSERT_EQ(net_servers_init(&s, &x.m.body, 1), 0);
	ASSERT_EQ(s.n, 1);
	ASSERT_EQ(net_servers_next(&s, &got), 1);
	ASSERT_U64_EQ(got.id, BOOTSTRAP_ID);
	ASSERT_STR(got.address, "127.0.0.1:9001");
	ASSERT_EQ(got.role, NET_ROLE_VOTER);
	ASSERT_EQ(net_servers_next(&s, &got), 0);
	fx_close(&x);
	return TEST_OK;
}

/* §5: WELCOME, EMPTY, DB, STMT and FAILURE encode as the examples. */
TEST(capture, small_responses_encode)
{
	struct net_buf b;
	struct net_stmt st = {0, 1, 1, 0};

	net_buf_init(&b, MAX);
	ASSERT_EQ(net_encode_welcome(&b, NET_HEARTBEAT_TIMEOUT_MS), 0);
	ASSERT_EQ(buf_is_hex(&b, CAP_WELCOME), TEST_OK);
	net_buf_reset(&b);
	ASSERT_EQ(net_encode_empty(&b), 0);
	ASSERT_EQ(buf_is_hex(&b, CAP_EMPTY), TEST_OK);
	net_buf_reset(&b);
	ASSERT_EQ(net_encode_db(&b, 0), 0);
	ASSERT_EQ(buf_is_hex(&b, CAP_DB), TEST_OK);
	net_buf_reset(&b);
	ASSERT_EQ(net_encode_stmt(&b, &st, 0), 0);
	ASSERT_EQ(buf_is_hex(&b, CAP_STMT), TEST_OK);
	net_buf_reset(&b);
	ASSERT_EQ(net_encode_failure(&b, 10250, "not leader"), 0);
	ASSERT_EQ(buf_is_hex(&b, CAP_NOT_LEADER), TEST_OK);
	net_buf_close(&b);
	return TEST_OK;
}

/* §5: the captured WELCOME, EMPTY, DB, STMT and FAILURE decode. */
TEST(capture, small_responses_decode)
{
	struct fx x;
	struct net_welcome w;
	struct net_db db;
	struct net_stmt st;
	struct net_failure f;

	fx_init(&x);
	ASSERT_EQ(fx_hex(&x, CAP_WELCOME), 0);
	ASSERT_EQ(net_decode_welcome(&x.m.body, &w), 0);
	ASSERT_U64_EQ(w.heartbeat_timeout, 15000);
	ASSERT_EQ(fx_hex(&x, CAP_EMPTY), 0);
	ASSERT_EQ(net_decode_empty(&x.m.body), 0);
	ASSERT_EQ(fx_hex(&x, CAP_DB), 0);
	ASSERT_EQ(net_decode_db(&x.m.body, &db), 0);
	ASSERT_EQ(db.id, 0);
	ASSERT_EQ(fx_hex(&x, CAP_STMT), 0);
	ASSERT_EQ(net_decode_stmt(&x.m.body, x.m.h.schema, &st), 0);
	ASSERT_EQ(st.stmt_id, 1);
	ASSERT_U64_EQ(st.n_params, 1);
	ASSERT_EQ(fx_hex(&x, CAP_NOT_LEADER), 0);
	ASSERT_EQ(net_decode_failure(&x.m.body, &f), 0);
	ASSERT_U64_EQ(f.code, 10250);
	ASSERT_STR(f.message, "not leader");
	fx_close(&x);
	return TEST_OK;
}

/* §6.3: an empty result set is count, names, DONE (words = 3). */
TEST(capture, empty_result_rows)
{
	static const char *const names[] = {"value"};
	struct net_buf b;
	struct net_rows_enc w;

	net_buf_init(&b, MAX);
	ASSERT_EQ(net_rows_begin(&w, &b, names, 1), 0);
	ASSERT_EQ(net_rows_end(&w, true), 0);
	ASSERT_EQ(buf_is_hex(&b, CAP_NO_ROWS), TEST_OK);
	net_buf_close(&b);
	return TEST_OK;
}

/* §10: a raft peer's handshake + CONNECT encodes as captured; decoding
 * stops right after CONNECT, leaving the raft bytes unconsumed. */
TEST(capture, connect_stream)
{
	struct net_buf b;
	struct net_decoder d;
	struct net_msg m;
	struct net_request r;
	uint8_t stream[64];
	size_t n, used, off = 0;

	net_buf_init(&b, MAX);
	ASSERT_EQ(net_encode_handshake(&b, NET_PROTO_VERSION), 0);
	ASSERT_EQ(net_encode_connect(&b, BOOTSTRAP_ID, "127.0.0.1:9001"), 0);
	ASSERT_EQ(buf_is_hex(&b, CAP_CONNECT), TEST_OK);
	n = unhex(CAP_CONNECT "0100000000000000 2000000000000000", stream,
		  sizeof stream); /* then a raft preamble */
	net_decoder_init(&d, MAX, true);
	ASSERT_EQ(net_decoder_feed(&d, stream, n, &used, &m),
		  NET_FEED_HANDSHAKE);
	off += used;
	ASSERT_EQ(net_decoder_feed(&d, stream + off, n - off, &used, &m),
		  NET_FEED_MESSAGE);
	off += used;
	ASSERT_EQ(off, 40);
	ASSERT_EQ(net_decode_request(&m, &r), 0);
	ASSERT_EQ(r.type, NET_REQ_CONNECT);
	ASSERT_U64_EQ(r.u.connect.id, BOOTSTRAP_ID);
	ASSERT_STR(r.u.connect.address, "127.0.0.1:9001");
	net_decoder_close(&d);
	net_buf_close(&b);
	return TEST_OK;
}

/* ---- field encodings ---- */

/* Integers are little-endian whatever their width. */
TEST(field, integers_little_endian)
{
	struct net_buf b;

	net_buf_init(&b, MAX);
	net_put_u8(&b, 0x01);
	net_put_u8(&b, 0x02);
	net_put_u8(&b, 0x03);
	net_put_u8(&b, 0x04);
	net_put_u32(&b, 0x0a0b0c0d);
	net_put_u64(&b, 0x1122334455667788ULL);
	net_put_i64(&b, -2);
	ASSERT_EQ(b.status, 0);
	ASSERT_EQ(buf_is_hex(&b, "01020304 0d0c0b0a 8877665544332211 "
				 "feffffffffffffff"),
		  TEST_OK);
	net_buf_close(&b);
	return TEST_OK;
}

/* A double goes out as its IEEE-754 bit pattern, little-endian. */
TEST(field, double_bit_pattern)
{
	struct net_buf b;
	struct net_cursor c;
	struct net_slice s;
	double d;

	net_buf_init(&b, MAX);
	net_put_double(&b, -0.5);
	ASSERT_EQ(buf_is_hex(&b, "000000000000e0bf"), TEST_OK);
	s.p = b.data;
	s.len = b.len;
	net_cursor_init(&c, &s);
	ASSERT_EQ(net_get_double(&c, &d), 0);
	ASSERT_TRUE(d == -0.5);
	net_buf_close(&b);
	return TEST_OK;
}

/* Text takes one word for 0..7 bytes and two for 8..15 (NUL included). */
TEST(field, text_padding_lengths)
{
	struct net_buf b;

	net_buf_init(&b, MAX);
	net_put_text(&b, "");
	ASSERT_EQ(b.len, 8);
	net_put_text(&b, "1234567");
	ASSERT_EQ(b.len, 16);
	net_put_text(&b, "12345678");
	ASSERT_EQ(b.len, 32);
	ASSERT_EQ(buf_is_hex(&b, "0000000000000000 3132333435363700 "
				 "3132333435363738 0000000000000000"),
		  TEST_OK);
	net_buf_close(&b);
	return TEST_OK;
}

/* Text with an embedded NUL is cut there, keeping the padding right. */
TEST(field, text_stops_at_embedded_nul)
{
	struct net_buf b;

	net_buf_init(&b, MAX);
	net_put_text_n(&b, "ab\0cdefghijk", 12);
	ASSERT_EQ(buf_is_hex(&b, "6162000000000000"), TEST_OK);
	net_buf_close(&b);
	return TEST_OK;
}

/* A blob is its length word, its bytes and zero padding; an empty blob
 * is only the length word. */
TEST(field, blob_layout)
{
	struct net_buf b;

	net_buf_init(&b, MAX);
	net_put_blob(&b, "\x01\x02\x03", 3);
	net_put_blob(&b, NULL, 0);
	ASSERT_EQ(buf_is_hex(&b, "0300000000000000 0102030000000000 "
				 "0000000000000000"),
		  TEST_OK);
	net_buf_close(&b);
	return TEST_OK;
}

/* Text with no NUL before the end of the body is malformed. */
TEST(field, text_missing_nul)
{
	uint8_t *p = dup_exact("abcdefgh", 8);
	struct net_slice s = {p, 8};
	struct net_cursor c;
	const char *t;

	net_cursor_init(&c, &s);
	ASSERT_EQ(net_get_text(&c, &t, NULL), QF_EMALFORMED);
	ASSERT_EQ(c.left, 8);
	free(p);
	return TEST_OK;
}

/* Text whose padding would run past the end of the body is malformed. */
TEST(field, text_padding_cut)
{
	uint8_t *p = dup_exact("abc\0\0", 5);
	struct net_slice s = {p, 5};
	struct net_cursor c;
	const char *t;

	net_cursor_init(&c, &s);
	ASSERT_EQ(net_get_text(&c, &t, NULL), QF_EMALFORMED);
	free(p);
	return TEST_OK;
}

/* Non-zero bytes in text padding are skipped unchecked (§1.5). */
TEST(field, text_garbage_padding_skipped)
{
	uint8_t *p = dup_exact("abc\0QUE(xyz\0\0\0\0\0", 16);
	struct net_slice s = {p, 16};
	struct net_cursor c;
	const char *t;
	size_t len;

	net_cursor_init(&c, &s);
	ASSERT_EQ(net_get_text(&c, &t, &len), 0);
	ASSERT_STR(t, "abc");
	ASSERT_EQ(len, 3);
	ASSERT_EQ(net_get_text(&c, &t, &len), 0);
	ASSERT_STR(t, "xyz");
	ASSERT_EQ(c.left, 0);
	free(p);
	return TEST_OK;
}

/* A blob length larger than the bytes left, even near 2^64, is
 * malformed. */
TEST(field, blob_length_beyond_body)
{
	uint8_t raw[24] = {0};
	struct net_slice s;
	struct net_cursor c;
	const void *data;
	size_t len;
	uint8_t *p;
	uint64_t lens[] = {17, UINT64_MAX, UINT64_MAX - 6, 1ULL << 63};
	size_t i;

	for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		qf_put_le64(raw, lens[i]);
		p = dup_exact(raw, sizeof raw);
		s.p = p;
		s.len = sizeof raw;
		net_cursor_init(&c, &s);
		ASSERT_EQ(net_get_blob(&c, &data, &len), QF_EMALFORMED);
		free(p);
	}
	return TEST_OK;
}

/* A blob whose padding is cut off is malformed. */
TEST(field, blob_padding_cut)
{
	uint8_t *p = dup_exact("\x03\0\0\0\0\0\0\0abc", 11);
	struct net_slice s = {p, 11};
	struct net_cursor c;
	const void *data;
	size_t len;

	net_cursor_init(&c, &s);
	ASSERT_EQ(net_get_blob(&c, &data, &len), QF_EMALFORMED);
	free(p);
	return TEST_OK;
}

/* A u64 with only 7 bytes left is malformed and consumes nothing. */
TEST(field, short_integer)
{
	uint8_t *p = dup_exact("1234567", 7);
	struct net_slice s = {p, 7};
	struct net_cursor c;
	uint64_t v;

	net_cursor_init(&c, &s);
	ASSERT_EQ(net_get_u64(&c, &v), QF_EMALFORMED);
	ASSERT_EQ(c.left, 7);
	free(p);
	return TEST_OK;
}

/* Every type code outside §6.2 is malformed for the decoder. */
TEST(field, bad_value_type_decode)
{
	uint8_t *p = dup_exact("\0\0\0\0\0\0\0\0", 8);
	struct net_slice s = {p, 8};
	struct net_cursor c;
	struct net_value v;
	unsigned t;

	for (t = 0; t < 256; t++) {
		net_cursor_init(&c, &s);
		ASSERT_EQ(net_get_value(&c, (uint8_t)t, &v) == 0,
			  net_value_type_valid(t));
	}
	ASSERT_TRUE(!net_value_type_valid(6) && !net_value_type_valid(12));
	free(p);
	return TEST_OK;
}

/* ---- buffer ---- */

/* A message that would grow the buffer past its bound fails with
 * -EMSGSIZE and leaves the earlier content intact. */
TEST(buf, bounded_growth)
{
	struct net_buf b;
	char big[100];

	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	net_buf_init(&b, 64);
	ASSERT_EQ(net_encode_empty(&b), 0);
	ASSERT_EQ(net_encode_failure(&b, 1, big), -EMSGSIZE);
	ASSERT_EQ(b.status, 0);
	ASSERT_EQ(buf_is_hex(&b, CAP_EMPTY), TEST_OK);
	ASSERT_TRUE(b.cap <= 64);
	ASSERT_EQ(net_encode_failure(&b, 1, "short"), 0);
	ASSERT_EQ(b.len, 40);
	net_buf_close(&b);
	return TEST_OK;
}

/* A putter failure inside a message rolls the whole message back. */
TEST(buf, failed_message_rolled_back)
{
	struct net_buf b;
	struct net_value bad = {.type = 6};
	size_t start;

	net_buf_init(&b, MAX);
	ASSERT_EQ(net_encode_db(&b, 0), 0);
	start = net_msg_begin(&b, NET_RESP_ROWS, 0);
	net_put_u64(&b, 1);
	net_put_value(&b, &bad);
	ASSERT_EQ(net_msg_end(&b, start), -EINVAL);
	ASSERT_EQ(buf_is_hex(&b, CAP_DB), TEST_OK);
	net_buf_close(&b);
	return TEST_OK;
}

/* A message with an empty body cannot be produced (words = 0, §1.3). */
TEST(buf, empty_body_refused)
{
	struct net_buf b;
	size_t start;

	net_buf_init(&b, MAX);
	start = net_msg_begin(&b, NET_RESP_EMPTY, 0);
	ASSERT_EQ(net_msg_end(&b, start), -EINVAL);
	ASSERT_EQ(b.len, 0);
	net_buf_close(&b);
	return TEST_OK;
}

/* ---- handshake and header ---- */

/* Version 1 and the legacy word are accepted, anything else is not. */
TEST(handshake, versions)
{
	uint8_t w[8];
	uint64_t v = 0;

	qf_put_le64(w, 1);
	ASSERT_EQ(net_handshake_decode(w, &v), 0);
	ASSERT_U64_EQ(v, NET_PROTO_VERSION);
	qf_put_le64(w, NET_PROTO_LEGACY);
	ASSERT_EQ(net_handshake_decode(w, &v), 0);
	ASSERT_U64_EQ(v, NET_PROTO_LEGACY);
	qf_put_le64(w, 0);
	ASSERT_EQ(net_handshake_decode(w, &v), -EPROTONOSUPPORT);
	qf_put_le64(w, 2);
	ASSERT_EQ(net_handshake_decode(w, &v), -EPROTONOSUPPORT);
	qf_put_le64(w, NET_PROTO_LEGACY + 1);
	ASSERT_EQ(net_handshake_decode(w, &v), -EPROTONOSUPPORT);
	return TEST_OK;
}

/* The header is words (u32 LE), type, schema, extra (u16 LE). */
TEST(header, layout)
{
	struct net_header h = {0x01020304, 9, 1, 0xbeef}, g;
	uint8_t w[8];

	net_header_encode(&h, w);
	ASSERT_MEM_EQ(w, "\x04\x03\x02\x01\x09\x01\xef\xbe", 8);
	ASSERT_EQ(net_header_decode(w, &g), 0);
	ASSERT_EQ(g.words, h.words);
	ASSERT_EQ(g.type, 9);
	ASSERT_EQ(g.schema, 1);
	ASSERT_EQ(g.extra, 0xbeef);
	return TEST_OK;
}

/* A header with words = 0 is malformed. */
TEST(header, words_zero)
{
	struct net_header h;

	ASSERT_EQ(net_header_decode((const uint8_t *)"\0\0\0\0\x08\0\0\0", &h),
		  QF_EMALFORMED);
	return TEST_OK;
}


/* ---- request round trips: encoder, framing, net_decode_request ---- */

/* Encode with @call into a fresh fixture and decode it as a request of
 * @type; evaluates to the fixture's request. */
#define REQ_ROUNDTRIP(x, req_type, call)                                    \
	do {                                                                \
		fx_init(&(x));                                              \
		ASSERT_EQ((call), 0);                                       \
		ASSERT_EQ(fx_req(&(x)), 0);                                 \
		ASSERT_EQ((x).r.type, (req_type));                          \
		ASSERT_EQ((x).r.schema, 0);                                 \
	} while (0)

/* LEADER round-trips with its unused word. */
TEST(roundtrip, leader)
{
	struct fx x;

	REQ_ROUNDTRIP(x, NET_REQ_LEADER, net_encode_leader(&x.b));
	ASSERT_U64_EQ(x.r.u.leader.unused, 0);
	fx_close(&x);
	return TEST_OK;
}

/* CLIENT round-trips its id. */
TEST(roundtrip, client)
{
	struct fx x;

	REQ_ROUNDTRIP(x, NET_REQ_CLIENT, net_encode_client(&x.b, UINT64_MAX));
	ASSERT_U64_EQ(x.r.u.client.id, UINT64_MAX);
	fx_close(&x);
	return TEST_OK;
}

/* HEARTBEAT round-trips its timestamp. */
TEST(roundtrip, heartbeat)
{
	struct fx x;

	REQ_ROUNDTRIP(x, NET_REQ_HEARTBEAT,
		      net_encode_heartbeat(&x.b, 1700000000));
	ASSERT_U64_EQ(x.r.u.heartbeat.timestamp, 1700000000);
	fx_close(&x);
	return TEST_OK;
}

/* OPEN round-trips a nested name, the flags and the VFS. */
TEST(roundtrip, open)
{
	struct fx x;

	REQ_ROUNDTRIP(x, NET_REQ_OPEN,
		      net_encode_open(&x.b, "dir/app.db", 6, "volatile"));
	ASSERT_STR(x.r.u.open.name, "dir/app.db");
	ASSERT_U64_EQ(x.r.u.open.flags, 6);
	ASSERT_STR(x.r.u.open.vfs, "volatile");
	fx_close(&x);
	return TEST_OK;
}

/* PREPARE round-trips the db id and the SQL. */
TEST(roundtrip, prepare)
{
	struct fx x;

	REQ_ROUNDTRIP(x, NET_REQ_PREPARE,
		      net_encode_prepare(&x.b, 0, "SELECT 1; SELECT 2"));
	ASSERT_STR(x.r.u.prepare.sql, "SELECT 1; SELECT 2");
	fx_close(&x);
	return TEST_OK;
}

/* EXEC without parameters is exactly one word, with no tuple. */
TEST(roundtrip, exec_no_params)
{
	struct fx x;

	REQ_ROUNDTRIP(x, NET_REQ_EXEC, net_encode_exec(&x.b, 0, 7, NULL, 0));
	ASSERT_EQ(x.m.h.words, 1);
	ASSERT_EQ(x.r.u.exec.stmt_id, 7);
	ASSERT_EQ(x.r.u.exec.params.len, 0);
	fx_close(&x);
	return TEST_OK;
}

/* QUERY round-trips the ids and every value type as parameters. */
TEST(roundtrip, query_every_type)
{
	struct fx x;
	struct net_value p[8];

	every_type(p);
	REQ_ROUNDTRIP(x, NET_REQ_QUERY,
		      net_encode_query(&x.b, 1, 0xfffffffe, p, 8));
	ASSERT_EQ(x.r.u.exec.db_id, 1);
	ASSERT_EQ(x.r.u.exec.stmt_id, 0xfffffffe);
	ASSERT_EQ(check_tuple(&x.r.u.exec.params, 0, p, 8), TEST_OK);
	fx_close(&x);
	return TEST_OK;
}

/* FINALIZE round-trips both ids. */
TEST(roundtrip, finalize)
{
	struct fx x;

	REQ_ROUNDTRIP(x, NET_REQ_FINALIZE, net_encode_finalize(&x.b, 3, 4));
	ASSERT_EQ(x.r.u.finalize.db_id, 3);
	ASSERT_EQ(x.r.u.finalize.stmt_id, 4);
	fx_close(&x);
	return TEST_OK;
}

/* EXEC_SQL round-trips every value type as parameters. */
TEST(roundtrip, exec_sql_every_type)
{
	struct fx x;
	struct net_value p[8];

	every_type(p);
	REQ_ROUNDTRIP(x, NET_REQ_EXEC_SQL,
		      net_encode_exec_sql(&x.b, 0, "INSERT ...", p, 8));
	ASSERT_EQ(check_tuple(&x.r.u.exec_sql.params, 0, p, 8), TEST_OK);
	fx_close(&x);
	return TEST_OK;
}

/* QUERY_SQL round-trips a single parameter. */
TEST(roundtrip, query_sql)
{
	struct fx x;
	struct net_value p = v_text(NET_TEXT, "key");

	REQ_ROUNDTRIP(x, NET_REQ_QUERY_SQL,
		      net_encode_query_sql(&x.b, 0, "SELECT ?", &p, 1));
	ASSERT_STR(x.r.u.exec_sql.sql, "SELECT ?");
	ASSERT_EQ(check_tuple(&x.r.u.exec_sql.params, 0, &p, 1), TEST_OK);
	fx_close(&x);
	return TEST_OK;
}

/* INTERRUPT round-trips its db id. */
TEST(roundtrip, interrupt)
{
	struct fx x;

	REQ_ROUNDTRIP(x, NET_REQ_INTERRUPT, net_encode_interrupt(&x.b, 0));
	ASSERT_U64_EQ(x.r.u.interrupt.db_id, 0);
	fx_close(&x);
	return TEST_OK;
}

/* ADD round-trips the id and the address. */
TEST(roundtrip, add)
{
	struct fx x;

	REQ_ROUNDTRIP(x, NET_REQ_ADD, net_encode_add(&x.b, 5, "[::1]:9005"));
	ASSERT_U64_EQ(x.r.u.add.id, 5);
	ASSERT_STR(x.r.u.add.address, "[::1]:9005");
	fx_close(&x);
	return TEST_OK;
}

/* ASSIGN round-trips the id and the role word. */
TEST(roundtrip, assign)
{
	struct fx x;

	REQ_ROUNDTRIP(x, NET_REQ_ASSIGN,
		      net_encode_assign(&x.b, 9, NET_ROLE_SPARE));
	ASSERT_U64_EQ(x.r.u.assign.id, 9);
	ASSERT_EQ(x.r.u.assign.role, NET_ROLE_SPARE);
	ASSERT_TRUE(x.r.u.assign.has_role);
	fx_close(&x);
	return TEST_OK;
}

/* A 1-word ASSIGN is the legacy PROMOTE: voter (§4.13). */
TEST(roundtrip, assign_legacy_promote)
{
	struct fx x;

	REQ_ROUNDTRIP(x, NET_REQ_ASSIGN,
		      encode_one_word(&x.b, NET_REQ_ASSIGN, 9));
	ASSERT_U64_EQ(x.r.u.assign.id, 9);
	ASSERT_EQ(x.r.u.assign.role, NET_ROLE_VOTER);
	ASSERT_TRUE(!x.r.u.assign.has_role);
	fx_close(&x);
	return TEST_OK;
}

/* An out-of-range ASSIGN role reaches the server as sent, to refuse. */
TEST(roundtrip, assign_role_out_of_range)
{
	struct fx x;

	REQ_ROUNDTRIP(x, NET_REQ_ASSIGN, net_encode_assign(&x.b, 9, 7));
	ASSERT_U64_EQ(x.r.u.assign.role, 7);
	fx_close(&x);
	return TEST_OK;
}

/* REMOVE, TRANSFER, CLUSTER, DESCRIBE and WEIGHT round-trip their word. */
TEST(roundtrip, one_word_requests)
{
	struct fx x;

	REQ_ROUNDTRIP(x, NET_REQ_REMOVE, net_encode_remove(&x.b, 11));
	ASSERT_U64_EQ(x.r.u.remove.id, 11);
	fx_close(&x);
	REQ_ROUNDTRIP(x, NET_REQ_TRANSFER, net_encode_transfer(&x.b, 12));
	ASSERT_U64_EQ(x.r.u.transfer.id, 12);
	fx_close(&x);
	REQ_ROUNDTRIP(x, NET_REQ_CLUSTER, net_encode_cluster(&x.b, 1));
	ASSERT_U64_EQ(x.r.u.cluster.format, 1);
	fx_close(&x);
	REQ_ROUNDTRIP(x, NET_REQ_DESCRIBE, net_encode_describe(&x.b, 3));
	ASSERT_U64_EQ(x.r.u.describe.format, 3);
	fx_close(&x);
	REQ_ROUNDTRIP(x, NET_REQ_WEIGHT, net_encode_weight(&x.b, 42));
	ASSERT_U64_EQ(x.r.u.weight.weight, 42);
	fx_close(&x);
	return TEST_OK;
}

/* DUMP round-trips the database name. */
TEST(roundtrip, dump)
{
	struct fx x;

	REQ_ROUNDTRIP(x, NET_REQ_DUMP, net_encode_dump(&x.b, "db.bin"));
	ASSERT_STR(x.r.u.dump.name, "db.bin");
	fx_close(&x);
	return TEST_OK;
}

/* Re-encoding any decoded request gives back the same bytes. */
TEST(roundtrip, encode_request_reproduces_bytes)
{
	struct fx x;
	struct net_buf again;
	struct net_value p[8];
	uint8_t raw[256];
	size_t n = unhex(CAP_14_3_EXEC, raw, sizeof raw);

	every_type(p);
	fx_init(&x);
	net_buf_init(&again, MAX);
	ASSERT_EQ(net_encode_query(&x.b, 1, 2, p, 8), 0);
	ASSERT_EQ(net_encode_open(&x.b, "a", 1, "b"), 0);
	ASSERT_EQ(encode_one_word(&x.b, NET_REQ_ASSIGN, 3), 0);
	net_put_raw(&x.b, raw, n); /* garbage padding survives too */
	ASSERT_EQ(stream_each(x.b.data, x.b.len, &again), 4);
	ASSERT_EQ(again.len, x.b.len);
	ASSERT_MEM_EQ(again.data, x.b.data, x.b.len);
	net_buf_close(&again);
	fx_close(&x);
	return TEST_OK;
}

/* ---- response round trips ---- */

/* FAILURE round-trips the code and the message. */
TEST(response, failure)
{
	struct fx x;
	struct net_failure f;

	fx_init(&x);
	ASSERT_EQ(net_encode_failure(&x.b, 2067,
				     "UNIQUE constraint failed: u.k"),
		  0);
	ASSERT_EQ(fx_resp(&x, NET_RESP_FAILURE), 0);
	ASSERT_EQ(net_decode_failure(&x.m.body, &f), 0);
	ASSERT_U64_EQ(f.code, 2067);
	ASSERT_STR(f.message, "UNIQUE constraint failed: u.k");
	fx_close(&x);
	return TEST_OK;
}

/* SERVERS without roles (format 0) round-trips three nodes. */
TEST(response, servers_format0)
{
	struct fx x;
	struct net_node nodes[3] = {{1, "a:1", 0}, {2, "bb:2", 1},
				    {3, "a-rather-long-address:3", 2}};
	struct net_node got;
	struct net_servers s;
	int i;

	fx_init(&x);
	ASSERT_EQ(net_encode_servers(&x.b, nodes, 3, 0), 0);
	ASSERT_EQ(fx_resp(&x, NET_RESP_SERVERS), 0);
	ASSERT_EQ(net_servers_init(&s, &x.m.body, 0), 0);
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(net_servers_next(&s, &got), 1);
		ASSERT_U64_EQ(got.id, nodes[i].id);
		ASSERT_STR(got.address, nodes[i].address);
		ASSERT_EQ(got.role, 0);
	}
	ASSERT_EQ(net_servers_next(&s, &got), 0);
	fx_close(&x);
	return TEST_OK;
}

/* SERVERS with roles (format 1) round-trips each role. */
TEST(response, servers_format1)
{
	struct fx x;
	struct net_node nodes[3] = {
		{1, "a:1", 0}, {2, "b:2", 1}, {3, "c:3", 2}};
	struct net_node got;
	struct net_servers s;
	int i;

	fx_init(&x);
	ASSERT_EQ(net_encode_servers(&x.b, nodes, 3, 1), 0);
	ASSERT_EQ(fx_resp(&x, NET_RESP_SERVERS), 0);
	ASSERT_EQ(net_servers_init(&s, &x.m.body, 1), 0);
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(net_servers_next(&s, &got), 1);
		ASSERT_EQ(got.role, nodes[i].role);
	}
	fx_close(&x);
	return TEST_OK;
}

/* A SERVERS count larger than the body can hold is malformed. */
TEST(response, servers_count_beyond_body)
{
	struct fx x;
	struct net_servers s;

	fx_init(&x);
	ASSERT_EQ(fx_hex(&x, "05000000 03 00 0000 0200000000000000 "
			     "0100000000000000 6100000000000000 "
			     "0200000000000000 6200000000000000"),
		  0);
	ASSERT_EQ(net_servers_init(&s, &x.m.body, 1), QF_EMALFORMED);
	ASSERT_EQ(net_servers_init(&s, &x.m.body, 0), 0); /* 2 x 16 fit */
	ASSERT_EQ(s.n, 2);
	fx_close(&x);
	return TEST_OK;
}

/* DB round-trips a non-zero id. */
TEST(response, db)
{
	struct fx x;
	struct net_db db;

	fx_init(&x);
	ASSERT_EQ(net_encode_db(&x.b, 7), 0);
	ASSERT_EQ(fx_resp(&x, NET_RESP_DB), 0);
	ASSERT_EQ(net_decode_db(&x.m.body, &db), 0);
	ASSERT_EQ(db.id, 7);
	fx_close(&x);
	return TEST_OK;
}

/* STMT schema 1 carries the tail offset in a third word (§3). */
TEST(response, stmt_schema1)
{
	struct fx x;
	struct net_stmt s = {0, 2, 3, 9}, got;

	fx_init(&x);
	ASSERT_EQ(net_encode_stmt(&x.b, &s, 1), 0);
	ASSERT_EQ(fx_frame(&x, x.b.data, x.b.len), 0);
	ASSERT_EQ(x.m.h.schema, 1);
	ASSERT_EQ(x.m.h.words, 3);
	ASSERT_EQ(net_decode_stmt(&x.m.body, 1, &got), 0);
	ASSERT_EQ(got.stmt_id, 2);
	ASSERT_U64_EQ(got.n_params, 3);
	ASSERT_U64_EQ(got.offset, 9);
	ASSERT_EQ(net_decode_stmt(&x.m.body, 2, &got), -EPROTONOSUPPORT);
	fx_close(&x);
	return TEST_OK;
}

/* RESULT round-trips 64-bit values unchanged. */
TEST(response, result)
{
	struct fx x;
	struct net_result r;

	fx_init(&x);
	ASSERT_EQ(net_encode_result(&x.b, UINT64_MAX, 1ULL << 40), 0);
	ASSERT_EQ(fx_resp(&x, NET_RESP_RESULT), 0);
	ASSERT_EQ(net_decode_result(&x.m.body, &r), 0);
	ASSERT_U64_EQ(r.last_insert_id, UINT64_MAX);
	ASSERT_U64_EQ(r.rows_affected, 1ULL << 40);
	fx_close(&x);
	return TEST_OK;
}

/* METADATA round-trips the failure domain and the weight. */
TEST(response, metadata)
{
	struct fx x;
	struct net_metadata m;

	fx_init(&x);
	ASSERT_EQ(net_encode_metadata(&x.b, 4, 5), 0);
	ASSERT_EQ(fx_resp(&x, NET_RESP_METADATA), 0);
	ASSERT_EQ(net_decode_metadata(&x.m.body, &m), 0);
	ASSERT_U64_EQ(m.failure_domain, 4);
	ASSERT_U64_EQ(m.weight, 5);
	fx_close(&x);
	return TEST_OK;
}

/* FILES round-trips a database and an empty WAL, back to back (§9). */
TEST(response, files)
{
	struct fx x;
	static uint8_t page[4096];
	struct net_file in[2] = {{"demo", page, sizeof page},
				 {"demo-wal", NULL, 0}};
	struct net_file got;
	struct net_files f;

	memcpy(page, "SQLite format 3", 16);
	fx_init(&x);
	ASSERT_EQ(net_encode_files(&x.b, in, 2), 0);
	ASSERT_EQ(fx_resp(&x, NET_RESP_FILES), 0);
	ASSERT_EQ(x.m.h.words, 1 + 1 + 1 + 512 + 2 + 1);
	ASSERT_EQ(net_files_init(&f, &x.m.body), 0);
	ASSERT_EQ(net_files_next(&f, &got), 1);
	ASSERT_STR(got.name, "demo");
	ASSERT_U64_EQ(got.size, 4096);
	ASSERT_MEM_EQ(got.data, page, 4096);
	ASSERT_EQ(net_files_next(&f, &got), 1);
	ASSERT_STR(got.name, "demo-wal");
	ASSERT_U64_EQ(got.size, 0);
	ASSERT_EQ(net_files_next(&f, &got), 0);
	fx_close(&x);
	return TEST_OK;
}

/* A file size that is not a multiple of 8 is refused by the encoder. */
TEST(response, files_unaligned_size_refused)
{
	struct net_buf b;
	struct net_file in = {"x", "abc", 3};

	net_buf_init(&b, MAX);
	ASSERT_EQ(net_encode_files(&b, &in, 1), -EINVAL);
	ASSERT_EQ(b.len, 0);
	net_buf_close(&b);
	return TEST_OK;
}

/* A file size beyond the body, or a count beyond it, is malformed. */
TEST(response, files_beyond_body)
{
	struct fx x;
	struct net_files f;
	struct net_file got;

	fx_init(&x);
	ASSERT_EQ(fx_hex(&x, "04000000 09 00 0000 0100000000000000 "
			     "6100000000000000 1000000000000000 "
			     "0102030405060708"),
		  0);
	ASSERT_EQ(net_files_init(&f, &x.m.body), 0);
	ASSERT_EQ(net_files_next(&f, &got), QF_EMALFORMED);
	ASSERT_EQ(fx_hex(&x, "02000000 09 00 0000 0200000000000000 "
			     "6100000000000000"),
		  0);
	ASSERT_EQ(net_files_init(&f, &x.m.body), QF_EMALFORMED);
	fx_close(&x);
	return TEST_OK;
}

/* ---- parameter tuples ---- */

/* More than 255 parameters use revision 1: schema byte 1, u32 count. */
TEST(tuple, revision1_over_255)
{
	struct fx x;
	struct net_value p[300];
	int i;

	for (i = 0; i < 300; i++)
		p[i] = i % 2 ? v_int(i) : v_text(NET_TEXT, "t");
	fx_init(&x);
	ASSERT_EQ(net_encode_exec_sql(&x.b, 0, "INSERT", p, 300), 0);
	ASSERT_EQ(fx_req(&x), 0);
	ASSERT_EQ(x.r.schema, 1);
	ASSERT_EQ(qf_get_le32(x.r.u.exec_sql.params.p), 300);
	ASSERT_EQ(check_tuple(&x.r.u.exec_sql.params, 1, p, 300), TEST_OK);
	fx_close(&x);
	return TEST_OK;
}

/* A revision-1 tuple with few values decodes when the schema says 1. */
TEST(tuple, revision1_small)
{
	/* u32 n = 2, types INTEGER, TEXT, 2 garbage pad bytes. */
	static const char hex[] = "02000000 0103 abcd 0700000000000000 "
				  "6869000000000000";
	uint8_t raw[32];
	size_t n = unhex(hex, raw, sizeof raw);
	struct net_slice s = {raw, n};
	struct net_value want[2];

	want[0] = v_int(7);
	want[1] = v_text(NET_TEXT, "hi");
	ASSERT_EQ(check_tuple(&s, 1, want, 2), TEST_OK);
	ASSERT_EQ(tuple_rv(raw, n, 0), QF_EMALFORMED); /* read as rev 0 */
	return TEST_OK;
}

/* Seven parameters take a 1-word header, eight take 2 words (§6.1). */
TEST(tuple, header_sizes)
{
	struct fx x;
	struct net_value p[8];
	int i;

	for (i = 0; i < 8; i++)
		p[i] = v_int(i);
	fx_init(&x);
	ASSERT_EQ(net_encode_exec(&x.b, 0, 0, p, 7), 0);
	ASSERT_EQ(x.b.len, 8 + 8 + 8 + 7 * 8);
	net_buf_reset(&x.b);
	ASSERT_EQ(net_encode_exec(&x.b, 0, 0, p, 8), 0);
	ASSERT_EQ(x.b.len, 8 + 8 + 16 + 8 * 8);
	ASSERT_EQ(fx_req(&x), 0);
	ASSERT_EQ(check_tuple(&x.r.u.exec.params, 0, p, 8), TEST_OK);
	fx_close(&x);
	return TEST_OK;
}

/* Every type code outside §6.2 makes the tuple malformed. */
TEST(tuple, bad_type_codes)
{
	static const uint8_t bad[] = {0, 6, 7, 8, 12, 15, 0xee, 0xff};
	uint8_t raw[16] = {1, 0};
	size_t i;

	raw[1] = NET_INTEGER;
	ASSERT_EQ(tuple_rv(raw, sizeof raw, 0), 0);
	for (i = 0; i < sizeof bad; i++) {
		raw[1] = bad[i];
		ASSERT_EQ(tuple_rv(raw, sizeof raw, 0), QF_EMALFORMED);
	}
	return TEST_OK;
}

/* UNIXTIME is well-formed as a parameter (binding may refuse it). */
TEST(tuple, unixtime_parameter)
{
	uint8_t raw[16] = {1, NET_UNIXTIME, 0, 0, 0, 0, 0, 0, 0x10};
	struct net_slice s = {raw, sizeof raw};
	struct net_value want = v_int(16);

	want.type = NET_UNIXTIME;
	ASSERT_EQ(check_tuple(&s, 0, &want, 1), TEST_OK);
	return TEST_OK;
}

/* Every truncation of a tuple with every value type is malformed. */
TEST(tuple, every_truncation)
{
	struct fx x;
	struct net_value p[8];
	size_t k;

	every_type(p);
	fx_init(&x);
	ASSERT_EQ(net_encode_exec(&x.b, 0, 0, p, 8), 0);
	ASSERT_EQ(fx_req(&x), 0);
	for (k = 1; k < x.r.u.exec.params.len; k++)
		ASSERT_EQ(tuple_rv(x.r.u.exec.params.p, k, 0), QF_EMALFORMED);
	ASSERT_EQ(tuple_rv(x.r.u.exec.params.p, k, 0), 0);
	fx_close(&x);
	return TEST_OK;
}

/* A count larger than the type bytes present is malformed. */
TEST(tuple, count_beyond_body)
{
	uint8_t raw[8] = {255, 1, 1, 1, 1, 1, 1, 1};
	uint8_t raw1[8] = {0xff, 0xff, 0xff, 0xff, 1, 1, 1, 1};

	ASSERT_EQ(tuple_rv(raw, sizeof raw, 0), QF_EMALFORMED);
	ASSERT_EQ(tuple_rv(raw1, sizeof raw1, 1), QF_EMALFORMED);
	return TEST_OK;
}

/* An explicit count of zero is a tuple of no values. */
TEST(tuple, zero_count)
{
	uint8_t raw[8] = {0, 0xaa, 0xbb};
	struct net_slice s = {raw, sizeof raw};

	ASSERT_EQ(check_tuple(&s, 0, NULL, 0), TEST_OK);
	return TEST_OK;
}

/* The encoder refuses a parameter type outside §6.2 and writes nothing. */
TEST(tuple, encoder_refuses_bad_type)
{
	struct net_buf b;
	struct net_value p[2] = {v_int(1), v_word(6, 0)};

	net_buf_init(&b, MAX);
	ASSERT_EQ(net_encode_exec_sql(&b, 0, "X", p, 2), -EINVAL);
	ASSERT_EQ(b.len, 0);
	ASSERT_EQ(b.status, 0);
	net_buf_close(&b);
	return TEST_OK;
}

/* ---- ROWS ---- */

/* Encode one ROWS message with @n_rows copies of @row, ending as @done. */
static int rows_encode(struct net_buf *b, const char *const *names,
		       uint64_t n_cols, const struct net_value *row,
		       int n_rows, bool done)
{
	struct net_rows_enc w;
	int i;

	ASSERT_EQ(net_rows_begin(&w, b, names, n_cols), 0);
	for (i = 0; i < n_rows; i++)
		ASSERT_EQ(net_rows_add(&w, row), 0);
	ASSERT_EQ(net_rows_end(&w, done), 0);
	return TEST_OK;
}

static const char *const col_names[17] = {"a", "b", "c", "d", "e", "f",
					  "g", "h", "i", "j", "k", "l",
					  "m", "n", "o", "p", "q"};

/* Rows with every value type round-trip, row after row. */
TEST(rows, every_type)
{
	struct fx x;
	struct net_value row[8];
	struct net_rows r;
	int i, k;

	every_type(row);
	fx_init(&x);
	ASSERT_EQ(rows_encode(&x.b, col_names, 8, row, 3, true), TEST_OK);
	ASSERT_EQ(fx_resp(&x, NET_RESP_ROWS), 0);
	ASSERT_EQ(net_rows_init(&r, &x.m.body), 0);
	for (k = 0; k < 3; k++) {
		ASSERT_EQ(net_rows_next(&r), 1);
		for (i = 0; i < 8; i++)
			ASSERT_EQ(same_value(&r.row[i], &row[i]), TEST_OK);
	}
	ASSERT_EQ(net_rows_next(&r), 0);
	ASSERT_U64_EQ(r.end, NET_ROWS_DONE);
	ASSERT_EQ(net_rows_next(&r), 0);
	net_rows_close(&r);
	fx_close(&x);
	return TEST_OK;
}

/* With an odd column count the last high nibble is zero padding. */
TEST(rows, odd_column_nibbles)
{
	struct net_buf b;
	struct net_value row[3] = {v_int(1), v_float(2),
				   v_word(NET_BOOLEAN, 0)};

	net_buf_init(&b, MAX);
	ASSERT_EQ(rows_encode(&b, col_names, 3, row, 1, true), TEST_OK);
	/* header, count, 3 names, then the row header. */
	ASSERT_MEM_EQ(b.data + 8 + 8 + 24, "\x21\x0b\0\0\0\0\0\0", 8);
	net_buf_close(&b);
	return TEST_OK;
}

/* Seventeen columns need a 2-word row header and still round-trip. */
TEST(rows, seventeen_columns)
{
	struct fx x;
	struct net_value row[17];
	struct net_rows r;
	int i;

	for (i = 0; i < 17; i++)
		row[i] = i == 16 ? v_text(NET_TEXT, "last") : v_int(i);
	fx_init(&x);
	ASSERT_EQ(rows_encode(&x.b, col_names, 17, row, 2, false), TEST_OK);
	ASSERT_EQ(x.b.data[8 + 8 + 17 * 8 + 8], NET_TEXT); /* col 16 */
	ASSERT_EQ(fx_resp(&x, NET_RESP_ROWS), 0);
	ASSERT_EQ(net_rows_init(&r, &x.m.body), 0);
	ASSERT_EQ(net_rows_next(&r), 1);
	ASSERT_EQ(net_rows_next(&r), 1);
	ASSERT_STR(r.row[16].text.p, "last");
	ASSERT_EQ(r.row[15].integer, 15);
	ASSERT_EQ(net_rows_next(&r), 0);
	ASSERT_U64_EQ(r.end, NET_ROWS_PART);
	net_rows_close(&r);
	fx_close(&x);
	return TEST_OK;
}

/* A PART batch ends with 0xee... and says more messages follow. */
TEST(rows, part_marker)
{
	struct net_buf b;
	struct net_value row = v_int(5);

	net_buf_init(&b, MAX);
	ASSERT_EQ(rows_encode(&b, col_names, 1, &row, 1, false), TEST_OK);
	ASSERT_MEM_EQ(b.data + b.len - 8, "\xee\xee\xee\xee\xee\xee\xee\xee",
		      8);
	net_buf_close(&b);
	return TEST_OK;
}

/* Rows that end without a marker are malformed. */
TEST(rows, missing_marker)
{
	struct fx x;
	struct net_rows r;

	fx_init(&x);
	ASSERT_EQ(fx_hex(&x, "03000000 07 00 0000 0100000000000000 "
			     "6100000000000000 0100000000000000"),
		  0);
	ASSERT_EQ(net_rows_init(&r, &x.m.body), 0);
	ASSERT_EQ(net_rows_next(&r), QF_EMALFORMED);
	net_rows_close(&r);
	fx_close(&x);
	return TEST_OK;
}

/* A row header nibble outside §6.2 is malformed, even 0xe or 0xf. */
TEST(rows, bad_nibble)
{
	static const char *const heads[] = {"0600000000000000",
					    "1f00000000000000",
					    "eeeeeeee00000000",
					    "0000000000000000"};
	char hex[256];
	struct fx x;
	struct net_rows r;
	size_t i;

	fx_init(&x);
	for (i = 0; i < sizeof heads / sizeof heads[0]; i++) {
		snprintf(hex, sizeof hex,
			 "05000000 07 00 0000 0200000000000000 6100000000000000"
			 "6200000000000000 %s ffffffffffffffff",
			 heads[i]);
		ASSERT_EQ(fx_hex(&x, hex), 0);
		ASSERT_EQ(net_rows_init(&r, &x.m.body), 0);
		ASSERT_EQ(net_rows_next(&r), QF_EMALFORMED);
		net_rows_close(&r);
	}
	fx_close(&x);
	return TEST_OK;
}

/* A column count of zero, or beyond what the body can name, is malformed
 * and allocates nothing. */
TEST(rows, bad_column_count)
{
	struct fx x;
	struct net_rows r;

	fx_init(&x);
	ASSERT_EQ(fx_hex(&x, "02000000 07 00 0000 0000000000000000 "
			     "ffffffffffffffff"),
		  0);
	ASSERT_EQ(net_rows_init(&r, &x.m.body), QF_EMALFORMED);
	ASSERT_NULL(r.names);
	ASSERT_EQ(fx_hex(&x, "02000000 07 00 0000 ffffffffffffff1f "
			     "6100000000000000"),
		  0);
	ASSERT_EQ(net_rows_init(&r, &x.m.body), QF_EMALFORMED);
	ASSERT_NULL(r.names);
	ASSERT_NULL(r.row);
	fx_close(&x);
	return TEST_OK;
}

/* Every truncation of the §14.2 ROWS body fails before the marker. */
TEST(rows, every_truncation)
{
	uint8_t raw[128];
	size_t n = unhex(CAP_14_2_ROWS, raw, sizeof raw) - 8, k;
	uint8_t *c;
	struct net_slice s;
	struct net_rows r;
	int rv;

	for (k = 0; k <= n; k++) {
		c = dup_exact(raw + 8, k);
		s.p = c;
		s.len = k;
		rv = net_rows_init(&r, &s);
		while (rv == 0 && (rv = net_rows_next(&r)) == 1)
			rv = 0;
		ASSERT_EQ(rv, k == n ? 0 : QF_EMALFORMED);
		net_rows_close(&r);
		free(c);
	}
	return TEST_OK;
}

/* The encoder refuses a row with a bad type and keeps the earlier rows. */
TEST(rows, encoder_refuses_bad_type)
{
	struct fx x;
	struct net_rows_enc w;
	struct net_value good = v_int(1), bad = v_word(0, 0);
	struct net_rows r;

	fx_init(&x);
	ASSERT_EQ(net_rows_begin(&w, &x.b, col_names, 1), 0);
	ASSERT_EQ(net_rows_add(&w, &good), 0);
	ASSERT_EQ(net_rows_add(&w, &bad), -EINVAL);
	ASSERT_EQ(net_rows_end(&w, true), 0);
	ASSERT_EQ(fx_resp(&x, NET_RESP_ROWS), 0);
	ASSERT_EQ(net_rows_init(&r, &x.m.body), 0);
	ASSERT_EQ(net_rows_next(&r), 1);
	ASSERT_EQ(net_rows_next(&r), 0);
	net_rows_close(&r);
	fx_close(&x);
	return TEST_OK;
}

/* A ROWS message needs at least one column. */
TEST(rows, encoder_refuses_no_columns)
{
	struct net_buf b;
	struct net_rows_enc w;

	net_buf_init(&b, MAX);
	ASSERT_EQ(net_rows_begin(&w, &b, col_names, 0), -EINVAL);
	ASSERT_EQ(b.len, 0);
	net_buf_close(&b);
	return TEST_OK;
}

/* A row that does not fit leaves a batch that can still end with PART. */
TEST(rows, row_too_big_for_buffer)
{
	struct net_buf b;
	struct net_rows_enc w;
	static char big[300];
	struct net_value small = v_int(1), large;

	memset(big, 'z', sizeof big - 1);
	large = v_text(NET_TEXT, big);
	net_buf_init(&b, 256);
	ASSERT_EQ(net_rows_begin(&w, &b, col_names, 1), 0);
	ASSERT_EQ(net_rows_add(&w, &small), 0);
	ASSERT_EQ(net_rows_add(&w, &large), -EMSGSIZE);
	ASSERT_EQ(w.n_rows, 1);
	ASSERT_EQ(net_rows_end(&w, false), 0);
	ASSERT_EQ(b.len, 8 + 8 + 8 + 16 + 8);
	net_buf_close(&b);
	return TEST_OK;
}

/* After aborting a half-built batch a FAILURE goes out clean (§6.4). */
TEST(rows, abort_then_clean_failure)
{
	struct fx x;
	struct net_rows_enc w;
	struct net_value row = v_int(1);
	struct net_failure f;

	fx_init(&x);
	ASSERT_EQ(net_rows_begin(&w, &x.b, col_names, 1), 0);
	ASSERT_EQ(net_rows_add(&w, &row), 0);
	net_rows_abort(&w);
	ASSERT_EQ(net_encode_failure(&x.b, 1, "integer overflow"), 0);
	ASSERT_EQ(fx_resp(&x, NET_RESP_FAILURE), 0);
	ASSERT_EQ(net_decode_failure(&x.m.body, &f), 0);
	ASSERT_U64_EQ(f.code, 1);
	ASSERT_STR(f.message, "integer overflow");
	fx_close(&x);
	return TEST_OK;
}

/* ---- incremental decoder ---- */

/* A handshake then six messages of various shapes; @big adds a 10 KiB
 * body, larger than the decoder's first allocation. */
struct stream {
	struct net_buf b;
	size_t start[8]; /* where message i begins; start[n] = end */
	int n;
};

static void stream_add(struct stream *s, int rv)
{
	if (rv != 0)
		abort();
	s->start[++s->n] = s->b.len;
}

static void stream_build(struct stream *s, bool big)
{
	static uint8_t blob[10000];
	struct net_value p[8], v = v_blob(blob, sizeof blob);

	every_type(p);
	net_buf_init(&s->b, MAX);
	if (net_encode_handshake(&s->b, NET_PROTO_VERSION) != 0)
		abort();
	s->n = 0;
	s->start[0] = s->b.len;
	stream_add(s, net_encode_leader(&s->b));
	stream_add(s, net_encode_client(&s->b, 0));
	stream_add(s, net_encode_open(&s->b, "demo", 0, "volatile"));
	stream_add(s, net_encode_exec_sql(&s->b, 0, "INSERT", p, 8));
	if (big)
		stream_add(s, net_encode_query_sql(&s->b, 0, "SELECT", &v, 1));
	stream_add(s, net_encode_finalize(&s->b, 0, 1));
}

/* Message @i of @s equals @m. */
static int stream_check(const struct stream *s, int i,
			const struct net_msg *m)
{
	const uint8_t *want = s->b.data + s->start[i];
	size_t len = s->start[i + 1] - s->start[i] - NET_HEADER_SIZE;

	ASSERT_TRUE(i < s->n);
	ASSERT_EQ(m->h.words * 8, len);
	ASSERT_EQ(m->h.type, want[4]);
	ASSERT_EQ(m->body.len, len);
	ASSERT_MEM_EQ(m->body.p, want + NET_HEADER_SIZE, len);
	return TEST_OK;
}

static uint64_t xorshift(uint64_t *st)
{
	*st ^= *st << 13;
	*st ^= *st >> 7;
	*st ^= *st << 17;
	return *st;
}

/* Chunk sizes: 0 = whole, 1 = byte by byte, else random from seed. */
static size_t next_chunk(uint64_t *st)
{
	if (*st <= 1)
		return *st == 0 ? SIZE_MAX : 1;
	return xorshift(st) % 8 == 0 ? 1 + xorshift(st) % 20000
				      : 1 + xorshift(st) % 40;
}

/* Feed @s in chunks chosen by @seed; every message must come out, in
 * order, exactly once, and the handshake once before them. */
static int stream_feed(const struct stream *s, uint64_t seed)
{
	struct net_decoder d;
	struct net_msg m;
	size_t off = 0, n, k, used, len = s->b.len;
	uint8_t *chunk;
	int got = 0, hs = 0, rv;

	net_decoder_init(&d, MAX, true);
	while (off < len) {
		n = next_chunk(&seed);
		if (n > len - off)
			n = len - off;
		chunk = dup_exact(s->b.data + off, n);
		for (k = 0; k < n; k += used) {
			rv = net_decoder_feed(&d, chunk + k, n - k, &used, &m);
			ASSERT_TRUE(rv >= 0);
			ASSERT_TRUE(used > 0);
			if (rv == NET_FEED_HANDSHAKE) {
				ASSERT_EQ(got, 0);
				hs++;
			} else if (rv == NET_FEED_MESSAGE) {
				ASSERT_EQ(stream_check(s, got, &m), TEST_OK);
				got++;
			}
		}
		free(chunk);
		off += n;
	}
	ASSERT_EQ(hs, 1);
	ASSERT_EQ(got, s->n);
	ASSERT_U64_EQ(d.version, NET_PROTO_VERSION);
	net_decoder_close(&d);
	return TEST_OK;
}

/* A whole stream in one chunk yields every message. */
TEST(decoder, one_chunk)
{
	struct stream s;

	stream_build(&s, true);
	ASSERT_EQ(stream_feed(&s, 0), TEST_OK);
	net_buf_close(&s.b);
	return TEST_OK;
}

/* A stream fed one byte at a time yields every message. */
TEST(decoder, byte_by_byte)
{
	struct stream s;

	stream_build(&s, true);
	ASSERT_EQ(stream_feed(&s, 1), TEST_OK);
	net_buf_close(&s.b);
	return TEST_OK;
}

/* A stream fed in random chunk sizes yields every message, for 200
 * different chunkings. */
TEST(decoder, random_chunks)
{
	struct stream s;
	uint64_t seed;

	stream_build(&s, true);
	for (seed = 2; seed < 202; seed++)
		ASSERT_EQ(stream_feed(&s, seed * 0x9e3779b97f4a7c15ULL),
			  TEST_OK);
	net_buf_close(&s.b);
	return TEST_OK;
}

/* Whole messages inside a chunk are handed out in place, without copy. */
TEST(decoder, zero_copy_in_chunk)
{
	struct stream s;
	struct net_decoder d;
	struct net_msg m;
	size_t off = 0, used;
	int i;

	stream_build(&s, false);
	net_decoder_init(&d, MAX, true);
	for (i = -1; i < s.n; i++) {
		ASSERT_TRUE(net_decoder_feed(&d, s.b.data + off, s.b.len - off,
					     &used, &m) > 0);
		off += used;
		if (i >= 0)
			ASSERT_TRUE(m.body.p == s.b.data + s.start[i] + 8);
	}
	ASSERT_EQ(off, s.b.len);
	ASSERT_NULL(d.body);
	net_decoder_close(&d);
	net_buf_close(&s.b);
	return TEST_OK;
}

/* Every prefix of a stream yields only its complete messages, then asks
 * for more; nothing is ever reported for a partial message. */
TEST(decoder, every_prefix_incomplete)
{
	struct stream s;
	struct net_decoder d;
	struct net_msg m;
	size_t len, off, used;
	uint8_t *c;
	int got, want, rv;

	stream_build(&s, false);
	for (len = 0; len < s.b.len; len++) {
		c = dup_exact(s.b.data, len);
		net_decoder_init(&d, MAX, true);
		got = 0;
		off = 0;
		do {
			rv = net_decoder_feed(&d, c + off, len - off, &used,
					      &m);
			off += used;
			got += rv == NET_FEED_MESSAGE;
		} while (rv > 0);
		for (want = 0; want < s.n && s.start[want + 1] <= len; want++)
			;
		ASSERT_EQ(rv, NET_FEED_MORE);
		ASSERT_EQ(got, want);
		net_decoder_close(&d);
		free(c);
	}
	net_buf_close(&s.b);
	return TEST_OK;
}

/* A header claiming more than the maximum is refused before any body
 * memory is taken. */
TEST(decoder, oversized)
{
	struct net_decoder d;
	struct net_msg m;
	uint8_t hdr[8] = {0xff, 0xff, 0xff, 0xff, NET_REQ_OPEN};
	size_t used;

	net_decoder_init(&d, 1024, false);
	ASSERT_EQ(net_decoder_feed(&d, hdr, 8, &used, &m), -EMSGSIZE);
	ASSERT_NULL(d.body);
	ASSERT_EQ(d.body_cap, 0);
	net_decoder_close(&d);
	return TEST_OK;
}

/* A message of exactly the maximum (header included) is accepted, one
 * word more is not. */
TEST(decoder, exact_maximum)
{
	struct net_decoder d;
	struct net_msg m;
	static uint8_t msg[1024];
	size_t used;

	qf_put_le32(msg, (1024 - 8) / 8);
	net_decoder_init(&d, 1024, false);
	ASSERT_EQ(net_decoder_feed(&d, msg, sizeof msg, &used, &m),
		  NET_FEED_MESSAGE);
	net_decoder_close(&d);
	qf_put_le32(msg, (1024 - 8) / 8 + 1);
	net_decoder_init(&d, 1024, false);
	ASSERT_EQ(net_decoder_feed(&d, msg, sizeof msg, &used, &m), -EMSGSIZE);
	net_decoder_close(&d);
	return TEST_OK;
}

/* A large claimed body costs memory only as its bytes arrive. */
TEST(decoder, memory_follows_bytes)
{
	struct net_decoder d;
	struct net_msg m;
	static uint8_t bytes[8 + 100];
	size_t used;

	qf_put_le32(bytes, (32u << 20) / 8); /* 32 MiB claimed */
	net_decoder_init(&d, NET_MAX_MSG_DEFAULT, false);
	ASSERT_EQ(net_decoder_feed(&d, bytes, sizeof bytes, &used, &m),
		  NET_FEED_MORE);
	ASSERT_TRUE(d.body_cap <= 4096);
	ASSERT_EQ(d.body_len, 100);
	net_decoder_close(&d);
	return TEST_OK;
}

/* A body buffer grows to the body size, no more, and is released after a
 * large message. */
TEST(decoder, large_buffer_released)
{
	struct net_decoder d;
	struct net_msg m;
	size_t n = 8 + (200u << 10), used;
	uint8_t *bytes = calloc(1, n);

	ASSERT_NOT_NULL(bytes);
	qf_put_le32(bytes, (200u << 10) / 8);
	net_decoder_init(&d, MAX, false);
	ASSERT_EQ(net_decoder_feed(&d, bytes, 100, &used, &m), NET_FEED_MORE);
	ASSERT_EQ(net_decoder_feed(&d, bytes + 100, n - 100, &used, &m),
		  NET_FEED_MESSAGE);
	ASSERT_EQ(d.body_cap, 200u << 10); /* capped at the body size */
	ASSERT_EQ(net_decoder_feed(&d, bytes, 0, &used, &m), NET_FEED_MORE);
	ASSERT_NULL(d.body);
	net_decoder_close(&d);
	free(bytes);
	return TEST_OK;
}

/* Feeding no bytes, even from NULL, asks for more in every state. */
TEST(decoder, empty_feed)
{
	struct net_decoder d;
	struct net_msg m;
	uint8_t w[12] = {1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0};
	size_t used = 99;

	net_decoder_init(&d, MAX, true);
	ASSERT_EQ(net_decoder_feed(&d, NULL, 0, &used, &m), NET_FEED_MORE);
	ASSERT_EQ(used, 0);
	ASSERT_EQ(net_decoder_feed(&d, w, 8, &used, &m), NET_FEED_HANDSHAKE);
	ASSERT_EQ(net_decoder_feed(&d, NULL, 0, &used, &m), NET_FEED_MORE);
	ASSERT_EQ(net_decoder_feed(&d, w + 8, 4, &used, &m), NET_FEED_MORE);
	ASSERT_EQ(net_decoder_feed(&d, NULL, 0, &used, &m), NET_FEED_MORE);
	ASSERT_EQ(d.word_len, 4);
	net_decoder_close(&d);
	return TEST_OK;
}

/* words = 0 is an error and the error is sticky. */
TEST(decoder, words_zero_sticky)
{
	struct net_decoder d;
	struct net_msg m;
	uint8_t bytes[16] = {0, 0, 0, 0, NET_REQ_LEADER};
	size_t used;

	net_decoder_init(&d, MAX, false);
	ASSERT_EQ(net_decoder_feed(&d, bytes, 16, &used, &m), QF_EMALFORMED);
	ASSERT_EQ(net_decoder_feed(&d, bytes, 16, &used, &m), QF_EMALFORMED);
	ASSERT_EQ(used, 0);
	net_decoder_close(&d);
	return TEST_OK;
}

/* An unknown handshake word is refused; the legacy one is reported. */
TEST(decoder, handshake_words)
{
	struct net_decoder d;
	struct net_msg m;
	uint8_t w[8];
	size_t used;

	qf_put_le64(w, 2);
	net_decoder_init(&d, MAX, true);
	ASSERT_EQ(net_decoder_feed(&d, w, 8, &used, &m), -EPROTONOSUPPORT);
	net_decoder_close(&d);
	qf_put_le64(w, NET_PROTO_LEGACY);
	net_decoder_init(&d, MAX, true);
	ASSERT_EQ(net_decoder_feed(&d, w, 3, &used, &m), NET_FEED_MORE);
	ASSERT_EQ(net_decoder_feed(&d, w + 3, 5, &used, &m),
		  NET_FEED_HANDSHAKE);
	ASSERT_U64_EQ(d.version, NET_PROTO_LEGACY);
	net_decoder_close(&d);
	return TEST_OK;
}

/* A header sent alone, then its body later, is reassembled (§1.4). */
TEST(decoder, split_header_and_body)
{
	struct net_decoder d;
	struct net_msg m;
	uint8_t raw[64];
	size_t n = unhex(CAP_OPEN, raw, sizeof raw), used;
	struct net_request r;

	net_decoder_init(&d, MAX, false);
	ASSERT_EQ(net_decoder_feed(&d, raw, 8, &used, &m), NET_FEED_MORE);
	ASSERT_EQ(net_decoder_feed(&d, raw + 8, n - 8, &used, &m),
		  NET_FEED_MESSAGE);
	ASSERT_EQ(used, n - 8);
	ASSERT_EQ(net_decode_request(&m, &r), 0);
	ASSERT_STR(r.u.open.name, "demo");
	net_decoder_close(&d);
	return TEST_OK;
}

/* Decoding works from an odd address. */
TEST(decoder, unaligned_input)
{
	uint8_t raw[128], *odd = malloc(129);
	size_t n = unhex(CAP_14_1, raw, sizeof raw);
	struct net_value p[4];
	struct fx x;

	ASSERT_NOT_NULL(odd);
	memcpy(odd + 1, raw, n);
	cap_14_1_params(p);
	fx_init(&x);
	ASSERT_EQ(fx_frame(&x, odd + 1, n), 0);
	ASSERT_EQ(net_decode_request(&x.m, &x.r), 0);
	ASSERT_EQ(check_tuple(&x.r.u.exec_sql.params, 0, p, 4), TEST_OK);
	fx_close(&x);
	free(odd);
	return TEST_OK;
}

/* ---- request errors ---- */

/* Unknown request types are reported as such, with the type kept. */
TEST(request, unknown_type)
{
	struct fx x;
	static const uint8_t types[] = {20, 42, 255};
	size_t i;

	fx_init(&x);
	for (i = 0; i < sizeof types; i++) {
		net_buf_reset(&x.b);
		ASSERT_EQ(encode_one_word(&x.b, types[i], 0), 0);
		ASSERT_EQ(fx_req(&x), -ENOSYS);
		ASSERT_EQ(x.r.type, types[i]);
	}
	ASSERT_STR(net_request_name(42), "unknown");
	ASSERT_STR(net_request_name(NET_REQ_EXEC_SQL), "exec_sql");
	fx_close(&x);
	return TEST_OK;
}

/* Schema 1 is refused on types that have only revision 0, and schema 2
 * everywhere (§3). */
TEST(request, unsupported_schema)
{
	struct fx x;
	uint8_t *hdr;

	fx_init(&x);
	ASSERT_EQ(net_encode_leader(&x.b), 0);
	x.b.data[5] = 1;
	ASSERT_EQ(fx_req(&x), -EPROTONOSUPPORT);
	ASSERT_EQ(x.r.schema, 1);
	ASSERT_TRUE(!net_request_has_rev1(NET_REQ_LEADER));
	net_buf_reset(&x.b);
	ASSERT_EQ(net_encode_exec_sql(&x.b, 0, "X", NULL, 0), 0);
	hdr = x.b.data;
	hdr[5] = 2;
	ASSERT_EQ(fx_req(&x), -EPROTONOSUPPORT);
	fx_close(&x);
	return TEST_OK;
}

/* Schema 1 is accepted on PREPARE, EXEC, QUERY, EXEC_SQL, QUERY_SQL. */
TEST(request, schema1_accepted)
{
	struct fx x;
	static const uint8_t types[] = {NET_REQ_PREPARE, NET_REQ_EXEC,
					NET_REQ_QUERY, NET_REQ_EXEC_SQL,
					NET_REQ_QUERY_SQL};
	size_t i, start;

	fx_init(&x);
	for (i = 0; i < sizeof types; i++) {
		net_buf_reset(&x.b);
		start = net_msg_begin(&x.b, types[i], 1);
		net_put_u64(&x.b, 0);
		net_put_text(&x.b, "SELECT 1");
		ASSERT_EQ(net_msg_end(&x.b, start), 0);
		ASSERT_EQ(fx_req(&x), 0);
		ASSERT_EQ(x.r.schema, 1);
	}
	fx_close(&x);
	return TEST_OK;
}

static bool has_tuple(uint8_t type)
{
	return type == NET_REQ_EXEC || type == NET_REQ_QUERY ||
	       type == NET_REQ_EXEC_SQL || type == NET_REQ_QUERY_SQL;
}

/* Every truncation of each request body is rejected, except the ones
 * that are a complete shorter form (no tuple, 1-word ASSIGN), whose
 * leftover tuple bytes are then rejected by the tuple decoder. */
TEST(request, every_truncation)
{
	struct fx x;
	struct net_value p[8];
	struct net_msg m;
	struct net_request r;
	struct net_tuple t;
	struct net_slice *params;
	size_t k, i, n, start;
	uint8_t *c;
	int rv;

	every_type(p);
	fx_init(&x);
	stream_add_all(&x.b, p);
	for (i = 0, start = 0; start < x.b.len; i++, start += n) {
		n = 8 + qf_get_le32(x.b.data + start) * 8;
		for (k = 0; k < n - 8; k++) {
			c = dup_exact(x.b.data + start + 8, k);
			net_header_decode(x.b.data + start, &m.h);
			m.body.p = c;
			m.body.len = k;
			rv = net_decode_request(&m, &r);
			params = r.type == NET_REQ_EXEC ||
						 r.type == NET_REQ_QUERY
					 ? &r.u.exec.params
					 : &r.u.exec_sql.params;
			if (rv == 0 && r.type == NET_REQ_ASSIGN) {
				ASSERT_EQ(k, 8);
			} else if (rv == 0) {
				ASSERT_TRUE(has_tuple(r.type));
				ASSERT_TRUE(params->len == 0 ||
					    net_tuple_init(&t, params, 0) ==
						    QF_EMALFORMED);
			} else {
				ASSERT_EQ(rv, QF_EMALFORMED);
			}
			free(c);
		}
	}
	ASSERT_EQ(i, NET_REQ_COUNT);
	fx_close(&x);
	return TEST_OK;
}

/* A request text field with no NUL is malformed (§1.5). */
TEST(request, text_without_nul)
{
	struct fx x;

	fx_init(&x);
	ASSERT_EQ(fx_hex(&x, "02000000 0f 00 0000 64656d6f64656d6f "
			     "0000000000000000"),
		  0);
	ASSERT_EQ(net_decode_request(&x.m, &x.r), 0); /* name "demodemo" */
	ASSERT_EQ(fx_hex(&x, "02000000 0f 00 0000 64656d6f64656d6f "
			     "6162636465666768"),
		  0);
	ASSERT_EQ(net_decode_request(&x.m, &x.r), QF_EMALFORMED);
	fx_close(&x);
	return TEST_OK;
}

/* Extra words after the fixed fields are ignored (§1.3). */
TEST(request, extra_words_ignored)
{
	struct fx x;

	fx_init(&x);
	ASSERT_EQ(fx_hex(&x, "02000000 00 00 0000 0000000000000000 "
			     "0102030405060708"),
		  0);
	ASSERT_EQ(net_decode_request(&x.m, &x.r), 0);
	ASSERT_EQ(fx_hex(&x, "04000000 0f 00 0000 6462000000000000 "
			     "0000000000000000 0000000000000000 "
			     "0000000000000000"),
		  0);
	ASSERT_EQ(net_decode_request(&x.m, &x.r), 0);
	ASSERT_STR(x.r.u.dump.name, "db");
	fx_close(&x);
	return TEST_OK;
}

int main(int argc, char **argv)
{
	return unit_main(argc, argv);
}
