/* Snapshots of every database at one applied index (private to engine/).
 *
 * What raft stores is small: per database its state at the index (name,
 * page size, size, sequence, checksum) and the hash of every page, 8
 * bytes a page.  The pages themselves go to an image file beside it,
 * STATE_DIR/snapshots/INDEX.img, written through a bounded buffer
 * (libraft 0.15 keeps, loads and sends a snapshot as one buffer in
 * memory: holding the pages there would cost the database's size).
 *
 * fsm->snapshot (loop thread) records the states and copies the hashes.
 * fsm->snapshot_async (threadpool) then streams each database's pages
 * from the backing files (the WAL's committed prefix over the database
 * file) into the image file, checking each page against its hash: a match
 * proves the image is the state at the index even though writers went on
 * meanwhile.  A mismatch (a checkpoint or WAL restart raced the copy) is
 * retried a few times, then the snapshot fails and raft tries again after
 * later entries.  The image is synced before raft writes the snapshot
 * naming it; images of snapshots raft no longer keeps are removed.
 *
 * Restore before the mount exists rebuilds a database that is not current
 * from the image file, every page checked against its hash.  A follower
 * that raft sends a snapshot has no image of it: the database takes the
 * snapshot's state, its files are marked suspect, and the leader's image
 * (IMAGE request, follow.c) replaces them, as after a divergence.
 *
 * Format, little-endian: u32 magic "QFN2", u32 version 2, u64 index,
 * u64 n_db, then per database u32 name_len, u32 page_size, u32 db_pages,
 * u32 0, u64 seq, u64 cksum, name zero-padded to 8, u64 0 (local: the
 * backing WAL frames holding the state, while the copy runs), db_pages
 * u64 page hashes.  The image file holds the databases' pages back to back
 * in record order.  Version 1 ("QFN1": the records without the local
 * field and hashes, followed by the images) is still restored. */
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
/* Threadpool: write the image file of the snapshot described by bufs[0]
 * (kept, its local fields zeroed); on failure bufs are freed. */
int eng__snapshot_copy(const char *db_dir, const char *state_dir,
		       const char *raft_dir, struct raft_buffer *bufs[],
		       unsigned *n_bufs);
/* Remove image files whose snapshot raft does not keep, but @keep's. */
void eng__snapshot_gc(const char *state_dir, const char *raft_dir,
		      uint64_t keep);
/* Any thread: write database @name's image at state @im (as copy reads
 * it, retrying while writers race it) into @fd from offset 0, through a
 * bounded buffer.  0, QF_EDIVERGED if it never matched, or -errno. */
int eng__image_write(const char *db_dir, const char *name,
		     const struct eng_image *im, int fd);
/* Free what take/copy allocated. */
void eng__snapshot_free(struct raft_buffer *bufs[], unsigned *n_bufs);

/* Loop thread, before the mount exists: make every database match the
 * snapshot, skipping those whose local state (checked against their files
 * at load) already has the snapshot's sequence number and checksum, or a
 * later sequence number.  Does not free @buf. */
int eng__snapshot_restore(struct eng_dbs *s, const void *buf, size_t len,
			  uint64_t *index);

/* The same on a mounted follower, through its queue: a database whose
 * state differs gets @state (v2: takes st->hashes; the files then wait
 * for the leader's image), or @push (v1: one all-page transaction, seq
 * and cksum_after the snapshot's; takes @t).  Nothing is written here. */
struct eng__restore_to {
	int (*push)(void *arg, struct eng_db *d, struct eng_txn *t,
		    uint64_t index);
	int (*state)(void *arg, struct eng_db *d, struct eng_db_snap *st,
		     uint64_t index);
	void *arg;
};
int eng__snapshot_install(struct eng_dbs *s, const void *buf, size_t len,
			  uint64_t *index, const struct eng__restore_to *to);

#endif /* QF_ENGINE_SNAPSHOT_H */
