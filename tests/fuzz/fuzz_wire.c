/* libFuzzer harness for the wire decoders (net/codec*.c).
 *
 * Each input is run three ways:
 *  1. As a client's byte stream (handshake first) through the incremental
 *     decoder, twice: in one piece and in chunks whose sizes derive from
 *     the input.  Both runs must yield the same messages and end the same
 *     way.  Every message is decoded as a request; an accepted request must
 *     re-encode to a message that decodes to the same fields, and its
 *     parameter tuple, if valid, must survive re-encoding value by value.
 *  2. As a server's byte stream (no handshake): every message is decoded
 *     as the response its type names; a valid ROWS message must survive
 *     re-encoding row by row.
 *  3. As a raw body (any length, not only whole words) of each of the 20
 *     request types, with schema 0 and 1, and of every response decoder.
 * Beyond the sanitizers' checks it aborts when a decoder returns a code
 * outside its contract or a property above does not hold.
 *
 * Built with -DQF_FUZZ_MAIN instead of -fsanitize=fuzzer it is a plain
 * program: "fuzz_wire FILE|DIR..." runs the harness over a corpus (for the
 * normal test suite), and "fuzz_wire --write-seeds DIR" writes the seed
 * corpus of tests/fuzz/corpus/wire/. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/codec.h"

#define FUZZ_MAX_MSG (256u << 10) /* small, so the cap is reached */
#define MAX_MSGS 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_wire: %s\n", what);
	abort();
}

static void check_rv(int rv, bool nomem_ok)
{
	if (rv != 0 && rv != QF_EMALFORMED && !(nomem_ok && rv == -ENOMEM))
		fail("unexpected error code");
}

static bool same_text(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

static bool same_value(const struct net_value *a, const struct net_value *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case NET_INTEGER:
	case NET_UNIXTIME:
		return a->integer == b->integer;
	case NET_FLOAT:
		return memcmp(&a->real, &b->real, sizeof a->real) == 0;
	case NET_TEXT:
	case NET_ISO8601:
		return a->text.len == b->text.len &&
		       memcmp(a->text.p, b->text.p, a->text.len) == 0;
	case NET_BLOB:
		return a->blob.len == b->blob.len &&
		       (a->blob.len == 0 ||
			memcmp(a->blob.p, b->blob.p, a->blob.len) == 0);
	case NET_NULL:
		return true; /* its word is not read, and written as 0 */
	default:
		return a->word == b->word;
	}
}

/* Frame the single message in @b and decode it as a request. */
static void reframe(const struct net_buf *b, struct net_decoder *d,
		    struct net_request *r)
{
	struct net_msg m;
	size_t used;

	net_decoder_init(d, b->len, false);
	if (net_decoder_feed(d, b->data, b->len, &used, &m) !=
		    NET_FEED_MESSAGE ||
	    used != b->len)
		fail("re-encoded request does not frame");
	if (net_decode_request(&m, r) != 0)
		fail("re-encoded request does not decode");
}

static bool has_tuple(uint8_t type)
{
	return type == NET_REQ_EXEC || type == NET_REQ_QUERY ||
	       type == NET_REQ_EXEC_SQL || type == NET_REQ_QUERY_SQL;
}

static const struct net_slice *params_of(const struct net_request *r)
{
	if (r->type == NET_REQ_EXEC || r->type == NET_REQ_QUERY)
		return &r->u.exec.params;
	return &r->u.exec_sql.params;
}

