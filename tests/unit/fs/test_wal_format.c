/* Unit tests for the WAL tracker (fs/wal.c): the WAL checksum, and bytes
 * that are not a WAL or would change committed frames (see
 * wal_fixture.h). */
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../../lib/unit.h"
#include "wal_fixture.h"

/* ---- checksum ---- */

/* The header checksum of a WAL header SQLite wrote matches its stored
 * checksum. */
TEST(wal_checksum, sqlite_header)
{
	static const uint32_t zero[2] = {0, 0};
	struct capture c;
	uint32_t ck[2];

	ASSERT_EQ(wf_load_capture("autocommit_full", &c), TEST_OK);
	ASSERT_EQ(c.recs[0].off, 0);
	ASSERT_EQ(c.recs[0].len, 32);
	qf_wal_checksum(false, c.recs[0].data, 24, zero, ck);
	ASSERT_U64_EQ(ck[0], qf_get_be32(c.recs[0].data + 24));
	ASSERT_U64_EQ(ck[1], qf_get_be32(c.recs[0].data + 28));
	wf_free_capture(&c);
	return TEST_OK;
}

/* Frame 1's checksum continues from the header's over its first 8 header
 * bytes and its page, as in the frame SQLite wrote. */
TEST(wal_checksum, sqlite_first_frame)
{
	struct capture c;
	const struct rec *h, *fh = NULL, *pg = NULL;
	uint32_t ck[2];
	size_t i;

	ASSERT_EQ(wf_load_capture("autocommit_full", &c), TEST_OK);
	h = &c.recs[0];
	for (i = 1; i < c.n; i++) {
		if (c.recs[i].kind == 'W' && c.recs[i].off == 32)
			fh = &c.recs[i];
		if (c.recs[i].kind == 'W' && c.recs[i].off == 56) {
			pg = &c.recs[i];
			break;
		}
	}
	ASSERT_NOT_NULL(fh);
	ASSERT_NOT_NULL(pg);
	ASSERT_EQ(pg->len, c.page_size);
	ck[0] = qf_get_be32(h->data + 24);
	ck[1] = qf_get_be32(h->data + 28);
	qf_wal_checksum(false, fh->data, 8, ck, ck);
	qf_wal_checksum(false, pg->data, pg->len, ck, ck);
	ASSERT_U64_EQ(ck[0], qf_get_be32(fh->data + 16));
	ASSERT_U64_EQ(ck[1], qf_get_be32(fh->data + 20));
	wf_free_capture(&c);
	return TEST_OK;
}

/* Big-endian word order gives a different checksum from little-endian. */
TEST(wal_checksum, byte_order_matters)
{
	static const uint32_t zero[2] = {0, 0};
	uint8_t p[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	uint32_t le[2], be[2], s[2] = {0, 0};

	qf_wal_checksum(false, p, 16, zero, le);
	qf_wal_checksum(true, p, 16, zero, be);
	wf_ref_cksum(true, p, 16, s);
	ASSERT_TRUE(le[0] != be[0] || le[1] != be[1]);
	ASSERT_U64_EQ(be[0], s[0]);
	ASSERT_U64_EQ(be[1], s[1]);
	return TEST_OK;
}

/* ---- bytes that are not a WAL ---- */

/* A database header written at offset 0 of the -wal is -EINVAL. */
TEST(wal_header, sqlite_db_header_rejected)
{
	struct fs_wal w;
	struct eng_txn *t = NULL;
	uint8_t buf[100] = "SQLite format 3";
	int fd = wf_temp_fd();

	ASSERT_EQ(fs__wal_init(&w, fd), 0);
	ASSERT_EQ(fs__wal_write(&w, buf, sizeof buf, 0, DB_NAME, &t), -EINVAL);
	ASSERT_EQ(fs__wal_write(&w, buf, 1, 0, DB_NAME, &t), -EINVAL);
	ASSERT_NULL(t);
	fs__wal_close(&w);
	close(fd);
	return TEST_OK;
}

/* A whole WAL header with a wrong checksum is -EINVAL. */
TEST(wal_header, bad_checksum_rejected)
{
	struct fs_wal w;
	struct eng_txn *t = NULL;
	uint8_t h[32];
	int fd = wf_temp_fd();

	wf_synth_header(h, 4096, 1);
	h[31] ^= 1;
	ASSERT_EQ(fs__wal_init(&w, fd), 0);
	ASSERT_EQ(fs__wal_write(&w, h, 32, 0, DB_NAME, &t), -EINVAL);
	h[31] ^= 1;
	ASSERT_EQ(fs__wal_write(&w, h, 32, 0, DB_NAME, &t), FS_WAL_PASS);
	fs__wal_close(&w);
	close(fd);
	return TEST_OK;
}

/* A header fragment whose version bytes are wrong is -EINVAL. */
TEST(wal_header, bad_version_fragment_rejected)
{
	struct fs_wal w;
	struct eng_txn *t = NULL;
	uint8_t h[32];
	int fd = wf_temp_fd();

	wf_synth_header(h, 4096, 1);
	h[6] = 0;
	ASSERT_EQ(fs__wal_init(&w, fd), 0);
	ASSERT_EQ(fs__wal_write(&w, h + 4, 4, 4, DB_NAME, &t), -EINVAL);
	ASSERT_EQ(fs__wal_write(&w, h, 4, 0, DB_NAME, &t), FS_WAL_PASS);
	fs__wal_close(&w);
	close(fd);
	return TEST_OK;
}

/* Frames written with no WAL header are -EINVAL. */
TEST(wal_header, frames_before_header_rejected)
{
	struct fs_wal w;
	struct eng_txn *t = NULL;
	uint8_t fh[24] = {0, 0, 0, 1};
	int fd = wf_temp_fd();

	ASSERT_EQ(fs__wal_init(&w, fd), 0);
	ASSERT_EQ(fs__wal_write(&w, fh, 24, 32, DB_NAME, &t), -EINVAL);
	fs__wal_close(&w);
	close(fd);
	return TEST_OK;
}

/* Changing a committed frame is FS_WAL_STALE (the writer's wal-index
 * misses it); rewriting it with the same bytes passes. */
TEST(wal_header, committed_frame_rewrite)
{
	struct capture c;
	struct replay r = {.fd = -1};
	struct eng_txn *t = NULL;
	uint8_t buf[24];

	ASSERT_EQ(wf_replay_prefix("autocommit_full", 30, &r, &c), TEST_OK);
	ASSERT_TRUE(fs__wal_frames(&r.w) >= 2);
	ASSERT_EQ(syscall(SYS_pread64, r.fd, buf, 24, 32 + c.page_size + 24),
		  24);
	ASSERT_EQ(fs__wal_write(&r.w, buf, 24, 32 + c.page_size + 24, DB_NAME,
				&t),
		  FS_WAL_PASS);
	buf[3] ^= 0x40;
	ASSERT_EQ(fs__wal_write(&r.w, buf, 24, 32 + c.page_size + 24, DB_NAME,
				&t),
		  FS_WAL_STALE);
	ASSERT_NULL(t);
	wf_replay_free(&r);
	wf_free_capture(&c);
	return TEST_OK;
}
