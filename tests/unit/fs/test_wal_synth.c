/* Unit tests for the WAL tracker (fs/wal.c): synthetic WALs of shapes
 * SQLite does not produce on demand, for incremental validation and its
 * cost (see wal_fixture.h). */
#include <string.h>
#include <unistd.h>

#include "../../lib/unit.h"
#include "wal_fixture.h"

/* ---- synthetic shapes ---- */

/* A page rewritten and then restored in a long open transaction does not
 * make the tracker read the frames after it again, and the commit still
 * carries every page. */
TEST(wal_synth, restored_page_not_quadratic)
{
	enum { PS = 1024, N = 300 };
	uint8_t h[32], fh[24], page[PS], other[PS];
	uint32_t s[2];
	struct fs_wal w;
	struct eng_txn *t = NULL;
	int fd = wf_temp_fd(), k, round;
	uint64_t off2 = 32 + (PS + 24) + 24;

	wf_synth_header(h, PS, 3);
	s[0] = qf_get_be32(h + 24);
	s[1] = qf_get_be32(h + 28);
	ASSERT_EQ(fs__wal_init(&w, fd), 0);
	ASSERT_EQ(fs__wal_write(&w, h, 32, 0, DB_NAME, &t), FS_WAL_PASS);
	ASSERT_EQ(wf_put_bytes(fd, h, 32, 0), 0);
	for (k = 1; k <= N; k++) {
		uint64_t off = 32 + (uint64_t)(k - 1) * (PS + 24);

		wf_fill_page(page, PS, (uint32_t)k);
		wf_synth_frame(fh, h, (uint32_t)k, k == N ? N : 0, page, PS, s);
		if (k == N)
			break;
		ASSERT_EQ(fs__wal_write(&w, fh, 24, off, DB_NAME, &t),
			  FS_WAL_PASS);
		ASSERT_EQ(wf_put_bytes(fd, fh, 24, off), 0);
		ASSERT_EQ(fs__wal_write(&w, page, PS, off + 24, DB_NAME, &t),
			  FS_WAL_PASS);
		ASSERT_EQ(wf_put_bytes(fd, page, PS, off + 24), 0);
	}
	ASSERT_EQ(w.valid, N - 1);
	wf_fill_page(page, PS, 2);
	wf_fill_page(other, PS, 9999);
	wf_pread_bytes = 0;
	for (round = 0; round < 50; round++) {
		ASSERT_EQ(fs__wal_write(&w, other, PS, off2, DB_NAME, &t),
			  FS_WAL_PASS);
		ASSERT_EQ(wf_put_bytes(fd, other, PS, off2), 0);
		ASSERT_EQ(w.valid, 1);
		ASSERT_EQ(fs__wal_write(&w, page, PS, off2, DB_NAME, &t),
			  FS_WAL_PASS);
		ASSERT_EQ(wf_put_bytes(fd, page, PS, off2), 0);
		ASSERT_EQ(w.valid, N - 1);
	}
	ASSERT_TRUE(wf_pread_bytes <= 50 * 2 * 64);
	/* The commit frame: all N pages. */
	wf_fill_page(page, PS, N);
	{
		uint64_t off = 32 + (uint64_t)(N - 1) * (PS + 24);

		ASSERT_EQ(fs__wal_write(&w, fh, 24, off, DB_NAME, &t),
			  FS_WAL_PASS);
		ASSERT_EQ(wf_put_bytes(fd, fh, 24, off), 0);
		ASSERT_EQ(fs__wal_write(&w, page, PS, off + 24, DB_NAME, &t),
			  FS_WAL_COMMIT);
	}
	ASSERT_NOT_NULL(t);
	ASSERT_EQ(t->n, N);
	ASSERT_EQ(t->db_pages, N);
	for (k = 0; k < N; k++) {
		ASSERT_EQ(t->pgnos[k], k + 1);
		wf_fill_page(page, PS, (uint32_t)k + 1);
		ASSERT_MEM_EQ(t->pages + (size_t)k * PS, page, PS);
	}
	eng_txn_free(t);
	fs__wal_committed(&w);
	ASSERT_EQ(fs__wal_frames(&w), N);
	fs__wal_close(&w);
	close(fd);
	return TEST_OK;
}

/* A synthetic WAL being built: header, chain and file. */
struct synth {
	uint32_t ps;
	uint8_t h[32];
	uint32_t s[2];
	struct fs_wal w;
	int fd;
};

