/* Unit tests for the client library (net/client.c).
 *
 * Each test runs the client against fake servers: loopback listeners on
 * 127.0.0.1 (ephemeral ports), each served by a thread that reads the
 * client's requests and replays responses built with the codec's
 * encoders.  The fake records the raw bytes it received, so the tests
 * compare the client's requests with the spec's captures (wire-protocol.md
 * §4, §14) or with the codec's encodings, and it logs "server:request"
 * lines, so the tests check the order of leader discovery (§8.1).
 *
 * A fake server that must not answer (timeouts) or must pace a result
 * set (streaming) waits on a semaphore the test posts. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <poll.h>
#include <semaphore.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/client.h"
#include "net/codec.h"
#include "tests/lib/unit.h"

#define ASSERT_STR(a, b) ASSERT_TRUE(strcmp((a), (b)) == 0)

/* ---- fake servers ---- */

struct fake;
typedef void (*serve_fn)(struct fake *f, int fd, int conn);

struct fake {
	const char *name; /* in log lines */
	int lfd;
	char addr[32]; /* "127.0.0.1:PORT" */
	pthread_t thread;
	serve_fn serve;
	int conns; /* connections to accept before the thread ends */
	/* For the scripted servers. */
	const char *leader; /* what LEADER answers (an address) */
	uint64_t leader_id;
	int round;	     /* LEADER answers so far */
	sem_t go;	     /* posted by the test */
	uint8_t rx[1 << 16]; /* every byte received, in order */
	size_t rx_len;
};

/* The log of requests seen by all fake servers of a test. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_lines[64][48];
static int log_n;

static void log_add(const struct fake *f, const char *what)
{
	pthread_mutex_lock(&log_mu);
	if (log_n < 64 && snprintf(log_lines[log_n], sizeof log_lines[0],
				   "%s:%s", f->name, what) >= 0)
		log_n++;
	pthread_mutex_unlock(&log_mu);
}

/* The log as one string, "a:leader b:leader ...". */
static const char *log_string(void)
{
	static char s[64 * 48];
	int i;

	s[0] = '\0';
	pthread_mutex_lock(&log_mu);
	for (i = 0; i < log_n; i++) {
		strcat(s, i > 0 ? " " : "");
		strcat(s, log_lines[i]);
	}
	pthread_mutex_unlock(&log_mu);
	return s;
}

/* Read exactly @n bytes (recorded in f->rx); 0, or -1 on EOF/error. */
static int fk_read(struct fake *f, int fd, void *p, size_t n)
{
	uint8_t *b = p;
	ssize_t k;

	while (n > 0) {
		k = read(fd, b, n);
		if (k <= 0)
			return -1;
		if (f->rx_len + (size_t)k <= sizeof f->rx) {
			memcpy(f->rx + f->rx_len, b, (size_t)k);
			f->rx_len += (size_t)k;
		}
		b += k;
		n -= (size_t)k;
	}
	return 0;
}

static int fk_handshake(struct fake *f, int fd, uint64_t *version)
{
	uint8_t w[8];

	if (fk_read(f, fd, w, 8) != 0)
		return -1;
	*version = qf_get_le64(w);
	return 0;
}

/* One request: its type, -1 on EOF.  The body is in *@body (malloc'ed,
 * @len bytes) when @body is not NULL. */
static int fk_request(struct fake *f, int fd, uint8_t **body, size_t *len)
{
	uint8_t h[8], *b;
	size_t n;

	if (fk_read(f, fd, h, 8) != 0)
		return -1;
	n = (size_t)qf_get_le32(h) * 8;
	b = malloc(n + 1);
	if (b == NULL || fk_read(f, fd, b, n) != 0) {
		free(b);
		return -1;
	}
	if (body != NULL) {
		*body = b;
		*len = n;
	} else {
		free(b);
	}
	return h[4];
}

static void fk_send(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	ssize_t k;

	while (n > 0) {
		k = send(fd, b, n, MSG_NOSIGNAL);
		if (k <= 0)
			return;
		b += k;
		n -= (size_t)k;
	}
}

static void fk_send_buf(int fd, struct net_buf *b)
{
	fk_send(fd, b->data, b->len);
	net_buf_reset(b);
}

static void fk_failure(int fd, uint64_t code, const char *msg)
{
	struct net_buf b;

	net_buf_init(&b, 1 << 20);
	net_encode_failure(&b, code, msg);
	fk_send_buf(fd, &b);
	net_buf_close(&b);
}

static void fk_result(int fd, uint64_t id, uint64_t changes)
{
	struct net_buf b;

	net_buf_init(&b, 1 << 20);
	net_encode_result(&b, id, changes);
	fk_send_buf(fd, &b);
	net_buf_close(&b);
}

/* Wait for the test's go, at most 10 s (a failing test must not hang). */
static void fk_wait(struct fake *f)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	while (sem_timedwait(&f->go, &ts) != 0 && errno == EINTR)
		;
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	struct pollfd p = {.fd = f->lfd, .events = POLLIN};
	int i, fd;

	for (i = 0; i < f->conns; i++) {
		if (poll(&p, 1, 10000) != 1)
			break;
		fd = accept(f->lfd, NULL, NULL);
		if (fd < 0)
			break;
		f->serve(f, fd, i);
		close(fd);
	}
	return NULL;
}

/* Listen on 127.0.0.1 and serve @conns connections with @serve. */
static void fake_start(struct fake *f, const char *name, serve_fn serve,
		       int conns)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof a;

	memset(f, 0, sizeof *f);
	f->name = name;
	f->serve = serve;
	f->conns = conns;
	sem_init(&f->go, 0, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
	    listen(f->lfd, 8) != 0 ||
	    getsockname(f->lfd, (struct sockaddr *)&a, &len) != 0)
		abort();
	snprintf(f->addr, sizeof f->addr, "127.0.0.1:%u",
		 (unsigned)ntohs(a.sin_port));
}

static void fake_run(struct fake *f)
{
	if (pthread_create(&f->thread, NULL, fake_main, f) != 0)
		abort();
}

static void fake_stop(struct fake *f)
{
	sem_post(&f->go); /* in case it still waits */
	pthread_join(f->thread, NULL);
	close(f->lfd);
	sem_destroy(&f->go);
}

/* A closed port: listen, note the address, close. */
static void closed_address(char *out, size_t cap)
{
	struct fake f;

	fake_start(&f, "closed", NULL, 0);
	snprintf(out, cap, "%s", f.addr);
	close(f.lfd);
	sem_destroy(&f.go);
}

/* ---- scripted servers ---- */

/* A cluster member: LEADER answers f->leader (NULL: itself), CLIENT gets
 * WELCOME, OPEN gets DB, EXEC_SQL a RESULT; logs each request. */
