/* SQL sessions of the dqlite wire-protocol server (wire-protocol.md, "the
 * spec": §4.3-§4.10, §4.15, §6, §7, §9).  Private to net/.
 *
 * One session per client connection.  It owns a thread and that thread's
 * SQLite connection, opened through the quorafs mount (mount + "/" + the
 * name given to OPEN), so a remote write takes the same FUSE interception
 * and raft commit path as a local program's write.  The server's loop
 * thread decodes the framing, answers LEADER, CLIENT, CLUSTER and the like
 * itself, and submits the SQL requests here; it never blocks on SQLite.
 *
 * Threads.  net_session_submit() and net_session_interrupt() may be called
 * from any thread and never block (a short mutex only).  Everything else a
 * session does (SQLite, building responses, calling @out) happens on its
 * own thread, one request at a time, in submission order.
 *
 * Responses.  Each request produces exactly one response message, except
 * QUERY and QUERY_SQL, which produce one or more ROWS messages (PART ...
 * DONE) or a FAILURE, possibly after some PART messages (§6.4), and a
 * query cut short by net_session_interrupt(), which just stops (§6.5).
 * @out receives one complete encoded message (header included) per call,
 * in a malloc'd buffer that the callee owns from then on, whatever it
 * returns.  A call with @bytes == NULL and @len == 0 means the session
 * could not build a response (out of memory): the connection must be
 * closed, since the client now waits for a reply that will not come. */
#ifndef NET_SESSION_H
#define NET_SESSION_H

#include <stddef.h>
#include <stdint.h>

struct net_session;

/* Called on the session's thread with one complete encoded response
 * message (malloc'd; the callee takes ownership).  It may block: the
 * server applies flow control so that a streaming result never buffers
 * more than a bounded amount.  It returns 0, or non-zero when the
 * connection is gone: the session then stops what it is doing and drops
 * every later request without calling @out again. */
typedef int (*net_session_out_cb)(void *arg, uint8_t *bytes, size_t len);

/* Zero numeric fields take their defaults. */
struct net_session_config {
	const char *mount;	  /* mount root, absolute; copied */
	unsigned busy_timeout_ms; /* wait for SQLite locks, default 10000 */
	size_t batch_bytes;	  /* ROWS batch threshold, header incl.: 4096 */
	size_t max_msg;		  /* largest response: NET_MAX_MSG_DEFAULT */
	unsigned max_stmts;	  /* open statements, default 1024 */
	int (*is_leader)(void *arg); /* any thread; 1 if this node may write;
				      * NULL means always */
	net_session_out_cb out;	  /* required */
	void *arg;		  /* for @is_leader and @out */
};

#define NET_SESSION_BUSY_TIMEOUT_MS 10000
#define NET_SESSION_BATCH_BYTES 4096
#define NET_SESSION_MAX_STMTS 1024

/* Start a session: allocates it and starts its thread.  0, -EINVAL (no
 * mount or no @out), -ENOMEM, or -errno from pthread_create.  @c is
 * copied (the mount string too). */
int net_session_new(struct net_session **s, const struct net_session_config *c);

/* Queue one request: @type and @schema as in the message header, @body
 * (@len bytes, the whole body) copied.  Any thread, never blocks.  Types
 * handled: OPEN, PREPARE, EXEC, QUERY, FINALIZE, EXEC_SQL, QUERY_SQL,
 * INTERRUPT, DUMP.  Returns 0 (a response will follow, as above),
 * -EINVAL for any other type (nothing queued: the server answers it),
 * -ENOMEM, or QF_ESHUTDOWN after net_session_free() began.
 *
 * The body is decoded here with the codec: a schema the type does not
 * have gives FAILURE(1, "unrecognized schema version") (§3); a malformed
 * fixed part gives FAILURE(1005, "malformed request") (1.11 would close
 * the connection, §7.2: a server that wants that decodes first, as it
 * must anyway to find the type); a malformed parameter tuple gives
 * FAILURE(1005, ...) (§6.1). */
int net_session_submit(struct net_session *s, uint8_t type, uint8_t schema,
		       const void *body, size_t len);

/* Any thread: stop a streaming result early.  Call it when an INTERRUPT
 * arrives, before submitting that INTERRUPT.  A query running or queued
 * ahead of the INTERRUPT stops before its next row (SQLite's progress
 * handler also cuts a long step short): the batch being filled is
 * dropped, those already handed to @out stay sent, and it sends nothing
 * more, not even a FAILURE.  The INTERRUPT then answers EMPTY: exactly
 * one EMPTY per INTERRUPT and nothing after it for the interrupted query
 * (§6.5).  Writes (EXEC, EXEC_SQL) are never cut short.  Each call is
 * matched by the next INTERRUPT the session runs; an INTERRUPT submitted
 * without a call still answers EMPTY. */
void net_session_interrupt(struct net_session *s);

/* Stop the thread, dropping the requests still queued (interrupting
 * SQLite with sqlite3_interrupt() and cutting busy waits short if it is
 * inside SQLite), finalize the statements, close the database, free.  Any
 * thread but the session's own.  If the thread is blocked inside @out,
 * that call must return (non-zero) for this to finish: the server makes
 * @out fail once the connection is closing. */
void net_session_free(struct net_session *s);

#endif /* NET_SESSION_H */