static int synth_start(struct synth *y, uint32_t ps)
{
	struct eng_txn *t = NULL;

	y->ps = ps;
	y->fd = wf_temp_fd();
	ASSERT_TRUE(y->fd >= 0);
	wf_synth_header(y->h, ps, 0x1234 + ps);
	y->s[0] = qf_get_be32(y->h + 24);
	y->s[1] = qf_get_be32(y->h + 28);
	ASSERT_EQ(fs__wal_init(&y->w, y->fd), 0);
	ASSERT_EQ(fs__wal_write(&y->w, y->h, 32, 0, DB_NAME, &t), FS_WAL_PASS);
	ASSERT_EQ(wf_put_bytes(y->fd, y->h, 32, 0), 0);
	return TEST_OK;
}

static uint64_t synth_off(const struct synth *y, uint32_t k)
{
	return 32 + (uint64_t)(k - 1) * (y->ps + 24);
}

/* Write @n bytes at @off through the tracker; expect @want; apply unless
 * it is a COMMIT. */
static int synth_put(struct synth *y, const void *p, size_t n, uint64_t off,
		     int want)
{
	struct eng_txn *t = NULL;

	ASSERT_EQ(fs__wal_write(&y->w, p, n, off, DB_NAME, &t), want);
	eng_txn_free(t);
	if (want == FS_WAL_PASS)
		ASSERT_EQ(wf_put_bytes(y->fd, p, n, off), 0);
	return TEST_OK;
}

static void synth_end(struct synth *y)
{
	fs__wal_close(&y->w);
	close(y->fd);
}

/* Build frame @k (page seeded @seed, commit size @nt) in @f (ps + 24
 * bytes), continuing the chain. */
static void synth_build(struct synth *y, uint8_t *f, uint32_t k, uint32_t nt,
			uint32_t seed)
{
	wf_fill_page(f + 24, y->ps, seed);
	wf_synth_frame(f, y->h, k, nt, f + 24, y->ps, y->s);
}

/* A frame whose checksum is right but whose salts are not the header's is
 * not valid. */
TEST(wal_synth, salts_must_match)
{
	struct synth y;
	uint8_t f[512 + 24];

	ASSERT_EQ(synth_start(&y, 512), TEST_OK);
	synth_build(&y, f, 1, 1, 1);
	f[8] ^= 1; /* the checksum does not cover the salts */
	ASSERT_EQ(synth_put(&y, f, sizeof f, 32, FS_WAL_PASS), TEST_OK);
	ASSERT_EQ(fs__wal_frames(&y.w), 0);
	ASSERT_U64_EQ(wf_ref_scan(y.fd), 0);
	f[8] ^= 1;
	ASSERT_EQ(synth_put(&y, f, 24, 32, FS_WAL_COMMIT), TEST_OK);
	synth_end(&y);
	return TEST_OK;
}

/* A write past the end that leaves a zero-filled hole completing the
 * frontier frame (its page all zeros) commits it. */
TEST(wal_synth, hole_completes_frame)
{
	struct synth y;
	uint8_t f[512 + 24], zero[512] = {0}, b = 0;

	ASSERT_EQ(synth_start(&y, 512), TEST_OK);
	memset(f + 24, 0, 512);
	wf_synth_frame(f, y.h, 1, 1, zero, 512, y.s);
	ASSERT_EQ(synth_put(&y, f, 24, 32, FS_WAL_PASS), TEST_OK);
	ASSERT_EQ(synth_put(&y, &b, 1, synth_off(&y, 3), FS_WAL_COMMIT),
		  TEST_OK);
	synth_end(&y);
	return TEST_OK;
}

/* Writes beyond a frontier frame that failed validation do not make the
 * tracker read that frame again. */
TEST(wal_synth, stuck_frame_not_reread)
{
	struct synth y;
	uint8_t f[4096 + 24];
	uint32_t k;

	ASSERT_EQ(synth_start(&y, 4096), TEST_OK);
	synth_build(&y, f, 1, 0, 1);
	f[30] ^= 1; /* frame 1: salts right, page wrong */
	ASSERT_EQ(synth_put(&y, f, sizeof f, 32, FS_WAL_PASS), TEST_OK);
	wf_pread_bytes = 0;
	for (k = 2; k < 100; k++) {
		synth_build(&y, f, k, 0, k);
		ASSERT_EQ(synth_put(&y, f, 24, synth_off(&y, k), FS_WAL_PASS),
			  TEST_OK);
		ASSERT_EQ(synth_put(&y, f + 24, 4096, synth_off(&y, k) + 24,
				    FS_WAL_PASS),
			  TEST_OK);
	}
	ASSERT_TRUE(wf_pread_bytes < 4096);
	synth_end(&y);
	return TEST_OK;
}

