/* Unit tests for the WAL tracker (fs/wal.c): replays of real SQLite
 * sessions, whole and fragmented, give SQLite's transactions at the exact
 * commit points (see wal_fixture.h). */
#include "../../lib/unit.h"
#include "wal_fixture.h"

/* ---- replays of real sessions ---- */

/* Single-row autocommit transactions under synchronous=FULL (each commit
 * fsynced) give SQLite's transactions and final database. */
TEST(wal_replay, autocommit_full)
{
	struct capture c;
	struct replay r = {.fd = -1};

	ASSERT_EQ(wf_replay_checked("autocommit_full", &r, &c), TEST_OK);
	ASSERT_TRUE(r.st.syncs >= (unsigned)c.commits);
	wf_replay_free(&r);
	wf_free_capture(&c);
	return TEST_OK;
}

/* Autocommit transactions under synchronous=NORMAL (no commit fsync) give
 * SQLite's transactions and final database. */
TEST(wal_replay, autocommit_normal)
{
	struct capture c;
	struct replay r = {.fd = -1};

	ASSERT_EQ(wf_replay_checked("autocommit_normal", &r, &c), TEST_OK);
	ASSERT_TRUE(r.st.syncs < (unsigned)c.commits);
	wf_replay_free(&r);
	wf_free_capture(&c);
	return TEST_OK;
}

/* Cache spills with in-place page rewrites and the commit-time header
 * rewrite pass assemble into SQLite's transactions. */
TEST(wal_replay, spill_rewrites)
{
	struct capture c;
	struct replay r = {.fd = -1};

	ASSERT_EQ(wf_replay_checked("spill", &r, &c), TEST_OK);
	ASSERT_TRUE(r.st.data_only > 0);
	ASSERT_TRUE(r.st.hdr_rewrites > 0);
	wf_replay_free(&r);
	wf_free_capture(&c);
	return TEST_OK;
}

/* ROLLBACK TO over a spilled insert, with frame slots reused for other
 * pages, and a full ROLLBACK, assemble into SQLite's transactions. */
TEST(wal_replay, savepoint_slot_reuse)
{
	struct capture c;
	struct replay r = {.fd = -1};

	ASSERT_EQ(wf_replay_checked("savepoint", &r, &c), TEST_OK);
	ASSERT_TRUE(r.st.slot_reuse > 0);
	wf_replay_free(&r);
	wf_free_capture(&c);
	return TEST_OK;
}

/* ROLLBACK TO back to frame 0 after a TRUNCATE checkpoint, which rewrites
 * the WAL header mid-transaction, assembles into SQLite's transactions. */
TEST(wal_replay, rollback_to_frame_zero)
{
	struct capture c;
	struct replay r = {.fd = -1};

	ASSERT_EQ(wf_replay_checked("sp0", &r, &c), TEST_OK);
	ASSERT_TRUE(r.st.hdr_mid_txn >= 2);
	wf_replay_free(&r);
	wf_free_capture(&c);
	return TEST_OK;
}

/* A WAL restart at offset 0 with new salts, stale frames after it, gives
 * SQLite's transactions. */
TEST(wal_replay, restart_new_salts)
{
	struct capture c;
	struct replay r = {.fd = -1};

	ASSERT_EQ(wf_replay_checked("restart", &r, &c), TEST_OK);
	ASSERT_TRUE(r.st.restarts >= 2);
	wf_replay_free(&r);
	wf_free_capture(&c);
	return TEST_OK;
}

/* A VACUUM that shrinks the database under cache pressure gives
 * transactions whose db_pages truncate the shadow to SQLite's size. */
TEST(wal_replay, vacuum_shrinks)
{
	struct capture c;
	struct replay r = {.fd = -1};

	ASSERT_EQ(wf_replay_checked("vacuum", &r, &c), TEST_OK);
	ASSERT_TRUE(r.st.shrinks > 0);
	wf_replay_free(&r);
	wf_free_capture(&c);
	return TEST_OK;
}

/* With psow=0 each commit frame is repeated as padding; each padding
 * frame comes as one more transaction that changes no page. */
TEST(wal_replay, psow0_padding)
{
	struct capture c;
	struct replay r = {.fd = -1};

	ASSERT_EQ(wf_replay_checked("psow0", &r, &c), TEST_OK);
	ASSERT_TRUE(r.st.noops > 0);
	wf_replay_free(&r);
	wf_free_capture(&c);
	return TEST_OK;
}

