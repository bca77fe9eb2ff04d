/* Unit tests for SQL sessions (net/session.c).
 *
 * A session runs against a plain temporary directory as its "mount" (it
 * does not care that it is not FUSE).  Requests are built with the codec's
 * encoders and submitted as the server would (header type and schema, and
 * the body); the out callback collects the response messages, which the
 * tests decode with the codec's response decoders. */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "net/codec.h"
#include "net/session.h"
#include "tests/lib/unit.h"

#define ASSERT_STR(a, b) ASSERT_TRUE(strcmp((a), (b)) == 0)
#define WAIT_S 30
#define NCOL 10

/* A decoded response other than ROWS. */
struct resp {
	uint8_t type;
	uint8_t schema;
	uint64_t code; /* FAILURE */
	char msg[512];
	struct net_result result;
	struct net_stmt stmt;
};

/* A result set read from ROWS messages, or the FAILURE that ended it. */
struct qres {
	int msgs;  /* ROWS messages */
	int parts; /* of which ended in PART */
	long rows;
	uint64_t end; /* marker of the last one */
	int failed;
	uint64_t code;
	char msg[256];
	size_t max_len; /* largest ROWS message, header included */
	int n_cols;
	char names[NCOL][32];
	struct net_value first[NCOL]; /* first row; text and blobs copied */
	char text[NCOL][64];
	long sum;	   /* of column 0 when INTEGER */
	long order_errors; /* column 0 not counting up from 1 */
};

struct fx {
	char dir[64];
	struct net_session *s;
	struct net_buf b; /* the request being built */
	struct resp r;	  /* the last response */
	struct qres q;	  /* the last result set */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct {
		uint8_t *bytes;
		size_t len;
	} * v;		  /* every message received, in order */
	size_t n, cap;	  /* under @mu */
	size_t next;	  /* the next one to read */
	int leader;	  /* what is_leader answers */
	int gone;	  /* out fails from now on */
	int interrupt_at; /* ROWS messages before interrupting (0: never) */
	int rows_msgs;
};

/* ---- the fixture ---- */

static int fx_is_leader(void *arg)
{
	struct fx *f = arg;

	return __atomic_load_n(&f->leader, __ATOMIC_SEQ_CST);
}

/* What the server does on an INTERRUPT: interrupt, then submit it. */
static void fx_interrupt(struct fx *f)
{
	static const uint8_t body[8] = {0};

	net_session_interrupt(f->s);
	if (net_session_submit(f->s, NET_REQ_INTERRUPT, 0, body, 8) != 0)
		abort();
}

static int fx_out(void *arg, uint8_t *bytes, size_t len)
{
	struct fx *f = arg;
	void *v;

	if (bytes == NULL)
		abort(); /* the session ran out of memory: not here */
	pthread_mutex_lock(&f->mu);
	if (f->gone) {
		pthread_mutex_unlock(&f->mu);
		free(bytes);
		return -1;
	}
	if (f->n == f->cap) {
		f->cap = f->cap > 0 ? f->cap * 2 : 64;
		v = realloc(f->v, f->cap * sizeof *f->v);
		if (v == NULL)
			abort();
		f->v = v;
	}
	f->v[f->n].bytes = bytes;
	f->v[f->n].len = len;
	f->n++;
	pthread_cond_broadcast(&f->cond);
	if (bytes[4] == NET_RESP_ROWS && ++f->rows_msgs == f->interrupt_at)
		fx_interrupt(f); /* the client's INTERRUPT arrives now */
	pthread_mutex_unlock(&f->mu);
	return 0;
}

/* A config for @f's directory, sending to @f. */
static struct net_session_config fx_config(struct fx *f)
{
	struct net_session_config c = {.mount = f->dir,
				       .batch_bytes = 4096,
				       .max_msg = 1 << 24,
				       .is_leader = fx_is_leader,
				       .out = fx_out,
				       .arg = f};

	return c;
}

/* A fixture with its directory, without a session yet. */
static void fx_prepare(struct fx *f)
{
	memset(f, 0, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/qf_session_XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		abort();
	net_buf_init(&f->b, 1 << 24);
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cond, NULL);
	f->leader = 1;
}

