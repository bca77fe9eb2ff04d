/* The follower's apply queue: replicated transactions of each database,
 * in log order, handed to the applier one at a time (engine.h, "Followers").
 *
 * Each is checked against the database's state when it is handed over
 * (eng__db_apply: sequence and checksums), so the state in memory runs at
 * most one transaction ahead of the files, and the state header saved
 * when the applier is done says exactly what the files hold.  A crash
 * in between replays that entry at the next start.
 *
 * The applier also checks its files: each page it overwrites must hash
 * as the state says (eng_txn.old_hashes).  When they do not (a disk, or
 * somebody, changed them), or writing fails, the database is diverged:
 * its state goes on following the log, its files are left alone, and
 * the resync function fetches a correct image from the leader, which
 * replaces them (eng__follow_resync).  Entries the image already holds
 * are then skipped (eng__db_covered).  Loop thread only. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core.h" /* eng__now_ms */
#include "follow.h"

/* A diverged database's image is asked for again this often until one
 * is installed. */
#define RESYNC_RETRY_MS 2000
#define RESYNC_SCAN_MS 200 /* how often the timer looks for them */

struct eng_follow_item {
	struct eng_txn *txn;
	uint64_t index;
	bool reset; /* a snapshot's image: replaces the state */
	struct eng_db_snap *state; /* a snapshot's state, without pages */
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
	if (it->state != NULL)
		free(it->state->hashes);
	free(it->state);
	free(it);
	f->queued--;
}

/* Ask for @d's image, at most every RESYNC_RETRY_MS (an install that
 * fails must not turn into back-to-back transfers of the database). */
static void ask_image(struct eng_follower *f, struct eng_db *d,
		      uint64_t now_ms)
{
	if (f->resync == NULL || d->fq_busy ||
	    (d->resync_asked_ms != 0 &&
	     now_ms - d->resync_asked_ms < RESYNC_RETRY_MS))
		return;
	d->resync_asked_ms = now_ms;
	f->resync(f->resync_arg, d->name);
}

void eng__follow_tick(struct eng_follower *f, uint64_t now_ms)
{
	struct eng_db *d;

	/* Every diverged database, however it was found (the applier, a
	 * replayed entry, the state check), until an image repairs it. */
	if (now_ms - f->scanned_ms < RESYNC_SCAN_MS)
		return;
	f->scanned_ms = now_ms;
	for (d = f->dbs->head; d != NULL; d = d->next)
		if (d->diverged)
			ask_image(f, d, now_ms);
}

/* @d's files no longer follow the log: say so, remember it across a
 * restart (the next start rebuilds them), and ask for a correct image. */
static void files_diverged(struct eng_follower *f, struct eng_db *d)
{
	int rv;

	d->diverged = true;
	if (!d->files_suspect) {
		d->files_suspect = true;
		rv = eng__db_save_header(f->dbs, d);
		if (rv != 0)
			QF_LOG(QF_WARN, "db=%s: saving state: %s", d->name,
			       qf_strerror(rv));
	}
	QF_LOG(QF_ERROR, "db=%s: DIVERGED: the files here no longer match "
	       "the log; nothing more is written into them until %s",
	       d->name, f->resync != NULL
				? "they are resynchronised from the leader"
				: "a snapshot replaces them");
	ask_image(f, d, eng__now_ms());
}

/* Hand the head (not an image) on: 0 when the applier has it, else the
 * item was dealt with here (skipped, or the database diverged). */
static int hand_over(struct eng_follower *f, struct eng_db *d,
		     struct eng_follow_item *it)
{
	int rv = eng__db_covered(d, it->txn, it->index);

	if (rv != 0) { /* in the installed image already, or contradicts it */
		if (rv < 0)
			files_diverged(f, d);
		return 1;
	}
	if (d->diverged) {
		/* The state keeps following the log (the image that repairs
		 * the files must be at least as new); the files wait. */
		(void)eng__db_apply(d, it->txn, it->index);
		return 1;
	}
	if (eng__db_old_hashes(d, it->txn) != 0)
		QF_LOG(QF_WARN, "db=%s: out of memory: index=%llu applied "
		       "without checking the files", d->name,
		       (unsigned long long)it->index);
	rv = eng__db_apply(d, it->txn, it->index);
	if (rv != 0) {
		QF_LOG(QF_ERROR, "db=%s index=%llu: %s", d->name,
		       (unsigned long long)it->index, qf_strerror(rv));
		files_diverged(f, d);
		return 1;
	}
	return 0;
}

/* An image replaces the state whatever it was: that is the repair. */
static int hand_over_image(struct eng_follower *f, struct eng_db *d,
			   struct eng_follow_item *it)
{
	struct eng_txn *t = it->txn;
	struct eng_db_snap st = {t->page_size, t->db_pages, t->seq,
				 t->cksum_after, t->hashes};
	uint64_t seq = d->seq;
	int rv;

	d->seq = t->seq - 1;
	t->cksum_before = d->cksum;
	/* d unchanged on error */
	rv = t->file != NULL ? eng__db_set_state(d, &st, it->index)
			     : eng__db_apply(d, t, it->index);
	if (rv != 0) {
		d->seq = seq;
		QF_LOG(QF_ERROR, "db=%s: image seq=%llu not installed: %s",
		       d->name, (unsigned long long)it->txn->seq,
		       qf_strerror(rv));
		files_diverged(f, d);
		return rv;
	}
	d->diverged = false;
	d->base_seq = it->txn->seq;
	d->base_cksum = it->txn->cksum_after;
	return 0;
}

