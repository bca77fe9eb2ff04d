/* Unit tests for the follower's WAL and wal-index writer
 * (engine/walwrite.c), against real SQLite.
 *
 * A "leader" database is changed with SQLite (WAL mode, checkpointed
 * after each transaction), and each transaction is captured as the pages
 * that changed in its file.  The "follower" is a copy of the leader's
 * starting file with a SQLite connection open on it (as the applier keeps
 * one); the captured transactions are written into the follower's -wal
 * and -shm by the code under test.  Then SQLite must see exactly the
 * leader's data: through the open connection, from a new connection in
 * another process (which trusts our wal-index: the open connection keeps
 * it from recovering), and after SQLite rebuilds the wal-index itself
 * from our -wal (recovery), which must produce the same index bytes. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/engine.h"
#include "fixture.h"
#include "tests/lib/unit.h"

#define PS 512u

struct wx {
	struct fx f;
	char leader[200], follower[200];
	sqlite3 *ldb, *fdb; /* the leader's, the follower's reader */
	uint8_t *img;	    /* the leader's file after the last capture */
	size_t img_len;
	int wal_fd, shm_fd;
	struct eng_walw *w;
	int next_id;
	uint8_t hdr[48]; /* the wal-index header as we last published it */
};

static void wx_init(struct wx *x)
{
	memset(x, 0, sizeof *x);
	fx_init(&x->f);
	snprintf(x->leader, sizeof x->leader, "%s/leader.db", x->f.dir);
	snprintf(x->follower, sizeof x->follower, "%s/follower.db", x->f.dir);
	x->ldb = sql_open(x->leader);
	sql_exec(x->ldb, "PRAGMA page_size=512; PRAGMA journal_mode=WAL; "
			 "PRAGMA wal_autocheckpoint=0; "
			 "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); "
			 "CREATE INDEX tv ON t(v); "
			 "PRAGMA wal_checkpoint(TRUNCATE)");
	x->img = fx_read_file(x->leader, &x->img_len);
	fx_write_file(x->follower, x->img, x->img_len);
	x->fdb = sql_open(x->follower);
	sql_exec(x->fdb, "PRAGMA wal_autocheckpoint=0; "
			 "SELECT count(*) FROM t");
	x->wal_fd = open(fx_path("%s-wal", x->follower), O_RDWR);
	x->shm_fd = open(fx_path("%s-shm", x->follower), O_RDWR);
	if (x->wal_fd < 0 || x->shm_fd < 0)
		fx_die("open follower -wal/-shm");
	if (eng_walw_open(&x->w, x->wal_fd, x->shm_fd) != 0)
		fx_die("eng_walw_open");
}

static void wx_fini(struct wx *x)
{
	eng_walw_close(x->w);
	close(x->wal_fd);
	close(x->shm_fd);
	sqlite3_close(x->fdb);
	sqlite3_close(x->ldb);
	free(x->img);
	fx_fini(&x->f);
}

/* Run @sql on the leader and capture the pages it changed. */
static struct eng_txn *leader_txn(struct wx *x, const char *sql)
{
	uint8_t *now;
	size_t len, off;
	uint32_t pages, n = 0, i;
	struct eng_txn *t;

	sql_exec(x->ldb, sql);
	sql_exec(x->ldb, "PRAGMA wal_checkpoint(TRUNCATE)");
	now = fx_read_file(x->leader, &len);
	pages = (uint32_t)(len / PS);
	for (off = 0; off < len; off += PS)
		if (off >= x->img_len || memcmp(now + off, x->img + off, PS))
			n++;
	t = eng_txn_new("follower.db", PS, n);
	if (t == NULL)
		fx_die("eng_txn_new");
	t->db_pages = pages;
	for (off = 0, i = 0; off < len; off += PS)
		if (off >= x->img_len || memcmp(now + off, x->img + off, PS)) {
			t->pgnos[i] = (uint32_t)(off / PS) + 1;
			memcpy(t->pages + (size_t)i * PS, now + off, PS);
			i++;
		}
	free(x->img);
	x->img = now;
	x->img_len = len;
	return t;
}

