/* The follower's apply queue: replicated transactions of each database,
 * in log order, handed to the applier one at a time (engine.h, "Followers").
 *
 * Each is checked against the database's state when it is handed over
 * (eng__db_apply: sequence and checksums), so the state in memory runs at
 * most one transaction ahead of the files, and the state header saved
 * when the applier is done says exactly what the files hold.  A crash
 * in between replays that entry at the next start.  Loop thread only. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "follow.h"

struct eng_follow_item {
	struct eng_txn *txn;
	uint64_t index;
	bool reset; /* a snapshot's image: replaces the state */
	struct eng_follow_item *next;
};

void eng__follow_init(struct eng_follower *f, struct eng_dbs *dbs)
{
	memset(f, 0, sizeof *f);
	f->dbs = dbs;
}

static void drop_head(struct eng_follower *f, struct eng_db *d)
{
	struct eng_follow_item *it = d->fq_head;

	d->fq_head = it->next;
	if (d->fq_head == NULL)
		d->fq_tail = NULL;
	eng_txn_free(it->txn);
	free(it);
	f->queued--;
}

/* Hand @d's next transaction to the applier, if it can go. */
static void send_next(struct eng_follower *f, struct eng_db *d)
{
	struct eng_follow_item *it;
	int rv;

	while (f->fn != NULL && !d->fq_busy && d->fq_head != NULL) {
		it = d->fq_head;
		if (d->diverged && !it->reset) {
			drop_head(f, d); /* until a snapshot repairs it */
			continue;
		}
		if (it->reset) {
			/* A snapshot image carries every page: it applies to
			 * any state, diverged or not (that is the repair). */
			d->seq = it->txn->seq - 1;
			it->txn->cksum_before = d->cksum;
			d->diverged = false;
		}
		rv = eng__db_apply(d, it->txn, it->index);
		if (rv != 0) {
			QF_LOG(QF_ERROR, "db=%s index=%llu: %s: this database "
			       "stops following the log", d->name,
			       (unsigned long long)it->index, qf_strerror(rv));
			d->diverged = true;
			drop_head(f, d);
			continue;
		}
		d->fq_busy = true;
		f->fn(f->arg, it->txn, it->index);
	}
}

int eng__follow_push(struct eng_follower *f, struct eng_db *d,
		     struct eng_txn *t, uint64_t index)
{
	return eng__follow_push_image(f, d, t, index, false);
}

int eng__follow_push_image(struct eng_follower *f, struct eng_db *d,
			   struct eng_txn *t, uint64_t index, bool reset)
{
	struct eng_follow_item *it = malloc(sizeof *it);

	if (it == NULL) {
		eng_txn_free(t);
		return -ENOMEM;
	}
	it->txn = t;
	it->index = index;
	it->reset = reset;
	it->next = NULL;
	if (d->fq_tail != NULL)
		d->fq_tail->next = it;
	else
		d->fq_head = it;
	d->fq_tail = it;
	f->queued++;
	send_next(f, d);
	return 0;
}

void eng__follow_set(struct eng_follower *f, eng_apply_fn fn, void *arg)
{
	struct eng_db *d;

	f->fn = fn;
	f->arg = arg;
	for (d = f->dbs->head; d != NULL; d = d->next)
		send_next(f, d);
}

void eng__follow_done(struct eng_follower *f, const char *db, uint64_t index,
		      int status, uint64_t wal_frames)
{
	struct eng_db *d = eng__db_find(f->dbs, db);
	int rv;

	if (d == NULL || !d->fq_busy || d->fq_head == NULL ||
	    d->fq_head->index != index) {
		QF_LOG(QF_ERROR, "db=%s index=%llu: unexpected apply result",
		       db, (unsigned long long)index);
		return;
	}
	d->fq_busy = false;
	if (status != 0) {
		QF_LOG(QF_ERROR, "db=%s index=%llu: applying through the mount "
		       "failed: %s; this database stops following the log",
		       db, (unsigned long long)index, qf_strerror(status));
		d->diverged = true;
	} else {
		d->wal_frames = wal_frames;
		rv = eng__db_save_header(f->dbs, d);
		if (rv != 0)
			QF_LOG(QF_WARN, "db=%s: saving state: %s (a restart "
			       "replays the entry)", db, qf_strerror(rv));
	}
	drop_head(f, d);
	send_next(f, d);
}

bool eng__follow_idle(const struct eng_follower *f)
{
	return f->queued == 0;
}

void eng__follow_close(struct eng_follower *f)
{
	struct eng_db *d;

	for (d = f->dbs->head; d != NULL; d = d->next) {
		/* The state in memory is one transaction ahead of the files:
		 * not saved (the header on disk is right), so the next start
		 * replays it. */
		if (d->fq_busy)
			d->diverged = true;
		d->fq_busy = false;
		while (d->fq_head != NULL)
			drop_head(f, d);
	}
}
