/* The engine's private state, shared by engine.c (raft, commits, the
 * state machine, start and stop), cluster.c (leadership, membership,
 * followers' applier) and datadir.c (node identity, boot).  Private to
 * engine/. */
#ifndef QF_ENGINE_CORE_H
#define QF_ENGINE_CORE_H

#include <pthread.h>
#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "engine.h"
#include "follow.h"
#include "state.h"

struct call;

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
	bool disk_transfer;		/* disk_xfer in flight (any reason) */
	uint64_t diverged_since_ms;	/* leading with a diverged database */
	uint64_t handover_ms;		/* last handover for one */
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
	/* Retrying a failed snapshot (engine.c). */
	uv_timer_t snap_timer;
	struct raft_barrier snap_barrier;
	bool snap_barrier_busy;
	unsigned snap_retry_ms; /* the last delay; 0 after a success */
	int snap_failed;	/* atomic: the last copy failed */
	/* Metrics, loop thread only. */
	uint64_t n_commits, raft_us_total, cb_us_total;
};

/* engine.c */
uint64_t eng__now_ms(void);
/* A raft error as a quorafs code (0 stays 0). */
int eng__from_raft(int rv);
/* Wake eng_wait_ready with @status (once). */
void eng__signal_ready(struct eng *e, int status);
/* No local commit is in raft. */
bool eng__commits_idle(void);

/* cluster.c, loop thread */
void eng__barrier_cb(struct raft_barrier *req, int status);
/* Cluster mode, every timer tick: leadership, and readiness until
 * eng_wait_ready returned. */
void eng__watch_cluster(struct eng *e);
/* The leader could not write its raft log: hand leadership over. */
void eng__step_down_on_disk_error(struct eng *e, int status);

/* prefill.c: raft's open segments created in @raft_dir from now on get
 * written blocks (see there).  Main thread, before raft starts. */
void eng__prefill_segments_in(const char *raft_dir);

/* datadir.c, main thread */
/* Check or record DATA/node: a restart may omit them (*@id 0, *@address
 * NULL) and gets them; a different value is refused (-EINVAL). */
int eng__check_identity(const char *data_dir, uint64_t *id, char **address);
/* Were the backing files written during this boot?  *@now gets this
 * boot's id for eng__record_boot(). */
int eng__check_boot(const char *state_dir, char *now, size_t size,
		    bool *same_boot);
int eng__record_boot(const char *state_dir, const char *now);
/* Remove the scratch images (%image-in-*, %image-out-*) a stop left. */
void eng__remove_scratch(const char *state_dir);
int eng__make_dir(const char *path);

#endif /* QF_ENGINE_CORE_H */
