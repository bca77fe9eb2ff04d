/* Log entry codec: a transaction (or a database deletion) to and from the
 * bytes raft replicates.  The byte format is specified in engine.h, "Log
 * entry codec"; offsets below cite it.
 *
 * Pure functions over memory, any thread.  Encoding cannot fail: the caller
 * sizes the buffer with eng_entry_size().  Decoding treats its input as
 * hostile (it arrives from peers and from disk): every field is validated
 * against the buffer before anything is read through it, sizes are computed
 * in 64 bits so no count can wrap, and nothing is allocated until the whole
 * entry, trailer hash included, has been checked.  Hence a rejected entry
 * leaves nothing to free.
 *
 * Decode failure modes: QF_EMALFORMED for any byte that breaks the format,
 * -ENOMEM if the transaction cannot be allocated. */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "engine.h"

#define ENTRY_MAGIC 0x31454651u /* "QFE1" read little-endian */
#define ENTRY_VERSION 1
#define ENTRY_HEADER 72 /* fixed part, up to the name */
#define ENTRY_TRAILER 8 /* u64 hash of everything before it */
#define ENTRY_SEED 0x51460001u
#define NAME_MAX_LEN 4095
#define PAGE_SIZE_MIN 512
#define PAGE_SIZE_MAX 65536

/* Header offsets, engine.h. */
enum {
	OFF_MAGIC = 0,
	OFF_VERSION = 4,
	OFF_TYPE = 5,
	OFF_RESERVED16 = 6,
	OFF_LENGTH = 8,
	OFF_NAME_LEN = 12,
	OFF_ORIGIN = 16,
	OFF_NONCE = 24,
	OFF_SEQ = 32,
	OFF_CKSUM_BEFORE = 40,
	OFF_CKSUM_AFTER = 48,
	OFF_PAGE_SIZE = 56,
	OFF_DB_PAGES = 60,
	OFF_N = 64,
	OFF_RESERVED32 = 68,
};

/* Round up to the 8-byte section alignment.  64-bit so that no u32 count
 * from the wire can wrap. */
static uint64_t pad8(uint64_t n)
{
	return (n + 7) & ~(uint64_t)7;
}

/* Every section's offset and the total length, for given counts.  At most
 * 72 + 4096 + 2^34 + 2^48 + 8, so no overflow in uint64_t. */
struct layout {
	uint64_t name;	/* offset of the name bytes */
	uint64_t pgnos; /* offset of the page number array */
	uint64_t pages; /* offset of the first page image */
	uint64_t hash;	/* offset of the trailer */
	uint64_t total;
};

static void layout_of(struct layout *l, uint64_t name_len, uint64_t n,
		      uint64_t page_size)
{
	l->name = ENTRY_HEADER;
	l->pgnos = l->name + pad8(name_len);
	l->pages = l->pgnos + pad8(n * 4);
	l->hash = l->pages + n * page_size;
	l->total = l->hash + ENTRY_TRAILER;
}

static bool page_size_valid(uint32_t ps)
{
	return ps >= PAGE_SIZE_MIN && ps <= PAGE_SIZE_MAX &&
	       (ps & (ps - 1)) == 0;
}

size_t eng_entry_size(const struct eng_txn *t)
{
	struct layout l;

	layout_of(&l, strlen(t->db), t->n, t->page_size);
	return (size_t)l.total;
}

static void put_zeros(uint8_t *p, uint64_t from, uint64_t to)
{
	memset(p + from, 0, (size_t)(to - from));
}

