/* Leaf helpers shared by every module: error codes, logging, hashing and
 * byte order.  Depends on libc only; any thread may call any of these. */
#ifndef QF_LIB_H
#define QF_LIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* quorafs-specific error codes, outside the errno range.  Functions return
 * 0 or a negative errno or one of these. */
#define QF_ERRORS(X)                                                        \
	X(QF_ENOTLEADER, -1001, "not the raft leader")                     \
	X(QF_EMALFORMED, -1002, "malformed data")                           \
	X(QF_EDIVERGED, -1003, "local state diverged from the leader's")   \
	X(QF_ESHUTDOWN, -1004, "shutting down")                            \
	X(QF_ELEADERSHIPLOST, -1005, "leadership lost, outcome unknown")   \
	X(QF_ERAFT, -1006, "raft failure")                                  \
	X(QF_ENOTSQLITE, -1007, "not SQLite data")

enum {
#define QF_ERR_ENUM(name, value, text) name = value,
	QF_ERRORS(QF_ERR_ENUM)
#undef QF_ERR_ENUM
};

/* Name any return code: 0, -errno or a QF_E* code.  Never NULL. */
const char *qf_strerror(int code);

enum { QF_DEBUG = 0, QF_INFO, QF_WARN, QF_ERROR };

/* Lines below @level are dropped.  Default QF_INFO. */
void qf_log_set_level(int level);
int qf_log_level(void);
/* Parse "debug", "info", "warn", "error"; -1 if unknown. */
int qf_log_parse_level(const char *name);
/* The name qf_log_parse_level takes for @level. */
const char *qf_log_level_name(int level);
void qf_log(int level, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#define QF_LOG(level, ...)                                                  \
	do {                                                                \
		if ((level) >= qf_log_level())                              \
			qf_log((level), __FILE__, __LINE__, __VA_ARGS__);   \
	} while (0)

/* 64-bit non-cryptographic hash of @n bytes. */
uint64_t qf_hash64(const void *p, size_t n, uint64_t seed);

/* Hash of one database page: its number and content.  The rolling database
 * checksum is the XOR of these over pages 1..size (absent pages count 0). */
uint64_t qf_page_hash(uint32_t pgno, const void *page, size_t page_size);

/* Byte order helpers (unaligned-safe). */
static inline uint32_t qf_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline void qf_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint16_t qf_get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t qf_get_le32(const uint8_t *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[1] << 8 | (uint32_t)p[0];
}

static inline void qf_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline uint64_t qf_get_le64(const uint8_t *p)
{
	return (uint64_t)qf_get_le32(p + 4) << 32 | qf_get_le32(p);
}

static inline void qf_put_le64(uint8_t *p, uint64_t v)
{
	qf_put_le32(p, (uint32_t)v);
	qf_put_le32(p + 4, (uint32_t)(v >> 32));
}

/* SQLite page size from a database header's bytes 16..17 (1 = 65536);
 * 0 if not a power of two in [512, 65536]. */
uint32_t qf_sqlite_page_size(const uint8_t *header100);

/* Non-zero if @p (at least 16 bytes) starts with "SQLite format 3\0". */
int qf_is_sqlite_header(const uint8_t *p);

/* SQLite's WAL checksum (sqlite-io.md §1) over @n bytes (a multiple of
 * 8) at @p, continuing from @in: pairs of u32 words in the order the
 * magic names (@big_endian), s0 += a + s1, s1 += b + s0.  @out may be
 * @in. */
void qf_wal_checksum(bool big_endian, const uint8_t *p, size_t n,
		     const uint32_t in[2], uint32_t out[2]);

/* Read/write exactly @n bytes at @off, retrying short transfers and EINTR.
 * qf_pread_full returns the bytes read (short only at end of file) or
 * -errno; qf_pwrite_full returns 0 or -errno. */
long qf_pread_full(int fd, void *buf, size_t n, int64_t off);
int qf_pwrite_full(int fd, const void *buf, size_t n, int64_t off);

/* The same for streams (pipes, sockets).  qf_read_full returns 0,
 * -ENODATA at the end of the stream before any byte, -EPIPE at its end
 * after some, or -errno; qf_write_full returns 0 or -errno. */
int qf_read_full(int fd, void *buf, size_t n);
int qf_write_full(int fd, const void *buf, size_t n);

#define QF_CONTAINER_OF(ptr, type, member)                                  \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#endif /* QF_LIB_H */
