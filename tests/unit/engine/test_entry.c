/* Unit tests for the log entry codec (engine/entry.c).
 *
 * Entries under test are built two ways: by the encoder, and by raw_build(),
 * which writes the bytes straight from the format in engine.h and can break
 * any one field.  Rejection tests reseal the trailer hash after breaking a
 * field, so the field check itself, not the hash, must catch it.  Every
 * decode reads from a heap copy of exactly the given length, so an
 * over-read shows up under valgrind or ASan. */
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "tests/lib/unit.h"

#define SEED 0x51460001u
#define NO_OVERRIDE UINT64_MAX

/* The fields of an entry as written on the wire. */
struct raw {
	uint32_t magic;
	uint8_t version;
	uint8_t type;
	uint16_t reserved16;
	uint64_t length; /* NO_OVERRIDE: the true length */
	const char *name;
	uint32_t name_len;
	uint64_t origin, nonce, seq, cksum_before, cksum_after;
	uint32_t page_size, db_pages, n, reserved32;
	const uint32_t *pgnos;
	uint64_t page_bytes; /* NO_OVERRIDE: n * page_size */
};

static const uint32_t default_pgnos[] = {1, 4, 10};

/* A valid TXN: 3 pages of 512 bytes, so both the name ("db/main.db", 10
 * bytes) and the page numbers (12 bytes) are followed by padding. */
static void raw_default(struct raw *r)
{
	memset(r, 0, sizeof *r);
	r->magic = 0x31454651;
	r->version = 1;
	r->type = ENG_ENTRY_TXN;
	r->length = NO_OVERRIDE;
	r->name = "db/main.db";
	r->name_len = 10;
	r->origin = 0x0102030405060708ULL;
	r->nonce = 0x1112131415161718ULL;
	r->seq = 42;
	r->cksum_before = 0xa1a2a3a4a5a6a7a8ULL;
	r->cksum_after = 0xb1b2b3b4b5b6b7b8ULL;
	r->page_size = 512;
	r->db_pages = 10;
	r->n = 3;
	r->pgnos = default_pgnos;
	r->page_bytes = NO_OVERRIDE;
}

static uint64_t pad8(uint64_t n)
{
	return (n + 7) / 8 * 8;
}

static uint8_t page_byte(uint64_t i)
{
	return (uint8_t)(i * 7 + i / 251 + 1);
}

static void reseal_with(uint8_t *buf, size_t len, uint64_t seed)
{
	qf_put_le64(buf + len - 8, qf_hash64(buf, len - 8, seed));
}

/* Recompute the trailer after a field was changed. */
static void reseal(uint8_t *buf, size_t len)
{
	reseal_with(buf, len, SEED);
}

/* Write @r as bytes, per engine.h, into a new buffer; returns its length. */
static size_t raw_build(const struct raw *r, uint8_t **out)
{
	uint64_t page_bytes = r->page_bytes == NO_OVERRIDE
				  ? (uint64_t)r->n * r->page_size
				  : r->page_bytes;
	uint64_t off_pgnos = 72 + pad8(r->name_len);
	uint64_t off_pages = off_pgnos + pad8((uint64_t)r->n * 4);
	size_t len = (size_t)(off_pages + page_bytes + 8);
	uint8_t *b = calloc(1, len);
	uint64_t i;

	if (b == NULL)
		abort();
	qf_put_le32(b + 0, r->magic);
	b[4] = r->version;
	b[5] = r->type;
	b[6] = (uint8_t)r->reserved16;
	b[7] = (uint8_t)(r->reserved16 >> 8);
	qf_put_le32(b + 8,
		    (uint32_t)(r->length == NO_OVERRIDE ? len : r->length));
	qf_put_le32(b + 12, r->name_len);
	qf_put_le64(b + 16, r->origin);
	qf_put_le64(b + 24, r->nonce);
	qf_put_le64(b + 32, r->seq);
	qf_put_le64(b + 40, r->cksum_before);
	qf_put_le64(b + 48, r->cksum_after);
	qf_put_le32(b + 56, r->page_size);
	qf_put_le32(b + 60, r->db_pages);
	qf_put_le32(b + 64, r->n);
	qf_put_le32(b + 68, r->reserved32);
	memcpy(b + 72, r->name, r->name_len);
	for (i = 0; i < r->n; i++)
		qf_put_le32(b + off_pgnos + 4 * i, r->pgnos[i]);
	for (i = 0; i < page_bytes; i++)
		b[off_pages + i] = page_byte(i);
	reseal(b, len);
	*out = b;
	return len;
}

