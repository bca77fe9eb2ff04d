/* The network engine: the dqlite wire protocol on the node's single port,
 * shared with raft (wire-protocol.md §10).  Public header of net/. */
#ifndef QF_NET_H
#define QF_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../engine/engine.h"

/* ---- server (net/server.c) ---- */

struct net_server;
struct raft_uv_transport;

struct net_server_config {
	const char *address;	   /* HOST:PORT to listen on (the raft address) */
	const char *mount;	   /* where SQL sessions open databases */
	unsigned max_conns;	   /* connections at once (default 256) */
	size_t max_msg;		   /* largest request, header included */
	unsigned max_stmts;	   /* per connection (default 1024) */
	unsigned busy_timeout_ms;  /* SQLite busy timeout (default 10000) */
	/* SQL requests wait for net_server_open() (the mount is not up
	 * yet while a joining node catches up): FAILURE until then. */
	bool start_closed;
	/* Loop thread: the SQL worker's applier thread has kernel tid @tid
	 * (give it to fs_set_applier); again after a worker restart. */
	void (*on_applier)(void *arg, int tid);
	void *applier_arg;
};

/* The raft transport that shares the server's port: pass it to the engine
 * (eng_config.transport) before eng_start.  Main thread. */
int net_transport_new(struct raft_uv_transport **t);
void net_transport_free(struct raft_uv_transport *t);

/* Bind and start serving on the engine's loop.  Main thread; blocks until
 * the listener is up (or failed).  @t is the transport given to the
 * engine: raft CONNECTs are handed to it. */
int net_server_start(struct net_server **s, struct eng *e,
		     struct raft_uv_transport *t,
		     const struct net_server_config *c);
/* Any thread: the mount is up; serve SQL requests. */
int net_server_open(struct net_server *s);

/* An eng_apply_fn (engine.h) for eng_set_applier(e, net_server_apply,
 * server): sends the transaction to the SQL worker's applier, which
 * writes it through the mount and reports back (eng_apply_done). */
void net_server_apply(void *server, const struct eng_txn *t, uint64_t index);

/* An eng_resync_fn (engine.h) for eng_set_resync(e, net_server_resync,
 * server): fetches the leader's image of @db and hands it to
 * eng_resync (net/resync.c). */
void net_server_resync(void *server, const char *db);

/* @db's wal-index misses a committed transaction (fs.h on_stale_index):
 * the SQL worker's applier has SQLite rebuild it.  Any thread; never
 * blocks; not after net_server_stop. */
void net_server_reindex(void *server, const char *db);

/* Stop listening, close every connection and free.  Main thread; blocks
 * until done.  Call before eng_stop(). */
void net_server_stop(struct net_server *s);

/* ---- the SQL worker process (net/worker.c, net/link.h) ----
 *
 * The server runs its SQL sessions in a child process, `quorafs
 * sql-worker`, started with the link on fd NET_WORKER_FD (link.h says
 * why).  tools/ wires the subcommand to net_worker_run(). */
#define NET_WORKER_COMMAND "sql-worker"
#define NET_WORKER_FD 3

struct net_worker_config {
	int fd;			  /* the link */
	const char *mount;	  /* where sessions open databases */
	unsigned busy_timeout_ms; /* SQLite busy timeout */
	size_t max_msg;		  /* largest message, header included */
	unsigned max_stmts;	  /* per session (0: the default) */
};

/* Serve sessions over the link until the daemon closes it; then free
 * every session and return the process exit status (0, or 1 after a
 * broken link).  Call from main, before any thread exists. */
int net_worker_run(const struct net_worker_config *c);

