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
 * is served, last_applied + 1 is the index inside fsm->apply. */
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

#include "engine.h"
#include "follow.h"
#include "snapshot.h"
#include "state.h"

static void stop_raft(struct eng *e);
static void try_stop(struct eng *e);

#define STOP_DRAIN_MS 3000

/* Raft holds entries in memory until a snapshot covers them, and the entry
 * format's length field is 32 bits: cap one transaction's entry. */
#define ENG_MAX_ENTRY (1024u << 20)

struct eng {
	struct eng_config cfg;
	char *data_dir, *raft_dir, *db_dir, *state_dir, *address;
	uv_loop_t loop;
	pthread_t thread;
	struct raft raft;
	struct raft_io io;
	struct raft_uv_transport transport; /* libraft's TCP one, if used */
	bool own_transport;
	struct raft_fsm fsm;
	struct eng_dbs dbs;
	uv_async_t async;
	uv_timer_t timer;
	struct raft_barrier barrier;
	bool barrier_sent;
	bool barrier_done;  /* cluster mode: this term's barrier applied */
	struct raft_transfer disk_xfer; /* stepping down after a disk error */
	bool disk_transfer;
	bool leader_ready;  /* cluster mode: leading with the log applied */
	struct eng_follower follow;
	/* Queue from other threads, under @mu. */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct eng_commit *q_head, *q_tail;
	struct call *c_head, *c_tail;	/* eng_call() work */
	bool stopping;
	int leader_flag;		/* atomic: eng_is_leader() */
	/* Startup handshakes with eng_start and eng_wait_ready, under @mu. */
	bool started_done;
	int started_status;
	bool ready_done;
	int ready_status;
	/* Loop thread only. */
	bool live;		/* the mount may exist: no direct replay */
	uint64_t next_nonce;
	uint64_t start_ms;
	/* Fault injection for tests: refuse every Nth commit that would reach
	 * raft (environment variable QF_FAULT_REFUSE_EVERY). */
	unsigned long fault_every, fault_count;
	bool stop_started;
	uint64_t stop_deadline;
	/* Metrics, loop thread only. */
	uint64_t n_commits, raft_us_total, cb_us_total;
};

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

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Convert a raft error once, here, at the only edge that calls raft. */
static int from_raft(int rv)
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

static void disk_transfer_cb(struct raft_transfer *req)
{
	struct eng *e = req->data;

	e->disk_transfer = false;
}

/* This leader could not write its own log: hand leadership to another
 * voter (raft picks the most up-to-date) rather than keep refusing every
 * commit.  One attempt at a time. */
