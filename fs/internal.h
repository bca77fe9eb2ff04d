/* What fs/fs.c (requests, namespace, lifecycle) and fs/commit.c (the
 * write path: writes, truncation, parked commit points) share.  Private
 * to fs/. */
#ifndef QF_FS_INTERNAL_H
#define QF_FS_INTERNAL_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>

#include "fs.h"
#include "inode.h"

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
	int applier_tid; /* atomic: fs_set_applier() */
};

/* A file handle: the backing descriptor, and whether the applier opened
 * it (fs_set_applier). */
#define FS_FH_APPLIER (1ull << 32)

static inline int fs__fh_fd(const struct fuse_file_info *fi)
{
	return (int)(fi->fh & 0xffffffffu);
}

static inline bool fs__fh_applier(const struct fuse_file_info *fi)
{
	return (fi->fh & FS_FH_APPLIER) != 0;
}

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

/* The inode of a FUSE node id, and back. */
struct fs_inode *fs__inode_of(struct fs *fs, fuse_ino_t ino);
fuse_ino_t fs__nodeid_of(struct fs *fs, struct fs_inode *in);
/* "/proc/self/fd/N" for @fd into @buf.  0 or -ENAMETOOLONG. */
int fs__proc_path(int fd, char *buf, size_t size);
/* Queue a page-cache invalidation, run after the reply on its own thread. */
void fs__queue_inval(struct fs *fs, fuse_ino_t ino, off_t off, off_t len);
/* Set up the WAL tracker of a -wal inode at first use.  0 or -errno. */
int fs__wal_setup(struct fs_inode *in);
/* Open the backing file of @in with @flags (O_CREAT, O_TRUNC dropped). */
int fs__open_backing(struct fs_inode *in, int flags);

struct pending *fs__pending_new(struct fs *fs, fuse_req_t req,
				enum pending_op op, const void *buf,
				size_t size, off_t off);
void fs__pending_free(struct pending *p);
/* A journal commit point for @db_name: park @p and commit the pages written
 * under the journal (0), or 1 when there is nothing to commit and the
 * caller performs the operation itself, or a negative code. */
int fs__journal_commit(struct fs *fs, const char *db_name, struct pending *p);

/* May the -wal @name in @dir be deleted (every committed frame of its
 * tracker checkpointed, fs__wal_in_db)?  0, or -EIO after asking for a
 * wal-index rebuild: the deleting connection's view misses frames. */
int fs__wal_may_unlink(struct fs *fs, struct fs_inode *dir, const char *name);

/* FUSE operations implemented in commit.c. */
void fs__op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		  size_t size, off_t off, struct fuse_file_info *fi);
void fs__op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		    int to_set, struct fuse_file_info *fi);

#endif /* QF_FS_INTERNAL_H */