/* The fields of two decoded requests are equal. */
static bool same_request(const struct net_request *a,
			 const struct net_request *b)
{
	const struct net_slice *pa, *pb;

	if (a->type != b->type || a->schema != b->schema)
		return false;
	if (has_tuple(a->type)) {
		pa = params_of(a);
		pb = params_of(b);
		if (pa->len != pb->len ||
		    (pa->len > 0 && memcmp(pa->p, pb->p, pa->len) != 0))
			return false;
	}
	switch (a->type) {
	case NET_REQ_OPEN:
		return same_text(a->u.open.name, b->u.open.name) &&
		       a->u.open.flags == b->u.open.flags &&
		       same_text(a->u.open.vfs, b->u.open.vfs);
	case NET_REQ_PREPARE:
		return a->u.prepare.db_id == b->u.prepare.db_id &&
		       same_text(a->u.prepare.sql, b->u.prepare.sql);
	case NET_REQ_EXEC:
	case NET_REQ_QUERY:
		return a->u.exec.db_id == b->u.exec.db_id &&
		       a->u.exec.stmt_id == b->u.exec.stmt_id;
	case NET_REQ_FINALIZE:
		return a->u.finalize.db_id == b->u.finalize.db_id &&
		       a->u.finalize.stmt_id == b->u.finalize.stmt_id;
	case NET_REQ_EXEC_SQL:
	case NET_REQ_QUERY_SQL:
		return a->u.exec_sql.db_id == b->u.exec_sql.db_id &&
		       same_text(a->u.exec_sql.sql, b->u.exec_sql.sql);
	case NET_REQ_CONNECT:
		return a->u.connect.id == b->u.connect.id &&
		       same_text(a->u.connect.address, b->u.connect.address);
	case NET_REQ_ADD:
		return a->u.add.id == b->u.add.id &&
		       same_text(a->u.add.address, b->u.add.address);
	case NET_REQ_ASSIGN:
		return a->u.assign.id == b->u.assign.id &&
		       a->u.assign.role == b->u.assign.role &&
		       a->u.assign.has_role == b->u.assign.has_role;
	case NET_REQ_DUMP:
		return same_text(a->u.dump.name, b->u.dump.name);
	default: /* the one-word bodies share the layout of leader */
		return a->u.leader.unused == b->u.leader.unused;
	}
}

/* A valid tuple yields exactly n values, and those values re-encode into
 * a tuple that yields the same values. */
static void check_tuple(const struct net_slice *params, uint8_t schema)
{
	struct net_tuple t, t2;
	struct net_value *v, w;
	struct net_decoder d;
	struct net_request r;
	struct net_buf b;
	uint32_t i;
	int rv;

	rv = net_tuple_init(&t, params, schema);
	check_rv(rv, false);
	if (rv != 0)
		return;
	v = malloc((t.n > 0 ? t.n : 1) * sizeof *v);
	if (v == NULL)
		fail("out of memory");
	for (i = 0; i < t.n; i++)
		if (net_tuple_next(&t, &v[i]) != 1)
			fail("valid tuple ended early");
	if (net_tuple_next(&t, &w) != 0)
		fail("valid tuple did not end");
	net_buf_init(&b, params->len + 1024); /* never grows the values */
	if (net_encode_exec_sql(&b, 0, "x", v, t.n) != 0)
		fail("decoded values do not encode");
	reframe(&b, &d, &r);
	if (net_tuple_init(&t2, &r.u.exec_sql.params, r.schema) != 0 ||
	    t2.n != t.n)
		fail("re-encoded tuple does not decode");
	for (i = 0; i < t.n; i++)
		if (net_tuple_next(&t2, &w) != 1 || !same_value(&w, &v[i]))
			fail("value changed through re-encoding");
	net_decoder_close(&d);
	net_buf_close(&b);
	free(v);
}

/* Decode @m as a request; check codes, re-encoding and the tuple. */
static void check_request(const struct net_msg *m, bool reencode)
{
	struct net_request r, again;
	struct net_decoder d;
	struct net_buf b;
	int rv = net_decode_request(m, &r);

	if (rv == -ENOSYS || rv == -EPROTONOSUPPORT) {
		if (r.type != m->h.type || r.schema != m->h.schema)
			fail("type or schema lost on error");
		return;
	}
	check_rv(rv, false);
	if (rv != 0)
		return;
	if (has_tuple(r.type))
		check_tuple(params_of(&r), r.schema);
	if (!reencode)
		return;
	net_buf_init(&b, m->body.len + 1024);
	if (net_encode_request(&b, &r) != 0)
		fail("decoded request does not encode");
	reframe(&b, &d, &again);
	if (!same_request(&r, &again))
		fail("request changed through re-encoding");
	net_decoder_close(&d);
	net_buf_close(&b);
}

