/* Unit tests for the running engine (engine/engine.c): a real raft_uv node
 * on its own loop thread, bootstrapped as a one-node cluster.
 *
 * Every test gets its own directory under a root made by main() (removed
 * when the runner is done, also after a failed or crashed test) and its own
 * loopback port.  Transactions are real SQLite page images: a scratch
 * database is built with the sqlite3 API, its file is read after each
 * statement, and each transaction carries the pages that differ from the
 * previous image.  So the backing files stay databases SQLite accepts when
 * the engine settles or re-hashes them.
 *
 * The test's commit callback plays the mount: on status 0 it writes the
 * transaction's pages into the backing file under eng_db_dir().  It runs on
 * the loop thread; the test thread waits for it on a condition variable.
 * Expected checksums come from a model (XOR of qf_page_hash over an
 * image), never from the code under test; state headers are read from disk
 * (engine/state.h: magic "QFS1", seq at 16, cksum at 24, applied index at
 * 32, hashes index at 40, trailer hash at 88). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "tests/lib/unit.h"

#define PS 1024		      /* page size of every test database */
#define HDR_SIZE 96	      /* engine/state.h */
#define HDR_MAGIC 0x31534651u /* "QFS1" */
#define WAIT_S 20	      /* longest wait for one callback */

static char root[64];

/* ---- files ---- */

static void die(const char *what)
{
	perror(what);
	abort();
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

static void rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The whole file in a new buffer, or NULL if it does not exist. */
static uint8_t *read_file(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) != 0)
		die(path);
	buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
	if (buf == NULL ||
	    qf_pread_full(fd, buf, (size_t)st.st_size, 0) != st.st_size)
		die(path);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0 || qf_pwrite_full(fd, buf, len, 0) != 0)
		die(path);
	close(fd);
}

/* Patch @len bytes at @off of an existing file. */
static void patch_file(const char *path, int64_t off, const void *buf,
		       size_t len)
{
	int fd = open(path, O_WRONLY);

	if (fd < 0 || qf_pwrite_full(fd, buf, len, off) != 0)
		die(path);
	close(fd);
}

/* ---- SQLite page images ---- */

struct image {
	uint8_t *bytes;
	uint32_t pages;
};

static void exec_sql(sqlite3 *db, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
		fprintf(stderr, "%s: %s\n", sql, err);
		abort();
	}
}

/* Build @n successive images of one real database in @dir: image 0 holds
 * an empty table, each later one inserts a row of ~700 bytes (a new page)
 * and rewrites an older row (an old page changes). */
static void make_images(const char *dir, const char *tag, struct image *img,
			int n)
{
	char path[512], sql[128];
	sqlite3 *db;
	size_t len;
	int k;

	snprintf(path, sizeof path, "%s/%s.scratch", dir, tag);
	if (sqlite3_open(path, &db) != SQLITE_OK)
		die(path);
	exec_sql(db, "PRAGMA page_size=1024; PRAGMA journal_mode=DELETE;"
		     "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB);");
	for (k = 0; k < n; k++) {
		if (k > 0) {
			snprintf(
			    sql, sizeof sql,
			    "INSERT INTO t(v) VALUES(randomblob(700));"
			    "UPDATE t SET v = randomblob(700) WHERE k = %d;",
			    (k + 1) / 2);
			exec_sql(db, sql);
		}
		img[k].bytes = read_file(path, &len);
		if (img[k].bytes == NULL || len == 0 || len % PS != 0)
			die("scratch image");
		img[k].pages = (uint32_t)(len / PS);
	}
	sqlite3_close(db);
	unlink(path);
}

static void free_images(struct image *img, int n)
{
	int k;

	for (k = 0; k < n; k++)
		free(img[k].bytes);
}

/* The model's rolling checksum of @im. */
static uint64_t image_cksum(const struct image *im)
{
	uint64_t ck = 0;
	uint32_t p;

	for (p = 1; p <= im->pages; p++)
		ck ^= qf_page_hash(p, im->bytes + (size_t)(p - 1) * PS, PS);
	return ck;
}

/* A transaction of @db turning image @from (NULL: no database) into @to:
 * the pages that differ or are new. */
static struct eng_txn *txn_diff(const char *db, const struct image *from,
				const struct image *to)
{
	struct eng_txn *t;
	uint32_t p, n = 0, i = 0;

	for (p = 1; p <= to->pages; p++)
		if (from == NULL || p > from->pages ||
		    memcmp(from->bytes + (size_t)(p - 1) * PS,
			   to->bytes + (size_t)(p - 1) * PS, PS) != 0)
			n++;
	t = eng_txn_new(db, PS, n);
	if (t == NULL)
		die("eng_txn_new");
	for (p = 1; p <= to->pages; p++)
		if (from == NULL || p > from->pages ||
		    memcmp(from->bytes + (size_t)(p - 1) * PS,
			   to->bytes + (size_t)(p - 1) * PS, PS) != 0) {
			t->pgnos[i] = p;
			memcpy(t->pages + (size_t)i * PS,
			       to->bytes + (size_t)(p - 1) * PS, PS);
			i++;
		}
	t->db_pages = to->pages;
	return t;
}

