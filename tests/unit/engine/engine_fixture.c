/* Helpers shared by the running-engine unit tests: files, SQLite page
 * images, one engine per test, and commits as the mount makes them (see
 * engine_fixture.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine_fixture.h"
#include "tests/lib/unit.h"

#define WAIT_S 20 /* longest wait for one callback */

/* Made by ef_main(); every ef_init() directory lives under it. */
static char root[64];

/* ---- files ---- */

void ef_die(const char *what)
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
uint8_t *ef_read_file(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) != 0)
		ef_die(path);
	buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
	if (buf == NULL ||
	    qf_pread_full(fd, buf, (size_t)st.st_size, 0) != st.st_size)
		ef_die(path);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

/* ---- SQLite page images ---- */

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
void ef_make_images(const char *dir, const char *tag, struct image *img, int n)
{
	char path[512], sql[128];
	sqlite3 *db;
	size_t len;
	int k;

	snprintf(path, sizeof path, "%s/%s.scratch", dir, tag);
	if (sqlite3_open(path, &db) != SQLITE_OK)
		ef_die(path);
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
		img[k].bytes = ef_read_file(path, &len);
		if (img[k].bytes == NULL || len == 0 || len % PS != 0)
			ef_die("scratch image");
		img[k].pages = (uint32_t)(len / PS);
	}
	sqlite3_close(db);
	unlink(path);
}

void ef_free_images(struct image *img, int n)
{
	int k;

	for (k = 0; k < n; k++)
		free(img[k].bytes);
}

/* The model's rolling checksum of @im. */
uint64_t ef_image_cksum(const struct image *im)
{
	uint64_t ck = 0;
	uint32_t p;

	for (p = 1; p <= im->pages; p++)
		ck ^= qf_page_hash(p, im->bytes + (size_t)(p - 1) * PS, PS);
	return ck;
}

/* A transaction of @db turning image @from (NULL: no database) into @to:
 * the pages that differ or are new. */
struct eng_txn *ef_txn_diff(const char *db, const struct image *from,
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
		ef_die("eng_txn_new");
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
int ef_check_file(const char *path, const struct image *im)
{
	size_t len;
	uint8_t *b = ef_read_file(path, &len);
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
			ef_die("socket");
		ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
		close(fd);
		if (ok) {
			snprintf(addr, size, "127.0.0.1:%d", port);
			return;
		}
	}
	ef_die("no free port");
}

void ef_init(struct fx *f)
{
	memset(f, 0, sizeof *f);
	srand((unsigned)getpid() ^ (unsigned)time(NULL));
	snprintf(f->dir, sizeof f->dir, "%s/t_XXXXXX", root);
	if (mkdtemp(f->dir) == NULL)
		ef_die("mkdtemp");
	snprintf(f->data, sizeof f->data, "%s/data", f->dir);
	pick_address(f->addr, sizeof f->addr);
	f->threshold = 1024;
	f->trailing = 2048;
}

/* Start (or restart) the engine on the fixture's data dir. */
int ef_start(struct fx *f)
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
int ef_first_start(struct fx *f)
{
	int i, rv = -1;

	for (i = 0; i < 3 && rv != 0; i++) {
		if (i > 0) {
			rm_rf(f->data);
			pick_address(f->addr, sizeof f->addr);
		}
		rv = ef_start(f);
	}
	return rv;
}

void ef_stop(struct fx *f)
{
	if (f->e != NULL)
		eng_stop(f->e);
	f->e = NULL;
}

void ef_fini(struct fx *f)
{
	ef_stop(f);
	rm_rf(f->dir);
}

void ef_path(const struct fx *f, char *buf, size_t size, const char *sub,
	     const char *name)
{
	snprintf(buf, size, "%s/%s/%s", f->data, sub, name);
}

struct hdr ef_read_hdr(const struct fx *f, const char *db)
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

pthread_mutex_t ef_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int completions; /* callbacks run so far, under @ef_mu */

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
	struct hdr h = ef_read_hdr(t->f, t->db);
	int rv = status == 0 ? t->ret : 0;

	if (status == 0 && rv == 0)
		rv = write_backing(t);
	pthread_mutex_lock(&ef_mu);
	t->calls++;
	t->status = status;
	t->order = ++completions;
	t->txn_gone = c->txn == NULL;
	t->wal_preset = *wal_frames;
	t->seen = h;
	t->in_cb = true;
	pthread_cond_broadcast(&cond);
	while (t->block && !t->release)
		pthread_cond_wait(&cond, &ef_mu);
	pthread_mutex_unlock(&ef_mu);
	return rv;
}

