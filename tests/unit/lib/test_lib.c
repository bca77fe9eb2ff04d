/* Unit tests for the leaf helpers (engine/lib/lib.c and the inline helpers
 * of engine/lib/lib.h): error names, hashing, SQLite header parsing, full
 * reads and writes, and logging. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/lib/lib.h"
#include "tests/lib/unit.h"

/* ---- qf_strerror ---- */

/* Code 0 is named "success". */
TEST(lib_strerror, success)
{
	ASSERT_TRUE(strcmp(qf_strerror(0), "success") == 0);
	return TEST_OK;
}

/* Every quorafs code is named by its text from the QF_ERRORS table. */
TEST(lib_strerror, qf_codes)
{
	static const struct {
		int code;
		const char *text;
	} codes[] = {
#define QF_ERR_ROW(name, value, text) {name, text},
		QF_ERRORS(QF_ERR_ROW)
#undef QF_ERR_ROW
	};
	size_t i;

	ASSERT_TRUE(sizeof codes / sizeof codes[0] >= 7);
	for (i = 0; i < sizeof codes / sizeof codes[0]; i++)
		ASSERT_TRUE(strcmp(qf_strerror(codes[i].code), codes[i].text) ==
			    0);
	ASSERT_TRUE(strcmp(qf_strerror(QF_EMALFORMED), "malformed data") == 0);
	return TEST_OK;
}

/* A negative errno is named as strerror() names it. */
TEST(lib_strerror, errno_codes)
{
	static const int errs[] = {EPERM, ENOENT, EIO, EBADF, ENOMEM, ENOSPC};
	char want[256];
	size_t i;

	for (i = 0; i < sizeof errs / sizeof errs[0]; i++) {
		snprintf(want, sizeof want, "%s", strerror(errs[i]));
		ASSERT_TRUE(strcmp(qf_strerror(-errs[i]), want) == 0);
	}
	return TEST_OK;
}

/* Positive and out-of-range codes are "unknown error", and no code gives
 * NULL. */
TEST(lib_strerror, unknown_codes)
{
	/* The errno range is left to errno_codes: for unassigned errnos
	 * glibc builds a name in a buffer it frees only at exit(), which
	 * valgrind reports in a test child that ends with _exit(). */
	static const int ranges[][2] = {{-6000, -4096}, {0, 100}};
	size_t r;
	int c;

	ASSERT_TRUE(strcmp(qf_strerror(1), "unknown error") == 0);
	ASSERT_TRUE(strcmp(qf_strerror(-5000), "unknown error") == 0);
	ASSERT_TRUE(strcmp(qf_strerror(INT_MIN), "unknown error") == 0);
	ASSERT_TRUE(strcmp(qf_strerror(INT_MAX), "unknown error") == 0);
	for (r = 0; r < sizeof ranges / sizeof ranges[0]; r++)
		for (c = ranges[r][0]; c <= ranges[r][1]; c++)
			ASSERT_NOT_NULL(qf_strerror(c));
	return TEST_OK;
}

/* ---- qf_hash64 ---- */

static void fill(uint8_t *p, size_t n, unsigned salt)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 131 + salt + (i >> 8));
}

/* The same bytes hash the same, wherever they sit in memory. */
TEST(lib_hash, deterministic)
{
	uint8_t a[1000], b[1001];
	size_t n;

	fill(a, sizeof a, 3);
	memcpy(b + 1, a, sizeof a); /* an odd address */
	for (n = 0; n <= sizeof a; n += 37)
		ASSERT_U64_EQ(qf_hash64(a, n, 99), qf_hash64(b + 1, n, 99));
	ASSERT_U64_EQ(qf_hash64(a, sizeof a, 7), qf_hash64(a, sizeof a, 7));
	return TEST_OK;
}

/* qf_hash64 keeps the values it had when the format was fixed, since log
 * entries and checksums persist them (little-endian hosts). */
TEST(lib_hash, pinned_values)
{
	uint8_t b[100];
	size_t i;

	for (i = 0; i < sizeof b; i++)
		b[i] = (uint8_t)i;
	ASSERT_U64_EQ(qf_hash64(b, 0, 0), 0x4e17cf67001b3979ULL);
	ASSERT_U64_EQ(qf_hash64("a", 1, 0), 0xc48051ce4c9db664ULL);
	ASSERT_U64_EQ(qf_hash64(b, 16, 0x51460001), 0x589f912987882028ULL);
	ASSERT_U64_EQ(qf_hash64(b, 100, 12345), 0xa0d7c4a9cfe7a073ULL);
	ASSERT_U64_EQ(qf_page_hash(1, b, 100), 0xa5880f59c03159d5ULL);
	return TEST_OK;
}