/* 0 if the file at @path holds exactly @im; otherwise says why. */
static int check_file(const char *path, const struct image *im)
{
	size_t len;
	uint8_t *b = read_file(path, &len);
	uint32_t p;
	int rv = 0;

	if (b == NULL) {
		fprintf(stderr, "%s: missing\n", path);
		return -1;
	}
	if (len != (size_t)im->pages * PS) {
		fprintf(stderr, "%s: %zu bytes, expected %zu\n", path, len,
			(size_t)im->pages * PS);
		rv = -1;
	}
	for (p = 1; rv == 0 && p <= im->pages; p++)
		if (memcmp(b + (size_t)(p - 1) * PS,
			   im->bytes + (size_t)(p - 1) * PS, PS) != 0) {
			fprintf(stderr, "%s: page %u differs\n", path, p);
			rv = -1;
		}
	free(b);
	return rv;
}

/* ---- fixture: one engine, one data dir, one port ---- */

struct fx {
	char dir[128];	/* the test's directory: scratch files */
	char data[160]; /* the engine's data dir */
	char addr[32];
	unsigned threshold, trailing;
	struct eng *e;
};

/* A loopback port that is free right now (bind succeeds). */
static void pick_address(char *addr, size_t size)
{
	struct sockaddr_in sa;
	int i, fd, port, ok;

	for (i = 0; i < 200; i++) {
		port = 33000 + rand() % 7000;
		memset(&sa, 0, sizeof sa);
		sa.sin_family = AF_INET;
		sa.sin_port = htons((uint16_t)port);
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			die("socket");
		ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
		close(fd);
		if (ok) {
			snprintf(addr, size, "127.0.0.1:%d", port);
			return;
		}
	}
	die("no free port");
}

static void fx_init(struct fx *f)
{
	memset(f, 0, sizeof *f);
	srand((unsigned)getpid() ^ (unsigned)time(NULL));
	snprintf(f->dir, sizeof f->dir, "%s/t_XXXXXX", root);
	if (mkdtemp(f->dir) == NULL)
		die("mkdtemp");
	snprintf(f->data, sizeof f->data, "%s/data", f->dir);
	pick_address(f->addr, sizeof f->addr);
	f->threshold = 1024;
	f->trailing = 2048;
}

/* Start (or restart) the engine on the fixture's data dir. */
static int fx_start(struct fx *f)
{
	struct eng_config c;
	int rv;

	memset(&c, 0, sizeof c);
	c.data_dir = f->data;
	c.id = 1;
	c.address = f->addr;
	c.bootstrap = true;
	c.snapshot_threshold = f->threshold;
	c.snapshot_trailing = f->trailing;
	rv = eng_start(&f->e, &c);
	if (rv != 0) {
		fprintf(stderr, "eng_start: %s\n", qf_strerror(rv));
		f->e = NULL; /* a failed start cannot be stopped cleanly */
	}
	return rv;
}

/* The first start: another process may take the port between the probe
 * and raft's listen, so retry on a fresh dir and port.  A failed engine
 * is left as eng_stop documents (its memory stays). */
static int fx_first_start(struct fx *f)
{
	int i, rv = -1;

	for (i = 0; i < 3 && rv != 0; i++) {
		if (i > 0) {
			rm_rf(f->data);
			pick_address(f->addr, sizeof f->addr);
		}
		rv = fx_start(f);
	}
	return rv;
}

static void fx_stop(struct fx *f)
{
	if (f->e != NULL)
		eng_stop(f->e);
	f->e = NULL;
}

static void fx_fini(struct fx *f)
{
	fx_stop(f);
	rm_rf(f->dir);
}

static void fx_path(const struct fx *f, char *buf, size_t size, const char *sub,
		    const char *name)
{
	snprintf(buf, size, "%s/%s/%s", f->data, sub, name);
}

/* The state header of @db as on disk. */
struct hdr {
	bool ok; /* exists, with magic and trailer hash right */
	uint32_t page_size, db_pages;
	uint64_t seq, cksum, applied, hashes_at;
};

static struct hdr read_hdr(const struct fx *f, const char *db)
{
	char path[512];
	uint8_t h[HDR_SIZE];
	struct hdr r;
	int fd;

	memset(&r, 0, sizeof r);
	snprintf(path, sizeof path, "%s/state/%s.state", f->data, db);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return r;
	if (qf_pread_full(fd, h, HDR_SIZE, 0) == HDR_SIZE &&
	    memcmp(h, "QFS1", 4) == 0 &&
	    qf_get_le64(h + HDR_SIZE - 8) ==
		qf_hash64(h, HDR_SIZE - 8, HDR_MAGIC)) {
		r.ok = true;
		r.page_size = qf_get_le32(h + 8);
		r.db_pages = qf_get_le32(h + 12);
		r.seq = qf_get_le64(h + 16);
		r.cksum = qf_get_le64(h + 24);
		r.applied = qf_get_le64(h + 32);
		r.hashes_at = qf_get_le64(h + 40);
	}
	close(fd);
	return r;
}

/* ---- commits ---- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int completions; /* callbacks run so far, under @mu */

