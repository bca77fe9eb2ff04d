/* Helpers shared by the per-database state unit tests (test_state_*.c),
 * on top of fixture.h.
 *
 * Expected checksums never come from the code under test: a model keeps
 * the page images a sequence of transactions produces and XORs
 * qf_page_hash over them.  Helpers returning int use the unit.h
 * assertions (TEST_OK, or TEST_FAIL after printing what failed); the
 * others abort when they cannot allocate. */
#ifndef QF_TEST_STATE_FIXTURE_H
#define QF_TEST_STATE_FIXTURE_H

#include <stdint.h>

#include "engine/state.h"

#define MAX_HASHES 1024

/* What a database holds after a sequence of transactions that each carry
 * every page they bring into range. */
struct model {
	uint32_t ps, pages, cap;
	uint64_t seq;
	uint8_t *img;
};

/* Free @m's pages (the model can be started again). */
void sf_model_free(struct model *m);

/* Stamp @t with the seq and checksums committing it to @m would give. */
void sf_model_seal(const struct model *m, struct eng_txn *t);

/* Page numbers first, first + 1, ..., n of them (a static array). */
const uint32_t *sf_run(uint32_t first, uint32_t n);

/* A transaction of @db carrying @pgnos, page p filled from seed + p. */
struct eng_txn *sf_txn_of(const char *db, uint32_t ps, uint32_t db_pages,
			  const uint32_t *pgnos, uint32_t n, uint32_t seed);

/* Build a transaction, stamp it against @m (advancing @m) and apply it. */
int sf_commit(struct eng_db *d, struct model *m, uint32_t db_pages,
	      const uint32_t *pgnos, uint32_t n, uint32_t seed,
	      uint64_t index);

/* A copy of everything eng__db_apply and the loader may change. */
struct db_snap {
	uint32_t ps, pages;
	uint64_t seq, cksum, applied, wal_frames;
	uint64_t hash[MAX_HASHES];
};

/* Copy into @s everything of @d that eng__db_apply and the loader change. */
void sf_snap_db(const struct eng_db *d, struct db_snap *s);

/* @d is exactly the state sf_snap_db() copied into @s. */
int sf_same_as(const struct eng_db *d, const struct db_snap *s);

/* @d is the empty state a reset leaves. */
int sf_is_empty(const struct eng_db *d);

/* d->hash holds the page hashes of the file at @path, page for page. */
int sf_hashes_match_file(const struct eng_db *d, const char *path);

#endif /* QF_TEST_STATE_FIXTURE_H */
