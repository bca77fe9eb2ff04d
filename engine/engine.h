/* The replication engine: raft, the state machine, log entries, per-database
 * state and snapshots.  Knows nothing of FUSE or sockets.
 *
 * Threads: eng_submit() may be called from any thread and never blocks.
 * Everything else runs on the engine's libuv loop thread, which is the only
 * thread that calls raft, unless a function says otherwise. */
#ifndef QF_ENGINE_H
#define QF_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/lib.h"

/* One committed transaction of one database: the last image of each page it
 * changed and the database size afterwards. */
struct eng_txn {
	char *db;	    /* path relative to the mount root, no leading '/' */
	uint32_t page_size; /* bytes per page, power of two 512..65536 */
	uint32_t db_pages;  /* database size in pages after the commit */
	uint32_t n;	    /* number of pages carried */
	uint32_t *pgnos;    /* n page numbers, strictly ascending, 1..db_pages */
	uint8_t *pages;	    /* n * page_size bytes; page i at i * page_size */
	/* Set by the engine (loop thread) when the entry is built. */
	uint64_t seq;	       /* per-database sequence number, 1 = first */
	uint64_t cksum_before; /* rolling checksum before this transaction */
	uint64_t cksum_after;  /* rolling checksum after it */
	/* Not in the entry.  A follower's engine sets it when it hands the
	 * transaction to the applier: the hash (qf_page_hash) each carried
	 * page has before it, for the applier to check its files against;
	 * 0 = nothing to check (a new page).  NULL: no check. */
	uint64_t *old_hashes;
	/* An image kept in a file instead (eng_txn_image_file): n is 0, the
	 * file holds pages 1..db_pages back to back, @hashes their hashes.
	 * The transaction owns the file: freeing it removes the file. */
	char *file;
	uint64_t *hashes;
};

/* Allocate a transaction for @n pages of @page_size bytes, zeroed.  NULL on
 * allocation failure.  @db is copied. */
struct eng_txn *eng_txn_new(const char *db, uint32_t page_size, uint32_t n);
void eng_txn_free(struct eng_txn *t);
/* A whole database as one transaction: pages 1..@db_pages from @pages
 * (db_pages * page_size bytes, malloc'd), which it takes, also when it
 * fails (NULL).  A snapshot's or a leader's image being installed. */
struct eng_txn *eng_txn_image(const char *db, uint32_t page_size,
			      uint32_t db_pages, uint8_t *pages);
/* The same with the pages in the file at @path and their @hashes
 * (malloc'd), which it takes, also when it fails (NULL; the file is then
 * removed).  A leader's image fetched to disk (net/resync.c). */
struct eng_txn *eng_txn_image_file(const char *db, uint32_t page_size,
				   uint32_t db_pages, const char *path,
				   uint64_t *hashes);

/* ---- Writing a WAL-mode database as SQLite would (engine/walwrite.c) ----
 *
 * For followers: append a transaction to a database's -wal and index it
 * in its -shm so that local SQLite readers see it at once and are never
 * blocked (sqlite-io.md §1, §3, §4).  The caller opens the -wal and -shm
 * (through the mount, on a node) and keeps a SQLite connection open on
 * the database that has read from it: that connection ran any recovery,
 * so the wal-index is initialised, and holds the -shm alive.  Any
 * thread; one writer object per database, used by one thread at a time.
 * Nothing is synced: durability is raft's. */
struct eng_walw;

/* @wal_fd and @shm_fd are kept (not owned) until eng_walw_close. */
int eng_walw_open(struct eng_walw **w, int wal_fd, int shm_fd);
/* Append @t (pages ascending, db_pages its new size) and publish it.
 * 0; -EBUSY when the WRITE lock is held (a checkpoint or a local
 * writer: retry); QF_EMALFORMED when the wal-index is not initialised
 * or does not match the -wal (let SQLite recover, then retry);
 * -EINVAL for an empty transaction; else -errno.  On error nothing is
 * published: readers see the database as before. */
int eng_walw_write(struct eng_walw *w, const struct eng_txn *t);
/* Where eng_walw_write_from takes its pages: @n pages of @page_size
 * bytes, the database @db_pages pages after them.  @read fills @k pages
 * from the @i-th (0-based), page j at @out + j * @stride, and their
 * numbers (ascending) into @pgnos.  0 or -errno. */
struct eng_walw_src {
	uint32_t n, page_size, db_pages;
	int (*read)(const struct eng_walw_src *src, uint32_t i, uint32_t k,
		    uint32_t *pgnos, uint8_t *out, size_t stride);
	void *arg;
};
/* eng_walw_write with pages read a bounded batch at a time (a whole
 * database being installed need not be in memory). */