/* One commit as the mount would make it. */
struct tc {
	struct eng_commit c;
	struct fx *f;
	char db[64];
	/* A copy of the transaction: the engine frees c.txn before the
	 * callback runs. */
	uint32_t n, db_pages;
	uint32_t *pgnos;
	uint8_t *pages;
	int ret;    /* the callback's return for status 0 */
	bool block; /* hold the loop thread in the callback until released */
	/* Observed in the callback, under @mu. */
	int calls, status, order;
	bool txn_gone;	     /* c->txn was NULL */
	uint64_t wal_preset; /* *wal_frames on entry */
	struct hdr seen;     /* the database's state header at that time */
	bool in_cb, release;
};

/* Write the held pages into the backing file, as the mount would. */
static int write_backing(struct tc *t)
{
	char path[512];
	uint32_t i;
	int fd, rv = 0;

	snprintf(path, sizeof path, "%s/%s", eng_db_dir(t->f->e), t->db);
	fd = open(path, O_RDWR | O_CREAT, 0644);
	if (fd < 0)
		return -errno;
	for (i = 0; i < t->n && rv == 0; i++)
		rv = qf_pwrite_full(fd, t->pages + (size_t)i * PS, PS,
				    (int64_t)(t->pgnos[i] - 1) * PS);
	if (rv == 0 && ftruncate(fd, (off_t)t->db_pages * PS) != 0)
		rv = -errno;
	close(fd);
	return rv;
}

/* Loop thread. */
static int commit_cb(struct eng_commit *c, int status, uint64_t *wal_frames)
{
	struct tc *t = c->data;
	struct hdr h = read_hdr(t->f, t->db);
	int rv = status == 0 ? t->ret : 0;

	if (status == 0 && rv == 0)
		rv = write_backing(t);
	pthread_mutex_lock(&mu);
	t->calls++;
	t->status = status;
	t->order = ++completions;
	t->txn_gone = c->txn == NULL;
	t->wal_preset = *wal_frames;
	t->seen = h;
	t->in_cb = true;
	pthread_cond_broadcast(&cond);
	while (t->block && !t->release)
		pthread_cond_wait(&cond, &mu);
	pthread_mutex_unlock(&mu);
	return rv;
}

/* A commit of @txn (taken over) into @db that the callback writes. */
static struct tc *tc_new(struct fx *f, struct eng_txn *txn)
{
	struct tc *t = calloc(1, sizeof *t);

	if (t == NULL)
		die("calloc");
	t->f = f;
	snprintf(t->db, sizeof t->db, "%s", txn->db);
	t->n = txn->n;
	t->db_pages = txn->db_pages;
	t->pgnos = malloc((txn->n ? txn->n : 1) * sizeof *t->pgnos);
	t->pages = malloc(txn->n ? (size_t)txn->n * PS : 1);
	if (t->pgnos == NULL || t->pages == NULL)
		die("malloc");
	memcpy(t->pgnos, txn->pgnos, txn->n * sizeof *t->pgnos);
	memcpy(t->pages, txn->pages, (size_t)txn->n * PS);
	t->c.data = t;
	t->c.txn = txn;
	t->c.type = ENG_ENTRY_TXN;
	t->c.cb = commit_cb;
	return t;
}

static void tc_free(struct tc *t)
{
	if (t == NULL)
		return;
	eng_txn_free(t->c.txn); /* NULL once the engine took it */
	free(t->pgnos);
	free(t->pages);
	free(t);
}

/* Submit @t; on failure the caller keeps the transaction. */
static int tc_submit(struct tc *t)
{
	int rv = eng_submit(t->f->e, &t->c);

	if (rv != 0)
		fprintf(stderr, "eng_submit: %s\n", qf_strerror(rv));
	return rv;
}

/* Wait until @t's callback has run; -ETIMEDOUT after WAIT_S. */
static int tc_wait(struct tc *t)
{
	struct timespec dl;
	int rv = 0;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += WAIT_S;
	pthread_mutex_lock(&mu);
	while (!t->in_cb && rv == 0)
		rv = pthread_cond_timedwait(&cond, &mu, &dl);
	pthread_mutex_unlock(&mu);
	if (rv != 0)
		fprintf(stderr, "callback of db=%s never ran\n", t->db);
	return rv == 0 ? 0 : -ETIMEDOUT;
}

static void tc_release(struct tc *t)
{
	pthread_mutex_lock(&mu);
	t->release = true;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&mu);
}

/* Submit and wait; the callback's status, or a positive value if it
 * could not be submitted or never ran. */
static int commit(struct fx *f, struct eng_txn *txn, int ret, struct tc **out)
{
	struct tc *t = tc_new(f, txn);

	t->ret = ret;
	*out = t;
	if (tc_submit(t) != 0 || tc_wait(t) != 0)
		return 1;
	return t->status;
}

/* Commit @txn, check status 0 and free the request. */
static int commit_ok(struct fx *f, struct eng_txn *txn)
{
	struct tc *t;
	int rv = commit(f, txn, 0, &t);

	if (rv != 0)
		fprintf(stderr, "commit db=%s: status %d (%s)\n", t->db, rv,
			qf_strerror(rv));
	tc_free(t);
	return rv;
}

