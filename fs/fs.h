/* The FUSE front end: presents the backing database files through a
 * mount, and holds each write, truncate or unlink that completes a SQLite
 * transaction until the engine has committed it through raft.
 *
 * Threads: fs_new, fs_loop and fs_free run on the main thread; FUSE
 * requests are served by libfuse's worker threads; commit callbacks run on
 * the engine's loop thread and answer the held requests from there. */
#ifndef QF_FS_H
#define QF_FS_H

#include <stdbool.h>

#include "../engine/engine.h"

struct fs;

struct fs_config {
	const char *mountpoint;
	const char *backing_dir; /* eng_db_dir(engine) */
	struct eng *engine;
	bool fsync_wal;		 /* fdatasync -wal on FSYNC (default off:
				  * raft's log is the durable copy) */
	unsigned max_threads;	 /* FUSE worker threads */
	bool allow_other;	 /* let other users see the mount */
	bool direct_wal;	 /* serve -wal with direct I/O instead of
				  * through the page cache */
	/* A local writer of @db would overwrite committed frames: its
	 * wal-index misses a transaction (its writer died between the commit
	 * and publishing it).  The write gets EIO; this should have the
	 * index rebuilt.  A FUSE worker thread: must not block.  NULL: none. */
	void (*on_stale_index)(void *arg, const char *db);
	void *stale_arg;
};

/* Mount.  0 or a negative code; logs why it failed. */
int fs_new(struct fs **fs, const struct fs_config *c);
/* Serve until fs_exit() or an external unmount.  0 or -errno. */
int fs_loop(struct fs *fs);
/* Make fs_loop() return.  Any thread but a FUSE worker. */
void fs_exit(struct fs *fs);
/* Unmount and free.  Held requests must have been answered (eng_stop
 * answers them through their callbacks). */
void fs_free(struct fs *fs);

/* The thread (its kernel tid, as FUSE reports callers) that applies other
 * nodes' transactions through this mount; 0 for none.  Files it opens
 * get handles whose writes go straight to the backing files: they carry
 * committed transactions, and are neither intercepted nor refused.  Any
 * thread. */
void fs_set_applier(struct fs *fs, int tid);

/* The errno a FUSE reply carries for a return code: 0 for 0, the errno of
 * a -errno, EIO for quorafs's own codes. */
int fs_errno(int code);

#endif /* QF_FS_H */