/* Decode a heap copy of exactly @len bytes.  Returns the decoder's code,
 * or INT_MIN if it failed but left e.txn set. */
static int decode_rv(const uint8_t *buf, size_t len)
{
	static struct eng_txn sentinel;
	struct eng_entry e;
	uint8_t *copy = malloc(len > 0 ? len : 1);
	int rv;

	if (copy == NULL)
		abort();
	memcpy(copy, buf, len);
	e.txn = &sentinel; /* decode must clear it on error */
	rv = eng_entry_decode(copy, len, &e);
	free(copy);
	if (rv == 0)
		eng_txn_free(e.txn);
	else if (e.txn != NULL)
		rv = INT_MIN;
	return rv;
}

/* Build @r and decode it. */
static int decode_raw(const struct raw *r)
{
	uint8_t *b;
	size_t len = raw_build(r, &b);
	int rv = decode_rv(b, len);

	free(b);
	return rv;
}

/* A transaction with @n pages numbered first, first + stride, ... */
static struct eng_txn *make_txn(const char *name, uint32_t page_size,
				uint32_t n, uint32_t first, uint32_t stride)
{
	struct eng_txn *t = eng_txn_new(name, page_size, n);
	uint64_t i;

	if (t == NULL)
		abort();
	for (i = 0; i < n; i++)
		t->pgnos[i] = first + (uint32_t)i * stride;
	for (i = 0; i < (uint64_t)n * page_size; i++)
		t->pages[i] = page_byte(i);
	t->db_pages = n > 0 ? t->pgnos[n - 1] + 3 : 0;
	t->seq = 77;
	t->cksum_before = 0x0123456789abcdefULL;
	t->cksum_after = 0xfedcba9876543210ULL;
	return t;
}

static uint8_t *encode_new(int type, const struct eng_txn *t, uint64_t origin,
			   uint64_t nonce, size_t *len)
{
	uint8_t *b;

	*len = eng_entry_size(t);
	b = malloc(*len);
	if (b == NULL)
		abort();
	eng_entry_encode(type, t, origin, nonce, b);
	return b;
}

static int check_same_txn(const struct eng_txn *a, const struct eng_txn *b)
{
	ASSERT_TRUE(strcmp(a->db, b->db) == 0);
	ASSERT_EQ(a->page_size, b->page_size);
	ASSERT_EQ(a->db_pages, b->db_pages);
	ASSERT_EQ(a->n, b->n);
	ASSERT_U64_EQ(a->seq, b->seq);
	ASSERT_U64_EQ(a->cksum_before, b->cksum_before);
	ASSERT_U64_EQ(a->cksum_after, b->cksum_after);
	if (a->n > 0) {
		ASSERT_MEM_EQ(a->pgnos, b->pgnos, a->n * sizeof *a->pgnos);
		ASSERT_MEM_EQ(a->pages, b->pages, (size_t)a->n * a->page_size);
	}
	return TEST_OK;
}