int eng_walw_write_from(struct eng_walw *w, const struct eng_walw_src *src);
/* @t's pages as a source (read from memory; @t must outlive @src). */
void eng_walw_src_of_txn(struct eng_walw_src *src, const struct eng_txn *t);
void eng_walw_close(struct eng_walw *w);
/* Read page @pgno of the database as a new reader would see it: its
 * last frame in the published log, else the database file (@db_fd);
 * zeros past the end, under the WRITE lock.  0, -EBUSY (the lock is
 * held: retry), QF_EMALFORMED (an index SQLite must recover first, or a
 * log of another page size) or -errno. */
int eng_walw_read_page(struct eng_walw *w, int db_fd, uint32_t pgno,
		       uint32_t page_size, uint8_t *buf);
/* Frames in the log after the last successful write (its mxFrame). */
uint32_t eng_walw_frames(const struct eng_walw *w);
/* Mark the wal-index for recovery: the next connection to read it
 * rebuilds it from the -wal, so that it holds every transaction the -wal
 * does (one whose writer died before publishing it, say).  0, -EBUSY (the
 * WRITE lock is held: retry) or -errno. */
int eng_walw_invalidate(struct eng_walw *w);

/* ---- Log entry codec (engine/entry.c).  Pure functions, any thread. ----
 *
 * Encoding, version 1, all integers little-endian, every section padded to
 * 8 bytes:
 *   0  u32 magic "QFE1" (0x31454651)   4 u8 version (1)   5 u8 type
 *   6  u16 reserved (0)                8 u32 total length of the entry
 *   12 u32 name length (bytes, without NUL)
 *   16 u64 origin node id              24 u64 nonce (origin's request id)
 *   32 u64 seq     40 u64 cksum_before     48 u64 cksum_after
 *   56 u32 page_size   60 u32 db_pages   64 u32 n   68 u32 reserved (0)
 *   72 name bytes, zero-padded to a multiple of 8
 *   then n x u32 page numbers, zero-padded to a multiple of 8
 *   then n x page_size page images
 *   last 8 bytes: u64 qf_hash64 of everything before it, seed 0x51460001.
 * Decoding rejects (QF_EMALFORMED) a wrong magic, unknown version or type,
 * a length that disagrees with the buffer or the counts, a bad page size,
 * page numbers not strictly ascending or 0 or above db_pages (for TXN), a
 * name that is not a canonical relative path (empty, over 4095 bytes, a
 * NUL, or an empty, "." or ".." component: "a..b" is valid, "a/../b",
 * "/a", "a//b" and "a/" are not),
 * non-zero padding or reserved fields, and a trailer hash mismatch. */
enum {
	ENG_ENTRY_TXN = 1,    /* a transaction: txn fully set */
	ENG_ENTRY_UNLINK = 2, /* delete database txn->db: n = 0, db_pages = 0 */
};

struct eng_entry {
	int type;
	uint64_t origin; /* node id that created the entry */
	uint64_t nonce;	 /* origin-local id matching the entry to its request */
	struct eng_txn *txn;
};

/* Bytes needed to encode @t. */
size_t eng_entry_size(const struct eng_txn *t);
/* Encode into @buf, which has eng_entry_size(t) bytes. */
void eng_entry_encode(int type, const struct eng_txn *t, uint64_t origin,
		      uint64_t nonce, void *buf);
/* Decode; on 0 @e->txn is a new transaction the caller frees with
 * eng_txn_free().  On error nothing is allocated and @e->txn is NULL. */
int eng_entry_decode(const void *buf, size_t len, struct eng_entry *e);

/* Is @name (@len bytes, no NUL needed) a valid database name: a canonical
 * relative path as the entry format requires?  Used for every name that
 * arrives from outside (entries, snapshots). */
bool eng_name_valid(const void *name, size_t len);

/* Copy the database name of an encoded entry into @name (@size bytes)
 * after checking only the fixed header and the name, not the pages or the
 * trailer: for skipping entries that replay finds already applied.  0 or
 * QF_EMALFORMED. */
int eng_entry_peek_db(const void *buf, size_t len, char *name, size_t size);

/* ---- The running engine (engine/engine.c) ---- */

struct eng;

struct raft_uv_transport;
struct uv_loop_s;

