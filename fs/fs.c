/* FUSE operations of the quorafs mount (libfuse3 low-level API): lookups,
 * attributes, opening, reading, the namespace, directories, and the
 * lifecycle.  The write path lives in commit.c.
 *
 * Every operation is served on the backing files under the data dir, with
 * three kinds of interception (commit.c):
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
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "internal.h"
#include "wal.h"

void fs_set_applier(struct fs *fs, int tid)
{
	__atomic_store_n(&fs->applier_tid, tid, __ATOMIC_RELEASE);
}

int fs_errno(int code)
{
	if (code == 0)
		return 0;
	if (code < 0 && code > -4096)
		return -code;
	return EIO;
}

struct fs_inode *fs__inode_of(struct fs *fs, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &fs->it.root;
	return (struct fs_inode *)(uintptr_t)ino;
}

fuse_ino_t fs__nodeid_of(struct fs *fs, struct fs_inode *in)
{
	return in == &fs->it.root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)in;
}

int fs__proc_path(int fd, char *buf, size_t size)
{
	int n = snprintf(buf, size, "/proc/self/fd/%d", fd);

	return n > 0 && (size_t)n < size ? 0 : -ENAMETOOLONG;
}

/* ---- page-cache invalidation thread ---- */

static void *inval_main(void *arg)
{
	struct fs *fs = arg;
	struct inval *iv;
	sigset_t set;

	(void)pthread_setname_np(pthread_self(), "qf-inval");

	/* Stop signals belong to the main thread and the FUSE workers (see
	 * engine.c's loop thread). */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

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
void fs__queue_inval(struct fs *fs, fuse_ino_t ino, off_t off, off_t len)
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
	e.ino = fs__nodeid_of(fs, in);
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

	rv = fs__inode_lookup(&fs->it, fs__inode_of(fs, parent), name, &in, &st);
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

	fs__inode_forget(&fs->it, fs__inode_of(fs, ino), nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	struct fs *fs = fuse_req_userdata(req);
	size_t i;

	for (i = 0; i < count; i++)
		fs__inode_forget(&fs->it, fs__inode_of(fs, forgets[i].ino),
				 forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct stat st;

	(void)fi;
	if (fstatat(fs__inode_of(fs, ino)->fd, "", &st,
		    AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
		fuse_reply_err(req, errno);
		return;
	}
	fuse_reply_attr(req, &st, TIMEOUT);
}

/* ---- opening files ---- */

/* Set up the WAL tracker of @in on first open. */
int fs__wal_setup(struct fs_inode *in)
{
	char path[64];
	int rv = 0;

	pthread_mutex_lock(&in->mu);
	if (in->wal != NULL)
		goto out;
	rv = fs__proc_path(in->fd, path, sizeof path);
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

int fs__open_backing(struct fs_inode *in, int flags)
{
	char path[64];
	int fd, rv;

	rv = fs__proc_path(in->fd, path, sizeof path);
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
static void finish_open(fuse_req_t req, struct fs *fs, struct fs_inode *in,
			struct fuse_file_info *fi, int fd)
{
	int applier = __atomic_load_n(&fs->applier_tid, __ATOMIC_ACQUIRE);

	fi->fh = (uint64_t)fd;
	if (applier != 0 && fuse_req_ctx(req)->pid == applier)
		fi->fh |= FS_FH_APPLIER;
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
	struct fs_inode *in = fs__inode_of(fs, ino);
	int fd, rv = 0;

	if (in->kind == FS_WAL)
		rv = fs__wal_setup(in);
	fd = rv == 0 ? fs__open_backing(in, fi->flags) : rv;
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
	finish_open(req, fs, in, fi, fd);
	if (fuse_reply_open(req, fi) != 0)
		close(fd); /* the request was interrupted */
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_inode *dir = fs__inode_of(fs, parent), *in;
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
		rv = fs__wal_setup(in);
	if (rv != 0) {
		close(fd);
		fuse_reply_err(req, -rv);
		return;
	}
	e.ino = fs__nodeid_of(fs, in);
	e.attr_timeout = TIMEOUT;
	e.entry_timeout = TIMEOUT;
	finish_open(req, fs, in, fi, fd);
	if (fuse_reply_create(req, &e, fi) != 0)
		close(fd);
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	(void)ino;
	close(fs__fh_fd(fi));
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
	struct fs_inode *in = fs__inode_of(fs, ino);
	int rv = 0;

	if (in->kind == FS_DB || (in->kind == FS_WAL && fs->cfg.fsync_wal))
		rv = (datasync ? fdatasync(fs__fh_fd(fi)) : fsync(fs__fh_fd(fi)));
	fuse_reply_err(req, rv == 0 ? 0 : errno);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	(void)ino;
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = fs__fh_fd(fi);
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

/* ---- namespace ---- */

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_inode *dir = fs__inode_of(fs, parent), *in;
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

	if (unlinkat(fs__inode_of(fs, parent)->fd, name, AT_REMOVEDIR) != 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_err(req, 0);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_inode *dir = fs__inode_of(fs, parent);
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
	if (kind == FS_WAL) {
		rv = fs__wal_may_unlink(fs, dir, name);
		if (rv == 0)
			rv = unlinkat(dir->fd, name, 0) == 0 ? 0 : -errno;
		fuse_reply_err(req, -rv);
		return;
	}
	if (kind != FS_JOURNAL) {
		rv = unlinkat(dir->fd, name, 0) == 0 ? 0 : errno;
		fuse_reply_err(req, rv);
		return;
	}
	/* DELETE mode's commit point. */
	p = fs__pending_new(fs, req, P_JOURNAL_UNLINK, NULL, 0, 0);
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
	rv = db_name && p->name ? fs__journal_commit(fs, db_name, p) : -ENOMEM;
	free(db_name);
	if (rv == 0)
		return; /* parked */
	fs__pending_free(p);
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
	fd = openat(fs__inode_of(fs, ino)->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
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
	.setattr = fs__op_setattr,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.open = op_open,
	.read = op_read,
	.write = fs__op_write,
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

void fs_exit(struct fs *fs)
{
	struct statfs sf;

	fuse_session_exit(fs->se);
	/* The loop notices only when a worker finishes a request: make one.
	 * STATFS is never answered from the kernel's caches. */
	(void)statfs(fs->cfg.mountpoint, &sf);
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
		if (fs->mounted)
			fuse_session_unmount(fs->se);
		fuse_session_destroy(fs->se);
	}
	fs__itable_close(&fs->it);
	pthread_mutex_destroy(&fs->inval_mu);
	pthread_cond_destroy(&fs->inval_cond);
	free(fs);
}
