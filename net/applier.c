/* The applier: the SQL worker thread that makes other nodes' committed
 * transactions visible through this node's mount, as SQLite would have
 * written them (engine.h, "Followers").
 *
 * Its kernel tid is announced to the daemon (HELLO), whose mount then
 * lets the files this thread opens bypass interception.  Per database it
 * keeps a SQLite connection (which ran any recovery, keeps the -shm
 * alive and holds the database's SHARED lock, so that a local reader
 * closing last cannot checkpoint and delete the WAL under us) and the
 * -wal and -shm descriptors for engine/walwrite.c.
 *
 *   new database (empty file)   the pages are written into the file
 *   WAL mode, staying WAL       frames + wal-index (eng_walw_write)
 *   rollback mode, or a switch  the WAL (if any) is checkpointed, then
 *                               the pages are written into the file
 *                               under an EXCLUSIVE lock
 *
 * One transaction at a time, in the order they arrive. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "applier.h"

#define BUSY_WAIT_MS 10000 /* SQLite's busy timeout on our connection */
#define BUSY_WARN_MS 10000 /* waiting for a lock longer: say so */
#define CHECKPOINT_FRAMES 1000

struct item {
	uint64_t index;
	uint8_t *entry;
	size_t len;
	struct item *next;
};

struct adb {
	char *name;
	char *path;
	sqlite3 *conn;
	/* Kept open for the life of @conn: closing any descriptor of a file
	 * drops every POSIX lock this process holds on it, SQLite's too
	 * (its SHARED lock on the database is what keeps a local reader
	 * closing last from deleting the WAL). */
	int db_fd;
	int wal_fd, shm_fd;
	struct eng_walw *w;
	unsigned frames; /* appended since the last checkpoint */
	struct adb *next;
};