void eng_entry_encode(int type, const struct eng_txn *t, uint64_t origin,
		      uint64_t nonce, void *buf)
{
	uint8_t *p = buf;
	size_t name_len = strlen(t->db);
	struct layout l;
	uint32_t i;

	assert(type == ENG_ENTRY_TXN || type == ENG_ENTRY_UNLINK);
	assert(type == ENG_ENTRY_TXN || (t->n == 0 && t->db_pages == 0));
	layout_of(&l, name_len, t->n, t->page_size);
	/* The length field is a u32: callers refuse bigger transactions. */
	assert(l.total <= UINT32_MAX);

	qf_put_le32(p + OFF_MAGIC, ENTRY_MAGIC);
	p[OFF_VERSION] = ENTRY_VERSION;
	p[OFF_TYPE] = (uint8_t)type;
	p[OFF_RESERVED16] = 0;
	p[OFF_RESERVED16 + 1] = 0;
	qf_put_le32(p + OFF_LENGTH, (uint32_t)l.total);
	qf_put_le32(p + OFF_NAME_LEN, (uint32_t)name_len);
	qf_put_le64(p + OFF_ORIGIN, origin);
	qf_put_le64(p + OFF_NONCE, nonce);
	qf_put_le64(p + OFF_SEQ, t->seq);
	qf_put_le64(p + OFF_CKSUM_BEFORE, t->cksum_before);
	qf_put_le64(p + OFF_CKSUM_AFTER, t->cksum_after);
	qf_put_le32(p + OFF_PAGE_SIZE, t->page_size);
	qf_put_le32(p + OFF_DB_PAGES, t->db_pages);
	qf_put_le32(p + OFF_N, t->n);
	qf_put_le32(p + OFF_RESERVED32, 0);

	memcpy(p + l.name, t->db, name_len);
	put_zeros(p, l.name + name_len, l.pgnos);
	for (i = 0; i < t->n; i++)
		qf_put_le32(p + l.pgnos + 4 * (uint64_t)i, t->pgnos[i]);
	put_zeros(p, l.pgnos + 4 * (uint64_t)t->n, l.pages);
	if (t->n > 0) /* pages may be unallocated for an empty txn */
		memcpy(p + l.pages, t->pages,
		       (size_t)((uint64_t)t->n * t->page_size));
	qf_put_le64(p + l.hash, qf_hash64(p, (size_t)l.hash, ENTRY_SEED));
}

