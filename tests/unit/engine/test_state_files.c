/* Unit tests for per-database state (engine/state.c): writing, settling,
 * re-hashing and resetting backing files, and removing orphans (see
 * fixture.h and state_fixture.h). */
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>

#include "engine/state.h"
#include "fixture.h"
#include "state_fixture.h"
#include "tests/lib/unit.h"

/* ---- real SQLite databases ---- */

/* Rows of table t in the database at @path, -1 if it cannot be read. */
static long long sql_count(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long n = -1;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) ==
		    SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, NULL) ==
		    SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* ---- writing backing files ---- */

/* write_backing writes the carried pages in place, keeps the others and
 * truncates the file to db_pages. */
TEST(state_write, backing_writes_and_truncates)
{
	static const uint32_t pg[] = {2, 4};
	struct fx f;
	struct eng_txn *t;
	uint8_t old[6 * 512], want[4 * 512];
	size_t len;
	uint8_t *got;

	fx_init(&f);
	fill_page(old, sizeof old, 1);
	fx_write_file(fx_path("%s/a.db", f.db), old, sizeof old);
	t = sf_txn_of("a.db", 512, 4, pg, 2, 40);
	memcpy(want, old, sizeof want);
	memcpy(want + 512, t->pages, 512);
	memcpy(want + 3 * 512, t->pages + 512, 512);
	ASSERT_EQ(eng__db_write_backing(&f.dbs, t), 0);
	got = fx_read_file(fx_path("%s/a.db", f.db), &len);
	ASSERT_NOT_NULL(got);
	ASSERT_EQ(len, sizeof want);
	ASSERT_MEM_EQ(got, want, sizeof want);
	free(got);
	eng_txn_free(t);
	fx_fini(&f);
	return TEST_OK;
}

/* write_backing creates a database in a subdirectory, parents included,
 * and extends it to db_pages. */
TEST(state_write, backing_creates_subdirectories)
{
	static const uint32_t pg[] = {1, 3};
	struct fx f;
	struct eng_txn *t;
	uint8_t want[4 * 512] = {0};
	size_t len;
	uint8_t *got;

	fx_init(&f);
	t = sf_txn_of("x/y/z.db", 512, 4, pg, 2, 5);
	memcpy(want, t->pages, 512);
	memcpy(want + 2 * 512, t->pages + 512, 512);
	ASSERT_EQ(eng__db_write_backing(&f.dbs, t), 0);
	got = fx_read_file(fx_path("%s/x/y/z.db", f.db), &len);
	ASSERT_NOT_NULL(got);
	ASSERT_EQ(len, sizeof want);
	ASSERT_MEM_EQ(got, want, sizeof want);
	free(got);
	eng_txn_free(t);
	fx_fini(&f);
	return TEST_OK;
}

/* write_image replaces a longer file with exactly the image, creating
 * parent directories. */
TEST(state_write, image_replaces_file)
{
	struct fx f;
	uint8_t old[8 * 512], img[3 * 1024];
	size_t len;
	uint8_t *got;

	fx_init(&f);
	fill_page(old, sizeof old, 1);
	fill_page(img, sizeof img, 2);
	fx_write_file(fx_path("%s/s/a.db", f.db), old, sizeof old);
	ASSERT_EQ(eng__db_write_image(&f.dbs, "s/a.db", img, 1024, 3), 0);
	got = fx_read_file(fx_path("%s/s/a.db", f.db), &len);
	ASSERT_NOT_NULL(got);
	ASSERT_EQ(len, sizeof img);
	ASSERT_MEM_EQ(got, img, sizeof img);
	free(got);
	ASSERT_EQ(eng__db_write_image(&f.dbs, "n/e/w.db", img, 1024, 2), 0);
	ASSERT_EQ(fx_file_size(fx_path("%s/n/e/w.db", f.db)), 2 * 1024);
	fx_fini(&f);
	return TEST_OK;
}

/* ---- settle ---- */

/* settle folds a WAL's frames into the database file, which then holds
 * every row on its own. */
TEST(state_settle, folds_wal)
{
	struct fx f;
	sqlite3 *conn;
	char src[512], path[512];

	fx_init(&f);
	snprintf(src, sizeof src, "%s/src/w.db", f.dir);
	conn = make_wal_db(src, 50);
	snprintf(path, sizeof path, "%s/w.db", f.db);
	fx_copy_file(src, path);
	fx_copy_file(fx_path("%s-wal", src), fx_path("%s-wal", path));
	sqlite3_close(conn);
	/* Precondition: the database file alone lacks the rows. */
	fx_copy_file(path, fx_path("%s/alone1.db", f.dir));
	ASSERT_TRUE(sql_count(fx_path("%s/alone1.db", f.dir)) != 50);

	ASSERT_EQ(eng__db_settle(&f.dbs, "w.db"), 0);
	ASSERT_TRUE(fx_file_size(fx_path("%s-wal", path)) <= 0);
	fx_copy_file(path, fx_path("%s/alone2.db", f.dir));
	ASSERT_EQ(sql_count(fx_path("%s/alone2.db", f.dir)), 50);
	fx_fini(&f);
	return TEST_OK;
}

