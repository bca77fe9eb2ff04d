/* The running engine: a libuv loop thread that owns raft (libraft 0.15 with
 * raft_uv storage), the state machine and the per-database state.
 *
 * Write path, happy case:
 *   any thread  eng_submit(c)  -> mutex queue + uv_async_send
 *   loop        drain_queue    -> per-database FIFO (one commit of a
 *               database in raft at a time, so each entry's "checksum
 *               before" is exact) -> noop check -> encode -> raft_apply
 *   loop        fsm_apply      -> decode, check sequence and checksum
 *               against local state, update page hashes
 *   loop        apply_cb       -> c->cb(c, 0): the caller writes the held
 *               bytes to the backing file and answers its process; then the
 *               state header (applied index) is persisted.
 * Failures: raft_apply refusing (not leader), leadership lost, shutdown and
 * divergence each reach c->cb with a negative status.
 *
 * Replay: entries applied before the mount exists (log tail at start, or a
 * snapshot restore) are written straight into the settled backing files;
 * entries already reflected locally (index <= the database's applied
 * index) are skipped, so replay is idempotent.
 *
 * libraft 0.15 workarounds (raft-notes.md): io.version = 2 for a v3 FSM,
 * one entry per raft_apply, a barrier after becoming leader before anything
 * is served, last_applied + 1 is the index inside fsm->apply, and
 * snapshot_get refused when no snapshot is on disk (it would hand raft an
 * uninitialised one). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "core.h"
#include "snapshot.h"

static void stop_raft(struct eng *e);
static void try_stop(struct eng *e);

#define STOP_DRAIN_MS 3000

/* Raft holds entries in memory until a snapshot covers them, and the entry
 * format's length field is 32 bits: cap one transaction's entry. */
#define ENG_MAX_ENTRY (1024u << 20)


/* A function to run on the loop thread (eng_call). */
struct call {
	void (*fn)(void *arg);
	void *arg;
	struct call *next;
};

/* One raft_apply in flight. */
struct apply {
	struct raft_apply req;
	uint64_t start_us;
	struct eng_commit *c;
	struct eng *e;
	struct apply *next;
};

static struct apply *inflight; /* loop thread only; one engine per process */