static void step_down_on_disk_error(struct eng *e, int status)
{
	int rv;

	if (raft_state(&e->raft) != RAFT_LEADER || e->disk_transfer)
		return;
	QF_LOG(QF_ERROR, "writing the raft log failed (%s): handing "
	       "leadership to another voter", qf_strerror(from_raft(status)));
	e->disk_xfer.data = e;
	rv = raft_transfer(&e->raft, &e->disk_xfer, 0, disk_transfer_cb);
	if (rv == 0)
		e->disk_transfer = true;
	else
		QF_LOG(QF_ERROR, "leadership transfer: %s", raft_strerror(rv));
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
	struct apply *a = QF_CONTAINER_OF(req, struct apply, req);
	struct apply **pp;
	int rv = from_raft(status);
	uint64_t t0;

	if (status == RAFT_IOERR || status == RAFT_NOSPACE)
		step_down_on_disk_error(a->e, status);

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
		rv = from_raft(rv);
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
	if (inflight != NULL && now_ms() < e->stop_deadline) {
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
		e->stop_deadline = now_ms() + STOP_DRAIN_MS;
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

/* One membership change in raft. */
struct change {
	struct raft_change req;
	struct raft_transfer transfer;
	struct eng *e;
	eng_change_cb cb;
	void *arg;
};

static void change_cb(struct raft_change *req, int status)
{
	struct change *ch = req->data;

	ch->cb(ch->arg, status == 0 ? 0 : from_raft(status),
	       status == 0 ? "" : raft_strerror(status));
	free(ch);
}

static void transfer_cb(struct raft_transfer *req)
{
	struct change *ch = req->data;

	ch->cb(ch->arg, 0, "");
	free(ch);
}

static int raft_role(int role)
{
	return role == ENG_VOTER ? RAFT_VOTER
	       : role == ENG_STANDBY ? RAFT_STANDBY : RAFT_SPARE;
}

void eng_change(struct eng *e, int op, uint64_t id, const char *address,
		int role, eng_change_cb cb, void *arg)
{
	struct change *ch = calloc(1, sizeof *ch);
	int rv;

	if (ch == NULL) {
		cb(arg, -ENOMEM, "out of memory");
		return;
	}
	ch->e = e;
	ch->cb = cb;
	ch->arg = arg;
	ch->req.data = ch;
	ch->transfer.data = ch;
	switch (op) {
	case ENG_ADD:
		rv = raft_add(&e->raft, &ch->req, id, address, change_cb);
		break;
	case ENG_ASSIGN:
		rv = raft_assign(&e->raft, &ch->req, id, raft_role(role),
				 change_cb);
		break;
	case ENG_REMOVE:
		rv = raft_remove(&e->raft, &ch->req, id, change_cb);
		break;
	default:
		rv = raft_transfer(&e->raft, &ch->transfer, id, transfer_cb);
		break;
	}
	if (rv != 0) {
		cb(arg, from_raft(rv), raft_errmsg(&e->raft)[0]
					       ? raft_errmsg(&e->raft)
					       : raft_strerror(rv));
		free(ch);
	}
}

void eng_leader(struct eng *e, uint64_t *id, char *address, size_t size)
{
	raft_id lid = 0;
	const char *laddr = NULL;

	raft_leader(&e->raft, &lid, &laddr);
	*id = lid;
	snprintf(address, size, "%s", laddr ? laddr : "");
}

unsigned eng_members(struct eng *e, struct eng_member *out, unsigned max)
{
	const struct raft_configuration *conf = &e->raft.configuration;
	unsigned i;

	for (i = 0; i < conf->n && i < max; i++) {
		out[i].id = conf->servers[i].id;
		snprintf(out[i].address, sizeof out[i].address, "%s",
			 conf->servers[i].address);
		out[i].role = conf->servers[i].role == RAFT_VOTER ? ENG_VOTER
			      : conf->servers[i].role == RAFT_STANDBY ? ENG_STANDBY
			      : ENG_SPARE;
	}
	return conf->n;
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

	return eng__snapshot_copy(e->db_dir, bufs, n_bufs);
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm,
				 struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct eng *e = fsm->data;
	struct eng_db *d;

	eng__snapshot_free(bufs, n_bufs);
	/* Tag fresh page hashes so a restart after a crash need not re-hash
	 * databases that did not change since. */
	for (d = e->dbs.head; d != NULL; d = d->next)
		if (!d->busy && !d->fq_busy && !d->diverged &&
		    d->hashes_at != d->applied &&
		    eng__db_save_all(&e->dbs, d) != 0)
			QF_LOG(QF_WARN, "db=%s: saving hashes failed", d->name);
	return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	struct eng *e = fsm->data;
	uint64_t index = 0;
	int rv;

	if (e->live) {
		/* TODO(#4): install a snapshot on a mounted follower. */
		QF_LOG(QF_ERROR, "snapshot install on a mounted node is not "
		       "supported yet");
		return RAFT_IOERR;
	}
	rv = eng__snapshot_restore(&e->dbs, buf->base, buf->len, &index);
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

static void signal_ready(struct eng *e, int status)
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

static void barrier_cb(struct raft_barrier *req, int status)
{
	struct eng *e = req->data;

	if (status != 0) {
		QF_LOG(QF_ERROR, "leader barrier: %s", raft_strerror(status));
		e->barrier_sent = false; /* retried by the timer */
		return;
	}
	if (e->cfg.cluster) {
		e->barrier_done = true; /* the monitor takes it from here */
		return;
	}
	e->live = true;
	__atomic_store_n(&e->leader_flag, 1, __ATOMIC_RELEASE);
	uv_timer_stop(&e->timer); /* startup polling is over */
	QF_LOG(QF_INFO, "leader, log applied up to index=%llu",
	       (unsigned long long)raft_last_applied(&e->raft));
	signal_ready(e, 0);
}

/* Cluster mode: track leadership.  A new leader sends a barrier (libraft
 * 0.15 commits no entry of its own at election) and takes writes once
 * it is applied and every replicated transaction is in the files. */
static void watch_leadership(struct eng *e)
{
	bool leader = raft_state(&e->raft) == RAFT_LEADER;
	int rv;

	if (!leader) {
		if (e->leader_ready)
			QF_LOG(QF_WARN, "no longer the leader");
		e->leader_ready = false;
		e->barrier_done = false;
		e->barrier_sent = false;
		__atomic_store_n(&e->leader_flag, 0, __ATOMIC_RELEASE);
		return;
	}
	if (!e->barrier_sent) {
		e->barrier.data = e;
		rv = raft_barrier(&e->raft, &e->barrier, barrier_cb);
		if (rv == 0)
			e->barrier_sent = true;
		return;
	}
	if (e->barrier_done && !e->leader_ready &&
	    eng__follow_idle(&e->follow)) {
		e->leader_ready = true;
		__atomic_store_n(&e->leader_flag, 1, __ATOMIC_RELEASE);
		QF_LOG(QF_INFO, "leader, log applied up to index=%llu",
		       (unsigned long long)raft_last_applied(&e->raft));
	}
}

/* Cluster mode, until eng_wait_ready returns: ready as the leader, or as
 * a follower that knows its leader and has applied what is committed. */
static void watch_startup(struct eng *e)
{
	raft_id id = 0;
	const char *address = NULL;
	unsigned timeout = e->cfg.ready_timeout_ms ? e->cfg.ready_timeout_ms
						   : 30000;

	if (e->raft.configuration.n == 0 && !e->cfg.join) {
		signal_ready(e, -ENOENT);
		return;
	}
	if (e->leader_ready) {
		signal_ready(e, 0);
		return;
	}
	raft_leader(&e->raft, &id, &address);
	if (id != 0 && id != e->cfg.id && e->raft.commit_index > 0 &&
	    raft_last_applied(&e->raft) >= e->raft.commit_index) {
		QF_LOG(QF_INFO, "following node %llu (%s), log applied up to "
		       "index=%llu", (unsigned long long)id, address,
		       (unsigned long long)raft_last_applied(&e->raft));
		signal_ready(e, 0);
		return;
	}
	if (now_ms() - e->start_ms > timeout) {
		if (e->raft.configuration.n == 0) {
			signal_ready(e, -ETIMEDOUT); /* never added */
			return;
		}
		/* A member waits for its peers as long as it takes. */
		QF_LOG(QF_INFO, "waiting for a leader (%u voters known; a "
		       "majority must be up)", (unsigned)e->raft.configuration.n);
		e->start_ms = now_ms();
	}
}

/* Polls raft: until this node leads and has applied its whole log
 * (one-node use), or for as long as it runs (cluster mode). */
static void timer_cb(uv_timer_t *t)
{
	struct eng *e = t->data;
	int rv;

	if (e->cfg.cluster) {
		watch_leadership(e);
		if (!e->ready_done)
			watch_startup(e);
		return;
	}
	if (e->live)
		return;
	if (e->raft.configuration.n == 0) {
		signal_ready(e, -ENOENT);
		return;
	}
	if (raft_state(&e->raft) == RAFT_LEADER && !e->barrier_sent) {
		e->barrier.data = e;
		rv = raft_barrier(&e->raft, &e->barrier, barrier_cb);
		if (rv == 0)
			e->barrier_sent = true;
	}
	if (now_ms() - e->start_ms > 30000)
		signal_ready(e, -ETIMEDOUT);
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
	rv = raft_uv_init(&e->io, &e->loop, e->raft_dir,
			  e->own_transport ? &e->transport : e->cfg.transport);
	if (rv != 0)
		return rv;
	/* After raft_uv_init, which clears it; the transport reads it in its
	 * init, called from raft_init. */
	if (!e->own_transport)
		e->cfg.transport->data = &e->loop; /* engine.h: its loop */
	e->io.version = 2; /* libraft 0.15 bug: v3 FSMs are rejected otherwise */
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

	block_stop_signals();

	rv = start_raft(e);
	if (rv != 0) {
		QF_LOG(QF_ERROR, "starting raft: %s", raft_strerror(rv));
		/* The process exits after this; raft's partial state is not
		 * unwound. */
		signal_started(e, from_raft(rv));
		signal_ready(e, from_raft(rv));
		return NULL;
	}
	signal_started(e, 0);
	e->start_ms = now_ms();
	uv_timer_start(&e->timer, timer_cb, 0, 10);
	uv_run(&e->loop, UV_RUN_DEFAULT);
	return NULL;
}

/* ---- node identity and the data dir ---- */

static int read_small_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	long n;

	if (fd < 0)
		return -errno;
	n = qf_pread_full(fd, buf, size - 1, 0);
	close(fd);
	if (n < 0)
		return (int)n;
	buf[n] = '\0';
	return 0;
}

static int write_small_file(const char *path, const char *text)
{
	char tmp[4096];
	int fd, rv;

	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	rv = qf_pwrite_full(fd, text, strlen(text), 0);
	if (rv == 0 && fsync(fd) != 0)
		rv = -errno;
	close(fd);
	if (rv == 0 && rename(tmp, path) != 0)
		rv = -errno;
	return rv;
}

/* Check or record this node's id and address in DATA/node.  A restart may
 * omit them (id 0, address NULL); a different value is refused. */
static int check_identity(struct eng *e)
{
	char path[4096], text[512], addr[256];
	unsigned long long id = 0;
	int rv;

	snprintf(path, sizeof path, "%s/node", e->data_dir);
	rv = read_small_file(path, text, sizeof text);
	if (rv == 0 && sscanf(text, "id=%llu address=%255s", &id, addr) == 2) {
		if (e->cfg.id != 0 && e->cfg.id != id) {
			QF_LOG(QF_ERROR, "data dir %s belongs to node id %llu, "
			       "not %llu", e->data_dir, id,
			       (unsigned long long)e->cfg.id);
			return -EINVAL;
		}
		if (e->address != NULL && strcmp(e->address, addr) != 0) {
			QF_LOG(QF_ERROR, "data dir %s belongs to address %s, "
			       "not %s", e->data_dir, addr, e->address);
			return -EINVAL;
		}
		e->cfg.id = id;
		free(e->address);
		e->address = strdup(addr);
		return e->address ? 0 : -ENOMEM;
	}
	if (rv != -ENOENT && rv != 0)
		return rv;
	if (e->cfg.id == 0 || e->address == NULL) {
		QF_LOG(QF_ERROR, "new data dir %s: --id and --address are "
		       "required", e->data_dir);
		return -EINVAL;
	}
	snprintf(text, sizeof text, "id=%llu address=%s\n",
		 (unsigned long long)e->cfg.id, e->address);
	return write_small_file(path, text);
}

/* Were the backing files written during this boot?  Writes are not
 * fsynced (raft's log is the durable copy), so after a reboot they may
 * have lost data and must be checked against their state.  *now receives
 * this boot's id, recorded by record_boot() once the check is done. */
static int check_boot(struct eng *e, char *now, size_t size, bool *same_boot)
{
	char path[4096], before[128] = "";
	int rv;

	rv = read_small_file("/proc/sys/kernel/random/boot_id", now, size);
	if (rv != 0)
		return rv;
	snprintf(path, sizeof path, "%s/boot_id", e->state_dir);
	rv = read_small_file(path, before, sizeof before);
	*same_boot = rv == 0 && strcmp(now, before) == 0;
	return 0;
}

static int record_boot(struct eng *e, const char *now)
{
	char path[4096];

	snprintf(path, sizeof path, "%s/boot_id", e->state_dir);
	return write_small_file(path, now);
}

static int make_dir(const char *path)
{
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		return -errno;
	return 0;
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
	rv = make_dir(e->data_dir);
	if (rv == 0)
		rv = make_dir(e->raft_dir);
	if (rv == 0)
		rv = make_dir(e->db_dir);
	if (rv == 0)
		rv = make_dir(e->state_dir);
	if (rv == 0)
		rv = check_identity(e);
	if (rv == 0)
		rv = check_boot(e, boot, sizeof boot, &same_boot);
	if (rv == 0)
		rv = eng__dbs_init(&e->dbs, e->state_dir, e->db_dir);
	if (rv == 0)
		rv = eng__dbs_load(&e->dbs, same_boot);
	if (rv == 0)
		rv = eng__dbs_remove_orphans(&e->dbs);
	if (rv == 0)
		rv = record_boot(e, boot); /* the files are checked now */
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
	    uv_timer_init(&e->loop, &e->timer) != 0) {
		eng_free(e);
		return -ENOMEM;
	}
	e->async.data = e;
	e->timer.data = e;
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

struct set_applier {
	struct eng *e;
	eng_apply_fn fn;
	void *arg;
};

static void set_applier_on_loop(void *arg)
{
	struct set_applier *sa = arg;

	sa->e->live = true;
	eng__follow_set(&sa->e->follow, sa->fn, sa->arg);
	free(sa);
}

int eng_set_applier(struct eng *e, eng_apply_fn fn, void *arg)
{
	struct set_applier *sa = malloc(sizeof *sa);
	int rv;

	if (sa == NULL)
		return -ENOMEM;
	sa->e = e;
	sa->fn = fn;
	sa->arg = arg;
	rv = eng_call(e, set_applier_on_loop, sa);
	if (rv != 0)
		free(sa);
	return rv;
}

size_t eng_databases(struct eng *e, struct eng_db_state *out, size_t max,
		     uint64_t *applied, bool *idle)
{
	struct eng_db *d;
	size_t n = 0;

	*applied = raft_last_applied(&e->raft);
	*idle = eng__follow_idle(&e->follow) && inflight == NULL;
	for (d = e->dbs.head; d != NULL; d = d->next, n++) {
		if (n >= max)
			continue;
		out[n].name = d->name;
		out[n].applied = d->applied;
		out[n].seq = d->seq;
		out[n].cksum = d->cksum;
		out[n].pages = d->db_pages;
		out[n].page_size = d->page_size;
		out[n].diverged = d->diverged;
	}
	return n;
}

void eng_apply_done(struct eng *e, const char *db, uint64_t index, int status,
		    uint64_t wal_frames)
{
	eng__follow_done(&e->follow, db, index, status, wal_frames);
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
