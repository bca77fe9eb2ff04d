/* The follower's apply queue (follow.c).  Private to engine/. */
#ifndef QF_ENGINE_FOLLOW_H
#define QF_ENGINE_FOLLOW_H

#include "engine.h"
#include "state.h"

struct eng_follower {
	struct eng_dbs *dbs;
	eng_apply_fn fn; /* NULL: hold */
	void *arg;
	unsigned queued; /* transactions queued or being applied */
	/* Asked for a correct image of a database whose files diverged
	 * (eng_set_resync); NULL: none is asked for. */
	eng_resync_fn resync;
	void *resync_arg;
	uint64_t scanned_ms; /* last look for diverged databases */
};

void eng__follow_init(struct eng_follower *f, struct eng_dbs *dbs);
/* Queue @t (taken) at @index for database @d and send what can go. */
int eng__follow_push(struct eng_follower *f, struct eng_db *d,
		     struct eng_txn *t, uint64_t index);
/* The same for a snapshot's all-page image when @reset: it replaces the
 * database's state whatever it was (a mounted follower's install). */
int eng__follow_push_image(struct eng_follower *f, struct eng_db *d,
			   struct eng_txn *t, uint64_t index, bool reset);
/* A snapshot's state without pages (v2 snapshots): when its turn comes
 * it replaces the database's state, and the files wait for the leader's
 * image.  Takes st->hashes, also on failure. */
int eng__follow_push_state(struct eng_follower *f, struct eng_db *d,
			   struct eng_db_snap *st, uint64_t index);
/* Set the applier (NULL holds) and send what waits. */
void eng__follow_set(struct eng_follower *f, eng_apply_fn fn, void *arg);
/* The applier is done with @index of @db. */
void eng__follow_done(struct eng_follower *f, const char *db, uint64_t index,
		      int status, uint64_t wal_frames);
/* Queue a correct image of diverged database @d (eng_resync): takes @t.
 * -EALREADY if @d is not diverged, -EAGAIN if the image is older than the
 * state here, QF_EMALFORMED if it is not every page 1..db_pages. */
int eng__follow_resync(struct eng_follower *f, struct eng_db *d,
		       struct eng_txn *t, uint64_t index);
/* Timer: ask again for the images of databases still diverged. */
void eng__follow_tick(struct eng_follower *f, uint64_t now_ms);
/* Nothing queued: the backing files hold every applied entry. */
bool eng__follow_idle(const struct eng_follower *f);
/* Drop everything queued (at stop). */
void eng__follow_close(struct eng_follower *f);

#endif /* QF_ENGINE_FOLLOW_H */
