/* Unit tests for the follower's apply queue (engine/follow.c): a
 * snapshot's state (v2 snapshots, no pages) reaching a database.
 *
 * The queue runs here without an engine: an "applier" that records what it
 * is handed and a resync hook that counts the images asked for. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/follow.h"
#include "fixture.h"
#include "state_fixture.h"
#include "tests/lib/unit.h"

struct seen {
	int applied; /* transactions handed to the applier */
	int asked;   /* images asked for */
};

static void record_apply(void *arg, const struct eng_txn *t, uint64_t index)
{
	(void)t;
	(void)index;
	((struct seen *)arg)->applied++;
}

static void record_resync(void *arg, const char *db)
{
	(void)db;
	((struct seen *)arg)->asked++;
}

static void follower_init(struct eng_follower *q, struct fx *f,
			  struct seen *s)
{
	memset(s, 0, sizeof *s);
	eng__follow_init(q, &f->dbs);
	q->resync = record_resync;
	q->resync_arg = s;
	eng__follow_set(q, record_apply, s);
}

/* @d's own state as a snapshot would carry it (hashes malloc'd). */
static struct eng_db_snap snap_of(const struct eng_db *d)
{
	struct eng_db_snap st = {d->page_size, d->db_pages, d->seq, d->cksum,
				 malloc((size_t)d->db_pages * sizeof(uint64_t))};

	if (st.hashes == NULL)
		abort();
	memcpy(st.hashes, d->hash, (size_t)d->db_pages * sizeof(uint64_t));
	return st;
}

/* a.db after two commits (its files then marked suspect if @suspect),
 * and a snapshot of that very state pushed at index 9: what became of
 * a.db (flags and numbers; its hashes are gone) and of @s. */
static int own_state_pushed(bool suspect, struct seen *s, struct eng_db *out,
			    uint64_t *model_seq)
{
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_follower q;
	struct eng_db_snap st;
	struct eng_db *d;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(sf_commit(d, &m, 3, sf_run(1, 3), 3, 10, 5), TEST_OK);
	ASSERT_EQ(sf_commit(d, &m, 3, sf_run(2, 1), 1, 20, 6), TEST_OK);
	d->files_suspect = suspect;
	follower_init(&q, &f, s);
	st = snap_of(d);
	ASSERT_EQ(eng__follow_push_state(&q, d, &st, 9), 0);
	ASSERT_TRUE(eng__follow_idle(&q));
	*out = *d;
	out->hash = NULL;
	*model_seq = m.seq;
	eng__follow_close(&q);
	sf_model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* Files already at the snapshot's state (the entries before it brought
 * them there) stay trusted: no divergence, no image asked for. */
TEST(follow_state, already_there_keeps_the_files)
{
	struct seen s;
	struct eng_db d;
	uint64_t seq;

	ASSERT_EQ(own_state_pushed(false, &s, &d, &seq), TEST_OK);
	ASSERT_TRUE(!d.diverged);
	ASSERT_TRUE(!d.files_suspect);
	ASSERT_U64_EQ(d.applied, 9);
	ASSERT_U64_EQ(d.seq, seq);
	ASSERT_EQ(s.asked, 0);
	return TEST_OK;
}

/* Files already suspect are not trusted because their state matches:
 * the image is still asked for. */
TEST(follow_state, suspect_files_stay_suspect)
{
	struct seen s;
	struct eng_db d;
	uint64_t seq;

	ASSERT_EQ(own_state_pushed(true, &s, &d, &seq), TEST_OK);
	ASSERT_TRUE(d.diverged);
	ASSERT_TRUE(d.files_suspect);
	ASSERT_U64_EQ(d.seq, seq);
	ASSERT_EQ(s.asked, 1);
	return TEST_OK;
}

/* Files behind the snapshot's state are marked suspect and the leader's
 * image is asked for; the state is the snapshot's. */
TEST(follow_state, behind_asks_for_an_image)
{
	struct fx f;
	struct model ma = {.ps = 512}, mb = {.ps = 512};
	struct eng_follower q;
	struct seen s;
	struct eng_db_snap st;
	struct eng_db *a, *b;

	fx_init(&f);
	a = eng__db_get(&f.dbs, "a.db");
	b = eng__db_get(&f.dbs, "b.db");
	ASSERT_EQ(sf_commit(a, &ma, 3, sf_run(1, 3), 3, 10, 5), TEST_OK);
	ASSERT_EQ(sf_commit(b, &mb, 3, sf_run(1, 3), 3, 10, 5), TEST_OK);
	ASSERT_EQ(sf_commit(b, &mb, 3, sf_run(2, 1), 1, 20, 6), TEST_OK);
	st = snap_of(b); /* where a.db would be after its next entry */
	follower_init(&q, &f, &s);
	ASSERT_EQ(eng__follow_push_state(&q, a, &st, 9), 0);
	ASSERT_TRUE(a->diverged);
	ASSERT_TRUE(a->files_suspect);
	ASSERT_U64_EQ(a->seq, mb.seq);
	ASSERT_U64_EQ(a->cksum, b->cksum);
	ASSERT_EQ(s.asked, 1);
	eng__follow_close(&q);
	sf_model_free(&ma);
	sf_model_free(&mb);
	fx_fini(&f);
	return TEST_OK;
}

int main(int argc, char **argv)
{
	return fx_main(argc, argv, "follow");
}