/* settle rolls back a hot journal: the database file is again exactly
 * what it was before the interrupted transaction. */
TEST(state_settle, rolls_back_hot_journal)
{
	struct fx f;
	sqlite3 *conn;
	char src[512], path[512];
	uint8_t *orig, *mid, *got;
	size_t orig_len, mid_len, len;

	fx_init(&f);
	snprintf(src, sizeof src, "%s/src/h.db", f.dir);
	make_db(src, 1024, 60, 0);
	orig = fx_read_file(src, &orig_len);
	ASSERT_NOT_NULL(orig);
	conn = sql_open(src);
	/* A tiny cache makes SQLite write pages into the database file
	 * before the commit; copying now leaves a hot journal. */
	sql_exec(conn, "PRAGMA cache_size=1; BEGIN; "
		       "UPDATE t SET b = printf('%0400d', a + 99);");
	sql_insert(conn, 1000, 60, 0);
	snprintf(path, sizeof path, "%s/h.db", f.db);
	fx_copy_file(src, path);
	fx_copy_file(fx_path("%s-journal", src), fx_path("%s-journal", path));
	sql_exec(conn, "ROLLBACK;");
	sqlite3_close(conn);
	mid = fx_read_file(path, &mid_len);
	ASSERT_NOT_NULL(mid);
	ASSERT_TRUE(mid_len != orig_len || memcmp(mid, orig, orig_len) != 0);
	ASSERT_TRUE(fx_file_size(fx_path("%s-journal", path)) > 0);

	ASSERT_EQ(eng__db_settle(&f.dbs, "h.db"), 0);
	got = fx_read_file(path, &len);
	ASSERT_NOT_NULL(got);
	ASSERT_EQ(len, orig_len);
	ASSERT_MEM_EQ(got, orig, len);
	ASSERT_TRUE(fx_file_size(fx_path("%s-journal", path)) <= 0);
	free(orig);
	free(mid);
	free(got);
	fx_fini(&f);
	return TEST_OK;
}

/* settle of a database without a backing file succeeds and creates
 * nothing. */
TEST(state_settle, missing_file)
{
	struct fx f;

	fx_init(&f);
	ASSERT_EQ(eng__db_settle(&f.dbs, "none.db"), 0);
	ASSERT_EQ(fx_file_size(fx_path("%s/none.db", f.db)), -1);
	fx_fini(&f);
	return TEST_OK;
}

/* settle of a file SQLite cannot read fails with -EIO. */
TEST(state_settle, not_sqlite)
{
	struct fx f;
	uint8_t junk[4096];

	fx_init(&f);
	fill_page(junk, sizeof junk, 3);
	fx_write_file(fx_path("%s/j.db", f.db), junk, sizeof junk);
	ASSERT_EQ(eng__db_settle(&f.dbs, "j.db"), -EIO);
	fx_fini(&f);
	return TEST_OK;
}

/* ---- rehash ---- */

/* rehash of a file matching the state returns 1 and recomputes every
 * page hash from the file. */