struct net_applier {
	char *mount;
	net_applier_send_fn send;
	void *arg;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct item *head, *tail;
	bool stopping;
	int stop_now; /* atomic: give up waiting for locks */
	struct adb *dbs; /* applier thread only */
};

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
			      .tv_nsec = (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* Another millisecond for a lock that local readers or a checkpoint
 * hold (the transaction is committed: it must go in, however long they
 * take, as a local writer would wait).  False once the applier stops. */
static bool wait_lock(struct net_applier *a, const char *db, unsigned *ms)
{
	if (__atomic_load_n(&a->stop_now, __ATOMIC_ACQUIRE))
		return false;
	if (*ms > 0 && *ms % BUSY_WARN_MS == 0)
		QF_LOG(QF_WARN, "applier db=%s: waited %u s for local readers "
		       "or a checkpoint to release the database", db,
		       *ms / 1000);
	sleep_ms(1);
	(*ms)++;
	return true;
}


/* ---- per-database state ---- */

/* SQLite first: closing our descriptors while it is open would drop its
 * locks. */
static void adb_close_conn(struct adb *d)
{
	sqlite3_close(d->conn);
	d->conn = NULL;
	eng_walw_close(d->w);
	d->w = NULL;
	if (d->wal_fd >= 0)
		close(d->wal_fd);
	if (d->shm_fd >= 0)
		close(d->shm_fd);
	d->wal_fd = d->shm_fd = -1;
}

static struct adb *adb_get(struct net_applier *a, const char *name)
{
	struct adb *d;

	for (d = a->dbs; d != NULL; d = d->next)
		if (strcmp(d->name, name) == 0)
			return d;
	d = calloc(1, sizeof *d);
	if (d == NULL)
		return NULL;
	d->wal_fd = d->shm_fd = d->db_fd = -1;
	d->name = strdup(name);
	if (d->name == NULL ||
	    asprintf(&d->path, "%s/%s", a->mount, name) < 0) {
		free(d->name);
		free(d);
		return NULL;
	}
	d->next = a->dbs;
	a->dbs = d;
	return d;
}

/* A read through SQLite: runs recovery if the wal-index needs it, and
 * keeps the database's SHARED lock (WAL mode holds it until close). */
static int sqlite_touch(struct adb *d)
{
	int rc = sqlite3_exec(d->conn, "SELECT count(*) FROM sqlite_master",
			      NULL, NULL, NULL);

	if (rc != SQLITE_OK) {
		QF_LOG(QF_ERROR, "applier db=%s: %s", d->name,
		       sqlite3_errmsg(d->conn));
		return -EIO;
	}
	return 0;
}

/* Open the connection and the WAL writer (files through the mount). */
static int adb_open_wal(struct adb *d)
{
	char path[4200];
	int rc;

	if (d->w != NULL)
		return 0;
	rc = sqlite3_open_v2(d->path, &d->conn, SQLITE_OPEN_READWRITE, NULL);
	if (rc != SQLITE_OK) {
		QF_LOG(QF_ERROR, "applier db=%s: open: %s", d->name,
		       sqlite3_errstr(rc));
		adb_close_conn(d);
		return -EIO;
	}
	sqlite3_busy_timeout(d->conn, BUSY_WAIT_MS);
	(void)sqlite3_exec(d->conn, "PRAGMA wal_autocheckpoint=0", NULL, NULL,
			   NULL);
	if (sqlite_touch(d) != 0) {
		adb_close_conn(d);
		return -EIO;
	}
	snprintf(path, sizeof path, "%s-wal", d->path);
	d->wal_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	snprintf(path, sizeof path, "%s-shm", d->path);
	d->shm_fd = open(path, O_RDWR | O_CLOEXEC);
	if (d->wal_fd < 0 || d->shm_fd < 0 ||
	    eng_walw_open(&d->w, d->wal_fd, d->shm_fd) != 0) {
		QF_LOG(QF_ERROR, "applier db=%s: opening -wal/-shm: %s",
		       d->name, strerror(errno));
		adb_close_conn(d);
		return -EIO;
	}
	return 0;
}

/* ---- applying ---- */

#define BATCH_PAGES 256u /* pages held at once while writing */

/* @src's pages into the database file, a batch at a time; runs of
 * consecutive pages go in one write each (an image is one run a batch):
 * fewer round trips through the mount. */
static int write_pages(int fd, const struct eng_walw_src *src)
{
	size_t ps = src->page_size;
	uint32_t pgnos[BATCH_PAGES], i, j, k, r;
	uint8_t *buf = malloc(ps * (src->n < BATCH_PAGES ? src->n : BATCH_PAGES));
	int rv = 0;

	if (buf == NULL)
		return -ENOMEM;
	for (i = 0; i < src->n && rv == 0; i += k) {
		k = src->n - i < BATCH_PAGES ? src->n - i : BATCH_PAGES;
		rv = src->read(src, i, k, pgnos, buf, ps);
		for (j = 0; j < k && rv == 0; j = r + 1) {
			for (r = j; r + 1 < k && pgnos[r + 1] == pgnos[r] + 1;)
				r++;
			rv = qf_pwrite_full(fd, buf + (size_t)j * ps,
					    (size_t)(r - j + 1) * ps,
					    (int64_t)(pgnos[j] - 1) * (int64_t)ps);
		}
	}
	free(buf);
	if (rv == 0 && ftruncate(fd, (off_t)src->db_pages * (off_t)ps) != 0)
		rv = -errno;
	return rv;
}

/* An image file's pages (1..n back to back), read a batch at a time. */
static int read_image_file(const struct eng_walw_src *src, uint32_t i,
			   uint32_t k, uint32_t *pgnos, uint8_t *out,
			   size_t stride)
{
	int fd = *(const int *)src->arg;
	uint32_t j;
	long got;

	for (j = 0; j < k; j++) {
		pgnos[j] = i + j + 1;
		got = qf_pread_full(fd, out + j * stride, src->page_size,
				    (int64_t)(i + j) * src->page_size);
		if (got < 0)
			return (int)got;
		if ((size_t)got != src->page_size)
			return QF_EMALFORMED; /* the image is short */
	}
	return 0;
}

/* SQLite's EXCLUSIVE lock on the database file, as OFD locks: PENDING,
 * then the SHARED range, waiting out readers. */
static int lock_exclusive(struct net_applier *a, const char *db, int fd)
{
	struct flock pending = {.l_type = F_WRLCK, .l_whence = SEEK_SET,
				.l_start = 0x40000000, .l_len = 1};
	struct flock shared = {.l_type = F_WRLCK, .l_whence = SEEK_SET,
			       .l_start = 0x40000002, .l_len = 510};
	unsigned waited = 0;

	while (fcntl(fd, F_OFD_SETLK, &pending) != 0 ||
	       fcntl(fd, F_OFD_SETLK, &shared) != 0) {
		if (errno != EAGAIN && errno != EACCES)
			return -errno;
		if (!wait_lock(a, db, &waited))
			return QF_ESHUTDOWN;
	}
	return 0;
}

static int unlock_all(int fd)
{
	struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET};

	return fcntl(fd, F_OFD_SETLK, &fl) == 0 ? 0 : -errno;
}

