/* Snapshots of every database at one applied index (private to engine/).
 *
 * fsm->snapshot (loop thread) records, per database, the state at the
 * applied index: name, page size, size, sequence, checksum and how many
 * backing WAL frames hold it.  fsm->snapshot_async (threadpool) then reads
 * each database's pages from the backing files (the WAL's committed prefix
 * over the database file), recomputes the checksum and compares it with
 * the recorded one: a match proves the image is the state at the index
 * even though writers went on meanwhile.  A mismatch (a checkpoint or WAL
 * restart raced the copy) is retried a few times, then the snapshot fails
 * and raft tries again after later entries.
 *
 * Format, little-endian: buffer 0 is the header
 *   u32 magic "QFN1", u32 version 1, u64 index, u64 n_db, then per database
 *   u32 name_len, u32 page_size, u32 db_pages, u32 0, u64 seq, u64 cksum,
 *   name zero-padded to 8;
 * followed by each database's db_pages * page_size bytes, in header order. */
#ifndef QF_ENGINE_SNAPSHOT_H
#define QF_ENGINE_SNAPSHOT_H

#include <raft.h>
#include <stdbool.h>

#include "state.h"

struct eng__snapshot {
	char *db_dir;
};

/* Loop thread: describe every database at @index into bufs[0]. */
int eng__snapshot_take(struct eng_dbs *s, uint64_t index,
		       struct raft_buffer *bufs[], unsigned *n_bufs);
/* Threadpool: read the images described by bufs[0]; replaces the array. */
int eng__snapshot_copy(const char *db_dir, struct raft_buffer *bufs[],
		       unsigned *n_bufs);
/* Any thread: read database @name's image at state @im (as copy does,
 * retrying while writers race it) into @out (db_pages * page_size).
 * 0, QF_EDIVERGED if it never matched, or -errno. */
int eng__image_read(const char *db_dir, const char *name,
		    const struct eng_image *im, uint8_t *out);
/* Free what take/copy allocated. */
void eng__snapshot_free(struct raft_buffer *bufs[], unsigned *n_bufs);

/* Loop thread, before the mount exists: make every database match the
 * snapshot, skipping those whose local state (checked against their files
 * at load) already has the snapshot's sequence number and checksum, or a
 * later sequence number.  Does not free @buf. */
int eng__snapshot_restore(struct eng_dbs *s, const void *buf, size_t len,
			  uint64_t *index);

/* The same on a mounted follower: a database whose state differs
 * becomes one all-page transaction (seq and cksum_after are the
 * snapshot's), handed to @push, which takes it; nothing is written here. */
typedef int (*eng__restore_push_fn)(void *arg, struct eng_db *d,
				    struct eng_txn *t, uint64_t index);
int eng__snapshot_install(struct eng_dbs *s, const void *buf, size_t len,
			  uint64_t *index, eng__restore_push_fn push,
			  void *arg);

#endif /* QF_ENGINE_SNAPSHOT_H */