/* Encode @t, decode it, and check every field survives; frees @t. */
static int round_trip(int type, struct eng_txn *t, uint64_t origin,
		      uint64_t nonce)
{
	struct eng_entry e;
	size_t len;
	uint8_t *b = encode_new(type, t, origin, nonce, &len);

	ASSERT_EQ(eng_entry_decode(b, len, &e), 0);
	ASSERT_EQ(e.type, type);
	ASSERT_U64_EQ(e.origin, origin);
	ASSERT_U64_EQ(e.nonce, nonce);
	ASSERT_NOT_NULL(e.txn);
	ASSERT_EQ(check_same_txn(e.txn, t), TEST_OK);
	eng_txn_free(e.txn);
	eng_txn_free(t);
	free(b);
	return TEST_OK;
}

/* ---- size and layout ---- */

/* eng_entry_size counts the header, padded name and page numbers, pages
 * and trailer. */
TEST(entry_size, formula)
{
	struct eng_txn *a = make_txn("a", 0, 0, 1, 1);
	struct eng_txn *b = make_txn("12345678", 512, 1, 1, 1);
	struct eng_txn *c = make_txn("123456789", 1024, 3, 2, 2);

	ASSERT_EQ(eng_entry_size(a), 72 + 8 + 0 + 0 + 8);
	ASSERT_EQ(eng_entry_size(b), 72 + 8 + 8 + 512 + 8);
	ASSERT_EQ(eng_entry_size(c), 72 + 16 + 16 + 3 * 1024 + 8);
	eng_txn_free(a);
	eng_txn_free(b);
	eng_txn_free(c);
	return TEST_OK;
}

/* The encoder writes exactly the bytes the format in engine.h describes. */
TEST(entry_encode, matches_format)
{
	struct raw r;
	struct eng_txn *t = eng_txn_new("db/main.db", 512, 3);
	uint8_t *want, *got;
	size_t want_len, got_len;
	uint32_t i;

	raw_default(&r);
	want_len = raw_build(&r, &want);
	ASSERT_NOT_NULL(t);
	t->db_pages = r.db_pages;
	t->seq = r.seq;
	t->cksum_before = r.cksum_before;
	t->cksum_after = r.cksum_after;
	memcpy(t->pgnos, r.pgnos, sizeof default_pgnos);
	for (i = 0; i < 3 * 512; i++)
		t->pages[i] = page_byte(i);
	got = encode_new(ENG_ENTRY_TXN, t, r.origin, r.nonce, &got_len);
	ASSERT_EQ(got_len, want_len);
	ASSERT_MEM_EQ(got, want, want_len);
	eng_txn_free(t);
	free(want);
	free(got);
	return TEST_OK;
}

/* The header starts with "QFE1", version 1, the type, and the
 * little-endian total length at offset 8. */
TEST(entry_encode, header_bytes)
{
	struct eng_txn *t = make_txn("x", 0, 0, 1, 1);
	size_t len;
	uint8_t *b = encode_new(ENG_ENTRY_UNLINK, t, 1, 2, &len);

	ASSERT_MEM_EQ(b, "QFE1", 4);
	ASSERT_EQ(b[4], 1);
	ASSERT_EQ(b[5], ENG_ENTRY_UNLINK);
	ASSERT_EQ(b[8], len);
	ASSERT_EQ(b[9] | b[10] | b[11], 0);
	ASSERT_EQ(b[12], 1); /* name length */
	ASSERT_EQ(b[72], 'x');
	eng_txn_free(t);
	free(b);
	return TEST_OK;
}

/* ---- round trips ---- */

/* Every page size from 512 to 65536 round-trips. */
TEST(entry_roundtrip, page_sizes)
{
	uint32_t ps;

	for (ps = 512; ps <= 65536; ps *= 2)
		ASSERT_EQ(round_trip(ENG_ENTRY_TXN,
				     make_txn("main.db", ps, 3, 1, 2), 5, ps),
			  TEST_OK);
	return TEST_OK;
}

/* A single page that is also the last page of the database round-trips. */
TEST(entry_roundtrip, single_page)
{
	struct eng_txn *t = make_txn("one.db", 4096, 1, 1, 1);

	t->db_pages = 1;
	return round_trip(ENG_ENTRY_TXN, t, 1, 1);
}