/* Write @t straight into the database file: a new database, or one in a
 * rollback-journal mode (or switching modes), under EXCLUSIVE. */
static int apply_direct(struct net_applier *a, struct adb *d,
			const struct eng_walw_src *src, int fd, bool was_wal)
{
	int rv;

	if (was_wal && d->conn != NULL &&
	    sqlite3_wal_checkpoint_v2(d->conn, NULL,
				      SQLITE_CHECKPOINT_TRUNCATE, NULL,
				      NULL) != SQLITE_OK)
		QF_LOG(QF_WARN, "applier db=%s: checkpoint before a mode "
		       "change: %s", d->name, sqlite3_errmsg(d->conn));
	adb_close_conn(d); /* its SHARED lock would block EXCLUSIVE */
	rv = lock_exclusive(a, d->name, fd);
	if (rv != 0) {
		(void)unlock_all(fd); /* PENDING may be held */
		return rv;
	}
	rv = write_pages(fd, src);
	(void)unlock_all(fd);
	return rv;
}

static int apply_wal(struct net_applier *a, struct adb *d,
		     const struct eng_walw_src *src)
{
	unsigned waited = 0;
	bool recovered = false;
	int rv;

	rv = adb_open_wal(d);
	while (rv == 0) {
		rv = eng_walw_write_from(d->w, src);
		if (rv == -EBUSY) {
			rv = wait_lock(a, d->name, &waited) ? 0 : QF_ESHUTDOWN;
			continue;
		}
		if (rv == QF_EMALFORMED && !recovered) {
			recovered = true;
			rv = sqlite_touch(d); /* SQLite rebuilds the index */
			continue;
		}
		break;
	}
	if (rv != 0)
		return rv;
	d->frames += src->n;
	if (d->frames >= CHECKPOINT_FRAMES) {
		d->frames = 0;
		if (sqlite3_wal_checkpoint_v2(d->conn, NULL,
					      SQLITE_CHECKPOINT_PASSIVE, NULL,
					      NULL) != SQLITE_OK)
			QF_LOG(QF_WARN, "applier db=%s: checkpoint: %s",
			       d->name, sqlite3_errmsg(d->conn));
	}
	return 0;
}

/* Make every directory above @path (through the mount). */
static void make_parents(const char *path)
{
	char *p = strdup(path), *s;

	if (p == NULL)
		return;
	for (s = strchr(p + 1, '/'); s != NULL; s = strchr(s + 1, '/')) {
		*s = '\0';
		(void)mkdir(p, 0755); /* EEXIST is fine; open reports others */
		*s = '/';
	}
	free(p);
}

/* Page @pgno as a reader sees it: through the WAL when @wal. */
static int read_page(struct net_applier *a, struct adb *d,
		     const struct eng_txn *t, uint32_t pgno, bool wal,
		     uint8_t *buf)
{
	unsigned waited = 0;
	bool recovered = false;
	long got;
	int rv;

	if (!wal) {
		got = qf_pread_full(d->db_fd, buf, t->page_size,
				    (int64_t)(pgno - 1) * t->page_size);
		if (got < 0)
			return (int)got;
		memset(buf + got, 0, t->page_size - (size_t)got);
		return 0;
	}
	while (true) {
		rv = eng_walw_read_page(d->w, d->db_fd, pgno, t->page_size,
					buf);
		if (rv == -EBUSY) { /* a checkpoint holds the WRITE lock */
			if (!wait_lock(a, d->name, &waited))
				return QF_ESHUTDOWN;
			continue;
		}
		if (rv == QF_EMALFORMED && !recovered) {
			recovered = true;
			if (sqlite_touch(d) == 0)
				continue; /* SQLite rebuilt the index */
		}
		return rv;
	}
}

/* Each page about to be overwritten must be what the leader overwrote
 * (eng_txn.old_hashes), or already what this transaction writes (it was
 * sent again after a worker died partway): else the files here diverged
 * (a disk, or somebody, changed them) and nothing is written. */