/* The seed, the length and the tail bytes all change the hash. */
TEST(lib_hash, inputs_matter)
{
	uint8_t a[40];
	uint64_t h;

	fill(a, sizeof a, 1);
	h = qf_hash64(a, 40, 0);
	ASSERT_TRUE(h != qf_hash64(a, 40, 1));
	ASSERT_TRUE(h != qf_hash64(a, 39, 0));
	ASSERT_TRUE(qf_hash64(a, 0, 0) != qf_hash64(a, 0, 1));
	a[39] ^= 0x80; /* past the last 16-byte block */
	ASSERT_TRUE(h != qf_hash64(a, 40, 0));
	a[39] ^= 0x80;
	a[0] ^= 0x80; /* in the first block */
	ASSERT_TRUE(h != qf_hash64(a, 40, 0));
	memset(a, 0, sizeof a);
	ASSERT_TRUE(qf_hash64(a, 1, 0) != qf_hash64(a, 2, 0));
	return TEST_OK;
}

/* ---- qf_page_hash ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The same page under 1000 different page numbers gives 1000 hashes. */
TEST(lib_page_hash, pgno_matters)
{
	static uint8_t page[4096];
	static uint64_t h[1000];
	size_t i;

	fill(page, sizeof page, 5);
	for (i = 0; i < 1000; i++)
		h[i] = qf_page_hash((uint32_t)i * 7919 + 1, page, sizeof page);
	qsort(h, 1000, sizeof h[0], cmp_u64);
	for (i = 1; i < 1000; i++)
		ASSERT_TRUE(h[i] != h[i - 1]);
	return TEST_OK;
}

/* Changing any one byte of a page changes its hash. */
TEST(lib_page_hash, every_byte_matters)
{
	static uint8_t page[4096];
	uint64_t base;
	size_t i;

	fill(page, sizeof page, 9);
	base = qf_page_hash(3, page, sizeof page);
	for (i = 0; i < sizeof page; i++) {
		page[i] ^= 1;
		ASSERT_TRUE(qf_page_hash(3, page, sizeof page) != base);
		page[i] ^= 1;
	}
	ASSERT_U64_EQ(qf_page_hash(3, page, sizeof page), base);
	return TEST_OK;
}

/* Multiplicative inverse of an odd number modulo 2^64 (Newton). */
static uint64_t inverse(uint64_t a)
{
	uint64_t x = a;
	int i;

	for (i = 0; i < 5; i++)
		x *= 2 - a * x;
	return x;
}

static uint64_t rotl(uint64_t x, int r)
{
	return x << r | x >> (64 - r);
}

/* The final mixer of qf_hash64, copied from lib.c. */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 32;
	x *= 0xd6e8feb86659fd93ULL;
	x ^= x >> 32;
	x *= 0xd6e8feb86659fd93ULL;
	x ^= x >> 32;
	return x;
}

/* Sixteen bytes whose qf_hash64 with @seed is 0, built by inverting the
 * one 16-byte block step of lib.c's hash: pick the second word, then
 * solve for the first so that the two lanes cancel before the mixer. */
static void zero_hash_input(uint8_t out[16], uint64_t seed)
{
	const uint64_t k1 = 0x87c37b91114253d5ULL, k2 = 0x4cf5ad432745937fULL;
	uint64_t h1 = seed ^ 0x9e3779b97f4a7c15ULL;
	uint64_t h2 = (seed + 16) * 0xc2b2ae3d27d4eb4fULL;
	uint64_t w2 = 0, target, x, w1;

	h2 = rotl((h2 ^ (w2 * k2)) * k1, 29);
	target = mix64(h2 + 16); /* h1 must equal this */
	x = rotl(target, 33) * inverse(k2);
	w1 = (x ^ h1) * inverse(k1);
	memcpy(out, &w1, 8);
	memcpy(out + 8, &w2, 8);
}

/* A page whose raw hash is 0 still gets a non-zero page hash, because 0
 * means "no page" in the rolling checksum. */
TEST(lib_page_hash, never_zero)
{
	uint8_t page[16];

	zero_hash_input(page, 5);
	ASSERT_U64_EQ(qf_hash64(page, sizeof page, 5), 0); /* precondition */
	ASSERT_TRUE(qf_page_hash(5, page, sizeof page) != 0);
	return TEST_OK;
}

/* ---- SQLite header ---- */

static uint32_t page_size_of(unsigned field)
{
	uint8_t h[100] = {0};

	h[16] = (uint8_t)(field >> 8);
	h[17] = (uint8_t)field;
	return qf_sqlite_page_size(h);
}

/* Powers of two from 512 to 32768 are read big-endian from bytes 16..17,
 * and 1 means 65536. */