/* Thousands of sparse pages under a nested name round-trip. */
TEST(entry_roundtrip, many_pages)
{
	return round_trip(ENG_ENTRY_TXN,
			  make_txn("a/b/c/d.sqlite", 4096, 2001, 1, 3), 9, 10);
}

/* A transaction that only changes the database size carries no pages. */
TEST(entry_roundtrip, no_pages)
{
	struct eng_txn *t = make_txn("shrink.db", 1024, 0, 1, 1);

	t->db_pages = 5;
	return round_trip(ENG_ENTRY_TXN, t, 3, 4);
}

/* A deletion with no page size (0) round-trips. */
TEST(entry_roundtrip, unlink_without_page_size)
{
	return round_trip(ENG_ENTRY_UNLINK, make_txn("dir/gone.db", 0, 0, 1, 1),
			  2, 3);
}

/* A deletion may still name the database's page size. */
TEST(entry_roundtrip, unlink_with_page_size)
{
	return round_trip(ENG_ENTRY_UNLINK, make_txn("gone.db", 4096, 0, 1, 1),
			  2, 3);
}

/* A name of the maximum 4095 bytes, with directories, round-trips. */
TEST(entry_roundtrip, longest_name)
{
	char name[4096];
	size_t i;

	for (i = 0; i < 4095; i++)
		name[i] = i % 16 == 15 ? '/' : (char)('a' + i % 26);
	name[4095] = '\0';
	return round_trip(ENG_ENTRY_TXN, make_txn(name, 512, 2, 7, 1), 1, 1);
}

/* All 64 bits of the integer fields and the largest page number survive. */
TEST(entry_roundtrip, extreme_values)
{
	struct eng_txn *t = make_txn("big.db", 512, 2, UINT32_MAX - 1, 1);

	t->db_pages = UINT32_MAX;
	t->seq = UINT64_MAX;
	t->cksum_before = 0x8000000000000001ULL;
	t->cksum_after = UINT64_MAX - 1;
	return round_trip(ENG_ENTRY_TXN, t, UINT64_MAX, 0x8000000000000000ULL);
}

/* Decoding works from an odd address. */
TEST(entry_decode, unaligned)
{
	struct eng_txn *t = make_txn("odd.db", 512, 3, 1, 1);
	struct eng_entry e;
	size_t len;
	uint8_t *b = encode_new(ENG_ENTRY_TXN, t, 1, 2, &len);
	uint8_t *shifted = malloc(len + 1);

	ASSERT_NOT_NULL(shifted);
	memcpy(shifted + 1, b, len);
	ASSERT_EQ(eng_entry_decode(shifted + 1, len, &e), 0);
	ASSERT_EQ(check_same_txn(e.txn, t), TEST_OK);
	eng_txn_free(e.txn);
	eng_txn_free(t);
	free(shifted);
	free(b);
	return TEST_OK;
}

/* ---- rejection: damaged bytes ---- */

/* The unmodified raw entry decodes, so the rejections below are caused by
 * the one field each changes. */
TEST(entry_decode, raw_default_valid)
{
	struct raw r;

	raw_default(&r);
	ASSERT_EQ(decode_raw(&r), 0);
	return TEST_OK;
}

/* Every proper prefix of a valid entry is rejected. */
TEST(entry_decode, every_truncation)
{
	struct raw r;
	uint8_t *b;
	size_t len, k;

	raw_default(&r);
	len = raw_build(&r, &b);
	for (k = 0; k < len; k++)
		ASSERT_EQ(decode_rv(b, k), QF_EMALFORMED);
	free(b);
	return TEST_OK;
}

