/* The write path of the mount: writes, truncation and the parked requests
 * that complete transactions (see fs.c's header for the whole picture).
 *
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
 * Handlers never wait for the engine: they park the request and return;
 * the callback answers it on the engine's loop thread. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "journal.h"
#include "wal.h"

/* ---- parked requests and their completion ---- */

void fs__pending_free(struct pending *p)
{
	if (p->close_fd && p->fd >= 0)
		close(p->fd);
	free(p->buf);
	free(p->name);
	free(p);
}

/* A signal interrupted the writer while its commit was held: if it was
 * SIGKILL, the writer dies right after the reply, before publishing the
 * commit in the wal-index, and the index has to be rebuilt (after a
 * signal it survives, rebuilding it changes nothing). */
static void ask_reindex(struct fs *fs, const struct fs_inode *in)
{
	char *db = fs__db_name_of(in->name, FS_WAL);

	if (db != NULL && fs->cfg.on_stale_index != NULL)
		fs->cfg.on_stale_index(fs->cfg.stale_arg, db);
	free(db);
}

/* Is task @tid dying of SIGKILL (pending for it or its process)?  When
 * its status cannot be read, assume so: a needless rebuild is harmless. */
static bool being_killed(pid_t tid)
{
	char path[64], line[128];
	unsigned long long mask;
	bool killed = false, seen = false;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", (int)tid);
	f = fopen(path, "re");
	if (f == NULL)
		return true;
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "SigPnd: %llx", &mask) == 1 ||
		    sscanf(line, "ShdPnd: %llx", &mask) == 1) {
			seen = true;
			killed |= (mask & (1ull << (SIGKILL - 1))) != 0;
		}
	fclose(f);
	return killed || !seen;
}