/* A fixture whose session runs in @mount (NULL: its own directory). */
static void fx_init(struct fx *f, const char *mount)
{
	struct net_session_config c;

	fx_prepare(f);
	c = fx_config(f);
	if (mount != NULL)
		c.mount = mount;
	if (net_session_new(&f->s, &c) != 0)
		abort();
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void fx_close(struct fx *f)
{
	size_t i;

	if (f->s != NULL)
		net_session_free(f->s);
	for (i = 0; i < f->n; i++)
		free(f->v[i].bytes);
	free(f->v);
	net_buf_close(&f->b);
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->mu);
	(void)nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Submit the request that @enc_rv says is encoded in f->b. */
static int fx_send(struct fx *f, int enc_rv)
{
	struct net_header h;
	int rv;

	if (enc_rv != 0 || net_header_decode(f->b.data, &h) != 0)
		return -1;
	rv = net_session_submit(f->s, h.type, h.schema, f->b.data + 8,
				f->b.len - 8);
	net_buf_reset(&f->b);
	return rv;
}

/* The next response: 0 with its header and body, or -1 after WAIT_S. */
static int fx_next(struct fx *f, struct net_header *h, struct net_slice *body)
{
	struct timespec until;
	uint8_t *p;
	size_t len;
	int rv = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += WAIT_S;
	pthread_mutex_lock(&f->mu);
	while (f->next == f->n && rv == 0)
		rv = pthread_cond_timedwait(&f->cond, &f->mu, &until);
	if (f->next == f->n) {
		pthread_mutex_unlock(&f->mu);
		return -1;
	}
	p = f->v[f->next].bytes;
	len = f->v[f->next++].len;
	pthread_mutex_unlock(&f->mu);
	if (len < 8 || net_header_decode(p, h) != 0 ||
	    (size_t)h->words * 8 != len - 8)
		return -1;
	body->p = p + 8;
	body->len = len - 8;
	return 0;
}

/* No message is waiting. */
static bool fx_idle(struct fx *f)
{
	bool idle;

	pthread_mutex_lock(&f->mu);
	idle = f->next == f->n;
	pthread_mutex_unlock(&f->mu);
	return idle;
}

/* The next response into f->r: 0 for the @want type, the code of a
 * FAILURE, or -1 for anything else. */
static long fx_resp(struct fx *f, uint8_t want)
{
	struct resp *r = &f->r;
	struct net_failure fail;
	struct net_header h;
	struct net_slice body;
	int rv = -1;

	memset(r, 0, sizeof *r);
	if (fx_next(f, &h, &body) != 0)
		return -1;
	r->type = h.type;
	r->schema = h.schema;
	if (h.type == NET_RESP_FAILURE &&
	    net_decode_failure(&body, &fail) == 0) {
		r->code = fail.code;
		snprintf(r->msg, sizeof r->msg, "%s", fail.message);
		return (long)fail.code;
	}
	if (h.type != want)
		return -1;
	if (want == NET_RESP_RESULT)
		rv = net_decode_result(&body, &r->result);
	else if (want == NET_RESP_STMT)
		rv = net_decode_stmt(&body, h.schema, &r->stmt);
	else if (want == NET_RESP_DB)
		rv = body.len == 8 ? 0 : -1;
	else if (want == NET_RESP_EMPTY)
		rv = net_decode_empty(&body);
	return rv == 0 ? 0 : -1;
}

/* Copy the first row's values into @q. */
static void keep_first(struct qres *q, const struct net_rows *rows)
{
	struct net_value *v;
	int i;

	for (i = 0; i < q->n_cols && i < NCOL; i++) {
		v = &q->first[i];
		*v = rows->row[i];
		if (v->type == NET_TEXT || v->type == NET_ISO8601) {
			snprintf(q->text[i], 64, "%s", v->text.p);
			v->text.p = q->text[i];
		} else if (v->type == NET_BLOB && v->blob.len <= 64) {
			memcpy(q->text[i], v->blob.p, v->blob.len);
			v->blob.p = q->text[i];
		}
	}
}

/* Read ROWS messages into f->q until DONE or a FAILURE: 0, or the
 * FAILURE's code, or -1 on anything else. */
static long fx_rows(struct fx *f)
{
	struct qres *q = &f->q;
	struct net_failure fail;
	struct net_header h;
	struct net_slice body;
	struct net_rows rows;
	int rv, i;

	memset(q, 0, sizeof *q);
	for (;;) {
		if (fx_next(f, &h, &body) != 0)
			return -1;
		if (h.type == NET_RESP_FAILURE) {
			if (net_decode_failure(&body, &fail) != 0)
				return -1;
			q->failed = 1;
			q->code = fail.code;
			snprintf(q->msg, sizeof q->msg, "%s", fail.message);
			return (long)fail.code;
		}
		if (h.type != NET_RESP_ROWS || h.schema != 0 ||
		    net_rows_init(&rows, &body) != 0)
			return -1;
		q->msgs++;
		if (body.len + 8 > q->max_len)
			q->max_len = body.len + 8;
		q->n_cols = (int)rows.n_cols;
		for (i = 0; i < q->n_cols && i < NCOL; i++)
			snprintf(q->names[i], 32, "%s", rows.names[i]);
		while ((rv = net_rows_next(&rows)) == 1) {
			if (q->rows == 0)
				keep_first(q, &rows);
			if (rows.row[0].type == NET_INTEGER) {
				q->sum += rows.row[0].integer;
				if (rows.row[0].integer != q->rows + 1)
					q->order_errors++;
			}
			q->rows++;
		}
		q->end = rows.end;
		net_rows_close(&rows);
		if (rv != 0)
			return -1;
		if (q->end == NET_ROWS_DONE)
			return 0;
		q->parts++;
	}
}

/* ---- requests: 0, or the FAILURE's code, or -1 ---- */

static long open_db(struct fx *f, const char *name)
{
	if (fx_send(f, net_encode_open(&f->b, name, 0, "volatile")) != 0)
		return -1;
	return fx_resp(f, NET_RESP_DB);
}

static long exec_sql(struct fx *f, const char *sql, const struct net_value *p,
		     size_t n)
{
	if (fx_send(f, net_encode_exec_sql(&f->b, 0, sql, p, n)) != 0)
		return -1;
	return fx_resp(f, NET_RESP_RESULT);
}

static long exec(struct fx *f, const char *sql)
{
	return exec_sql(f, sql, NULL, 0);
}

static long query_sql(struct fx *f, const char *sql,
		      const struct net_value *p, size_t n)
{
	if (fx_send(f, net_encode_query_sql(&f->b, 0, sql, p, n)) != 0)
		return -1;
	return fx_rows(f);
}

static long query(struct fx *f, const char *sql)
{
	return query_sql(f, sql, NULL, 0);
}

/* The one integer that @sql yields, or -1. */
static long query_int(struct fx *f, const char *sql)
{
	if (query(f, sql) != 0 || f->q.rows != 1 ||
	    f->q.first[0].type != NET_INTEGER)
		return -1;
	return (long)f->q.first[0].integer;
}

static long prepare(struct fx *f, const char *sql)
{
	if (fx_send(f, net_encode_prepare(&f->b, 0, sql)) != 0)
		return -1;
	return fx_resp(f, NET_RESP_STMT);
}

/* Submit a raw body, as the server would. */
static long raw(struct fx *f, uint8_t type, uint8_t schema, const void *body,
		size_t len, uint8_t want)
{
	if (net_session_submit(f->s, type, schema, body, len) != 0)
		return -1;
	return want == NET_RESP_ROWS ? fx_rows(f) : fx_resp(f, want);
}

/* Submit what @enc_rv says is in f->b and read a response of type @want
 * (ROWS: a whole result set): 0, the FAILURE's code, or -1. */
static long call(struct fx *f, int enc_rv, uint8_t want)
{
	if (fx_send(f, enc_rv) != 0)
		return -1;
	return want == NET_RESP_ROWS ? fx_rows(f) : fx_resp(f, want);
}

/* A recursive CTE counting x from 1 to @n, then @select. */
static const char *counting(char *buf, size_t size, long n, const char *select)
{
	snprintf(buf, size,
		 "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1"
		 " FROM c WHERE x < %ld) %s",
		 n, select);
	return buf;
}

/* Hex digits to bytes; anything else is skipped. */
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
		if (hi >= 0 && n < cap)
			out[n++] = (uint8_t)(hi << 4 | d);
		hi = hi >= 0 ? -1 : d;
	}
	return n;
}

