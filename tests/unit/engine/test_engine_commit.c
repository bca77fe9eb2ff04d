/* Unit tests for the running engine (engine/engine.c): commits, their
 * callbacks and state headers, one database from two threads, a failed
 * local write, and injected refusals (see engine_fixture.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "engine_fixture.h"
#include "tests/lib/unit.h"

/* A committed transaction's callback runs once with status 0, and the
 * callee's 0 persists the state header; a restart leaves the backing file
 * alone and the next commit continues the sequence. */
TEST(engine_commit, header_persists_across_restart)
{
	struct image img[2];
	struct fx f;
	struct tc *t;
	struct hdr h1, h2;
	struct stat st1, st2;
	char db[512];
	size_t len;
	uint8_t *b;

	ef_init(&f);
	ef_make_images(f.dir, "a", img, 2);
	ASSERT_EQ(ef_first_start(&f), 0);
	ef_path(&f, db, sizeof db, "db", "a.db");
	ASSERT_EQ(ef_commit(&f, ef_txn_diff("a.db", NULL, &img[0]), 0, &t), 0);
	ASSERT_EQ(ef_sync_loop(&f), 0);
	h1 = ef_read_hdr(&f, "a.db"); /* written by the engine, not by a stop */
	ASSERT_TRUE(h1.ok);
	ASSERT_EQ(h1.seq, 1);
	ASSERT_TRUE(h1.applied > 0);
	ASSERT_EQ(h1.page_size, PS);
	ASSERT_EQ(h1.db_pages, img[0].pages);
	ASSERT_U64_EQ(h1.cksum, ef_image_cksum(&img[0]));
	ASSERT_EQ(ef_check_file(db, &img[0]), 0);
	ASSERT_EQ(stat(db, &st1), 0);
	ef_stop(&f);
	ASSERT_EQ(t->calls, 1);
	ASSERT_TRUE(t->txn_gone);
	ASSERT_EQ(t->wal_preset, 0);
	ef_tc_free(t);

	ASSERT_EQ(ef_start(&f), 0);
	b = ef_read_file(db, &len);
	ASSERT_NOT_NULL(b);
	ASSERT_EQ(len, (size_t)img[0].pages * PS);
	ASSERT_MEM_EQ(b, img[0].bytes, len);
	free(b);
	ASSERT_EQ(stat(db, &st2), 0);
	ASSERT_EQ(st2.st_ino, st1.st_ino);
	ASSERT_EQ(st2.st_mtim.tv_sec, st1.st_mtim.tv_sec);
	ASSERT_EQ(st2.st_mtim.tv_nsec, st1.st_mtim.tv_nsec);
	ASSERT_EQ(ef_commit_ok(&f, ef_txn_diff("a.db", &img[0], &img[1])), 0);
	ASSERT_EQ(ef_sync_loop(&f), 0);
	h2 = ef_read_hdr(&f, "a.db");
	ASSERT_EQ(h2.seq, 2);
	ASSERT_TRUE(h2.applied > h1.applied);
	ASSERT_U64_EQ(h2.cksum, ef_image_cksum(&img[1]));
	ASSERT_EQ(ef_check_file(db, &img[1]), 0);
	ef_fini(&f);
	ef_free_images(img, 2);
	return TEST_OK;
}

/* A transaction equal to the committed state completes with status 0
 * without a raft entry: the next real commit takes the very next index. */
TEST(engine_commit, noop_takes_no_entry)
{
	struct image img[2];
	struct fx f;
	struct tc *t;
	struct hdr h1, h2;

	ef_init(&f);
	ef_make_images(f.dir, "a", img, 2);
	ASSERT_EQ(ef_first_start(&f), 0);
	ASSERT_EQ(ef_commit_ok(&f, ef_txn_diff("n.db", NULL, &img[0])), 0);
	ASSERT_EQ(ef_sync_loop(&f), 0);
	h1 = ef_read_hdr(&f, "n.db");
	ASSERT_EQ(h1.seq, 1);
	/* Every page, same content, same size. */
	ASSERT_EQ(ef_commit(&f, ef_txn_diff("n.db", NULL, &img[0]), 0, &t), 0);
	ASSERT_EQ(ef_commit_ok(&f, ef_txn_diff("n.db", &img[0], &img[1])), 0);
	ASSERT_EQ(ef_sync_loop(&f), 0);
	h2 = ef_read_hdr(&f, "n.db");
	ASSERT_EQ(h2.seq, 2);
	ASSERT_EQ(h2.applied, h1.applied + 1);
	ef_stop(&f);
	ASSERT_EQ(t->calls, 1);
	ef_tc_free(t);
	ef_fini(&f);
	ef_free_images(img, 2);
	return TEST_OK;
}

struct racer {
	struct tc *t;
	pthread_barrier_t *start;
	int rv;
};

static void *racer_main(void *arg)
{
	struct racer *r = arg;

	pthread_barrier_wait(r->start);
	r->rv = ef_tc_submit(r->t);
	return NULL;
}

/* Two commits of one database submitted at once from two threads both
 * succeed, one after the other: the second callback sees the first's
 * header (seq 1) and the final state is the second's (seq 2). */