/* Wait until the loop thread has finished everything it started before:
 * an empty transaction of an unused database changes nothing, so it
 * completes on the loop thread without a raft entry, after the work (a
 * previous commit's state header, say) queued ahead of it. */
static int sync_loop(struct fx *f)
{
	struct eng_txn *txn = eng_txn_new("sync", 0, 0);
	struct tc *t;
	int rv;

	if (txn == NULL)
		die("eng_txn_new");
	rv = commit(f, txn, 0, &t);
	tc_free(t);
	return rv;
}

/* A request that only counts its callback and frees itself. */
static int probes_done;

static int probe_cb(struct eng_commit *c, int status, uint64_t *wal_frames)
{
	(void)status;
	(void)wal_frames;
	pthread_mutex_lock(&mu);
	probes_done++;
	pthread_mutex_unlock(&mu);
	free(c);
	return 0;
}

static void *stop_main(void *arg)
{
	eng_stop(arg);
	return NULL;
}

/* With the loop thread held in a callback (so @e stays allocated), stop
 * the engine from another thread and submit probes until eng_submit
 * refuses.  Returns the refusal; *accepted counts probes taken before. */
static int stop_while_held(struct eng *e, pthread_t *th, int *accepted)
{
	struct eng_commit *p;
	int i, rv = 0;

	*accepted = 0;
	if (pthread_create(th, NULL, stop_main, e) != 0)
		die("pthread_create");
	/* eng_stop gives no sign that it began; poll for its effect. */
	for (i = 0; i < 10000 && rv == 0; i++) {
		p = calloc(1, sizeof *p);
		if (p == NULL)
			die("calloc");
		p->txn = eng_txn_new("probe", 0, 0);
		p->type = ENG_ENTRY_TXN;
		p->cb = probe_cb;
		rv = eng_submit(e, p);
		if (rv != 0) {
			eng_txn_free(p->txn);
			free(p);
			break;
		}
		(*accepted)++;
		nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
	}
	return rv;
}

/* ---- tests ---- */

/* A committed transaction's callback runs once with status 0, and the
 * callee's 0 persists the state header; a restart leaves the backing file
 * alone and the next commit continues the sequence. */
TEST(engine_commit, header_persists_across_restart)
{
	struct image img[2];
	struct fx f;
	struct tc *t;
	struct hdr h1, h2;
	struct stat st1, st2;
	char db[512];
	size_t len;
	uint8_t *b;

	fx_init(&f);
	make_images(f.dir, "a", img, 2);
	ASSERT_EQ(fx_first_start(&f), 0);
	fx_path(&f, db, sizeof db, "db", "a.db");
	ASSERT_EQ(commit(&f, txn_diff("a.db", NULL, &img[0]), 0, &t), 0);
	ASSERT_EQ(sync_loop(&f), 0);
	h1 = read_hdr(&f, "a.db"); /* written by the engine, not by a stop */
	ASSERT_TRUE(h1.ok);
	ASSERT_EQ(h1.seq, 1);
	ASSERT_TRUE(h1.applied > 0);
	ASSERT_EQ(h1.page_size, PS);
	ASSERT_EQ(h1.db_pages, img[0].pages);
	ASSERT_U64_EQ(h1.cksum, image_cksum(&img[0]));
	ASSERT_EQ(check_file(db, &img[0]), 0);
	ASSERT_EQ(stat(db, &st1), 0);
	fx_stop(&f);
	ASSERT_EQ(t->calls, 1);
	ASSERT_TRUE(t->txn_gone);
	ASSERT_EQ(t->wal_preset, 0);
	tc_free(t);

	ASSERT_EQ(fx_start(&f), 0);
	b = read_file(db, &len);
	ASSERT_NOT_NULL(b);
	ASSERT_EQ(len, (size_t)img[0].pages * PS);
	ASSERT_MEM_EQ(b, img[0].bytes, len);
	free(b);
	ASSERT_EQ(stat(db, &st2), 0);
	ASSERT_EQ(st2.st_ino, st1.st_ino);
	ASSERT_EQ(st2.st_mtim.tv_sec, st1.st_mtim.tv_sec);
	ASSERT_EQ(st2.st_mtim.tv_nsec, st1.st_mtim.tv_nsec);
	ASSERT_EQ(commit_ok(&f, txn_diff("a.db", &img[0], &img[1])), 0);
	ASSERT_EQ(sync_loop(&f), 0);
	h2 = read_hdr(&f, "a.db");
	ASSERT_EQ(h2.seq, 2);
	ASSERT_TRUE(h2.applied > h1.applied);
	ASSERT_U64_EQ(h2.cksum, image_cksum(&img[1]));
	ASSERT_EQ(check_file(db, &img[1]), 0);
	fx_fini(&f);
	free_images(img, 2);
	return TEST_OK;
}

/* A transaction equal to the committed state completes with status 0
 * without a raft entry: the next real commit takes the very next index. */