static void writer_interrupted(struct fs *fs, const struct fs_inode *in)
{
	QF_LOG(QF_INFO, "wal=%s: the writer was interrupted (killed?) while "
	       "its commit was held: having the wal-index rebuilt", in->name);
	ask_reindex(fs, in);
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
		/* Asked before the reply frees the request; a signal that
		 * is not SIGKILL lets the writer publish its commit. */
		bool killed = fuse_req_interrupted(p->req) != 0 &&
			      being_killed(fuse_req_ctx(p->req)->pid);

		fuse_reply_write(p->req, p->size);
		if (killed)
			writer_interrupted(p->fs, in);
		return 0;
	}
	if (status != 0 && status != QF_ESHUTDOWN)
		QF_LOG(QF_WARN, "wal=%s: transaction refused: %s", in->name,
		       qf_strerror(status));
	fuse_reply_err(p->req, fs_errno(rv));
	if (zlen > 0)
		fs__queue_inval(p->fs, fs__nodeid_of(p->fs, in), (off_t)zoff,
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
	fs__pending_free(p);
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

struct pending *fs__pending_new(struct fs *fs, fuse_req_t req,
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
int fs__journal_commit(struct fs *fs, const char *db_name,
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

/* The writer's wal-index misses committed frames (fs.h on_stale_index):
 * its transaction was built on a view without them and must fail; the
 * index is rebuilt so that the next one sees them. */
static void report_stale_index(struct fs *fs, const struct fs_inode *in)
{
	QF_LOG(QF_WARN, "wal=%s: a writer does not see the last committed "
	       "transaction (its writer died before publishing it in the "
	       "-shm?): refusing it, and having the wal-index rebuilt",
	       in->name);
	ask_reindex(fs, in);
}

/* The WAL may start over (a new header) or be cut below its committed
 * frames only once SQLite checkpointed them all into the database file:
 * else the writer doing it reads a wal-index that misses them (their
 * writer died before publishing them), and they would be lost here while
 * raft holds them.  Under in->mu.  0 or FS_WAL_STALE; a check that cannot
 * be made lets the change go (and says so). */
static int wal_may_drop_frames(struct fs *fs, struct fs_inode *in)
{
	char *db;
	int fd = -1, rv;

	if (in->wal->committed == 0 || in->wal->pending != 0)
		return 0;
	db = fs__db_name_of(in->name, FS_WAL);
	if (db != NULL)
		fd = openat(fs->it.root.fd, db, O_RDONLY | O_CLOEXEC);
	free(db);
	rv = fd >= 0 ? fs__wal_in_db(in->wal, fd) : -errno;
	if (fd >= 0)
		close(fd);
	if (rv < 0)
		QF_LOG(QF_WARN, "wal=%s: cannot check that its committed frames "
		       "were checkpointed: %s", in->name, qf_strerror(rv));
	else if (rv == 1)
		QF_LOG(QF_DEBUG, "wal=%s: starts over after %llu checkpointed "
		       "frames", in->name,
		       (unsigned long long)in->wal->committed);
	return rv == 0 ? FS_WAL_STALE : 0;
}

/* A write of a different WAL header over committed frames. */
static bool starts_wal_over(const struct fs_wal *w, const char *buf,
			    size_t size, off_t off)
{
	return off == 0 && size >= FS_WAL_HDR && w->have_hdr &&
	       w->committed > 0 && memcmp(buf, w->hdr, FS_WAL_HDR) != 0;
}

int fs__wal_may_unlink(struct fs *fs, struct fs_inode *dir, const char *name)
{
	struct fs_inode *in;
	struct stat st;
	int rv;

	if (!eng_is_leader(fs->cfg.engine) ||
	    fs__inode_lookup(&fs->it, dir, name, &in, &st) != 0)
		return 0; /* a follower's applier owns its WAL; or none */
	pthread_mutex_lock(&in->mu);
	rv = in->wal != NULL && !in->wal_stale ? wal_may_drop_frames(fs, in)
					       : 0;
	pthread_mutex_unlock(&in->mu);
	if (rv == FS_WAL_STALE) {
		report_stale_index(fs, in);
		rv = -EIO;
	}
	fs__inode_forget(&fs->it, in, 1);
	return rv;
}

static void write_wal(fuse_req_t req, struct fs *fs, struct fs_inode *in,
		      const char *buf, size_t size, off_t off)
{
	struct eng_txn *t = NULL;
	struct pending *p;
	char *db_name;
	int rv;

	db_name = fs__db_name_of(in->name, FS_WAL);
	if (db_name == NULL || fs__wal_setup(in) != 0) {
		free(db_name);
		fuse_reply_err(req, EIO);
		return;
	}
	pthread_mutex_lock(&in->mu);
	if (in->wal_stale) {
		/* The applier appended frames: learn them before tracking. */
		fs__wal_close(in->wal);
		rv = fs__wal_init(in->wal, in->rw_fd);
		if (rv != 0) {
			pthread_mutex_unlock(&in->mu);
			free(db_name);
			QF_LOG(QF_ERROR, "wal=%s: rescan: %s", in->name,
			       qf_strerror(rv));
			fuse_reply_err(req, EIO);
			return;
		}
		in->wal_stale = false;
	}
	if (starts_wal_over(in->wal, buf, size, off))
		rv = wal_may_drop_frames(fs, in);
	else
		rv = 0;
	if (rv == 0)
		rv = fs__wal_write(in->wal, buf, size, (uint64_t)off, db_name,
				   &t);
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
	if (rv == FS_WAL_STALE) {
		pthread_mutex_unlock(&in->mu);
		report_stale_index(fs, in);
		fuse_reply_err(req, EIO);
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
	p = fs__pending_new(fs, req, P_WAL_WRITE, buf, size, off);
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

	ps = db_page_size(fs__fh_fd(fi), (const uint8_t *)buf, size, off,
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
	write_passthrough(req, fs__fh_fd(fi), buf, size, off);
}

static void write_journal(fuse_req_t req, struct fs *fs, struct fs_inode *in,
			  const char *buf, size_t size, off_t off,
			  struct fuse_file_info *fi)
{
	struct pending *p;
	char *db_name;
	int rv;

	if (!fs__journal_is_persist_commit(buf, size, (uint64_t)off)) {
		write_passthrough(req, fs__fh_fd(fi), buf, size, off);
		return;
	}
	db_name = fs__db_name_of(in->name, FS_JOURNAL);
	p = fs__pending_new(fs, req, P_JOURNAL_WRITE, buf, size, off);
	if (db_name == NULL || p == NULL) {
		free(db_name);
		free(p ? p->buf : NULL);
		free(p);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	p->in = in;
	p->fd = fs__fh_fd(fi);
	rv = fs__journal_commit(fs, db_name, p);
	free(db_name);
	if (rv == 0)
		return; /* parked */
	fs__pending_free(p);
	if (rv == 1)
		write_passthrough(req, fs__fh_fd(fi), buf, size, off);
	else
		fuse_reply_err(req, fs_errno(rv));
}

/* The applier's write: a committed transaction's bytes, stored as they
 * are.  A -wal's tracker learns them before its next local write. */
static void write_applied(fuse_req_t req, struct fs_inode *in,
			  const char *buf, size_t size, off_t off,
			  struct fuse_file_info *fi)
{
	if (in->kind == FS_WAL) {
		pthread_mutex_lock(&in->mu);
		in->wal_stale = true;
		pthread_mutex_unlock(&in->mu);
	}
	write_passthrough(req, fs__fh_fd(fi), buf, size, off);
}

/* A follower takes no local transactions (writes on followers' mounts
 * are a later feature): refused with EROFS at the first write, before
 * anything of the transaction is stored; SQLite reports it as a disk I/O
 * error (SQLITE_IOERR_WRITE).  Checkpoints of replicated frames into the
 * database file remain allowed. */
static bool refuse_on_follower(struct fs *fs, struct fs_inode *in,
			       const char *buf, size_t size, off_t off,
			       struct fuse_file_info *fi)
{
	uint8_t marker = 0;

	if (in->kind != FS_WAL && in->kind != FS_DB && in->kind != FS_JOURNAL)
		return false;
	if (eng_is_leader(fs->cfg.engine))
		return false;
	if (in->kind == FS_DB && !journal_live(fs, in->name) &&
	    db_page_size(fs__fh_fd(fi), (const uint8_t *)buf, size, off,
			 &marker) > 0 &&
	    marker == 2 && companion_exists(fs, in->name, "-wal"))
		return false; /* a checkpoint */
	return true;
}

void fs__op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_inode *in = fs__inode_of(fs, ino);

	if (fs__fh_applier(fi)) {
		write_applied(req, in, buf, size, off, fi);
		return;
	}
	if (refuse_on_follower(fs, in, buf, size, off, fi)) {
		QF_LOG(QF_DEBUG, "%s: write refused: not the leader", in->name);
		fuse_reply_err(req, EROFS);
		return;
	}
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
		write_passthrough(req, fs__fh_fd(fi), buf, size, off);
		break;
	}
}

/* ---- attributes, truncation ---- */

/* A leader's local truncation of the -wal below its committed frames.
 * On a follower the applier owns the WAL (its writes bypass the tracker,
 * which may be stale).  Under in->mu. */
static bool cuts_committed(struct fs *fs, const struct fs_inode *in,
			   off_t size)
{
	const struct fs_wal *w = in->wal;

	return !in->wal_stale && w->have_hdr && eng_is_leader(fs->cfg.engine) &&
	       (uint64_t)size < FS_WAL_HDR +
				    w->committed *
					((uint64_t)w->page_size +
					 FS_WAL_FRAME_HDR);
}

static int apply_size(struct fs *fs, struct fs_inode *in, int fd, off_t size)
{
	struct fs_db *db;
	int rv = 0;

	switch (in->kind) {
	case FS_WAL:
		if (fs__wal_setup(in) != 0)
			return -EIO;
		pthread_mutex_lock(&in->mu);
		rv = cuts_committed(fs, in, size) ? wal_may_drop_frames(fs, in)
						  : 0;
		if (rv == 0)
			rv = ftruncate(fd, size) == 0 ? 0 : -errno;
		if (rv == 0)
			fs__wal_truncated(in->wal, (uint64_t)size);
		pthread_mutex_unlock(&in->mu);
		if (rv == FS_WAL_STALE) {
			report_stale_index(fs, in);
			rv = -EIO;
		}
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
	int rv = fs__proc_path(in->fd, path, sizeof path);

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

void fs__op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_inode *in = fs__inode_of(fs, ino);
	struct pending *p;
	struct stat st;
	char *db_name;
	int fd = fi ? fs__fh_fd(fi) : -1, rv;
	bool own_fd = false;

	rv = setattr_others(in, attr, to_set, fd);
	if (rv == 0 && (to_set & FUSE_SET_ATTR_SIZE) && fd < 0) {
		fd = fs__open_backing(in, O_RDWR);
		own_fd = fd >= 0;
		rv = fd < 0 ? fd : 0;
	}
	if (rv == 0 && (to_set & FUSE_SET_ATTR_SIZE) && in->kind == FS_JOURNAL &&
	    attr->st_size == 0) {
		/* TRUNCATE mode's commit point. */
		db_name = fs__db_name_of(in->name, FS_JOURNAL);
		p = fs__pending_new(fs, req, P_JOURNAL_TRUNCATE, NULL, 0, 0);
		if (db_name == NULL || p == NULL) {
			rv = -ENOMEM;
		} else {
			p->in = in;
			p->fd = fd;
			p->close_fd = own_fd;
			rv = fs__journal_commit(fs, db_name, p);
			if (rv == 0) {
				free(db_name);
				return; /* parked; the callback closes fd */
			}
			p->close_fd = false;
		}
		free(db_name);
		if (p != NULL)
			fs__pending_free(p);
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

