/* Unit tests for per-database state (engine/state.c): saving state and
 * loading it back, trusted or re-hashed from the backing files, and
 * resetting what does not match (see fixture.h and state_fixture.h).
 * Tests that need backing files SQLite accepts build real databases with
 * the sqlite3 API and describe them to the state as one transaction
 * carrying every page. */
#include <dirent.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/state.h"
#include "fixture.h"
#include "state_fixture.h"
#include "tests/lib/unit.h"

/* ---- save and load ---- */

/* Headers saved per transaction plus a final save_all load back (trusting
 * the files) as the identical state, without reading the backing file. */
TEST(state_load, trusted_restores_without_rehash)
{
	static const uint32_t upd[] = {2, 5};
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;
	struct db_snap before;
	uint8_t junk[5 * 512];
	size_t len;
	uint8_t *now;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(sf_commit(d, &m, 4, sf_run(1, 4), 4, 1, 3), 0);
	ASSERT_EQ(eng__db_save_header(&f.dbs, d), 0);
	ASSERT_EQ(sf_commit(d, &m, 5, upd, 2, 2, 5), 0);
	ASSERT_EQ(eng__db_save_header(&f.dbs, d), 0);
	ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
	sf_snap_db(d, &before);
	/* Right size, wrong content: re-hashing would reset the database. */
	memset(junk, 0xa5, sizeof junk);
	fx_write_file(fx_path("%s/a.db", f.db), junk, sizeof junk);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
	ASSERT_EQ(sf_same_as(eng__db_find(&f.dbs, "a.db"), &before), TEST_OK);
	now = fx_read_file(fx_path("%s/a.db", f.db), &len);
	ASSERT_NOT_NULL(now);
	ASSERT_EQ(len, sizeof junk);
	ASSERT_MEM_EQ(now, junk, len);
	free(now);
	sf_model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* Without trusting the files, load re-hashes the backing file and keeps a
 * database that matches its header, whatever the hashes file says. */
TEST(state_load, untrusted_rehashes_matching_file)
{
	struct fx a, b;
	struct eng_db *d;
	struct db_snap before;

	fx_init(&a);
	fx_init(&b);
	make_db(fx_path("%s/x.db", a.db), 1024, 40, 0);
	make_db(fx_path("%s/x.db", b.db), 1024, 40, 1);
	adopt_file(&a, eng__db_get(&a.dbs, "x.db"), 4);
	ASSERT_EQ(eng__db_save_all(&a.dbs, eng__db_find(&a.dbs, "x.db")), 0);
	d = eng__db_get(&b.dbs, "x.db");
	adopt_file(&b, d, 4);
	ASSERT_EQ(eng__db_save_all(&b.dbs, d), 0);
	sf_snap_db(d, &before);
	/* Plant the hashes of another content, tagged with the same index. */
	fx_copy_file(fx_path("%s/x.db.hashes", a.state),
		     fx_path("%s/x.db.hashes", b.state));
	/* Precondition: a trusting load would take the planted hashes. */
	fx_restart(&b);
	ASSERT_EQ(eng__dbs_load(&b.dbs, true), 0);
	d = eng__db_find(&b.dbs, "x.db");
	ASSERT_NOT_NULL(d);
	ASSERT_TRUE(memcmp(d->hash, before.hash, 8 * (size_t)before.pages) !=
		    0);

	fx_restart(&b);
	ASSERT_EQ(eng__dbs_load(&b.dbs, false), 0);
	d = eng__db_find(&b.dbs, "x.db");
	ASSERT_EQ(sf_same_as(d, &before), TEST_OK);
	ASSERT_EQ(sf_hashes_match_file(d, fx_path("%s/x.db", b.db)), TEST_OK);
	fx_fini(&a);
	fx_fini(&b);
	return TEST_OK;
}

/* Hashes older than the header (a crash after save_header) are not
 * trusted: load re-hashes the backing file. */
TEST(state_load, stale_hashes_rehash)
{
	struct fx f;
	struct eng_db *d;
	struct db_snap before;
	char path[512];

	fx_init(&f);
	snprintf(path, sizeof path, "%s/x.db", f.db);
	make_db(path, 1024, 40, 0);
	d = eng__db_get(&f.dbs, "x.db");
	adopt_file(&f, d, 1);
	ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
	/* Same size, other content, saved through the header only. */
	sql_run(path, "UPDATE t SET b = printf('%0400d', a + 7);");
	adopt_file(&f, d, 2);
	ASSERT_EQ(eng__db_save_header(&f.dbs, d), 0);
	sf_snap_db(d, &before);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
	d = eng__db_find(&f.dbs, "x.db");
	ASSERT_EQ(sf_same_as(d, &before), TEST_OK);
	ASSERT_EQ(sf_hashes_match_file(d, path), TEST_OK);
	fx_fini(&f);
	return TEST_OK;
}

/* A database whose hashes were never saved (only headers) is re-hashed
 * from its backing file at load. */
TEST(state_load, missing_hashes_rehash)
{
	struct fx f;
	struct eng_db *d;
	struct db_snap before;
	char path[512];

	fx_init(&f);
	snprintf(path, sizeof path, "%s/x.db", f.db);
	make_db(path, 4096, 20, 0);
	d = eng__db_get(&f.dbs, "x.db");
	adopt_file(&f, d, 6);
	ASSERT_EQ(eng__db_save_header(&f.dbs, d), 0);
	sf_snap_db(d, &before);
	ASSERT_EQ(fx_file_size(fx_path("%s/x.db.hashes", f.state)), -1);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
	d = eng__db_find(&f.dbs, "x.db");
	ASSERT_EQ(sf_same_as(d, &before), TEST_OK);
	ASSERT_EQ(sf_hashes_match_file(d, path), TEST_OK);
	fx_fini(&f);
	return TEST_OK;
}

/* Without trusting the files, a backing file changed behind the state
 * resets the database to empty, deletes its backing files and persists
 * the reset. */
TEST(state_load, untrusted_modified_file_resets)
{
	struct fx f;
	struct eng_db *d;
	char path[512];

	fx_init(&f);
	snprintf(path, sizeof path, "%s/x.db", f.db);
	make_db(path, 1024, 40, 0);
	d = eng__db_get(&f.dbs, "x.db");
	adopt_file(&f, d, 3);
	ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
	sql_run(path, "UPDATE t SET b = printf('%0400d', a + 7) WHERE a = 30;");
	ASSERT_EQ(fx_file_size(path), (long long)d->db_pages * 1024);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, false), 0);
	ASSERT_EQ(sf_is_empty(eng__db_find(&f.dbs, "x.db")), TEST_OK);
	ASSERT_EQ(fx_file_size(path), -1);
	ASSERT_EQ(fx_file_size(fx_path("%s-journal", path)), -1);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
	ASSERT_EQ(sf_is_empty(eng__db_find(&f.dbs, "x.db")), TEST_OK);
	fx_fini(&f);
	return TEST_OK;
}

