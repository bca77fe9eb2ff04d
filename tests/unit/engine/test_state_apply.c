/* Unit tests for per-database state (engine/state.c): the in-memory state,
 * applying transactions, and no-op detection.
 *
 * Every test gets its own directory under a root made by fx_main() (which
 * removes the root when the runner is done, also after a failed or crashed
 * test), holding state/ and db/ for one struct eng_dbs (fixture.h).
 * Expected checksums come from the model in state_fixture.h, never from
 * the code under test. */
#include <stdlib.h>

#include "engine/state.h"
#include "fixture.h"
#include "state_fixture.h"
#include "tests/lib/unit.h"

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
	ASSERT_EQ(sf_is_empty(d), TEST_OK);
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
	ASSERT_EQ(sf_commit(d, &m, 3, sf_run(1, 3), 3, 10, 7), 0);
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
	sf_model_free(&m);
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
	ASSERT_EQ(sf_commit(d, &m, 5, sf_run(1, 5), 5, 100, 1), 0);
	ASSERT_U64_EQ(d->cksum, xor_pages(m.img, 1024, 5));
	ASSERT_EQ(sf_commit(d, &m, 5, upd, 2, 200, 2), 0);
	ASSERT_U64_EQ(d->cksum, xor_pages(m.img, 1024, 5));
	ASSERT_EQ(sf_commit(d, &m, 8, mixed, 4, 300, 4), 0);
	ASSERT_U64_EQ(d->cksum, xor_pages(m.img, 1024, 8));
	ASSERT_U64_EQ(d->seq, 3);
	ASSERT_U64_EQ(d->applied, 4);
	ASSERT_EQ(d->db_pages, 8);
	sf_model_free(&m);
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
	ASSERT_EQ(sf_commit(d, &m, 10, sf_run(1, 10), 10, 1, 1), 0);
	ASSERT_EQ(sf_commit(d, &m, 300, sf_run(5, 296), 296, 2, 2), 0);
	ASSERT_EQ(d->db_pages, 300);
	for (p = 1; p <= 300; p++)
		ASSERT_U64_EQ(d->hash[p - 1],
			      qf_page_hash(p, m.img + (size_t)(p - 1) * 512,
					   512));
	ASSERT_U64_EQ(d->cksum, xor_pages(m.img, 512, 300));
	sf_model_free(&m);
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
	ASSERT_EQ(sf_commit(d, &m, 4, sf_run(1, 4), 4, 1, 1), 0);
	ASSERT_EQ(sf_commit(d, &m, 4, sf_run(2, 1), 1, 2, 2), 0);
	sf_snap_db(d, &before);
	t = sf_txn_of("a.db", 512, 5, sf_run(3, 3), 3, 3);
	sf_model_seal(&m, t);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		t->seq = bad[i];
		ASSERT_EQ(eng__db_apply(d, t, 3), QF_EDIVERGED);
		ASSERT_EQ(sf_same_as(d, &before), TEST_OK);
	}
	t->seq = 3; /* the same entry with the right seq is accepted */
	ASSERT_EQ(eng__db_apply(d, t, 3), 0);
	eng_txn_free(t);
	sf_model_free(&m);
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
	ASSERT_EQ(sf_commit(d, &m, 4, sf_run(1, 4), 4, 1, 1), 0);
	sf_snap_db(d, &before);
	t = sf_txn_of("a.db", 512, 4, sf_run(2, 2), 2, 9);
	sf_model_seal(&m, t);
	t->cksum_before ^= 1;
	ASSERT_EQ(eng__db_apply(d, t, 2), QF_EDIVERGED);
	ASSERT_EQ(sf_same_as(d, &before), TEST_OK);
	eng_txn_free(t);
	sf_model_free(&m);
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
	ASSERT_EQ(sf_commit(d, &m, 4, sf_run(1, 4), 4, 1, 1), 0);
	sf_snap_db(d, &before);
	t = sf_txn_of("a.db", 512, 6, sf_run(2, 5), 5, 9);
	sf_model_seal(&m, t);
	t->pages[512 + 17] ^= 0x40; /* page 3 is not what the leader hashed */
	ASSERT_EQ(eng__db_apply(d, t, 2), QF_EDIVERGED);
	ASSERT_EQ(sf_same_as(d, &before), TEST_OK);
	eng_txn_free(t);
	sf_model_free(&m);
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
	ASSERT_EQ(sf_commit(d, &m, 6, sf_run(1, 6), 6, 1, 1), 0);
	ASSERT_EQ(sf_commit(d, &m, 4, sf_run(2, 1), 1, 2, 2), 0);
	ASSERT_EQ(d->db_pages, 4);
	ASSERT_U64_EQ(d->cksum, xor_pages(m.img, 512, 4));
	ASSERT_EQ(sf_commit(d, &m, 2, NULL, 0, 3, 3), 0);
	ASSERT_EQ(d->db_pages, 2);
	ASSERT_U64_EQ(d->cksum, xor_pages(m.img, 512, 2));
	sf_model_free(&m);
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
	ASSERT_EQ(sf_commit(d, &m, 5, sf_run(1, 5), 5, 1, 1), 0);
	ASSERT_EQ(sf_commit(d, &m, 3, NULL, 0, 0, 2), 0);
	before = xor_pages(m.img, 512, 3);
	ASSERT_U64_EQ(d->cksum, before);
	t = sf_txn_of("a.db", 512, 5, five, 1, 50);
	fill_page(page, 512, 55);
	t->seq = 3;
	t->cksum_before = before;
	t->cksum_after = before ^ qf_page_hash(5, page, 512);
	ASSERT_EQ(eng__db_apply(d, t, 3), 0);
	ASSERT_U64_EQ(d->hash[3], 0);
	ASSERT_U64_EQ(d->cksum, t->cksum_after);
	eng_txn_free(t);
	sf_model_free(&m);
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
	ASSERT_EQ(sf_commit(d, &m, 4, sf_run(1, 4), 4, 1, 1), 0);
	t = sf_txn_of("a.db", 1024, 3, one, 1, 70);
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
	sf_model_free(&m);
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
	ASSERT_EQ(sf_commit(d, &m, 5, sf_run(1, 5), 5, 1, 1), 0);
	sf_snap_db(d, &before);
	t = sf_txn_of("a.db", 512, 7, grow, 4, 9);
	sf_model_seal(&m, t);
	ASSERT_U64_EQ(eng__db_cksum_after(d, t), t->cksum_after);
	ASSERT_EQ(sf_same_as(d, &before), TEST_OK);
	eng_txn_free(t);
	t = sf_txn_of("a.db", 512, 3, shrink, 2, 9);
	sf_model_seal(&m, t);
	ASSERT_U64_EQ(eng__db_cksum_after(d, t), t->cksum_after);
	ASSERT_EQ(sf_same_as(d, &before), TEST_OK);
	eng_txn_free(t);
	sf_model_free(&m);
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
	ASSERT_EQ(sf_commit(d, &m, 5, sf_run(1, 5), 5, 10, 1), 0);
	t = sf_txn_of("a.db", 512, 5, pg, 2, 10);
	ASSERT_TRUE(eng__db_txn_is_noop(d, t));
	eng_txn_free(t);
	t = sf_txn_of("a.db", 512, 5, NULL, 0, 0);
	ASSERT_TRUE(eng__db_txn_is_noop(d, t));
	eng_txn_free(t);
	sf_model_free(&m);
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
	ASSERT_EQ(sf_commit(d, &m, 5, sf_run(1, 5), 5, 10, 1), 0);
	for (i = 0; i < 5; i++) {
		t = sf_txn_of("a.db", 512, 5, sf_run(1, 5), 5, 10);
		ASSERT_TRUE(eng__db_txn_is_noop(d, t));
		t->pages[(size_t)i * 512 + 511 - i] ^= 1;
		ASSERT_TRUE(!eng__db_txn_is_noop(d, t));
		eng_txn_free(t);
	}
	sf_model_free(&m);
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
	ASSERT_EQ(sf_commit(d, &m, 5, sf_run(1, 5), 5, 10, 1), 0);
	t = sf_txn_of("a.db", 512, 6, sf_run(1, 2), 2, 10);
	ASSERT_TRUE(!eng__db_txn_is_noop(d, t));
	t->db_pages = 4;
	ASSERT_TRUE(!eng__db_txn_is_noop(d, t));
	t->db_pages = 5;
	ASSERT_TRUE(eng__db_txn_is_noop(d, t));
	eng_txn_free(t);
	sf_model_free(&m);
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
	ASSERT_EQ(sf_commit(d, &m, 5, sf_run(1, 5), 5, 10, 1), 0);
	t = sf_txn_of("a.db", 1024, 5, NULL, 0, 0);
	ASSERT_TRUE(!eng__db_txn_is_noop(d, t));
	eng_txn_free(t);
	sf_model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* ---- entries covered by an installed image ---- */

