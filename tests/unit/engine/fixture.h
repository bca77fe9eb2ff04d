/* Helpers shared by the engine state and snapshot unit tests.
 *
 * fx_main() makes a temporary root for the whole run and removes it when
 * the runner is done, also after a failed or crashed test; fx_init() gives
 * each test its own directory under it, holding state/ and db/ for one
 * struct eng_dbs.  Real SQLite databases are built with the sqlite3 API and
 * described to the state as one transaction carrying every page.
 *
 * Test helpers, not code under test: any failure to set up prints what
 * failed and aborts, which fails the one forked test.  Files are named
 * relative to the caller's directories; nothing here is thread-safe. */
#ifndef QF_TEST_FIXTURE_H
#define QF_TEST_FIXTURE_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/state.h"

/* ---- files ---- */

/* perror(@what) and abort. */
void fx_die(const char *what);

/* printf into one of 8 rotating static buffers: pass it on, never keep it. */
const char *fx_path(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/* mkdir -p of the directories above @path. */
void fx_mkdirs_for(const char *path);

/* Create or replace @path (and the directories above it) with @len bytes. */
void fx_write_file(const char *path, const void *buf, size_t len);

/* Overwrite @len bytes at @off of the existing file @path. */
void fx_patch_file(const char *path, int64_t off, const void *buf,
		   size_t len);

/* The whole file in a new buffer the caller frees, or NULL if missing. */
uint8_t *fx_read_file(const char *path, size_t *len);

/* Size of @path, -1 if it does not exist. */
long long fx_file_size(const char *path);

/* Copy the file @src to @dst, creating the directories above @dst. */
void fx_copy_file(const char *src, const char *dst);

/* rm -rf @path; errors are ignored. */
void fx_rm_rf(const char *path);

/* ---- fixture ---- */

/* One test's directory, its state/ and db/, and the state over them. */
struct fx {
	char dir[128];
	char state[160];
	char db[160];
	struct eng_dbs dbs;
};

/* Make a fresh directory under the run's root and open the state over it. */
void fx_init(struct fx *f);

/* Drop the in-memory state, as a restart does; the caller loads again. */
void fx_restart(struct fx *f);

/* Close the state and remove the test's directory. */
void fx_fini(struct fx *f);

/* Run the tests in a fresh root /tmp/qf_test_@name_XXXXXX, then remove it. */
int fx_main(int argc, char **argv, const char *name);

/* ---- pages ---- */

/* Fill @ps bytes at @p with a pseudo-random pattern chosen by @seed. */
void fill_page(uint8_t *p, uint32_t ps, uint32_t seed);

/* XOR of qf_page_hash over pages 1..@pages of @img. */
uint64_t xor_pages(const uint8_t *img, uint32_t ps, uint32_t pages);

/* ---- real SQLite databases ---- */

/* Open (creating it and the directories above) the database at @path. */
sqlite3 *sql_open(const char *path);

/* Run @sql on @db; abort with SQLite's message if it fails. */
void sql_exec(sqlite3 *db, const char *sql);

/* Add @rows 400-char rows to t from @from; @salt alters content, not size. */
void sql_insert(sqlite3 *db, int from, int rows, int salt);

/* A settled rollback-journal database at @path with @rows rows. */
void make_db(const char *path, uint32_t ps, int rows, int salt);

/* Run @sql on the database at @path behind the state's back. */
void sql_run(const char *path, const char *sql);

/* WAL database at @path, @rows rows kept in the WAL while it stays open. */
sqlite3 *make_wal_db(const char *path, int rows);

/* Image of @src + @src-wal, checkpointed by SQLite in a copy at @scratch. */
uint8_t *checkpointed_image(const char *src, const char *scratch,
			    size_t *len);

/* ---- describing databases to the state ---- */

/* Make @d describe SQLite image @img: one all-page txn applied at @index. */
void adopt_image(struct eng_db *d, const uint8_t *img, size_t len,
		 uint64_t index);

/* Make @d describe its backing file in @f as it is now. */
void adopt_file(struct fx *f, struct eng_db *d, uint64_t index);

#endif /* QF_TEST_FIXTURE_H */
