/* Helpers shared by the WAL tracker unit tests (test_wal_*.c).
 *
 * Most tests replay write sequences captured from real SQLite 3.40.1
 * sessions (tests/unit/fs/capture/ records them into
 * tests/unit/data/wal/).  A replay feeds each -wal write to a tracker over
 * a temporary backing file the way fs/fs.c does: a PASS write is applied,
 * a COMMIT is checked, committed and its held write applied.  Each
 * assembled transaction is applied to a shadow image that starts from the
 * capture's base database; at the end the shadow must equal, page by
 * page, the database SQLite itself produced (checkpointed at its last
 * close), and the number of transactions must equal SQLite's commits.
 * Writes can be split the way the kernel fragments them, or anywhere.
 *
 * Independent checks use the helpers' own recovery scanner and checksum,
 * not the tracker's.  wal_fixture.c also defines pread() so that the I/O
 * the tracker does can be counted (the real call is made with syscall()).
 *
 * Helpers returning int use the unit.h assertions: TEST_OK, or TEST_FAIL
 * after printing what failed. */
#ifndef QF_TEST_WAL_FIXTURE_H
#define QF_TEST_WAL_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../../fs/wal.h"

#define DB_NAME "dir/t.db"

/* ---- files and counted reads ---- */

/* Bytes read through pread() (the tracker's reads); tests zero it. */
extern uint64_t wf_pread_bytes;

/* Read all of @path (one spare byte after it); NULL if it cannot be read. */
uint8_t *wf_slurp(const char *path, size_t *len);

/* A fresh empty temporary file, unlinked; its fd. */
int wf_temp_fd(void);

/* Write @n bytes at @off of @fd: 0 or a negative errno. */
int wf_put_bytes(int fd, const void *p, size_t n, uint64_t off);

/* ---- the tests' own WAL reading and writing (not fs/wal.c's) ---- */

/* Continue the WAL checksum @s over @n bytes at @p, words read per @be. */
void wf_ref_cksum(bool be, const uint8_t *p, size_t n, uint32_t s[2]);

/* Frames SQLite's recovery would adopt from @fd: up to the last commit. */
uint64_t wf_ref_scan(int fd);

/* A valid WAL header (little-endian checksums) for @ps and @salt1. */
void wf_synth_header(uint8_t h[32], uint32_t ps, uint32_t salt1);

/* Frame header for @page, continuing the chain @s (updated). */
void wf_synth_frame(uint8_t fh[24], const uint8_t *hdr, uint32_t pgno,
		    uint32_t nt, const uint8_t *page, uint32_t ps,
		    uint32_t s[2]);

/* Fill @ps bytes at @page with a pattern chosen by @seed. */
void wf_fill_page(uint8_t *page, uint32_t ps, uint32_t seed);

/* ---- captures ---- */

/* One record of a capture: a write, truncation or sync of the -wal. */
struct rec {
	char kind; /* 'W' write, 'T' truncate, 'S' sync */
	uint64_t off;
	uint32_t len;
	const uint8_t *data;
};

/* A captured session: its records, the database before and after, and
 * the number of transactions SQLite committed. */
struct capture {
	const char *name;
	uint8_t *raw, *base, *final;
	size_t raw_len, base_len, final_len;
	struct rec *recs;
	size_t n;
	int commits;
	uint32_t page_size;
};

#define N_CAPTURES 8

/* Every capture in tests/unit/data/wal/, by name. */
extern const char *const wf_all_captures[N_CAPTURES];

/* Load capture @name into @c; free it with wf_free_capture(). */
int wf_load_capture(const char *name, struct capture *c);

/* Free what wf_load_capture() loaded into @c and zero it. */
void wf_free_capture(struct capture *c);

/* ---- replay ---- */

enum split { SPLIT_NONE, SPLIT_KERNEL, SPLIT_RANDOM, SPLIT_BYTE };

/* What the capture shows about SQLite's writes, counted per unsplit write
 * against the replay's commit points. */
struct stats {
	unsigned syncs;	       /* fsync/fdatasync of the WAL */
	unsigned hdr_mid_txn;  /* header at 0 after frames of the open txn */
	unsigned restarts;     /* header with new salts over older frames */
	unsigned data_only;    /* page rewritten without its header */
	unsigned hdr_rewrites; /* header rewritten after its page */
	unsigned slot_reuse;   /* an open txn's slot reused for another page */
	unsigned shrinks;      /* a commit that made the database smaller */
	unsigned noops;	       /* a transaction that changed no page */
};

/* One replay: settings the caller sets (zero for the defaults), then the
 * tracker, its backing file and the shadow database. */
struct replay {
	const struct capture *cap;
	enum split split;
	uint64_t rng;
	unsigned max_piece;    /* SPLIT_RANDOM: pieces of 1..max_piece bytes */
	bool check_scan;       /* compare with wf_ref_scan after each change */
	unsigned refuse_every; /* refuse and retry every Nth commit */
	bool apply_first;      /* apply the held write before committed() */
	/* State. */
	struct fs_wal w;
	int fd;
	uint8_t *shadow;
	size_t shadow_len, shadow_cap;
	uint64_t *digests;
	size_t ntxn, digests_cap;
	unsigned commits_seen; /* COMMIT results, refused ones included */
	unsigned refused;
	bool retrying;
	uint64_t retry_digest;
	uint32_t db_pages;
	struct stats st;
	/* Per-frame bookkeeping for the stats: generation (commit count + 1)
	 * in which the header / page was last written, and its pgno. */
	uint32_t *hdr_gen, *data_gen, *slot_pgno;
	size_t slots;
	int last_hdr_frame;
};

/* @ntxn, less @noops (psow=0 padding only), equals SQLite's commits. */
int wf_count_matches(const struct capture *c, size_t ntxn, unsigned noops);

/* Feed records [@from, @to] of the capture; on a refusal, feed the retry. */
int wf_feed_range(struct replay *r, size_t from, size_t to);

/* Close @r's tracker and file and free what the replay allocated. */
void wf_replay_free(struct replay *r);

/* Replay the whole capture; the caller frees @r with wf_replay_free(). */
int wf_replay_run(struct replay *r, const struct capture *c);

/* The shadow equals the database SQLite produced, page by page. */
int wf_shadow_matches(const struct replay *r);

/* Replay @name unsplit and check the transactions against SQLite's. */
int wf_replay_checked(const char *name, struct replay *r, struct capture *c);

/* Replay every capture per @tmpl: the unsplit replay's txns, SQLite's db. */
int wf_replay_all_same(const struct replay *tmpl);

/* Replay @name (unsplit) up to and including record @upto into @r. */
int wf_replay_prefix(const char *name, size_t upto, struct replay *r,
		     struct capture *c);

#endif /* QF_TEST_WAL_FIXTURE_H */
