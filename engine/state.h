/* Per-database replicated state (private to engine/).
 *
 * For every database the engine keeps what a node needs to check that its
 * copy matches the leader's: page size, size in pages, the sequence number
 * of the last transaction, the rolling content checksum (XOR of
 * qf_page_hash over pages 1..db_pages) and one page hash per page, plus the
 * raft index of the last entry applied to it.
 *
 * On disk, under DATA/state/, each database has:
 *   NAME.state   a 96-byte header rewritten in place (one pwrite) after each
 *                transaction reaches the backing files: page size, pages,
 *                seq, checksum, applied index, hashes' index, WAL frames,
 *                the last installed image's seq and checksum, flags;
 *   NAME.hashes  the page hashes, written whole (temp file + rename) at
 *                clean shutdown and after snapshots, tagged with the index
 *                they describe.
 * NAME is the database path with '%' and '/' escaped.  At start a database
 * whose hashes are tagged with its header's index is trusted as is; any
 * other is re-hashed from its backing files (O(size)).
 *
 * Loop thread only, except during eng_start before the loop runs. */
#ifndef QF_ENGINE_STATE_H
#define QF_ENGINE_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"

struct eng_db {
	char *name;
	uint32_t page_size;
	uint32_t db_pages;
	uint64_t seq;
	uint64_t cksum;
	uint64_t applied;   /* raft index of the last entry applied here */
	uint64_t wal_frames;/* local: backing WAL frames after @applied */
	uint64_t *hash;	    /* hash[pgno - 1] for pgno 1..db_pages */
	uint32_t hash_cap;
	bool diverged;	    /* a check failed: refuse writes until repaired */
	/* Persisted: the backing files may not hold the state (a follower's
	 * check failed); the next start rebuilds them. */
	bool files_suspect;
	/* The last image installed (snapshot or resync): its sequence number
	 * and checksum.  Entries up to base_seq are in it (eng__db_covered). */
	uint64_t base_seq, base_cksum;
	uint64_t resync_asked_ms; /* loop time an image was last asked for */
	int fd;		    /* open NAME.state, -1 until first saved */
	bool settled;	    /* backing files settled during this start */
	uint64_t hashes_at; /* @applied when the hashes were last saved */
	bool busy;	    /* a commit of this database is in raft */
	struct eng_commit *wait_head, *wait_tail; /* commits queued behind */
	/* Follower: replicated transactions waiting for the applier
	 * (follow.c); @fq_busy while the head one is being applied. */
	struct eng_follow_item *fq_head, *fq_tail;
	bool fq_busy;
	struct eng_db *next;
};

struct eng_dbs {
	char *state_dir;
	char *db_dir;
	struct eng_db *head;
};

int eng__dbs_init(struct eng_dbs *s, const char *state_dir, const char *db_dir);
void eng__dbs_close(struct eng_dbs *s);

/* Load every NAME.state in the state dir.  Databases whose hashes are not
 * current are re-hashed from the backing files; with @trust_files false
 * (another boot since the files were written: they may have lost unsynced
 * writes) every database is re-hashed and one that disagrees with its
 * header is reset to empty so snapshot plus log rebuild it. */
int eng__dbs_load(struct eng_dbs *s, bool trust_files);

/* Remove non-empty backing databases that have no state: their content was
 * never committed (a first transaction refused, or cut short by a crash
 * before raft committed it).  Raft's log recreates any that it holds. */
int eng__dbs_remove_orphans(struct eng_dbs *s);

struct eng_db *eng__db_find(struct eng_dbs *s, const char *name);
/* Find or create (empty) the state of @name.  NULL on allocation failure. */
struct eng_db *eng__db_get(struct eng_dbs *s, const char *name);

/* Would @t change nothing (every page hash and the size equal)? */
bool eng__db_txn_is_noop(const struct eng_db *d, const struct eng_txn *t);

/* Rolling checksum of @d after applying @t, without changing @d. */
uint64_t eng__db_cksum_after(const struct eng_db *d, const struct eng_txn *t);

/* Is @t already in @d's last installed image (its seq <= base_seq)?  Then
 * it is skipped: 1, with @index recorded as applied.  0 if not covered;
 * QF_EDIVERGED if @t is the image's own transaction but ends with another
 * checksum. */
int eng__db_covered(struct eng_db *d, const struct eng_txn *t, uint64_t index);

/* Fill t->old_hashes with the hash each page of @t has in @d now (0 where
 * @d has no such page, or the page size changes): what a follower's
 * applier checks its files against before writing.  0 or -ENOMEM. */
int eng__db_old_hashes(const struct eng_db *d, struct eng_txn *t);

/* Check @t against @d (sequence and checksum before) and apply it to the
 * hashes.  QF_EDIVERGED if a check fails; @d then stays as it was. */
int eng__db_apply(struct eng_db *d, const struct eng_txn *t, uint64_t index);

/* Write @t's pages straight into the backing database file (used to replay
 * entries before the mount exists).  0 or -errno. */
int eng__db_write_backing(struct eng_dbs *s, const struct eng_txn *t);

/* Replace the backing database file of @name with @image (db_pages pages
 * of page_size bytes), before the mount exists.  0 or -errno. */
int eng__db_write_image(struct eng_dbs *s, const char *name,
			const uint8_t *image, uint32_t page_size,
			uint32_t db_pages);

/* Open the backing database file of @name for writing, emptied (its
 * parent directories made), before the mount exists.  fd or -errno. */
int eng__db_open_empty(struct eng_dbs *s, const char *name);

/* A database's whole state as a snapshot records it, without its pages:
 * @hashes holds qf_page_hash of pages 1..db_pages. */
struct eng_db_snap {
	uint32_t page_size, db_pages;
	uint64_t seq, cksum;
	uint64_t *hashes;
};

/* Make @st the state of @d at raft @index (also its installed image:
 * base_seq and base_cksum).  QF_EMALFORMED if the hashes do not make
 * st->cksum (then @d is unchanged), or -ENOMEM. */
int eng__db_set_state(struct eng_db *d, const struct eng_db_snap *st,
		      uint64_t index);

/* Persist the header of @d (one pwrite, no fsync).  0 or -errno. */
int eng__db_save_header(struct eng_dbs *s, struct eng_db *d);
/* Persist the header and the page hashes of @d (temp file + rename). */
int eng__db_save_all(struct eng_dbs *s, struct eng_db *d);

/* Bring the backing files of @name to a single settled database file:
 * open them with SQLite directly (which rolls back a hot journal or
 * recovers a WAL) and checkpoint the WAL into the database.  Only while
 * nothing is mounted.  0 or -errno. */
int eng__db_settle(struct eng_dbs *s, const char *name);

/* Recompute @d's hashes and checksum from its settled backing file. */
int eng__db_rehash(struct eng_dbs *s, struct eng_db *d);

/* Delete the backing files of @d and persist it as empty (applied 0), so
 * snapshot plus log rebuild it. */
int eng__db_reset(struct eng_dbs *s, struct eng_db *d);

#endif /* QF_ENGINE_STATE_H */