TEST(engine_commit, noop_takes_no_entry)
{
	struct image img[2];
	struct fx f;
	struct tc *t;
	struct hdr h1, h2;

	fx_init(&f);
	make_images(f.dir, "a", img, 2);
	ASSERT_EQ(fx_first_start(&f), 0);
	ASSERT_EQ(commit_ok(&f, txn_diff("n.db", NULL, &img[0])), 0);
	ASSERT_EQ(sync_loop(&f), 0);
	h1 = read_hdr(&f, "n.db");
	ASSERT_EQ(h1.seq, 1);
	/* Every page, same content, same size. */
	ASSERT_EQ(commit(&f, txn_diff("n.db", NULL, &img[0]), 0, &t), 0);
	ASSERT_EQ(commit_ok(&f, txn_diff("n.db", &img[0], &img[1])), 0);
	ASSERT_EQ(sync_loop(&f), 0);
	h2 = read_hdr(&f, "n.db");
	ASSERT_EQ(h2.seq, 2);
	ASSERT_EQ(h2.applied, h1.applied + 1);
	fx_stop(&f);
	ASSERT_EQ(t->calls, 1);
	tc_free(t);
	fx_fini(&f);
	free_images(img, 2);
	return TEST_OK;
}

struct racer {
	struct tc *t;
	pthread_barrier_t *start;
	int rv;
};

static void *racer_main(void *arg)
{
	struct racer *r = arg;

	pthread_barrier_wait(r->start);
	r->rv = tc_submit(r->t);
	return NULL;
}

/* Two commits of one database submitted at once from two threads both
 * succeed, one after the other: the second callback sees the first's
 * header (seq 1) and the final state is the second's (seq 2). */
TEST(engine_commit, same_db_fifo_across_threads)
{
	struct image x[2], y[2];
	const struct image *im[2];
	struct racer r[2];
	pthread_barrier_t start;
	pthread_t th[2];
	struct tc *first, *second;
	struct fx f;
	struct hdr h;
	char db[512];
	int i;

	fx_init(&f);
	make_images(f.dir, "x", x, 2);
	make_images(f.dir, "y", y, 2);
	im[0] = &x[1];
	im[1] = &y[1];
	ASSERT_EQ(fx_first_start(&f), 0);
	pthread_barrier_init(&start, NULL, 2);
	for (i = 0; i < 2; i++) {
		r[i].t = tc_new(&f, txn_diff("f.db", NULL, im[i]));
		r[i].start = &start;
		pthread_create(&th[i], NULL, racer_main, &r[i]);
	}
	for (i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		ASSERT_EQ(r[i].rv, 0);
	}
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(tc_wait(r[i].t), 0);
		ASSERT_EQ(r[i].t->status, 0);
	}
	ASSERT_EQ(sync_loop(&f), 0);
	i = r[0].t->order < r[1].t->order ? 0 : 1;
	first = r[i].t;
	second = r[1 - i].t;
	ASSERT_TRUE(!first->seen.ok); /* nothing committed before it */
	ASSERT_TRUE(second->seen.ok);
	ASSERT_EQ(second->seen.seq, 1);
	ASSERT_U64_EQ(second->seen.cksum, image_cksum(im[i]));
	h = read_hdr(&f, "f.db");
	ASSERT_EQ(h.seq, 2);
	ASSERT_EQ(h.applied, second->seen.applied + 1);
	ASSERT_U64_EQ(h.cksum, image_cksum(im[1 - i]));
	fx_path(&f, db, sizeof db, "db", "f.db");
	ASSERT_EQ(check_file(db, im[1 - i]), 0);
	fx_stop(&f);
	ASSERT_EQ(first->calls, 1);
	ASSERT_EQ(second->calls, 1);
	tc_free(first);
	tc_free(second);
	pthread_barrier_destroy(&start);
	fx_fini(&f);
	free_images(x, 2);
	free_images(y, 2);
	return TEST_OK;
}

/* A committed entry whose local write failed (the callee returned an
 * error) is written into the backing file by the next eng_start, before it
 * returns, and the database takes commits again. */
TEST(engine_replay, failed_write_replayed_at_start)
{
	struct image img[5];
	struct fx f;
	struct tc *t;
	struct hdr h;
	char db[512];
	int k;

	fx_init(&f);
	make_images(f.dir, "a", img, 5);
	ASSERT_EQ(fx_first_start(&f), 0);
	fx_path(&f, db, sizeof db, "db", "r.db");
	for (k = 0; k < 3; k++)
		ASSERT_EQ(commit_ok(&f, txn_diff("r.db", k ? &img[k - 1] : NULL,
						 &img[k])),
			  0);
	ASSERT_EQ(commit(&f, txn_diff("r.db", &img[2], &img[3]), -EIO, &t), 0);
	ASSERT_EQ(sync_loop(&f), 0);
	ASSERT_EQ(check_file(db, &img[2]), 0); /* the write "failed" */
	h = read_hdr(&f, "r.db");
	ASSERT_EQ(h.seq, 3); /* the header stays behind the files */
	fx_stop(&f);
	ASSERT_EQ(t->calls, 1);
	tc_free(t);

	ASSERT_EQ(fx_start(&f), 0);
	ASSERT_EQ(check_file(db, &img[3]), 0);
	h = read_hdr(&f, "r.db");
	ASSERT_EQ(h.seq, 4);
	ASSERT_U64_EQ(h.cksum, image_cksum(&img[3]));
	ASSERT_EQ(commit_ok(&f, txn_diff("r.db", &img[3], &img[4])), 0);
	ASSERT_EQ(check_file(db, &img[4]), 0);
	fx_fini(&f);
	free_images(img, 5);
	return TEST_OK;
}