/* A commit of @txn (taken over) into @db that the callback writes. */
struct tc *ef_tc_new(struct fx *f, struct eng_txn *txn)
{
	struct tc *t = calloc(1, sizeof *t);

	if (t == NULL)
		ef_die("calloc");
	t->f = f;
	snprintf(t->db, sizeof t->db, "%s", txn->db);
	t->n = txn->n;
	t->db_pages = txn->db_pages;
	t->pgnos = malloc((txn->n ? txn->n : 1) * sizeof *t->pgnos);
	t->pages = malloc(txn->n ? (size_t)txn->n * PS : 1);
	if (t->pgnos == NULL || t->pages == NULL)
		ef_die("malloc");
	memcpy(t->pgnos, txn->pgnos, txn->n * sizeof *t->pgnos);
	memcpy(t->pages, txn->pages, (size_t)txn->n * PS);
	t->c.data = t;
	t->c.txn = txn;
	t->c.type = ENG_ENTRY_TXN;
	t->c.cb = commit_cb;
	return t;
}

void ef_tc_free(struct tc *t)
{
	if (t == NULL)
		return;
	eng_txn_free(t->c.txn); /* NULL once the engine took it */
	free(t->pgnos);
	free(t->pages);
	free(t);
}

/* Submit @t; on failure the caller keeps the transaction. */
int ef_tc_submit(struct tc *t)
{
	int rv = eng_submit(t->f->e, &t->c);

	if (rv != 0)
		fprintf(stderr, "eng_submit: %s\n", qf_strerror(rv));
	return rv;
}

/* Wait until @t's callback has run; -ETIMEDOUT after WAIT_S. */
int ef_tc_wait(struct tc *t)
{
	struct timespec dl;
	int rv = 0;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += WAIT_S;
	pthread_mutex_lock(&ef_mu);
	while (!t->in_cb && rv == 0)
		rv = pthread_cond_timedwait(&cond, &ef_mu, &dl);
	pthread_mutex_unlock(&ef_mu);
	if (rv != 0)
		fprintf(stderr, "callback of db=%s never ran\n", t->db);
	return rv == 0 ? 0 : -ETIMEDOUT;
}

void ef_tc_release(struct tc *t)
{
	pthread_mutex_lock(&ef_mu);
	t->release = true;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&ef_mu);
}

/* Submit and wait; the callback's status, or a positive value if it
 * could not be submitted or never ran. */
int ef_commit(struct fx *f, struct eng_txn *txn, int ret, struct tc **out)
{
	struct tc *t = ef_tc_new(f, txn);

	t->ret = ret;
	*out = t;
	if (ef_tc_submit(t) != 0 || ef_tc_wait(t) != 0)
		return 1;
	return t->status;
}

/* Commit @txn, check status 0 and free the request. */
int ef_commit_ok(struct fx *f, struct eng_txn *txn)
{
	struct tc *t;
	int rv = ef_commit(f, txn, 0, &t);

	if (rv != 0)
		fprintf(stderr, "commit db=%s: status %d (%s)\n", t->db, rv,
			qf_strerror(rv));
	ef_tc_free(t);
	return rv;
}

/* Wait until the loop thread has finished everything it started before:
 * an empty transaction of an unused database changes nothing, so it
 * completes on the loop thread without a raft entry, after the work (a
 * previous commit's state header, say) queued ahead of it. */
int ef_sync_loop(struct fx *f)
{
	struct eng_txn *txn = eng_txn_new("sync", 0, 0);
	struct tc *t;
	int rv;

	if (txn == NULL)
		ef_die("eng_txn_new");
	rv = ef_commit(f, txn, 0, &t);
	ef_tc_free(t);
	return rv;
}

int ef_main(int argc, char **argv)
{
	int rv;

	if (getenv("QF_TEST_LOG") == NULL)
		qf_log_set_level(QF_ERROR + 1);
	snprintf(root, sizeof root, "/tmp/qf_test_engine_XXXXXX");
	if (mkdtemp(root) == NULL)
		ef_die("mkdtemp");
	rv = unit_main(argc, argv);
	rm_rf(root);
	return rv;
}