/* Read a whole ROWS body; a valid one must re-encode row by row. */
static void check_rows(const struct net_slice *body)
{
	struct net_rows r, r2;
	struct net_rows_enc w;
	struct net_buf b;
	struct net_slice s;
	uint64_t i;
	int rv;

	rv = net_rows_init(&r, body);
	check_rv(rv, true);
	if (rv != 0)
		return;
	net_buf_init(&b, body->len + 64);
	if (net_rows_begin(&w, &b, r.names, r.n_cols) != 0)
		fail("decoded column names do not encode");
	while ((rv = net_rows_next(&r)) == 1)
		if (net_rows_add(&w, r.row) != 0)
			fail("decoded row does not encode");
	check_rv(rv, false);
	if (rv == 0) {
		if (net_rows_end(&w, r.end == NET_ROWS_DONE) != 0)
			fail("rows do not end");
		s.p = b.data + NET_HEADER_SIZE;
		s.len = b.len - NET_HEADER_SIZE;
		if (net_rows_init(&r2, &s) != 0 || r2.n_cols != r.n_cols)
			fail("re-encoded rows do not decode");
		for (i = 0; i < r.n_cols; i++)
			if (!same_text(r.names[i], r2.names[i]))
				fail("column name changed");
		while ((rv = net_rows_next(&r2)) == 1)
			;
		if (rv != 0 || r2.end != r.end)
			fail("re-encoded rows do not end the same");
		net_rows_close(&r2);
	}
	net_buf_close(&b);
	net_rows_close(&r);
}

/* Every response decoder over @body, whatever its type. */
static void check_responses(const struct net_slice *body, uint8_t schema)
{
	struct net_failure f;
	struct net_server_info si;
	struct net_welcome we;
	struct net_db db;
	struct net_stmt st;
	struct net_result re;
	struct net_metadata md;
	struct net_servers sv;
	struct net_node node;
	struct net_files fl;
	struct net_file file;
	uint64_t format;
	int rv;

	check_rv(net_decode_failure(body, &f), false);
	check_rv(net_decode_server(body, false, &si), false);
	check_rv(net_decode_server(body, true, &si), false);
	check_rv(net_decode_welcome(body, &we), false);
	check_rv(net_decode_db(body, &db), false);
	rv = net_decode_stmt(body, schema, &st);
	if (!(schema > 1 && rv == -EPROTONOSUPPORT))
		check_rv(rv, false);
	check_rv(net_decode_result(body, &re), false);
	check_rv(net_decode_empty(body), false);
	check_rv(net_decode_metadata(body, &md), false);
	for (format = 0; format < 2; format++) {
		rv = net_servers_init(&sv, body, format);
		while (rv == 0 && (rv = net_servers_next(&sv, &node)) == 1)
			rv = 0;
		check_rv(rv, false);
	}
	rv = net_files_init(&fl, body);
	while (rv == 0 && (rv = net_files_next(&fl, &file)) == 1)
		rv = 0;
	check_rv(rv, false);
	check_rows(body);
}

/* What one pass of the incremental decoder saw. */
struct trace {
	uint64_t msgs[MAX_MSGS]; /* a hash of each message */
	size_t n;
	int end; /* the last return code */
	size_t consumed;
};

static uint64_t msg_hash(const struct net_msg *m)
{
	uint64_t h = (uint64_t)m->h.words << 16 | (uint64_t)m->h.type << 8 |
		     m->h.schema;

	return qf_hash64(m->body.p, m->body.len, h);
}

/* Run the decoder over @data in chunks (1 + a pseudo-random size below
 * @spread, or all at once for 0) and check every message. */
static void run_stream(const uint8_t *data, size_t size, bool server,
		       size_t spread, struct trace *t)
{
	struct net_decoder d;
	struct net_msg m;
	uint64_t seed = qf_hash64(data, size, 7) | 1;
	size_t off = 0, n, used;
	int rv = NET_FEED_MORE;

	t->n = 0;
	net_decoder_init(&d, FUZZ_MAX_MSG, server);
	while (off < size) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		n = spread == 0 ? size - off : 1 + seed % spread;
		if (n > size - off)
			n = size - off;
		rv = net_decoder_feed(&d, data + off, n, &used, &m);
		if (rv < 0)
			break;
		if (used == 0 || used > n)
			fail("bad used count");
		off += used;
		if (rv != NET_FEED_MESSAGE)
			continue;
		if (m.body.len != (size_t)m.h.words * 8 || m.h.words == 0 ||
		    m.body.len + NET_HEADER_SIZE > FUZZ_MAX_MSG)
			fail("message breaks the framing rules");
		if (t->n < MAX_MSGS)
			t->msgs[t->n++] = msg_hash(&m);
		if (spread != 0)
			continue; /* check bodies once, on the whole run */
		if (server)
			check_request(&m, true);
		else
			check_responses(&m.body, m.h.schema);
	}
	if (rv < 0 && rv != QF_EMALFORMED && rv != -EMSGSIZE &&
	    rv != -EPROTONOSUPPORT)
		fail("unexpected decoder error");
	if (rv == -EPROTONOSUPPORT && !server)
		fail("handshake error without a handshake");
	t->end = rv;
	t->consumed = off;
	net_decoder_close(&d);
}