#define BASE_CKSUM 0x5eedc0ffee123457ull

/* A database of three pages applied up to index 20 whose last installed
 * image is set by hand to seq 5 with checksum BASE_CKSUM (eng__db_covered
 * looks only at those and the applied index). */
static struct eng_db *installed(struct fx *f, struct model *m)
{
	struct eng_db *d = eng__db_get(&f->dbs, "a.db");

	if (d == NULL || sf_commit(d, m, 3, sf_run(1, 3), 3, 1, 20) != 0)
		abort();
	d->base_seq = 5;
	d->base_cksum = BASE_CKSUM;
	return d;
}

/* An entry older than the image is covered: skipped, its index recorded
 * as applied, but an older index never lowers what is applied. */
TEST(state_covered, below_base)
{
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;
	struct db_snap before;
	struct eng_txn *t;

	fx_init(&f);
	d = installed(&f, &m);
	sf_snap_db(d, &before);
	t = sf_txn_of("a.db", 512, 3, sf_run(2, 1), 1, 9);
	t->seq = 3;
	t->cksum_after = 0x1234; /* not checked below the base */
	ASSERT_EQ(eng__db_covered(d, t, 25), 1);
	ASSERT_U64_EQ(d->applied, 25);
	ASSERT_EQ(eng__db_covered(d, t, 22), 1);
	ASSERT_U64_EQ(d->applied, 25);
	t->seq = 1;
	ASSERT_EQ(eng__db_covered(d, t, 26), 1);
	ASSERT_U64_EQ(d->applied, 26);
	/* Nothing but the applied index changed. */
	before.applied = 26;
	ASSERT_EQ(sf_same_as(d, &before), TEST_OK);
	ASSERT_U64_EQ(d->base_seq, 5);
	ASSERT_U64_EQ(d->base_cksum, BASE_CKSUM);
	eng_txn_free(t);
	sf_model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* The image's own transaction is covered if it ends with the image's
 * checksum; with any other checksum it is a divergence that changes
 * nothing. */
TEST(state_covered, base_checks_cksum)
{
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;
	struct db_snap before;
	struct eng_txn *t;

	fx_init(&f);
	d = installed(&f, &m);
	sf_snap_db(d, &before);
	t = sf_txn_of("a.db", 512, 3, sf_run(2, 1), 1, 9);
	t->seq = 5;
	t->cksum_after = BASE_CKSUM ^ 1;
	ASSERT_EQ(eng__db_covered(d, t, 24), QF_EDIVERGED);
	ASSERT_EQ(sf_same_as(d, &before), TEST_OK);
	t->cksum_after = 0;
	ASSERT_EQ(eng__db_covered(d, t, 24), QF_EDIVERGED);
	ASSERT_EQ(sf_same_as(d, &before), TEST_OK);
	t->cksum_after = BASE_CKSUM;
	ASSERT_EQ(eng__db_covered(d, t, 24), 1);
	ASSERT_U64_EQ(d->applied, 24);
	ASSERT_U64_EQ(d->base_seq, 5);
	ASSERT_U64_EQ(d->base_cksum, BASE_CKSUM);
	eng_txn_free(t);
	sf_model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* An entry newer than the image is not covered and changes nothing. */
TEST(state_covered, above_base)
{
	static const uint64_t seqs[] = {6, 7, 100};
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;
	struct db_snap before;
	struct eng_txn *t;
	size_t i;

	fx_init(&f);
	d = installed(&f, &m);
	sf_snap_db(d, &before);
	t = sf_txn_of("a.db", 512, 3, sf_run(2, 1), 1, 9);
	for (i = 0; i < sizeof seqs / sizeof seqs[0]; i++) {
		t->seq = seqs[i];
		t->cksum_after = BASE_CKSUM; /* even with the image's */
		ASSERT_EQ(eng__db_covered(d, t, 30), 0);
		ASSERT_EQ(sf_same_as(d, &before), TEST_OK);
		ASSERT_U64_EQ(d->base_seq, 5);
		ASSERT_U64_EQ(d->base_cksum, BASE_CKSUM);
	}
	eng_txn_free(t);
	sf_model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* ---- old hashes for the follower's applier ---- */

/* Each carried page gets the hash it has now: the applied one for a page
 * the database holds, 0 for a page beyond its end.  The state does not
 * change. */
TEST(state_old_hashes, existing_and_new_pages)
{
	static const uint32_t pg[] = {2, 5};
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;
	struct db_snap before;
	struct eng_txn *t;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(sf_commit(d, &m, 3, sf_run(1, 3), 3, 10, 1), 0);
	sf_snap_db(d, &before);
	t = sf_txn_of("a.db", 512, 5, pg, 2, 20);
	ASSERT_NULL(t->old_hashes);
	ASSERT_EQ(eng__db_old_hashes(d, t), 0);
	ASSERT_NOT_NULL(t->old_hashes);
	ASSERT_U64_EQ(t->old_hashes[0], qf_page_hash(2, m.img + 512, 512));
	ASSERT_TRUE(t->old_hashes[0] != 0);
	ASSERT_U64_EQ(t->old_hashes[1], 0);
	ASSERT_EQ(sf_same_as(d, &before), TEST_OK);
	/* Again on the same transaction (the old array is replaced). */
	ASSERT_EQ(eng__db_old_hashes(d, t), 0);
	ASSERT_U64_EQ(t->old_hashes[0], qf_page_hash(2, m.img + 512, 512));
	ASSERT_U64_EQ(t->old_hashes[1], 0);
	eng_txn_free(t); /* frees old_hashes */
	sf_model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* With a page size change no page has a meaningful old image: all 0. */
TEST(state_old_hashes, page_size_change_is_all_zero)
{
	static const uint32_t pg[] = {1, 2, 3};
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;
	struct eng_txn *t;
	uint32_t i;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(sf_commit(d, &m, 3, sf_run(1, 3), 3, 10, 1), 0);
	/* Precondition: at the same size these pages have hashes. */
	t = sf_txn_of("a.db", 512, 3, pg, 3, 20);
	ASSERT_EQ(eng__db_old_hashes(d, t), 0);
	for (i = 0; i < 3; i++)
		ASSERT_U64_EQ(t->old_hashes[i], d->hash[i]);
	eng_txn_free(t);
	t = sf_txn_of("a.db", 1024, 3, pg, 3, 20);
	ASSERT_EQ(eng__db_old_hashes(d, t), 0);
	ASSERT_NOT_NULL(t->old_hashes);
	for (i = 0; i < 3; i++)
		ASSERT_U64_EQ(t->old_hashes[i], 0);
	eng_txn_free(t);
	sf_model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

int main(int argc, char **argv)
{
	return fx_main(argc, argv, "state");
}