/* ---- client (net/client.c, client_rows.c, client_admin.c) ----
 *
 * A blocking client of the dqlite wire protocol over TCP (plain sockets),
 * for the CLI, the tests, the benchmark and leader forwarding.  One
 * struct net_client holds at most one connection and, as the protocol
 * allows, one request in flight (§1.4).  No global state: any thread may
 * use its own clients; one client must not be used by two threads at once.
 * No call keeps a pointer it was given (strings and parameters are copied
 * or sent before it returns); what a call hands back lives as its comment
 * says.
 *
 * Errors.  Every fallible call returns 0 (or 1, where it says so) or a
 * negative code, and net_client_errmsg() then describes the failure:
 *   NET_EFAILURE    the server answered FAILURE: net_client_failure_code()
 *                   and net_client_errmsg() give its code and message.  The
 *                   connection stays usable.
 *   -ETIMEDOUT      the call's deadline passed (connect or request);
 *   -ECONNRESET     the server closed the connection;
 *   QF_EMALFORMED   a response broke the format, or was of a type the
 *                   request does not expect;
 *   QF_ENOTLEADER   leader discovery found no leader (§8.1);
 *   -ENOTCONN       no connection (never connected, or dropped);
 *   -EBUSY          a result set is still open on this client;
 *   -EINVAL         a bad argument (an address, a value type...);
 *   -EMSGSIZE       a request or response larger than config.max_msg;
 *   other -errno    from the socket calls (-ECONNREFUSED...).
 * Any error that leaves the byte stream in an unknown state (timeouts,
 * I/O errors, malformed responses) closes the connection; errors found
 * before anything is sent, and NET_EFAILURE, keep it.
 *
 * Timeouts.  Each call that talks to the server has its own deadline,
 * config.timeout_ms from its start (0: none), changeable between calls
 * with net_client_set_timeout().  Each row-set batch read by
 * net_client_rows_next() is one call. */

/* The server answered FAILURE (code and message kept on the client). */
#define NET_EFAILURE (-1100)

/* SQL values as parameters and in rows: the wire types of §6.2. */
enum {
	NET_SQL_INTEGER = 1,
	NET_SQL_FLOAT = 2,
	NET_SQL_TEXT = 3,
	NET_SQL_BLOB = 4,
	NET_SQL_NULL = 5,
	NET_SQL_UNIXTIME = 9, /* rows only: 1.11 refuses it as a parameter */
	NET_SQL_ISO8601 = 10,
	NET_SQL_BOOLEAN = 11
};

/* Node roles, dqlite numbering (§11). */
enum { NET_VOTER = 0, NET_STANDBY = 1, NET_SPARE = 2 };

struct net_sql_value {
	int type; /* NET_SQL_* */
	union {
		int64_t integer; /* INTEGER; UNIXTIME: seconds since 1970 */
		double real;	 /* FLOAT */
		bool boolean;	 /* BOOLEAN */
		struct {
			const char *p; /* rows: NUL-terminated */
			size_t len;
		} text; /* TEXT, ISO8601 (rows: "" for a NULL) */
		struct {
			const void *p;
			size_t len;
		} blob; /* BLOB */
	};
};

/* Zero fields take the defaults. */
struct net_client_config {
	/* Each TCP connect (default 5000, go-dqlite's dial timeout). */
	unsigned connect_timeout_ms;
	/* Handshake, LEADER and CLIENT with one server during discovery
	 * (default 15000, go-dqlite's attempt timeout). */
	unsigned attempt_timeout_ms;
	/* Repeat rounds of discovery, with backoff, this long (default:
	 * one round only). */
	unsigned discovery_timeout_ms;
	/* Each call (default: no deadline). */
	unsigned timeout_ms;
	/* Largest response accepted, header included (default 64 MiB). */
	size_t max_msg;
};

struct net_client;

/* Result of EXEC_SQL and EXEC (§5 RESULT). */
struct net_client_result {
	uint64_t last_insert_id;
	uint64_t rows_affected;
};

/* A result set being read (§6.3, §6.4): batches are read as rows are
 * consumed, never the whole result at once.  Filled by a query call;
 * @names live until net_client_rows_close(), @row until the next
 * net_client_rows_next() or close. */
