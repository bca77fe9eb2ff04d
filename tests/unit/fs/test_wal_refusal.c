/* Unit tests for the WAL tracker (fs/wal.c): a refused commit, the
 * sticky refusal after it and SQLite's retry (see wal_fixture.h). */
#include <stdlib.h>
#include <unistd.h>

#include "../../lib/unit.h"
#include "wal_fixture.h"

/* ---- refusal ---- */

/* Replay @name kernel-split up to its @nth COMMIT and refuse it; @r keeps
 * the tracker and file, *idx the record of the held piece. */
static int replay_to_refusal(const char *name, unsigned nth, struct replay *r,
			     struct capture *c, size_t *idx, uint64_t *zoff)
{
	size_t i;
	uint64_t zlen;

	ASSERT_EQ(wf_load_capture(name, c), TEST_OK);
	r->cap = c;
	r->fd = wf_temp_fd();
	ASSERT_TRUE(r->fd >= 0);
	ASSERT_EQ(fs__wal_init(&r->w, r->fd), 0);
	for (i = 0; i < c->n; i++) {
		const struct rec *rec = &c->recs[i];
		struct eng_txn *t = NULL;
		int rv;

		if (rec->kind == 'T') {
			ASSERT_EQ(ftruncate(r->fd, (off_t)rec->off), 0);
			fs__wal_truncated(&r->w, rec->off);
		}
		if (rec->kind != 'W')
			continue;
		rv = fs__wal_write(&r->w, rec->data, rec->len, rec->off,
				   DB_NAME, &t);
		ASSERT_TRUE(rv == FS_WAL_PASS || rv == FS_WAL_COMMIT);
		if (rv == FS_WAL_COMMIT && ++r->commits_seen == nth) {
			eng_txn_free(t);
			ASSERT_EQ(fs__wal_refused(&r->w, zoff, &zlen), 0);
			ASSERT_EQ(zlen, 24);
			*idx = i;
			return TEST_OK;
		}
		if (rv == FS_WAL_COMMIT) {
			eng_txn_free(t);
			fs__wal_committed(&r->w);
		}
		ASSERT_EQ(wf_put_bytes(r->fd, rec->data, rec->len, rec->off),
			  0);
	}
	ASSERT_TRUE(false); /* fewer commits than asked for */
	return TEST_FAIL;
}

/* After a refusal, the resent held write and writes elsewhere in the
 * transaction are refused. */
TEST(wal_refuse, sticky)
{
	struct capture c;
	struct replay r = {.fd = -1};
	struct eng_txn *t = NULL;
	const struct rec *held;
	uint64_t zoff, fsz;
	uint8_t junk[24] = {0};
	size_t idx;

	ASSERT_EQ(replay_to_refusal("autocommit_full", 5, &r, &c, &idx, &zoff),
		  TEST_OK);
	held = &c.recs[idx];
	fsz = c.page_size + 24;
	ASSERT_EQ(fs__wal_write(&r.w, held->data, held->len, held->off,
				DB_NAME, &t),
		  FS_WAL_REFUSE);
	ASSERT_EQ(fs__wal_write(&r.w, held->data + 1, held->len - 1,
				held->off + 1, DB_NAME, &t),
		  FS_WAL_REFUSE);
	ASSERT_EQ(fs__wal_write(&r.w, junk, sizeof junk, zoff + fsz, DB_NAME,
				&t),
		  FS_WAL_REFUSE);
	ASSERT_EQ(fs__wal_write(&r.w, junk, 8, zoff + 24, DB_NAME, &t),
		  FS_WAL_REFUSE);
	ASSERT_NULL(t);
	wf_replay_free(&r);
	wf_free_capture(&c);
	return TEST_OK;
}

/* A write at the header of frame committed+1 (SQLite's retry) ends the
 * refusal. */
TEST(wal_refuse, ends_at_first_frame_header)
{
	struct capture c;
	struct replay r = {.fd = -1};
	struct eng_txn *t = NULL;
	uint8_t hdr[24] = {0};
	uint64_t zoff;
	size_t idx;

	ASSERT_EQ(replay_to_refusal("autocommit_full", 5, &r, &c, &idx, &zoff),
		  TEST_OK);
	ASSERT_EQ(fs__wal_write(&r.w, hdr, 24, zoff, DB_NAME, &t),
		  FS_WAL_PASS);
	ASSERT_EQ(wf_put_bytes(r.fd, hdr, 24, zoff), 0);
	ASSERT_EQ(fs__wal_write(&r.w, hdr, 8, zoff + 24, DB_NAME, &t),
		  FS_WAL_PASS);
	ASSERT_NULL(t);
	wf_replay_free(&r);
	wf_free_capture(&c);
	return TEST_OK;
}

/* A write at offset 0 (a new WAL header) ends the refusal. */
TEST(wal_refuse, ends_at_offset_zero)
{
	struct capture c;
	struct replay r = {.fd = -1};
	struct eng_txn *t = NULL;
	uint8_t h[32];
	uint64_t zoff;
	size_t idx;

	ASSERT_EQ(replay_to_refusal("autocommit_full", 5, &r, &c, &idx, &zoff),
		  TEST_OK);
	wf_synth_header(h, c.page_size, 1234);
	ASSERT_EQ(fs__wal_write(&r.w, h, 32, 0, DB_NAME, &t), FS_WAL_PASS);
	ASSERT_EQ(fs__wal_frames(&r.w), 0);
	ASSERT_NULL(t);
	wf_replay_free(&r);
	wf_free_capture(&c);
	return TEST_OK;
}