static struct trace whole, chunked;

static void check_stream(const uint8_t *data, size_t size, bool server)
{
	size_t spread = 1 + (size > 0 ? data[0] % 23 : 0);

	run_stream(data, size, server, 0, &whole);
	run_stream(data, size, server, spread, &chunked);
	if (whole.n != chunked.n ||
	    memcmp(whole.msgs, chunked.msgs, whole.n * sizeof *whole.msgs) !=
		    0)
		fail("chunking changed the messages");
	if ((whole.end < 0) != (chunked.end < 0) ||
	    (whole.end < 0 && whole.end != chunked.end))
		fail("chunking changed the outcome");
	if (whole.end >= 0 &&
	    (whole.consumed != size || chunked.consumed != size))
		fail("input not consumed");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct net_msg m;
	unsigned type, schema;

	check_stream(data, size, true);
	check_stream(data, size, false);
	/* Raw bodies: decoders must hold on any length. */
	m.body.p = data;
	m.body.len = size;
	m.h.words = (uint32_t)(size / 8);
	m.h.extra = 0;
	for (type = 0; type <= NET_REQ_COUNT; type++) {
		for (schema = 0; schema < 2; schema++) {
			m.h.type = (uint8_t)type;
			m.h.schema = (uint8_t)schema;
			check_request(&m, false);
		}
	}
	check_responses(&m.body, 0);
	check_responses(&m.body, 1);
	return 0;
}

#ifdef QF_FUZZ_MAIN
#include <dirent.h>

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long len;
	int rv = -1;

	if (f == NULL)
		goto err;
	if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0)
		goto err_after_open;
	buf = malloc(len > 0 ? (size_t)len : 1);
	if (buf == NULL || fread(buf, 1, (size_t)len, f) != (size_t)len)
		goto err_after_buf;
	LLVMFuzzerTestOneInput(buf, (size_t)len);
	rv = 0;

err_after_buf:
	free(buf);
err_after_open:
	fclose(f);
err:
	if (rv != 0)
		fprintf(stderr, "fuzz_wire: cannot read %s\n", path);
	return rv;
}

/* Run every regular file in @path, or @path itself if not a directory. */
static int run_path(const char *path, int *count)
{
	DIR *d = opendir(path);
	struct dirent *de;
	char full[4096];
	int rv = 0;

	if (d == NULL) {
		(*count)++;
		return run_file(path);
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(full, sizeof full, "%s/%s", path, de->d_name);
		(*count)++;
		if (run_file(full) != 0)
			rv = -1;
	}
	closedir(d);
	return rv;
}