/* Even trusting the files, a backing file whose size disagrees with the
 * header (it grew behind the state) is re-hashed and reset. */
TEST(state_load, trusted_resized_file_resets)
{
	struct fx f;
	struct eng_db *d;
	char path[512];
	sqlite3 *db;

	fx_init(&f);
	snprintf(path, sizeof path, "%s/x.db", f.db);
	make_db(path, 1024, 40, 0);
	d = eng__db_get(&f.dbs, "x.db");
	adopt_file(&f, d, 3);
	ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
	db = sql_open(path);
	sql_insert(db, 100, 20, 0);
	sqlite3_close(db);
	ASSERT_TRUE(fx_file_size(path) > (long long)d->db_pages * 1024);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
	ASSERT_EQ(sf_is_empty(eng__db_find(&f.dbs, "x.db")), TEST_OK);
	ASSERT_EQ(fx_file_size(path), -1);
	fx_fini(&f);
	return TEST_OK;
}

/* Without trusting the files, a backing file that lost its first page
 * (zeros after a power loss) disagrees with the header and is reset like
 * any other mismatch, instead of failing the whole load. */
TEST(state_load, untrusted_lost_page_one_resets)
{
	struct fx f;
	struct eng_db *d;
	char path[512];
	uint8_t zeros[1024] = {0};

	fx_init(&f);
	snprintf(path, sizeof path, "%s/x.db", f.db);
	make_db(path, 1024, 40, 0);
	d = eng__db_get(&f.dbs, "x.db");
	adopt_file(&f, d, 3);
	ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
	fx_patch_file(path, 0, zeros, sizeof zeros);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, false), 0);
	ASSERT_EQ(sf_is_empty(eng__db_find(&f.dbs, "x.db")), TEST_OK);
	ASSERT_EQ(fx_file_size(path), -1);
	fx_fini(&f);
	return TEST_OK;
}