static void serve_member(struct fake *f, int fd, int conn)
{
	struct net_buf b;
	uint64_t version;
	const char *leader;
	int type;

	(void)conn;
	net_buf_init(&b, 1 << 20);
	if (fk_handshake(f, fd, &version) != 0)
		goto out;
	while ((type = fk_request(f, fd, NULL, NULL)) >= 0) {
		switch (type) {
		case NET_REQ_LEADER:
			log_add(f, "leader");
			leader = f->leader != NULL ? f->leader : f->addr;
			/* A stand-by that learns the leader in round 2. */
			if (f->leader_id == 42 && f->round++ == 0)
				leader = "";
			net_encode_server(&b, 7, leader);
			break;
		case NET_REQ_CLIENT:
			log_add(f, "client");
			net_encode_welcome(&b, NET_HEARTBEAT_TIMEOUT_MS);
			break;
		case NET_REQ_OPEN:
			log_add(f, "open");
			net_encode_db(&b, 0);
			break;
		case NET_REQ_EXEC_SQL:
			log_add(f, "exec_sql");
			net_encode_result(&b, 1, 1);
			break;
		default:
			log_add(f, "other");
			net_encode_failure(&b, 1, "not implemented");
			break;
		}
		fk_send_buf(fd, &b);
	}
out:
	net_buf_close(&b);
}

/* ---- helpers on the client side ---- */

static struct net_client *client_new(unsigned timeout_ms)
{
	struct net_client_config cfg = {.timeout_ms = timeout_ms};
	struct net_client *c = NULL;