/* Trailing bytes after a valid entry are rejected. */
TEST(entry_decode, trailing_bytes)
{
	struct raw r;
	uint8_t *b, *longer;
	size_t len;

	raw_default(&r);
	len = raw_build(&r, &b);
	longer = calloc(1, len + 8);
	ASSERT_NOT_NULL(longer);
	memcpy(longer, b, len);
	ASSERT_EQ(decode_rv(longer, len + 1), QF_EMALFORMED);
	ASSERT_EQ(decode_rv(longer, len + 8), QF_EMALFORMED);
	free(longer);
	free(b);
	return TEST_OK;
}

/* Flipping any single bit of a valid entry is detected. */
TEST(entry_decode, every_bit_flip)
{
	struct raw r;
	uint8_t *b;
	size_t len, i;
	int bit;

	raw_default(&r);
	len = raw_build(&r, &b);
	for (i = 0; i < len; i++) {
		for (bit = 0; bit < 8; bit++) {
			b[i] ^= (uint8_t)(1u << bit);
			if (decode_rv(b, len) != QF_EMALFORMED) {
				fprintf(stderr, "flip byte %zu bit %d\n", i,
					bit);
				return TEST_FAIL;
			}
			b[i] ^= (uint8_t)(1u << bit);
		}
	}
	ASSERT_EQ(decode_rv(b, len), 0);
	free(b);
	return TEST_OK;
}

/* A trailer hashed with a seed other than 0x51460001 is rejected. */
TEST(entry_decode, wrong_hash_seed)
{
	struct raw r;
	uint8_t *b;
	size_t len;

	raw_default(&r);
	len = raw_build(&r, &b);
	reseal_with(b, len, 0);
	ASSERT_EQ(decode_rv(b, len), QF_EMALFORMED);
	free(b);
	return TEST_OK;
}

/* ---- rejection: header fields ---- */

/* A wrong magic number is rejected. */
TEST(entry_decode, wrong_magic)
{
	struct raw r;

	raw_default(&r);
	r.magic = 0x32454651; /* "QFE2" */
	ASSERT_EQ(decode_raw(&r), QF_EMALFORMED);
	r.magic = 0x51464531; /* big-endian "QFE1" */
	ASSERT_EQ(decode_raw(&r), QF_EMALFORMED);
	return TEST_OK;
}

/* Versions other than 1 are rejected. */
TEST(entry_decode, wrong_version)
{
	static const uint8_t versions[] = {0, 2, 255};
	struct raw r;
	size_t i;

	raw_default(&r);
	for (i = 0; i < sizeof versions; i++) {
		r.version = versions[i];
		ASSERT_EQ(decode_raw(&r), QF_EMALFORMED);
	}
	return TEST_OK;
}

/* Types other than TXN and UNLINK are rejected. */
TEST(entry_decode, wrong_type)
{
	static const uint8_t types[] = {0, 3, 255};
	struct raw r;
	size_t i;

	raw_default(&r);
	r.n = 0;
	r.db_pages = 0; /* otherwise valid as an UNLINK */
	for (i = 0; i < sizeof types; i++) {
		r.type = types[i];
		ASSERT_EQ(decode_raw(&r), QF_EMALFORMED);
	}
	return TEST_OK;
}

/* Non-zero reserved fields (offsets 6 and 68) are rejected. */
TEST(entry_decode, reserved_not_zero)
{
	struct raw r;

	raw_default(&r);
	r.reserved16 = 1;
	ASSERT_EQ(decode_raw(&r), QF_EMALFORMED);
	r.reserved16 = 0x100;
	ASSERT_EQ(decode_raw(&r), QF_EMALFORMED);
	raw_default(&r);
	r.reserved32 = 0x80000000;
	ASSERT_EQ(decode_raw(&r), QF_EMALFORMED);
	return TEST_OK;
}

/* A length field that disagrees with the buffer is rejected. */
TEST(entry_decode, length_field_mismatch)
{
	static const uint64_t lengths[] = {0, 1647, 1649, 1656, UINT32_MAX};
	struct raw r;
	size_t i;

	raw_default(&r);
	for (i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
		r.length = lengths[i]; /* the true length is 1648 */
		ASSERT_EQ(decode_raw(&r), QF_EMALFORMED);
	}
	return TEST_OK;
}