/* After a failed local write the database refuses further commits with
 * QF_EDIVERGED until the node restarts. */
TEST(engine_commit, refused_after_failed_write)
{
	struct image img[2];
	struct fx f;
	struct tc *t;

	fx_init(&f);
	make_images(f.dir, "a", img, 2);
	ASSERT_EQ(fx_first_start(&f), 0);
	ASSERT_EQ(commit(&f, txn_diff("d.db", NULL, &img[0]), -EIO, &t), 0);
	tc_free(t);
	ASSERT_EQ(commit(&f, txn_diff("d.db", &img[0], &img[1]), 0, &t),
		  QF_EDIVERGED);
	tc_free(t);
	fx_fini(&f);
	free_images(img, 2);
	return TEST_OK;
}

/* With QF_FAULT_REFUSE_EVERY=2 every second commit fails and leaves the
 * state as it was: no sequence number, no raft entry. */
TEST(engine_fault, refuse_every_second)
{
	struct image img[3];
	struct tc *t[4];
	struct fx f;
	struct hdr h;
	char db[512];
	int k;

	fx_init(&f);
	make_images(f.dir, "a", img, 3);
	setenv("QF_FAULT_REFUSE_EVERY", "2", 1);
	ASSERT_EQ(fx_first_start(&f), 0);
	ASSERT_EQ(commit(&f, txn_diff("q.db", NULL, &img[0]), 0, &t[0]), 0);
	ASSERT_EQ(commit(&f, txn_diff("q.db", &img[0], &img[1]), 0, &t[1]),
		  QF_ERAFT);
	/* The same change again: the refused one left no trace. */
	ASSERT_EQ(commit(&f, txn_diff("q.db", &img[0], &img[1]), 0, &t[2]), 0);
	ASSERT_EQ(commit(&f, txn_diff("q.db", &img[1], &img[2]), 0, &t[3]),
		  QF_ERAFT);
	fx_stop(&f);
	ASSERT_EQ(t[1]->seen.seq, 1);
	ASSERT_EQ(t[2]->seen.seq, 1);
	ASSERT_EQ(t[3]->seen.seq, 2);
	h = read_hdr(&f, "q.db");
	ASSERT_EQ(h.seq, 2);
	ASSERT_EQ(h.applied, t[2]->seen.applied + 1);
	ASSERT_U64_EQ(h.cksum, image_cksum(&img[1]));
	fx_path(&f, db, sizeof db, "db", "q.db");
	ASSERT_EQ(check_file(db, &img[1]), 0);
	for (k = 0; k < 4; k++) {
		ASSERT_EQ(t[k]->calls, 1);
		tc_free(t[k]);
	}
	fx_fini(&f);
	free_images(img, 3);
	return TEST_OK;
}

/* Once eng_stop has begun, eng_submit refuses with QF_ESHUTDOWN, and every
 * commit it accepted before still gets exactly one callback. */
TEST(engine_stop, submit_refused_while_stopping)
{
	struct image img[1];
	struct fx f;
	struct tc *a;
	pthread_t th;
	int accepted;

	fx_init(&f);
	make_images(f.dir, "a", img, 1);
	ASSERT_EQ(fx_first_start(&f), 0);
	a = tc_new(&f, txn_diff("a.db", NULL, &img[0]));
	a->block = true;
	ASSERT_EQ(tc_submit(a), 0);
	ASSERT_EQ(tc_wait(a), 0);
	ASSERT_EQ(stop_while_held(f.e, &th, &accepted), QF_ESHUTDOWN);
	tc_release(a);
	pthread_join(th, NULL);
	f.e = NULL;
	ASSERT_EQ(a->calls, 1);
	ASSERT_EQ(a->status, 0);
	ASSERT_EQ(probes_done, accepted);
	tc_free(a);
	fx_fini(&f);
	free_images(img, 1);
	return TEST_OK;
}

/* A commit still queued when eng_stop runs gets exactly one callback, and
 * its status tells the truth: 0 (stop lets commits already in raft finish)
 * means it is there after a restart; an error other than
 * QF_ELEADERSHIPLOST (fate unknown) means it is not; and if it shows up,
 * state and file agree. */
