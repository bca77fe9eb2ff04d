/* Helpers shared by the per-database state unit tests: the page model,
 * transactions and state snapshots (see state_fixture.h). */
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "state_fixture.h"
#include "tests/lib/unit.h"

void sf_model_free(struct model *m)
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
void sf_model_seal(const struct model *m, struct eng_txn *t)
{
	struct model tmp;

	model_clone(&tmp, m);
	model_commit(&tmp, t);
	sf_model_free(&tmp);
}

/* Page numbers first, first + 1, ..., n of them (a static array). */
const uint32_t *sf_run(uint32_t first, uint32_t n)
{
	static uint32_t pg[MAX_HASHES];
	uint32_t i;

	for (i = 0; i < n && i < MAX_HASHES; i++)
		pg[i] = first + i;
	return pg;
}

/* A transaction of @db carrying @pgnos, page p filled from seed + p. */
struct eng_txn *sf_txn_of(const char *db, uint32_t ps, uint32_t db_pages,
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
int sf_commit(struct eng_db *d, struct model *m, uint32_t db_pages,
	      const uint32_t *pgnos, uint32_t n, uint32_t seed, uint64_t index)
{
	struct eng_txn *t = sf_txn_of(d->name, m->ps, db_pages, pgnos, n, seed);
	int rv;

	model_commit(m, t);
	rv = eng__db_apply(d, t, index);
	eng_txn_free(t);
	return rv;
}

void sf_snap_db(const struct eng_db *d, struct db_snap *s)
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

int sf_same_as(const struct eng_db *d, const struct db_snap *s)
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
int sf_is_empty(const struct eng_db *d)
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
int sf_hashes_match_file(const struct eng_db *d, const char *path)
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
