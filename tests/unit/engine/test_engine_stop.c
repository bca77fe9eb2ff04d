/* Unit tests for the running engine (engine/engine.c): eng_stop while
 * commits are in flight (see engine_fixture.h). */
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "engine_fixture.h"
#include "tests/lib/unit.h"

/* A request that only counts its callback and frees itself. */
static int probes_done;

static int probe_cb(struct eng_commit *c, int status, uint64_t *wal_frames)
{
	(void)status;
	(void)wal_frames;
	pthread_mutex_lock(&ef_mu);
	probes_done++;
	pthread_mutex_unlock(&ef_mu);
	free(c);
	return 0;
}

static void *stop_main(void *arg)
{
	eng_stop(arg);
	return NULL;
}

/* With the loop thread held in a callback (so @e stays allocated), stop
 * the engine from another thread and submit probes until eng_submit
 * refuses.  Returns the refusal; *accepted counts probes taken before. */
static int stop_while_held(struct eng *e, pthread_t *th, int *accepted)
{
	struct eng_commit *p;
	int i, rv = 0;

	*accepted = 0;
	if (pthread_create(th, NULL, stop_main, e) != 0)
		ef_die("pthread_create");
	/* eng_stop gives no sign that it began; poll for its effect. */
	for (i = 0; i < 10000 && rv == 0; i++) {
		p = calloc(1, sizeof *p);
		if (p == NULL)
			ef_die("calloc");
		p->txn = eng_txn_new("probe", 0, 0);
		p->type = ENG_ENTRY_TXN;
		p->cb = probe_cb;
		rv = eng_submit(e, p);
		if (rv != 0) {
			eng_txn_free(p->txn);
			free(p);
			break;
		}
		(*accepted)++;
		nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
	}
	return rv;
}

/* Once eng_stop has begun, eng_submit refuses with QF_ESHUTDOWN, and every
 * commit it accepted before still gets exactly one callback. */
TEST(engine_stop, submit_refused_while_stopping)
{
	struct image img[1];
	struct fx f;
	struct tc *a;
	pthread_t th;
	int accepted;

	ef_init(&f);
	ef_make_images(f.dir, "a", img, 1);
	ASSERT_EQ(ef_first_start(&f), 0);
	a = ef_tc_new(&f, ef_txn_diff("a.db", NULL, &img[0]));
	a->block = true;
	ASSERT_EQ(ef_tc_submit(a), 0);
	ASSERT_EQ(ef_tc_wait(a), 0);
	ASSERT_EQ(stop_while_held(f.e, &th, &accepted), QF_ESHUTDOWN);
	ef_tc_release(a);
	pthread_join(th, NULL);
	f.e = NULL;
	ASSERT_EQ(a->calls, 1);
	ASSERT_EQ(a->status, 0);
	ASSERT_EQ(probes_done, accepted);
	ef_tc_free(a);
	ef_fini(&f);
	ef_free_images(img, 1);
	return TEST_OK;
}

/* A commit still queued when eng_stop runs gets exactly one callback, and
 * its status tells the truth: 0 (stop lets commits already in raft finish)
 * means it is there after a restart; an error other than
 * QF_ELEADERSHIPLOST (fate unknown) means it is not; and if it shows up,
 * state and file agree. */
TEST(engine_stop, queued_commit_fails_once)
{
	struct image img[1], other[1];
	struct fx f;
	struct tc *a, *b;
	struct hdr h;
	struct stat st;
	pthread_t th;
	char db[512];
	int accepted;

	ef_init(&f);
	ef_make_images(f.dir, "a", img, 1);
	ef_make_images(f.dir, "b", other, 1);
	ASSERT_EQ(ef_first_start(&f), 0);
	a = ef_tc_new(&f, ef_txn_diff("a.db", NULL, &img[0]));
	a->block = true;
	b = ef_tc_new(&f, ef_txn_diff("b.db", NULL, &other[0]));
	ASSERT_EQ(ef_tc_submit(a), 0);
	ASSERT_EQ(ef_tc_wait(a), 0);
	ASSERT_EQ(ef_tc_submit(b), 0);
	ASSERT_EQ(stop_while_held(f.e, &th, &accepted), QF_ESHUTDOWN);
	ef_tc_release(a);
	pthread_join(th, NULL);
	f.e = NULL;
	ASSERT_EQ(b->calls, 1);

	ASSERT_EQ(ef_start(&f), 0);
	h = ef_read_hdr(&f, "b.db");
	ef_path(&f, db, sizeof db, "db", "b.db");
	if (h.ok && h.seq == 1) { /* the entry made it into the log */
		ASSERT_TRUE(b->status == 0 || b->status == QF_ELEADERSHIPLOST);
		ASSERT_EQ(ef_check_file(db, &other[0]), 0);
	} else {
		ASSERT_TRUE(b->status < 0);
		ASSERT_TRUE(stat(db, &st) != 0 || st.st_size == 0);
	}
	ef_tc_free(a);
	ef_tc_free(b);
	ef_fini(&f);
	ef_free_images(img, 1);
	ef_free_images(other, 1);
	return TEST_OK;
}