/* One write over two validated frames, the first unchanged and the second
 * broken, leaves the second invalid: a later commit frame does not
 * commit. */
TEST(wal_synth, spanning_write_forgets_touched_frames)
{
	struct synth y;
	uint8_t f[4][512 + 24];
	uint32_t k;

	ASSERT_EQ(synth_start(&y, 512), TEST_OK);
	for (k = 1; k <= 4; k++)
		synth_build(&y, f[k - 1], k, k == 4 ? 4 : 0, k);
	for (k = 1; k <= 3; k++)
		ASSERT_EQ(synth_put(&y, f[k - 1], sizeof f[0],
				    synth_off(&y, k), FS_WAL_PASS),
			  TEST_OK);
	ASSERT_EQ(y.w.valid, 3);
	{
		uint8_t two[2 * (512 + 24)];

		memcpy(two, f[1], sizeof f[1]);
		memcpy(two + sizeof f[1], f[2], sizeof f[2]);
		two[sizeof two - 1] ^= 1;
		ASSERT_EQ(synth_put(&y, two, sizeof two, synth_off(&y, 2),
				    FS_WAL_PASS),
			  TEST_OK);
	}
	ASSERT_EQ(synth_put(&y, f[3], sizeof f[3], synth_off(&y, 4),
			    FS_WAL_PASS),
		  TEST_OK);
	ASSERT_U64_EQ(wf_ref_scan(y.fd), 0);
	ASSERT_EQ(synth_put(&y, f[2], sizeof f[2], synth_off(&y, 3),
			    FS_WAL_COMMIT),
		  TEST_OK);
	synth_end(&y);
	return TEST_OK;
}

/* After a frame is broken, an unchanged rewrite of an earlier frame does
 * not re-adopt the broken one: a later commit frame does not commit. */
TEST(wal_synth, earlier_rewrite_keeps_broken_frame)
{
	struct synth y;
	uint8_t f[5][512 + 24], bad[512];
	uint32_t k;

	ASSERT_EQ(synth_start(&y, 512), TEST_OK);
	for (k = 1; k <= 5; k++)
		synth_build(&y, f[k - 1], k, k == 5 ? 5 : 0, k);
	for (k = 1; k <= 4; k++)
		ASSERT_EQ(synth_put(&y, f[k - 1], sizeof f[0],
				    synth_off(&y, k), FS_WAL_PASS),
			  TEST_OK);
	memcpy(bad, f[2] + 24, 512);
	bad[0] ^= 1;
	ASSERT_EQ(synth_put(&y, bad, 512, synth_off(&y, 3) + 24, FS_WAL_PASS),
		  TEST_OK);
	ASSERT_EQ(synth_put(&y, f[0] + 24, 512, synth_off(&y, 1) + 24,
			    FS_WAL_PASS),
		  TEST_OK);
	ASSERT_EQ(synth_put(&y, f[4], sizeof f[4], synth_off(&y, 5),
			    FS_WAL_PASS),
		  TEST_OK);
	ASSERT_U64_EQ(wf_ref_scan(y.fd), 0);
	ASSERT_EQ(synth_put(&y, f[2] + 24, 512, synth_off(&y, 3) + 24,
			    FS_WAL_COMMIT),
		  TEST_OK);
	synth_end(&y);
	return TEST_OK;
}

/* Five frames (5 commits), 1..4 written and valid, frame 2's page then
 * broken: validation is back at frame 1 and frames 3..4 are remembered. */
static int synth_five_broken_two(struct synth *y, uint8_t f[5][512 + 24])
{
	uint8_t bad[512];
	uint32_t k;

	ASSERT_EQ(synth_start(y, 512), TEST_OK);
	for (k = 1; k <= 5; k++)
		synth_build(y, f[k - 1], k, k == 5 ? 5 : 0, k);
	for (k = 1; k <= 4; k++)
		ASSERT_EQ(synth_put(y, f[k - 1], 512 + 24, synth_off(y, k),
				    FS_WAL_PASS),
			  TEST_OK);
	memcpy(bad, f[1] + 24, 512);
	bad[7] ^= 1;
	ASSERT_EQ(synth_put(y, bad, 512, synth_off(y, 2) + 24, FS_WAL_PASS),
		  TEST_OK);
	ASSERT_EQ(y->w.valid, 1);
	return TEST_OK;
}

