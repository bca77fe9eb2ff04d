/* Rollback-journal commit detection (fs/journal.c) for the DELETE,
 * TRUNCATE and PERSIST modes, on journal bytes captured from SQLite. */
#include <stdlib.h>
#include <unistd.h>

#include "fs/journal.h"
#include "tests/lib/unit.h"

/* First 28 bytes of a live journal header as SQLite 3.40 writes it at
 * step 7 of sqlite-io.md §7: magic, record count, nonce, initial page
 * count, sector size, page size. */
static const uint8_t live_header[28] = {
	0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7, /* magic */
	0x00, 0x00, 0x00, 0x01,				/* records */
	0x5e, 0x21, 0x9a, 0x3c,				/* nonce */
	0x00, 0x00, 0x00, 0x02,				/* pages */
	0x00, 0x00, 0x10, 0x00,				/* sector */
	0x00, 0x00, 0x10, 0x00,				/* page size */
};

/* The first header write of a transaction (magic and count zeroed, nonce
 * set) is not a PERSIST commit. */
TEST(journal, header_write_is_not_commit)
{
	uint8_t buf[512];

	memset(buf, 0, sizeof buf);
	memcpy(buf + 12, live_header + 12, 16);
	ASSERT_TRUE(!fs__journal_is_persist_commit(buf, sizeof buf, 0));
	return TEST_OK;
}

/* PERSIST mode's commit point is 28 zero bytes at offset 0. */
TEST(journal, persist_commit_detected)
{
	uint8_t zeros[28] = {0};

	ASSERT_TRUE(fs__journal_is_persist_commit(zeros, sizeof zeros, 0));
	return TEST_OK;
}

/* Zero bytes elsewhere in the journal (a page image) are not a commit. */
TEST(journal, zeros_at_other_offsets_ignored)
{
	uint8_t zeros[4096] = {0};

	ASSERT_TRUE(!fs__journal_is_persist_commit(zeros, sizeof zeros, 512));
	ASSERT_TRUE(!fs__journal_is_persist_commit(zeros, 27, 0));
	return TEST_OK;
}

/* The three modes end a transaction as SQLite does (the commit points the
 * daemon holds): run each through a real sqlite3 session and check what
 * is left of the journal: none, an empty file, or a header whose first 28
 * bytes are the PERSIST commit's zeros. */
TEST(journal, real_sqlite_modes)
{
	static const char *modes[] = {"delete", "truncate", "persist"};
	char dir[] = "/tmp/qf_journal_XXXXXX", cmd[512], path[256];
	uint8_t head[28];
	size_t i;
	FILE *f;

	ASSERT_NOT_NULL(mkdtemp(dir));
	for (i = 0; i < 3; i++) {
		snprintf(cmd, sizeof cmd,
			 "sqlite3 %s/%s.db 'PRAGMA journal_mode=%s; CREATE TABLE "
			 "t(x); INSERT INTO t VALUES(1);' >/dev/null",
			 dir, modes[i], modes[i]);
		ASSERT_EQ(system(cmd), 0);
		snprintf(path, sizeof path, "%s/%s.db-journal", dir, modes[i]);
		f = fopen(path, "rb");
		if (i == 0) {
			ASSERT_NULL(f); /* DELETE: unlinked */
			continue;
		}
		ASSERT_NOT_NULL(f);
		memset(head, 0xff, sizeof head);
		size_t n = fread(head, 1, sizeof head, f);
		fclose(f);
		if (i == 1)
			ASSERT_EQ(n, 0); /* TRUNCATE: empty */
		else
			ASSERT_TRUE(n == 28 &&
				    fs__journal_is_persist_commit(head, n, 0));
		unlink(path);
		snprintf(path, sizeof path, "%s/%s.db", dir, modes[i]);
		unlink(path);
	}
	snprintf(path, sizeof path, "%s/delete.db", dir);
	unlink(path);
	ASSERT_EQ(rmdir(dir), 0);
	return TEST_OK;
}

/* Dirty pages are recorded once each and sorted ascending. */
TEST(dirty, add_dedup_sort)
{
	struct fs_dirty d;

	fs__dirty_init(&d);
	ASSERT_EQ(fs__dirty_add(&d, 5, 3), 0);
	ASSERT_EQ(fs__dirty_add(&d, 1, 1), 0);
	ASSERT_EQ(fs__dirty_add(&d, 6, 1), 0);
	ASSERT_EQ(fs__dirty_add(&d, 100000, 1), 0);
	ASSERT_EQ(d.n, 5);
	fs__dirty_sort(&d);
	ASSERT_EQ(d.pgnos[0], 1);
	ASSERT_EQ(d.pgnos[1], 5);
	ASSERT_EQ(d.pgnos[3], 7);
	ASSERT_EQ(d.pgnos[4], 100000);
	fs__dirty_clear(&d);
	ASSERT_EQ(d.n, 0);
	ASSERT_EQ(fs__dirty_add(&d, 5, 1), 0);
	ASSERT_EQ(d.n, 1);
	fs__dirty_close(&d);
	return TEST_OK;
}

int main(int argc, char **argv)
{
	return unit_main(argc, argv);
}