struct net_client_rows {
	struct net_client *client;
	unsigned n_cols;
	const char *const *names;
	const struct net_sql_value *row; /* n_cols values */
	uint64_t batches;		 /* ROWS messages read so far */
};

/* A cluster member (§4.17).  @address is owned by the array. */
struct net_member {
	uint64_t id;
	char *address;
	int role; /* NET_VOTER, NET_STANDBY or NET_SPARE */
};

/* A file of a DUMP (§9): @bytes are valid during the callback only.  A
 * non-zero return stops the dump and is returned by net_client_dump(). */
typedef int (*net_client_file_cb)(void *data, const char *name,
				  const void *bytes, uint64_t size);

/* A client with @config (NULL: all defaults); not connected yet. */
int net_client_new(const struct net_client_config *config,
		   struct net_client **out);
/* Close the connection (abandoning any result set) and free. */
void net_client_free(struct net_client *c);

/* Connect to @address ("host:port", "[v6]:port"), send the handshake
 * (version 1, §1.2) and nothing else: for requests any node answers
 * (DESCRIBE, DUMP, CLUSTER...).  Closes any previous connection. */
int net_client_connect(struct net_client *c, const char *address);
/* Leader discovery as go-dqlite does it (§8.1): ask each address in turn
 * for the leader; follow one redirect; on the server that names itself
 * send CLIENT and keep that connection.  Rounds repeat with backoff
 * (200 ms doubling to 1 s) until config.discovery_timeout_ms.  Then
 * QF_ENOTLEADER, or the last connection error if no server answered. */
int net_client_connect_leader(struct net_client *c,
			      const char *const *addresses, size_t n);
/* Drop the connection (no message); the client may connect again. */
void net_client_disconnect(struct net_client *c);
/* The address connected to, or NULL. */
const char *net_client_address(const struct net_client *c);

void net_client_set_timeout(struct net_client *c, unsigned timeout_ms);
/* From now on, once @fd (an eventfd or a pipe's read end; the caller keeps
 * it open) is readable, any wait of a call ends it with -ECANCELED: how
 * another thread stops a call in progress.  -1, the default: none. */
void net_client_set_cancel(struct net_client *c, int fd);

/* Description of the last error (the server's message after
 * NET_EFAILURE); "" before any. */
const char *net_client_errmsg(const struct net_client *c);
/* The FAILURE code of the last NET_EFAILURE. */
uint64_t net_client_failure_code(const struct net_client *c);

/* LEADER (§4.1): id 0 and "" when the server knows no leader.
 * *@address lives until the next call on @c. */
int net_client_leader(struct net_client *c, uint64_t *id,
		      const char **address);
/* CLIENT (§4.2); @heartbeat_ms may be NULL. */
int net_client_register(struct net_client *c, uint64_t id,
			uint64_t *heartbeat_ms);
/* OPEN (§4.3) @name with flags 0 and VFS "volatile", as go-dqlite. */
int net_client_open(struct net_client *c, const char *name);

/* EXEC_SQL (§4.8) with @n parameters (none: @params may be NULL).
 * @result may be NULL. */
int net_client_exec_sql(struct net_client *c, const char *sql,
			const struct net_sql_value *params, size_t n,
			struct net_client_result *result);
/* QUERY_SQL (§4.9): on 0, @rows is open (names known) and must be
 * closed; on error nothing is open. */
int net_client_query_sql(struct net_client *c, const char *sql,
			 const struct net_sql_value *params, size_t n,
			 struct net_client_rows *rows);
/* PREPARE (§4.4); @n_params may be NULL. */
int net_client_prepare(struct net_client *c, const char *sql,
		       uint32_t *stmt_id, uint64_t *n_params);
int net_client_exec(struct net_client *c, uint32_t stmt_id,
		    const struct net_sql_value *params, size_t n,
		    struct net_client_result *result);