/* Captures from wire-protocol.md §4, §5, §10 and §14. */
static const char *const captures[][2] = {
	{"capture_14_1_exec_sql",
	 "0100000000000000 0b00000008000000 0000000000000000 "
	 "494e5345525420494e544f206b762056414c554553283f2c203f2c203f2c20"
	 "3f2900000000000000 0403010205000000 6b31000000000000 "
	 "2a00000000000000 000000000000e0bf 0000000000000000"},
	{"capture_14_1_result",
	 "0200000006000000 0100000000000000 0100000000000000"},
	{"capture_14_2_query_sql",
	 "0100000000000000 0500000009000000 0000000000000000 "
	 "53454c454354206b2c20762c20662c206e2046524f4d206b7600000000000000"},
	{"capture_14_2_rows",
	 "0b00000007000000 0400000000000000 6b00000000000000 "
	 "7600000000000000 6600000000000000 6e00000000000000 "
	 "1352000000000000 6b31000000000000 2a00000000000000 "
	 "000000000000e0bf 0000000000000000 ffffffffffffffff"},
	{"capture_14_3_go_exec_sql",
	 "0100000000000000 0b00000008000000 0000000000000000 "
	 "494e53455254204f52205245504c41434520494e544f206d6f64656c286b6579"
	 "2c2076616c7565292056414c554553283f2c203f29000000 "
	 "020303515545286b 68656c6c6f000000 776f726c64000000"},
	{"capture_14_3_go_rows",
	 "0700000007000000 0200000000000000 6964000000000000 "
	 "6e616d6500000000 3100000000000000 0100000000000000 "
	 "68656c6c6f000000 ffffffffffffffff"},
	{"capture_4_3_open",
	 "0100000000000000 0400000003000000 64656d6f00000000 "
	 "0000000000000000 766f6c6174696c65 0000000000000000"},
	{"capture_4_1_leader_answer",
	 "0300000001000000 be55318c8571c12d 3132372e302e302e "
	 "313a393030310000"},
	{"capture_4_1_legacy_answer",
	 "0200000001000000 3132372e302e302e313a393030310000"},
	{"capture_4_17_servers",
	 "0500000003000000 0100000000000000 be55318c8571c12d "
	 "3132372e302e302e 313a393030310000 0000000000000000"},
	{"capture_5_small_responses",
	 "0100000002000000 983a000000000000 0100000008000000 "
	 "0000000000000000 0100000004000000 0000000000000000 "
	 "0200000005000000 0000000001000000 0100000000000000 "
	 "0300000000000000 0a28000000000000 6e6f74206c656164 "
	 "6572000000000000"},
	{"capture_10_connect",
	 "0100000000000000 030000000b000000 be55318c8571c12d "
	 "3132372e302e302e313a393030310000"},
};

static int write_file(const char *dir, const char *file, const void *p,
		      size_t n)
{
	char path[4096];
	FILE *f;
	int rv = -1;

	snprintf(path, sizeof path, "%s/%s", dir, file);
	f = fopen(path, "wb");
	if (f != NULL) {
		rv = fwrite(p, 1, n, f) == n ? 0 : -1;
		if (fclose(f) != 0)
			rv = -1;
	}
	if (rv != 0)
		fprintf(stderr, "fuzz_wire: cannot write %s\n", path);
	return rv;
}

static int write_hex(const char *dir, const char *file, const char *hex)
{
	uint8_t out[1024];
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
		} else {
			if (n == sizeof out)
				fail("capture too long");
			out[n++] = (uint8_t)(hi << 4 | d);
			hi = -1;
		}
	}
	return write_file(dir, file, out, n);
}

static void every_type(struct net_value v[8])
{
	static const uint8_t blob[] = {0, 1, 2, 0xff, 0xfe};

	memset(v, 0, 8 * sizeof *v);
	v[0].type = NET_INTEGER;
	v[0].integer = -1;
	v[1].type = NET_FLOAT;
	v[1].real = 3.25;
	v[2].type = NET_TEXT;
	v[2].text.p = "text";
	v[2].text.len = 4;
	v[3].type = NET_BLOB;
	v[3].blob.p = blob;
	v[3].blob.len = sizeof blob;
	v[4].type = NET_NULL;
	v[5].type = NET_UNIXTIME;
	v[5].integer = 1700000000;
	v[6].type = NET_ISO8601;
	v[6].text.p = "2006-01-02 15:04:05";
	v[6].text.len = 19;
	v[7].type = NET_BOOLEAN;
	v[7].word = 1;
}