/* Insert @rows rows on the leader and write them into the follower. */
static int replicate_insert(struct wx *x, int rows)
{
	char sql[256];
	struct eng_txn *t;
	int rv;

	snprintf(sql, sizeof sql,
		 "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c "
		 "WHERE i < %d) INSERT INTO t SELECT %d + i, "
		 "printf('row-%%d-%%s', %d + i, hex(randomblob(20))) FROM c",
		 rows, x->next_id, x->next_id);
	x->next_id += rows;
	t = leader_txn(x, sql);
	rv = eng_walw_write(x->w, t);
	eng_txn_free(t);
	if (pread(x->shm_fd, x->hdr, sizeof x->hdr, 0) != sizeof x->hdr)
		fx_die("pread shm header");
	return rv;
}

/* SQLite used our wal-index as it was: had it found it wrong, it would
 * have recovered (rewriting the header and setting nBackfillAttempted),
 * and a reader that recovers sees the right rows from a wrong index. */
static int index_untouched(struct wx *x)
{
	uint8_t now[48];
	uint32_t attempted = 0;

	if (pread(x->shm_fd, now, sizeof now, 0) != sizeof now ||
	    pread(x->shm_fd, &attempted, 4, 128) != 4)
		fx_die("pread shm");
	if (memcmp(now, x->hdr, sizeof now) != 0 || attempted != 0) {
		fprintf(stderr, "SQLite rewrote our wal-index (recovered)\n");
		return 0;
	}
	return 1;
}

/* A digest of t's content on @db: count and a checksum of every row. */
static void content(sqlite3 *db, char *out, size_t n)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db, "SELECT count(*) || ':' || "
			       "coalesce(sum(length(v) * id), 0) || ':' || "
			       "coalesce(max(v), '') FROM t", -1, &st,
			       NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		fx_die(sqlite3_errmsg(db));
	snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
}

static int same_content(struct wx *x, sqlite3 *db)
{
	char a[256], b[256];

	content(x->ldb, a, sizeof a);
	content(db, b, sizeof b);
	if (strcmp(a, b) != 0) {
		fprintf(stderr, "leader %s, follower %s\n", a, b);
		return 0;
	}
	return 1;
}

static int integrity_ok(sqlite3 *db)
{
	sqlite3_stmt *st;
	int ok;

	if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) !=
		    SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		return 0;
	ok = strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
	if (!ok)
		fprintf(stderr, "integrity: %s\n", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return ok;
}

