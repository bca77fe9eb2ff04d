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

/* Runs of consecutive pages go in one write each (a snapshot image is
 * one run): fewer round trips through the mount. */
static int write_pages(int fd, const struct eng_txn *t)
{
	uint32_t i, j;
	int rv;

	for (i = 0; i < t->n; i = j + 1) {
		for (j = i; j + 1 < t->n && t->pgnos[j + 1] == t->pgnos[j] + 1;)
			j++;
		rv = qf_pwrite_full(fd, t->pages + (size_t)i * t->page_size,
				    (size_t)(j - i + 1) * t->page_size,
				    (int64_t)(t->pgnos[i] - 1) * t->page_size);
		if (rv != 0)
			return rv;
	}
	if (ftruncate(fd, (off_t)t->db_pages * t->page_size) != 0)
		return -errno;
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
			const struct eng_txn *t, int fd, bool was_wal)
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
	rv = write_pages(fd, t);
	(void)unlock_all(fd);
	return rv;
}

static int apply_wal(struct net_applier *a, struct adb *d,
		     const struct eng_txn *t)
{
	unsigned waited = 0;
	bool recovered = false;
	int rv;

	rv = adb_open_wal(d);
	while (rv == 0) {
		rv = eng_walw_write(d->w, t);
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
	d->frames += t->n;
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

static int apply_txn(struct net_applier *a, const struct eng_txn *t)
{
	struct adb *d = adb_get(a, t->db);
	uint8_t hdr[20];
	bool was_wal, becomes_wal;
	struct stat st;
	int fd, rv;

	if (d == NULL)
		return -ENOMEM;
	if (d->db_fd < 0) {
		make_parents(d->path);
		d->db_fd = open(d->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (d->db_fd < 0)
			return -errno;
	}
	fd = d->db_fd;
	if (fstat(fd, &st) != 0)
		return -errno;
	was_wal = st.st_size >= 100 && pread(fd, hdr, 20, 0) == 20 &&
		  hdr[18] == 2;
	becomes_wal = t->pgnos[0] == 1 ? t->pages[18] == 2 : was_wal;
	QF_LOG(QF_DEBUG, "applier db=%s: %u pages, size %u -> %s", d->name,
	       t->n, t->db_pages,
	       st.st_size > 0 && was_wal && becomes_wal ? "wal" : "direct");
	rv = check_files(a, d, t, st.st_size > 0 && was_wal);
	if (rv != 0)
		return rv;
	if (st.st_size > 0 && was_wal && becomes_wal)
		return apply_wal(a, d, t);
	return apply_direct(a, d, t, fd, was_wal);
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

static void run_one(struct net_applier *a, struct item *it)
{
	struct eng_entry en;
	int rv;

	rv = decode_apply(it, &en);
	if (rv != 0) {
		QF_LOG(QF_ERROR, "applier index=%llu: bad entry: %s",
		       (unsigned long long)it->index, qf_strerror(rv));
		return; /* the daemon sent it: it cannot be matched */
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
		return; /* the entry stays unapplied; the daemon waits */
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