static bool all_zero(const uint8_t *p, uint64_t from, uint64_t to)
{
	uint64_t i;

	for (i = from; i < to; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/* engine.h: a canonical relative path: not empty, at most 4095 bytes, no
 * NUL, and every '/'-separated component non-empty and neither "." nor
 * ".." (so "a..b.db" is fine, "a/../b", "a//b", "./a" and "a/" are not). */
bool eng_name_valid(const void *name_bytes, size_t len_bytes)
{
	const uint8_t *name = name_bytes;
	uint32_t len = (uint32_t)len_bytes;
	uint32_t i, start = 0;

	if (len_bytes == 0 || len_bytes > NAME_MAX_LEN)
		return false;
	for (i = 0; i <= len; i++) {
		if (i < len && name[i] == '\0')
			return false;
		if (i < len && name[i] != '/')
			continue;
		/* A component ends at i. */
		if (i == start)
			return false;
		if (name[start] == '.' &&
		    (i - start == 1 || (i - start == 2 && name[start + 1] == '.')))
			return false;
		start = i + 1;
	}
	return true;
}

/* The fixed header, before anything that depends on its counts. */
static int check_header(const uint8_t *p, size_t len, int *type)
{
	*type = p[OFF_TYPE];
	if (qf_get_le32(p + OFF_MAGIC) != ENTRY_MAGIC)
		return QF_EMALFORMED;
	if (p[OFF_VERSION] != ENTRY_VERSION)
		return QF_EMALFORMED;
	if (*type != ENG_ENTRY_TXN && *type != ENG_ENTRY_UNLINK)
		return QF_EMALFORMED;
	if (p[OFF_RESERVED16] != 0 || p[OFF_RESERVED16 + 1] != 0 ||
	    qf_get_le32(p + OFF_RESERVED32) != 0)
		return QF_EMALFORMED;
	if (qf_get_le32(p + OFF_LENGTH) != len)
		return QF_EMALFORMED;
	return 0;
}

/* Page size and counts.  A deletion carries no pages and no size; its
 * page size may be 0 (unknown) or a valid one. */
static int check_counts(int type, uint32_t page_size, uint32_t db_pages,
			uint32_t n)
{
	if (type == ENG_ENTRY_UNLINK) {
		if (n != 0 || db_pages != 0)
			return QF_EMALFORMED;
		if (page_size == 0)
			return 0;
	}
	return page_size_valid(page_size) ? 0 : QF_EMALFORMED;
}

/* Strictly ascending, within 1..db_pages, zero padding after. */
static int check_pgnos(const uint8_t *p, const struct layout *l, uint32_t n,
		       uint32_t db_pages)
{
	uint32_t prev = 0, pgno, i;

	for (i = 0; i < n; i++) {
		pgno = qf_get_le32(p + l->pgnos + 4 * (uint64_t)i);
		if (pgno <= prev || pgno > db_pages)
			return QF_EMALFORMED;
		prev = pgno;
	}
	if (!all_zero(p, l->pgnos + 4 * (uint64_t)n, l->pages))
		return QF_EMALFORMED;
	return 0;
}

int eng_entry_decode(const void *buf, size_t len, struct eng_entry *e)
{
	const uint8_t *p = buf;
	char name[NAME_MAX_LEN + 1];
	struct eng_txn *t;
	struct layout l;
	uint32_t name_len, page_size, db_pages, n, i;
	int type;
	int rv;

	e->txn = NULL;
	if (len < ENTRY_HEADER + ENTRY_TRAILER)
		return QF_EMALFORMED;
	rv = check_header(p, len, &type);
	if (rv != 0)
		return rv;
	name_len = qf_get_le32(p + OFF_NAME_LEN);
	page_size = qf_get_le32(p + OFF_PAGE_SIZE);
	db_pages = qf_get_le32(p + OFF_DB_PAGES);
	n = qf_get_le32(p + OFF_N);
	rv = check_counts(type, page_size, db_pages, n);
	if (rv != 0)
		return rv;
	/* Sections are only read once the counts are known to span exactly
	 * the buffer. */
	layout_of(&l, name_len, n, page_size);
	if (l.total != len)
		return QF_EMALFORMED;
	if (!eng_name_valid(p + l.name, name_len) ||
	    !all_zero(p, l.name + name_len, l.pgnos))
		return QF_EMALFORMED;
	rv = check_pgnos(p, &l, n, db_pages);
	if (rv != 0)
		return rv;
	if (qf_get_le64(p + l.hash) != qf_hash64(p, (size_t)l.hash, ENTRY_SEED))
		return QF_EMALFORMED;

	memcpy(name, p + l.name, name_len);
	name[name_len] = '\0';
	t = eng_txn_new(name, page_size, n);
	if (t == NULL)
		return -ENOMEM;
	t->db_pages = db_pages;
	t->seq = qf_get_le64(p + OFF_SEQ);
	t->cksum_before = qf_get_le64(p + OFF_CKSUM_BEFORE);
	t->cksum_after = qf_get_le64(p + OFF_CKSUM_AFTER);
	for (i = 0; i < n; i++)
		t->pgnos[i] = qf_get_le32(p + l.pgnos + 4 * (uint64_t)i);
	if (n > 0)
		memcpy(t->pages, p + l.pages, (size_t)(l.hash - l.pages));
	e->type = type;
	e->origin = qf_get_le64(p + OFF_ORIGIN);
	e->nonce = qf_get_le64(p + OFF_NONCE);
	e->txn = t; /* caller owns it now */
	return 0;
}

int eng_entry_peek_db(const void *buf, size_t len, char *name, size_t size)
{
	const uint8_t *p = buf;
	uint32_t n;

	if (len < ENTRY_HEADER + ENTRY_TRAILER ||
	    qf_get_le32(p + OFF_MAGIC) != ENTRY_MAGIC ||
	    p[OFF_VERSION] != ENTRY_VERSION ||
	    qf_get_le32(p + OFF_LENGTH) != len)
		return QF_EMALFORMED;
	n = qf_get_le32(p + OFF_NAME_LEN);
	if (n >= size || (uint64_t)ENTRY_HEADER + n > len ||
	    !eng_name_valid(p + ENTRY_HEADER, n))
		return QF_EMALFORMED;
	memcpy(name, p + ENTRY_HEADER, n);
	name[n] = '\0';
	return 0;
}