/* @v has @type and integer value @i. */
static bool is_int(const struct net_value *v, uint8_t type, int64_t i)
{
	return v->type == type && v->integer == i;
}

/* @v has @type and text @t. */
static bool is_text(const struct net_value *v, uint8_t type, const char *t)
{
	return v->type == type && strcmp(v->text.p, t) == 0;
}

static struct net_value text_value(uint8_t type, const char *p)
{
	struct net_value v = {.type = type};

	v.text.p = p;
	v.text.len = strlen(p);
	return v;
}

/* ---- OPEN ---- */

/* OPEN creates a missing database in WAL mode and answers DB 0; a second
 * OPEN is FAILURE 5 (§4.3). */
TEST(session, open)
{
	struct fx f;

	fx_init(&f, NULL);
	ASSERT_EQ(open_db(&f, "new.db"), 0);
	ASSERT_EQ(query(&f, "PRAGMA journal_mode"), 0);
	ASSERT_STR(f.q.text[0], "wal");
	ASSERT_EQ(open_db(&f, "b.db"), 5);
	ASSERT_STR(f.r.msg, "a database for this connection is already open");
	fx_close(&f);
	return TEST_OK;
}

/* An existing database in another journal mode keeps it. */
TEST(session, open_existing_keeps_mode)
{
	struct fx f, g;

	fx_init(&f, NULL);
	ASSERT_EQ(open_db(&f, "old.db"), 0);
	ASSERT_EQ(exec(&f, "PRAGMA journal_mode=DELETE"), 100); /* a row */
	ASSERT_EQ(exec(&f, "CREATE TABLE t(x); INSERT INTO t VALUES(7)"), 0);
	fx_init(&g, f.dir);
	ASSERT_EQ(open_db(&g, "old.db"), 0);
	ASSERT_EQ(query(&g, "PRAGMA journal_mode"), 0);
	ASSERT_STR(g.q.text[0], "delete");
	ASSERT_EQ(query_int(&g, "SELECT x FROM t"), 7);
	fx_close(&g);
	fx_close(&f);
	return TEST_OK;
}

/* Names that escape the mount or name a companion file are refused. */
TEST(session, open_bad_names)
{
	static const char *const bad[] = {"../x.db", "/abs.db", "a/../b",
					  "x.db-wal", "x.db-shm",
					  "x.db-journal", "", "a//b", "./a"};
	struct fx f;
	size_t i;

	fx_init(&f, NULL);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ASSERT_EQ(open_db(&f, bad[i]), SQLITE_CANTOPEN);
	ASSERT_EQ(open_db(&f, "good.db"), 0); /* still usable */
	fx_close(&f);
	return TEST_OK;
}

/* ---- values ---- */

/* Every §6.2 type goes in as a parameter and comes back typed as dqlite
 * types it: by value, or by declared type for DATETIME/DATE/TIMESTAMP and
 * BOOLEAN columns. */
TEST(session, value_types)
{
	static const uint8_t blob[] = {0, 1, 2, 0xff};
	struct net_value p[9] = {
		{.type = NET_INTEGER, .integer = -42},
		{.type = NET_FLOAT, .real = 3.25},
		text_value(NET_TEXT, "héllo"),
		{.type = NET_BLOB, .blob = {blob, sizeof blob}},
		{.type = NET_NULL},
		{.type = NET_INTEGER, .integer = 1700000000}, /* DATETIME */
		text_value(NET_ISO8601, "2024-01-02 03:04:05+00:00"),
		{.type = NET_BOOLEAN, .word = 7}, /* nonzero binds as 1 */
		{.type = NET_NULL}};
	struct net_value *v;
	struct fx f;

	fx_init(&f, NULL);
	v = f.q.first;
	ASSERT_EQ(open_db(&f, "v.db"), 0);
	ASSERT_EQ(exec(&f, "CREATE TABLE v (i INTEGER, f REAL, s TEXT, b BLOB, n,"
			   " d DATETIME, ts TIMESTAMP, bo BOOLEAN, dn DATE)"),
		  0);
	ASSERT_EQ(exec_sql(&f, "INSERT INTO v VALUES(?,?,?,?,?,?,?,?,?)", p, 9),
		  0);
	ASSERT_EQ(query(&f, "SELECT * FROM v"), 0);
	ASSERT_EQ(f.q.rows, 1);
	ASSERT_EQ(f.q.n_cols, 9);
	ASSERT_STR(f.q.names[0], "i");
	ASSERT_STR(f.q.names[8], "dn");
	ASSERT_TRUE(is_int(&v[0], NET_INTEGER, -42));
	ASSERT_TRUE(v[1].type == NET_FLOAT && v[1].real == 3.25);
	ASSERT_TRUE(is_text(&v[2], NET_TEXT, "héllo"));
	ASSERT_TRUE(v[3].type == NET_BLOB && v[3].blob.len == sizeof blob);
	ASSERT_MEM_EQ(v[3].blob.p, blob, sizeof blob);
	ASSERT_EQ(v[4].type, NET_NULL);
	ASSERT_TRUE(is_int(&v[5], NET_UNIXTIME, 1700000000));
	ASSERT_TRUE(is_text(&v[6], NET_ISO8601, "2024-01-02 03:04:05+00:00"));
	ASSERT_TRUE(is_int(&v[7], NET_BOOLEAN, 1));
	ASSERT_TRUE(is_text(&v[8], NET_ISO8601, "")); /* a NULL DATE */

	/* NULL in a BOOLEAN column is 0; an empty blob stays a blob; an
	 * expression has no declared type (§6.2 notes). */
	ASSERT_EQ(exec(&f, "INSERT INTO v(bo, b) VALUES(NULL, x'')"), 0);
	ASSERT_EQ(query(&f, "SELECT bo, b, CAST(1 AS BOOLEAN), d + 0 FROM v"
			    " WHERE i IS NULL"),
		  0);
	ASSERT_TRUE(is_int(&v[0], NET_BOOLEAN, 0));
	ASSERT_TRUE(v[1].type == NET_BLOB && v[1].blob.len == 0);
	ASSERT_TRUE(is_int(&v[2], NET_INTEGER, 1));
	ASSERT_EQ(v[3].type, NET_NULL);
	/* A REAL in a DATETIME column stays FLOAT (where 1.11 asserts). */
	ASSERT_EQ(exec(&f, "DELETE FROM v; INSERT INTO v(d) VALUES(1.5)"), 0);
	ASSERT_EQ(query(&f, "SELECT d FROM v"), 0);
	ASSERT_EQ(v[0].type, NET_FLOAT);
	/* UNIXTIME is refused as a parameter, as 1.11 does (§6.2). */
	p[0].type = NET_UNIXTIME;
	ASSERT_EQ(exec_sql(&f, "SELECT ?", p, 1), 1005);
	ASSERT_EQ(query_sql(&f, "SELECT ?", p, 1), 1005);
	fx_close(&f);
	return TEST_OK;
}