/* A snapshot's state replaces @d's; its files are behind it until the
 * leader's image replaces them. */
static void take_state(struct eng_follower *f, struct eng_db *d,
		       struct eng_follow_item *it)
{
	const struct eng_db_snap *st = it->state;
	/* The entries before it (or a restart's replay) may have brought
	 * sound files to the snapshot's state already: then they stay. */
	bool there = !d->diverged && !d->files_suspect && d->seq == st->seq &&
		     d->cksum == st->cksum && d->page_size == st->page_size &&
		     d->db_pages == st->db_pages &&
		     (st->db_pages == 0 ||
		      memcmp(d->hash, st->hashes,
			     (size_t)st->db_pages * sizeof *st->hashes) == 0);
	int rv = eng__db_set_state(d, st, it->index);

	if (rv != 0) {
		QF_LOG(QF_ERROR, "db=%s: snapshot state not taken: %s",
		       d->name, qf_strerror(rv));
		files_diverged(f, d);
		return;
	}
	if (there) {
		QF_LOG(QF_INFO, "db=%s: already at snapshot seq=%llu", d->name,
		       (unsigned long long)d->seq);
		rv = eng__db_save_header(f->dbs, d);
		if (rv != 0)
			QF_LOG(QF_WARN, "db=%s: saving state: %s", d->name,
			       qf_strerror(rv));
		return;
	}
	d->diverged = true;
	d->files_suspect = true;
	rv = eng__db_save_header(f->dbs, d);
	if (rv != 0)
		QF_LOG(QF_WARN, "db=%s: saving state: %s", d->name,
		       qf_strerror(rv));
	QF_LOG(QF_INFO, "db=%s: at snapshot seq=%llu; its files wait for "
	       "the leader's image", d->name, (unsigned long long)d->seq);
	d->resync_asked_ms = 0;
	ask_image(f, d, eng__now_ms());
}

/* Hand @d's next transaction to the applier, if it can go. */
static void send_next(struct eng_follower *f, struct eng_db *d)
{
	struct eng_follow_item *it;

	while (f->fn != NULL && !d->fq_busy && d->fq_head != NULL) {
		it = d->fq_head;
		if (it->state != NULL) {
			take_state(f, d, it);
			drop_head(f, d);
			continue;
		}
		if (it->reset ? hand_over_image(f, d, it) != 0
			      : hand_over(f, d, it) != 0) {
			drop_head(f, d);
			continue;
		}
		d->fq_busy = true;
		f->fn(f->arg, it->txn, it->index);
	}
}

static int enqueue(struct eng_follower *f, struct eng_db *d,
		   struct eng_follow_item *it);

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
	it->state = NULL;
	return enqueue(f, d, it);
}

int eng__follow_push_state(struct eng_follower *f, struct eng_db *d,
			   struct eng_db_snap *st, uint64_t index)
{
	struct eng_follow_item *it = calloc(1, sizeof *it);

	if (it != NULL)
		it->state = malloc(sizeof *it->state);
	if (it == NULL || it->state == NULL) {
		free(it);
		free(st->hashes);
		return -ENOMEM;
	}
	*it->state = *st;
	it->index = index;
	return enqueue(f, d, it);
}

static int enqueue(struct eng_follower *f, struct eng_db *d,
		   struct eng_follow_item *it)
{
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
		       "failed: %s", db, (unsigned long long)index,
		       qf_strerror(status));
		files_diverged(f, d);
	} else {
		if (d->fq_head->reset && d->files_suspect) {
			QF_LOG(QF_INFO, "db=%s: resynchronised (seq=%llu)",
			       db, (unsigned long long)d->seq);
			d->files_suspect = false;
		}
		d->wal_frames = wal_frames;
		rv = eng__db_save_header(f->dbs, d);
		if (rv != 0)
			QF_LOG(QF_WARN, "db=%s: saving state: %s (a restart "
			       "replays the entry)", db, qf_strerror(rv));
	}
	drop_head(f, d);
	send_next(f, d);
}

int eng__follow_resync(struct eng_follower *f, struct eng_db *d,
		       struct eng_txn *t, uint64_t index)
{
	int rv = 0;

	if (!d->diverged)
		rv = -EALREADY;
	else if (t->seq < d->seq)
		rv = -EAGAIN; /* the leader had not applied as far as we have */
	else if (t->file != NULL ? t->db_pages == 0 || t->hashes == NULL
				 : t->n != t->db_pages || t->n == 0 ||
				       t->pgnos[0] != 1 ||
				       t->pgnos[t->n - 1] != t->n)
		rv = QF_EMALFORMED; /* its checksum is checked when it is
				       handed over */
	if (rv != 0) {
		eng_txn_free(t);
		return rv;
	}
	QF_LOG(QF_INFO, "db=%s: installing the leader's image (seq=%llu, "
	       "%u pages) through the mount", d->name,
	       (unsigned long long)t->seq, t->db_pages);
	return eng__follow_push_image(f, d, t, index, true);
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