struct eng_config {
	const char *data_dir;	/* raft/, db/ and state/ live here */
	/* Raft's network transport (kept, not owned), or NULL for libraft's
	 * own TCP transport listening on @address.  The engine sets its
	 * @data to the engine's uv_loop_t before raft uses it. */
	struct raft_uv_transport *transport;
	uint64_t id;		/* raft node id, > 0 */
	const char *address;	/* HOST:PORT */
	bool bootstrap;		/* form a one-node cluster if pristine */
	unsigned snapshot_threshold; /* entries between snapshots (0: 4096) */
	unsigned snapshot_trailing;  /* entries kept behind a snapshot (0: 4096) */
	/* Cluster mode: eng_start returns once raft runs, and
	 * eng_wait_ready() waits for this node to be leader or a caught-up
	 * follower (a node with no configuration waits to be added when
	 * @join, else fails).  Without it eng_start waits until this node
	 * leads (one-node use). */
	bool cluster;
	bool join;
	unsigned ready_timeout_ms; /* cluster mode (0: 30000) */
	unsigned election_timeout_ms;  /* raft (0: 1000) */
	unsigned heartbeat_timeout_ms; /* raft (0: 100) */
};

/* ---- Followers: applying other nodes' transactions through the mount ----
 *
 * On a mounted node, a transaction from another node is made visible by
 * an applier (the daemon's SQL worker process, through the mount), not by
 * the engine: the engine checks the entry against its state (sequence,
 * checksum before and after) in log order, hands it to the applier, and
 * records the database's applied index once the applier is done, one
 * transaction per database at a time.  Called on the loop thread; @t
 * stays valid until eng_apply_done() for it. */
typedef void (*eng_apply_fn)(void *arg, const struct eng_txn *t,
			     uint64_t index);

/* Any thread.  From now on the mount may exist: replicated transactions
 * wait for the applier instead of being written into the backing files.
 * @fn NULL only holds them (before the mount is up); a later call with an
 * applier sends what waits.  0, or an error when the engine stops. */
int eng_set_applier(struct eng *e, eng_apply_fn fn, void *arg);

/* Loop thread: the applier finished @index of database @db, leaving
 * @wal_frames frames in its WAL (what a snapshot reads besides the
 * database file).  A failure marks the database diverged (its files no
 * longer follow the log). */
void eng_apply_done(struct eng *e, const char *db, uint64_t index,
		    int status, uint64_t wal_frames);

/* ---- Resynchronising a database whose files diverged (resync.c) ----
 *
 * A follower's applier that finds its files differing from the state
 * (a page it is about to overwrite does not hash as the leader's did)
 * marks the database diverged.  The engine then calls the resync
 * function, which fetches the leader's image of it (eng_image_describe
 * and eng_image_write there, over the network) and hands it back with
 * eng_resync; the applier writes it through the mount. */

/* Loop thread: ask for a correct image of @db.  The callee answers with
 * eng_resync, or retries until that says -EALREADY. */
typedef void (*eng_resync_fn)(void *arg, const char *db);
/* Any thread.  0, or an error when the engine stops. */
int eng_set_resync(struct eng *e, eng_resync_fn fn, void *arg);

/* A database's committed state on the node that describes it. */
struct eng_image {
	uint32_t page_size, db_pages;
	uint64_t seq, cksum;
	uint64_t wal_frames; /* local: where the files hold it */
};
/* Loop thread, on the leader: @db's state now.  0, QF_ENOTLEADER,
 * -ENOENT (no such database, or empty) or QF_EDIVERGED. */
int eng_image_describe(struct eng *e, const char *db, struct eng_image *im);
/* Any thread (the threadpool): write @db's pages at @im into @fd (pages
 * 1..db_pages back to back, through a bounded buffer), retrying while
 * writers move on.  0, QF_EDIVERGED (never caught that state: describe
 * again) or -errno. */
int eng_image_write(struct eng *e, const char *db,
		    const struct eng_image *im, int fd);
/* The data dir's state/ directory: where scratch images are kept. */
const char *eng_state_dir(const struct eng *e);
/* Loop thread, on a follower: install @t (every page 1..db_pages, or an
 * image file: eng_txn_image_file; seq and cksum_after the image's) as
 * @db's files; taken.  0 when queued,
 * -EALREADY (not diverged: nothing to do), -EAGAIN (older than this
 * node's state: fetch again), QF_EMALFORMED (not pages 1..db_pages).  An
 * image that fails its checksum is refused when its turn comes, and
 * asked for again. */
int eng_resync(struct eng *e, struct eng_txn *t);

struct eng_member;

/* Quorum-loss recovery (engine/recover.c): with the node stopped, append
 * a configuration of exactly @members to its raft log (raft_recover).
 * Main thread, no engine running on @data_dir.  0, -errno, or -EIO when
 * raft refused. */
int eng_recover(const char *data_dir, const struct eng_member *members,
		unsigned n);

/* One database's state on this node (eng_databases). */
struct eng_db_state {
	const char *name; /* valid until the loop runs on */
	uint64_t applied, seq, cksum;
	uint32_t pages, page_size;
	bool diverged;
};

/* Loop thread: up to @max databases into @out (their total is returned),
 * raft's applied index, and whether every replicated transaction is in
 * the files (nothing waits for the applier). */
