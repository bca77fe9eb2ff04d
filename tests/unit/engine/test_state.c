/* Unit tests for per-database state (engine/state.c).
 *
 * Every test gets its own directory under a root made by fx_main() (which
 * removes the root when the runner is done, also after a failed or crashed
 * test), holding state/ and db/ for one struct eng_dbs (fixture.h).
 *
 * Expected checksums never come from the code under test: a model keeps
 * the page images a sequence of transactions produces and XORs
 * qf_page_hash over them.  Tests that need backing files SQLite accepts
 * (anything that settles or re-hashes) build real databases with the
 * sqlite3 API and describe them to the state as one transaction carrying
 * every page. */
#include <dirent.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/state.h"
#include "fixture.h"
#include "tests/lib/unit.h"

#define MAX_HASHES 1024

/* ---- pages, model and transactions ---- */

/* What a database holds after a sequence of transactions that each carry
 * every page they bring into range. */
struct model {
	uint32_t ps, pages, cap;
	uint64_t seq;
	uint8_t *img;
};

static void model_free(struct model *m)
{
	free(m->img);
	m->img = NULL;
}

static void model_clone(struct model *dst, const struct model *src)
{
	*dst = *src;
	dst->img = malloc((size_t)src->cap * src->ps + 1);
	if (dst->img == NULL)
		abort();
	if (src->cap > 0)
		memcpy(dst->img, src->img, (size_t)src->cap * src->ps);
}

/* Apply @t to @m and stamp @t with the sequence and checksums. */
static void model_commit(struct model *m, struct eng_txn *t)
{
	uint32_t i;

	t->seq = m->seq + 1;
	t->cksum_before = xor_pages(m->img, m->ps, m->pages);
	if (t->db_pages > m->cap) {
		m->img = realloc(m->img, (size_t)t->db_pages * m->ps);
		if (m->img == NULL)
			abort();
		memset(m->img + (size_t)m->cap * m->ps, 0,
		       (size_t)(t->db_pages - m->cap) * m->ps);
		m->cap = t->db_pages;
	}
	for (i = 0; i < t->n; i++)
		memcpy(m->img + (size_t)(t->pgnos[i] - 1) * m->ps,
		       t->pages + (size_t)i * m->ps, m->ps);
	m->pages = t->db_pages;
	m->seq++;
	t->cksum_after = xor_pages(m->img, m->ps, m->pages);
}

/* Stamp @t as model_commit would, leaving @m as it is. */
static void model_seal(const struct model *m, struct eng_txn *t)
{
	struct model tmp;

	model_clone(&tmp, m);
	model_commit(&tmp, t);
	model_free(&tmp);
}

/* Page numbers first, first + 1, ..., n of them (a static array). */
static const uint32_t *run(uint32_t first, uint32_t n)
{
	static uint32_t pg[MAX_HASHES];
	uint32_t i;

	for (i = 0; i < n && i < MAX_HASHES; i++)
		pg[i] = first + i;
	return pg;
}

/* A transaction of @db carrying @pgnos, page p filled from seed + p. */
static struct eng_txn *txn_of(const char *db, uint32_t ps, uint32_t db_pages,
			      const uint32_t *pgnos, uint32_t n, uint32_t seed)
{
	struct eng_txn *t = eng_txn_new(db, ps, n);
	uint32_t i;

	if (t == NULL)
		abort();
	t->db_pages = db_pages;
	for (i = 0; i < n; i++) {
		t->pgnos[i] = pgnos[i];
		fill_page(t->pages + (size_t)i * ps, ps, seed + pgnos[i]);
	}
	return t;
}

/* Build a transaction, stamp it against @m (advancing @m) and apply it. */
static int commit(struct eng_db *d, struct model *m, uint32_t db_pages,
		  const uint32_t *pgnos, uint32_t n, uint32_t seed,
		  uint64_t index)
{
	struct eng_txn *t = txn_of(d->name, m->ps, db_pages, pgnos, n, seed);
	int rv;

	model_commit(m, t);
	rv = eng__db_apply(d, t, index);
	eng_txn_free(t);
	return rv;
}

/* A copy of everything eng__db_apply and the loader may change. */
struct db_snap {
	uint32_t ps, pages;
	uint64_t seq, cksum, applied, wal_frames;
	uint64_t hash[MAX_HASHES];
};

static void snap_db(const struct eng_db *d, struct db_snap *s)
{
	uint32_t i;

	memset(s, 0, sizeof *s);
	s->ps = d->page_size;
	s->pages = d->db_pages;
	s->seq = d->seq;
	s->cksum = d->cksum;
	s->applied = d->applied;
	s->wal_frames = d->wal_frames;
	for (i = 0; i < d->db_pages && i < d->hash_cap && i < MAX_HASHES; i++)
		s->hash[i] = d->hash[i];
}

static int same_as(const struct eng_db *d, const struct db_snap *s)
{
	uint32_t i;

	ASSERT_NOT_NULL(d);
	ASSERT_EQ(d->page_size, s->ps);
	ASSERT_EQ(d->db_pages, s->pages);
	ASSERT_U64_EQ(d->seq, s->seq);
	ASSERT_U64_EQ(d->cksum, s->cksum);
	ASSERT_U64_EQ(d->applied, s->applied);
	ASSERT_U64_EQ(d->wal_frames, s->wal_frames);
	ASSERT_TRUE(d->db_pages <= MAX_HASHES);
	ASSERT_TRUE(d->db_pages == 0 || d->hash_cap >= d->db_pages);
	for (i = 0; i < d->db_pages; i++)
		ASSERT_U64_EQ(d->hash[i], s->hash[i]);
	return TEST_OK;
}

/* @d is the empty state a reset leaves. */
static int is_empty(const struct eng_db *d)
{
	ASSERT_NOT_NULL(d);
	ASSERT_EQ(d->page_size, 0);
	ASSERT_EQ(d->db_pages, 0);
	ASSERT_U64_EQ(d->seq, 0);
	ASSERT_U64_EQ(d->cksum, 0);
	ASSERT_U64_EQ(d->applied, 0);
	ASSERT_U64_EQ(d->wal_frames, 0);
	return TEST_OK;
}