/* The §14.1 request and the §14.1 and §14.2 responses, byte for byte. */
TEST(session, reference_bytes)
{
	static const char exec_hex[] =
		"0b00000008000000 0000000000000000 494e5345525420494e544f206b76"
		"2056414c554553283f2c203f2c203f2c203f2900000000000000 "
		"0403010205000000 6b31000000000000 2a00000000000000 "
		"000000000000e0bf 0000000000000000";
	static const char result_hex[] =
		"02000000 06 00 0000 | 0100000000000000 | 0100000000000000";
	static const char rows_hex[] =
		"0b00000007000000 0400000000000000 6b00000000000000 "
		"7600000000000000 6600000000000000 6e00000000000000 "
		"1352000000000000 6b31000000000000 2a00000000000000 "
		"000000000000e0bf 0000000000000000 ffffffffffffffff";
	uint8_t req[128], want[128];
	struct net_header h;
	struct net_slice body;
	struct fx f;
	size_t n;

	fx_init(&f, NULL);
	ASSERT_EQ(open_db(&f, "example"), 0);
	ASSERT_EQ(exec(&f, "CREATE TABLE kv (k TEXT, v INTEGER, f REAL, "
			   "n BLOB)"),
		  0);
	n = unhex(exec_hex, req, sizeof req);
	ASSERT_EQ(n, 96);
	ASSERT_EQ(net_session_submit(f.s, req[4], req[5], req + 8, n - 8), 0);
	ASSERT_EQ(fx_next(&f, &h, &body), 0);
	n = unhex(result_hex, want, sizeof want);
	ASSERT_EQ(body.len + 8, n);
	ASSERT_MEM_EQ(body.p - 8, want, n);
	ASSERT_EQ(fx_send(&f, net_encode_query_sql(&f.b, 0,
						   "SELECT k, v, f, n FROM kv",
						   NULL, 0)),
		  0);
	ASSERT_EQ(fx_next(&f, &h, &body), 0);
	n = unhex(rows_hex, want, sizeof want);
	ASSERT_EQ(body.len + 8, n);
	ASSERT_MEM_EQ(body.p - 8, want, n);
	fx_close(&f);
	return TEST_OK;
}

/* ---- EXEC_SQL ---- */

/* Statements run one at a time, the parameters bind to the first, and
 * RESULT carries the connection's sticky last id and changes (§4.8). */
TEST(session, exec_sql_multi)
{
	struct net_value p = {.type = NET_INTEGER, .integer = 10};
	struct net_result *res;
	struct fx f;

	fx_init(&f, NULL);
	res = &f.r.result;
	ASSERT_EQ(open_db(&f, "m.db"), 0);
	ASSERT_EQ(exec(&f, ""), 0); /* a fresh connection: {0, 0} */
	ASSERT_EQ(res->last_insert_id, 0);
	ASSERT_EQ(res->rows_affected, 0);
	/* 1.11 binds to the first statement, so a parameter there fails. */
	ASSERT_EQ(exec_sql(&f, "CREATE TABLE t(x); SELECT ?", &p, 1), 25);
	ASSERT_EQ(exec(&f, "CREATE TABLE t(x)"), 0);
	ASSERT_EQ(exec_sql(&f,
			   "-- a comment\n INSERT INTO t VALUES(?);;"
			   " INSERT INTO t VALUES(20); /* trailing */ ",
			   &p, 1),
		  0);
	ASSERT_EQ(res->last_insert_id, 2);
	ASSERT_EQ(res->rows_affected, 1);
	ASSERT_EQ(exec(&f, "BEGIN; INSERT INTO t VALUES(30)"), 0);
	ASSERT_EQ(exec(&f, "COMMIT"), 0);
	ASSERT_EQ(res->last_insert_id, 3); /* sticky (§4.8) */
	ASSERT_EQ(res->rows_affected, 1);
	ASSERT_EQ(query_int(&f, "SELECT sum(x) FROM t"), 60);
	fx_close(&f);
	return TEST_OK;
}