/* Encoder outputs: one stream per request type family, and responses. */
static int write_encoded(const char *dir)
{
	static const char *const names[8] = {"a", "b", "c", "d",
					     "e", "f", "g", "h"};
	static uint8_t page[64];
	struct net_file files[2] = {{"db", page, sizeof page},
				    {"db-wal", NULL, 0}};
	struct net_node nodes[2] = {{1, "127.0.0.1:9001", 0},
				    {2, "127.0.0.1:9002", 2}};
	struct net_stmt st = {0, 1, 2, 3};
	struct net_value v[300];
	struct net_rows_enc w;
	struct net_buf b;
	int rv = 0, i;

	every_type(v);
	net_buf_init(&b, 1u << 20);

	rv |= net_encode_handshake(&b, NET_PROTO_VERSION);
	rv |= net_encode_leader(&b);
	rv |= net_encode_client(&b, 0);
	rv |= net_encode_heartbeat(&b, 1);
	rv |= net_encode_open(&b, "demo", 0, "volatile");
	rv |= net_encode_prepare(&b, 0, "SELECT ?");
	rv |= net_encode_exec(&b, 0, 1, v, 8);
	rv |= net_encode_query(&b, 0, 1, v, 8);
	rv |= net_encode_finalize(&b, 0, 1);
	rv |= net_encode_exec_sql(&b, 0, "INSERT INTO t VALUES(?)", v, 8);
	rv |= net_encode_query_sql(&b, 0, "SELECT ?", v, 8);
	rv |= net_encode_interrupt(&b, 0);
	rv |= net_encode_connect(&b, 1, "127.0.0.1:9001");
	rv |= net_encode_add(&b, 2, "127.0.0.1:9002");
	rv |= net_encode_assign(&b, 2, NET_ROLE_STANDBY);
	rv |= net_encode_remove(&b, 2);
	rv |= net_encode_dump(&b, "demo");
	rv |= net_encode_cluster(&b, 1);
	rv |= net_encode_transfer(&b, 0);
	rv |= net_encode_describe(&b, 0);
	rv |= net_encode_weight(&b, 5);
	rv |= write_file(dir, "encoded_all_requests", b.data, b.len);

	net_buf_reset(&b);
	rv |= net_encode_handshake(&b, NET_PROTO_LEGACY);
	rv |= net_encode_leader(&b);
	rv |= write_file(dir, "encoded_legacy_leader", b.data, b.len);

	net_buf_reset(&b);
	for (i = 8; i < 300; i++)
		v[i] = v[i % 8];
	rv |= net_encode_handshake(&b, NET_PROTO_VERSION);
	rv |= net_encode_exec_sql(&b, 0, "INSERT", v, 300);
	rv |= write_file(dir, "encoded_rev1_300_params", b.data, b.len);

	net_buf_reset(&b);
	rv |= net_encode_failure(&b, 1, "near \"SELEC\": syntax error");
	rv |= net_encode_server(&b, 1, "127.0.0.1:9001");
	rv |= net_encode_welcome(&b, NET_HEARTBEAT_TIMEOUT_MS);
	rv |= net_encode_servers(&b, nodes, 2, 1);
	rv |= net_encode_db(&b, 0);
	rv |= net_encode_stmt(&b, &st, 0);
	rv |= net_encode_stmt(&b, &st, 1);
	rv |= net_encode_result(&b, 1, 1);
	rv |= net_rows_begin(&w, &b, names, 8);
	rv |= net_rows_add(&w, v);
	rv |= net_rows_end(&w, false);
	rv |= net_rows_begin(&w, &b, names, 8);
	rv |= net_rows_add(&w, v);
	rv |= net_rows_add(&w, v);
	rv |= net_rows_end(&w, true);
	rv |= net_encode_empty(&b);
	rv |= net_encode_files(&b, files, 2);
	rv |= net_encode_metadata(&b, 0, 0);
	rv |= write_file(dir, "encoded_all_responses", b.data, b.len);

	net_buf_close(&b);
	return rv;
}

static int write_seeds(const char *dir)
{
	size_t i;
	int rv = 0;

	for (i = 0; i < sizeof captures / sizeof captures[0]; i++)
		rv |= write_hex(dir, captures[i][0], captures[i][1]);
	rv |= write_encoded(dir);
	return rv;
}

int main(int argc, char **argv)
{
	int i, count = 0, rv = 0;

	if (argc == 3 && strcmp(argv[1], "--write-seeds") == 0)
		return write_seeds(argv[2]) == 0 ? 0 : 1;
	for (i = 1; i < argc; i++)
		if (run_path(argv[i], &count) != 0)
			rv = 1;
	printf("fuzz_wire: %d inputs\n", count);
	return rv != 0 || count == 0;
}
#endif /* QF_FUZZ_MAIN */