bool eng__commits_idle(void)
{
	return inflight == NULL;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t eng__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Convert a raft error once, here, at the only edge that calls raft. */
int eng__from_raft(int rv)
{
	switch (rv) {
	case 0:
		return 0;
	case RAFT_NOTLEADER:
		return QF_ENOTLEADER;
	case RAFT_LEADERSHIPLOST:
		return QF_ELEADERSHIPLOST;
	case RAFT_SHUTDOWN:
		return QF_ESHUTDOWN;
	case RAFT_NOMEM:
		return -ENOMEM;
	case RAFT_NOSPACE:
		return -ENOSPC;
	case RAFT_IOERR:
		return -EIO;
	default:
		return QF_ERAFT;
	}
}

const char *eng_db_dir(const struct eng *e)
{
	return e->db_dir;
}

/* ---- finishing commits ---- */

static void start_commit(struct eng *e, struct eng_commit *c);

/* Run @c's callback, persist what it made durable, and start the next
 * commit queued behind it on the same database. */
static void finish(struct eng *e, struct eng_commit *c, int status)
{
	struct eng_db *d = eng__db_find(&e->dbs, c->txn->db);
	bool record = status == 0 && !c->noop;
	uint64_t wal_frames = 0;
	struct eng_commit *next;
	int local, rv;

	eng_txn_free(c->txn);
	c->txn = NULL;
	local = c->cb(c, status, &wal_frames); /* @c may be gone now */
	/* A failed local write leaves the files behind the state: the header
	 * keeps the older index and a restart replays the entry. */
	if (record && local == 0 && d != NULL) {
		d->wal_frames = wal_frames;
		rv = eng__db_save_header(&e->dbs, d);
		if (rv != 0)
			QF_LOG(QF_ERROR, "db=%s: saving state: %s", d->name,
			       qf_strerror(rv));
	} else if (record && d != NULL) {
		/* The state is ahead of the files: take no more writes and
		 * never persist this state; a restart replays the entry. */
		QF_LOG(QF_ERROR, "db=%s: files lag the raft log; refusing "
		       "writes until the node restarts", d->name);
		d->diverged = true;
	}
	if (d == NULL)
		return;
	d->busy = false;
	next = d->wait_head;
	if (next != NULL) {
		d->wait_head = next->next;
		if (d->wait_head == NULL)
			d->wait_tail = NULL;
		start_commit(e, next);
	}
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
	struct apply *a = QF_CONTAINER_OF(req, struct apply, req);
	struct apply **pp;
	int rv = eng__from_raft(status);
	uint64_t t0;

	if (status == RAFT_IOERR || status == RAFT_NOSPACE)
		eng__step_down_on_disk_error(a->e, status);

	for (pp = &inflight; *pp != NULL; pp = &(*pp)->next)
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	if (rv == 0)
		rv = (int)(intptr_t)result;
	t0 = now_us();
	a->e->raft_us_total += t0 - a->start_us;
	finish(a->e, a->c, rv);
	a->e->cb_us_total += now_us() - t0;
	a->e->n_commits++;
	free(a);
}

/* Loop thread: put @c into raft, or finish it right away. */
static void start_commit(struct eng *e, struct eng_commit *c)
{
	struct eng_db *d = eng__db_get(&e->dbs, c->txn->db);
	struct raft_buffer buf;
	struct apply *a;
	int rv;

	if (d == NULL) {
		rv = -ENOMEM;
		goto fail;
	}
	if (d->busy) { /* queue behind the one in raft */
		c->next = NULL;
		if (d->wait_tail)
			d->wait_tail->next = c;
		else
			d->wait_head = c;
		d->wait_tail = c;
		return;
	}
	d->busy = true;
	if (d->diverged) {
		rv = QF_EDIVERGED;
		goto fail;
	}
	if (raft_state(&e->raft) != RAFT_LEADER) {
		rv = QF_ENOTLEADER;
		goto fail;
	}
	if (c->type == ENG_ENTRY_TXN && eng__db_txn_is_noop(d, c->txn)) {
		c->noop = true;
		finish(e, c, 0);
		return;
	}
	if (e->fault_every > 0 && ++e->fault_count % e->fault_every == 0) {
		rv = QF_ERAFT; /* injected: see QF_FAULT_REFUSE_EVERY */
		goto fail;
	}
	c->txn->seq = d->seq + 1;
	c->txn->cksum_before = d->cksum;
	c->txn->cksum_after = eng__db_cksum_after(d, c->txn);
	buf.len = eng_entry_size(c->txn);
	if (buf.len > ENG_MAX_ENTRY) {
		QF_LOG(QF_ERROR, "db=%s: transaction of %zu MiB refused: the "
		       "limit is %u MiB per transaction", c->txn->db,
		       buf.len >> 20, ENG_MAX_ENTRY >> 20);
		rv = -EFBIG;
		goto fail;
	}
	c->nonce = ++e->next_nonce;
	a = calloc(1, sizeof *a);
	buf.base = a ? raft_malloc(buf.len) : NULL;
	if (buf.base == NULL) {
		free(a);
		rv = -ENOMEM;
		goto fail;
	}
	eng_entry_encode(c->type, c->txn, e->cfg.id, c->nonce, buf.base);
	a->c = c;
	a->e = e;
	a->start_us = now_us();
	rv = raft_apply(&e->raft, &a->req, &buf, 1, apply_cb);
	if (rv != 0) {
		raft_free(buf.base);
		free(a);
		rv = eng__from_raft(rv);
		goto fail;
	}
	a->next = inflight;
	inflight = a;
	return;
fail:
	finish(e, c, rv);
}

/* Let commits already in raft finish (their writers then get an honest
 * answer instead of "outcome unknown"), for at most STOP_DRAIN_MS, then
 * close raft. */
static void stop_timer_cb(uv_timer_t *t)
{
	try_stop(t->data);
}

static void try_stop(struct eng *e)
{
	if (inflight != NULL && eng__now_ms() < e->stop_deadline) {
		uv_timer_start(&e->timer, stop_timer_cb, 5, 0);
		return;
	}
	stop_raft(e);
}

static void drain_queue(uv_async_t *h)
{
	struct eng *e = h->data;
	struct eng_commit *c, *next;
	struct call *calls, *next_call;
	bool stopping;

	pthread_mutex_lock(&e->mu);
	c = e->q_head;
	e->q_head = e->q_tail = NULL;
	calls = e->c_head;
	e->c_head = e->c_tail = NULL;
	stopping = e->stopping;
	pthread_mutex_unlock(&e->mu);
	for (; calls != NULL; calls = next_call) {
		next_call = calls->next;
		calls->fn(calls->arg);
		free(calls);
	}
	for (; c != NULL; c = next) {
		next = c->next;
		c->next = NULL;
		start_commit(e, c);
	}
	if (stopping && !e->stop_started) {
		e->stop_started = true;
		e->stop_deadline = eng__now_ms() + STOP_DRAIN_MS;
		try_stop(e);
	}
}

int eng_call(struct eng *e, void (*fn)(void *arg), void *arg)
{
	struct call *c = calloc(1, sizeof *c);

	if (c == NULL)
		return -ENOMEM;
	c->fn = fn;
	c->arg = arg;
	pthread_mutex_lock(&e->mu);
	if (e->stopping) {
		pthread_mutex_unlock(&e->mu);
		free(c);
		return QF_ESHUTDOWN;
	}
	if (e->c_tail)
		e->c_tail->next = c;
	else
		e->c_head = c;
	e->c_tail = c;
	pthread_mutex_unlock(&e->mu);
	uv_async_send(&e->async);
	return 0;
}

uv_loop_t *eng_loop(struct eng *e)
{
	return &e->loop;
}

bool eng_is_leader(struct eng *e)
{
	return __atomic_load_n(&e->leader_flag, __ATOMIC_ACQUIRE) != 0;
}

uint64_t eng_id(const struct eng *e)
{
	return e->cfg.id;
}

const char *eng_address(const struct eng *e)
{
	return e->address;
}

int eng_submit(struct eng *e, struct eng_commit *c)
{
	pthread_mutex_lock(&e->mu);
	if (e->stopping) {
		pthread_mutex_unlock(&e->mu);
		return QF_ESHUTDOWN;
	}
	c->next = NULL;
	c->noop = false;
	if (e->q_tail)
		e->q_tail->next = c;
	else
		e->q_head = c;
	e->q_tail = c;
	pthread_mutex_unlock(&e->mu);
	uv_async_send(&e->async);
	return 0;
}

/* ---- the state machine ---- */

static bool is_local_inflight(struct eng *e, const struct eng_entry *en)
{
	struct apply *a;

	if (en->origin != e->cfg.id)
		return false;
	for (a = inflight; a != NULL; a = a->next)
		if (a->c->nonce == en->nonce)
			return true;
	return false;
}

/* Write a replayed entry into the backing files (no mount exists yet). */
static int replay_into_files(struct eng *e, struct eng_db *d,
			     const struct eng_txn *t)
{
	int rv;

	if (!d->settled) {
		rv = eng__db_settle(&e->dbs, d->name);
		if (rv != 0)
			return rv;
		d->settled = true;
		d->wal_frames = 0;
	}
	rv = eng__db_write_backing(&e->dbs, t);
	if (rv == 0)
		rv = eng__db_save_header(&e->dbs, d);
	return rv;
}

/* Never fails towards raft (a non-zero return would stall the log
 * forever); problems are reported through *result and the database is
 * marked diverged. */
static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf,
		     void **result)
{
	struct eng *e = fsm->data;
	uint64_t index = raft_last_applied(&e->raft) + 1;
	char name[4096];
	struct eng_entry en;
	struct eng_db *d;
	int rv;

	*result = NULL;
	/* Replay at start skips entries the files already hold without
	 * hashing their pages. */
	if (!e->live &&
	    eng_entry_peek_db(buf->base, buf->len, name, sizeof name) == 0) {
		d = eng__db_find(&e->dbs, name);
		if (d != NULL && index <= d->applied)
			return 0;
	}
	rv = eng_entry_decode(buf->base, buf->len, &en);
	if (rv != 0) {
		QF_LOG(QF_ERROR, "index=%llu: undecodable entry: %s",
		       (unsigned long long)index, qf_strerror(rv));
		*result = (void *)(intptr_t)rv;
		return 0;
	}
	d = eng__db_get(&e->dbs, en.txn->db);
	if (d == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	if (index <= d->applied)
		goto out; /* already in the local files: replay skips it */
	if (!e->live) { /* live followers check this in log order (follow.c) */
		rv = eng__db_covered(d, en.txn, index);
		if (rv != 0) {
			if (rv < 0)
				d->diverged = true;
			rv = rv < 0 ? rv : 0;
			goto out;
		}
	}
	if (en.type != ENG_ENTRY_TXN) {
		QF_LOG(QF_ERROR, "index=%llu: entry type %d not supported",
		       (unsigned long long)index, en.type);
		rv = QF_EMALFORMED;
		goto out;
	}
	if (e->live && !is_local_inflight(e, &en)) {
		/* Another node's transaction, with the mount up: the applier
		 * makes it visible through the mount (follow.c). */
		rv = eng__follow_push(&e->follow, d, en.txn, index);
		en.txn = NULL;
		goto out;
	}
	rv = eng__db_apply(d, en.txn, index);
	if (rv != 0) {
		d->diverged = true;
		goto out;
	}
	if (e->live)
		goto out; /* local: the committer writes the files in its cb */
	if (d->files_suspect)
		goto out; /* the leader's image replaces them (follow.c) */
	rv = replay_into_files(e, d, en.txn);
	if (rv != 0) {
		QF_LOG(QF_ERROR, "db=%s index=%llu: replay: %s", d->name,
		       (unsigned long long)index, qf_strerror(rv));
		d->diverged = true;
	}
out:
	eng_txn_free(en.txn);
	*result = (void *)(intptr_t)rv;
	return 0;
}

/* libraft 0.15's snapshot_get reports success with an uninitialised
 * snapshot when its directory holds none (uvSnapshotGetWorkCb), and the
 * leader then sends garbage (a crash seen under ASan).  Refuse the get
 * up front when no snapshot's metadata is there; raft tries again later. */
static bool has_snapshot(const char *raft_dir)
{
	DIR *d = opendir(raft_dir);
	struct dirent *de;
	size_t len;
	bool found = false;

	if (d == NULL)
		return false;
	while (!found && (de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		found = strncmp(de->d_name, "snapshot-", 9) == 0 && len > 14 &&
			strcmp(de->d_name + len - 5, ".meta") == 0;
	}
	closedir(d);
	return found;
}

static int (*raft_uv_snapshot_get)(struct raft_io *io,
				   struct raft_io_snapshot_get *req,
				   raft_io_snapshot_get_cb cb);

static int guarded_snapshot_get(struct raft_io *io,
				struct raft_io_snapshot_get *req,
				raft_io_snapshot_get_cb cb)
{
	struct eng *e = QF_CONTAINER_OF(io, struct eng, io);

	if (!has_snapshot(e->raft_dir)) {
		QF_LOG(QF_WARN, "raft wants to send a snapshot, but none is "
		       "on disk yet: it tries again later");
		return RAFT_NOTFOUND;
	}
	return raft_uv_snapshot_get(io, req, cb);
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
			unsigned *n_bufs)
{
	struct eng *e = fsm->data;

	if (inflight != NULL || !eng__follow_idle(&e->follow))
		return RAFT_BUSY; /* a commit's files are not written yet */
	return eng__snapshot_take(&e->dbs, raft_last_applied(&e->raft), bufs,
				  n_bufs);
}

static int fsm_snapshot_async(struct raft_fsm *fsm, struct raft_buffer *bufs[],
			      unsigned *n_bufs)
{
	struct eng *e = fsm->data;
	int rv = eng__snapshot_copy(e->db_dir, e->state_dir, e->raft_dir, bufs,
				    n_bufs);

	__atomic_store_n(&e->snap_failed, rv != 0, __ATOMIC_RELEASE);
	return rv;
}

/* ---- trying a failed snapshot again ----
 * raft takes a snapshot only when it applies an entry, so one whose copy
 * failed (writers raced it, or the disk was full) would wait for the next
 * write, which an idle database never makes, while raft keeps the whole
 * log in memory.  The leader retries with a barrier, after SNAP_RETRY_MS
 * doubling to SNAP_RETRY_MAX_MS; followers take the barrier too, and a
 * node that does not lead keeps the timer going until it does or a
 * snapshot succeeds.  Only the copy is retried: raft's own write of a
 * snapshot failing is retried at its next attempt, as before. */
#define SNAP_RETRY_MS 500
#define SNAP_RETRY_MAX_MS 60000

static void snap_retry_cb(uv_timer_t *t);

static void snap_retry_rearm(struct eng *e)
{
	if (!e->stop_started && e->snap_retry_ms != 0)
		(void)uv_timer_start(&e->snap_timer, snap_retry_cb,
				     e->snap_retry_ms, 0);
}

static void snap_barrier_cb(struct raft_barrier *req, int status)
{
	struct eng *e = req->data;

	e->snap_barrier_busy = false;
	if (status != 0) {
		QF_LOG(QF_DEBUG, "snapshot retry barrier: %s",
		       raft_strerror(status));
		snap_retry_rearm(e);
	}
}

static void snap_retry_cb(uv_timer_t *t)
{
	struct eng *e = t->data;

	if (e->stop_started)
		return;
	if (e->snap_barrier_busy || raft_state(&e->raft) != RAFT_LEADER) {
		snap_retry_rearm(e);
		return;
	}
	e->snap_barrier.data = e;
	if (raft_barrier(&e->raft, &e->snap_barrier, snap_barrier_cb) == 0)
		e->snap_barrier_busy = true;
	else
		snap_retry_rearm(e);
}

/* Loop thread, when a snapshot attempt ended: arm or reset the retry. */
static void snap_retry_after(struct eng *e, bool failed)
{
	if (!failed) {
		e->snap_retry_ms = 0;
		(void)uv_timer_stop(&e->snap_timer);
		return;
	}
	e->snap_retry_ms = e->snap_retry_ms == 0 ? SNAP_RETRY_MS
			   : e->snap_retry_ms * 2 > SNAP_RETRY_MAX_MS
				   ? SNAP_RETRY_MAX_MS
				   : e->snap_retry_ms * 2;
	snap_retry_rearm(e);
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm,
				 struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct eng *e = fsm->data;
	struct eng_db *d;

	eng__snapshot_free(bufs, n_bufs);
	snap_retry_after(e, __atomic_load_n(&e->snap_failed, __ATOMIC_ACQUIRE));
	/* Tag fresh page hashes so a restart after a crash need not re-hash
	 * databases that did not change since. */
	for (d = e->dbs.head; d != NULL; d = d->next)
		if (!d->busy && !d->fq_busy && !d->diverged &&
		    d->hashes_at != d->applied &&
		    eng__db_save_all(&e->dbs, d) != 0)
			QF_LOG(QF_WARN, "db=%s: saving hashes failed", d->name);
	return 0;
}

static int push_image(void *arg, struct eng_db *d, struct eng_txn *t,
		      uint64_t index)
{
	struct eng *e = arg;

	return eng__follow_push_image(&e->follow, d, t, index, true);
}

static int push_state(void *arg, struct eng_db *d, struct eng_db_snap *st,
		      uint64_t index)
{
	struct eng *e = arg;

	return eng__follow_push_state(&e->follow, d, st, index);
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	struct eng *e = fsm->data;
	struct eng__restore_to to = {push_image, push_state, e};
	uint64_t index = 0;
	int rv;

	/* Mounted: changed databases go through the applier, in order
	 * after what it already has. */
	rv = e->live ? eng__snapshot_install(&e->dbs, buf->base, buf->len,
					     &index, &to)
		     : eng__snapshot_restore(&e->dbs, buf->base, buf->len,
					     &index);
	if (rv != 0) {
		QF_LOG(QF_ERROR, "snapshot restore: %s", qf_strerror(rv));
		return RAFT_IOERR;
	}
	raft_free(buf->base);
	QF_LOG(QF_INFO, "snapshot index=%llu restored",
	       (unsigned long long)index);
	return 0;
}

/* ---- startup and shutdown on the loop thread ---- */

void eng__signal_ready(struct eng *e, int status)
{
	pthread_mutex_lock(&e->mu);
	if (!e->ready_done) {
		e->ready_done = true;
		e->ready_status = status;
		pthread_cond_broadcast(&e->cond);
	}
	pthread_mutex_unlock(&e->mu);
}

static void signal_started(struct eng *e, int status)
{
	pthread_mutex_lock(&e->mu);
	e->started_done = true;
	e->started_status = status;
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->mu);
}

/* Polls raft: until this node leads and has applied its whole log
 * (one-node use), or for as long as it runs (cluster mode). */
static void timer_cb(uv_timer_t *t)
{
	struct eng *e = t->data;
	int rv;

	if (e->cfg.cluster) {
		eng__watch_cluster(e);
		eng__follow_tick(&e->follow, eng__now_ms());
		return;
	}
	if (e->live)
		return;
	if (e->raft.configuration.n == 0) {
		eng__signal_ready(e, -ENOENT);
		return;
	}
	if (raft_state(&e->raft) == RAFT_LEADER && !e->barrier_sent) {
		e->barrier.data = e;
		rv = raft_barrier(&e->raft, &e->barrier, eng__barrier_cb);
		if (rv == 0)
			e->barrier_sent = true;
	}
	if (eng__now_ms() - e->start_ms > 30000)
		eng__signal_ready(e, -ETIMEDOUT);
}

static void close_handles_cb(uv_handle_t *h)
{
	(void)h;
}

static void raft_closed_cb(struct raft *r)
{
	struct eng *e = r->data;

	raft_uv_close(&e->io);
	if (e->own_transport)
		raft_uv_tcp_close(&e->transport);
	uv_close((uv_handle_t *)&e->async, close_handles_cb);
}

static void stop_raft(struct eng *e)
{
	__atomic_store_n(&e->leader_flag, 0, __ATOMIC_RELEASE);
	if (e->n_commits > 0)
		QF_LOG(QF_INFO, "commits=%llu raft_ms_avg=%.3f reply_ms_avg=%.3f",
		       (unsigned long long)e->n_commits,
		       (double)e->raft_us_total / (double)e->n_commits / 1000.0,
		       (double)e->cb_us_total / (double)e->n_commits / 1000.0);
	uv_timer_stop(&e->timer);
	uv_close((uv_handle_t *)&e->timer, close_handles_cb);
	uv_close((uv_handle_t *)&e->snap_timer, close_handles_cb);
	eng__follow_close(&e->follow); /* replayed at the next start */
	raft_close(&e->raft, raft_closed_cb);
}

static int start_raft(struct eng *e)
{
	struct raft_configuration conf;
	int rv;

	if (e->cfg.transport == NULL) {
		rv = raft_uv_tcp_init(&e->transport, &e->loop);
		if (rv != 0)
			return rv;
		e->own_transport = true;
	}
	eng__prefill_segments_in(e->raft_dir);
	rv = raft_uv_init(&e->io, &e->loop, e->raft_dir,
			  e->own_transport ? &e->transport : e->cfg.transport);
	if (rv != 0)
		return rv;
	/* After raft_uv_init, which clears it; the transport reads it in its
	 * init, called from raft_init. */
	if (!e->own_transport)
		e->cfg.transport->data = &e->loop; /* engine.h: its loop */
	e->io.version = 2; /* libraft 0.15 bug: v3 FSMs are rejected otherwise */
	raft_uv_snapshot_get = e->io.snapshot_get; /* the same for every node */
	e->io.snapshot_get = guarded_snapshot_get;
	e->fsm.version = 3;
	e->fsm.data = e;
	e->fsm.apply = fsm_apply;
	e->fsm.snapshot = fsm_snapshot;
	e->fsm.restore = fsm_restore;
	e->fsm.snapshot_finalize = fsm_snapshot_finalize;
	e->fsm.snapshot_async = fsm_snapshot_async;
	rv = raft_init(&e->raft, &e->io, &e->fsm, e->cfg.id, e->address);
	if (rv != 0) {
		QF_LOG(QF_ERROR, "raft_init: %s", raft_errmsg(&e->raft));
		return rv;
	}
	e->raft.data = e;
	/* LAN defaults: followers learn a commit at the next heartbeat, and
	 * a leader's death is noticed after 1-2 election timeouts. */
	raft_set_election_timeout(&e->raft, e->cfg.election_timeout_ms
						     ? e->cfg.election_timeout_ms
						     : 1000);
	raft_set_heartbeat_timeout(&e->raft, e->cfg.heartbeat_timeout_ms
						      ? e->cfg.heartbeat_timeout_ms
						      : 100);
	raft_set_pre_vote(&e->raft, true);
	raft_set_snapshot_threshold(&e->raft, e->cfg.snapshot_threshold);
	raft_set_snapshot_trailing(&e->raft, e->cfg.snapshot_trailing);
	if (e->cfg.bootstrap) {
		raft_configuration_init(&conf);
		rv = raft_configuration_add(&conf, e->cfg.id, e->address,
					    RAFT_VOTER);
		if (rv == 0)
			rv = raft_bootstrap(&e->raft, &conf);
		raft_configuration_close(&conf);
		if (rv == RAFT_CANTBOOTSTRAP)
			QF_LOG(QF_INFO, "already bootstrapped; --bootstrap ignored");
		else if (rv != 0)
			return rv;
		else
			QF_LOG(QF_INFO, "bootstrapped a one-node cluster id=%llu",
			       (unsigned long long)e->cfg.id);
	}
	rv = raft_start(&e->raft);
	if (rv != 0)
		QF_LOG(QF_ERROR, "raft_start: %s", raft_errmsg(&e->raft));
	return rv;
}

/* Process signals (SIGINT, SIGTERM, SIGHUP) must reach the main thread or
 * a FUSE worker, whose interrupted waits notice the session's exit; a
 * signal caught by this thread, or by one it starts (libuv's threadpool,
 * the network server's session threads), would leave them all asleep. */
static void block_stop_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void *loop_main(void *arg)
{
	struct eng *e = arg;
	int rv;

	(void)pthread_setname_np(pthread_self(), "qf-loop"); /* for top, gdb */
	block_stop_signals();

	rv = start_raft(e);
	if (rv != 0) {
		QF_LOG(QF_ERROR, "starting raft: %s", raft_strerror(rv));
		/* The process exits after this; raft's partial state is not
		 * unwound. */
		signal_started(e, eng__from_raft(rv));
		eng__signal_ready(e, eng__from_raft(rv));
		return NULL;
	}
	signal_started(e, 0);
	e->start_ms = eng__now_ms();
	uv_timer_start(&e->timer, timer_cb, 0, 10);
	uv_run(&e->loop, UV_RUN_DEFAULT);
	return NULL;
}

static void eng_free(struct eng *e)
{
	eng__dbs_close(&e->dbs);
	pthread_mutex_destroy(&e->mu);
	pthread_cond_destroy(&e->cond);
	free(e->data_dir);
	free(e->raft_dir);
	free(e->db_dir);
	free(e->state_dir);
	free(e->address);
	free(e);
}

static int prepare(struct eng *e)
{
	bool same_boot = false;
	char boot[128] = "";
	int rv;

	if (asprintf(&e->raft_dir, "%s/raft", e->data_dir) < 0 ||
	    asprintf(&e->db_dir, "%s/db", e->data_dir) < 0 ||
	    asprintf(&e->state_dir, "%s/state", e->data_dir) < 0)
		return -ENOMEM;
	rv = eng__make_dir(e->data_dir);
	if (rv == 0)
		rv = eng__make_dir(e->raft_dir);
	if (rv == 0)
		rv = eng__make_dir(e->db_dir);
	if (rv == 0)
		rv = eng__make_dir(e->state_dir);
	if (rv == 0)
		rv = eng__check_identity(e->data_dir, &e->cfg.id, &e->address);
	if (rv == 0)
		rv = eng__check_boot(e->state_dir, boot, sizeof boot,
				     &same_boot);
	if (rv == 0) {
		eng__remove_scratch(e->state_dir);
		rv = eng__dbs_init(&e->dbs, e->state_dir, e->db_dir);
	}
	if (rv == 0)
		rv = eng__dbs_load(&e->dbs, same_boot);
	if (rv == 0)
		rv = eng__dbs_remove_orphans(&e->dbs);
	if (rv == 0)
		rv = eng__record_boot(e->state_dir, boot); /* files checked */
	return rv;
}

int eng_start(struct eng **out, const struct eng_config *c)
{
	struct eng *e = calloc(1, sizeof *e);
	int rv;

	if (e == NULL)
		return -ENOMEM;
	e->cfg = *c;
	if (e->cfg.snapshot_threshold == 0)
		e->cfg.snapshot_threshold = 4096;
	if (e->cfg.snapshot_trailing == 0)
		e->cfg.snapshot_trailing = 4096;
	if (getenv("QF_FAULT_REFUSE_EVERY") != NULL) {
		e->fault_every = strtoul(getenv("QF_FAULT_REFUSE_EVERY"), NULL, 10);
		QF_LOG(QF_WARN, "fault injection: refusing every %lu-th commit",
		       e->fault_every);
	}
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cond, NULL);
	e->data_dir = strdup(c->data_dir);
	e->address = c->address ? strdup(c->address) : NULL;
	if (e->data_dir == NULL || (c->address && e->address == NULL)) {
		eng_free(e);
		return -ENOMEM;
	}
	rv = prepare(e);
	if (rv != 0) {
		eng_free(e);
		return rv;
	}
	eng__follow_init(&e->follow, &e->dbs);
	if (uv_loop_init(&e->loop) != 0 ||
	    uv_async_init(&e->loop, &e->async, drain_queue) != 0 ||
	    uv_timer_init(&e->loop, &e->timer) != 0 ||
	    uv_timer_init(&e->loop, &e->snap_timer) != 0) {
		eng_free(e);
		return -ENOMEM;
	}
	e->async.data = e;
	e->timer.data = e;
	e->snap_timer.data = e;
	rv = pthread_create(&e->thread, NULL, loop_main, e);
	if (rv != 0) {
		eng_free(e);
		return -rv;
	}
	*out = e;
	if (c->cluster) {
		pthread_mutex_lock(&e->mu);
		while (!e->started_done)
			pthread_cond_wait(&e->cond, &e->mu);
		rv = e->started_status;
		pthread_mutex_unlock(&e->mu);
		return rv;
	}
	return eng_wait_ready(e);
}