/* SQLite errors come back with the extended code and message (§4.8). */
TEST(session, exec_sql_errors)
{
	struct fx f;

	fx_init(&f, NULL);
	ASSERT_EQ(exec(&f, "SELECT 1"), 12); /* no OPEN */
	ASSERT_STR(f.r.msg, "no database opened");
	ASSERT_EQ(open_db(&f, "e.db"), 0);
	ASSERT_EQ(exec(&f, "SELEC 1"), 1);
	ASSERT_STR(f.r.msg, "near \"SELEC\": syntax error");
	ASSERT_EQ(exec(&f, "CREATE TABLE u(k UNIQUE)"), 0);
	/* The first insert stays applied; the failing one stops the rest. */
	ASSERT_EQ(exec(&f, "INSERT INTO u VALUES(1); INSERT INTO u VALUES(1);"
			   " INSERT INTO u VALUES(3)"),
		  2067);
	ASSERT_STR(f.r.msg, "UNIQUE constraint failed: u.k");
	ASSERT_EQ(query_int(&f, "SELECT count(*) * 10 + sum(k) FROM u"), 11);
	ASSERT_EQ(exec(&f, "PRAGMA table_info(u)"), 100);
	ASSERT_STR(f.r.msg, "another row available");
	fx_close(&f);
	return TEST_OK;
}

/* A non-leader refuses EXEC, QUERY, EXEC_SQL and QUERY_SQL with 10250
 * before anything else; OPEN and PREPARE still work (§4, §7.5). */
TEST(session, not_leader)
{
	struct fx f;

	fx_init(&f, NULL);
	f.leader = 0;
	ASSERT_EQ(exec(&f, "SELECT 1"), 10250); /* even without OPEN */
	ASSERT_STR(f.r.msg, "not leader");
	ASSERT_EQ(open_db(&f, "l.db"), 0);
	ASSERT_EQ(query(&f, "SELECT 1"), 10250);
	ASSERT_EQ(prepare(&f, "SELECT 1"), 0);
	ASSERT_EQ(call(&f, net_encode_exec(&f.b, 0, 0, NULL, 0),
		       NET_RESP_RESULT),
		  10250);
	ASSERT_EQ(call(&f, net_encode_query(&f.b, 0, 0, NULL, 0),
		       NET_RESP_ROWS),
		  10250);
	f.leader = 1;
	ASSERT_EQ(exec(&f, "CREATE TABLE t(x)"), 0);
	fx_close(&f);
	return TEST_OK;
}

/* ---- QUERY_SQL ---- */

/* The QUERY_SQL failures of §4.9 and the tuple failures of §6.1. */
TEST(session, query_sql_errors)
{
	struct net_value p[2] = {{.type = NET_INTEGER, .integer = 1},
				 {.type = NET_INTEGER, .integer = 2}};
	uint8_t bad[64]; /* QUERY_SQL "SELECT ?" with type code 42 */
	struct fx f;

	fx_init(&f, NULL);
	ASSERT_EQ(open_db(&f, "q.db"), 0);
	ASSERT_EQ(query(&f, "  -- nothing\n"), 0); /* code 0 (§7.2) */
	ASSERT_EQ(f.q.failed, 1);
	ASSERT_STR(f.q.msg, "empty statement");
	ASSERT_EQ(query(&f, "CREATE TABLE t(x)"), 1);
	ASSERT_STR(f.q.msg, "not an error");
	ASSERT_EQ(query_int(&f, "SELECT count(*) FROM sqlite_master"), 0);
	ASSERT_EQ(query_sql(&f, "SELECT ?", p, 2), 25);
	ASSERT_STR(f.q.msg, "column index out of range");
	ASSERT_EQ(query_sql(&f, "SELECT ?, ?, ?", p, 2), 0); /* too few: OK */
	ASSERT_EQ(f.q.first[2].type, NET_NULL);
	ASSERT_EQ(unhex("0000000000000000 53454c454354203f 0000000000000000"
			" 012a000000000000 0000000000000000",
			bad, sizeof bad),
		  40);
	ASSERT_EQ(raw(&f, NET_REQ_QUERY_SQL, 0, bad, 40, NET_RESP_ROWS), 1005);
	ASSERT_EQ(query(&f, "SELEC 1"), 1);
	/* The tail is ignored: only the first statement runs. */
	ASSERT_EQ(query_int(&f, "SELECT 5; SELECT 6"), 5);
	ASSERT_EQ(f.q.msgs, 1);
	/* An empty result set: the names and DONE. */
	ASSERT_EQ(query(&f, "SELECT 1 AS one WHERE 0"), 0);
	ASSERT_EQ(f.q.rows, 0);
	ASSERT_EQ(f.q.msgs, 1);
	ASSERT_STR(f.q.names[0], "one");
	ASSERT_U64_EQ(f.q.end, NET_ROWS_DONE);
	fx_close(&f);
	return TEST_OK;
}

/* 100,000 rows come in many PART batches of about batch_bytes each, then
 * DONE, every row present and in order (§6.4). */
TEST(session, query_100k_rows)
{
	char sql[256];
	struct fx f;

	fx_init(&f, NULL);
	ASSERT_EQ(open_db(&f, "big.db"), 0);
	ASSERT_EQ(exec(&f, "CREATE TABLE big(x INTEGER, s TEXT)"), 0);
	ASSERT_EQ(exec(&f, counting(sql, sizeof sql, 100000,
				    "INSERT INTO big SELECT x, 'row-' || x"
				    " FROM c")),
		  0);
	ASSERT_EQ(query(&f, "SELECT x, s FROM big ORDER BY x"), 0);
	ASSERT_EQ(f.q.rows, 100000);
	ASSERT_EQ(f.q.order_errors, 0);
	ASSERT_EQ(f.q.sum, 5000050000L);
	ASSERT_TRUE(f.q.msgs > 100);
	ASSERT_EQ(f.q.parts, f.q.msgs - 1);
	ASSERT_U64_EQ(f.q.end, NET_ROWS_DONE);
	/* A batch stops once it holds 4096 bytes: at most one row more. */
	ASSERT_TRUE(f.q.max_len >= 4096 && f.q.max_len <= 4096 + 64);
	fx_close(&f);
	return TEST_OK;
}

/* An error after some batches ends the stream with a clean FAILURE: the
 * real code and message, no rows in front (§6.4). */
