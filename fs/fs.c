/* FUSE operations of the quorafs mount (libfuse3 low-level API).
 *
 * Every operation is served on the backing files under the data dir, with
 * three kinds of interception:
 *   -wal      each write goes through the WAL tracker (wal.h); the write
 *             that completes a transaction is parked and submitted to the
 *             engine; commit_cb (loop thread) applies it to the backing
 *             file and answers it, or answers EIO and zeroes the refused
 *             transaction's first frame header.
 *   database  writes must be whole SQLite pages (page 1 with the SQLite
 *             header); pages written while the journal is live are
 *             recorded as the rollback transaction's pages.
 *   -journal  the commit points (unlink, truncate to 0, 28 zero bytes at
 *             offset 0) are parked the same way while the recorded pages
 *             are committed; on failure EIO keeps the journal hot so
 *             SQLite rolls back.
 * Handlers never wait for the engine (fuse-spike.md §4): they park the
 * request and return; the callback answers it.  Page-cache invalidation
 * runs on its own thread, after the reply.  No lock operations are
 * implemented: POSIX locks stay kernel-local on the mount's inodes. */
#define FUSE_USE_VERSION 312
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fs.h"
#include "inode.h"
#include "journal.h"
#include "wal.h"

#define TIMEOUT 3600.0 /* every change goes through the mount */

struct inval {
	fuse_ino_t ino;
	off_t off, len;
	struct inval *next;
};

struct fs {
	struct fs_config cfg;
	struct fuse_session *se;
	struct fs_itable it;
	bool mounted;
	pthread_t inval_thread;
	bool inval_started;
	pthread_mutex_t inval_mu;
	pthread_cond_t inval_cond;
	struct inval *inval_head;
	bool inval_stop;
};

enum pending_op {
	P_WAL_WRITE,
	P_JOURNAL_WRITE,
	P_JOURNAL_TRUNCATE,
	P_JOURNAL_UNLINK,
};

/* A request parked until its transaction is committed. */
struct pending {
	struct eng_commit commit;
	struct fs *fs;
	fuse_req_t req;
	enum pending_op op;
	struct fs_inode *in;	/* the -wal or -journal inode */
	struct fs_db *db;	/* journal ops */
	int fd;			/* backing descriptor to write or truncate */
	bool close_fd;
	void *buf;
	size_t size;
	off_t off;
	struct fs_inode *parent; /* unlink */
	char *name;
};

int fs_errno(int code)
{
	if (code == 0)
		return 0;
	if (code < 0 && code > -4096)
		return -code;
	return EIO;
}

static struct fs_inode *inode_of(struct fs *fs, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &fs->it.root;
	return (struct fs_inode *)(uintptr_t)ino;
}

static fuse_ino_t nodeid_of(struct fs *fs, struct fs_inode *in)
{
	return in == &fs->it.root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)in;
}

static int proc_path(int fd, char *buf, size_t size)
{
	int n = snprintf(buf, size, "/proc/self/fd/%d", fd);

	return n > 0 && (size_t)n < size ? 0 : -ENAMETOOLONG;
}

/* ---- page-cache invalidation thread ---- */

static void *inval_main(void *arg)
{
	struct fs *fs = arg;
	struct inval *iv;

	pthread_mutex_lock(&fs->inval_mu);
	for (;;) {
		while (fs->inval_head == NULL && !fs->inval_stop)
			pthread_cond_wait(&fs->inval_cond, &fs->inval_mu);
		if (fs->inval_head == NULL)
			break;
		iv = fs->inval_head;
		fs->inval_head = iv->next;
		pthread_mutex_unlock(&fs->inval_mu);
		(void)fuse_lowlevel_notify_inval_inode(fs->se, iv->ino, iv->off,
						       iv->len); /* best effort */
		free(iv);
		pthread_mutex_lock(&fs->inval_mu);
	}
	pthread_mutex_unlock(&fs->inval_mu);
	return NULL;
}

/* Queue an invalidation; call only after the reply that could hold the
 * pages locked has been sent (fuse-spike.md §2). */
static void queue_inval(struct fs *fs, fuse_ino_t ino, off_t off, off_t len)
{
	struct inval *iv = calloc(1, sizeof *iv);

	if (iv == NULL) {
		QF_LOG(QF_WARN, "out of memory queueing an invalidation");
		return;
	}
	iv->ino = ino;
	iv->off = off;
	iv->len = len;
	pthread_mutex_lock(&fs->inval_mu);
	iv->next = fs->inval_head;
	fs->inval_head = iv;
	pthread_cond_signal(&fs->inval_cond);
	pthread_mutex_unlock(&fs->inval_mu);
}

/* ---- attributes and entries ---- */

