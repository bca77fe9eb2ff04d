/* The wire-protocol server's private state, shared by server.c
 * (listener, connections, requests answered on the loop, start and stop)
 * and server_worker.c (the SQL worker process and the followers'
 * applier link).  Private to net/.  Loop thread only. */
#ifndef QF_NET_SERVER_H
#define QF_NET_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <uv.h>

#include "codec.h"
#include "link.h"
#include "net.h"

struct conn {
	struct net_server *srv;
	uv_tcp_t *tcp; /* raft_malloc'd: raft may take it over */
	int state;
	uint8_t word[8];
	size_t got;
	struct net_header h;
	uint8_t *body;
	size_t need;
	uint64_t version;
	bool first; /* no request read yet: CONNECT is still possible */
	uint64_t serial; /* names the connection to the worker and to late
			  * callbacks */
	bool closing;
	bool has_session; /* the worker has a session for it */
	bool parked; /* its request waits for a worker (reading stopped) */
	struct conn *next;
};

/* One run of the SQL worker process; freed when both handles closed. */
struct worker {
	struct net_server *srv;
	uv_process_t proc;
	uv_pipe_t pipe;
	uv_shutdown_t shutdown;
	struct net_link_reader reader;
	int handles; /* of proc and pipe, still open */
	bool lost;   /* its end was seen: EOF or exit */
	bool hello;  /* its applier is known to the mount: APPLY may go */
};

struct net_server {
	struct eng *engine;
	struct raft_uv_transport *transport;
	struct net_server_config cfg;
	char *address, *mount;
	uv_tcp_t listener;
	uv_timer_t kill_timer; /* a worker that will not stop, or a delayed
				* respawn */
	uint64_t spawned_ms;   /* loop time the last worker started */
	struct worker *worker; /* NULL when none runs */
	uint64_t next_serial;
	struct conn *conns;
	unsigned n_conns;
	unsigned n_parked; /* conns whose request waits for a worker */
	bool stopping;
	bool open; /* SQL served (net_server_open) */
	struct applying *applying; /* sent to the worker, not yet done */
	struct resync_job *resyncs; /* fetching an image (resync.c) */
	unsigned images;	    /* IMAGE requests being served */
	uint64_t fetches;	    /* images fetched: names scratch files */
	/* Start/stop handshake with the main thread. */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool done;
	int status;
	int handles_open; /* listener, timer, workers' handles */
};

/* An APPLY the worker has not answered: sent again to a new worker if
 * this one dies (applying a transaction twice writes the same bytes).
 * Index and database name identify it: a resync image of one database can
 * be applied at the index of another database's entry. */
struct applying {
	uint64_t index;
	char *db;
	uint8_t *entry;
	size_t len;
	struct applying *next;
};

/* server.c */
struct conn *net__find_conn(struct net_server *s, uint64_t serial);
/* Send the message encoded in @b (taken); a FAILURE. */
void net__reply(struct conn *c, struct net_buf *b);
void net__reply_failure(struct conn *c, uint64_t code, const char *msg);
/* Write @bytes (taken) to @stream; @ack_serial non-zero for a session's
 * output, acknowledged to the worker once written. */
void net__stream_write(struct net_server *s, uv_stream_t *stream,
		       uint8_t *bytes, size_t len, uint64_t ack_serial);
void net__conn_write(struct conn *c, uint8_t *bytes, size_t len,
		     uint64_t ack_serial);
/* Drop @c; the worker frees its session. */
void net__conn_close(struct conn *c);
/* One of the server's handles closed (the last ends a stop). */
void net__handle_closed(struct net_server *s);

/* Send the requests parked while no worker ran to the new one. */
void net__resume_parked(struct net_server *s);

/* server_worker.c */
/* Start `quorafs sql-worker` with the link on its fd 3.  0 or an error. */
int net__worker_spawn(struct net_server *s);
/* May a worker start now?  At most one a second, whoever asks: one that
 * dies on every request must not turn into a fork loop. */
bool net__worker_may_spawn(struct net_server *s);
/* A new worker as soon as one may start (a timer otherwise). */
void net__worker_respawn_soon(struct net_server *s);
/* One frame to the current worker.  0, or -errno when there is no worker
 * or no memory. */
int net__worker_send(struct net_server *s, struct net_link_hdr *h,
		     const void *payload);
/* Tell the worker @n bytes of @serial's output reached the client. */
void net__send_ack(struct net_server *s, uint64_t serial, size_t n);

/* resync.c */
/* quorafs's IMAGE request (the leader's side of a follower's resync). */
void net__handle_image(struct conn *c, const struct net_slice *body);
/* End every fetch in progress (on stop): each fails with -ECANCELED. */
void net__resync_cancel_all(struct net_server *s);

#endif /* QF_NET_SERVER_H */