TEST(session, mid_stream_error)
{
	char sql[256];
	struct fx f;

	fx_init(&f, NULL);
	ASSERT_EQ(open_db(&f, "err.db"), 0);
	ASSERT_EQ(query(&f, counting(sql, sizeof sql, 5000,
				     "SELECT CASE WHEN x < 3000 THEN x ELSE"
				     " abs(-9223372036854775807 - 1) END"
				     " AS v FROM c")),
		  1);
	ASSERT_STR(f.q.msg, "integer overflow");
	ASSERT_TRUE(f.q.parts > 1);
	ASSERT_TRUE(f.q.rows < 3000);
	ASSERT_EQ(f.q.order_errors, 0);
	/* In the first batch (1.11 sent code 1 and message "v" here). */
	ASSERT_EQ(query(&f, "SELECT abs(-9223372036854775807 - 1) AS v"), 1);
	ASSERT_STR(f.q.msg, "integer overflow");
	ASSERT_TRUE(fx_idle(&f));
	fx_close(&f);
	return TEST_OK;
}

/* An INTERRUPT after the first PART stops a long stream early; exactly one
 * EMPTY follows and nothing else of that query (§6.5). */
TEST(session, interrupt_stream)
{
	char sql[256];
	struct fx f;

	fx_init(&f, NULL);
	ASSERT_EQ(open_db(&f, "i.db"), 0);
	f.interrupt_at = 1; /* the client interrupts after one message */
	ASSERT_EQ(query(&f, counting(sql, sizeof sql, 10000000,
				     "SELECT x FROM c")),
		  -1); /* EMPTY in place of the next ROWS */
	ASSERT_EQ(f.q.msgs, 1);
	ASSERT_U64_EQ(f.q.end, NET_ROWS_PART);
	ASSERT_EQ(f.q.order_errors, 0);
	f.next--; /* that message again */
	ASSERT_EQ(fx_resp(&f, NET_RESP_EMPTY), 0);
	/* Nothing after the EMPTY: the next answer is the next request's,
	 * and it is not interrupted. */
	f.interrupt_at = 0;
	ASSERT_EQ(query(&f, counting(sql, sizeof sql, 20000,
				     "SELECT x FROM c")),
		  0);
	ASSERT_EQ(f.q.rows, 20000);
	/* An INTERRUPT with nothing running is EMPTY too. */
	fx_interrupt(&f);
	ASSERT_EQ(fx_resp(&f, NET_RESP_EMPTY), 0);
	ASSERT_EQ(query_int(&f, "SELECT 1"), 1);
	ASSERT_TRUE(fx_idle(&f));
	fx_close(&f);
	return TEST_OK;
}

/* An INTERRUPT cuts short a query still in its first, long step. */
TEST(session, interrupt_slow_step)
{
	char sql[256];
	struct fx f;

	fx_init(&f, NULL);
	ASSERT_EQ(open_db(&f, "slow.db"), 0);
	counting(sql, sizeof sql, 1000000000, "SELECT count(*) FROM c");
	ASSERT_EQ(fx_send(&f, net_encode_query_sql(&f.b, 0, sql, NULL, 0)), 0);
	usleep(100 * 1000);
	fx_interrupt(&f);
	ASSERT_EQ(fx_resp(&f, NET_RESP_EMPTY), 0); /* well before WAIT_S */
	ASSERT_TRUE(fx_idle(&f));
	fx_close(&f);
	return TEST_OK;
}

/* ---- PREPARE, EXEC, QUERY, FINALIZE ---- */

/* Statement ids take the lowest free slot and are reused after FINALIZE
 * (§4.4, §4.7); EXEC without a tuple keeps the earlier bindings (§4.5). */
TEST(session, prepared_statements)
{
	struct net_value p = {.type = NET_INTEGER, .integer = 5};
	struct net_buf *b;
	struct fx f;
	int i;

	fx_init(&f, NULL);
	b = &f.b;
	ASSERT_EQ(open_db(&f, "p.db"), 0);
	ASSERT_EQ(exec(&f, "CREATE TABLE t(x)"), 0);
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(prepare(&f, "INSERT INTO t VALUES(?)"), 0);
		ASSERT_EQ(f.r.stmt.stmt_id, i);
		ASSERT_EQ(f.r.stmt.n_params, 1);
	}
	ASSERT_EQ(call(&f, net_encode_finalize(b, 0, 1), NET_RESP_EMPTY), 0);
	ASSERT_EQ(call(&f, net_encode_finalize(b, 0, 1), NET_RESP_EMPTY), 12);
	ASSERT_STR(f.r.msg, "no statement with the given id");
	ASSERT_EQ(prepare(&f, "SELECT x FROM t ORDER BY x; junk"), 0);
	ASSERT_EQ(f.r.stmt.stmt_id, 1);
	ASSERT_EQ(f.r.stmt.n_params, 0);

	ASSERT_EQ(call(&f, net_encode_exec(b, 0, 0, &p, 1), NET_RESP_RESULT),
		  0);
	ASSERT_EQ(f.r.result.last_insert_id, 1);
	/* No tuple: the same binding. */
	ASSERT_EQ(call(&f, net_encode_exec(b, 0, 0, NULL, 0), NET_RESP_RESULT),
		  0);
	ASSERT_EQ(f.r.result.last_insert_id, 2);
	for (i = 0; i < 2; i++) { /* twice: the statement was reset */
		ASSERT_EQ(call(&f, net_encode_query(b, 0, 1, NULL, 0),
			       NET_RESP_ROWS),
			  0);
		ASSERT_EQ(f.q.rows, 2);
		ASSERT_EQ(f.q.sum, 10);
	}
	/* EXEC of a statement that yields a row; unknown id; bad db id. */
	ASSERT_EQ(call(&f, net_encode_exec(b, 0, 1, NULL, 0), NET_RESP_RESULT),
		  100);
	ASSERT_EQ(call(&f, net_encode_exec(b, 0, 9, NULL, 0), NET_RESP_RESULT),
		  12);
	ASSERT_EQ(call(&f, net_encode_exec(b, 1, 0, NULL, 0), NET_RESP_RESULT),
		  12);
	ASSERT_STR(f.r.msg, "no database opened");
	/* Empty and broken SQL. */
	ASSERT_EQ(prepare(&f, " /* only a comment */ "), 0); /* code 0 */
	ASSERT_EQ(f.r.type, NET_RESP_FAILURE);
	ASSERT_STR(f.r.msg, "empty statement");
	ASSERT_EQ(prepare(&f, "SELEC"), 1);
	fx_close(&f);
	return TEST_OK;
}