/* ---- rejection: counts ---- */

/* A TXN whose page size is 0, not a power of two or out of 512..65536 is
 * rejected. */
TEST(entry_decode, bad_page_size)
{
	static const uint32_t sizes[] = {
		0, 1, 256, 511, 513, 1000, 3072, 131072, 1u << 20,
		0x80000000u, UINT32_MAX,
	};
	struct raw r;
	size_t i;

	raw_default(&r);
	r.n = 0; /* no pages: the size field alone is wrong */
	for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		r.page_size = sizes[i];
		ASSERT_EQ(decode_raw(&r), QF_EMALFORMED);
	}
	raw_default(&r);
	r.page_size = 256; /* with consistent page bytes */
	ASSERT_EQ(decode_raw(&r), QF_EMALFORMED);
	r.page_size = 1000;
	ASSERT_EQ(decode_raw(&r), QF_EMALFORMED);
	return TEST_OK;
}

/* An UNLINK carrying pages, a database size or a bad page size is
 * rejected. */
TEST(entry_decode, unlink_with_content)
{
	struct raw r;

	raw_default(&r);
	r.type = ENG_ENTRY_UNLINK; /* still 3 pages */
	ASSERT_EQ(decode_raw(&r), QF_EMALFORMED);
	r.n = 0;
	ASSERT_EQ(decode_raw(&r), QF_EMALFORMED); /* db_pages = 10 */
	r.db_pages = 0;
	ASSERT_EQ(decode_raw(&r), 0);
	r.page_size = 1000;
	ASSERT_EQ(decode_raw(&r), QF_EMALFORMED);
	return TEST_OK;
}

/* A page count whose byte size wraps in 32 bits is rejected: 65536 pages
 * of 65536 bytes would otherwise look like 0 bytes of pages. */
TEST(entry_decode, page_bytes_wrap)
{
	uint32_t *pgnos = malloc(65536 * sizeof *pgnos);
	struct raw r;
	uint32_t i;

	ASSERT_NOT_NULL(pgnos);
	for (i = 0; i < 65536; i++)
		pgnos[i] = i + 1;
	raw_default(&r);
	r.page_size = 65536;
	r.n = 65536;
	r.db_pages = 65536;
	r.pgnos = pgnos;
	r.page_bytes = 0;
	ASSERT_EQ(decode_raw(&r), QF_EMALFORMED);
	free(pgnos);
	return TEST_OK;
}

/* A page count whose page number bytes wrap in 32 bits is rejected:
 * 0x40000001 pages of 512 bytes would otherwise look like one page. */
TEST(entry_decode, pgno_bytes_wrap)
{
	static const uint32_t one[] = {1};
	struct raw r;
	uint8_t *b;
	size_t len;

	raw_default(&r);
	r.n = 1;
	r.pgnos = one;
	len = raw_build(&r, &b);
	ASSERT_EQ(decode_rv(b, len), 0);
	qf_put_le32(b + 64, 0x40000001);
	reseal(b, len);
	ASSERT_EQ(decode_rv(b, len), QF_EMALFORMED);
	qf_put_le32(b + 64, UINT32_MAX);
	reseal(b, len);
	ASSERT_EQ(decode_rv(b, len), QF_EMALFORMED);
	free(b);
	return TEST_OK;
}

/* ---- rejection: page numbers ---- */

static int decode_pgnos(uint32_t a, uint32_t b, uint32_t c)
{
	const uint32_t pgnos[] = {a, b, c};
	struct raw r;

	raw_default(&r); /* db_pages = 10 */
	r.pgnos = pgnos;
	return decode_raw(&r);
}

/* Page numbers out of order are rejected. */
TEST(entry_decode, pgnos_unsorted)
{
	ASSERT_EQ(decode_pgnos(1, 5, 3), QF_EMALFORMED);
	ASSERT_EQ(decode_pgnos(10, 2, 3), QF_EMALFORMED);
	return TEST_OK;
}