/* One write restoring the first invalid frame and breaking the next does
 * not re-adopt the broken one: a later commit frame does not commit. */
TEST(wal_synth, frontier_spanning_write_forgets_next)
{
	struct synth y;
	uint8_t f[5][512 + 24], two[2 * (512 + 24)];

	ASSERT_EQ(synth_five_broken_two(&y, f), TEST_OK);
	memcpy(two, f[1], sizeof f[1]);
	memcpy(two + sizeof f[1], f[2], sizeof f[2]);
	two[sizeof two - 1] ^= 1;
	ASSERT_EQ(synth_put(&y, two, sizeof two, synth_off(&y, 2),
			    FS_WAL_PASS),
		  TEST_OK);
	ASSERT_EQ(synth_put(&y, f[4], sizeof f[4], synth_off(&y, 5),
			    FS_WAL_PASS),
		  TEST_OK);
	ASSERT_U64_EQ(wf_ref_scan(y.fd), 0);
	ASSERT_EQ(synth_put(&y, f[2] + 24, 512, synth_off(&y, 3) + 24,
			    FS_WAL_COMMIT),
		  TEST_OK);
	synth_end(&y);
	return TEST_OK;
}

/* A remembered frame past the first invalid one, broken and then the
 * first one restored, is not re-adopted: a later commit frame does not
 * commit. */
TEST(wal_synth, remembered_frame_broken_later)
{
	struct synth y;
	uint8_t f[5][512 + 24], bad[512];

	ASSERT_EQ(synth_five_broken_two(&y, f), TEST_OK);
	memcpy(bad, f[2] + 24, 512);
	bad[100] ^= 1;
	ASSERT_EQ(synth_put(&y, bad, 512, synth_off(&y, 3) + 24, FS_WAL_PASS),
		  TEST_OK);
	ASSERT_EQ(synth_put(&y, f[1] + 24, 512, synth_off(&y, 2) + 24,
			    FS_WAL_PASS),
		  TEST_OK);
	ASSERT_EQ(y.w.valid, 2);
	ASSERT_EQ(synth_put(&y, f[4], sizeof f[4], synth_off(&y, 5),
			    FS_WAL_PASS),
		  TEST_OK);
	ASSERT_U64_EQ(wf_ref_scan(y.fd), 0);
	ASSERT_EQ(synth_put(&y, f[2] + 24, 512, synth_off(&y, 3) + 24,
			    FS_WAL_COMMIT),
		  TEST_OK);
	synth_end(&y);
	return TEST_OK;
}

/* A truncation that cuts the held transaction makes fs__wal_committed
 * rescan the file instead of trusting the held frames. */
TEST(wal_synth, truncate_while_held)
{
	enum { PS = 512 };
	uint8_t h[32], fh[24], page[PS];
	uint32_t s[2];
	struct fs_wal w;
	struct eng_txn *t = NULL;
	int fd = wf_temp_fd();

	wf_synth_header(h, PS, 11);
	s[0] = qf_get_be32(h + 24);
	s[1] = qf_get_be32(h + 28);
	wf_fill_page(page, PS, 1);
	wf_synth_frame(fh, h, 1, 1, page, PS, s);
	ASSERT_EQ(fs__wal_init(&w, fd), 0);
	ASSERT_EQ(fs__wal_write(&w, h, 32, 0, DB_NAME, &t), FS_WAL_PASS);
	ASSERT_EQ(wf_put_bytes(fd, h, 32, 0), 0);
	ASSERT_EQ(fs__wal_write(&w, fh, 24, 32, DB_NAME, &t), FS_WAL_PASS);
	ASSERT_EQ(wf_put_bytes(fd, fh, 24, 32), 0);
	ASSERT_EQ(fs__wal_write(&w, page, PS, 56, DB_NAME, &t),
		  FS_WAL_COMMIT);
	eng_txn_free(t);
	ASSERT_EQ(ftruncate(fd, 32), 0);
	fs__wal_truncated(&w, 32);
	ASSERT_EQ(wf_put_bytes(fd, page, PS, 56), 0); /* the held write lands */
	fs__wal_committed(&w);
	ASSERT_EQ(fs__wal_frames(&w), 0); /* frame 1's header is gone */
	ASSERT_U64_EQ(wf_ref_scan(fd), 0);
	fs__wal_close(&w);
	close(fd);
	return TEST_OK;
}