TEST(lib_sqlite, page_size_valid)
{
	unsigned ps;

	for (ps = 512; ps <= 32768; ps *= 2)
		ASSERT_EQ(page_size_of(ps), ps);
	ASSERT_EQ(page_size_of(1), 65536);
	return TEST_OK;
}

/* Other values give 0. */
TEST(lib_sqlite, page_size_invalid)
{
	static const unsigned bad[] = {
		0, 2, 3, 256, 511, 513, 768, 1000, 4097, 0x8001, 0xffff,
	};
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ASSERT_EQ(page_size_of(bad[i]), 0);
	ASSERT_EQ(page_size_of(0x0010), 0); /* 4096 little-endian */
	return TEST_OK;
}

/* Only the exact 16-byte magic, NUL included, is a SQLite header. */
TEST(lib_sqlite, header_magic)
{
	uint8_t h[100] = "SQLite format 3";

	ASSERT_TRUE(qf_is_sqlite_header(h));
	h[15] = 'x';
	ASSERT_TRUE(!qf_is_sqlite_header(h));
	h[15] = 0;
	h[14] = '2';
	ASSERT_TRUE(!qf_is_sqlite_header(h));
	h[14] = '3';
	h[0] = 's';
	ASSERT_TRUE(!qf_is_sqlite_header(h));
	return TEST_OK;
}

/* ---- qf_pread_full / qf_pwrite_full ---- */

/* A new empty file, already unlinked. */
static int temp_fd(void)
{
	char path[] = "/tmp/qf_test_lib_XXXXXX";
	int fd = mkstemp(path);

	if (fd >= 0)
		unlink(path);
	return fd;
}

/* Bytes written with qf_pwrite_full read back whole with qf_pread_full. */
TEST(lib_io, write_read_back)
{
	static uint8_t out[300000], in[300000];
	int fd = temp_fd();

	ASSERT_TRUE(fd >= 0);
	fill(out, sizeof out, 11);
	ASSERT_EQ(qf_pwrite_full(fd, out, sizeof out, 0), 0);
	ASSERT_EQ(qf_pread_full(fd, in, sizeof in, 0), sizeof in);
	ASSERT_MEM_EQ(in, out, sizeof out);
	ASSERT_EQ(qf_pread_full(fd, in, 100, 1234), 100);
	ASSERT_MEM_EQ(in, out + 1234, 100);
	close(fd);
	return TEST_OK;
}

/* A read across the end of file returns the bytes up to it; at or past the
 * end it returns 0. */
TEST(lib_io, short_read_at_eof)
{
	uint8_t out[1000], in[500];
	int fd = temp_fd();

	ASSERT_TRUE(fd >= 0);
	fill(out, sizeof out, 13);
	ASSERT_EQ(qf_pwrite_full(fd, out, sizeof out, 0), 0);
	memset(in, 0xee, sizeof in);
	ASSERT_EQ(qf_pread_full(fd, in, sizeof in, 800), 200);
	ASSERT_MEM_EQ(in, out + 800, 200);
	ASSERT_EQ(in[200], 0xee); /* nothing written past what was read */
	ASSERT_EQ(qf_pread_full(fd, in, sizeof in, 1000), 0);
	ASSERT_EQ(qf_pread_full(fd, in, sizeof in, 5000), 0);
	ASSERT_EQ(qf_pread_full(fd, in, 0, 0), 0);
	close(fd);
	return TEST_OK;
}

/* A write past the end extends the file, leaving a hole of zeros. */
TEST(lib_io, write_extends)
{
	uint8_t in[4106];
	struct stat st;
	size_t i;
	int fd = temp_fd();

	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ(qf_pwrite_full(fd, "0123456789", 10, 4096), 0);
	ASSERT_EQ(fstat(fd, &st), 0);
	ASSERT_EQ(st.st_size, 4106);
	ASSERT_EQ(qf_pread_full(fd, in, sizeof in, 0), 4106);
	for (i = 0; i < 4096; i++)
		ASSERT_EQ(in[i], 0);
	ASSERT_MEM_EQ(in + 4096, "0123456789", 10);
	close(fd);
	return TEST_OK;
}

/* Failures come back as negative errno values. */
TEST(lib_io, errors)
{
	uint8_t b[16] = {0};
	int p[2];

	ASSERT_EQ(qf_pread_full(-1, b, sizeof b, 0), -EBADF);
	ASSERT_EQ(qf_pwrite_full(-1, b, sizeof b, 0), -EBADF);
	ASSERT_EQ(pipe(p), 0);
	ASSERT_EQ(qf_pread_full(p[0], b, sizeof b, 0), -ESPIPE);
	ASSERT_EQ(qf_pwrite_full(p[1], b, sizeof b, 0), -ESPIPE);
	ASSERT_EQ(qf_pwrite_full(p[0], b, sizeof b, 0), -ESPIPE);
	close(p[0]);
	close(p[1]);
	return TEST_OK;
}

