/* Helpers shared by the engine state and snapshot unit tests: files, one
 * directory and state per test, pages, and real SQLite databases (see
 * fixture.h).  Every failure to set up aborts the forked test. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"
#include "tests/lib/unit.h"

/* Made by fx_main(); every fx_init() directory lives under it. */
static char root[64];

/* ---- files ---- */

void fx_die(const char *what)
{
	perror(what);
	abort();
}

const char *fx_path(const char *fmt, ...)
{
	static char bufs[8][1024];
	static unsigned next;
	char *b = bufs[next++ % 8];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b, sizeof bufs[0], fmt, ap);
	va_end(ap);
	return b;
}

void fx_mkdirs_for(const char *path)
{
	char buf[1024];
	char *slash;

	snprintf(buf, sizeof buf, "%s", path);
	for (slash = strchr(buf + 1, '/'); slash != NULL;
	     slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			fx_die(buf);
		*slash = '/';
	}
}

void fx_write_file(const char *path, const void *buf, size_t len)
{
	int fd;

	fx_mkdirs_for(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || (len > 0 && qf_pwrite_full(fd, buf, len, 0) != 0))
		fx_die(path);
	close(fd);
}

void fx_patch_file(const char *path, int64_t off, const void *buf,
		   size_t len)
{
	int fd = open(path, O_WRONLY);

	if (fd < 0 || qf_pwrite_full(fd, buf, len, off) != 0)
		fx_die(path);
	close(fd);
}

uint8_t *fx_read_file(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) != 0)
		fx_die(path);
	buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
	if (buf == NULL ||
	    qf_pread_full(fd, buf, (size_t)st.st_size, 0) != st.st_size)
		fx_die(path);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

long long fx_file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

void fx_copy_file(const char *src, const char *dst)
{
	size_t len;
	uint8_t *buf = fx_read_file(src, &len);

	if (buf == NULL)
		fx_die(src);
	fx_write_file(dst, buf, len);
	free(buf);
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void fx_rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- fixture ---- */

static void open_dbs(struct fx *f)
{
	if (eng__dbs_init(&f->dbs, f->state, f->db) != 0)
		abort();
}

void fx_init(struct fx *f)
{
	snprintf(f->dir, sizeof f->dir, "%s/t_XXXXXX", root);
	if (mkdtemp(f->dir) == NULL)
		fx_die("mkdtemp");
	snprintf(f->state, sizeof f->state, "%s/state", f->dir);
	snprintf(f->db, sizeof f->db, "%s/db", f->dir);
	if (mkdir(f->state, 0755) != 0 || mkdir(f->db, 0755) != 0)
		fx_die("mkdir");
	open_dbs(f);
}

void fx_restart(struct fx *f)
{
	eng__dbs_close(&f->dbs);
	open_dbs(f);
}

void fx_fini(struct fx *f)
{
	eng__dbs_close(&f->dbs);
	fx_rm_rf(f->dir);
}

/* The root outlives every forked test, so a crashed test's directory is
 * still removed here. */
int fx_main(int argc, char **argv, const char *name)
{
	int rv;

	if (getenv("QF_TEST_LOG") == NULL)
		qf_log_set_level(QF_ERROR + 1);
	snprintf(root, sizeof root, "/tmp/qf_test_%s_XXXXXX", name);
	if (mkdtemp(root) == NULL)
		fx_die("mkdtemp");
	rv = unit_main(argc, argv);
	fx_rm_rf(root);
	return rv;
}

/* ---- pages ---- */

void fill_page(uint8_t *p, uint32_t ps, uint32_t seed)
{
	uint32_t i, x = seed * 2654435761u + 12345u;

	for (i = 0; i < ps; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(x >> 16);
	}
}

uint64_t xor_pages(const uint8_t *img, uint32_t ps, uint32_t pages)
{
	uint64_t ck = 0;
	uint32_t p;

	for (p = 1; p <= pages; p++)
		ck ^= qf_page_hash(p, img + (size_t)(p - 1) * ps, ps);
	return ck;
}

/* ---- real SQLite databases ---- */

sqlite3 *sql_open(const char *path)
{
	sqlite3 *db = NULL;

	fx_mkdirs_for(path);
	if (sqlite3_open(path, &db) != SQLITE_OK) {
		fprintf(stderr, "sqlite3_open %s: %s\n", path,
			sqlite3_errmsg(db));
		abort();
	}
	return db;
}

void sql_exec(sqlite3 *db, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
		fprintf(stderr, "%s: %s\n", sql, err);
		abort();
	}
}

void sql_insert(sqlite3 *db, int from, int rows, int salt)
{
	char sql[512];

	snprintf(sql, sizeof sql,
		 "WITH RECURSIVE c(x) AS (SELECT %d UNION ALL SELECT x + 1 "
		 "FROM c WHERE x < %d) INSERT INTO t(a, b) "
		 "SELECT x, printf('%%0400d', x + %d) FROM c;",
		 from, from + rows - 1, salt);
	sql_exec(db, sql);
}

void make_db(const char *path, uint32_t ps, int rows, int salt)
{
	sqlite3 *db = sql_open(path);
	char sql[128];

	snprintf(sql, sizeof sql,
		 "PRAGMA page_size=%u; "
		 "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT);",
		 ps);
	sql_exec(db, sql);
	sql_insert(db, 1, rows, salt);
	sqlite3_close(db);
}

void sql_run(const char *path, const char *sql)
{
	sqlite3 *db = sql_open(path);

	sql_exec(db, sql);
	sqlite3_close(db);
}

sqlite3 *make_wal_db(const char *path, int rows)
{
	sqlite3 *db = sql_open(path);

	sql_exec(db, "PRAGMA page_size=1024; PRAGMA journal_mode=WAL; "
		     "PRAGMA wal_autocheckpoint=0; "
		     "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT);");
	sql_insert(db, 1, rows, 0);
	return db;
}

uint8_t *checkpointed_image(const char *src, const char *scratch,
			    size_t *len)
{
	sqlite3 *db;

	fx_copy_file(src, scratch);
	fx_copy_file(fx_path("%s-wal", src), fx_path("%s-wal", scratch));
	db = sql_open(scratch);
	sql_exec(db, "PRAGMA wal_checkpoint(TRUNCATE);");
	sqlite3_close(db);
	return fx_read_file(scratch, len);
}

/* ---- describing databases to the state ---- */

void adopt_image(struct eng_db *d, const uint8_t *img, size_t len,
		 uint64_t index)
{
	uint32_t ps = qf_sqlite_page_size(img), n, i;
	struct eng_txn *t;

	if (ps == 0)
		abort();
	n = (uint32_t)(len / ps);
	t = eng_txn_new(d->name, ps, n);
	if (t == NULL)
		abort();
	for (i = 0; i < n; i++)
		t->pgnos[i] = i + 1;
	memcpy(t->pages, img, (size_t)n * ps);
	t->db_pages = n;
	t->seq = d->seq + 1;
	t->cksum_before = d->cksum;
	t->cksum_after = xor_pages(img, ps, n);
	if (eng__db_apply(d, t, index) != 0)
		abort();
	eng_txn_free(t);
}

void adopt_file(struct fx *f, struct eng_db *d, uint64_t index)
{
	size_t len;
	uint8_t *img = fx_read_file(fx_path("%s/%s", f->db, d->name), &len);

	if (img == NULL)
		abort();
	adopt_image(d, img, len, index);
	free(img);
}