/* A header with any one byte flipped fails its check: the database is
 * reset to empty and its backing file deleted. */
TEST(state_load, corrupted_header_resets)
{
	struct model m = {.ps = 512};
	struct eng_db *d;
	uint8_t img[3 * 512], bit;
	int off;

	for (off = 0; off < 96; off++) {
		struct fx f;

		fx_init(&f);
		sf_model_free(&m);
		m = (struct model){.ps = 512};
		d = eng__db_get(&f.dbs, "a.db");
		ASSERT_EQ(sf_commit(d, &m, 3, sf_run(1, 3), 3, 1, 8), 0);
		ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
		memcpy(img, m.img, sizeof img);
		fx_write_file(fx_path("%s/a.db", f.db), img, sizeof img);
		fx_restart(&f);
		ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0); /* intact: kept */
		ASSERT_U64_EQ(eng__db_find(&f.dbs, "a.db")->applied, 8);

		bit = (uint8_t)(1u << (off % 8));
		{
			size_t len;
			uint8_t *h = fx_read_file(
				fx_path("%s/a.db.state", f.state), &len);

			ASSERT_NOT_NULL(h);
			ASSERT_EQ(len, 96);
			h[off] ^= bit;
			fx_write_file(fx_path("%s/a.db.state", f.state), h,
				      len);
			free(h);
		}
		fx_restart(&f);
		ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
		if (sf_is_empty(eng__db_find(&f.dbs, "a.db")) != TEST_OK) {
			fprintf(stderr, "flipped byte %d\n", off);
			return TEST_FAIL;
		}
		ASSERT_EQ(fx_file_size(fx_path("%s/a.db", f.db)), -1);
		fx_fini(&f);
	}
	sf_model_free(&m);
	return TEST_OK;
}

/* A header cut short (a crash while the file was first written) resets
 * the database. */
TEST(state_load, short_header_resets)
{
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(sf_commit(d, &m, 3, sf_run(1, 3), 3, 1, 8), 0);
	ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
	fx_write_file(fx_path("%s/a.db", f.db), m.img, 3 * 512);
	ASSERT_EQ(truncate(fx_path("%s/a.db.state", f.state), 95), 0);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
	ASSERT_EQ(sf_is_empty(eng__db_find(&f.dbs, "a.db")), TEST_OK);
	ASSERT_EQ(fx_file_size(fx_path("%s/a.db", f.db)), -1);
	sf_model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* Names with '/' and '%' are stored as flat escaped files in the state
 * dir and load back under their own names. */
TEST(state_load, escaped_names_round_trip)
{
	static const char *names[] = {"sub/dir/a.db", "50%.db", "x%2Fy.db",
				      "sub/50%/b%25.db"};
	static const char *files[] = {"sub%2Fdir%2Fa.db", "50%25.db",
				      "x%252Fy.db", "sub%2F50%25%2Fb%2525.db"};
	enum { N = sizeof names / sizeof names[0] };
	struct fx f;
	struct model m[N];
	struct db_snap before[N];
	struct eng_db *d;
	struct dirent *e;
	DIR *dir;
	int i, n_state = 0;

	fx_init(&f);
	for (i = 0; i < N; i++) {
		m[i] = (struct model){.ps = 512};
		d = eng__db_get(&f.dbs, names[i]);
		ASSERT_EQ(sf_commit(d, &m[i], (uint32_t)i + 1,
				    sf_run(1, (uint32_t)i + 1), (uint32_t)i + 1,
				    (uint32_t)i * 10, (uint64_t)i + 2),
			  0);
		ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
		fx_write_file(fx_path("%s/%s", f.db, names[i]), m[i].img,
			      (size_t)(i + 1) * 512);
		sf_snap_db(d, &before[i]);
		ASSERT_TRUE(fx_file_size(fx_path("%s/%s.state", f.state,
						 files[i])) == 96);
	}
	dir = opendir(f.state);
	ASSERT_NOT_NULL(dir);
	while ((e = readdir(dir)) != NULL) {
		ASSERT_TRUE(e->d_type != DT_DIR || e->d_name[0] == '.');
		if (strstr(e->d_name, ".state") != NULL)
			n_state++;
	}
	closedir(dir);
	ASSERT_EQ(n_state, N);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
	for (i = 0; i < N; i++) {
		ASSERT_EQ(
			sf_same_as(eng__db_find(&f.dbs, names[i]), &before[i]),
			TEST_OK);
		sf_model_free(&m[i]);
	}
	fx_fini(&f);
	return TEST_OK;
}

/* Trusting the files, a database whose state lives partly in the backing
 * WAL keeps its WAL frame count and is not held to the database file's
 * size. */
TEST(state_load, trusted_keeps_wal_frames)
{
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;
	struct db_snap before;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(sf_commit(d, &m, 6, sf_run(1, 6), 6, 1, 4), 0);
	d->wal_frames = 3;
	ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
	sf_snap_db(d, &before);
	/* The rest is in a WAL. */
	fx_write_file(fx_path("%s/a.db", f.db), m.img, 2 * 512);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
	ASSERT_EQ(sf_same_as(eng__db_find(&f.dbs, "a.db"), &before), TEST_OK);
	sf_model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* A load that settles a database's WAL into its file (re-hash path)
 * leaves no WAL frames holding the state, so it records 0 of them. */
TEST(state_load, settle_clears_wal_frames)
{
	struct fx f;
	struct eng_db *d;
	sqlite3 *conn;
	char src[512], path[512];
	long long wal;
	size_t len;
	uint8_t *img;

	fx_init(&f);
	snprintf(src, sizeof src, "%s/src/w.db", f.dir);
	conn = make_wal_db(src, 30);
	snprintf(path, sizeof path, "%s/w.db", f.db);
	fx_copy_file(src, path);
	fx_copy_file(fx_path("%s-wal", src), fx_path("%s-wal", path));
	wal = fx_file_size(fx_path("%s-wal", src));
	ASSERT_TRUE(wal > 32);
	sqlite3_close(conn);
	img = checkpointed_image(path, fx_path("%s/scratch.db", f.dir), &len);
	ASSERT_NOT_NULL(img);
	/* The state the files hold: a WAL over the database file. */
	d = eng__db_get(&f.dbs, "w.db");
	adopt_image(d, img, len, 5);
	d->wal_frames = (uint64_t)(wal - 32) / (1024 + 24);
	ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, false), 0);
	d = eng__db_find(&f.dbs, "w.db");
	ASSERT_NOT_NULL(d);
	ASSERT_U64_EQ(d->applied, 5); /* matched, not reset */
	ASSERT_EQ(sf_hashes_match_file(d, path), TEST_OK);
	ASSERT_U64_EQ(d->wal_frames, 0);
	free(img);
	fx_fini(&f);
	return TEST_OK;
}