int eng_wait_ready(struct eng *e)
{
	int rv;

	while ((rv = eng_wait_ready_for(e, 1000)) == -EAGAIN)
		;
	return rv;
}

int eng_wait_ready_for(struct eng *e, unsigned ms)
{
	struct timespec deadline;
	int rv = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += ms / 1000;
	deadline.tv_nsec += (long)(ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&e->mu);
	while (!e->ready_done && rv == 0)
		rv = pthread_cond_timedwait(&e->cond, &e->mu, &deadline);
	rv = e->ready_done ? e->ready_status : -EAGAIN;
	pthread_mutex_unlock(&e->mu);
	if (rv == -ENOENT)
		QF_LOG(QF_ERROR, "this node is in no cluster yet: start the "
		       "first node with --bootstrap, the others with --join");
	return rv;
}

void eng_stop(struct eng *e)
{
	struct eng_db *d;
	bool started;

	pthread_mutex_lock(&e->mu);
	started = e->cfg.cluster ? e->started_done && e->started_status == 0
				 : e->ready_done && e->ready_status == 0;
	e->stopping = true;
	pthread_mutex_unlock(&e->mu);
	if (started) {
		uv_async_send(&e->async);
		pthread_join(e->thread, NULL);
		uv_loop_close(&e->loop);
		/* The loop is gone: this thread owns the state now. */
		for (d = e->dbs.head; d != NULL; d = d->next)
			if (!d->diverged && d->hashes_at != d->applied &&
			    eng__db_save_all(&e->dbs, d) != 0)
				QF_LOG(QF_WARN, "db=%s: saving state failed",
				       d->name);
		eng_free(e);
		return;
	}
	/* Startup failed: the process is about to exit; the loop thread
	 * has returned or is blocked in raft, so leave the memory. */
}