/* Applying the held write before fs__wal_committed (fs.c's order) gives
 * the same transactions as after it. */
TEST(wal_replay, apply_before_committed)
{
	struct replay t = {.apply_first = true, .check_scan = true};

	ASSERT_EQ(wf_replay_all_same(&t), TEST_OK);
	return TEST_OK;
}

/* ---- fragmentation ---- */

/* Writes split at every 4096-byte file offset, as the kernel fragments
 * them, give the same transactions. */
TEST(wal_split, kernel_pages)
{
	struct replay t = {.split = SPLIT_KERNEL};

	ASSERT_EQ(wf_replay_all_same(&t), TEST_OK);
	return TEST_OK;
}

/* Writes split at random points give the same transactions. */
TEST(wal_split, random_points)
{
	uint64_t seeds[] = {1, 0xdeadbeef, 77777};
	size_t i;

	for (i = 0; i < 3; i++) {
		struct replay t = {.split = SPLIT_RANDOM,
				   .rng = seeds[i],
				   .max_piece = i == 0 ? 40 : 700};

		ASSERT_EQ(wf_replay_all_same(&t), TEST_OK);
	}
	return TEST_OK;
}

/* Writes fed one byte at a time (header fragments included) give the same
 * transactions. */
TEST(wal_split, single_bytes)
{
	const char *names[] = {"autocommit_normal", "sp0"};
	size_t i, j;

	for (i = 0; i < 2; i++) {
		struct capture c;
		struct replay base = {.fd = -1};
		struct replay r = {.fd = -1, .split = SPLIT_BYTE};

		ASSERT_EQ(wf_load_capture(names[i], &c), TEST_OK);
		ASSERT_EQ(wf_replay_run(&base, &c), TEST_OK);
		ASSERT_EQ(wf_replay_run(&r, &c), TEST_OK);
		ASSERT_EQ(r.ntxn, base.ntxn);
		for (j = 0; j < r.ntxn; j++)
			ASSERT_U64_EQ(r.digests[j], base.digests[j]);
		ASSERT_EQ(wf_shadow_matches(&r), TEST_OK);
		wf_replay_free(&base);
		wf_replay_free(&r);
		wf_free_capture(&c);
	}
	return TEST_OK;
}

/* COMMIT comes from exactly the first write after which SQLite's recovery
 * would publish the transaction: after every applied write, kernel-split
 * or not, a recovery scan of the file finds fs__wal_frames() frames. */
TEST(wal_commit, exact_point)
{
	struct replay a = {.check_scan = true};
	struct replay b = {.split = SPLIT_KERNEL, .check_scan = true};
	struct replay c = {.split = SPLIT_RANDOM,
			   .check_scan = true,
			   .max_piece = 300,
			   .rng = 5};

	ASSERT_EQ(wf_replay_all_same(&a), TEST_OK);
	ASSERT_EQ(wf_replay_all_same(&b), TEST_OK);
	ASSERT_EQ(wf_replay_all_same(&c), TEST_OK);
	return TEST_OK;
}

/* Tracker reads stay linear: replaying every capture, unsplit or
 * kernel-split, preads at most 4 bytes per byte written. */
TEST(wal_commit, linear_reads)
{
	size_t i, k;

	for (k = 0; k < 2; k++) {
		for (i = 0; i < N_CAPTURES; i++) {
			struct capture c;
			struct replay r = {.fd = -1,
					   .split = k ? SPLIT_KERNEL
						      : SPLIT_NONE};
			uint64_t written = 0;
			size_t j;

			ASSERT_EQ(wf_load_capture(wf_all_captures[i], &c),
				  TEST_OK);
			for (j = 0; j < c.n; j++)
				written += c.recs[j].len;
			wf_pread_bytes = 0;
			ASSERT_EQ(wf_replay_run(&r, &c), TEST_OK);
			if (wf_pread_bytes > 4 * written)
				fprintf(stderr, "%s: read %llu for %llu\n",
					c.name,
					(unsigned long long)wf_pread_bytes,
					(unsigned long long)written);
			ASSERT_TRUE(wf_pread_bytes <= 4 * written);
			wf_replay_free(&r);
			wf_free_capture(&c);
		}
	}
	return TEST_OK;
}

int main(int argc, char **argv)
{
	return unit_main(argc, argv);
}