/* ---- logging ---- */

/* The four level names parse to their levels; anything else is -1. */
TEST(lib_log, parse_level)
{
	ASSERT_EQ(qf_log_parse_level("debug"), QF_DEBUG);
	ASSERT_EQ(qf_log_parse_level("info"), QF_INFO);
	ASSERT_EQ(qf_log_parse_level("warn"), QF_WARN);
	ASSERT_EQ(qf_log_parse_level("error"), QF_ERROR);
	ASSERT_EQ(qf_log_parse_level("INFO"), -1);
	ASSERT_EQ(qf_log_parse_level("warning"), -1);
	ASSERT_EQ(qf_log_parse_level("err"), -1);
	ASSERT_EQ(qf_log_parse_level(""), -1);
	return TEST_OK;
}

/* The level defaults to info and keeps what it is set to. */
TEST(lib_log, set_level)
{
	ASSERT_EQ(qf_log_level(), QF_INFO);
	qf_log_set_level(QF_ERROR);
	ASSERT_EQ(qf_log_level(), QF_ERROR);
	qf_log_set_level(QF_DEBUG);
	ASSERT_EQ(qf_log_level(), QF_DEBUG);
	return TEST_OK;
}

/* QF_LOG drops lines below the level and writes one tagged line for each
 * of the others. */
TEST(lib_log, filters_and_formats)
{
	char text[512], *nl;
	long n;
	int fd = temp_fd(), saved = dup(2);

	ASSERT_TRUE(fd >= 0 && saved >= 0);
	ASSERT_EQ(dup2(fd, 2), 2);
	qf_log_set_level(QF_INFO);
	QF_LOG(QF_DEBUG, "dropped=%d", 1);
	QF_LOG(QF_INFO, "db=%s index=%d", "x.db", 5);
	QF_LOG(QF_ERROR, "failed=%s", "yes");
	fflush(stderr);
	ASSERT_EQ(dup2(saved, 2), 2); /* failures below print again */
	n = qf_pread_full(fd, text, sizeof text - 1, 0);
	ASSERT_TRUE(n > 0);
	text[n] = '\0';
	ASSERT_NULL(strstr(text, "dropped"));
	nl = strchr(text, '\n');
	ASSERT_NOT_NULL(nl);
	*nl = '\0'; /* first line */
	ASSERT_NOT_NULL(strstr(text, " INFO "));
	ASSERT_NOT_NULL(strstr(text, "test_lib.c:"));
	ASSERT_NOT_NULL(strstr(text, " db=x.db index=5"));
	ASSERT_NOT_NULL(strstr(nl + 1, " ERROR "));
	ASSERT_NOT_NULL(strstr(nl + 1, " failed=yes\n"));
	ASSERT_TRUE(strchr(nl + 1, '\n') == text + n - 1); /* two lines */
	close(fd);
	close(saved);
	return TEST_OK;
}

/* ---- lib.h inline helpers ---- */

/* Little- and big-endian helpers write and read the documented byte
 * order. */
TEST(lib_bytes, byte_order)
{
	uint8_t b[8];

	qf_put_le32(b, 0x01020304);
	ASSERT_MEM_EQ(b, "\x04\x03\x02\x01", 4);
	ASSERT_EQ(qf_get_le32(b), 0x01020304);
	qf_put_le64(b, 0x0102030405060708ULL);
	ASSERT_MEM_EQ(b, "\x08\x07\x06\x05\x04\x03\x02\x01", 8);
	ASSERT_U64_EQ(qf_get_le64(b), 0x0102030405060708ULL);
	qf_put_le64(b, UINT64_MAX);
	ASSERT_U64_EQ(qf_get_le64(b), UINT64_MAX);
	qf_put_be32(b, 0xa1b2c3d4);
	ASSERT_MEM_EQ(b, "\xa1\xb2\xc3\xd4", 4);
	ASSERT_EQ(qf_get_be32(b), 0xa1b2c3d4);
	ASSERT_EQ(qf_get_be16(b), 0xa1b2);
	return TEST_OK;
}

/* QF_CONTAINER_OF recovers the outer struct from a member pointer. */
TEST(lib_bytes, container_of)
{
	struct outer {
		int a;
		char pad[3];
		long member;
	} o;

	ASSERT_TRUE(QF_CONTAINER_OF(&o.member, struct outer, member) == &o);
	return TEST_OK;
}

int main(int argc, char **argv)
{
	return unit_main(argc, argv);
}
