/* Inodes of the mount and per-database tracking objects.  Private to fs/.
 *
 * Each FUSE node id is the address of a struct fs_inode (the root is
 * FUSE_ROOT_ID).  One struct per backing (st_dev, st_ino), so POSIX locks,
 * which the kernel keeps per node, and the inode numbers SQLite compares
 * are stable.  The table is guarded by one mutex; an inode's trackers by
 * its own. */
#ifndef QF_FS_INODE_H
#define QF_FS_INODE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "journal.h"
#include "wal.h"

enum fs_kind {
	FS_DIR = 0,
	FS_DB,
	FS_WAL,
	FS_SHM,
	FS_JOURNAL,
};

/* Per-database tracking shared by the database file and its journal. */
struct fs_db {
	char *name;		 /* path relative to the mount root */
	pthread_mutex_t mu;
	struct fs_dirty dirty;	 /* pages written under a live journal */
	struct fs_db *next;
};

struct fs_inode {
	uint64_t nlookup;	/* under the table mutex */
	dev_t dev;
	ino_t ino;
	int fd;			/* O_PATH descriptor of the backing file */
	enum fs_kind kind;
	char *name;		/* relative path when first looked up */
	pthread_mutex_t mu;	/* guards the fields below */
	struct fs_wal *wal;	/* FS_WAL: tracker, set up at first open */
	bool wal_stale;		/* FS_WAL: the applier wrote: rescan before
				 * tracking a local write (under @mu) */
	int rw_fd;		/* FS_WAL: backing O_RDWR for the tracker */
	struct fs_inode *hnext;
};

struct fs_itable {
	pthread_mutex_t mu;
	struct fs_inode **buckets;
	size_t n_buckets;
	struct fs_db *dbs;
	struct fs_inode root;
};

int fs__itable_init(struct fs_itable *t, const char *backing_dir);
void fs__itable_close(struct fs_itable *t);

/* Kind of a file from its name. */
enum fs_kind fs__kind_of(const char *name, bool is_dir);

/* The database a companion file belongs to: @name without its suffix, in
 * a new string.  NULL on allocation failure. */
char *fs__db_name_of(const char *name, enum fs_kind kind);

/* Find or add the inode for the backing file @name in @parent (O_PATH
 * opened here), counting one lookup.  Fills @st.  0 or -errno. */
int fs__inode_lookup(struct fs_itable *t, struct fs_inode *parent,
		     const char *name, struct fs_inode **out, struct stat *st);

/* Drop @n lookups; frees the inode at zero. */
void fs__inode_forget(struct fs_itable *t, struct fs_inode *in, uint64_t n);

/* The per-database object for @db_name, created on first use. */
struct fs_db *fs__db_get(struct fs_itable *t, const char *db_name);

#endif /* QF_FS_INODE_H */