TEST(state_rehash, matching_file)
{
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(sf_commit(d, &m, 4, sf_run(1, 4), 4, 1, 1), 0);
	fx_write_file(fx_path("%s/a.db", f.db), m.img, 4 * 512);
	memset(d->hash, 0, 4 * sizeof *d->hash);
	ASSERT_EQ(eng__db_rehash(&f.dbs, d), 1);
	ASSERT_EQ(sf_hashes_match_file(d, fx_path("%s/a.db", f.db)), TEST_OK);
	sf_model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* rehash of a file with one changed byte returns 0. */
TEST(state_rehash, changed_byte)
{
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(sf_commit(d, &m, 4, sf_run(1, 4), 4, 1, 1), 0);
	m.img[3 * 512 + 100] ^= 1;
	fx_write_file(fx_path("%s/a.db", f.db), m.img, 4 * 512);
	ASSERT_EQ(eng__db_rehash(&f.dbs, d), 0);
	sf_model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* rehash of a file shorter than the state's size returns 0. */
TEST(state_rehash, short_file)
{
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(sf_commit(d, &m, 4, sf_run(1, 4), 4, 1, 1), 0);
	fx_write_file(fx_path("%s/a.db", f.db), m.img, 3 * 512 + 100);
	ASSERT_EQ(eng__db_rehash(&f.dbs, d), 0);
	sf_model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* A missing backing file matches an empty state only. */
TEST(state_rehash, missing_file)
{
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;

	fx_init(&f);
	ASSERT_EQ(eng__db_rehash(&f.dbs, eng__db_get(&f.dbs, "e.db")), 1);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(sf_commit(d, &m, 2, sf_run(1, 2), 2, 1, 1), 0);
	ASSERT_EQ(eng__db_rehash(&f.dbs, d), 0);
	sf_model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* ---- reset ---- */

/* reset empties the state, deletes the backing file and its companions,
 * and persists the empty state. */
TEST(state_reset, empties_and_deletes)
{
	static const char *sfx[] = {"", "-wal", "-shm", "-journal"};
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;
	size_t i;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "s/a.db");
	ASSERT_EQ(sf_commit(d, &m, 3, sf_run(1, 3), 3, 1, 9), 0);
	d->wal_frames = 2;
	ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
	for (i = 0; i < 4; i++)
		fx_write_file(fx_path("%s/s/a.db%s", f.db, sfx[i]), "x", 1);
	ASSERT_EQ(eng__db_reset(&f.dbs, d), 0);
	ASSERT_EQ(sf_is_empty(d), TEST_OK);
	for (i = 0; i < 4; i++)
		ASSERT_EQ(fx_file_size(fx_path("%s/s/a.db%s", f.db, sfx[i])),
			  -1);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
	ASSERT_EQ(sf_is_empty(eng__db_find(&f.dbs, "s/a.db")), TEST_OK);
	sf_model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* ---- orphans ---- */

/* A non-empty database file without state is removed with its
 * companions. */
TEST(state_orphans, removes_stateless)
{
	static const char *sfx[] = {"", "-wal", "-shm", "-journal"};
	struct fx f;
	size_t i;

	fx_init(&f);
	for (i = 0; i < 4; i++)
		fx_write_file(fx_path("%s/o.db%s", f.db, sfx[i]), "data", 4);
	ASSERT_EQ(eng__dbs_remove_orphans(&f.dbs), 0);
	for (i = 0; i < 4; i++)
		ASSERT_EQ(fx_file_size(fx_path("%s/o.db%s", f.db, sfx[i])), -1);
	fx_fini(&f);
	return TEST_OK;
}

/* Stateless non-empty database files in subdirectories are removed too. */
TEST(state_orphans, removes_in_subdirectory)
{
	struct fx f;

	fx_init(&f);
	fx_write_file(fx_path("%s/a/o.db", f.db), "data", 4);
	fx_write_file(fx_path("%s/a/o.db-wal", f.db), "data", 4);
	fx_write_file(fx_path("%s/a/b/c/o2.db", f.db), "data", 4);
	ASSERT_EQ(eng__dbs_remove_orphans(&f.dbs), 0);
	ASSERT_EQ(fx_file_size(fx_path("%s/a/o.db", f.db)), -1);
	ASSERT_EQ(fx_file_size(fx_path("%s/a/o.db-wal", f.db)), -1);
	ASSERT_EQ(fx_file_size(fx_path("%s/a/b/c/o2.db", f.db)), -1);
	fx_fini(&f);
	return TEST_OK;
}

/* An empty database file without state (a database opened but never
 * written) is kept. */
TEST(state_orphans, keeps_empty)
{
	struct fx f;

	fx_init(&f);
	fx_write_file(fx_path("%s/e.db", f.db), "", 0);
	fx_write_file(fx_path("%s/s/e.db", f.db), "", 0);
	ASSERT_EQ(eng__dbs_remove_orphans(&f.dbs), 0);
	ASSERT_EQ(fx_file_size(fx_path("%s/e.db", f.db)), 0);
	ASSERT_EQ(fx_file_size(fx_path("%s/s/e.db", f.db)), 0);
	fx_fini(&f);
	return TEST_OK;
}

/* Database files that have state, here or in subdirectories, are kept
 * with their companions. */
TEST(state_orphans, keeps_stated)
{
	struct fx f;

	fx_init(&f);
	ASSERT_NOT_NULL(eng__db_get(&f.dbs, "k.db"));
	ASSERT_NOT_NULL(eng__db_get(&f.dbs, "s/t/k2.db"));
	fx_write_file(fx_path("%s/k.db", f.db), "data", 4);
	fx_write_file(fx_path("%s/k.db-wal", f.db), "data", 4);
	fx_write_file(fx_path("%s/s/t/k2.db", f.db), "data", 4);
	fx_write_file(fx_path("%s/s/t/o.db", f.db), "data", 4);
	ASSERT_EQ(eng__dbs_remove_orphans(&f.dbs), 0);
	ASSERT_EQ(fx_file_size(fx_path("%s/k.db", f.db)), 4);
	ASSERT_EQ(fx_file_size(fx_path("%s/k.db-wal", f.db)), 4);
	ASSERT_EQ(fx_file_size(fx_path("%s/s/t/k2.db", f.db)), 4);
	ASSERT_EQ(fx_file_size(fx_path("%s/s/t/o.db", f.db)), -1);
	fx_fini(&f);
	return TEST_OK;
}