/* PREPARE revision 1 answers STMT revision 1 with the tail offset; other
 * revisions are refused (§3). */
TEST(session, schema_revisions)
{
	static const char sql[] = "SELECT 1; SELECT 2";
	uint8_t body[32] = {0};
	struct fx f;

	fx_init(&f, NULL);
	ASSERT_EQ(open_db(&f, "s.db"), 0);
	memcpy(body + 8, sql, sizeof sql);
	ASSERT_EQ(raw(&f, NET_REQ_PREPARE, 1, body, 32, NET_RESP_STMT), 0);
	ASSERT_EQ(f.r.schema, 1);
	ASSERT_EQ(f.r.stmt.offset, 9);
	ASSERT_EQ(raw(&f, NET_REQ_FINALIZE, 1, body, 8, NET_RESP_EMPTY), 1);
	ASSERT_STR(f.r.msg, "unrecognized schema version");
	ASSERT_EQ(raw(&f, NET_REQ_PREPARE, 2, body, 32, NET_RESP_STMT), 1);
	fx_close(&f);
	return TEST_OK;
}

/* The max_stmts limit gives FAILURE; a freed slot is usable again. */
TEST(session, max_stmts)
{
	struct net_session_config c;
	struct fx f;

	fx_prepare(&f);
	c = fx_config(&f);
	c.max_stmts = 2;
	ASSERT_EQ(net_session_new(&f.s, &c), 0);
	ASSERT_EQ(open_db(&f, "x.db"), 0);
	ASSERT_EQ(prepare(&f, "SELECT 1"), 0);
	ASSERT_EQ(prepare(&f, "SELECT 2"), 0);
	ASSERT_EQ(f.r.stmt.stmt_id, 1);
	ASSERT_EQ(prepare(&f, "SELECT 3"), 1);
	ASSERT_EQ(call(&f, net_encode_finalize(&f.b, 0, 0), NET_RESP_EMPTY), 0);
	ASSERT_EQ(prepare(&f, "SELECT 3"), 0);
	ASSERT_EQ(f.r.stmt.stmt_id, 0);
	fx_close(&f);
	return TEST_OK;
}

/* ---- malformed input, DUMP, lifecycle ---- */

/* A malformed fixed part gets FAILURE 1005; other types are not taken. */
TEST(session, malformed)
{
	static const uint8_t no_nul[8] = "abcdefgh";
	struct fx f;

	fx_init(&f, NULL);
	ASSERT_EQ(raw(&f, NET_REQ_OPEN, 0, no_nul, 8, NET_RESP_DB), 1005);
	ASSERT_EQ(raw(&f, NET_REQ_EXEC, 0, no_nul, 4, NET_RESP_RESULT), 1005);
	ASSERT_EQ(net_session_submit(f.s, NET_REQ_LEADER, 0, no_nul, 8),
		  -EINVAL);
	ASSERT_EQ(net_session_submit(f.s, 42, 0, no_nul, 8), -EINVAL);
	ASSERT_EQ(open_db(&f, "fine.db"), 0);
	fx_close(&f);
	return TEST_OK;
}

/* DUMP @name: 0 with both files (pointing into f's messages), the
 * FAILURE's code, or -1. */
static long dump(struct fx *f, const char *name, struct net_file file[2])
{
	struct net_header h;
	struct net_slice body;
	struct net_files files;

	if (fx_send(f, net_encode_dump(&f->b, name)) != 0 ||
	    fx_next(f, &h, &body) != 0)
		return -1;
	if (h.type == NET_RESP_FAILURE) {
		f->next--;
		return fx_resp(f, NET_RESP_FILES);
	}
	if (h.type != NET_RESP_FILES || net_files_init(&files, &body) != 0 ||
	    files.n != 2 || net_files_next(&files, &file[0]) != 1 ||
	    net_files_next(&files, &file[1]) != 1 ||
	    net_files_next(&files, &file[1]) != 0)
		return -1;
	return 0;
}

/* DUMP gives <name> and <name>-wal (§9): a consistent image, WAL folded
 * in, that opens as a database; a missing one gives two empty files. */
TEST(session, dump)
{
	struct net_file file[2];
	char path[128], sql[256];
	struct fx f, g;
	FILE *out;

	fx_init(&f, NULL);
	ASSERT_EQ(open_db(&f, "d.db"), 0);
	ASSERT_EQ(exec(&f, "CREATE TABLE t(x)"), 0);
	ASSERT_EQ(exec(&f, counting(sql, sizeof sql, 1000,
				    "INSERT INTO t SELECT x FROM c")),
		  0);
	ASSERT_EQ(dump(&f, "d.db", file), 0);
	ASSERT_STR(file[0].name, "d.db");
	ASSERT_STR(file[1].name, "d.db-wal");
	ASSERT_EQ(file[1].size, 0);
	ASSERT_TRUE(file[0].size >= 4096 && file[0].size % 4096 == 0);
	ASSERT_MEM_EQ(file[0].data, "SQLite format 3", 16);
	/* In-header size x page size is the length (§9). */
	ASSERT_EQ((uint64_t)qf_get_be32((const uint8_t *)file[0].data + 28) *
			  4096,
		  file[0].size);
	/* The image opens as a database of its own. */
	fx_init(&g, NULL);
	snprintf(path, sizeof path, "%s/copy.db", g.dir);
	out = fopen(path, "wb");
	ASSERT_NOT_NULL(out);
	ASSERT_EQ(fwrite(file[0].data, 1, file[0].size, out), file[0].size);
	fclose(out);
	ASSERT_EQ(open_db(&g, "copy.db"), 0);
	ASSERT_EQ(query_int(&g, "SELECT count(*) * 1000000 + sum(x) FROM t"),
		  1000500500L);
	fx_close(&g);

	ASSERT_EQ(dump(&f, "missing.db", file), 0);
	ASSERT_EQ(file[0].size, 0);
	ASSERT_EQ(file[1].size, 0);
	ASSERT_STR(file[1].name, "missing.db-wal");
	ASSERT_EQ(dump(&f, "../etc/passwd", file), SQLITE_CANTOPEN);
	fx_close(&f);
	return TEST_OK;
}