	if (net_client_new(&cfg, &c) != 0)
		abort();
	return c;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Hex digits to bytes; anything else is ignored. */
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

/* ---- handshake and leader discovery ---- */

static void serve_record_leader(struct fake *f, int fd, int conn)
{
	uint64_t version;

	(void)conn;
	if (fk_handshake(f, fd, &version) != 0 ||
	    fk_request(f, fd, NULL, NULL) != NET_REQ_LEADER)
		return;
	{
		struct net_buf b;

		net_buf_init(&b, 1 << 20);
		net_encode_server(&b, 0x2dc171858c3155beULL, f->addr);
		fk_send_buf(fd, &b);
		net_buf_close(&b);
	}
	if (fk_request(f, fd, NULL, NULL) == NET_REQ_CLIENT) {
		struct net_buf b;

		net_buf_init(&b, 1 << 20);
		net_encode_welcome(&b, NET_HEARTBEAT_TIMEOUT_MS);
		fk_send_buf(fd, &b);
		net_buf_close(&b);
	}
	if (fk_request(f, fd, NULL, NULL) == NET_REQ_OPEN) {
		struct net_buf b;

		net_buf_init(&b, 1 << 20);
		net_encode_db(&b, 0);
		fk_send_buf(fd, &b);
		net_buf_close(&b);
	}
	(void)fk_request(f, fd, NULL, NULL); /* wait for the close */
}

/* The client's first bytes are the version word alone, then LEADER,
 * CLIENT(0) and OPEN("demo", 0, "volatile"), byte for byte as go-dqlite
 * sends them (§1.2, §4.1-§4.3, §8.1). */
TEST(client, handshake_bytes)
{
	static uint8_t want[256];
	struct net_client *c = client_new(5000);
	const char *addrs[1];
	struct fake f;
	size_t n;

	fake_start(&f, "a", serve_record_leader, 1);
	fake_run(&f);
	addrs[0] = f.addr;
	ASSERT_EQ(net_client_connect_leader(c, addrs, 1), 0);
	ASSERT_STR(net_client_address(c), f.addr);
	ASSERT_EQ(net_client_open(c, "demo"), 0);
	net_client_free(c);
	fake_stop(&f);
	n = unhex("0100000000000000"
		  "0100000000000000 0000000000000000"
		  "0100000001000000 0000000000000000"
		  "0400000003000000 64656d6f00000000 0000000000000000"
		  "766f6c6174696c65 0000000000000000",
		  want, sizeof want);
	ASSERT_EQ(f.rx_len, n);
	ASSERT_MEM_EQ(f.rx, want, n);
	return TEST_OK;
}

/* Discovery asks each address in order: one that knows no leader is
 * skipped, one that names another node is followed (one hop), and the
 * node naming itself gets CLIENT (§8.1). */
TEST(client, discovery_order)
{
	struct net_client *c = client_new(5000);
	struct fake a, b, l;
	const char *addrs[3];

	fake_start(&a, "a", serve_member, 1);
	fake_start(&b, "b", serve_member, 1);
	fake_start(&l, "l", serve_member, 1);
	a.leader = "";	   /* a stand-by: knows no leader */
	b.leader = l.addr; /* a follower: names l */
	fake_run(&a);
	fake_run(&b);
	fake_run(&l);
	addrs[0] = a.addr;
	addrs[1] = b.addr;
	addrs[2] = l.addr;
	ASSERT_EQ(net_client_connect_leader(c, addrs, 3), 0);
	ASSERT_STR(net_client_address(c), l.addr);
	net_client_free(c);
	fake_stop(&a);
	fake_stop(&b);
	fake_stop(&l);
	ASSERT_STR(log_string(), "a:leader b:leader l:leader l:client");
	return TEST_OK;
}

/* A named leader that does not name itself is not followed further: the
 * next address is tried (§8.1: no recursion). */
TEST(client, discovery_one_hop)
{
	struct net_client *c = client_new(5000);
	struct fake a, b, l;
	const char *addrs[2];

	fake_start(&a, "a", serve_member, 1);
	fake_start(&b, "b", serve_member, 1);
	fake_start(&l, "l", serve_member, 1);
	a.leader = b.addr; /* a names b, b names l: not followed */
	b.leader = l.addr;
	fake_run(&a);
	fake_run(&b);
	fake_run(&l);
	addrs[0] = a.addr;
	addrs[1] = l.addr;
	ASSERT_EQ(net_client_connect_leader(c, addrs, 2), 0);
	ASSERT_STR(net_client_address(c), l.addr);
	net_client_free(c);
	fake_stop(&a);
	fake_stop(&b);
	fake_stop(&l);
	ASSERT_STR(log_string(), "a:leader b:leader l:leader l:client");
	return TEST_OK;
}

/* With no leader anywhere, one round ends in QF_ENOTLEADER and a report
 * naming each server. */
TEST(client, discovery_no_leader)
{
	struct net_client *c = client_new(5000);
	const char *addrs[2];
	char closed[32];
	struct fake a;

	fake_start(&a, "a", serve_member, 1);
	a.leader = "";
	fake_run(&a);
	closed_address(closed, sizeof closed);
	addrs[0] = closed;
	addrs[1] = a.addr;
	ASSERT_EQ(net_client_connect_leader(c, addrs, 2), QF_ENOTLEADER);
	ASSERT_NULL(net_client_address(c));
	ASSERT_NOT_NULL(strstr(net_client_errmsg(c), "knows no leader"));
	ASSERT_NOT_NULL(strstr(net_client_errmsg(c), closed));
	net_client_free(c);
	fake_stop(&a);
	return TEST_OK;
}

/* Nothing reachable: the connection error itself. */
TEST(client, discovery_unreachable)
{
	struct net_client *c = client_new(5000);
	const char *addrs[1];
	char closed[32];

	closed_address(closed, sizeof closed);
	addrs[0] = closed;
	ASSERT_EQ(net_client_connect_leader(c, addrs, 1), -ECONNREFUSED);
	ASSERT_EQ(net_client_exec_sql(c, "SELECT 1", NULL, 0, NULL), -ENOTCONN);
	net_client_free(c);
	return TEST_OK;
}

/* Rounds repeat with backoff until discovery_timeout_ms: a server that
 * learns the leader late is found in the second round. */
TEST(client, discovery_retries)
{
	struct net_client_config cfg = {.discovery_timeout_ms = 5000};
	struct net_client *c = NULL;
	const char *addrs[1];
	struct fake a;
	int64_t t0;

	ASSERT_EQ(net_client_new(&cfg, &c), 0);
	fake_start(&a, "a", serve_member, 2);
	a.leader_id = 42; /* "" the first time, itself after */
	fake_run(&a);
	addrs[0] = a.addr;
	t0 = mono_ms();
	ASSERT_EQ(net_client_connect_leader(c, addrs, 1), 0);
	ASSERT_TRUE(mono_ms() - t0 >= 150); /* slept the first backoff */
	net_client_free(c);
	fake_stop(&a);
	ASSERT_STR(log_string(), "a:leader a:leader a:client");
	return TEST_OK;
}

/* Closes version-1 connections; answers the legacy version. */
static void serve_legacy(struct fake *f, int fd, int conn)
{
	struct net_buf b;
	uint64_t version;

	(void)conn;
	if (fk_handshake(f, fd, &version) != 0)
		return;
	if (version != NET_PROTO_LEGACY) {
		log_add(f, "v1");
		return; /* closes */
	}
	net_buf_init(&b, 1 << 20);
	if (fk_request(f, fd, NULL, NULL) == NET_REQ_LEADER) {
		log_add(f, "legacy-leader");
		net_encode_server_legacy(&b, f->addr);
		fk_send_buf(fd, &b);
	}
	if (fk_request(f, fd, NULL, NULL) == NET_REQ_CLIENT) {
		log_add(f, "client");
		net_encode_welcome(&b, 15000);
		fk_send_buf(fd, &b);
	}
	(void)fk_request(f, fd, NULL, NULL);
	net_buf_close(&b);
}

/* A server that drops a version-1 connection at LEADER is retried once
 * with the legacy version, whose SERVER carries only the address
 * (§1.2, §4.1). */
TEST(client, discovery_legacy_fallback)
{
	struct net_client *c = client_new(5000);
	const char *addrs[1];
	struct fake a;

	fake_start(&a, "a", serve_legacy, 2);
	fake_run(&a);
	addrs[0] = a.addr;
	ASSERT_EQ(net_client_connect_leader(c, addrs, 1), 0);
	net_client_free(c);
	fake_stop(&a);
	ASSERT_STR(log_string(), "a:v1 a:legacy-leader a:client");
	return TEST_OK;
}

/* Bad addresses are refused before any connection. */
TEST(client, bad_addresses)
{
	struct net_client *c = client_new(5000);

	ASSERT_EQ(net_client_connect(c, "localhost"), -EINVAL);
	ASSERT_EQ(net_client_connect(c, "::1:9001"), -EINVAL);
	ASSERT_EQ(net_client_connect(c, "[::1]9001"), -EINVAL);
	ASSERT_EQ(net_client_connect(c, "host:"), -EINVAL);
	ASSERT_EQ(net_client_connect(c, "@abstract"), -EINVAL);
	ASSERT_NULL(net_client_address(c));
	net_client_free(c);
	return TEST_OK;
}

/* ---- statements ---- */

/* One request, whose raw bytes are kept, answered with RESULT{5, 2}. */
static void serve_one_result(struct fake *f, int fd, int conn)
{
	uint64_t version;

	(void)conn;
	if (fk_handshake(f, fd, &version) != 0)
		return;
	f->rx_len = 0; /* keep only the request */
	if (fk_request(f, fd, NULL, NULL) < 0)
		return;
	fk_result(fd, 5, 2);
	(void)fk_request(f, fd, NULL, NULL);
}

#define SQL8 "INSERT INTO t VALUES(?, ?, ?, ?, ?, ?, ?, ?)"

/* Parameters of every type reach the wire as the codec encodes them, and
 * RESULT comes back. */
TEST(client, exec_sql_params)
{
	static const uint8_t blob[] = {0, 1, 0xff};
	struct net_sql_value p[8];
	struct net_value w[8];
	struct net_client_result r;
	struct net_client *c = client_new(5000);
	struct net_buf want;
	struct fake f;
	int i;

	memset(p, 0, sizeof p);
	memset(w, 0, sizeof w);
	p[0].type = NET_SQL_INTEGER;
	p[0].integer = INT64_MIN;
	p[1].type = NET_SQL_FLOAT;
	p[1].real = -0.5;
	p[2].type = NET_SQL_TEXT;
	p[2].text.p = "k1";
	p[2].text.len = 2;
	p[3].type = NET_SQL_BLOB;
	p[3].blob.p = blob;
	p[3].blob.len = sizeof blob;
	p[4].type = NET_SQL_NULL;
	p[5].type = NET_SQL_UNIXTIME;
	p[5].integer = 1700000000;
	p[6].type = NET_SQL_ISO8601;
	p[6].text.p = "2006-01-02 15:04:05";
	p[6].text.len = 19;
	p[7].type = NET_SQL_BOOLEAN;
	p[7].boolean = true;
	for (i = 0; i < 8; i++)
		w[i].type = (uint8_t)p[i].type;
	w[0].integer = INT64_MIN;
	w[1].real = -0.5;
	w[2].text.p = "k1";
	w[2].text.len = 2;
	w[3].blob.p = blob;
	w[3].blob.len = sizeof blob;
	w[5].integer = 1700000000;
	w[6].text.p = "2006-01-02 15:04:05";
	w[6].text.len = 19;
	w[7].word = 1;

	fake_start(&f, "a", serve_one_result, 1);
	fake_run(&f);
	ASSERT_EQ(net_client_connect(c, f.addr), 0);
	ASSERT_EQ(net_client_exec_sql(c, SQL8, p, 8, &r), 0);
	ASSERT_EQ(r.last_insert_id, 5);
	ASSERT_EQ(r.rows_affected, 2);
	net_client_free(c);
	fake_stop(&f);

	net_buf_init(&want, 1 << 20);
	ASSERT_EQ(net_encode_exec_sql(&want, 0, SQL8, w, 8), 0);
	ASSERT_EQ(f.rx_len, want.len);
	ASSERT_MEM_EQ(f.rx, want.data, want.len);
	net_buf_close(&want);
	return TEST_OK;
}

/* The capture of §14.1 byte for byte: EXEC_SQL with ('k1', 42, -0.5,
 * NULL). */
TEST(client, exec_sql_capture)
{
	static uint8_t want[256];
	struct net_sql_value p[4];
	struct net_client *c = client_new(5000);
	struct fake f;
	size_t n;

	memset(p, 0, sizeof p);
	p[0].type = NET_SQL_TEXT;
	p[0].text.p = "k1";
	p[0].text.len = 2;
	p[1].type = NET_SQL_INTEGER;
	p[1].integer = 42;
	p[2].type = NET_SQL_FLOAT;
	p[2].real = -0.5;
	p[3].type = NET_SQL_NULL;
	fake_start(&f, "a", serve_one_result, 1);
	fake_run(&f);
	ASSERT_EQ(net_client_connect(c, f.addr), 0);
	ASSERT_EQ(net_client_exec_sql(c, "INSERT INTO kv VALUES(?, ?, ?, ?)", p,
				      4, NULL),
		  0);
	net_client_free(c);
	fake_stop(&f);
	n = unhex("0b00000008000000 0000000000000000 494e5345525420494e544f"
		  "206b762056414c554553283f2c203f2c203f2c203f29000000000000"
		  "00 0403010205000000 6b31000000000000 2a00000000000000 "
		  "000000000000e0bf 0000000000000000",
		  want, sizeof want);
	ASSERT_EQ(f.rx_len, n);
	ASSERT_MEM_EQ(f.rx, want, n);
	return TEST_OK;
}

/* A value type the protocol does not have is refused before sending, and
 * the connection stays usable. */
TEST(client, bad_param_type)
{
	struct net_sql_value p = {.type = 6};
	struct net_client *c = client_new(5000);
	struct fake f;

	fake_start(&f, "a", serve_one_result, 1);
	fake_run(&f);
	ASSERT_EQ(net_client_connect(c, f.addr), 0);
	ASSERT_EQ(net_client_exec_sql(c, "SELECT ?", &p, 1, NULL), -EINVAL);
	ASSERT_NOT_NULL(net_client_address(c));
	ASSERT_EQ(net_client_exec_sql(c, "SELECT 1", NULL, 0, NULL), 0);
	net_client_free(c);
	fake_stop(&f);
	return TEST_OK;
}

/* FAILURE for the first request, RESULT for the second. */
static void serve_failure_then_result(struct fake *f, int fd, int conn)
{
	uint64_t version;

	(void)conn;
	if (fk_handshake(f, fd, &version) != 0 ||
	    fk_request(f, fd, NULL, NULL) < 0)
		return;
	fk_failure(fd, 2067, "UNIQUE constraint failed: t.k");
	if (fk_request(f, fd, NULL, NULL) < 0)
		return;
	fk_result(fd, 0, 0);
	(void)fk_request(f, fd, NULL, NULL);
}

/* FAILURE: NET_EFAILURE with the server's code and message; the
 * connection goes on (§7.1). */
TEST(client, failure_propagates)
{
	struct net_client *c = client_new(5000);
	struct fake f;

	fake_start(&f, "a", serve_failure_then_result, 1);
	fake_run(&f);
	ASSERT_EQ(net_client_connect(c, f.addr), 0);
	ASSERT_EQ(
	    net_client_exec_sql(c, "INSERT INTO t VALUES(1)", NULL, 0, NULL),
	    NET_EFAILURE);
	ASSERT_EQ(net_client_failure_code(c), 2067);
	ASSERT_STR(net_client_errmsg(c), "UNIQUE constraint failed: t.k");
	ASSERT_NOT_NULL(net_client_address(c));
	ASSERT_EQ(net_client_exec_sql(c, "COMMIT", NULL, 0, NULL), 0);
	net_client_free(c);
	fake_stop(&f);
	return TEST_OK;
}

/* STMT 3 for PREPARE; logs the statement id of the others. */
static void serve_prepared(struct fake *f, int fd, int conn)
{
	struct net_stmt s = {.db_id = 0, .stmt_id = 3, .n_params = 1};
	const char *names[] = {"x"};
	struct net_value v = {.type = NET_INTEGER, .integer = 9};
	struct net_rows_enc w;
	struct net_buf b;
	uint64_t version;
	uint8_t *body;
	size_t len;
	int type;

	(void)conn;
	net_buf_init(&b, 1 << 20);
	if (fk_handshake(f, fd, &version) != 0)
		goto out;
	while ((type = fk_request(f, fd, &body, &len)) >= 0) {
		switch (type) {
		case NET_REQ_PREPARE:
			log_add(f, "prepare");
			net_encode_stmt(&b, &s, 0);
			break;
		case NET_REQ_EXEC:
			log_add(f,
				qf_get_le32(body + 4) == 3 ? "exec3" : "exec?");
			net_encode_result(&b, 1, 1);
			break;
		case NET_REQ_QUERY:
			log_add(f, qf_get_le32(body + 4) == 3 ? "query3"
							      : "query?");
			net_rows_begin(&w, &b, names, 1);
			net_rows_add(&w, &v);
			net_rows_end(&w, true);
			break;
		case NET_REQ_FINALIZE:
			log_add(f, qf_get_le32(body + 4) == 3 ? "finalize3"
							      : "finalize?");
			net_encode_empty(&b);
			break;
		default:
			net_encode_failure(&b, 1, "unexpected");
			break;
		}
		free(body);
		fk_send_buf(fd, &b);
	}
out:
	net_buf_close(&b);
}

/* PREPARE, EXEC, QUERY and FINALIZE carry the statement id the server
 * gave (§4.4-§4.7). */
TEST(client, prepared_statements)
{
	struct net_sql_value p = {.type = NET_SQL_INTEGER, .integer = 1};
	struct net_client *c = client_new(5000);
	struct net_client_rows rows;
	uint64_t n_params = 0;
	uint32_t id = 0;
	struct fake f;

	fake_start(&f, "a", serve_prepared, 1);
	fake_run(&f);
	ASSERT_EQ(net_client_connect(c, f.addr), 0);
	ASSERT_EQ(net_client_prepare(c, "SELECT ?", &id, &n_params), 0);
	ASSERT_EQ(id, 3);
	ASSERT_EQ(n_params, 1);
	ASSERT_EQ(net_client_exec(c, id, &p, 1, NULL), 0);
	ASSERT_EQ(net_client_query(c, id, &p, 1, &rows), 0);
	ASSERT_EQ(net_client_rows_next(&rows), 1);
	ASSERT_EQ(rows.row[0].integer, 9);
	ASSERT_EQ(net_client_rows_next(&rows), 0);
	ASSERT_EQ(net_client_rows_close(&rows), 0);
	ASSERT_EQ(net_client_finalize(c, id), 0);
	net_client_free(c);
	fake_stop(&f);
	ASSERT_STR(log_string(), "a:prepare a:exec3 a:query3 a:finalize3");
	return TEST_OK;
}

/* ---- result sets ---- */

#define BATCH_ROWS 100

/* QUERY_SQL answered by three ROWS batches (PART, PART, DONE) of
 * BATCH_ROWS rows each (id, every type); batch k+1 is sent only when the
 * test posts go, so the client must hand out rows before the result is
 * complete (§6.4). */
static void serve_batches(struct fake *f, int fd, int conn)
{
	static const char *const names[] = {"i", "f", "t", "b",
					    "n", "u", "d", "o"};
	struct net_value row[8];
	struct net_rows_enc w;
	struct net_buf b;
	uint64_t version;
	char text[32];
	int batch, i, type;

	(void)conn;
	net_buf_init(&b, 1 << 20);
	if (fk_handshake(f, fd, &version) != 0 ||
	    fk_request(f, fd, NULL, NULL) != NET_REQ_QUERY_SQL)
		goto out;
	for (batch = 0; batch < 3; batch++) {
		if (batch > 0)
			fk_wait(f);
		net_rows_begin(&w, &b, names, 8);
		for (i = 0; i < BATCH_ROWS; i++) {
			memset(row, 0, sizeof row);
			snprintf(text, sizeof text, "row-%d",
				 batch * BATCH_ROWS + i);
			row[0].type = NET_INTEGER;
			row[0].integer = batch * BATCH_ROWS + i;
			row[1].type = NET_FLOAT;
			row[1].real = 0.5;
			row[2].type = NET_TEXT;
			row[2].text.p = text;
			row[2].text.len = strlen(text);
			row[3].type = NET_BLOB;
			row[3].blob.p = "\x01\x02";
			row[3].blob.len = 2;
			row[4].type = NET_NULL;
			row[5].type = NET_UNIXTIME;
			row[5].integer = 1700000000;
			row[6].type = NET_ISO8601;
			row[6].text.p = "";
			row[7].type = NET_BOOLEAN;
			row[7].word = 1;
			net_rows_add(&w, row);
		}
		net_rows_end(&w, batch == 2);
		fk_send_buf(fd, &b);
	}
	/* Then whatever comes next: an EXEC_SQL gets RESULT. */
	while ((type = fk_request(f, fd, NULL, NULL)) >= 0) {
		log_add(f, type == NET_REQ_INTERRUPT ? "interrupt" : "other");
		if (type == NET_REQ_INTERRUPT)
			net_encode_empty(&b);
		else
			net_encode_result(&b, 0, 0);
		fk_send_buf(fd, &b);
	}
out:
	net_buf_close(&b);
}

/* Rows of every type come batch by batch, each handed out before the
 * next batch exists; the column names outlive their batch (§6.3, §6.4). */
TEST(client, rows_streamed)
{
	struct net_client *c = client_new(5000);
	struct net_client_rows rows;
	const struct net_sql_value *r;
	struct fake f;
	char text[32];
	int n = 0, rv;

	fake_start(&f, "a", serve_batches, 1);
	fake_run(&f);
	ASSERT_EQ(net_client_connect(c, f.addr), 0);
	ASSERT_EQ(net_client_query_sql(c, "SELECT *", NULL, 0, &rows), 0);
	ASSERT_EQ(rows.n_cols, 8);
	ASSERT_STR(rows.names[0], "i");
	ASSERT_STR(rows.names[7], "o");
	while ((rv = net_client_rows_next(&rows)) == 1) {
		r = rows.row;
		snprintf(text, sizeof text, "row-%d", n);
		ASSERT_EQ(r[0].type, NET_SQL_INTEGER);
		ASSERT_EQ(r[0].integer, n);
		ASSERT_EQ(r[1].type, NET_SQL_FLOAT);
		ASSERT_TRUE(r[1].real == 0.5);
		ASSERT_EQ(r[2].type, NET_SQL_TEXT);
		ASSERT_STR(r[2].text.p, text);
		ASSERT_EQ(r[3].type, NET_SQL_BLOB);
		ASSERT_EQ(r[3].blob.len, 2);
		ASSERT_MEM_EQ(r[3].blob.p, "\x01\x02", 2);
		ASSERT_EQ(r[4].type, NET_SQL_NULL);
		ASSERT_EQ(r[5].type, NET_SQL_UNIXTIME);
		ASSERT_EQ(r[5].integer, 1700000000);
		ASSERT_EQ(r[6].type, NET_SQL_ISO8601);
		ASSERT_EQ(r[6].text.len, 0);
		ASSERT_EQ(r[7].type, NET_SQL_BOOLEAN);
		ASSERT_TRUE(r[7].boolean);
		/* The names survive the batches they came with. */
		ASSERT_STR(rows.names[2], "t");
		n++;
		/* The server holds batch k+1 until the last row of batch
		 * k has been handed out: no waiting for the whole set. */
		if (n % BATCH_ROWS == 0)
			sem_post(&f.go);
	}
	ASSERT_EQ(rv, 0);
	ASSERT_EQ(n, 3 * BATCH_ROWS);
	ASSERT_EQ(rows.batches, 3);
	ASSERT_EQ(net_client_rows_next(&rows), 0); /* stays at the end */
	ASSERT_EQ(net_client_rows_close(&rows), 0);
	/* Nothing left over on the connection: no INTERRUPT was needed. */
	ASSERT_EQ(net_client_exec_sql(c, "SELECT 1", NULL, 0, NULL), 0);
	net_client_free(c);
	fake_stop(&f);
	ASSERT_STR(log_string(), "a:other");
	return TEST_OK;
}

/* Closing a result set while batches are still coming sends INTERRUPT and
 * discards everything up to its EMPTY; the connection then works (§6.5). */
TEST(client, rows_close_interrupts)
{
	struct net_client *c = client_new(5000);
	struct net_client_rows rows;
	struct fake f;

	fake_start(&f, "a", serve_batches, 1);
	fake_run(&f);
	ASSERT_EQ(net_client_connect(c, f.addr), 0);
	ASSERT_EQ(net_client_query_sql(c, "SELECT *", NULL, 0, &rows), 0);
	ASSERT_EQ(net_client_rows_next(&rows), 1);
	/* Other requests wait for the result set. */
	ASSERT_EQ(net_client_exec_sql(c, "SELECT 1", NULL, 0, NULL), -EBUSY);
	/* The server sends its last two batches, as 1.11 does, before it
	 * reads the INTERRUPT. */
	sem_post(&f.go);
	sem_post(&f.go);
	ASSERT_EQ(net_client_rows_close(&rows), 0);
	ASSERT_EQ(net_client_exec_sql(c, "SELECT 1", NULL, 0, NULL), 0);
	net_client_free(c);
	fake_stop(&f);
	ASSERT_STR(log_string(), "a:interrupt a:other");
	return TEST_OK;
}

/* One ROWS batch ending in PART, then FAILURE. */
static void serve_rows_then_failure(struct fake *f, int fd, int conn)
{
	const char *names[] = {"v"};
	struct net_value v = {.type = NET_INTEGER, .integer = 1};
	struct net_rows_enc w;
	struct net_buf b;
	uint64_t version;

	(void)conn;
	net_buf_init(&b, 1 << 20);
	if (fk_handshake(f, fd, &version) != 0 ||
	    fk_request(f, fd, NULL, NULL) != NET_REQ_QUERY_SQL)
		goto out;
	net_rows_begin(&w, &b, names, 1);
	net_rows_add(&w, &v);
	net_rows_end(&w, false);
	net_encode_failure(&b, 1, "integer overflow");
	fk_send_buf(fd, &b); /* both in one segment */
	if (fk_request(f, fd, NULL, NULL) >= 0)
		fk_result(fd, 0, 0);
	(void)fk_request(f, fd, NULL, NULL);
out:
	net_buf_close(&b);
}

/* A FAILURE in place of the next batch ends the result set with the
 * server's error; the connection goes on (§6.4). */
TEST(client, rows_failure)
{
	struct net_client *c = client_new(5000);
	struct net_client_rows rows;
	struct fake f;

	fake_start(&f, "a", serve_rows_then_failure, 1);
	fake_run(&f);
	ASSERT_EQ(net_client_connect(c, f.addr), 0);
	ASSERT_EQ(net_client_query_sql(c, "SELECT v", NULL, 0, &rows), 0);
	ASSERT_EQ(net_client_rows_next(&rows), 1);
	ASSERT_EQ(net_client_rows_next(&rows), NET_EFAILURE);
	ASSERT_EQ(net_client_failure_code(c), 1);
	ASSERT_STR(net_client_errmsg(c), "integer overflow");
	/* The error stays; closing needs no INTERRUPT. */
	ASSERT_EQ(net_client_rows_next(&rows), NET_EFAILURE);
	ASSERT_EQ(net_client_rows_close(&rows), 0);
	ASSERT_EQ(net_client_exec_sql(c, "SELECT 1", NULL, 0, NULL), 0);
	net_client_free(c);
	fake_stop(&f);
	return TEST_OK;
}

/* ---- timeouts ---- */

/* Reads the handshake and one request, then answers nothing until the
 * test says go. */
static void serve_silent(struct fake *f, int fd, int conn)
{
	uint64_t version;

	(void)conn;
	if (fk_handshake(f, fd, &version) != 0 ||
	    fk_request(f, fd, NULL, NULL) < 0)
		return;
	fk_wait(f);
}

/* A call that gets no answer ends at its deadline with -ETIMEDOUT and the
 * connection is dropped: a late answer cannot be taken for the next. */
TEST(client, request_timeout)
{
	struct net_client *c = client_new(200);
	struct fake f;
	int64_t t0, dt;

	fake_start(&f, "a", serve_silent, 1);
	fake_run(&f);
	ASSERT_EQ(net_client_connect(c, f.addr), 0);
	t0 = mono_ms();
	ASSERT_EQ(net_client_exec_sql(c, "SELECT 1", NULL, 0, NULL),
		  -ETIMEDOUT);
	dt = mono_ms() - t0;
	ASSERT_TRUE(dt >= 190 && dt < 2000);
	ASSERT_NULL(net_client_address(c));
	ASSERT_EQ(net_client_exec_sql(c, "SELECT 1", NULL, 0, NULL), -ENOTCONN);
	sem_post(&f.go);
	net_client_free(c);
	fake_stop(&f);
	return TEST_OK;
}

/* The deadline is per call: set_timeout changes it for the next call. */
TEST(client, per_call_timeout)
{
	struct net_client *c = client_new(0);
	struct fake f;
	int64_t t0;

	fake_start(&f, "a", serve_silent, 1);
	fake_run(&f);
	ASSERT_EQ(net_client_connect(c, f.addr), 0);
	net_client_set_timeout(c, 100);
	t0 = mono_ms();
	ASSERT_EQ(net_client_describe(c, &(uint64_t){0}, &(uint64_t){0}),
		  -ETIMEDOUT);
	ASSERT_TRUE(mono_ms() - t0 < 2000);
	sem_post(&f.go);
	net_client_free(c);
	fake_stop(&f);
	return TEST_OK;
}

/* Another thread ends a call that waits without a deadline by writing
 * to the client's cancel fd (how a stopping daemon ends an image fetch). */
struct canceller {
	int fd;
	unsigned after_ms;
};

static void *cancel_later(void *arg)
{
	struct canceller *k = arg;
	struct timespec ts = {0, (long)k->after_ms * 1000000};

	nanosleep(&ts, NULL);
	if (eventfd_write(k->fd, 1) != 0)
		abort();
	return NULL;
}

TEST(client, cancel_ends_a_call)
{
	struct net_client *c = client_new(10000); /* fails, not hangs */
	struct canceller k = {eventfd(0, EFD_CLOEXEC), 150};
	struct fake f;
	pthread_t th;
	int64_t t0, dt;

	ASSERT_TRUE(k.fd >= 0);
	fake_start(&f, "a", serve_silent, 1);
	fake_run(&f);
	net_client_set_cancel(c, k.fd);
	ASSERT_EQ(net_client_connect(c, f.addr), 0);
	t0 = mono_ms();
	ASSERT_EQ(pthread_create(&th, NULL, cancel_later, &k), 0);
	ASSERT_EQ(net_client_describe(c, &(uint64_t){0}, &(uint64_t){0}),
		  -ECANCELED);
	dt = mono_ms() - t0;
	pthread_join(th, NULL);
	ASSERT_TRUE(dt >= 140 && dt < 5000);
	ASSERT_NULL(net_client_address(c)); /* the stream is dropped */
	sem_post(&f.go);
	net_client_free(c);
	fake_stop(&f);
	close(k.fd);
	return TEST_OK;
}

/* IMAGE: the first of two parts, then silence. */
static void serve_half_image(struct fake *f, int fd, int conn)
{
	struct net_image im = {.seq = 3, .cksum = 1, .page_size = 512,
			       .db_pages = 2, .first = 1, .n = 1};
	struct net_buf b;
	uint64_t version;
	uint8_t *pages;
	size_t start;

	(void)conn;
	net_buf_init(&b, 1 << 16);
	if (fk_handshake(f, fd, &version) == 0 &&
	    fk_request(f, fd, NULL, NULL) == NET_QF_REQ_IMAGE &&
	    net_encode_image_begin(&b, &im, &start, &pages) == 0) {
		memset(pages, 7, 512);
		if (net_msg_end(&b, start) == 0) {
			fk_send_buf(fd, &b);
			fk_wait(f);
		}
	}
	net_buf_close(&b);
}

/* Each IMAGE part after the first must come within the part timeout,
 * however long the call's own deadline. */
TEST(client, image_part_timeout)
{
	struct net_client *c = client_new(20000);
	struct net_client_image img;
	char path[] = "/tmp/qf_image_XXXXXX";
	int fd = mkstemp(path);
	struct fake f;
	int64_t t0, dt;

	ASSERT_TRUE(fd >= 0);
	unlink(path);
	fake_start(&f, "a", serve_half_image, 1);
	fake_run(&f);
	ASSERT_EQ(net_client_connect(c, f.addr), 0);
	t0 = mono_ms();
	ASSERT_EQ(net_client_image(c, "x.db", fd, 200, &img), -ETIMEDOUT);
	dt = mono_ms() - t0;
	ASSERT_TRUE(dt >= 190 && dt < 5000);
	ASSERT_NULL(img.hashes);
	sem_post(&f.go);
	net_client_free(c);
	fake_stop(&f);
	close(fd);
	return TEST_OK;
}

/* A result set whose next batch never comes times out in rows_next. */
TEST(client, rows_timeout)
{
	struct net_client *c = client_new(200);
	struct net_client_rows rows;
	struct fake f;
	int i;

	fake_start(&f, "a", serve_batches, 1);
	fake_run(&f);
	ASSERT_EQ(net_client_connect(c, f.addr), 0);
	ASSERT_EQ(net_client_query_sql(c, "SELECT *", NULL, 0, &rows), 0);
	for (i = 0; i < BATCH_ROWS; i++)
		ASSERT_EQ(net_client_rows_next(&rows), 1);
	ASSERT_EQ(net_client_rows_next(&rows), -ETIMEDOUT);
	ASSERT_EQ(net_client_rows_next(&rows), -ETIMEDOUT);
	ASSERT_NULL(net_client_address(c));
	ASSERT_EQ(net_client_rows_close(&rows), 0); /* nothing to interrupt */
	sem_post(&f.go);
	sem_post(&f.go);
	net_client_free(c);
	fake_stop(&f);
	return TEST_OK;
}

/* ---- malformed and unexpected responses ---- */

/* Answers the first request with the raw bytes in f->leader (hex). */
static void serve_raw(struct fake *f, int fd, int conn)
{
	uint8_t bytes[512];
	uint64_t version;
	size_t n;

	(void)conn;
	if (fk_handshake(f, fd, &version) != 0 ||
	    fk_request(f, fd, NULL, NULL) < 0)
		return;
	n = unhex(f->leader, bytes, sizeof bytes);
	fk_send(fd, bytes, n);
	if (f->leader_id == 1)
		return; /* close right away */
	fk_wait(f);
}

/* Run EXEC_SQL against a server answering @hex: the error it gives; the
 * connection must then be closed. */
static int exec_against(const char *hex, bool close_after, int *status)
{
	struct net_client *c = client_new(1000);
	struct fake f;

	fake_start(&f, "a", serve_raw, 1);
	f.leader = hex;
	f.leader_id = close_after ? 1 : 0;
	fake_run(&f);
	ASSERT_EQ(net_client_connect(c, f.addr), 0);
	*status = net_client_exec_sql(c, "SELECT 1", NULL, 0, NULL);
	ASSERT_NULL(net_client_address(c));
	sem_post(&f.go);
	net_client_free(c);
	fake_stop(&f);
	return TEST_OK;
}

/* A response of another type than the request expects. */
TEST(client, unexpected_type)
{
	int rv;

	ASSERT_EQ(exec_against("0100000004000000 0000000000000000", false, &rv),
		  TEST_OK);
	ASSERT_EQ(rv, QF_EMALFORMED);
	return TEST_OK;
}

/* A header with words = 0 (§1.3). */
TEST(client, zero_words)
{
	int rv;

	ASSERT_EQ(exec_against("0000000006000000", false, &rv), TEST_OK);
	ASSERT_EQ(rv, QF_EMALFORMED);
	return TEST_OK;
}

/* A RESULT one word short. */
TEST(client, short_body)
{
	int rv;

	ASSERT_EQ(exec_against("0100000006000000 0100000000000000", false, &rv),
		  TEST_OK);
	ASSERT_EQ(rv, QF_EMALFORMED);
	return TEST_OK;
}

/* A FAILURE whose message has no NUL. */
TEST(client, failure_without_nul)
{
	int rv;

	ASSERT_EQ(exec_against("0200000000000000 0100000000000000 "
			       "6e6f74206c656164",
			       false, &rv),
		  TEST_OK);
	ASSERT_EQ(rv, QF_EMALFORMED);
	return TEST_OK;
}

/* The server closes in the middle of a response. */
TEST(client, eof_mid_message)
{
	int rv;

	ASSERT_EQ(exec_against("0200000006000000 01000000", true, &rv),
		  TEST_OK);
	ASSERT_EQ(rv, -ECONNRESET);
	return TEST_OK;
}

/* A header announcing more than max_msg: refused before the body. */
TEST(client, oversized)
{
	struct net_client_config cfg = {.timeout_ms = 1000, .max_msg = 4096};
	struct net_client *c = NULL;
	struct fake f;

	ASSERT_EQ(net_client_new(&cfg, &c), 0);
	fake_start(&f, "a", serve_raw, 1);
	f.leader = "0000100006000000"; /* 1 Mi words */
	fake_run(&f);
	ASSERT_EQ(net_client_connect(c, f.addr), 0);
	ASSERT_EQ(net_client_exec_sql(c, "SELECT 1", NULL, 0, NULL), -EMSGSIZE);
	ASSERT_NULL(net_client_address(c));
	sem_post(&f.go);
	net_client_free(c);
	fake_stop(&f);
	return TEST_OK;
}

/* ROWS with a type nibble that is no value type: the row is refused. */
TEST(client, rows_bad_type)
{
	struct net_client *c = client_new(1000);
	struct net_client_rows rows;
	struct fake f;

	fake_start(&f, "a", serve_raw, 1);
	/* 1 column "v", row header nibble 7, a value, DONE. */
	f.leader = "0500000007000000 0100000000000000 7600000000000000 "
		   "0700000000000000 0100000000000000 ffffffffffffffff";
	fake_run(&f);
	ASSERT_EQ(net_client_connect(c, f.addr), 0);
	ASSERT_EQ(net_client_query_sql(c, "SELECT v", NULL, 0, &rows), 0);
	ASSERT_EQ(net_client_rows_next(&rows), QF_EMALFORMED);
	ASSERT_NULL(net_client_address(c));
	ASSERT_EQ(net_client_rows_close(&rows), 0);
	sem_post(&f.go);
	net_client_free(c);
	fake_stop(&f);
	return TEST_OK;
}

/* ROWS with no end marker. */
TEST(client, rows_no_marker)
{
	struct net_client *c = client_new(1000);
	struct net_client_rows rows;
	struct fake f;

	fake_start(&f, "a", serve_raw, 1);
	f.leader = "0400000007000000 0100000000000000 7600000000000000 "
		   "0100000000000000 0100000000000000";
	fake_run(&f);
	ASSERT_EQ(net_client_connect(c, f.addr), 0);
	ASSERT_EQ(net_client_query_sql(c, "SELECT v", NULL, 0, &rows), 0);
	ASSERT_EQ(net_client_rows_next(&rows), 1);
	ASSERT_EQ(net_client_rows_next(&rows), QF_EMALFORMED);
	ASSERT_EQ(net_client_rows_close(&rows), 0);
	sem_post(&f.go);
	net_client_free(c);
	fake_stop(&f);
	return TEST_OK;
}

/* ROWS with zero columns is refused when the query starts. */
TEST(client, rows_no_columns)
{
	struct net_client *c = client_new(1000);
	struct net_client_rows rows;
	struct fake f;

	fake_start(&f, "a", serve_raw, 1);
	f.leader = "0200000007000000 0000000000000000 ffffffffffffffff";
	fake_run(&f);
	ASSERT_EQ(net_client_connect(c, f.addr), 0);
	ASSERT_EQ(net_client_query_sql(c, "SELECT", NULL, 0, &rows),
		  QF_EMALFORMED);
	ASSERT_NULL(net_client_address(c));
	sem_post(&f.go);
	net_client_free(c);
	fake_stop(&f);
	return TEST_OK;
}

/* SERVERS claiming more nodes than its body holds. */
TEST(client, servers_count_too_big)
{
	struct net_client *c = client_new(1000);
	struct net_member *m = NULL;
	struct fake f;
	size_t n = 0;

	fake_start(&f, "a", serve_raw, 1);
	f.leader = "0200000003000000 0500000000000000 0100000000000000";
	fake_run(&f);
	ASSERT_EQ(net_client_connect(c, f.addr), 0);
	ASSERT_EQ(net_client_cluster(c, &m, &n), QF_EMALFORMED);
	ASSERT_NULL(m);
	sem_post(&f.go);
	net_client_free(c);
	fake_stop(&f);
	return TEST_OK;
}

/* ---- cluster requests ---- */

/* CLUSTER gets the §4.17 capture plus two more nodes; the others are
 * answered as dqlite answers them. */
static void serve_admin(struct fake *f, int fd, int conn)
{
	struct net_node nodes[3] = {
	    {0x2dc171858c3155beULL, "127.0.0.1:9001", NET_ROLE_VOTER},
	    {2, "127.0.0.1:9002", NET_ROLE_STANDBY},
	    {3, "127.0.0.1:9003", NET_ROLE_SPARE},
	};
	struct net_file files[2] = {{"demo", "12345678", 8},
				    {"demo-wal", "", 0}};
	struct net_buf b;
	uint64_t version;
	uint8_t *body;
	size_t len;
	int type;
	char line[40];

	(void)conn;
	net_buf_init(&b, 1 << 20);
	if (fk_handshake(f, fd, &version) != 0)
		goto out;
	while ((type = fk_request(f, fd, &body, &len)) >= 0) {
		snprintf(line, sizeof line, "%s:%llu",
			 net_request_name((unsigned)type),
			 (unsigned long long)qf_get_le64(body));
		log_add(f, line);
		switch (type) {
		case NET_REQ_CLUSTER:
			net_encode_servers(&b, nodes, 3, qf_get_le64(body));
			break;
		case NET_REQ_DESCRIBE:
			net_encode_metadata(&b, 4, 5);
			break;
		case NET_REQ_DUMP:
			net_encode_files(&b, files, 2);
			break;
		case NET_REQ_TRANSFER:
			net_encode_failure(&b, 1, "server ID is not valid");
			break;
		default: /* ADD, ASSIGN, REMOVE, WEIGHT */
			net_encode_empty(&b);
			break;
		}
		free(body);
		fk_send_buf(fd, &b);
	}
out:
	net_buf_close(&b);
}

static int dump_cb(void *data, const char *name, const void *bytes,
		   uint64_t size)
{
	char *seen = data;

	snprintf(seen + strlen(seen), 64, "%s/%llu/%.*s;", name,
		 (unsigned long long)size, (int)size, (const char *)bytes);
	return 0;
}

/* CLUSTER, ADD, ASSIGN, REMOVE, WEIGHT, DESCRIBE, DUMP and TRANSFER send
 * their argument and read their answers (§4.12-§4.20, §9). */
TEST(client, admin_requests)
{
	struct net_client *c = client_new(5000);
	struct net_member *m = NULL;
	uint64_t domain = 0, weight = 0;
	char seen[256] = "";
	struct fake f;
	size_t n = 0;

	fake_start(&f, "a", serve_admin, 1);
	fake_run(&f);
	ASSERT_EQ(net_client_connect(c, f.addr), 0);
	ASSERT_EQ(net_client_cluster(c, &m, &n), 0);
	ASSERT_EQ(n, 3);
	ASSERT_U64_EQ(m[0].id, 0x2dc171858c3155beULL);
	ASSERT_STR(m[0].address, "127.0.0.1:9001");
	ASSERT_EQ(m[0].role, NET_VOTER);
	ASSERT_EQ(m[1].role, NET_STANDBY);
	ASSERT_EQ(m[2].role, NET_SPARE);
	ASSERT_STR(net_role_name(m[1].role), "stand-by");
	net_members_free(m, n);
	ASSERT_EQ(net_client_add(c, 4, "127.0.0.1:9004"), 0);
	ASSERT_EQ(net_client_assign(c, 4, NET_STANDBY), 0);
	ASSERT_EQ(net_client_assign(c, 4, 3), -EINVAL);
	ASSERT_EQ(net_client_remove(c, 4), 0);
	ASSERT_EQ(net_client_weight(c, 9), 0);
	ASSERT_EQ(net_client_describe(c, &domain, &weight), 0);
	ASSERT_EQ(domain, 4);
	ASSERT_EQ(weight, 5);
	ASSERT_EQ(net_client_dump(c, "demo", dump_cb, seen), 0);
	ASSERT_STR(seen, "demo/8/12345678;demo-wal/0/;");
	ASSERT_EQ(net_client_transfer(c, 1), NET_EFAILURE);
	ASSERT_STR(net_client_errmsg(c), "server ID is not valid");
	net_client_free(c);
	fake_stop(&f);
	ASSERT_STR(log_string(), "a:cluster:1 a:add:4 a:assign:4 a:remove:4 "
				 "a:weight:9 a:describe:0 a:dump:1869440356 "
				 "a:transfer:1");
	return TEST_OK;
}

/* Role names both ways. */
TEST(client, roles)
{
	ASSERT_EQ(net_role_parse("voter"), NET_VOTER);
	ASSERT_EQ(net_role_parse("stand-by"), NET_STANDBY);
	ASSERT_EQ(net_role_parse("standby"), NET_STANDBY);
	ASSERT_EQ(net_role_parse("SPARE"), NET_SPARE);
	ASSERT_EQ(net_role_parse("2"), NET_SPARE);
	ASSERT_EQ(net_role_parse("leader"), -1);
	ASSERT_STR(net_role_name(NET_VOTER), "voter");
	ASSERT_STR(net_role_name(7), "unknown");
	return TEST_OK;
}

/* Requests on a client that never connected. */
TEST(client, not_connected)
{
	struct net_client *c = client_new(0);
	struct net_client_rows rows;

	ASSERT_STR(net_client_errmsg(c), "");
	ASSERT_EQ(net_client_open(c, "x"), -ENOTCONN);
	ASSERT_EQ(net_client_query_sql(c, "SELECT 1", NULL, 0, &rows),
		  -ENOTCONN);
	ASSERT_STR(net_client_errmsg(c), "not connected");
	ASSERT_EQ(net_client_connect_leader(c, NULL, 0), -EINVAL);
	net_client_free(c);
	net_client_free(NULL);
	return TEST_OK;
}

int main(int argc, char **argv)
{
	return unit_main(argc, argv);
}
