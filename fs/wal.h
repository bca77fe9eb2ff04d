/* WAL tracker: turns the byte-range writes a -wal file receives through the
 * mount into complete transactions (sqlite-io.md §1-§3, fuse-spike.md §1-2).
 *
 * One tracker per -wal inode, used under that inode's mutex (one thread at a
 * time).  The tracker never writes the backing file except in
 * fs__wal_refused(); it reads committed and in-progress bytes from it with
 * pread and overlays the write being examined, which is NOT yet in the file.
 *
 * Happy path: fs__wal_write() returns FS_WAL_PASS for every write until the
 * one after which frames committed+1 .. k (k the first frame with a non-zero
 * commit size) are all present, carry the header's salts and validate along
 * the checksum chain.  That write returns FS_WAL_COMMIT with the assembled
 * transaction (last image of each page, pages above the commit size
 * dropped).  The caller holds that write, commits the transaction, applies
 * the write to the backing file and calls fs__wal_committed().
 *
 * Failure: the caller calls fs__wal_refused() instead, which zeroes the
 * refused transaction's first frame header in the backing file (so no later
 * recovery can resurrect it) and makes refusals sticky: every later write
 * returns FS_WAL_REFUSE until one lands at offset 0 or on the header of
 * frame committed+1 (SQLite's retry after the rollback).
 *
 * Validation is incremental: a running checksum is kept per validated frame,
 * a write into the validated range cuts validation back to the frame before
 * it, and extension resumes from there, so a transaction costs O(frames)
 * page reads, not O(frames^2). */
#ifndef QF_FS_WAL_H
#define QF_FS_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../engine/engine.h"

#define FS_WAL_HDR 32
#define FS_WAL_FRAME_HDR 24

struct fs_wal {
	int fd;			/* backing -wal, opened O_RDWR by the caller */
	bool have_hdr;		/* a valid 32-byte header is in place */
	uint8_t hdr[FS_WAL_HDR];
	uint32_t page_size;
	bool big_endian;	/* checksum byte order (magic low bit) */
	uint64_t committed;	/* frames up to the last committed commit frame */
	uint32_t commit_ck[2];	/* running checksum after frame @committed */
	uint64_t valid;		/* frames after @committed validated in order */
	uint32_t *ck;		/* ck[2*i], ck[2*i+1]: checksum after frame
				 * committed+1+i, for i < known */
	uint64_t ck_cap;	/* capacity of @ck (and @meta) in frames */
	uint64_t size;		/* backing file size as the tracker sees it */
	bool refused;		/* sticky refusal after a failed commit */
	uint64_t pending;	/* frames of the held transaction, 0 if none */
	/* Private to fs/wal.c. */
	uint32_t *meta;		/* meta[2*i], meta[2*i+1]: pgno and commit
				 * size of frame committed+1+i, for i < known */
	uint64_t known;		/* >= valid; frames valid+2 .. known were
				 * validated and not written since, so they
				 * stay valid if frame valid+1 revalidates to
				 * the checksum remembered for it */
	bool stuck;		/* frame committed+valid+1 was examined and is
				 * incomplete or invalid; no write touched it
				 * since */
	uint64_t held_end;	/* end offset of the held write */
	bool held_cut;		/* a truncation cut the held transaction */
	uint8_t *buf;		/* one frame, reused */
	size_t buf_cap;
	uint64_t *sort;		/* assembly scratch, reused */
	size_t sort_cap;
};

enum {
	FS_WAL_PASS = 0,   /* apply the write and answer it */
	FS_WAL_COMMIT = 1, /* hold it: it completes *txn */
	FS_WAL_REFUSE = 2, /* answer EIO (sticky refusal) */
	FS_WAL_STALE = 3,  /* answer EIO: the writer would overwrite committed
			    * frames, so its wal-index misses them (a writer
			    * died before publishing its commit) */
};

/* Start tracking the backing file @fd (kept, not owned).  Scans it as
 * SQLite recovery would: a valid header and the longest valid frame chain;
 * committed = the last commit frame of that chain.  0 or -errno. */
int fs__wal_init(struct fs_wal *w, int fd);
void fs__wal_close(struct fs_wal *w);

/* Examine a write of @size bytes at @off before it is applied.  Returns
 * FS_WAL_PASS (the tracker assumes the caller applies it), FS_WAL_COMMIT
 * (*txn is a new transaction named @db that the caller owns; the write is
 * held: call fs__wal_committed or fs__wal_refused next), FS_WAL_REFUSE,
 * FS_WAL_STALE (frame bytes that differ from committed frames; nothing
 * changes), or a negative error: -EINVAL for bytes that are not a SQLite
 * WAL (bad header at offset 0, frames before any header), -errno for I/O
 * errors. */
int fs__wal_write(struct fs_wal *w, const void *buf, size_t size,
		  uint64_t off, const char *db, struct eng_txn **txn);

/* Does the database file @db_fd hold the last image of every page in the
 * committed frames (SQLite checkpointed them all)?  Only then may the WAL
 * start over or be cut: else the writer doing so has a wal-index that
 * misses committed frames.  1, 0, or -errno. */
int fs__wal_in_db(struct fs_wal *w, int db_fd);

/* The held write has been applied to the backing file: its frames are now
 * committed. */
void fs__wal_committed(struct fs_wal *w);

/* The held transaction was refused: zero its first frame header in the
 * backing file and start refusing.  Returns 0 or -errno; *zero_off and
 * *zero_len (may be NULL) receive the range zeroed, for page-cache
 * invalidation by the caller. */
int fs__wal_refused(struct fs_wal *w, uint64_t *zero_off, uint64_t *zero_len);

/* The file was truncated to @size (applied by the caller).  Allowed while
 * a write is held: if that cuts the held transaction's frames, the
 * tracker rescans the file at fs__wal_committed. */
void fs__wal_truncated(struct fs_wal *w, uint64_t size);

/* Frames in the committed prefix, for the engine's local state. */
uint64_t fs__wal_frames(const struct fs_wal *w);


#endif /* QF_FS_WAL_H */