/* A refusal zeroes the refused transaction's first frame header, the
 * range it reports, and nothing else. */
TEST(wal_refuse, zeroes_first_frame_header)
{
	struct capture c;
	struct replay r = {.fd = -1};
	uint8_t *got, *want;
	size_t i, idx, got_len, want_len;
	uint64_t zoff;
	int fd = wf_temp_fd();

	ASSERT_EQ(replay_to_refusal("autocommit_full", 5, &r, &c, &idx, &zoff),
		  TEST_OK);
	ASSERT_U64_EQ(zoff, 32 + fs__wal_frames(&r.w) * (c.page_size + 24));
	/* Expected: every write before the held one, then 24 zero bytes. */
	for (i = 0; i < idx; i++)
		if (c.recs[i].kind == 'W')
			ASSERT_EQ(wf_put_bytes(fd, c.recs[i].data,
					       c.recs[i].len, c.recs[i].off),
				  0);
	ASSERT_TRUE(wf_ref_scan(fd) == fs__wal_frames(&r.w));
	{
		static const uint8_t zero[24];

		ASSERT_EQ(wf_put_bytes(fd, zero, 24, zoff), 0);
	}
	{
		char a[64], b[64];

		snprintf(a, sizeof a, "/proc/self/fd/%d", r.fd);
		snprintf(b, sizeof b, "/proc/self/fd/%d", fd);
		got = wf_slurp(a, &got_len);
		want = wf_slurp(b, &want_len);
	}
	ASSERT_NOT_NULL(got);
	ASSERT_NOT_NULL(want);
	ASSERT_EQ(got_len, want_len);
	ASSERT_MEM_EQ(got, want, got_len);
	free(got);
	free(want);
	close(fd);
	wf_replay_free(&r);
	wf_free_capture(&c);
	return TEST_OK;
}

/* Refusing every third commit, each followed by SQLite's retry of the same
 * writes, still gives SQLite's transactions and database; the retry
 * assembles the refused transaction again. */
TEST(wal_refuse, retry_commits_same_txn)
{
	size_t i;

	for (i = 0; i < N_CAPTURES; i++) {
		struct capture c;
		struct replay r = {.fd = -1,
				   .split = SPLIT_KERNEL,
				   .check_scan = true,
				   .refuse_every = 3};

		ASSERT_EQ(wf_load_capture(wf_all_captures[i], &c), TEST_OK);
		ASSERT_EQ(wf_replay_run(&r, &c), TEST_OK);
		ASSERT_TRUE(r.refused > 0);
		ASSERT_EQ(wf_count_matches(&c, r.ntxn, r.st.noops), TEST_OK);
		ASSERT_EQ(wf_shadow_matches(&r), TEST_OK);
		wf_replay_free(&r);
		wf_free_capture(&c);
	}
	return TEST_OK;
}

/* A refused transaction whose bytes are all in the file anyway (the held
 * write applied behind the tracker's back) is not found by a recovery
 * scan or by fs__wal_init once the refusal zeroed its first header. */
TEST(wal_refuse, recovery_skips_refused)
{
	struct capture c;
	struct replay r = {.fd = -1};
	struct fs_wal w2;
	const struct rec *held;
	uint64_t committed;
	size_t i;

	ASSERT_EQ(wf_load_capture("spill", &c), TEST_OK);
	r.cap = &c;
	r.fd = wf_temp_fd();
	ASSERT_EQ(fs__wal_init(&r.w, r.fd), 0);
	for (i = 0; i < c.n; i++) {
		const struct rec *rec = &c.recs[i];
		struct eng_txn *t = NULL;
		int rv;

		if (rec->kind != 'W')
			continue;
		rv = fs__wal_write(&r.w, rec->data, rec->len, rec->off,
				   DB_NAME, &t);
		ASSERT_TRUE(rv == FS_WAL_PASS || rv == FS_WAL_COMMIT);
		eng_txn_free(t);
		if (rv == FS_WAL_COMMIT && ++r.commits_seen == 2)
			break;
		if (rv == FS_WAL_COMMIT)
			fs__wal_committed(&r.w);
		ASSERT_EQ(wf_put_bytes(r.fd, rec->data, rec->len, rec->off), 0);
	}
	ASSERT_TRUE(i < c.n);
	held = &c.recs[i];
	committed = fs__wal_frames(&r.w);
	ASSERT_EQ(wf_put_bytes(r.fd, held->data, held->len, held->off), 0);
	ASSERT_TRUE(wf_ref_scan(r.fd) > committed); /* it would come back */
	ASSERT_EQ(fs__wal_refused(&r.w, NULL, NULL), 0);
	ASSERT_U64_EQ(wf_ref_scan(r.fd), committed);
	ASSERT_EQ(fs__wal_init(&w2, r.fd), 0);
	ASSERT_U64_EQ(fs__wal_frames(&w2), committed);
	fs__wal_close(&w2);
	wf_replay_free(&r);
	wf_free_capture(&c);
	return TEST_OK;
}
