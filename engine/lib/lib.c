/* Error names, logging, hashing and file I/O helpers.  Any thread. */
#include "lib.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

const char *qf_strerror(int code)
{
	switch (code) {
	case 0:
		return "success";
#define QF_ERR_CASE(name, value, text)                                      \
	case name:                                                          \
		return text;
		QF_ERRORS(QF_ERR_CASE)
#undef QF_ERR_CASE
	default:
		break;
	}
	if (code < 0 && code > -4096)
		return strerror(-code);
	return "unknown error";
}

static int log_level = QF_INFO;

void qf_log_set_level(int level)
{
	log_level = level;
}

int qf_log_level(void)
{
	return log_level;
}

static const char *level_names[] = {"debug", "info", "warn", "error"};

const char *qf_log_level_name(int level)
{
	return level >= 0 && level < 4 ? level_names[level] : "info";
}

int qf_log_parse_level(const char *name)
{
	const char **names = level_names;
	int i;

	for (i = 0; i < 4; i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	return -1;
}

void qf_log(int level, const char *file, int line, const char *fmt, ...)
{
	static const char *tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
	char msg[1024];
	char stamp[32];
	struct timespec ts;
	struct tm tm;
	const char *base = strrchr(file, '/');
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof stamp, "%H:%M:%S", &tm);
	/* One fprintf per line so concurrent threads do not interleave. */
	fprintf(stderr, "%s.%03ld %-5s %s:%d %s\n", stamp, ts.tv_nsec / 1000000,
		tags[level < 0 ? 0 : level > 3 ? 3 : level],
		base ? base + 1 : file, line, msg);
}

/* A 64-bit multiply-xorshift hash processing 8 bytes per step.  Written
 * for speed over page-sized inputs, not for adversarial resistance. */
static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 32;
	x *= 0xd6e8feb86659fd93ULL;
	x ^= x >> 32;
	x *= 0xd6e8feb86659fd93ULL;
	x ^= x >> 32;
	return x;
}

uint64_t qf_hash64(const void *p, size_t n, uint64_t seed)
{
	const uint8_t *b = p;
	uint64_t h1 = seed ^ 0x9e3779b97f4a7c15ULL;
	uint64_t h2 = (seed + n) * 0xc2b2ae3d27d4eb4fULL;
	uint64_t w;
	size_t i;

	for (i = 0; i + 16 <= n; i += 16) {
		memcpy(&w, b + i, 8);
		h1 = (h1 ^ (w * 0x87c37b91114253d5ULL)) * 0x4cf5ad432745937fULL;
		h1 = (h1 << 31) | (h1 >> 33);
		memcpy(&w, b + i + 8, 8);
		h2 = (h2 ^ (w * 0x4cf5ad432745937fULL)) * 0x87c37b91114253d5ULL;
		h2 = (h2 << 29) | (h2 >> 35);
	}
	for (; i < n; i++)
		h1 = (h1 ^ b[i]) * 0x100000001b3ULL;
	return mix64(h1 ^ mix64(h2 + n));
}

uint64_t qf_page_hash(uint32_t pgno, const void *page, size_t page_size)
{
	uint64_t h = qf_hash64(page, page_size, pgno);

	/* 0 is reserved for "no page"; a real page never hashes to it. */
	return h == 0 ? 1 : h;
}

uint32_t qf_sqlite_page_size(const uint8_t *header100)
{
	uint32_t ps = qf_get_be16(header100 + 16);

	if (ps == 1)
		return 65536;
	if (ps < 512 || (ps & (ps - 1)) != 0)
		return 0;
	return ps;
}

int qf_is_sqlite_header(const uint8_t *p)
{
	return memcmp(p, "SQLite format 3", 16) == 0;
}

long qf_pread_full(int fd, void *buf, size_t n, int64_t off)
{
	size_t done = 0;
	ssize_t rv;

	while (done < n) {
		rv = pread(fd, (char *)buf + done, n - done, (off_t)off + (off_t)done);
		if (rv < 0 && errno == EINTR)
			continue;
		if (rv < 0)
			return -errno;
		if (rv == 0)
			break;
		done += (size_t)rv;
	}
	return (long)done;
}

void qf_wal_checksum(bool big_endian, const uint8_t *p, size_t n,
		     const uint32_t in[2], uint32_t out[2])
{
	uint32_t s0 = in[0], s1 = in[1];
	size_t i;

	assert(n % 8 == 0);
	if (big_endian) {
		for (i = 0; i < n; i += 8) {
			s0 += qf_get_be32(p + i) + s1;
			s1 += qf_get_be32(p + i + 4) + s0;
		}
	} else {
		for (i = 0; i < n; i += 8) {
			s0 += qf_get_le32(p + i) + s1;
			s1 += qf_get_le32(p + i + 4) + s0;
		}
	}
	out[0] = s0;
	out[1] = s1;
}

/* Write all of @buf at @off, or at the stream position if @off < 0. */
static int write_all(int fd, const void *buf, size_t n, int64_t off)
{
	size_t done = 0;
	ssize_t rv;

	while (done < n) {
		if (off < 0)
			rv = write(fd, (const char *)buf + done, n - done);
		else
			rv = pwrite(fd, (const char *)buf + done, n - done,
				    (off_t)off + (off_t)done);
		if (rv < 0 && errno == EINTR)
			continue;
		if (rv < 0)
			return -errno;
		done += (size_t)rv;
	}
	return 0;
}

int qf_pwrite_full(int fd, const void *buf, size_t n, int64_t off)
{
	return write_all(fd, buf, n, off);
}

int qf_read_full(int fd, void *buf, size_t n)
{
	size_t done = 0;
	ssize_t rv;

	while (done < n) {
		rv = read(fd, (char *)buf + done, n - done);
		if (rv < 0 && errno == EINTR)
			continue;
		if (rv < 0)
			return -errno;
		if (rv == 0)
			return done == 0 ? -ENODATA : -EPIPE;
		done += (size_t)rv;
	}
	return 0;
}

int qf_write_full(int fd, const void *buf, size_t n)
{
	return write_all(fd, buf, n, -1);
}