/* Once out fails the session stops answering; free still works, with
 * requests queued and a statement open. */
TEST(session, connection_gone)
{
	char sql[256];
	struct fx f;
	int i;

	fx_init(&f, NULL);
	ASSERT_EQ(open_db(&f, "g.db"), 0);
	ASSERT_EQ(prepare(&f, "SELECT 1"), 0);
	pthread_mutex_lock(&f.mu);
	f.gone = 1;
	pthread_mutex_unlock(&f.mu);
	counting(sql, sizeof sql, 100000, "SELECT x FROM c");
	for (i = 0; i < 50; i++)
		ASSERT_EQ(fx_send(&f, net_encode_query_sql(&f.b, 0, sql, NULL,
							   0)),
			  0);
	net_session_free(f.s);
	f.s = NULL;
	ASSERT_EQ(f.n, 2); /* DB and STMT only */
	fx_close(&f);
	return TEST_OK;
}

static long ms_between(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1000 +
	       (b->tv_nsec - a->tv_nsec) / 1000000;
}

/* Free waits neither for a long statement nor for a busy wait. */
TEST(session, free_is_prompt)
{
	struct timespec t0, t1;
	char sql[256];
	struct fx f, g;

	fx_init(&f, NULL);
	ASSERT_EQ(open_db(&f, "b.db"), 0);
	ASSERT_EQ(exec(&f, "CREATE TABLE t(x); BEGIN IMMEDIATE"), 0);
	fx_init(&g, f.dir);
	ASSERT_EQ(open_db(&g, "b.db"), 0);
	/* g waits for f's lock (10 s); f runs a long query. */
	ASSERT_EQ(fx_send(&g, net_encode_exec_sql(&g.b, 0,
						  "INSERT INTO t VALUES(1)",
						  NULL, 0)),
		  0);
	counting(sql, sizeof sql, 1000000000, "SELECT count(*) FROM c");
	ASSERT_EQ(fx_send(&f, net_encode_query_sql(&f.b, 0, sql, NULL, 0)), 0);
	usleep(200 * 1000);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	net_session_free(g.s);
	net_session_free(f.s);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	f.s = g.s = NULL;
	ASSERT_TRUE(ms_between(&t0, &t1) < 2000);
	fx_close(&g);
	fx_close(&f);
	return TEST_OK;
}

/* A writer that waits longer than busy_timeout_ms gets SQLITE_BUSY. */
TEST(session, busy_timeout)
{
	struct net_session_config c;
	struct timespec t0, t1;
	struct fx f, g;

	fx_init(&f, NULL);
	ASSERT_EQ(open_db(&f, "t.db"), 0);
	ASSERT_EQ(exec(&f, "CREATE TABLE t(x); BEGIN IMMEDIATE"), 0);
	fx_prepare(&g);
	c = fx_config(&g);
	c.mount = f.dir;
	c.busy_timeout_ms = 300;
	ASSERT_EQ(net_session_new(&g.s, &c), 0);
	ASSERT_EQ(open_db(&g, "t.db"), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_EQ(exec(&g, "INSERT INTO t VALUES(1)") & 0xff, SQLITE_BUSY);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ASSERT_TRUE(ms_between(&t0, &t1) >= 250);
	ASSERT_TRUE(ms_between(&t0, &t1) < 3000);
	ASSERT_EQ(exec(&f, "COMMIT"), 0);
	ASSERT_EQ(exec(&g, "INSERT INTO t VALUES(1)"), 0);
	fx_close(&g);
	fx_close(&f);
	return TEST_OK;
}

/* ---- concurrency ---- */

#define WRITERS 8
#define WRITES 200

struct writer {
	struct fx f;
	int id;
	int errors;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct net_value p[2] = {{.type = NET_INTEGER, .integer = w->id},
				 {.type = NET_INTEGER}};
	long rv;

	for (p[1].integer = 0; p[1].integer < WRITES; p[1].integer++) {
		rv = exec_sql(&w->f, "INSERT INTO w(writer, n) VALUES(?, ?)",
			      p, 2);
		if (rv == 0)
			continue;
		fprintf(stderr, "writer %d: %ld %s\n", w->id, rv, w->f.r.msg);
		w->errors++;
	}
	return NULL;
}

/* 8 sessions insert into one WAL database at once: the busy timeout makes
 * them wait for the lock instead of failing (issue 3: 0 errors). */
TEST(session, concurrent_writers)
{
	static struct writer w[WRITERS];
	pthread_t th[WRITERS];
	int i, errors = 0;

	for (i = 0; i < WRITERS; i++) {
		fx_init(&w[i].f, i > 0 ? w[0].f.dir : NULL);
		w[i].id = i;
		ASSERT_EQ(open_db(&w[i].f, "shared.db"), 0);
	}
	ASSERT_EQ(exec(&w[0].f,
		       "CREATE TABLE w(id INTEGER PRIMARY KEY, writer, n)"),
		  0);
	for (i = 0; i < WRITERS; i++)
		ASSERT_EQ(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
	for (i = 0; i < WRITERS; i++) {
		pthread_join(th[i], NULL);
		errors += w[i].errors;
	}
	ASSERT_EQ(errors, 0);
	ASSERT_EQ(query_int(&w[3].f, "SELECT count(DISTINCT writer * 1000 + n)"
				     " FROM w"),
		  WRITERS * WRITES);
	ASSERT_EQ(query(&w[5].f, "PRAGMA journal_mode"), 0);
	ASSERT_STR(w[5].f.q.text[0], "wal");
	for (i = WRITERS - 1; i >= 0; i--)
		fx_close(&w[i].f); /* writer 0 last: the files are its */
	return TEST_OK;
}

int main(int argc, char **argv)
{
	return unit_main(argc, argv);
}