/* A repeated page number is rejected. */
TEST(entry_decode, pgnos_duplicate)
{
	ASSERT_EQ(decode_pgnos(1, 4, 4), QF_EMALFORMED);
	ASSERT_EQ(decode_pgnos(2, 2, 3), QF_EMALFORMED);
	return TEST_OK;
}

/* Page number 0 is rejected. */
TEST(entry_decode, pgno_zero)
{
	ASSERT_EQ(decode_pgnos(0, 4, 10), QF_EMALFORMED);
	return TEST_OK;
}

/* A page number above db_pages is rejected, db_pages itself is not. */
TEST(entry_decode, pgno_above_db_pages)
{
	ASSERT_EQ(decode_pgnos(1, 4, 10), 0);
	ASSERT_EQ(decode_pgnos(1, 4, 11), QF_EMALFORMED);
	ASSERT_EQ(decode_pgnos(1, 4, UINT32_MAX), QF_EMALFORMED);
	return TEST_OK;
}

/* ---- rejection: names ---- */

static int decode_name(const char *name, uint32_t name_len)
{
	struct raw r;

	raw_default(&r);
	r.name = name;
	r.name_len = name_len;
	return decode_raw(&r);
}

/* An empty name is rejected. */
TEST(entry_decode, name_empty)
{
	ASSERT_EQ(decode_name("", 0), QF_EMALFORMED);
	return TEST_OK;
}

/* An absolute name is rejected. */
TEST(entry_decode, name_absolute)
{
	ASSERT_EQ(decode_name("/abs", 4), QF_EMALFORMED);
	ASSERT_EQ(decode_name("/", 1), QF_EMALFORMED);
	return TEST_OK;
}

/* A ".." or "." component is rejected; dots inside a component are not. */
TEST(entry_decode, name_dotdot)
{
	ASSERT_EQ(decode_name("a/../b", 6), QF_EMALFORMED);
	ASSERT_EQ(decode_name("..", 2), QF_EMALFORMED);
	ASSERT_EQ(decode_name("../x", 4), QF_EMALFORMED);
	ASSERT_EQ(decode_name("x/..", 4), QF_EMALFORMED);
	ASSERT_EQ(decode_name("./x", 3), QF_EMALFORMED);
	ASSERT_EQ(decode_name("a/./b", 5), QF_EMALFORMED);
	ASSERT_EQ(decode_name("a..b", 4), 0);
	ASSERT_EQ(decode_name("d/a..b.db", 9), 0);
	ASSERT_EQ(decode_name(".a.b.", 5), 0);
	return TEST_OK;
}

/* Empty components ("a//b", a trailing '/') are rejected. */
TEST(entry_decode, name_empty_component)
{
	ASSERT_EQ(decode_name("a//b", 4), QF_EMALFORMED);
	ASSERT_EQ(decode_name("a/", 2), QF_EMALFORMED);
	ASSERT_EQ(decode_name("a/b", 3), 0);
	return TEST_OK;
}

/* A name with an embedded or trailing NUL is rejected. */
TEST(entry_decode, name_nul)
{
	ASSERT_EQ(decode_name("a\0b", 3), QF_EMALFORMED);
	ASSERT_EQ(decode_name("ab\0", 3), QF_EMALFORMED);
	ASSERT_EQ(decode_name("\0", 1), QF_EMALFORMED);
	return TEST_OK;
}

/* A name over 4095 bytes is rejected. */
TEST(entry_decode, name_too_long)
{
	char name[4097];

	memset(name, 'n', sizeof name);
	ASSERT_EQ(decode_name(name, 4095), 0);
	ASSERT_EQ(decode_name(name, 4096), QF_EMALFORMED);
	ASSERT_EQ(decode_name(name, 4097), QF_EMALFORMED);
	return TEST_OK;
}