TEST(engine_stop, queued_commit_fails_once)
{
	struct image img[1], other[1];
	struct fx f;
	struct tc *a, *b;
	struct hdr h;
	struct stat st;
	pthread_t th;
	char db[512];
	int accepted;

	fx_init(&f);
	make_images(f.dir, "a", img, 1);
	make_images(f.dir, "b", other, 1);
	ASSERT_EQ(fx_first_start(&f), 0);
	a = tc_new(&f, txn_diff("a.db", NULL, &img[0]));
	a->block = true;
	b = tc_new(&f, txn_diff("b.db", NULL, &other[0]));
	ASSERT_EQ(tc_submit(a), 0);
	ASSERT_EQ(tc_wait(a), 0);
	ASSERT_EQ(tc_submit(b), 0);
	ASSERT_EQ(stop_while_held(f.e, &th, &accepted), QF_ESHUTDOWN);
	tc_release(a);
	pthread_join(th, NULL);
	f.e = NULL;
	ASSERT_EQ(b->calls, 1);

	ASSERT_EQ(fx_start(&f), 0);
	h = read_hdr(&f, "b.db");
	fx_path(&f, db, sizeof db, "db", "b.db");
	if (h.ok && h.seq == 1) { /* the entry made it into the log */
		ASSERT_TRUE(b->status == 0 || b->status == QF_ELEADERSHIPLOST);
		ASSERT_EQ(check_file(db, &other[0]), 0);
	} else {
		ASSERT_TRUE(b->status < 0);
		ASSERT_TRUE(stat(db, &st) != 0 || st.st_size == 0);
	}
	tc_free(a);
	tc_free(b);
	fx_fini(&f);
	free_images(img, 1);
	free_images(other, 1);
	return TEST_OK;
}

/* Count the files in @dir whose names start with @prefix. */
static int count_files(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(d);
	return n;
}

/* The first index of raft's log in @dir: the lowest first index of a
 * closed segment "%016llu-%016llu" (open segments always follow those), or
 * 0 if there is none. */
static unsigned long long first_log_index(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	unsigned long long first, last, min = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (strlen(de->d_name) == 33 &&
		    sscanf(de->d_name, "%16llu-%16llu", &first, &last) == 2 &&
		    (min == 0 || first < min))
			min = first;
	closedir(d);
	return min;
}

/* With snapshots every 4 entries, a database whose backing and state files
 * are deleted is rebuilt at start from snapshot plus log, byte for byte,
 * although the log no longer holds its first entries. */
TEST(engine_snapshot, rebuilds_deleted_database)
{
	enum { N = 20 };
	struct image img[N + 1];
	struct fx f;
	struct hdr h;
	char raft[512], path[512];
	uint64_t first_index;
	int k;

	fx_init(&f);
	make_images(f.dir, "a", img, N + 1);
	f.threshold = 4;
	f.trailing = 4;
	ASSERT_EQ(fx_first_start(&f), 0);
	ASSERT_EQ(commit_ok(&f, txn_diff("s.db", NULL, &img[0])), 0);
	ASSERT_EQ(sync_loop(&f), 0);
	first_index = read_hdr(&f, "s.db").applied;
	ASSERT_TRUE(first_index > 0);
	for (k = 1; k <= N; k++)
		ASSERT_EQ(commit_ok(&f, txn_diff("s.db", &img[k - 1], &img[k])),
			  0);
	fx_stop(&f);
	snprintf(raft, sizeof raft, "%s/raft", f.data);
	ASSERT_TRUE(count_files(raft, "snapshot-") > 0);
	ASSERT_TRUE(first_log_index(raft) > first_index);
	fx_path(&f, path, sizeof path, "db", "s.db");
	ASSERT_EQ(unlink(path), 0);
	fx_path(&f, path, sizeof path, "state", "s.db.state");
	ASSERT_EQ(unlink(path), 0);
	fx_path(&f, path, sizeof path, "state", "s.db.hashes");
	ASSERT_EQ(unlink(path), 0);

	ASSERT_EQ(fx_start(&f), 0);
	fx_path(&f, path, sizeof path, "db", "s.db");
	ASSERT_EQ(check_file(path, &img[N]), 0);
	h = read_hdr(&f, "s.db");
	ASSERT_EQ(h.seq, N + 1);
	ASSERT_U64_EQ(h.cksum, image_cksum(&img[N]));
	fx_fini(&f);
	free_images(img, N + 1);
	return TEST_OK;
}

/* Rewrite the checksum in @db's state header, keeping the header valid. */
static void forge_header_cksum(const struct fx *f, const char *db)
{
	char path[512];
	uint8_t h[HDR_SIZE];
	int fd;

	snprintf(path, sizeof path, "%s/state/%s.state", f->data, db);
	fd = open(path, O_RDWR);
	if (fd < 0 || qf_pread_full(fd, h, HDR_SIZE, 0) != HDR_SIZE)
		die(path);
	qf_put_le64(h + 24, qf_get_le64(h + 24) ^ 0x5a5a5a5a5a5a5a5aull);
	qf_put_le64(h + HDR_SIZE - 8, qf_hash64(h, HDR_SIZE - 8, HDR_MAGIC));
	if (qf_pwrite_full(fd, h, HDR_SIZE, 0) != 0)
		die(path);
	close(fd);
}

/* A replayed entry whose "checksum before" disagrees with the trusted
 * local state marks the database diverged: its file is not written and
 * commits fail with QF_EDIVERGED. */