/* d->hash holds the page hashes of the file at @path, page for page. */
static int hashes_match_file(const struct eng_db *d, const char *path)
{
	size_t len;
	uint8_t *img = fx_read_file(path, &len);
	uint32_t p;

	ASSERT_NOT_NULL(img);
	ASSERT_EQ(len, (size_t)d->db_pages * d->page_size);
	for (p = 1; p <= d->db_pages; p++)
		ASSERT_U64_EQ(d->hash[p - 1],
			      qf_page_hash(p,
					   img + (size_t)(p - 1) * d->page_size,
					   d->page_size));
	ASSERT_U64_EQ(d->cksum, xor_pages(img, d->page_size, d->db_pages));
	free(img);
	return TEST_OK;
}

/* ---- real SQLite databases ---- */

/* Rows of table t in the database at @path, -1 if it cannot be read. */
static long long sql_count(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long n = -1;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) ==
		    SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, NULL) ==
		    SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* ---- in-memory state ---- */

/* eng__db_get creates a state once; later gets and finds return it. */
TEST(state_db, get_creates_once)
{
	struct fx f;
	struct eng_db *d;

	fx_init(&f);
	ASSERT_NULL(eng__db_find(&f.dbs, "a.db"));
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_NOT_NULL(d);
	ASSERT_EQ(is_empty(d), TEST_OK);
	ASSERT_TRUE(eng__db_get(&f.dbs, "a.db") == d);
	ASSERT_TRUE(eng__db_find(&f.dbs, "a.db") == d);
	ASSERT_NULL(eng__db_find(&f.dbs, "a.d"));
	fx_fini(&f);
	return TEST_OK;
}

/* ---- apply ---- */

/* A first transaction sets size, seq, applied index, page hashes and a
 * checksum equal to the XOR of its page hashes. */