/* In a new process: open the follower and compare with @want. */
static int other_process_sees(struct wx *x, const char *want)
{
	char got[256];
	pid_t pid;
	int status;

	pid = fork();
	if (pid == 0) {
		sqlite3 *db = sql_open(x->follower);

		content(db, got, sizeof got);
		if (strcmp(got, want) != 0) {
			fprintf(stderr, "other process: %s, want %s\n", got,
				want);
			_exit(1);
		}
		_exit(integrity_ok(db) ? 0 : 2);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return 0;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* u32 at @off of the follower's -shm. */
static uint32_t shm_u32(struct wx *x, off_t off)
{
	uint32_t v = 0;

	if (pread(x->shm_fd, &v, 4, off) != 4)
		fx_die("pread shm");
	return v;
}

/* Copy the follower's db and -wal (no -shm) to a fresh name, let SQLite
 * recover the wal-index from our -wal, and compare: the content, and the
 * index (header fields but iChange, and every block's page-number array
 * and hash table) byte for byte. */
static int recovery_agrees(struct wx *x)
{
	const char *copy = fx_path("%s/copy.db", x->f.dir);
	char want[256];
	uint8_t *ours, *theirs;
	size_t n_ours, n_theirs, cmp_len;
	sqlite3 *db;
	int ok;

	fx_rm_rf(fx_path("%s-shm", copy));
	fx_copy_file(x->follower, copy);
	fx_copy_file(fx_path("%s-wal", x->follower), fx_path("%s-wal", copy));
	db = sql_open(copy);
	sql_exec(db, "PRAGMA wal_autocheckpoint=0");
	content(x->ldb, want, sizeof want);
	ok = same_content(x, db) && integrity_ok(db);
	ours = fx_read_file(fx_path("%s-shm", x->follower), &n_ours);
	theirs = fx_read_file(fx_path("%s-shm", copy), &n_theirs);
	if (ours == NULL || theirs == NULL)
		fx_die("read -shm");
	/* Header copy 1: mxFrame, nPage, frame checksum, salts (16..40). */
	if (memcmp(ours + 12, theirs + 12, 28) != 0) {
		fprintf(stderr, "wal-index headers differ: mxFrame %u/%u "
			"nPage %u/%u\n", *(uint32_t *)(ours + 16),
			*(uint32_t *)(theirs + 16), *(uint32_t *)(ours + 20),
			*(uint32_t *)(theirs + 20));
		ok = 0;
	}
	/* The index proper: block 0 after the header, then whole blocks,
	 * as far as recovery built (a reader grows it to what it needs). */
	cmp_len = n_ours < n_theirs ? n_ours : n_theirs;
	if (memcmp(ours + 136, theirs + 136, cmp_len - 136) != 0) {
		size_t i = 136;

		while (ours[i] == theirs[i])
			i++;
		fprintf(stderr, "wal-index differs at byte %zu (of %zu)\n", i,
			cmp_len);
		ok = 0;
	}
	free(ours);
	free(theirs);
	sqlite3_close(db);
	return ok;
}

TEST(walwrite, open_reader_sees_each_transaction)
{
	struct wx x;
	int i;

	wx_init(&x);
	for (i = 0; i < 20; i++) {
		uint32_t change = shm_u32(&x, 8);

		ASSERT_EQ(replicate_insert(&x, 1 + i * 3), 0);
		ASSERT_EQ(shm_u32(&x, 8), change + 1); /* iChange */
		ASSERT_EQ(eng_walw_frames(x.w), shm_u32(&x, 16)); /* mxFrame */
		ASSERT_TRUE(same_content(&x, x.fdb));
		ASSERT_TRUE(index_untouched(&x));
	}
	ASSERT_TRUE(integrity_ok(x.fdb));
	ASSERT_TRUE(index_untouched(&x));
	ASSERT_TRUE(recovery_agrees(&x));
	wx_fini(&x);
	return TEST_OK;
}

TEST(walwrite, reader_keeps_its_snapshot)
{
	struct wx x;
	char before[256], during[256];

	wx_init(&x);
	ASSERT_EQ(replicate_insert(&x, 10), 0);
	sql_exec(x.fdb, "BEGIN");
	content(x.fdb, before, sizeof before);
	ASSERT_EQ(replicate_insert(&x, 50), 0);
	content(x.fdb, during, sizeof during);
	ASSERT_TRUE(strcmp(before, during) == 0);
	ASSERT_TRUE(strncmp(before, "10:", 3) == 0);
	sql_exec(x.fdb, "COMMIT");
	ASSERT_TRUE(same_content(&x, x.fdb));
	ASSERT_TRUE(index_untouched(&x));
	wx_fini(&x);
	return TEST_OK;
}

TEST(walwrite, another_process_reads_our_index)
{
	struct wx x;
	char want[256];

	wx_init(&x);
	ASSERT_EQ(replicate_insert(&x, 300), 0);
	ASSERT_EQ(replicate_insert(&x, 7), 0);
	content(x.ldb, want, sizeof want);
	ASSERT_TRUE(other_process_sees(&x, want));
	ASSERT_TRUE(index_untouched(&x));
	wx_fini(&x);
	return TEST_OK;
}

/* Enough frames to fill block 0 (4062) and go on into block 1. */
TEST(walwrite, index_across_blocks_matches_recovery)
{
	struct wx x;
	char want[256];
	int i;

	wx_init(&x);
	for (i = 0; i < 700; i++)
		ASSERT_EQ(replicate_insert(&x, 3 + i % 5), 0);
	ASSERT_TRUE(shm_u32(&x, 16) > 4062 + 100); /* mxFrame */
	ASSERT_TRUE(same_content(&x, x.fdb));
	ASSERT_TRUE(integrity_ok(x.fdb));
	content(x.ldb, want, sizeof want);
	ASSERT_TRUE(other_process_sees(&x, want));
	ASSERT_TRUE(index_untouched(&x));
	ASSERT_TRUE(recovery_agrees(&x));
	wx_fini(&x);
	return TEST_OK;
}

/* Pages 1..n of the file @src->arg names, as the applier reads an image
 * file: a batch of @k at a time. */
static int read_file_pages(const struct eng_walw_src *src, uint32_t i,
			   uint32_t k, uint32_t *pgnos, uint8_t *out,
			   size_t stride)
{
	int fd = *(const int *)src->arg;
	uint32_t j;

	for (j = 0; j < k; j++) {
		pgnos[j] = i + j + 1;
		if (pread(fd, out + j * stride, src->page_size,
			  (off_t)(i + j) * src->page_size) != (ssize_t)src->page_size)
			return -EIO;
	}
	return 0;
}

/* A whole database of over two batches of pages (an image being
 * installed), read from a file a batch at a time, is one transaction
 * readers see whole: the content, an index SQLite accepts as it is, and
 * recovery agreeing with it. */
TEST(walwrite, whole_image_from_a_file_in_batches)
{
	struct eng_walw_src src;
	struct wx x;
	char want[256];
	uint8_t *now;
	size_t len;
	int fd;

	wx_init(&x);
	sql_exec(x.ldb, "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT "
			"i+1 FROM c WHERE i < 3000) INSERT INTO t SELECT i, "
			"printf('img-%d-%s', i, hex(randomblob(30))) FROM c");
	sql_exec(x.ldb, "PRAGMA wal_checkpoint(TRUNCATE)");
	now = fx_read_file(x.leader, &len);
	ASSERT_NOT_NULL(now);
	ASSERT_TRUE(len / PS > 2 * 256 + 10);
	fx_write_file(fx_path("%s/image", x.f.dir), now, len);
	fd = open(fx_path("%s/image", x.f.dir), O_RDONLY);
	ASSERT_TRUE(fd >= 0);
	src = (struct eng_walw_src){(uint32_t)(len / PS), PS,
				    (uint32_t)(len / PS), read_file_pages, &fd};
	ASSERT_EQ(eng_walw_write_from(x.w, &src), 0);
	close(fd);
	ASSERT_EQ(pread(x.shm_fd, x.hdr, sizeof x.hdr, 0), (ssize_t)sizeof x.hdr);
	/* The old image of the leader's file, for same_content(). */
	free(x.img);
	x.img = now;
	x.img_len = len;
	now = NULL;
	ASSERT_EQ(shm_u32(&x, 16), len / PS); /* mxFrame: one frame a page */
	ASSERT_TRUE(same_content(&x, x.fdb));
	ASSERT_TRUE(integrity_ok(x.fdb));
	content(x.ldb, want, sizeof want);
	ASSERT_TRUE(other_process_sees(&x, want));
	ASSERT_TRUE(index_untouched(&x));
	ASSERT_TRUE(recovery_agrees(&x));
	free(now);
	wx_fini(&x);
	return TEST_OK;
}

/* After a full checkpoint, the next write restarts the log at frame 1
 * with new salts; the file is not truncated. */
TEST(walwrite, restarts_after_full_checkpoint)
{
	struct wx x;
	uint32_t salt_before, mx_before;
	long long size_before;

	wx_init(&x);
	ASSERT_EQ(replicate_insert(&x, 40), 0);
	ASSERT_EQ(replicate_insert(&x, 40), 0);
	sql_exec(x.fdb, "PRAGMA wal_checkpoint(PASSIVE)");
	mx_before = shm_u32(&x, 16);
	ASSERT_EQ(shm_u32(&x, 96), mx_before); /* all backfilled */
	salt_before = shm_u32(&x, 32);
	size_before = fx_file_size(fx_path("%s-wal", x.follower));
	ASSERT_EQ(replicate_insert(&x, 2), 0);
	ASSERT_TRUE(shm_u32(&x, 16) < mx_before);
	ASSERT_TRUE(shm_u32(&x, 32) != salt_before);
	ASSERT_EQ(shm_u32(&x, 96), 0); /* nBackfill */
	ASSERT_EQ(fx_file_size(fx_path("%s-wal", x.follower)), size_before);
	ASSERT_TRUE(same_content(&x, x.fdb));
	ASSERT_TRUE(integrity_ok(x.fdb));
	ASSERT_TRUE(recovery_agrees(&x));
	wx_fini(&x);
	return TEST_OK;
}

/* A reader on the log stops the restart: the write appends instead. */
TEST(walwrite, appends_while_a_reader_holds_the_log)
{
	struct wx x;
	sqlite3 *r;
	uint32_t mx;

	wx_init(&x);
	ASSERT_EQ(replicate_insert(&x, 40), 0);
	r = sql_open(x.follower);
	sql_exec(r, "BEGIN; SELECT count(*) FROM t");
	sql_exec(x.fdb, "PRAGMA wal_checkpoint(PASSIVE)");
	mx = shm_u32(&x, 16);
	ASSERT_EQ(replicate_insert(&x, 3), 0);
	ASSERT_TRUE(shm_u32(&x, 16) > mx);
	sql_exec(r, "COMMIT");
	sqlite3_close(r);
	ASSERT_TRUE(same_content(&x, x.fdb));
	ASSERT_TRUE(recovery_agrees(&x));
	wx_fini(&x);
	return TEST_OK;
}

TEST(walwrite, new_header_after_truncate_checkpoint)
{
	struct wx x;

	wx_init(&x);
	ASSERT_EQ(replicate_insert(&x, 40), 0);
	sql_exec(x.fdb, "PRAGMA wal_checkpoint(TRUNCATE)");
	ASSERT_EQ(fx_file_size(fx_path("%s-wal", x.follower)), 0);
	ASSERT_EQ(replicate_insert(&x, 5), 0);
	ASSERT_TRUE(fx_file_size(fx_path("%s-wal", x.follower)) > 32);
	ASSERT_TRUE(same_content(&x, x.fdb));
	ASSERT_TRUE(integrity_ok(x.fdb));
	ASSERT_TRUE(recovery_agrees(&x));
	wx_fini(&x);
	return TEST_OK;
}

/* SQLite's own writer continues our log (our checksum chain and index
 * are what it expects), and we continue its. */
TEST(walwrite, sqlite_writer_and_ours_interleave)
{
	struct wx x;
	char a[256], b[256];

	wx_init(&x);
	ASSERT_EQ(replicate_insert(&x, 20), 0);
	/* The follower writes on its own (not what a follower does, but
	 * the same bytes a writer leaves); mirror it on the leader. */
	sql_exec(x.fdb, "INSERT INTO t VALUES (100000, 'local')");
	sql_exec(x.ldb, "INSERT INTO t VALUES (100000, 'local')");
	eng_txn_free(leader_txn(&x, "SELECT 1")); /* resync the image */
	ASSERT_EQ(replicate_insert(&x, 20), 0);
	content(x.ldb, a, sizeof a);
	content(x.fdb, b, sizeof b);
	ASSERT_TRUE(strcmp(a, b) == 0);
	ASSERT_TRUE(integrity_ok(x.fdb));
	ASSERT_TRUE(recovery_agrees(&x));
	wx_fini(&x);
	return TEST_OK;
}

TEST(walwrite, busy_while_the_write_lock_is_held)
{
	struct wx x;
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET,
			   .l_start = 120, .l_len = 1};
	char before[256];
	int fd;

	wx_init(&x);
	ASSERT_EQ(replicate_insert(&x, 5), 0);
	content(x.fdb, before, sizeof before);
	fd = open(fx_path("%s-shm", x.follower), O_RDWR);
	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ(fcntl(fd, F_OFD_SETLK, &fl), 0);
	ASSERT_EQ(replicate_insert(&x, 5), -EBUSY);
	close(fd); /* drops the lock */
	/* Nothing was published: still the old content. */
	{
		char now[256];

		content(x.fdb, now, sizeof now);
		ASSERT_TRUE(strcmp(now, before) == 0);
	}
	wx_fini(&x);
	return TEST_OK;
}

TEST(walwrite, refuses_an_uninitialised_index)
{
	struct wx x;
	uint8_t zero[136] = {0};
	struct eng_txn *t;

	wx_init(&x);
	ASSERT_EQ(pwrite(x.shm_fd, zero, sizeof zero, 0), (long)sizeof zero);
	t = leader_txn(&x, "INSERT INTO t VALUES (1, 'x')");
	ASSERT_EQ(eng_walw_write(x.w, t), QF_EMALFORMED);
	eng_txn_free(t);
	wx_fini(&x);
	return TEST_OK;
}

/* Rows of t, through a new connection to @path. */
static int count_rows(const char *path)
{
	sqlite3 *db = sql_open(path);
	sqlite3_stmt *st;
	int n = -1;

	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st,
			       NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* A writer that died between its commit reaching the -wal and its
 * wal-index update (the -shm kept alive by another connection) leaves a
 * transaction nobody sees.  Invalidating the index makes the next
 * connection recover it from the -wal. */
TEST(walwrite, invalidated_index_is_recovered_with_the_lost_commit)
{
	struct wx x;
	uint8_t shm[32768];
	sqlite3 *dead;

	wx_init(&x);
	ASSERT_EQ(pread(x.shm_fd, shm, sizeof shm, 0), (long)sizeof shm);
	dead = sql_open(x.follower);
	sql_exec(dead, "INSERT INTO t VALUES (1, 'lost')");
	sqlite3_close(dead); /* not the last: x.fdb keeps the -shm */
	ASSERT_EQ(count_rows(x.follower), 1);
	/* The index as it was before the commit was published. */
	ASSERT_EQ(pwrite(x.shm_fd, shm, sizeof shm, 0), (long)sizeof shm);
	ASSERT_EQ(count_rows(x.follower), 0);
	ASSERT_EQ(eng_walw_invalidate(x.w), 0);
	ASSERT_EQ(count_rows(x.follower), 1);
	wx_fini(&x);
	return TEST_OK;
}

/* Every page of the follower, read as a new reader would (its last
 * frame, else the file), is the leader's page. */
static int pages_match_leader(struct wx *x)
{
	uint8_t buf[PS], zero[PS] = {0};
	uint32_t p, n = (uint32_t)(x->img_len / PS);
	int fd = open(x->follower, O_RDONLY), ok = 1;

	if (fd < 0)
		fx_die("open follower");
	for (p = 1; p <= n + 1 && ok; p++) {
		if (eng_walw_read_page(x->w, fd, p, PS, buf) != 0) {
			fprintf(stderr, "page %u: read failed\n", p);
			ok = 0;
		} else if (memcmp(buf, p <= n ? x->img + (size_t)(p - 1) * PS
					      : zero, PS) != 0) {
			fprintf(stderr, "page %u differs from the leader's\n",
				p);
			ok = 0;
		}
	}
	close(fd);
	return ok;
}

TEST(walwrite, reads_pages_as_a_reader_sees_them)
{
	struct wx x;
	uint8_t buf[2 * PS];
	int i;

	wx_init(&x);
	ASSERT_TRUE(pages_match_leader(&x)); /* all in the file */
	for (i = 0; i < 20; i++)
		ASSERT_EQ(replicate_insert(&x, 3), 0);
	ASSERT_TRUE(pages_match_leader(&x)); /* newest frames win */
	for (i = 0; i < 700; i++)
		ASSERT_EQ(replicate_insert(&x, 3 + i % 5), 0);
	ASSERT_TRUE(shm_u32(&x, 16) > 4062 + 100); /* across blocks */
	ASSERT_TRUE(pages_match_leader(&x));
	sql_exec(x.fdb, "PRAGMA wal_checkpoint(PASSIVE)");
	ASSERT_TRUE(pages_match_leader(&x)); /* backfilled: the same */
	ASSERT_EQ(replicate_insert(&x, 4), 0); /* restarts the log */
	ASSERT_TRUE(pages_match_leader(&x));
	/* A log of another page size is not read as this one. */
	ASSERT_EQ(eng_walw_read_page(x.w, x.wal_fd, 1, 2 * PS, buf) == 0, 0);
	/* While a checkpointer holds the WRITE lock: busy, retry later. */
	{
		struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET,
				   .l_start = 120, .l_len = 1};
		int fd = open(fx_path("%s-shm", x.follower), O_RDWR);

		ASSERT_TRUE(fd >= 0);
		ASSERT_EQ(fcntl(fd, F_OFD_SETLK, &fl), 0);
		ASSERT_EQ(eng_walw_read_page(x.w, x.wal_fd, 1, PS, buf),
			  -EBUSY);
		close(fd);
		ASSERT_EQ(eng_walw_read_page(x.w, x.wal_fd, 1, PS, buf), 0);
	}
	wx_fini(&x);
	return TEST_OK;
}

int main(int argc, char **argv)
{
	return fx_main(argc, argv, "walwrite");
}
