/* Unit tests for the WAL tracker (fs/wal.c): fs__wal_init over an
 * existing file, truncation, and writes while a commit is held (see
 * wal_fixture.h). */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/unit.h"
#include "wal_fixture.h"

/* ---- init, truncation, holds ---- */

/* fs__wal_init on a file with committed frames, an unfinished transaction
 * and trailing garbage finds exactly the committed frames. */
TEST(wal_init, committed_frames_and_garbage)
{
	struct capture c;
	struct replay r = {.fd = -1};
	struct fs_wal w2;
	uint8_t junk[3000];
	struct stat st;
	size_t i, upto = 0;
	unsigned spills = 0;

	/* Stop in the middle of the spill capture's second transaction. */
	ASSERT_EQ(wf_load_capture("spill", &c), TEST_OK);
	for (i = 0; i < c.n && spills < 40; i++)
		if (c.recs[i].kind == 'W' && c.recs[i].len == 24)
			spills++;
	upto = i;
	wf_free_capture(&c);
	ASSERT_EQ(wf_replay_prefix("spill", upto, &r, &c), TEST_OK);
	ASSERT_TRUE(fs__wal_frames(&r.w) > 0);
	for (i = 0; i < sizeof junk; i++)
		junk[i] = (uint8_t)(i * 13 + 5);
	ASSERT_EQ(fstat(r.fd, &st), 0);
	ASSERT_EQ(wf_put_bytes(r.fd, junk, sizeof junk, (uint64_t)st.st_size),
		  0);
	ASSERT_EQ(fs__wal_init(&w2, r.fd), 0);
	ASSERT_U64_EQ(fs__wal_frames(&w2), fs__wal_frames(&r.w));
	ASSERT_U64_EQ(fs__wal_frames(&w2), wf_ref_scan(r.fd));
	fs__wal_close(&w2);
	wf_replay_free(&r);
	wf_free_capture(&c);
	return TEST_OK;
}

/* A tracker started by fs__wal_init mid-session picks up the following
 * transactions as a tracker that saw everything does. */
TEST(wal_init, continues_session)
{
	struct capture c;
	struct replay r = {.fd = -1, .check_scan = true};
	size_t upto, n0;

	/* Stop halfway, then start a new tracker on the file. */
	ASSERT_EQ(wf_load_capture("restart", &c), TEST_OK);
	upto = c.n / 2;
	wf_free_capture(&c);
	ASSERT_EQ(wf_replay_prefix("restart", upto, &r, &c), TEST_OK);
	n0 = r.ntxn;
	ASSERT_TRUE(n0 > 0 && n0 < (size_t)c.commits);
	fs__wal_close(&r.w);
	ASSERT_EQ(fs__wal_init(&r.w, r.fd), 0);
	ASSERT_U64_EQ(fs__wal_frames(&r.w), wf_ref_scan(r.fd));
	ASSERT_EQ(wf_feed_range(&r, upto + 1, c.n - 1), TEST_OK);
	ASSERT_EQ(wf_count_matches(&c, r.ntxn, r.st.noops), TEST_OK);
	ASSERT_EQ(wf_shadow_matches(&r), TEST_OK);
	wf_replay_free(&r);
	wf_free_capture(&c);
	return TEST_OK;
}

/* fs__wal_init on an empty file or one without a WAL header finds no
 * frames and succeeds (SQLite treats both as an empty WAL). */
TEST(wal_init, empty_or_not_wal)
{
	struct fs_wal w;
	uint8_t junk[4096];
	int fd = wf_temp_fd();

	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ(fs__wal_init(&w, fd), 0);
	ASSERT_EQ(fs__wal_frames(&w), 0);
	ASSERT_TRUE(!w.have_hdr);
	fs__wal_close(&w);
	memset(junk, 0xab, sizeof junk);
	ASSERT_EQ(wf_put_bytes(fd, junk, sizeof junk, 0), 0);
	ASSERT_EQ(fs__wal_init(&w, fd), 0);
	ASSERT_EQ(fs__wal_frames(&w), 0);
	ASSERT_TRUE(!w.have_hdr);
	fs__wal_close(&w);
	close(fd);
	return TEST_OK;
}

/* Truncation to 0 forgets the header and every frame: frames need a new
 * header first. */
TEST(wal_truncate, to_zero)
{
	struct capture c;
	struct replay r = {.fd = -1};
	struct eng_txn *t = NULL;
	uint8_t h[32], fh[24] = {0, 0, 0, 1};

	ASSERT_EQ(wf_replay_prefix("autocommit_full", 30, &r, &c), TEST_OK);
	ASSERT_TRUE(fs__wal_frames(&r.w) > 0);
	ASSERT_EQ(ftruncate(r.fd, 0), 0);
	fs__wal_truncated(&r.w, 0);
	ASSERT_EQ(fs__wal_frames(&r.w), 0);
	ASSERT_EQ(fs__wal_write(&r.w, fh, 24, 32, DB_NAME, &t), -EINVAL);
	wf_synth_header(h, c.page_size, 99);
	ASSERT_EQ(fs__wal_write(&r.w, h, 32, 0, DB_NAME, &t), FS_WAL_PASS);
	ASSERT_EQ(wf_put_bytes(r.fd, h, 32, 0), 0);
	ASSERT_EQ(fs__wal_write(&r.w, fh, 24, 32, DB_NAME, &t), FS_WAL_PASS);
	ASSERT_NULL(t);
	wf_replay_free(&r);
	wf_free_capture(&c);
	return TEST_OK;
}

/* Truncation into the open transaction's validated frames makes them be
 * validated again: the transaction commits only once rewritten. */