TEST(engine_commit, same_db_fifo_across_threads)
{
	struct image x[2], y[2];
	const struct image *im[2];
	struct racer r[2];
	pthread_barrier_t start;
	pthread_t th[2];
	struct tc *first, *second;
	struct fx f;
	struct hdr h;
	char db[512];
	int i;

	ef_init(&f);
	ef_make_images(f.dir, "x", x, 2);
	ef_make_images(f.dir, "y", y, 2);
	im[0] = &x[1];
	im[1] = &y[1];
	ASSERT_EQ(ef_first_start(&f), 0);
	pthread_barrier_init(&start, NULL, 2);
	for (i = 0; i < 2; i++) {
		r[i].t = ef_tc_new(&f, ef_txn_diff("f.db", NULL, im[i]));
		r[i].start = &start;
		pthread_create(&th[i], NULL, racer_main, &r[i]);
	}
	for (i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		ASSERT_EQ(r[i].rv, 0);
	}
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(ef_tc_wait(r[i].t), 0);
		ASSERT_EQ(r[i].t->status, 0);
	}
	ASSERT_EQ(ef_sync_loop(&f), 0);
	i = r[0].t->order < r[1].t->order ? 0 : 1;
	first = r[i].t;
	second = r[1 - i].t;
	ASSERT_TRUE(!first->seen.ok); /* nothing committed before it */
	ASSERT_TRUE(second->seen.ok);
	ASSERT_EQ(second->seen.seq, 1);
	ASSERT_U64_EQ(second->seen.cksum, ef_image_cksum(im[i]));
	h = ef_read_hdr(&f, "f.db");
	ASSERT_EQ(h.seq, 2);
	ASSERT_EQ(h.applied, second->seen.applied + 1);
	ASSERT_U64_EQ(h.cksum, ef_image_cksum(im[1 - i]));
	ef_path(&f, db, sizeof db, "db", "f.db");
	ASSERT_EQ(ef_check_file(db, im[1 - i]), 0);
	ef_stop(&f);
	ASSERT_EQ(first->calls, 1);
	ASSERT_EQ(second->calls, 1);
	ef_tc_free(first);
	ef_tc_free(second);
	pthread_barrier_destroy(&start);
	ef_fini(&f);
	ef_free_images(x, 2);
	ef_free_images(y, 2);
	return TEST_OK;
}

/* After a failed local write the database refuses further commits with
 * QF_EDIVERGED until the node restarts. */
TEST(engine_commit, refused_after_failed_write)
{
	struct image img[2];
	struct fx f;
	struct tc *t;

	ef_init(&f);
	ef_make_images(f.dir, "a", img, 2);
	ASSERT_EQ(ef_first_start(&f), 0);
	ASSERT_EQ(ef_commit(&f, ef_txn_diff("d.db", NULL, &img[0]), -EIO, &t),
		  0);
	ef_tc_free(t);
	ASSERT_EQ(ef_commit(&f, ef_txn_diff("d.db", &img[0], &img[1]), 0, &t),
		  QF_EDIVERGED);
	ef_tc_free(t);
	ef_fini(&f);
	ef_free_images(img, 2);
	return TEST_OK;
}

/* With QF_FAULT_REFUSE_EVERY=2 every second commit fails and leaves the
 * state as it was: no sequence number, no raft entry. */
TEST(engine_fault, refuse_every_second)
{
	struct image img[3];
	struct tc *t[4];
	struct fx f;
	struct hdr h;
	char db[512];
	int k;

	ef_init(&f);
	ef_make_images(f.dir, "a", img, 3);
	setenv("QF_FAULT_REFUSE_EVERY", "2", 1);
	ASSERT_EQ(ef_first_start(&f), 0);
	ASSERT_EQ(ef_commit(&f, ef_txn_diff("q.db", NULL, &img[0]), 0, &t[0]),
		  0);
	ASSERT_EQ(
		ef_commit(&f, ef_txn_diff("q.db", &img[0], &img[1]), 0, &t[1]),
		QF_ERAFT);
	/* The same change again: the refused one left no trace. */
	ASSERT_EQ(
		ef_commit(&f, ef_txn_diff("q.db", &img[0], &img[1]), 0, &t[2]),
		0);
	ASSERT_EQ(
		ef_commit(&f, ef_txn_diff("q.db", &img[1], &img[2]), 0, &t[3]),
		QF_ERAFT);
	ef_stop(&f);
	ASSERT_EQ(t[1]->seen.seq, 1);
	ASSERT_EQ(t[2]->seen.seq, 1);
	ASSERT_EQ(t[3]->seen.seq, 2);
	h = ef_read_hdr(&f, "q.db");
	ASSERT_EQ(h.seq, 2);
	ASSERT_EQ(h.applied, t[2]->seen.applied + 1);
	ASSERT_U64_EQ(h.cksum, ef_image_cksum(&img[1]));
	ef_path(&f, db, sizeof db, "db", "q.db");
	ASSERT_EQ(ef_check_file(db, &img[1]), 0);
	for (k = 0; k < 4; k++) {
		ASSERT_EQ(t[k]->calls, 1);
		ef_tc_free(t[k]);
	}
	ef_fini(&f);
	ef_free_images(img, 3);
	return TEST_OK;
}

int main(int argc, char **argv)
{
	return ef_main(argc, argv);
}