static void reply_entry(fuse_req_t req, struct fs *fs, struct fs_inode *in,
			const struct stat *st)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof e);
	e.ino = nodeid_of(fs, in);
	e.attr = *st;
	e.attr_timeout = TIMEOUT;
	e.entry_timeout = TIMEOUT;
	fuse_reply_entry(req, &e);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* Writes must reach us one by one, with their boundaries. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	if (conn->capable & FUSE_CAP_EXPLICIT_INVAL_DATA)
		conn->want |= FUSE_CAP_EXPLICIT_INVAL_DATA;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_inode *in;
	struct stat st;
	int rv;

	rv = fs__inode_lookup(&fs->it, inode_of(fs, parent), name, &in, &st);
	if (rv == -ENOENT) {
		/* A cached negative entry keeps lookups off the directory
		 * lock a held unlink takes (fuse-spike.md §3). */
		struct fuse_entry_param e;

		memset(&e, 0, sizeof e);
		e.entry_timeout = TIMEOUT;
		fuse_reply_entry(req, &e);
		return;
	}
	if (rv != 0) {
		fuse_reply_err(req, -rv);
		return;
	}
	reply_entry(req, fs, in, &st);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs *fs = fuse_req_userdata(req);

	fs__inode_forget(&fs->it, inode_of(fs, ino), nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	struct fs *fs = fuse_req_userdata(req);
	size_t i;

	for (i = 0; i < count; i++)
		fs__inode_forget(&fs->it, inode_of(fs, forgets[i].ino),
				 forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct stat st;

	(void)fi;
	if (fstatat(inode_of(fs, ino)->fd, "", &st,
		    AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
		fuse_reply_err(req, errno);
		return;
	}
	fuse_reply_attr(req, &st, TIMEOUT);
}

/* ---- parked requests and their completion ---- */

static void pending_free(struct pending *p)
{
	if (p->close_fd && p->fd >= 0)
		close(p->fd);
	free(p->buf);
	free(p->name);
	free(p);
}

/* Loop thread: the WAL transaction is committed (status 0) or refused.
 * Returns 0 once the backing WAL holds it. */
static int wal_commit_cb(struct pending *p, int status, uint64_t *wal_frames)
{
	struct fs_inode *in = p->in;
	uint64_t zoff = 0, zlen = 0;
	int rv = status;

	pthread_mutex_lock(&in->mu);
	if (status == 0) {
		rv = qf_pwrite_full(in->rw_fd, p->buf, p->size, p->off);
		if (rv == 0) {
			fs__wal_committed(in->wal);
			*wal_frames = fs__wal_frames(in->wal);
		} else {
			QF_LOG(QF_ERROR, "wal=%s: writing a committed "
			       "transaction failed: %s; a restart replays it",
			       in->name, qf_strerror(rv));
		}
	}
	if (rv != 0 && fs__wal_refused(in->wal, &zoff, &zlen) != 0)
		QF_LOG(QF_ERROR, "wal=%s: zeroing a refused transaction "
		       "failed", in->name);
	pthread_mutex_unlock(&in->mu);
	if (rv == 0) {
		fuse_reply_write(p->req, p->size);
		return 0;
	}
	if (status != 0 && status != QF_ESHUTDOWN)
		QF_LOG(QF_WARN, "wal=%s: transaction refused: %s", in->name,
		       qf_strerror(status));
	fuse_reply_err(p->req, fs_errno(rv));
	if (zlen > 0)
		queue_inval(p->fs, nodeid_of(p->fs, in), (off_t)zoff,
			    (off_t)zlen);
	return rv;
}

/* Loop thread: perform the journal's commit point, or refuse it.
 * Returns 0 once the commit point is done. */
static int journal_commit_cb(struct pending *p, int status)
{
	struct stat st = {0};
	int rv = status;

	if (status == 0) {
		switch (p->op) {
		case P_JOURNAL_WRITE:
			rv = qf_pwrite_full(p->fd, p->buf, p->size, p->off);
			break;
		case P_JOURNAL_TRUNCATE:
			rv = ftruncate(p->fd, 0) == 0 ? 0 : -errno;
			if (rv == 0 && fstat(p->fd, &st) != 0)
				rv = -errno;
			break;
		default:
			rv = unlinkat(p->parent->fd, p->name, 0) == 0 ? 0 : -errno;
			break;
		}
		if (rv != 0) {
			QF_LOG(QF_ERROR, "journal=%s: commit point failed "
			       "after raft commit: %s", p->in ? p->in->name : p->name,
			       qf_strerror(rv));
		}
	} else if (status != QF_ESHUTDOWN) {
		QF_LOG(QF_WARN, "db=%s: transaction refused: %s", p->db->name,
		       qf_strerror(status));
	}
	if (rv == 0) {
		pthread_mutex_lock(&p->db->mu);
		fs__dirty_clear(&p->db->dirty);
		pthread_mutex_unlock(&p->db->mu);
	}
	if (rv != 0)
		fuse_reply_err(p->req, fs_errno(rv));
	else if (p->op == P_JOURNAL_WRITE)
		fuse_reply_write(p->req, p->size);
	else if (p->op == P_JOURNAL_TRUNCATE)
		fuse_reply_attr(p->req, &st, TIMEOUT);
	else
		fuse_reply_err(p->req, 0);
	return rv;
}

static int commit_cb(struct eng_commit *c, int status, uint64_t *wal_frames)
{
	struct pending *p = QF_CONTAINER_OF(c, struct pending, commit);
	int rv;

	if (p->op == P_WAL_WRITE)
		rv = wal_commit_cb(p, status, wal_frames);
	else
		rv = journal_commit_cb(p, status);
	pending_free(p);
	return rv;
}

/* Hand @p to the engine; on refusal complete it here, on this thread. */
static void submit(struct pending *p)
{
	int rv;

	p->commit.data = p;
	p->commit.cb = commit_cb;
	p->commit.type = ENG_ENTRY_TXN;
	rv = eng_submit(p->fs->cfg.engine, &p->commit);
	if (rv != 0) {
		uint64_t unused = 0;

		eng_txn_free(p->commit.txn);
		p->commit.txn = NULL;
		(void)commit_cb(&p->commit, rv, &unused); /* frees @p */
	}
}

static struct pending *pending_new(struct fs *fs, fuse_req_t req,
				   enum pending_op op, const void *buf,
				   size_t size, off_t off)
{
	struct pending *p = calloc(1, sizeof *p);

	if (p == NULL)
		return NULL;
	p->fs = fs;
	p->req = req;
	p->op = op;
	p->fd = -1;
	p->size = size;
	p->off = off;
	if (buf != NULL) {
		p->buf = malloc(size ? size : 1);
		if (p->buf == NULL) {
			free(p);
			return NULL;
		}
		memcpy(p->buf, buf, size);
	}
	return p;
}

/* ---- rollback-journal transactions ---- */

/* Build the transaction of the pages written to @db under its journal,
 * reading them from the backing database file. */
static int journal_txn(struct fs *fs, struct fs_db *db, struct eng_txn **out)
{
	uint8_t hdr[100];
	struct eng_txn *t = NULL;
	struct stat st;
	uint32_t ps, db_pages, i, n = 0;
	int fd, rv = 0;
	long got;

	fd = openat(fs->it.root.fd, db->name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0) {
		rv = -errno;
		goto out;
	}
	got = qf_pread_full(fd, hdr, sizeof hdr, 0);
	ps = got == (long)sizeof hdr ? qf_sqlite_page_size(hdr) : 0;
	if (ps == 0) {
		rv = QF_ENOTSQLITE;
		goto out;
	}
	db_pages = (uint32_t)((uint64_t)st.st_size / ps);
	fs__dirty_sort(&db->dirty);
	for (i = 0; i < db->dirty.n; i++)
		if (db->dirty.pgnos[i] <= db_pages)
			n++;
	t = eng_txn_new(db->name, ps, n);
	if (t == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	t->db_pages = db_pages;
	for (i = 0, n = 0; i < db->dirty.n; i++) {
		uint32_t pg = db->dirty.pgnos[i];

		if (pg > db_pages)
			continue;
		got = qf_pread_full(fd, t->pages + (size_t)n * ps, ps,
				    (int64_t)(pg - 1) * ps);
		if (got != (long)ps) {
			rv = got < 0 ? (int)got : -EIO;
			goto out;
		}
		t->pgnos[n++] = pg;
	}
	*out = t;
	t = NULL;
out:
	eng_txn_free(t);
	close(fd);
	return rv;
}

/* A journal commit point for database @db_name: park @p and commit the
 * recorded pages, or return 1 when there is nothing to commit (the
 * caller performs the operation itself). */
static int journal_commit(struct fs *fs, const char *db_name,
			  struct pending *p)
{
	struct fs_db *db = fs__db_get(&fs->it, db_name);
	struct eng_txn *t = NULL;
	int rv;

	if (db == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&db->mu);
	if (db->dirty.n == 0 && !db->dirty.truncated) {
		pthread_mutex_unlock(&db->mu);
		return 1;
	}
	rv = journal_txn(fs, db, &t);
	pthread_mutex_unlock(&db->mu);
	if (rv != 0)
		return rv;
	p->db = db;
	p->commit.txn = t;
	submit(p);
	return 0;
}

/* Do database writes to @db_name belong to a rollback transaction?  Yes
 * while its journal exists and is not empty.  Its header need not carry
 * the magic yet: a transaction that journals no page (the first one of a
 * new database) never writes it.  Without a journal, SQLite writes a
 * database file only in WAL mode (checkpoints) or with journal_mode OFF
 * or MEMORY. */
static bool journal_live(struct fs *fs, const char *db_name)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof path, "%s-journal", db_name);
	return fstatat(fs->it.root.fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       st.st_size > 0;
}

static bool companion_exists(struct fs *fs, const char *db_name,
			     const char *suffix)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof path, "%s%s", db_name, suffix);
	return fstatat(fs->it.root.fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* ---- opening files ---- */

/* Set up the WAL tracker of @in on first open. */
static int wal_setup(struct fs_inode *in)
{
	char path[64];
	int rv = 0;

	pthread_mutex_lock(&in->mu);
	if (in->wal != NULL)
		goto out;
	rv = proc_path(in->fd, path, sizeof path);
	if (rv != 0)
		goto out;
	in->rw_fd = open(path, O_RDWR | O_CLOEXEC);
	if (in->rw_fd < 0) {
		rv = -errno;
		goto out;
	}
	in->wal = calloc(1, sizeof *in->wal);
	if (in->wal == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	rv = fs__wal_init(in->wal, in->rw_fd);
	if (rv != 0) {
		free(in->wal);
		in->wal = NULL;
	}
out:
	pthread_mutex_unlock(&in->mu);
	return rv;
}

static int open_backing(struct fs_inode *in, int flags)
{
	char path[64];
	int fd, rv;

	rv = proc_path(in->fd, path, sizeof path);
	if (rv != 0)
		return rv;
	/* O_TRUNC bypasses the trackers: apply it as a truncate below. */
	fd = open(path, (flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW | O_TRUNC)) |
			       O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Files are served through the page cache (FOPEN_KEEP_CACHE; -shm must be,
 * for mmap).  With --direct-wal, -wal files use direct I/O instead: each
 * pwrite reaches us whole (no fragments, no page locks held across a
 * parked write) but every WAL page a reader misses in its own cache
 * becomes a request (about 4x slower point reads of WAL-resident pages,
 * for no measurable commit gain: fuse-spike.md §5 and tools/bench.py). */
static void finish_open(struct fs *fs, struct fs_inode *in,
			struct fuse_file_info *fi, int fd)
{
	fi->fh = (uint64_t)fd;
	if (in->kind == FS_WAL && fs->cfg.direct_wal) {
		fi->direct_io = 1;
		fi->keep_cache = 0;
	} else {
		fi->keep_cache = 1;
	}
}

static int truncate_on_open(struct fs *fs, struct fs_inode *in, int fd)
{
	if (in->kind == FS_DB || in->kind == FS_JOURNAL) {
		struct stat st;

		if (fstat(fd, &st) == 0 && st.st_size > 0) {
			QF_LOG(QF_WARN, "%s: O_TRUNC of a database or journal "
			       "refused", in->name);
			return -EPERM;
		}
		return 0;
	}
	if (in->kind == FS_WAL) {
		pthread_mutex_lock(&in->mu);
		if (ftruncate(fd, 0) != 0) {
			pthread_mutex_unlock(&in->mu);
			return -errno;
		}
		if (in->wal)
			fs__wal_truncated(in->wal, 0);
		pthread_mutex_unlock(&in->mu);
		return 0;
	}
	(void)fs;
	return ftruncate(fd, 0) == 0 ? 0 : -errno;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_inode *in = inode_of(fs, ino);
	int fd, rv = 0;

	if (in->kind == FS_WAL)
		rv = wal_setup(in);
	fd = rv == 0 ? open_backing(in, fi->flags) : rv;
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	if (fi->flags & O_TRUNC) {
		rv = truncate_on_open(fs, in, fd);
		if (rv != 0) {
			close(fd);
			fuse_reply_err(req, -rv);
			return;
		}
	}
	finish_open(fs, in, fi, fd);
	if (fuse_reply_open(req, fi) != 0)
		close(fd); /* the request was interrupted */
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_inode *dir = inode_of(fs, parent), *in;
	struct fuse_entry_param e;
	int fd, rv;

	fd = openat(dir->fd, name,
		    (fi->flags & ~O_NOFOLLOW) | O_CREAT | O_CLOEXEC, mode);
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	memset(&e, 0, sizeof e);
	rv = fs__inode_lookup(&fs->it, dir, name, &in, &e.attr);
	if (rv == 0 && in->kind == FS_WAL)
		rv = wal_setup(in);
	if (rv != 0) {
		close(fd);
		fuse_reply_err(req, -rv);
		return;
	}
	e.ino = nodeid_of(fs, in);
	e.attr_timeout = TIMEOUT;
	e.entry_timeout = TIMEOUT;
	finish_open(fs, in, fi, fd);
	if (fuse_reply_create(req, &e, fi) != 0)
		close(fd);
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	(void)ino;
	close((int)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0); /* writes are not buffered here */
}

/* Files hold no data that only this node has: raft's log is the durable
 * copy of every transaction, so syncing the -wal, -journal and -shm would
 * only slow commits (fuse-spike.md §5).  Database files are synced. */
static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_inode *in = inode_of(fs, ino);
	int rv = 0;

	if (in->kind == FS_DB || (in->kind == FS_WAL && fs->cfg.fsync_wal))
		rv = (datasync ? fdatasync((int)fi->fh) : fsync((int)fi->fh));
	fuse_reply_err(req, rv == 0 ? 0 : errno);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	(void)ino;
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = (int)fi->fh;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

/* ---- writes ---- */

static void write_passthrough(fuse_req_t req, int fd, const char *buf,
			      size_t size, off_t off)
{
	int rv = qf_pwrite_full(fd, buf, size, off);

	if (rv != 0)
		fuse_reply_err(req, -rv);
	else
		fuse_reply_write(req, size);
}

static void write_wal(fuse_req_t req, struct fs *fs, struct fs_inode *in,
		      const char *buf, size_t size, off_t off)
{
	struct eng_txn *t = NULL;
	struct pending *p;
	char *db_name;
	int rv;

	db_name = fs__db_name_of(in->name, FS_WAL);
	if (db_name == NULL || wal_setup(in) != 0) {
		free(db_name);
		fuse_reply_err(req, EIO);
		return;
	}
	pthread_mutex_lock(&in->mu);
	rv = fs__wal_write(in->wal, buf, size, (uint64_t)off, db_name, &t);
	free(db_name);
	if (rv == FS_WAL_PASS) {
		rv = qf_pwrite_full(in->rw_fd, buf, size, off);
		if (rv != 0) {
			/* The tracker assumed the bytes landed: rescan. */
			fs__wal_close(in->wal);
			if (fs__wal_init(in->wal, in->rw_fd) != 0)
				QF_LOG(QF_ERROR, "wal=%s: rescan failed",
				       in->name);
		}
		pthread_mutex_unlock(&in->mu);
		if (rv != 0)
			fuse_reply_err(req, -rv);
		else
			fuse_reply_write(req, size);
		return;
	}
	if (rv != FS_WAL_COMMIT) {
		pthread_mutex_unlock(&in->mu);
		if (rv == -EINVAL)
			QF_LOG(QF_WARN, "wal=%s: refusing bytes that are not a "
			       "SQLite WAL (off=%lld size=%zu)", in->name,
			       (long long)off, size);
		fuse_reply_err(req, rv == FS_WAL_REFUSE ? EIO : fs_errno(rv));
		return;
	}
	p = pending_new(fs, req, P_WAL_WRITE, buf, size, off);
	if (p == NULL) {
		(void)fs__wal_refused(in->wal, NULL, NULL);
		pthread_mutex_unlock(&in->mu);
		eng_txn_free(t);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_unlock(&in->mu);
	p->in = in;
	p->commit.txn = t;
	submit(p); /* commit_cb answers */
}

/* Validate a database write: whole pages, page 1 with the SQLite header.
 * Returns the page size or a negative code. */
static int db_page_size(int fd, const uint8_t *buf, size_t size, off_t off,
			uint8_t *wal_marker)
{
	uint8_t hdr[100];
	uint32_t ps;

	if (off == 0) {
		if (size < 100 || !qf_is_sqlite_header(buf))
			return QF_ENOTSQLITE;
		memcpy(hdr, buf, 100);
	} else if (qf_pread_full(fd, hdr, 100, 0) != 100 ||
		   !qf_is_sqlite_header(hdr)) {
		return QF_ENOTSQLITE;
	}
	ps = qf_sqlite_page_size(hdr);
	if (ps == 0 || (uint64_t)off % ps != 0 || size % ps != 0)
		return QF_ENOTSQLITE;
	*wal_marker = hdr[18];
	return (int)ps;
}

static void write_db(fuse_req_t req, struct fs *fs, struct fs_inode *in,
		     const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct fs_db *db;
	uint8_t marker = 0;
	int ps, rv;

	ps = db_page_size((int)fi->fh, (const uint8_t *)buf, size, off,
			  &marker);
	if (ps < 0) {
		QF_LOG(QF_WARN, "db=%s: refusing a write that is not whole "
		       "SQLite pages (off=%lld size=%zu)", in->name,
		       (long long)off, size);
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (journal_live(fs, in->name)) {
		db = fs__db_get(&fs->it, in->name);
		if (db == NULL) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		pthread_mutex_lock(&db->mu);
		rv = fs__dirty_add(&db->dirty, (uint32_t)(off / ps) + 1,
				   (uint32_t)(size / (size_t)ps));
		pthread_mutex_unlock(&db->mu);
		if (rv != 0) {
			fuse_reply_err(req, -rv);
			return;
		}
	} else if (marker != 2 || !companion_exists(fs, in->name, "-wal")) {
		/* Neither a transaction's pages nor a checkpoint (which
		 * needs the database in WAL mode with its -wal present):
		 * journal_mode OFF or MEMORY, whose writes have no commit
		 * point to hold, or a database file copied in, whose content
		 * would bypass raft. */
		QF_LOG(QF_WARN, "db=%s: write outside a transaction refused "
		       "(journal_mode OFF and MEMORY are not supported; to "
		       "copy a database in, use sqlite3's .backup or .restore "
		       "through the mount)", in->name);
		fuse_reply_err(req, EIO);
		return;
	}
	write_passthrough(req, (int)fi->fh, buf, size, off);
}

static void write_journal(fuse_req_t req, struct fs *fs, struct fs_inode *in,
			  const char *buf, size_t size, off_t off,
			  struct fuse_file_info *fi)
{
	struct pending *p;
	char *db_name;
	int rv;

	if (!fs__journal_is_persist_commit(buf, size, (uint64_t)off)) {
		write_passthrough(req, (int)fi->fh, buf, size, off);
		return;
	}
	db_name = fs__db_name_of(in->name, FS_JOURNAL);
	p = pending_new(fs, req, P_JOURNAL_WRITE, buf, size, off);
	if (db_name == NULL || p == NULL) {
		free(db_name);
		free(p ? p->buf : NULL);
		free(p);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	p->in = in;
	p->fd = (int)fi->fh;
	rv = journal_commit(fs, db_name, p);
	free(db_name);
	if (rv == 0)
		return; /* parked */
	pending_free(p);
	if (rv == 1)
		write_passthrough(req, (int)fi->fh, buf, size, off);
	else
		fuse_reply_err(req, fs_errno(rv));
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_inode *in = inode_of(fs, ino);

	switch (in->kind) {
	case FS_WAL:
		write_wal(req, fs, in, buf, size, off);
		break;
	case FS_DB:
		write_db(req, fs, in, buf, size, off, fi);
		break;
	case FS_JOURNAL:
		write_journal(req, fs, in, buf, size, off, fi);
		break;
	default:
		write_passthrough(req, (int)fi->fh, buf, size, off);
		break;
	}
}

/* ---- attributes, truncation ---- */

static int apply_size(struct fs *fs, struct fs_inode *in, int fd, off_t size)
{
	struct fs_db *db;
	int rv = 0;

	switch (in->kind) {
	case FS_WAL:
		if (wal_setup(in) != 0)
			return -EIO;
		pthread_mutex_lock(&in->mu);
		rv = ftruncate(fd, size) == 0 ? 0 : -errno;
		if (rv == 0)
			fs__wal_truncated(in->wal, (uint64_t)size);
		pthread_mutex_unlock(&in->mu);
		return rv;
	case FS_DB:
		if (journal_live(fs, in->name)) {
			db = fs__db_get(&fs->it, in->name);
			if (db == NULL)
				return -ENOMEM;
			pthread_mutex_lock(&db->mu);
			db->dirty.truncated = true;
			pthread_mutex_unlock(&db->mu);
		}
		break;
	default:
		break;
	}
	return ftruncate(fd, size) == 0 ? 0 : -errno;
}

static int setattr_others(struct fs_inode *in, struct stat *attr, int to_set,
			  int fd)
{
	struct timespec tv[2];
	char path[64];
	int rv = proc_path(in->fd, path, sizeof path);

	if (rv != 0)
		return rv;
	if ((to_set & FUSE_SET_ATTR_MODE) &&
	    (fd >= 0 ? fchmod(fd, attr->st_mode) : chmod(path, attr->st_mode)) != 0)
		return -errno;
	if ((to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) &&
	    fchownat(in->fd, "",
		     (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1,
		     (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1,
		     AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
		return -errno;
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		tv[0].tv_nsec = UTIME_OMIT;
		tv[1].tv_nsec = UTIME_OMIT;
		if (to_set & FUSE_SET_ATTR_ATIME_NOW)
			tv[0].tv_nsec = UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_ATIME)
			tv[0] = attr->st_atim;
		if (to_set & FUSE_SET_ATTR_MTIME_NOW)
			tv[1].tv_nsec = UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_MTIME)
			tv[1] = attr->st_mtim;
		if (utimensat(AT_FDCWD, path, tv, 0) != 0)
			return -errno;
	}
	return 0;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_inode *in = inode_of(fs, ino);
	struct pending *p;
	struct stat st;
	char *db_name;
	int fd = fi ? (int)fi->fh : -1, rv;
	bool own_fd = false;

	rv = setattr_others(in, attr, to_set, fd);
	if (rv == 0 && (to_set & FUSE_SET_ATTR_SIZE) && fd < 0) {
		fd = open_backing(in, O_RDWR);
		own_fd = fd >= 0;
		rv = fd < 0 ? fd : 0;
	}
	if (rv == 0 && (to_set & FUSE_SET_ATTR_SIZE) && in->kind == FS_JOURNAL &&
	    attr->st_size == 0) {
		/* TRUNCATE mode's commit point. */
		db_name = fs__db_name_of(in->name, FS_JOURNAL);
		p = pending_new(fs, req, P_JOURNAL_TRUNCATE, NULL, 0, 0);
		if (db_name == NULL || p == NULL) {
			rv = -ENOMEM;
		} else {
			p->in = in;
			p->fd = fd;
			p->close_fd = own_fd;
			rv = journal_commit(fs, db_name, p);
			if (rv == 0) {
				free(db_name);
				return; /* parked; the callback closes fd */
			}
			p->close_fd = false;
		}
		free(db_name);
		if (p != NULL)
			pending_free(p);
		if (rv == 1)
			rv = ftruncate(fd, 0) == 0 ? 0 : -errno;
	} else if (rv == 0 && (to_set & FUSE_SET_ATTR_SIZE)) {
		rv = apply_size(fs, in, fd, attr->st_size);
	}
	if (rv == 0 && fstatat(in->fd, "", &st,
			       AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
		rv = -errno;
	if (own_fd)
		close(fd);
	if (rv != 0)
		fuse_reply_err(req, fs_errno(rv));
	else
		fuse_reply_attr(req, &st, TIMEOUT);
}

/* ---- namespace ---- */

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_inode *dir = inode_of(fs, parent), *in;
	struct stat st;
	int rv;

	if (mkdirat(dir->fd, name, mode) != 0) {
		fuse_reply_err(req, errno);
		return;
	}
	rv = fs__inode_lookup(&fs->it, dir, name, &in, &st);
	if (rv != 0)
		fuse_reply_err(req, -rv);
	else
		reply_entry(req, fs, in, &st);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fuse_req_userdata(req);

	if (unlinkat(inode_of(fs, parent)->fd, name, AT_REMOVEDIR) != 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_err(req, 0);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_inode *dir = inode_of(fs, parent);
	enum fs_kind kind = fs__kind_of(name, false);
	struct pending *p;
	char *full = NULL, *db_name = NULL;
	int rv;

	if (kind == FS_DB) {
		QF_LOG(QF_WARN, "unlink of database %s refused: deleting "
		       "databases is not supported yet", name);
		fuse_reply_err(req, EPERM);
		return;
	}
	if (kind != FS_JOURNAL) {
		rv = unlinkat(dir->fd, name, 0) == 0 ? 0 : errno;
		fuse_reply_err(req, rv);
		return;
	}
	/* DELETE mode's commit point. */
	p = pending_new(fs, req, P_JOURNAL_UNLINK, NULL, 0, 0);
	if (p == NULL || asprintf(&full, "%s%s%s", dir->name,
				  dir->name[0] ? "/" : "", name) < 0) {
		free(p);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	db_name = fs__db_name_of(full, FS_JOURNAL);
	free(full);
	p->parent = dir;
	p->name = strdup(name);
	rv = db_name && p->name ? journal_commit(fs, db_name, p) : -ENOMEM;
	free(db_name);
	if (rv == 0)
		return; /* parked */
	pending_free(p);
	if (rv == 1)
		rv = unlinkat(dir->fd, name, 0) == 0 ? 0 : -errno;
	fuse_reply_err(req, fs_errno(rv));
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	(void)parent;
	(void)newparent;
	(void)flags;
	QF_LOG(QF_WARN, "rename %s -> %s refused: renaming is not supported",
	       name, newname);
	fuse_reply_err(req, EPERM);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	(void)ino;
	(void)newparent;
	(void)newname;
	fuse_reply_err(req, EPERM);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	(void)link;
	(void)parent;
	(void)name;
	fuse_reply_err(req, EPERM);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)rdev;
	fuse_reply_err(req, EPERM); /* regular files come through create */
}

/* ---- directories ---- */

struct dir_handle {
	DIR *dp;
	off_t offset;
	struct dirent *entry;
};

static void op_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct dir_handle *d = calloc(1, sizeof *d);
	int fd;

	if (d == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fd = openat(inode_of(fs, ino)->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d->dp = fd >= 0 ? fdopendir(fd) : NULL;
	if (d->dp == NULL) {
		int err = errno;

		if (fd >= 0)
			close(fd);
		free(d);
		fuse_reply_err(req, err);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
	char *buf = calloc(1, size), *p = buf;
	size_t rem = size;

	(void)ino;
	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (off != d->offset) {
		seekdir(d->dp, off);
		d->entry = NULL;
		d->offset = off;
	}
	for (;;) {
		struct stat st;
		size_t len;

		if (d->entry == NULL) {
			errno = 0;
			d->entry = readdir(d->dp);
			if (d->entry == NULL)
				break;
		}
		memset(&st, 0, sizeof st);
		st.st_ino = d->entry->d_ino;
		st.st_mode = (mode_t)d->entry->d_type << 12;
		len = fuse_add_direntry(req, p, rem, d->entry->d_name, &st,
					d->entry->d_off);
		if (len > rem)
			break;
		p += len;
		rem -= len;
		d->offset = d->entry->d_off;
		d->entry = NULL;
	}
	fuse_reply_buf(req, buf, size - rem);
	free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;

	(void)ino;
	closedir(d->dp);
	free(d);
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
	int fd = dirfd(d->dp);

	(void)ino;
	if ((datasync ? fdatasync(fd) : fsync(fd)) != 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fuse_req_userdata(req);
	struct statvfs sv;

	(void)ino;
	if (fstatvfs(fs->it.root.fd, &sv) != 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &sv);
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.create = op_create,
};

/* ---- lifecycle ---- */

/* Remove every backing -shm under @dir_fd before mounting.  A wal-index
 * left by the previous run may predate frames the WAL holds (a writer
 * that died between its commit write being answered and publishing it):
 * without it, SQLite's first connection rebuilds the index from the WAL,
 * as its recovery would after a crash. */
static int remove_stale_shm(int dir_fd, const char *rel)
{
	struct dirent *e;
	DIR *d;
	int fd, rv = 0;

	fd = openat(dir_fd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return -errno;
	}
	while (rv == 0 && (e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);

		if (e->d_type == DT_DIR && strcmp(e->d_name, ".") != 0 &&
		    strcmp(e->d_name, "..") != 0)
			rv = remove_stale_shm(dirfd(d), e->d_name);
		else if (len > 4 && strcmp(e->d_name + len - 4, "-shm") == 0 &&
			 unlinkat(dirfd(d), e->d_name, 0) != 0)
			rv = -errno;
	}
	closedir(d);
	return rv;
}

int fs_new(struct fs **out, const struct fs_config *c)
{
	struct fs *fs = calloc(1, sizeof *fs);
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	int rv;

	if (fs == NULL)
		return -ENOMEM;
	fs->cfg = *c;
	pthread_mutex_init(&fs->inval_mu, NULL);
	pthread_cond_init(&fs->inval_cond, NULL);
	rv = fs__itable_init(&fs->it, c->backing_dir);
	if (rv == 0)
		rv = remove_stale_shm(fs->it.root.fd, ".");
	if (rv != 0)
		goto err;
	if (fuse_opt_add_arg(&args, "quorafs") != 0 ||
	    fuse_opt_add_arg(&args, "-o") != 0 ||
	    fuse_opt_add_arg(&args, c->allow_other
		    ? "fsname=quorafs,subtype=quorafs,default_permissions,allow_other"
		    : "fsname=quorafs,subtype=quorafs,default_permissions") != 0) {
		rv = -ENOMEM;
		goto err;
	}
	fs->se = fuse_session_new(&args, &ops, sizeof ops, fs);
	fuse_opt_free_args(&args);
	if (fs->se == NULL) {
		rv = -EIO;
		goto err;
	}
	if (fuse_set_signal_handlers(fs->se) != 0) {
		rv = -EIO;
		goto err;
	}
	if (fuse_session_mount(fs->se, c->mountpoint) != 0) {
		QF_LOG(QF_ERROR, "mounting %s failed", c->mountpoint);
		rv = -EIO;
		goto err;
	}
	fs->mounted = true;
	rv = pthread_create(&fs->inval_thread, NULL, inval_main, fs);
	if (rv != 0) {
		rv = -rv;
		goto err;
	}
	fs->inval_started = true;
	*out = fs;
	return 0;
err:
	fs_free(fs);
	return rv;
}

int fs_loop(struct fs *fs)
{
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	int rv;

	if (cfg == NULL)
		return -ENOMEM;
	fuse_loop_cfg_set_max_threads(cfg, fs->cfg.max_threads ? fs->cfg.max_threads : 16);
	fuse_loop_cfg_set_idle_threads(cfg, 4);
	rv = fuse_session_loop_mt(fs->se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return rv < 0 ? rv : 0;
}

void fs_free(struct fs *fs)
{
	if (fs == NULL)
		return;
	if (fs->inval_started) {
		pthread_mutex_lock(&fs->inval_mu);
		fs->inval_stop = true;
		pthread_cond_signal(&fs->inval_cond);
		pthread_mutex_unlock(&fs->inval_mu);
		pthread_join(fs->inval_thread, NULL);
	}
	if (fs->se != NULL) {
		fuse_remove_signal_handlers(fs->se);
		if (fs->mounted)
			fuse_session_unmount(fs->se);
		fuse_session_destroy(fs->se);
	}
	fs__itable_close(&fs->it);
	pthread_mutex_destroy(&fs->inval_mu);
	pthread_cond_destroy(&fs->inval_cond);
	free(fs);
}