/* hashes_at follows the index of the last saved hashes: set by save_all
 * and by a trusted load, not by save_header. */
TEST(state_load, hashes_at_tracks_saved_hashes)
{
	struct fx f;
	struct model m = {.ps = 512};
	struct eng_db *d;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "a.db");
	ASSERT_EQ(sf_commit(d, &m, 3, sf_run(1, 3), 3, 1, 4), 0);
	ASSERT_U64_EQ(d->hashes_at, 0);
	ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
	ASSERT_U64_EQ(d->hashes_at, 4);
	ASSERT_EQ(sf_commit(d, &m, 3, sf_run(2, 1), 1, 2, 6), 0);
	ASSERT_EQ(eng__db_save_header(&f.dbs, d), 0);
	ASSERT_U64_EQ(d->hashes_at, 4);
	ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
	ASSERT_U64_EQ(d->hashes_at, 6);
	fx_write_file(fx_path("%s/a.db", f.db), m.img, 3 * 512);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
	ASSERT_U64_EQ(eng__db_find(&f.dbs, "a.db")->hashes_at, 6);
	sf_model_free(&m);
	fx_fini(&f);
	return TEST_OK;
}

/* ---- the installed image and suspect files ---- */

/* The last installed image's seq and checksum (stored as given, whatever
 * the values) survive save_all and save_header, on the trusted path and
 * through a re-hash. */