/* A name length pointing far past the buffer is rejected. */
TEST(entry_decode, name_length_huge)
{
	struct raw r;
	uint8_t *b;
	size_t len;

	raw_default(&r);
	len = raw_build(&r, &b);
	qf_put_le32(b + 12, UINT32_MAX);
	reseal(b, len);
	ASSERT_EQ(decode_rv(b, len), QF_EMALFORMED);
	qf_put_le32(b + 12, (uint32_t)len);
	reseal(b, len);
	ASSERT_EQ(decode_rv(b, len), QF_EMALFORMED);
	free(b);
	return TEST_OK;
}

/* ---- rejection: padding ---- */

/* Any non-zero byte in the name's padding is rejected. */
TEST(entry_decode, name_padding_not_zero)
{
	struct raw r;
	uint8_t *b;
	size_t len, i;

	raw_default(&r); /* name bytes 72..81, padding 82..87 */
	len = raw_build(&r, &b);
	for (i = 82; i < 88; i++) {
		b[i] = 0x20;
		reseal(b, len);
		ASSERT_EQ(decode_rv(b, len), QF_EMALFORMED);
		b[i] = 0;
	}
	reseal(b, len);
	ASSERT_EQ(decode_rv(b, len), 0);
	free(b);
	return TEST_OK;
}

/* Any non-zero byte in the page numbers' padding is rejected. */
TEST(entry_decode, pgno_padding_not_zero)
{
	struct raw r;
	uint8_t *b;
	size_t len, i;

	raw_default(&r); /* page numbers 88..99, padding 100..103 */
	len = raw_build(&r, &b);
	for (i = 100; i < 104; i++) {
		b[i] = 1;
		reseal(b, len);
		ASSERT_EQ(decode_rv(b, len), QF_EMALFORMED);
		b[i] = 0;
	}
	reseal(b, len);
	ASSERT_EQ(decode_rv(b, len), 0);
	free(b);
	return TEST_OK;
}

/* Peeking returns the database name of a valid entry without reading its
 * pages, and rejects a bad header or a name that does not fit. */
TEST(entry_peek, name)
{
	struct raw r;
	uint8_t *buf = NULL;
	char name[64];
	size_t len;

	raw_default(&r);
	len = raw_build(&r, &buf);
	ASSERT_EQ(eng_entry_peek_db(buf, len, name, sizeof name), 0);
	ASSERT_TRUE(strcmp(name, "db/main.db") == 0);
	ASSERT_EQ(eng_entry_peek_db(buf, len, name, 10), QF_EMALFORMED);
	ASSERT_EQ(eng_entry_peek_db(buf, len - 1, name, sizeof name),
		  QF_EMALFORMED);
	buf[0] ^= 1;
	ASSERT_EQ(eng_entry_peek_db(buf, len, name, sizeof name), QF_EMALFORMED);
	free(buf);
	return TEST_OK;
}

/* An image: pages 1..n, the buffer taken as it is; no buffer, no txn. */
TEST(txn_image, whole_database)
{
	uint8_t *pages = malloc(3 * 512);
	struct eng_txn *t;

	ASSERT_NOT_NULL(pages);
	memset(pages, 7, 3 * 512);
	t = eng_txn_image("a/b.db", 512, 3, pages);
	ASSERT_NOT_NULL(t);
	ASSERT_EQ(strcmp(t->db, "a/b.db"), 0);
	ASSERT_EQ(t->n, 3);
	ASSERT_EQ(t->db_pages, 3);
	ASSERT_EQ(t->page_size, 512);
	ASSERT_EQ(t->pgnos[0], 1);
	ASSERT_EQ(t->pgnos[2], 3);
	ASSERT_TRUE(t->pages == pages);
	eng_txn_free(t);
	ASSERT_NULL(eng_txn_image("c.db", 512, 3, NULL));
	return TEST_OK;
}

int main(int argc, char **argv)
{
	return unit_main(argc, argv);
}