TEST(state_apply, first_txn)
{
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;
	uint8_t page[512];
	uint64_t want = 0;
	uint32_t p;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(commit(d, &m, 3, run(1, 3), 3, 10, 7), 0);
	ASSERT_EQ(d->page_size, 512);
	ASSERT_EQ(d->db_pages, 3);
	ASSERT_U64_EQ(d->seq, 1);
	ASSERT_U64_EQ(d->applied, 7);
	for (p = 1; p <= 3; p++) {
		fill_page(page, 512, 10 + p);
		ASSERT_U64_EQ(d->hash[p - 1], qf_page_hash(p, page, 512));
		want ^= qf_page_hash(p, page, 512);
	}
	ASSERT_U64_EQ(d->cksum, want);
	model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* Over a sequence of growing and overwriting transactions the checksum
 * stays the XOR of the page hashes of the current images. */
TEST(state_apply, cksum_tracks_updates)
{
	static const uint32_t upd[] = {2, 5};
	static const uint32_t mixed[] = {1, 6, 7, 8};
	struct fx f;
	struct model m = {.ps = 1024};
	struct eng_db *d;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(commit(d, &m, 5, run(1, 5), 5, 100, 1), 0);
	ASSERT_U64_EQ(d->cksum, xor_pages(m.img, 1024, 5));
	ASSERT_EQ(commit(d, &m, 5, upd, 2, 200, 2), 0);
	ASSERT_U64_EQ(d->cksum, xor_pages(m.img, 1024, 5));
	ASSERT_EQ(commit(d, &m, 8, mixed, 4, 300, 4), 0);
	ASSERT_U64_EQ(d->cksum, xor_pages(m.img, 1024, 8));
	ASSERT_U64_EQ(d->seq, 3);
	ASSERT_U64_EQ(d->applied, 4);
	ASSERT_EQ(d->db_pages, 8);
	model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* A database growing well past the initial hash capacity keeps every
 * page hash and the checksum right. */
TEST(state_apply, grows_past_capacity)
{
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;
	uint32_t p;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(commit(d, &m, 10, run(1, 10), 10, 1, 1), 0);
	ASSERT_EQ(commit(d, &m, 300, run(5, 296), 296, 2, 2), 0);
	ASSERT_EQ(d->db_pages, 300);
	for (p = 1; p <= 300; p++)
		ASSERT_U64_EQ(d->hash[p - 1],
			      qf_page_hash(p, m.img + (size_t)(p - 1) * 512,
					   512));
	ASSERT_U64_EQ(d->cksum, xor_pages(m.img, 512, 300));
	model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* A sequence number other than seq + 1 is a divergence and changes
 * nothing. */
TEST(state_apply, rejects_wrong_seq)
{
	static const uint64_t bad[] = {0, 2, 4, 100};
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;
	struct db_snap before;
	struct eng_txn *t;
	size_t i;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(commit(d, &m, 4, run(1, 4), 4, 1, 1), 0);
	ASSERT_EQ(commit(d, &m, 4, run(2, 1), 1, 2, 2), 0);
	snap_db(d, &before);
	t = txn_of("a.db", 512, 5, run(3, 3), 3, 3);
	model_seal(&m, t);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		t->seq = bad[i];
		ASSERT_EQ(eng__db_apply(d, t, 3), QF_EDIVERGED);
		ASSERT_EQ(same_as(d, &before), TEST_OK);
	}
	t->seq = 3; /* the same entry with the right seq is accepted */
	ASSERT_EQ(eng__db_apply(d, t, 3), 0);
	eng_txn_free(t);
	model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* A checksum-before that differs from the local checksum is a divergence
 * and changes nothing. */
TEST(state_apply, rejects_wrong_cksum_before)
{
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;
	struct db_snap before;
	struct eng_txn *t;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(commit(d, &m, 4, run(1, 4), 4, 1, 1), 0);
	snap_db(d, &before);
	t = txn_of("a.db", 512, 4, run(2, 2), 2, 9);
	model_seal(&m, t);
	t->cksum_before ^= 1;
	ASSERT_EQ(eng__db_apply(d, t, 2), QF_EDIVERGED);
	ASSERT_EQ(same_as(d, &before), TEST_OK);
	eng_txn_free(t);
	model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* Pages that do not produce the entry's checksum-after are a divergence
 * and change nothing. */
TEST(state_apply, rejects_wrong_cksum_after)
{
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;
	struct db_snap before;
	struct eng_txn *t;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(commit(d, &m, 4, run(1, 4), 4, 1, 1), 0);
	snap_db(d, &before);
	t = txn_of("a.db", 512, 6, run(2, 5), 5, 9);
	model_seal(&m, t);
	t->pages[512 + 17] ^= 0x40; /* page 3 is not what the leader hashed */
	ASSERT_EQ(eng__db_apply(d, t, 2), QF_EDIVERGED);
	ASSERT_EQ(same_as(d, &before), TEST_OK);
	eng_txn_free(t);
	model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* Shrinking the database removes the cut pages from the checksum. */
TEST(state_apply, shrink_drops_cut_pages)
{
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(commit(d, &m, 6, run(1, 6), 6, 1, 1), 0);
	ASSERT_EQ(commit(d, &m, 4, run(2, 1), 1, 2, 2), 0);
	ASSERT_EQ(d->db_pages, 4);
	ASSERT_U64_EQ(d->cksum, xor_pages(m.img, 512, 4));
	ASSERT_EQ(commit(d, &m, 2, NULL, 0, 3, 3), 0);
	ASSERT_EQ(d->db_pages, 2);
	ASSERT_U64_EQ(d->cksum, xor_pages(m.img, 512, 2));
	model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* A page cut by a shrink and brought back into range without being
 * carried counts as absent (hash 0), not as its old content. */
TEST(state_apply, regrown_page_is_absent)
{
	static const uint32_t five[] = {5};
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;
	struct eng_txn *t;
	uint8_t page[512];
	uint64_t before;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(commit(d, &m, 5, run(1, 5), 5, 1, 1), 0);
	ASSERT_EQ(commit(d, &m, 3, NULL, 0, 0, 2), 0);
	before = xor_pages(m.img, 512, 3);
	ASSERT_U64_EQ(d->cksum, before);
	t = txn_of("a.db", 512, 5, five, 1, 50);
	fill_page(page, 512, 55);
	t->seq = 3;
	t->cksum_before = before;
	t->cksum_after = before ^ qf_page_hash(5, page, 512);
	ASSERT_EQ(eng__db_apply(d, t, 3), 0);
	ASSERT_U64_EQ(d->hash[3], 0);
	ASSERT_U64_EQ(d->cksum, t->cksum_after);
	eng_txn_free(t);
	model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* A page size change restarts the checksum from the carried pages only. */
TEST(state_apply, page_size_change_restarts_cksum)
{
	static const uint32_t one[] = {1};
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;
	struct eng_txn *t;
	uint8_t page[1024];

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(commit(d, &m, 4, run(1, 4), 4, 1, 1), 0);
	t = txn_of("a.db", 1024, 3, one, 1, 70);
	fill_page(page, 1024, 71);
	t->seq = 2;
	t->cksum_before = d->cksum;
	t->cksum_after = qf_page_hash(1, page, 1024);
	ASSERT_EQ(eng__db_apply(d, t, 2), 0);
	ASSERT_EQ(d->page_size, 1024);
	ASSERT_EQ(d->db_pages, 3);
	ASSERT_U64_EQ(d->hash[1], 0);
	ASSERT_U64_EQ(d->hash[2], 0);
	ASSERT_U64_EQ(d->cksum, t->cksum_after);
	eng_txn_free(t);
	model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* eng__db_cksum_after predicts the checksum without changing the state. */
TEST(state_apply, cksum_after_is_pure)
{
	static const uint32_t grow[] = {1, 3, 6, 7};
	static const uint32_t shrink[] = {1, 3};
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;
	struct db_snap before;
	struct eng_txn *t;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(commit(d, &m, 5, run(1, 5), 5, 1, 1), 0);
	snap_db(d, &before);
	t = txn_of("a.db", 512, 7, grow, 4, 9);
	model_seal(&m, t);
	ASSERT_U64_EQ(eng__db_cksum_after(d, t), t->cksum_after);
	ASSERT_EQ(same_as(d, &before), TEST_OK);
	eng_txn_free(t);
	t = txn_of("a.db", 512, 3, shrink, 2, 9);
	model_seal(&m, t);
	ASSERT_U64_EQ(eng__db_cksum_after(d, t), t->cksum_after);
	ASSERT_EQ(same_as(d, &before), TEST_OK);
	eng_txn_free(t);
	model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* ---- no-op detection ---- */

/* A transaction rewriting pages with their current images at the same size
 * is a no-op. */
TEST(state_noop, identical_pages)
{
	static const uint32_t pg[] = {2, 4};
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;
	struct eng_txn *t;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(commit(d, &m, 5, run(1, 5), 5, 10, 1), 0);
	t = txn_of("a.db", 512, 5, pg, 2, 10);
	ASSERT_TRUE(eng__db_txn_is_noop(d, t));
	eng_txn_free(t);
	t = txn_of("a.db", 512, 5, NULL, 0, 0);
	ASSERT_TRUE(eng__db_txn_is_noop(d, t));
	eng_txn_free(t);
	model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* One changed byte in any carried page makes a transaction not a no-op. */
TEST(state_noop, changed_page)
{
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;
	struct eng_txn *t;
	uint32_t i;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(commit(d, &m, 5, run(1, 5), 5, 10, 1), 0);
	for (i = 0; i < 5; i++) {
		t = txn_of("a.db", 512, 5, run(1, 5), 5, 10);
		ASSERT_TRUE(eng__db_txn_is_noop(d, t));
		t->pages[(size_t)i * 512 + 511 - i] ^= 1;
		ASSERT_TRUE(!eng__db_txn_is_noop(d, t));
		eng_txn_free(t);
	}
	model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* A different size in pages makes a transaction not a no-op, even with
 * identical pages. */
TEST(state_noop, changed_db_pages)
{
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;
	struct eng_txn *t;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(commit(d, &m, 5, run(1, 5), 5, 10, 1), 0);
	t = txn_of("a.db", 512, 6, run(1, 2), 2, 10);
	ASSERT_TRUE(!eng__db_txn_is_noop(d, t));
	t->db_pages = 4;
	ASSERT_TRUE(!eng__db_txn_is_noop(d, t));
	t->db_pages = 5;
	ASSERT_TRUE(eng__db_txn_is_noop(d, t));
	eng_txn_free(t);
	model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* A different page size makes a transaction not a no-op. */
TEST(state_noop, changed_page_size)
{
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;
	struct eng_txn *t;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(commit(d, &m, 5, run(1, 5), 5, 10, 1), 0);
	t = txn_of("a.db", 1024, 5, NULL, 0, 0);
	ASSERT_TRUE(!eng__db_txn_is_noop(d, t));
	eng_txn_free(t);
	model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* ---- save and load ---- */

/* Headers saved per transaction plus a final save_all load back (trusting
 * the files) as the identical state, without reading the backing file. */
TEST(state_load, trusted_restores_without_rehash)
{
	static const uint32_t upd[] = {2, 5};
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;
	struct db_snap before;
	uint8_t junk[5 * 512];
	size_t len;
	uint8_t *now;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(commit(d, &m, 4, run(1, 4), 4, 1, 3), 0);
	ASSERT_EQ(eng__db_save_header(&f.dbs, d), 0);
	ASSERT_EQ(commit(d, &m, 5, upd, 2, 2, 5), 0);
	ASSERT_EQ(eng__db_save_header(&f.dbs, d), 0);
	ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
	snap_db(d, &before);
	/* Right size, wrong content: re-hashing would reset the database. */
	memset(junk, 0xa5, sizeof junk);
	fx_write_file(fx_path("%s/a.db", f.db), junk, sizeof junk);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
	ASSERT_EQ(same_as(eng__db_find(&f.dbs, "a.db"), &before), TEST_OK);
	now = fx_read_file(fx_path("%s/a.db", f.db), &len);
	ASSERT_NOT_NULL(now);
	ASSERT_EQ(len, sizeof junk);
	ASSERT_MEM_EQ(now, junk, len);
	free(now);
	model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* Without trusting the files, load re-hashes the backing file and keeps a
 * database that matches its header, whatever the hashes file says. */
TEST(state_load, untrusted_rehashes_matching_file)
{
	struct fx a, b;
	struct eng_db *d;
	struct db_snap before;

	fx_init(&a);
	fx_init(&b);
	make_db(fx_path("%s/x.db", a.db), 1024, 40, 0);
	make_db(fx_path("%s/x.db", b.db), 1024, 40, 1);
	adopt_file(&a, eng__db_get(&a.dbs, "x.db"), 4);
	ASSERT_EQ(eng__db_save_all(&a.dbs, eng__db_find(&a.dbs, "x.db")), 0);
	d = eng__db_get(&b.dbs, "x.db");
	adopt_file(&b, d, 4);
	ASSERT_EQ(eng__db_save_all(&b.dbs, d), 0);
	snap_db(d, &before);
	/* Plant the hashes of another content, tagged with the same index. */
	fx_copy_file(fx_path("%s/x.db.hashes", a.state),
		     fx_path("%s/x.db.hashes", b.state));
	/* Precondition: a trusting load would take the planted hashes. */
	fx_restart(&b);
	ASSERT_EQ(eng__dbs_load(&b.dbs, true), 0);
	d = eng__db_find(&b.dbs, "x.db");
	ASSERT_NOT_NULL(d);
	ASSERT_TRUE(memcmp(d->hash, before.hash, 8 * (size_t)before.pages) !=
		    0);

	fx_restart(&b);
	ASSERT_EQ(eng__dbs_load(&b.dbs, false), 0);
	d = eng__db_find(&b.dbs, "x.db");
	ASSERT_EQ(same_as(d, &before), TEST_OK);
	ASSERT_EQ(hashes_match_file(d, fx_path("%s/x.db", b.db)), TEST_OK);
	fx_fini(&a);
	fx_fini(&b);
	return TEST_OK;
}

/* Hashes older than the header (a crash after save_header) are not
 * trusted: load re-hashes the backing file. */
TEST(state_load, stale_hashes_rehash)
{
	struct fx f;
	struct eng_db *d;
	struct db_snap before;
	char path[512];

	fx_init(&f);
	snprintf(path, sizeof path, "%s/x.db", f.db);
	make_db(path, 1024, 40, 0);
	d = eng__db_get(&f.dbs, "x.db");
	adopt_file(&f, d, 1);
	ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
	/* Same size, other content, saved through the header only. */
	sql_run(path, "UPDATE t SET b = printf('%0400d', a + 7);");
	adopt_file(&f, d, 2);
	ASSERT_EQ(eng__db_save_header(&f.dbs, d), 0);
	snap_db(d, &before);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
	d = eng__db_find(&f.dbs, "x.db");
	ASSERT_EQ(same_as(d, &before), TEST_OK);
	ASSERT_EQ(hashes_match_file(d, path), TEST_OK);
	fx_fini(&f);
	return TEST_OK;
}

/* A database whose hashes were never saved (only headers) is re-hashed
 * from its backing file at load. */
TEST(state_load, missing_hashes_rehash)
{
	struct fx f;
	struct eng_db *d;
	struct db_snap before;
	char path[512];

	fx_init(&f);
	snprintf(path, sizeof path, "%s/x.db", f.db);
	make_db(path, 4096, 20, 0);
	d = eng__db_get(&f.dbs, "x.db");
	adopt_file(&f, d, 6);
	ASSERT_EQ(eng__db_save_header(&f.dbs, d), 0);
	snap_db(d, &before);
	ASSERT_EQ(fx_file_size(fx_path("%s/x.db.hashes", f.state)), -1);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
	d = eng__db_find(&f.dbs, "x.db");
	ASSERT_EQ(same_as(d, &before), TEST_OK);
	ASSERT_EQ(hashes_match_file(d, path), TEST_OK);
	fx_fini(&f);
	return TEST_OK;
}

/* Without trusting the files, a backing file changed behind the state
 * resets the database to empty, deletes its backing files and persists
 * the reset. */
TEST(state_load, untrusted_modified_file_resets)
{
	struct fx f;
	struct eng_db *d;
	char path[512];

	fx_init(&f);
	snprintf(path, sizeof path, "%s/x.db", f.db);
	make_db(path, 1024, 40, 0);
	d = eng__db_get(&f.dbs, "x.db");
	adopt_file(&f, d, 3);
	ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
	sql_run(path, "UPDATE t SET b = printf('%0400d', a + 7) WHERE a = 30;");
	ASSERT_EQ(fx_file_size(path), (long long)d->db_pages * 1024);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, false), 0);
	ASSERT_EQ(is_empty(eng__db_find(&f.dbs, "x.db")), TEST_OK);
	ASSERT_EQ(fx_file_size(path), -1);
	ASSERT_EQ(fx_file_size(fx_path("%s-journal", path)), -1);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
	ASSERT_EQ(is_empty(eng__db_find(&f.dbs, "x.db")), TEST_OK);
	fx_fini(&f);
	return TEST_OK;
}

/* Even trusting the files, a backing file whose size disagrees with the
 * header (it grew behind the state) is re-hashed and reset. */
TEST(state_load, trusted_resized_file_resets)
{
	struct fx f;
	struct eng_db *d;
	char path[512];
	sqlite3 *db;

	fx_init(&f);
	snprintf(path, sizeof path, "%s/x.db", f.db);
	make_db(path, 1024, 40, 0);
	d = eng__db_get(&f.dbs, "x.db");
	adopt_file(&f, d, 3);
	ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
	db = sql_open(path);
	sql_insert(db, 100, 20, 0);
	sqlite3_close(db);
	ASSERT_TRUE(fx_file_size(path) > (long long)d->db_pages * 1024);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
	ASSERT_EQ(is_empty(eng__db_find(&f.dbs, "x.db")), TEST_OK);
	ASSERT_EQ(fx_file_size(path), -1);
	fx_fini(&f);
	return TEST_OK;
}

/* Without trusting the files, a backing file that lost its first page
 * (zeros after a power loss) disagrees with the header and is reset like
 * any other mismatch, instead of failing the whole load. */
TEST(state_load, untrusted_lost_page_one_resets)
{
	struct fx f;
	struct eng_db *d;
	char path[512];
	uint8_t zeros[1024] = {0};

	fx_init(&f);
	snprintf(path, sizeof path, "%s/x.db", f.db);
	make_db(path, 1024, 40, 0);
	d = eng__db_get(&f.dbs, "x.db");
	adopt_file(&f, d, 3);
	ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
	fx_patch_file(path, 0, zeros, sizeof zeros);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, false), 0);
	ASSERT_EQ(is_empty(eng__db_find(&f.dbs, "x.db")), TEST_OK);
	ASSERT_EQ(fx_file_size(path), -1);
	fx_fini(&f);
	return TEST_OK;
}

/* A header with any one byte flipped fails its check: the database is
 * reset to empty and its backing file deleted. */
TEST(state_load, corrupted_header_resets)
{
	struct model m = {.ps = 512};
	struct eng_db *d;
	uint8_t img[3 * 512], bit;
	int off;

	for (off = 0; off < 96; off++) {
		struct fx f;

		fx_init(&f);
		model_free(&m);
		m = (struct model){.ps = 512};
		d = eng__db_get(&f.dbs, "a.db");
		ASSERT_EQ(commit(d, &m, 3, run(1, 3), 3, 1, 8), 0);
		ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
		memcpy(img, m.img, sizeof img);
		fx_write_file(fx_path("%s/a.db", f.db), img, sizeof img);
		fx_restart(&f);
		ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0); /* intact: kept */
		ASSERT_U64_EQ(eng__db_find(&f.dbs, "a.db")->applied, 8);

		bit = (uint8_t)(1u << (off % 8));
		{
			size_t len;
			uint8_t *h = fx_read_file(
				fx_path("%s/a.db.state", f.state), &len);

			ASSERT_NOT_NULL(h);
			ASSERT_EQ(len, 96);
			h[off] ^= bit;
			fx_write_file(fx_path("%s/a.db.state", f.state), h,
				      len);
			free(h);
		}
		fx_restart(&f);
		ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
		if (is_empty(eng__db_find(&f.dbs, "a.db")) != TEST_OK) {
			fprintf(stderr, "flipped byte %d\n", off);
			return TEST_FAIL;
		}
		ASSERT_EQ(fx_file_size(fx_path("%s/a.db", f.db)), -1);
		fx_fini(&f);
	}
	model_free(&m);
	return TEST_OK;
}

/* A header cut short (a crash while the file was first written) resets
 * the database. */
TEST(state_load, short_header_resets)
{
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(commit(d, &m, 3, run(1, 3), 3, 1, 8), 0);
	ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
	fx_write_file(fx_path("%s/a.db", f.db), m.img, 3 * 512);
	ASSERT_EQ(truncate(fx_path("%s/a.db.state", f.state), 95), 0);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
	ASSERT_EQ(is_empty(eng__db_find(&f.dbs, "a.db")), TEST_OK);
	ASSERT_EQ(fx_file_size(fx_path("%s/a.db", f.db)), -1);
	model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* Names with '/' and '%' are stored as flat escaped files in the state
 * dir and load back under their own names. */
TEST(state_load, escaped_names_round_trip)
{
	static const char *names[] = {"sub/dir/a.db", "50%.db", "x%2Fy.db",
				      "sub/50%/b%25.db"};
	static const char *files[] = {"sub%2Fdir%2Fa.db", "50%25.db",
				      "x%252Fy.db", "sub%2F50%25%2Fb%2525.db"};
	enum { N = sizeof names / sizeof names[0] };
	struct fx f;
	struct model m[N];
	struct db_snap before[N];
	struct eng_db *d;
	struct dirent *e;
	DIR *dir;
	int i, n_state = 0;

	fx_init(&f);
	for (i = 0; i < N; i++) {
		m[i] = (struct model){.ps = 512};
		d = eng__db_get(&f.dbs, names[i]);
		ASSERT_EQ(commit(d, &m[i], (uint32_t)i + 1,
				 run(1, (uint32_t)i + 1), (uint32_t)i + 1,
				 (uint32_t)i * 10, (uint64_t)i + 2),
			  0);
		ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
		fx_write_file(fx_path("%s/%s", f.db, names[i]), m[i].img,
			      (size_t)(i + 1) * 512);
		snap_db(d, &before[i]);
		ASSERT_TRUE(fx_file_size(fx_path("%s/%s.state", f.state,
						 files[i])) == 96);
	}
	dir = opendir(f.state);
	ASSERT_NOT_NULL(dir);
	while ((e = readdir(dir)) != NULL) {
		ASSERT_TRUE(e->d_type != DT_DIR || e->d_name[0] == '.');
		if (strstr(e->d_name, ".state") != NULL)
			n_state++;
	}
	closedir(dir);
	ASSERT_EQ(n_state, N);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
	for (i = 0; i < N; i++) {
		ASSERT_EQ(same_as(eng__db_find(&f.dbs, names[i]), &before[i]),
			  TEST_OK);
		model_free(&m[i]);
	}
	fx_fini(&f);
	return TEST_OK;
}

/* Trusting the files, a database whose state lives partly in the backing
 * WAL keeps its WAL frame count and is not held to the database file's
 * size. */
TEST(state_load, trusted_keeps_wal_frames)
{
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;
	struct db_snap before;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(commit(d, &m, 6, run(1, 6), 6, 1, 4), 0);
	d->wal_frames = 3;
	ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
	snap_db(d, &before);
	/* The rest is in a WAL. */
	fx_write_file(fx_path("%s/a.db", f.db), m.img, 2 * 512);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
	ASSERT_EQ(same_as(eng__db_find(&f.dbs, "a.db"), &before), TEST_OK);
	model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* A load that settles a database's WAL into its file (re-hash path)
 * leaves no WAL frames holding the state, so it records 0 of them. */
TEST(state_load, settle_clears_wal_frames)
{
	struct fx f;
	struct eng_db *d;
	sqlite3 *conn;
	char src[512], path[512];
	long long wal;
	size_t len;
	uint8_t *img;

	fx_init(&f);
	snprintf(src, sizeof src, "%s/src/w.db", f.dir);
	conn = make_wal_db(src, 30);
	snprintf(path, sizeof path, "%s/w.db", f.db);
	fx_copy_file(src, path);
	fx_copy_file(fx_path("%s-wal", src), fx_path("%s-wal", path));
	wal = fx_file_size(fx_path("%s-wal", src));
	ASSERT_TRUE(wal > 32);
	sqlite3_close(conn);
	img = checkpointed_image(path, fx_path("%s/scratch.db", f.dir), &len);
	ASSERT_NOT_NULL(img);
	/* The state the files hold: a WAL over the database file. */
	d = eng__db_get(&f.dbs, "w.db");
	adopt_image(d, img, len, 5);
	d->wal_frames = (uint64_t)(wal - 32) / (1024 + 24);
	ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, false), 0);
	d = eng__db_find(&f.dbs, "w.db");
	ASSERT_NOT_NULL(d);
	ASSERT_U64_EQ(d->applied, 5); /* matched, not reset */
	ASSERT_EQ(hashes_match_file(d, path), TEST_OK);
	ASSERT_U64_EQ(d->wal_frames, 0);
	free(img);
	fx_fini(&f);
	return TEST_OK;
}

/* hashes_at follows the index of the last saved hashes: set by save_all
 * and by a trusted load, not by save_header. */
TEST(state_load, hashes_at_tracks_saved_hashes)
{
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(commit(d, &m, 3, run(1, 3), 3, 1, 4), 0);
	ASSERT_U64_EQ(d->hashes_at, 0);
	ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
	ASSERT_U64_EQ(d->hashes_at, 4);
	ASSERT_EQ(commit(d, &m, 3, run(2, 1), 1, 2, 6), 0);
	ASSERT_EQ(eng__db_save_header(&f.dbs, d), 0);
	ASSERT_U64_EQ(d->hashes_at, 4);
	ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
	ASSERT_U64_EQ(d->hashes_at, 6);
	fx_write_file(fx_path("%s/a.db", f.db), m.img, 3 * 512);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
	ASSERT_U64_EQ(eng__db_find(&f.dbs, "a.db")->hashes_at, 6);
	model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* ---- writing backing files ---- */

/* write_backing writes the carried pages in place, keeps the others and
 * truncates the file to db_pages. */
TEST(state_write, backing_writes_and_truncates)
{
	static const uint32_t pg[] = {2, 4};
	struct fx f;
	struct eng_txn *t;
	uint8_t old[6 * 512], want[4 * 512];
	size_t len;
	uint8_t *got;

	fx_init(&f);
	fill_page(old, sizeof old, 1);
	fx_write_file(fx_path("%s/a.db", f.db), old, sizeof old);
	t = txn_of("a.db", 512, 4, pg, 2, 40);
	memcpy(want, old, sizeof want);
	memcpy(want + 512, t->pages, 512);
	memcpy(want + 3 * 512, t->pages + 512, 512);
	ASSERT_EQ(eng__db_write_backing(&f.dbs, t), 0);
	got = fx_read_file(fx_path("%s/a.db", f.db), &len);
	ASSERT_NOT_NULL(got);
	ASSERT_EQ(len, sizeof want);
	ASSERT_MEM_EQ(got, want, sizeof want);
	free(got);
	eng_txn_free(t);
	fx_fini(&f);
	return TEST_OK;
}

/* write_backing creates a database in a subdirectory, parents included,
 * and extends it to db_pages. */
TEST(state_write, backing_creates_subdirectories)
{
	static const uint32_t pg[] = {1, 3};
	struct fx f;
	struct eng_txn *t;
	uint8_t want[4 * 512] = {0};
	size_t len;
	uint8_t *got;

	fx_init(&f);
	t = txn_of("x/y/z.db", 512, 4, pg, 2, 5);
	memcpy(want, t->pages, 512);
	memcpy(want + 2 * 512, t->pages + 512, 512);
	ASSERT_EQ(eng__db_write_backing(&f.dbs, t), 0);
	got = fx_read_file(fx_path("%s/x/y/z.db", f.db), &len);
	ASSERT_NOT_NULL(got);
	ASSERT_EQ(len, sizeof want);
	ASSERT_MEM_EQ(got, want, sizeof want);
	free(got);
	eng_txn_free(t);
	fx_fini(&f);
	return TEST_OK;
}

/* write_image replaces a longer file with exactly the image, creating
 * parent directories. */
TEST(state_write, image_replaces_file)
{
	struct fx f;
	uint8_t old[8 * 512], img[3 * 1024];
	size_t len;
	uint8_t *got;

	fx_init(&f);
	fill_page(old, sizeof old, 1);
	fill_page(img, sizeof img, 2);
	fx_write_file(fx_path("%s/s/a.db", f.db), old, sizeof old);
	ASSERT_EQ(eng__db_write_image(&f.dbs, "s/a.db", img, 1024, 3), 0);
	got = fx_read_file(fx_path("%s/s/a.db", f.db), &len);
	ASSERT_NOT_NULL(got);
	ASSERT_EQ(len, sizeof img);
	ASSERT_MEM_EQ(got, img, sizeof img);
	free(got);
	ASSERT_EQ(eng__db_write_image(&f.dbs, "n/e/w.db", img, 1024, 2), 0);
	ASSERT_EQ(fx_file_size(fx_path("%s/n/e/w.db", f.db)), 2 * 1024);
	fx_fini(&f);
	return TEST_OK;
}

/* ---- settle ---- */

/* settle folds a WAL's frames into the database file, which then holds
 * every row on its own. */
TEST(state_settle, folds_wal)
{
	struct fx f;
	sqlite3 *conn;
	char src[512], path[512];

	fx_init(&f);
	snprintf(src, sizeof src, "%s/src/w.db", f.dir);
	conn = make_wal_db(src, 50);
	snprintf(path, sizeof path, "%s/w.db", f.db);
	fx_copy_file(src, path);
	fx_copy_file(fx_path("%s-wal", src), fx_path("%s-wal", path));
	sqlite3_close(conn);
	/* Precondition: the database file alone lacks the rows. */
	fx_copy_file(path, fx_path("%s/alone1.db", f.dir));
	ASSERT_TRUE(sql_count(fx_path("%s/alone1.db", f.dir)) != 50);

	ASSERT_EQ(eng__db_settle(&f.dbs, "w.db"), 0);
	ASSERT_TRUE(fx_file_size(fx_path("%s-wal", path)) <= 0);
	fx_copy_file(path, fx_path("%s/alone2.db", f.dir));
	ASSERT_EQ(sql_count(fx_path("%s/alone2.db", f.dir)), 50);
	fx_fini(&f);
	return TEST_OK;
}

/* settle rolls back a hot journal: the database file is again exactly
 * what it was before the interrupted transaction. */
TEST(state_settle, rolls_back_hot_journal)
{
	struct fx f;
	sqlite3 *conn;
	char src[512], path[512];
	uint8_t *orig, *mid, *got;
	size_t orig_len, mid_len, len;

	fx_init(&f);
	snprintf(src, sizeof src, "%s/src/h.db", f.dir);
	make_db(src, 1024, 60, 0);
	orig = fx_read_file(src, &orig_len);
	ASSERT_NOT_NULL(orig);
	conn = sql_open(src);
	/* A tiny cache makes SQLite write pages into the database file
	 * before the commit; copying now leaves a hot journal. */
	sql_exec(conn, "PRAGMA cache_size=1; BEGIN; "
		       "UPDATE t SET b = printf('%0400d', a + 99);");
	sql_insert(conn, 1000, 60, 0);
	snprintf(path, sizeof path, "%s/h.db", f.db);
	fx_copy_file(src, path);
	fx_copy_file(fx_path("%s-journal", src), fx_path("%s-journal", path));
	sql_exec(conn, "ROLLBACK;");
	sqlite3_close(conn);
	mid = fx_read_file(path, &mid_len);
	ASSERT_NOT_NULL(mid);
	ASSERT_TRUE(mid_len != orig_len || memcmp(mid, orig, orig_len) != 0);
	ASSERT_TRUE(fx_file_size(fx_path("%s-journal", path)) > 0);

	ASSERT_EQ(eng__db_settle(&f.dbs, "h.db"), 0);
	got = fx_read_file(path, &len);
	ASSERT_NOT_NULL(got);
	ASSERT_EQ(len, orig_len);
	ASSERT_MEM_EQ(got, orig, len);
	ASSERT_TRUE(fx_file_size(fx_path("%s-journal", path)) <= 0);
	free(orig);
	free(mid);
	free(got);
	fx_fini(&f);
	return TEST_OK;
}

/* settle of a database without a backing file succeeds and creates
 * nothing. */
TEST(state_settle, missing_file)
{
	struct fx f;

	fx_init(&f);
	ASSERT_EQ(eng__db_settle(&f.dbs, "none.db"), 0);
	ASSERT_EQ(fx_file_size(fx_path("%s/none.db", f.db)), -1);
	fx_fini(&f);
	return TEST_OK;
}

/* settle of a file SQLite cannot read fails with -EIO. */
TEST(state_settle, not_sqlite)
{
	struct fx f;
	uint8_t junk[4096];

	fx_init(&f);
	fill_page(junk, sizeof junk, 3);
	fx_write_file(fx_path("%s/j.db", f.db), junk, sizeof junk);
	ASSERT_EQ(eng__db_settle(&f.dbs, "j.db"), -EIO);
	fx_fini(&f);
	return TEST_OK;
}

/* ---- rehash ---- */

/* rehash of a file matching the state returns 1 and recomputes every
 * page hash from the file. */
TEST(state_rehash, matching_file)
{
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(commit(d, &m, 4, run(1, 4), 4, 1, 1), 0);
	fx_write_file(fx_path("%s/a.db", f.db), m.img, 4 * 512);
	memset(d->hash, 0, 4 * sizeof *d->hash);
	ASSERT_EQ(eng__db_rehash(&f.dbs, d), 1);
	ASSERT_EQ(hashes_match_file(d, fx_path("%s/a.db", f.db)), TEST_OK);
	model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* rehash of a file with one changed byte returns 0. */
TEST(state_rehash, changed_byte)
{
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(commit(d, &m, 4, run(1, 4), 4, 1, 1), 0);
	m.img[3 * 512 + 100] ^= 1;
	fx_write_file(fx_path("%s/a.db", f.db), m.img, 4 * 512);
	ASSERT_EQ(eng__db_rehash(&f.dbs, d), 0);
	model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* rehash of a file shorter than the state's size returns 0. */
TEST(state_rehash, short_file)
{
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(commit(d, &m, 4, run(1, 4), 4, 1, 1), 0);
	fx_write_file(fx_path("%s/a.db", f.db), m.img, 3 * 512 + 100);
	ASSERT_EQ(eng__db_rehash(&f.dbs, d), 0);
	model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* A missing backing file matches an empty state only. */
TEST(state_rehash, missing_file)
{
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;

	fx_init(&f);
	ASSERT_EQ(eng__db_rehash(&f.dbs, eng__db_get(&f.dbs, "e.db")), 1);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(commit(d, &m, 2, run(1, 2), 2, 1, 1), 0);
	ASSERT_EQ(eng__db_rehash(&f.dbs, d), 0);
	model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* ---- reset ---- */

/* reset empties the state, deletes the backing file and its companions,
 * and persists the empty state. */
TEST(state_reset, empties_and_deletes)
{
	static const char *sfx[] = {"", "-wal", "-shm", "-journal"};
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;
	size_t i;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "s/a.db");
	ASSERT_EQ(commit(d, &m, 3, run(1, 3), 3, 1, 9), 0);
	d->wal_frames = 2;
	ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
	for (i = 0; i < 4; i++)
		fx_write_file(fx_path("%s/s/a.db%s", f.db, sfx[i]), "x", 1);
	ASSERT_EQ(eng__db_reset(&f.dbs, d), 0);
	ASSERT_EQ(is_empty(d), TEST_OK);
	for (i = 0; i < 4; i++)
		ASSERT_EQ(fx_file_size(fx_path("%s/s/a.db%s", f.db, sfx[i])),
			  -1);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
	ASSERT_EQ(is_empty(eng__db_find(&f.dbs, "s/a.db")), TEST_OK);
	model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* ---- orphans ---- */

/* A non-empty database file without state is removed with its
 * companions. */
TEST(state_orphans, removes_stateless)
{
	static const char *sfx[] = {"", "-wal", "-shm", "-journal"};
	struct fx f;
	size_t i;

	fx_init(&f);
	for (i = 0; i < 4; i++)
		fx_write_file(fx_path("%s/o.db%s", f.db, sfx[i]), "data", 4);
	ASSERT_EQ(eng__dbs_remove_orphans(&f.dbs), 0);
	for (i = 0; i < 4; i++)
		ASSERT_EQ(fx_file_size(fx_path("%s/o.db%s", f.db, sfx[i])), -1);
	fx_fini(&f);
	return TEST_OK;
}

/* Stateless non-empty database files in subdirectories are removed too. */
TEST(state_orphans, removes_in_subdirectory)
{
	struct fx f;

	fx_init(&f);
	fx_write_file(fx_path("%s/a/o.db", f.db), "data", 4);
	fx_write_file(fx_path("%s/a/o.db-wal", f.db), "data", 4);
	fx_write_file(fx_path("%s/a/b/c/o2.db", f.db), "data", 4);
	ASSERT_EQ(eng__dbs_remove_orphans(&f.dbs), 0);
	ASSERT_EQ(fx_file_size(fx_path("%s/a/o.db", f.db)), -1);
	ASSERT_EQ(fx_file_size(fx_path("%s/a/o.db-wal", f.db)), -1);
	ASSERT_EQ(fx_file_size(fx_path("%s/a/b/c/o2.db", f.db)), -1);
	fx_fini(&f);
	return TEST_OK;
}

/* An empty database file without state (a database opened but never
 * written) is kept. */
TEST(state_orphans, keeps_empty)
{
	struct fx f;

	fx_init(&f);
	fx_write_file(fx_path("%s/e.db", f.db), "", 0);
	fx_write_file(fx_path("%s/s/e.db", f.db), "", 0);
	ASSERT_EQ(eng__dbs_remove_orphans(&f.dbs), 0);
	ASSERT_EQ(fx_file_size(fx_path("%s/e.db", f.db)), 0);
	ASSERT_EQ(fx_file_size(fx_path("%s/s/e.db", f.db)), 0);
	fx_fini(&f);
	return TEST_OK;
}

/* Database files that have state, here or in subdirectories, are kept
 * with their companions. */
TEST(state_orphans, keeps_stated)
{
	struct fx f;

	fx_init(&f);
	ASSERT_NOT_NULL(eng__db_get(&f.dbs, "k.db"));
	ASSERT_NOT_NULL(eng__db_get(&f.dbs, "s/t/k2.db"));
	fx_write_file(fx_path("%s/k.db", f.db), "data", 4);
	fx_write_file(fx_path("%s/k.db-wal", f.db), "data", 4);
	fx_write_file(fx_path("%s/s/t/k2.db", f.db), "data", 4);
	fx_write_file(fx_path("%s/s/t/o.db", f.db), "data", 4);
	ASSERT_EQ(eng__dbs_remove_orphans(&f.dbs), 0);
	ASSERT_EQ(fx_file_size(fx_path("%s/k.db", f.db)), 4);
	ASSERT_EQ(fx_file_size(fx_path("%s/k.db-wal", f.db)), 4);
	ASSERT_EQ(fx_file_size(fx_path("%s/s/t/k2.db", f.db)), 4);
	ASSERT_EQ(fx_file_size(fx_path("%s/s/t/o.db", f.db)), -1);
	fx_fini(&f);
	return TEST_OK;
}

int main(int argc, char **argv)
{
	return fx_main(argc, argv, "state");
}