TEST(wal_truncate, into_open_txn)
{
	uint8_t h[32], fh[24], page[1024];
	uint32_t s[2];
	struct fs_wal w;
	struct eng_txn *t = NULL;
	int fd = wf_temp_fd(), k;

	wf_synth_header(h, 1024, 7);
	s[0] = qf_get_be32(h + 24);
	s[1] = qf_get_be32(h + 28);
	ASSERT_EQ(fs__wal_init(&w, fd), 0);
	ASSERT_EQ(fs__wal_write(&w, h, 32, 0, DB_NAME, &t), FS_WAL_PASS);
	ASSERT_EQ(wf_put_bytes(fd, h, 32, 0), 0);
	for (k = 1; k <= 2; k++) {
		uint64_t off = 32 + (uint64_t)(k - 1) * 1048;

		wf_fill_page(page, 1024, (uint32_t)k);
		wf_synth_frame(fh, h, (uint32_t)k, 0, page, 1024, s);
		ASSERT_EQ(fs__wal_write(&w, fh, 24, off, DB_NAME, &t),
			  FS_WAL_PASS);
		ASSERT_EQ(wf_put_bytes(fd, fh, 24, off), 0);
		ASSERT_EQ(fs__wal_write(&w, page, 1024, off + 24, DB_NAME, &t),
			  FS_WAL_PASS);
		ASSERT_EQ(wf_put_bytes(fd, page, 1024, off + 24), 0);
	}
	ASSERT_EQ(w.valid, 2);
	ASSERT_EQ(ftruncate(fd, 32 + 1048 + 100), 0);
	fs__wal_truncated(&w, 32 + 1048 + 100);
	ASSERT_EQ(w.valid, 1);
	fs__wal_close(&w);
	close(fd);
	return TEST_OK;
}

/* A write while a commit is held is answered -EBUSY and changes
 * nothing. */
TEST(wal_hold, write_while_held)
{
	struct capture c;
	struct replay r = {.fd = -1};
	struct eng_txn *t = NULL;
	size_t i;
	int rv = FS_WAL_PASS;

	ASSERT_EQ(wf_load_capture("autocommit_full", &c), TEST_OK);
	r.fd = wf_temp_fd();
	ASSERT_EQ(fs__wal_init(&r.w, r.fd), 0);
	for (i = 0; i < c.n && rv != FS_WAL_COMMIT; i++) {
		const struct rec *rec = &c.recs[i];

		if (rec->kind != 'W')
			continue;
		rv = fs__wal_write(&r.w, rec->data, rec->len, rec->off,
				   DB_NAME, &t);
		if (rv == FS_WAL_PASS)
			ASSERT_EQ(wf_put_bytes(r.fd, rec->data, rec->len,
					       rec->off),
				  0);
	}
	ASSERT_EQ(rv, FS_WAL_COMMIT);
	eng_txn_free(t);
	t = NULL;
	ASSERT_EQ(fs__wal_write(&r.w, c.recs[i].data, c.recs[i].len,
				c.recs[i].off, DB_NAME, &t),
		  -EBUSY);
	ASSERT_NULL(t);
	fs__wal_committed(&r.w);
	ASSERT_TRUE(fs__wal_frames(&r.w) > 0);
	wf_replay_free(&r);
	wf_free_capture(&c);
	return TEST_OK;
}

/* ---- a WAL may start over only once checkpointed ---- */

/* A WAL of frames for pages 1, 2, 2 (the last a commit of 2 pages) and a
 * database file: fs__wal_in_db says whether the file holds the last image
 * of each page. */
TEST(wal_in_db, last_images_must_be_in_the_file)
{
	enum { PS = 512 };
	uint8_t h[32], fh[24], p1[PS], p2a[PS], p2b[PS];
	uint32_t s[2];
	uint64_t off = 32;
	struct fs_wal w;
	int wal = wf_temp_fd(), db = wf_temp_fd();
	const struct {
		uint32_t pgno, nt;
		const uint8_t *page;
	} fr[3] = {{1, 0, p1}, {2, 0, p2a}, {2, 2, p2b}};
	int i;

	wf_fill_page(p1, PS, 1);
	wf_fill_page(p2a, PS, 2);
	wf_fill_page(p2b, PS, 3);
	wf_synth_header(h, PS, 7);
	s[0] = qf_get_be32(h + 24);
	s[1] = qf_get_be32(h + 28);
	ASSERT_EQ(wf_put_bytes(wal, h, 32, 0), 0);
	for (i = 0; i < 3; i++, off += 24 + PS) {
		wf_synth_frame(fh, h, fr[i].pgno, fr[i].nt, fr[i].page, PS, s);
		ASSERT_EQ(wf_put_bytes(wal, fh, 24, off), 0);
		ASSERT_EQ(wf_put_bytes(wal, fr[i].page, PS, off + 24), 0);
	}
	ASSERT_EQ(fs__wal_init(&w, wal), 0);
	ASSERT_U64_EQ(w.committed, 3);
	/* Not checkpointed: the file is empty. */
	ASSERT_EQ(fs__wal_in_db(&w, db), 0);
	/* Page 2's older image is not enough. */
	ASSERT_EQ(wf_put_bytes(db, p1, PS, 0), 0);
	ASSERT_EQ(wf_put_bytes(db, p2a, PS, PS), 0);
	ASSERT_EQ(fs__wal_in_db(&w, db), 0);
	/* Checkpointed. */
	ASSERT_EQ(wf_put_bytes(db, p2b, PS, PS), 0);
	ASSERT_EQ(fs__wal_in_db(&w, db), 1);
	fs__wal_close(&w);
	close(wal);
	close(db);
	return TEST_OK;
}