TEST(engine_divergence, replay_detects_wrong_state)
{
	struct image img[3];
	struct fx f;
	struct tc *t;
	char db[512];

	fx_init(&f);
	make_images(f.dir, "a", img, 3);
	ASSERT_EQ(fx_first_start(&f), 0);
	ASSERT_EQ(commit_ok(&f, txn_diff("v.db", NULL, &img[0])), 0);
	fx_stop(&f); /* hashes saved: the next start trusts the state */
	ASSERT_EQ(fx_start(&f), 0);
	/* Committed, but the local write fails: replayed at the next start. */
	ASSERT_EQ(commit(&f, txn_diff("v.db", &img[0], &img[1]), -EIO, &t), 0);
	tc_free(t);
	fx_stop(&f);
	forge_header_cksum(&f, "v.db");

	ASSERT_EQ(fx_start(&f), 0);
	fx_path(&f, db, sizeof db, "db", "v.db");
	ASSERT_EQ(check_file(db, &img[0]), 0);
	ASSERT_EQ(commit(&f, txn_diff("v.db", &img[1], &img[2]), 0, &t),
		  QF_EDIVERGED);
	tc_free(t);
	fx_fini(&f);
	free_images(img, 3);
	return TEST_OK;
}

/* Pretend the machine rebooted since the files were written. */
static void fake_reboot(const struct fx *f)
{
	char path[512];

	snprintf(path, sizeof path, "%s/state/boot_id", f->data);
	write_file(path, "00000000-0000-0000-0000-000000000000\n", 37);
}

/* Commit images 0..@n-1 of @name, stop, and return the file's path. */
static int commit_all_and_stop(struct fx *f, const char *name,
			       const struct image *img, int n, char *db,
			       size_t size)
{
	int k, rv = 0;

	for (k = 0; k < n && rv == 0; k++)
		rv = commit_ok(f,
			       txn_diff(name, k ? &img[k - 1] : NULL, &img[k]));
	fx_stop(f);
	fx_path(f, db, size, "db", name);
	return rv;
}

/* After a reboot, a backing file that lost a write (a data page differs
 * from the state) is reset and rebuilt from the log. */
TEST(engine_rebuild, corrupt_page_after_reboot)
{
	struct image img[4];
	struct fx f;
	struct hdr h;
	char db[512];
	uint8_t junk[16];

	fx_init(&f);
	make_images(f.dir, "a", img, 4);
	ASSERT_EQ(fx_first_start(&f), 0);
	ASSERT_EQ(commit_all_and_stop(&f, "c.db", img, 4, db, sizeof db), 0);
	memset(junk, 0xa5, sizeof junk);
	patch_file(db, (int64_t)(img[3].pages - 1) * PS + 200, junk,
		   sizeof junk);
	fake_reboot(&f);

	ASSERT_EQ(fx_start(&f), 0);
	ASSERT_EQ(check_file(db, &img[3]), 0);
	h = read_hdr(&f, "c.db");
	ASSERT_EQ(h.seq, 4);
	fx_fini(&f);
	free_images(img, 4);
	return TEST_OK;
}

/* A backing file shorter than its state (same boot) is re-hashed, reset
 * and rebuilt from the log. */
TEST(engine_rebuild, truncated_file)
{
	struct image img[4];
	struct fx f;
	char db[512];

	fx_init(&f);
	make_images(f.dir, "a", img, 4);
	ASSERT_EQ(fx_first_start(&f), 0);
	ASSERT_EQ(commit_all_and_stop(&f, "c.db", img, 4, db, sizeof db), 0);
	ASSERT_EQ(truncate(db, (off_t)(img[3].pages - 1) * PS), 0);

	ASSERT_EQ(fx_start(&f), 0);
	ASSERT_EQ(check_file(db, &img[3]), 0);
	fx_fini(&f);
	free_images(img, 4);
	return TEST_OK;
}

/* After a reboot, a backing file SQLite cannot open at all (its header
 * page is garbage) disagrees with its state like any other, so it is
 * rebuilt from the log rather than failing the start. */
TEST(engine_rebuild, unreadable_file_after_reboot)
{
	struct image img[4];
	struct fx f;
	char db[512];
	uint8_t junk[100];

	fx_init(&f);
	make_images(f.dir, "a", img, 4);
	ASSERT_EQ(fx_first_start(&f), 0);
	ASSERT_EQ(commit_all_and_stop(&f, "c.db", img, 4, db, sizeof db), 0);
	memset(junk, 0xa5, sizeof junk);
	patch_file(db, 0, junk, sizeof junk);
	fake_reboot(&f);

	ASSERT_EQ(fx_start(&f), 0);
	ASSERT_EQ(check_file(db, &img[3]), 0);
	fx_fini(&f);
	free_images(img, 4);
	return TEST_OK;
}

int main(int argc, char **argv)
{
	int rv;

	if (getenv("QF_TEST_LOG") == NULL)
		qf_log_set_level(QF_ERROR + 1);
	snprintf(root, sizeof root, "/tmp/qf_test_engine_XXXXXX");
	if (mkdtemp(root) == NULL)
		die("mkdtemp");
	rv = unit_main(argc, argv);
	rm_rf(root);
	return rv;
}
