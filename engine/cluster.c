/* Leadership and membership (the engine in a cluster): the barrier a
 * new leader sends, watching leadership and readiness, stepping down
 * after a disk error, membership changes, and the followers' applier
 * hook.  Loop thread, unless a function says otherwise. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

void eng__barrier_cb(struct raft_barrier *req, int status)
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
	eng__signal_ready(e, 0);
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
		rv = raft_barrier(&e->raft, &e->barrier, eng__barrier_cb);
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
		eng__signal_ready(e, -ENOENT);
		return;
	}
	if (e->leader_ready) {
		eng__signal_ready(e, 0);
		return;
	}
	raft_leader(&e->raft, &id, &address);
	if (id != 0 && id != e->cfg.id && e->raft.commit_index > 0 &&
	    raft_last_applied(&e->raft) >= e->raft.commit_index) {
		QF_LOG(QF_INFO, "following node %llu (%s), log applied up to "
		       "index=%llu", (unsigned long long)id, address,
		       (unsigned long long)raft_last_applied(&e->raft));
		eng__signal_ready(e, 0);
		return;
	}
	if (eng__now_ms() - e->start_ms > timeout) {
		if (e->raft.configuration.n == 0) {
			eng__signal_ready(e, -ETIMEDOUT); /* never added */
			return;
		}
		/* A member waits for its peers as long as it takes. */
		QF_LOG(QF_INFO, "waiting for a leader (%u voters known; a "
		       "majority must be up)", (unsigned)e->raft.configuration.n);
		e->start_ms = eng__now_ms();
	}
}

/* ---- a leader whose files diverged ----
 * Only a leader serves images, so a leader cannot repair a database whose
 * files diverged here, and refuses its writes.  Once one has stayed
 * diverged for DIVERGED_HANDOVER_MS it hands leadership to another voter
 * (raft picks the most up-to-date), then fetches that node's image as a
 * follower.  At most once every DIVERGED_RETRY_MS: if every node's copy
 * diverged, leadership must not bounce. */
#define DIVERGED_HANDOVER_MS 2000
#define DIVERGED_RETRY_MS 60000

static void hand_leadership_over(struct eng *e);

static bool other_voters(const struct eng *e)
{
	unsigned i;

	for (i = 0; i < e->raft.configuration.n; i++)
		if (e->raft.configuration.servers[i].role == RAFT_VOTER &&
		    e->raft.configuration.servers[i].id != e->cfg.id)
			return true;
	return false;
}

static void watch_diverged_leader(struct eng *e)
{
	uint64_t now = eng__now_ms();
	struct eng_db *d;

	for (d = e->dbs.head; d != NULL && !d->diverged; d = d->next)
		;
	if (d == NULL || !e->leader_ready) {
		e->diverged_since_ms = 0;
		return;
	}
	if (e->diverged_since_ms == 0)
		e->diverged_since_ms = now;
	if (now - e->diverged_since_ms < DIVERGED_HANDOVER_MS ||
	    e->disk_transfer || !other_voters(e) ||
	    (e->handover_ms != 0 && now - e->handover_ms < DIVERGED_RETRY_MS))
		return;
	e->handover_ms = now;
	QF_LOG(QF_WARN, "db=%s is diverged on this leader, which cannot "
	       "repair it: handing leadership to another voter", d->name);
	hand_leadership_over(e);
}

/* Called by the engine's timer in cluster mode. */
void eng__watch_cluster(struct eng *e)
{
	watch_leadership(e);
	watch_diverged_leader(e);
	if (!e->ready_done)
		watch_startup(e);
}

/* ---- a leader that cannot write its log ---- */

static void disk_transfer_cb(struct raft_transfer *req)
{
	struct eng *e = req->data;

	e->disk_transfer = false;
}

/* To the voter raft picks (the most up-to-date); one at a time. */
static void hand_leadership_over(struct eng *e)
{
	int rv;

	e->disk_xfer.data = e;
	rv = raft_transfer(&e->raft, &e->disk_xfer, 0, disk_transfer_cb);
	if (rv == 0)
		e->disk_transfer = true;
	else
		QF_LOG(QF_ERROR, "leadership transfer: %s", raft_strerror(rv));
}

/* This leader could not write its own log: hand leadership to another
 * voter rather than keep refusing every commit. */
void eng__step_down_on_disk_error(struct eng *e, int status)
{
	if (raft_state(&e->raft) != RAFT_LEADER || e->disk_transfer)
		return;
	QF_LOG(QF_ERROR, "writing the raft log failed (%s): handing "
	       "leadership to another voter", qf_strerror(eng__from_raft(status)));
	hand_leadership_over(e);
}

/* ---- membership ---- */

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

	ch->cb(ch->arg, status == 0 ? 0 : eng__from_raft(status),
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
		cb(arg, eng__from_raft(rv), raft_errmsg(&e->raft)[0]
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

/* ---- followers: the applier ---- */

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
	*idle = eng__follow_idle(&e->follow) && eng__commits_idle();
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