size_t eng_databases(struct eng *e, struct eng_db_state *out, size_t max,
		     uint64_t *applied, bool *idle);

/* Open the data dir and start raft on a new loop thread.  Returns once this
 * node is leader and has applied everything in its log (the backing files
 * are then current), or with an error.  Call from the main thread. */
int eng_start(struct eng **e, const struct eng_config *c);

/* Stop raft, persist per-database state, join the loop thread and free.
 * Every pending commit gets its callback: QF_ESHUTDOWN if it never reached
 * raft, QF_ELEADERSHIPLOST if it did (its entry may still be in the log and
 * be applied at the next start). */
void eng_stop(struct eng *e);

/* Cluster mode: wait until this node leads (its whole log applied) or
 * follows a known leader with everything committed applied.  0,
 * -ENOENT (no configuration and not joining), -ETIMEDOUT (joining, and
 * not added in time), or an error.  A member waits for a leader as long
 * as it takes. */
int eng_wait_ready(struct eng *e);
/* The same, giving up after @ms with -EAGAIN (to look at signals). */
int eng_wait_ready_for(struct eng *e, unsigned ms);

/* Directory holding the backing database files (the mount's view). */
const char *eng_db_dir(const struct eng *e);

/* The engine's libuv loop: other modules' handles (the network server)
 * live on it and are touched only from eng_call() functions and their own
 * callbacks. */
struct uv_loop_s *eng_loop(struct eng *e);

/* Run @fn(@arg) on the loop thread.  Any thread; never blocks.  0, or
 * QF_ESHUTDOWN when the engine is stopping (then @fn never runs). */
int eng_call(struct eng *e, void (*fn)(void *arg), void *arg);

/* Is this node the raft leader and serving writes?  Any thread. */
bool eng_is_leader(struct eng *e);

/* This node's raft id and address. */
uint64_t eng_id(const struct eng *e);
const char *eng_address(const struct eng *e);

/* One member of the raft configuration. */
struct eng_member {
	uint64_t id;
	char address[256];
	int role; /* ENG_VOTER, ENG_STANDBY or ENG_SPARE */
};
enum { ENG_VOTER = 0, ENG_STANDBY = 1, ENG_SPARE = 2 };

/* Membership changes (loop thread).  @cb(@arg, status, message) runs once
 * on the loop thread: status 0 when the change is committed (for
 * ENG_TRANSFER: when the transfer ended, check eng_leader), else a
 * negative code and raft's explanation.  A change refused at once (not
 * leader, a change already pending, unknown id...) also arrives through
 * @cb, so every call gets exactly one answer. */
enum { ENG_ADD = 1, ENG_ASSIGN, ENG_REMOVE, ENG_TRANSFER };
typedef void (*eng_change_cb)(void *arg, int status, const char *message);
void eng_change(struct eng *e, int op, uint64_t id, const char *address,
		int role, eng_change_cb cb, void *arg);

/* Loop thread.  The leader as this node knows it (id 0 and "" if none). */
void eng_leader(struct eng *e, uint64_t *id, char *address, size_t size);
/* Loop thread.  Up to @max members of the configuration into @out;
 * returns how many there are. */
unsigned eng_members(struct eng *e, struct eng_member *out, unsigned max);

struct eng_commit;
/* Loop thread.  @status is 0 once the transaction is committed and applied
 * (the callee must now make the backing files reflect it), or a negative
 * code: the transaction is not committed (or, for QF_ELEADERSHIPLOST, its
 * fate is unknown).  The callee returns 0 when the backing files now hold
 * the transaction (then *wal_frames, preset to 0, tells how many backing
 * WAL frames hold the database's committed state), or a negative code when
 * writing them failed: the engine then leaves the entry to be replayed at
 * the next start.  The engine no longer touches @c once this is called, so
 * the callee may free it. */
typedef int (*eng_commit_cb)(struct eng_commit *c, int status,
			     uint64_t *wal_frames);

/* A request to commit one transaction. */
struct eng_commit {
	void *data;
	struct eng_txn *txn; /* owned by the engine after a successful submit,
				and freed before @cb runs */
	int type;	     /* ENG_ENTRY_TXN or ENG_ENTRY_UNLINK */
	eng_commit_cb cb;
	/* Private to the engine. */
	struct eng_commit *next;
	uint64_t nonce;
	bool noop;
};

/* Queue @c for commit.  Any thread; never blocks.  @c->cb runs exactly once
 * on the loop thread.  A transaction whose pages all equal the committed
 * state (a rollback's writes) completes with status 0 without a log
 * entry.  Returns 0, or an error when the engine is stopping
 * (then the caller keeps everything and no callback runs). */
int eng_submit(struct eng *e, struct eng_commit *c);

#endif /* QF_ENGINE_H */