int net_client_query(struct net_client *c, uint32_t stmt_id,
		     const struct net_sql_value *params, size_t n,
		     struct net_client_rows *rows);
int net_client_finalize(struct net_client *c, uint32_t stmt_id);

/* The next row: 1 with rows->row set, 0 at the end of the result, or an
 * error (a FAILURE in place of a batch is NET_EFAILURE, §6.4).  After 0
 * or an error the result set is over but still needs closing. */
int net_client_rows_next(struct net_client_rows *rows);
/* End the result set.  If the server may still be sending batches, send
 * INTERRUPT and discard everything up to its EMPTY (§6.5).  Returns 0 or
 * the error of that exchange; the rows are closed either way. */
int net_client_rows_close(struct net_client_rows *rows);
/* INTERRUPT (§4.10) with no result set open: reads its EMPTY. */
int net_client_interrupt(struct net_client *c);

/* CLUSTER (§4.16, format 1): on 0, *@members (NULL when *@n is 0) is the
 * caller's, freed with net_members_free(). */
int net_client_cluster(struct net_client *c, struct net_member **members,
		       size_t *n);
void net_members_free(struct net_member *members, size_t n);
/* ADD, ASSIGN (@role NET_VOTER...), REMOVE, TRANSFER (0: any node),
 * WEIGHT: each answered with EMPTY (§4.12-§4.20). */
int net_client_add(struct net_client *c, uint64_t id, const char *address);
int net_client_assign(struct net_client *c, uint64_t id, int role);
int net_client_remove(struct net_client *c, uint64_t id);
int net_client_transfer(struct net_client *c, uint64_t id);
int net_client_weight(struct net_client *c, uint64_t weight);
/* DESCRIBE (§4.19, format 0). */
int net_client_describe(struct net_client *c, uint64_t *failure_domain,
			uint64_t *weight);
/* DUMP (§9): @cb once per file, in order. */
int net_client_dump(struct net_client *c, const char *name,
		    net_client_file_cb cb, void *data);

/* One database as a quorafs node holds it (quorafs's DATABASES request;
 * a dqlite server answers FAILURE). */
struct net_client_db {
	char *name;
	uint64_t applied; /* raft index of its last entry applied there */
	uint64_t seq;	  /* transactions so far */
	uint64_t cksum;	  /* XOR of qf_page_hash over its pages */
	uint64_t pages, page_size;
	bool diverged;
};

/* quorafs's IMAGE: the leader's pages of @db at its current state, what
 * a follower whose files diverged installs, written to @fd (pages
 * 1..db_pages back to back) as they arrive: one response message is in
 * memory at a time.  Each page is hashed; the hashes must make the
 * image's checksum, or QF_EMALFORMED.  On 0 @out->hashes (malloc'd) is
 * the caller's.  The call's timeout bounds the wait for the first part
 * (the leader copies its pages first); each later part must then come
 * within @part_timeout_ms of the one before (0: the call's deadline
 * covers them all). */
struct net_client_image {
	uint64_t seq, cksum;
	uint32_t page_size, db_pages;
	uint64_t *hashes; /* qf_page_hash of pages 1..db_pages */
};
int net_client_image(struct net_client *c, const char *db, int fd,
		     unsigned part_timeout_ms, struct net_client_image *out);

/* On 0, *@dbs (NULL when *@n is 0) is the caller's (net_client_dbs_free),
 * *@applied the node's raft applied index, *@idle whether every
 * replicated transaction is in its files. */
int net_client_databases(struct net_client *c, struct net_client_db **dbs,
			 size_t *n, uint64_t *applied, bool *idle);
void net_client_dbs_free(struct net_client_db *dbs, size_t n);

/* "voter", "stand-by", "spare", or "unknown". */
const char *net_role_name(int role);
/* The inverse (also "standby", "0".."2"); -1 if unknown. */
int net_role_parse(const char *name);

#endif /* QF_NET_H */