static int check_files(struct net_applier *a, struct adb *d,
		       const struct eng_txn *t, bool wal)
{
	uint8_t *buf;
	uint32_t i;
	int rv = 0;

	if (t->old_hashes == NULL)
		return 0;
	if (wal) {
		rv = adb_open_wal(d);
		if (rv != 0)
			return rv;
	}
	buf = malloc(t->page_size);
	if (buf == NULL)
		return -ENOMEM;
	for (i = 0; i < t->n && rv == 0; i++) {
		if (t->old_hashes[i] == 0)
			continue; /* a page the database did not have */
		rv = read_page(a, d, t, t->pgnos[i], wal, buf);
		if (rv != 0 ||
		    qf_page_hash(t->pgnos[i], buf, t->page_size) ==
			    t->old_hashes[i] ||
		    memcmp(buf, t->pages + (size_t)i * t->page_size,
			   t->page_size) == 0)
			continue;
		QF_LOG(QF_ERROR, "applier db=%s: page %u differs from the "
		       "leader's before this transaction", d->name,
		       t->pgnos[i]);
		rv = QF_EDIVERGED;
	}
	free(buf);
	return rv;
}

/* @d's database file, opened (created with its directories) once. */
static int adb_db_fd(struct adb *d)
{
	if (d->db_fd < 0) {
		make_parents(d->path);
		d->db_fd = open(d->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (d->db_fd < 0)
			return -errno;
	}
	return d->db_fd;
}

/* Is the database file in WAL mode now (header byte 18 = 2)? */
static int file_is_wal(int fd, bool *nonempty, bool *wal)
{
	uint8_t hdr[20];
	struct stat st;

	if (fstat(fd, &st) != 0)
		return -errno;
	*nonempty = st.st_size > 0;
	*wal = st.st_size >= 100 && pread(fd, hdr, 20, 0) == 20 &&
	       hdr[18] == 2;
	return 0;
}

/* Write @src (whose first page is @first: its header says the journal
 * mode after it) as a WAL transaction or straight into the file. */
static int apply_src(struct net_applier *a, struct adb *d,
		     const struct eng_walw_src *src, const uint8_t *first,
		     bool first_is_page1)
{
	bool nonempty, was_wal, becomes_wal;
	int fd = adb_db_fd(d), rv;

	if (fd < 0)
		return fd;
	rv = file_is_wal(fd, &nonempty, &was_wal);
	if (rv != 0)
		return rv;
	becomes_wal = first_is_page1 ? first[18] == 2 : was_wal;
	QF_LOG(QF_DEBUG, "applier db=%s: %u pages, size %u -> %s", d->name,
	       src->n, src->db_pages,
	       nonempty && was_wal && becomes_wal ? "wal" : "direct");
	if (nonempty && was_wal && becomes_wal)
		return apply_wal(a, d, src);
	return apply_direct(a, d, src, fd, was_wal);
}

static int apply_txn(struct net_applier *a, const struct eng_txn *t)
{
	struct adb *d = adb_get(a, t->db);
	struct eng_walw_src src;
	bool nonempty, was_wal;
	int fd, rv;

	if (d == NULL)
		return -ENOMEM;
	fd = adb_db_fd(d);
	if (fd < 0)
		return fd;
	rv = file_is_wal(fd, &nonempty, &was_wal);
	if (rv == 0)
		rv = check_files(a, d, t, nonempty && was_wal);
	if (rv != 0)
		return rv;
	eng_walw_src_of_txn(&src, t);
	return apply_src(a, d, &src, t->pages, t->pgnos[0] == 1);
}

/* A whole database from an image file (pages 1..@db_pages), a batch at
 * a time: an image being installed is never all in memory. */
static int apply_image_file(struct net_applier *a, const char *db,
			    uint32_t page_size, uint32_t db_pages,
			    const char *path)
{
	struct eng_walw_src src = {db_pages, page_size, db_pages,
				   read_image_file, NULL};
	struct adb *d = adb_get(a, db);
	uint8_t first[100];
	int fd, rv;

	if (d == NULL)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	src.arg = &fd;
	rv = qf_pread_full(fd, first, sizeof first, 0) == (long)sizeof first
		     ? 0 : QF_EMALFORMED;
	if (rv == 0)
		rv = apply_src(a, d, &src, first, true);
	close(fd);
	return rv;
}

/* ---- the thread ---- */

static void report(struct net_applier *a, uint64_t index, const char *db,
		   int status, uint64_t wal_frames)
{
	size_t n = strlen(db);
	uint8_t *p = malloc(12 + n);

	if (p == NULL)
		return; /* the daemon sees the worker stall; it logs */
	qf_put_le32(p, (uint32_t)status);
	qf_put_le64(p + 4, wal_frames);
	memcpy(p + 12, db, n);
	(void)a->send(a->arg, NET_LINK_APPLIED, index, p, 12 + n);
	free(p);
}

/* Frames now in @db's WAL: what a snapshot reads besides the file. */
static uint64_t wal_frames_of(struct net_applier *a, const char *db)
{
	struct adb *d;

	for (d = a->dbs; d != NULL; d = d->next)
		if (strcmp(d->name, db) == 0)
			return d->w != NULL ? eng_walw_frames(d->w) : 0;
	return 0;
}

/* An APPLY's payload (link.h): the hashes to check (into the txn's
 * old_hashes), then the entry. */
static int decode_apply(const struct item *it, struct eng_entry *en)
{
	uint32_t n, i;
	size_t off;
	int rv;

	if (it->len < 4)
		return QF_EMALFORMED;
	n = qf_get_le32(it->entry);
	off = 4 + 8 * (size_t)n;
	if (off > it->len)
		return QF_EMALFORMED;
	rv = eng_entry_decode(it->entry + off, it->len - off, en);
	if (rv != 0 || n == 0)
		return rv;
	if (n != en->txn->n) {
		eng_txn_free(en->txn);
		return QF_EMALFORMED;
	}
	en->txn->old_hashes = malloc(8 * (size_t)n);
	if (en->txn->old_hashes == NULL) {
		eng_txn_free(en->txn);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++)
		en->txn->old_hashes[i] = qf_get_le64(it->entry + 4 + 8 * (size_t)i);
	return 0;
}

/* An APPLY of an image file (link.h): its fields; 0 or QF_EMALFORMED. */
static int decode_image_file(const struct item *it, uint32_t *page_size,
			     uint32_t *db_pages, char **db, char **path)
{
	uint32_t name_len, path_len;

	if (it->len < 20)
		return QF_EMALFORMED;
	*page_size = qf_get_le32(it->entry + 4);
	*db_pages = qf_get_le32(it->entry + 8);
	name_len = qf_get_le32(it->entry + 12);
	path_len = qf_get_le32(it->entry + 16);
	if ((size_t)name_len + path_len != it->len - 20 || name_len == 0 ||
	    path_len == 0 || *db_pages == 0)
		return QF_EMALFORMED;
	*db = strndup((const char *)it->entry + 20, name_len);
	*path = strndup((const char *)it->entry + 20 + name_len, path_len);
	if (*db == NULL || *path == NULL) {
		free(*db);
		free(*path);
		return -ENOMEM;
	}
	return 0;
}

static void run_image_file(struct net_applier *a, struct item *it)
{
	uint32_t page_size, db_pages;
	char *db = NULL, *path = NULL;
	int rv = decode_image_file(it, &page_size, &db_pages, &db, &path);

	if (rv != 0) {
		QF_LOG(QF_ERROR, "applier index=%llu: bad image: %s",
		       (unsigned long long)it->index, qf_strerror(rv));
		report(a, it->index, "", rv, 0); /* the index names it */
		return;
	}
	rv = apply_image_file(a, db, page_size, db_pages, path);
	if (rv != 0)
		QF_LOG(QF_ERROR, "applier db=%s index=%llu: image: %s", db,
		       (unsigned long long)it->index, qf_strerror(rv));
	report(a, it->index, db, rv, rv == 0 ? wal_frames_of(a, db) : 0);
	free(db);
	free(path);
}

/* How long a wal-index rebuild waits for the WRITE lock. */
#define REINDEX_WAIT_MS 5000

/* Have SQLite rebuild @db's wal-index from its -wal (link.h REINDEX):
 * mark it, and read through a connection of our own, which recovers. */
static void run_reindex(struct net_applier *a, struct item *it)
{
	char *db = it->len > 4 ? strndup((const char *)it->entry + 4,
					 it->len - 4)
			       : NULL;
	struct adb *d = db != NULL && eng_name_valid(db, strlen(db))
				? adb_get(a, db)
				: NULL;
	unsigned waited = 0;
	int rv = d != NULL ? adb_open_wal(d) : QF_EMALFORMED;

	/* Bounded: the applier serves every database, and a local writer
	 * may keep the WRITE lock; the next stale write asks again. */
	while (rv == 0 && (rv = eng_walw_invalidate(d->w)) == -EBUSY)
		rv = waited < REINDEX_WAIT_MS && wait_lock(a, db, &waited)
			     ? 0 : -EBUSY;
	if (rv == 0)
		rv = sqlite_touch(d);
	if (rv == 0)
		QF_LOG(QF_INFO, "applier db=%s: wal-index rebuilt by SQLite's "
		       "recovery", db);
	else
		QF_LOG(QF_ERROR, "applier db=%s: rebuilding the wal-index: %s",
		       db != NULL ? db : "?", qf_strerror(rv));
	/* The connection stays open, as a follower's does: closing our own
	 * descriptor of the -shm would drop the POSIX locks this process's
	 * SQL sessions hold on it. */
	free(db);
}

static void run_one(struct net_applier *a, struct item *it)
{
	struct eng_entry en;
	int rv;

	if (it->len >= 4 && qf_get_le32(it->entry) == NET_APPLY_IMAGE_FILE) {
		run_image_file(a, it);
		return;
	}
	if (it->len >= 4 && qf_get_le32(it->entry) == NET_APPLY_REINDEX) {
		run_reindex(a, it);
		return;
	}
	rv = decode_apply(it, &en);
	if (rv != 0) {
		QF_LOG(QF_ERROR, "applier index=%llu: bad entry: %s",
		       (unsigned long long)it->index, qf_strerror(rv));
		report(a, it->index, "", rv, 0); /* the index names it */
		return;
	}
	rv = apply_txn(a, en.txn);
	if (rv != 0)
		QF_LOG(QF_ERROR, "applier db=%s index=%llu: %s", en.txn->db,
		       (unsigned long long)it->index, qf_strerror(rv));
	report(a, it->index, en.txn->db, rv,
	       rv == 0 ? wal_frames_of(a, en.txn->db) : 0);
	eng_txn_free(en.txn);
}

static void *applier_main(void *arg)
{
	struct net_applier *a = arg;
	struct item *it;
	struct adb *d;

	(void)a->send(a->arg, NET_LINK_HELLO, (uint64_t)gettid(), NULL, 0);
	pthread_mutex_lock(&a->mu);
	while (true) {
		while (a->head == NULL && !a->stopping)
			pthread_cond_wait(&a->cond, &a->mu);
		if (a->head == NULL)
			break;
		it = a->head;
		a->head = it->next;
		if (a->head == NULL)
			a->tail = NULL;
		pthread_mutex_unlock(&a->mu);
		run_one(a, it);
		free(it->entry);
		free(it);
		pthread_mutex_lock(&a->mu);
	}
	pthread_mutex_unlock(&a->mu);
	while ((d = a->dbs) != NULL) {
		a->dbs = d->next;
		adb_close_conn(d);
		if (d->db_fd >= 0)
			close(d->db_fd);
		free(d->name);
		free(d->path);
		free(d);
	}
	return NULL;
}

int net__applier_start(struct net_applier **out, const char *mount,
		       net_applier_send_fn send, void *arg)
{
	struct net_applier *a = calloc(1, sizeof *a);

	if (a == NULL)
		return -ENOMEM;
	a->mount = strdup(mount);
	a->send = send;
	a->arg = arg;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cond, NULL);
	if (a->mount == NULL ||
	    pthread_create(&a->thread, NULL, applier_main, a) != 0) {
		free(a->mount);
		free(a);
		return -ENOMEM;
	}
	*out = a;
	return 0;
}

void net__applier_submit(struct net_applier *a, uint64_t index,
			 uint8_t *entry, size_t len)
{
	struct item *it = malloc(sizeof *it);

	if (it == NULL) {
		free(entry);
		report(a, index, "", -ENOMEM, 0); /* the daemon repairs */
		return;
	}
	it->index = index;
	it->entry = entry;
	it->len = len;
	it->next = NULL;
	pthread_mutex_lock(&a->mu);
	if (a->tail != NULL)
		a->tail->next = it;
	else
		a->head = it;
	a->tail = it;
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->mu);
}

void net__applier_stop(struct net_applier *a)
{
	struct item *it;

	if (a == NULL)
		return;
	__atomic_store_n(&a->stop_now, 1, __ATOMIC_RELEASE);
	pthread_mutex_lock(&a->mu);
	a->stopping = true;
	while ((it = a->head) != NULL) { /* replayed at the next start */
		a->head = it->next;
		free(it->entry);
		free(it);
	}
	a->tail = NULL;
	pthread_cond_signal(&a->cond);
	pthread_mutex_unlock(&a->mu);
	pthread_join(a->thread, NULL);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cond);
	free(a->mount);
	free(a);
}