TEST(state_load, base_survives)
{
	struct fx f;
	struct eng_db *d;
	struct db_snap before;
	char path[512];

	fx_init(&f);
	snprintf(path, sizeof path, "%s/x.db", f.db);
	make_db(path, 1024, 40, 0);
	d = eng__db_get(&f.dbs, "x.db");
	adopt_file(&f, d, 4);
	d->base_seq = 0x0102030405060708ull;
	d->base_cksum = 0xf0e0d0c0b0a09080ull;
	ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
	sf_snap_db(d, &before);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
	d = eng__db_find(&f.dbs, "x.db");
	ASSERT_EQ(sf_same_as(d, &before), TEST_OK);
	ASSERT_U64_EQ(d->base_seq, 0x0102030405060708ull);
	ASSERT_U64_EQ(d->base_cksum, 0xf0e0d0c0b0a09080ull);
	ASSERT_TRUE(!d->files_suspect);

	/* A header-only save carries new values. */
	d->base_seq = 3;
	d->base_cksum = d->cksum;
	ASSERT_EQ(eng__db_save_header(&f.dbs, d), 0);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
	d = eng__db_find(&f.dbs, "x.db");
	ASSERT_EQ(sf_same_as(d, &before), TEST_OK);
	ASSERT_U64_EQ(d->base_seq, 3);
	ASSERT_U64_EQ(d->base_cksum, before.cksum);

	/* A re-hashing load keeps them too, and saves them again. */
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, false), 0);
	d = eng__db_find(&f.dbs, "x.db");
	ASSERT_EQ(sf_same_as(d, &before), TEST_OK);
	ASSERT_U64_EQ(d->base_seq, 3);
	ASSERT_U64_EQ(d->base_cksum, before.cksum);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
	d = eng__db_find(&f.dbs, "x.db");
	ASSERT_U64_EQ(d->base_seq, 3);
	ASSERT_U64_EQ(d->base_cksum, before.cksum);
	fx_fini(&f);
	return TEST_OK;
}

/* A database saved with its files marked suspect is reset at the next
 * load, trusted or not: empty state (image fields too), backing files
 * deleted, the reset persisted.  Another database is left alone, and
 * without the mark the same database is kept. */
TEST(state_load, files_suspect_resets)
{
	int trust;

	for (trust = 1; trust >= 0; trust--) {
		struct fx f;
		struct eng_db *d, *y;
		struct db_snap other;
		char path[512], ypath[512];

		fx_init(&f);
		snprintf(path, sizeof path, "%s/x.db", f.db);
		snprintf(ypath, sizeof ypath, "%s/y.db", f.db);
		make_db(path, 1024, 40, 0);
		make_db(ypath, 1024, 20, 1);
		d = eng__db_get(&f.dbs, "x.db");
		adopt_file(&f, d, 3);
		d->base_seq = 1;
		d->base_cksum = d->cksum;
		ASSERT_EQ(eng__db_save_all(&f.dbs, d), 0);
		y = eng__db_get(&f.dbs, "y.db");
		adopt_file(&f, y, 2);
		ASSERT_EQ(eng__db_save_all(&f.dbs, y), 0);
		sf_snap_db(y, &other);

		/* Precondition: unmarked, it loads as saved. */
		fx_restart(&f);
		ASSERT_EQ(eng__dbs_load(&f.dbs, trust), 0);
		d = eng__db_find(&f.dbs, "x.db");
		ASSERT_NOT_NULL(d);
		ASSERT_U64_EQ(d->applied, 3);
		ASSERT_U64_EQ(d->seq, 1);
		ASSERT_TRUE(fx_file_size(path) > 0);

		d->files_suspect = true;
		ASSERT_EQ(eng__db_save_header(&f.dbs, d), 0);
		fx_write_file(fx_path("%s-wal", path), "junk", 4);
		fx_write_file(fx_path("%s-journal", path), "junk", 4);
		fx_restart(&f);
		ASSERT_EQ(eng__dbs_load(&f.dbs, trust), 0);
		d = eng__db_find(&f.dbs, "x.db");
		ASSERT_EQ(sf_is_empty(d), TEST_OK);
		ASSERT_U64_EQ(d->base_seq, 0);
		ASSERT_U64_EQ(d->base_cksum, 0);
		ASSERT_TRUE(!d->files_suspect);
		ASSERT_EQ(fx_file_size(path), -1);
		ASSERT_EQ(fx_file_size(fx_path("%s-wal", path)), -1);
		ASSERT_EQ(fx_file_size(fx_path("%s-journal", path)), -1);
		ASSERT_EQ(sf_same_as(eng__db_find(&f.dbs, "y.db"), &other),
			  TEST_OK);
		ASSERT_EQ(sf_hashes_match_file(eng__db_find(&f.dbs, "y.db"),
					       ypath),
			  TEST_OK);

		/* The reset is what is on disk now. */
		fx_restart(&f);
		ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
		ASSERT_EQ(sf_is_empty(eng__db_find(&f.dbs, "x.db")), TEST_OK);
		ASSERT_U64_EQ(eng__db_find(&f.dbs, "x.db")->base_seq, 0);
		fx_fini(&f);
	}
	return TEST_OK;
}
