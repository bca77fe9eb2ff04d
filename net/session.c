/* SQL sessions: one thread and one SQLite connection per client
 * connection, running OPEN, PREPARE, EXEC, QUERY, FINALIZE, EXEC_SQL,
 * QUERY_SQL, INTERRUPT and DUMP as dqlite 1.11 does (wire-protocol.md
 * §4.3-§4.10, §4.15, §6, §7, §9) minus its bugs (§13).  Contract and
 * threads: session.h.  The database is opened through the quorafs mount,
 * so a write commits as a local program's does (FUSE, then raft); hence a
 * thread of its own, and a loop that never waits for it.
 *
 * A query steps row after row into a ROWS message; once that holds
 * batch_bytes it goes out ending in PART and the next begins; the last
 * ends in DONE.  A step error drops the message being filled and sends a
 * clean FAILURE with SQLite's extended code and message (not 1.11's
 * junk-prefixed one, §6.4); an INTERRUPT drops it and sends nothing more
 * (§6.5).  Writers wait for SQLite's locks with a busy handler on
 * sqlite3_busy_timeout()'s schedule; it and a progress handler give up at
 * once when the session is freed (the statement fails with
 * SQLITE_INTERRUPT), and the progress handler also stops an interrupted
 * query inside a long step. */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "../engine/engine.h"
#include "codec.h"
#include "session.h"
#include "session_values.h"

/* dqlite codes beyond SQLite's (§7.2); DQLITE_PARSE: session_values.h. */
#define SQLITE_IOERR_NOT_LEADER (SQLITE_IOERR | (40 << 8))
#define SQLITE_IOERR_LEADERSHIP_LOST (SQLITE_IOERR | (41 << 8))

/* Messages up to this size are copied out exactly; bigger ones hand the
 * buffer itself over (DUMP images). */
#define COPY_LIMIT (64u << 10)

/* Opcodes between two progress-handler calls. */
#define PROGRESS_OPS 1000

/* A queued request: the header's type and schema and a copy of the body. */
struct req {
	struct req *next;
	uint8_t type;
	uint8_t schema;
	size_t len;
	uint8_t body[];
};

struct net_session {
	struct net_session_config c;
	char *mount;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct req *head, *tail; /* under @mu */
	sqlite3 *db;		 /* set under @mu by the session thread */
	atomic_bool stopping;
	atomic_uint interrupts; /* net_session_interrupt() calls not yet
				 * matched by an INTERRUPT request */
	/* Session thread only. */
	bool streaming; /* a query's rows are being stepped */
	bool gone;	/* the out callback failed: drop everything */
	sqlite3_stmt **stmts; /* max_stmts slots, by id */
	struct net_buf buf; /* the response being built; empty in between */
};

/* ---- output ---- */

/* Hand the message in s->buf to the out callback; the buffer is empty
 * after.  Once the callback has failed, output is dropped. */
static void send_buf(struct net_session *s)
{
	struct net_buf *b = &s->buf;
	uint8_t *bytes;
	size_t len = b->len;

	if (len == 0)
		return;
	if (s->gone) {
		net_buf_reset(b);
		return;
	}
	if (len > COPY_LIMIT) {
		bytes = b->data; /* the whole block goes: a big DUMP image */
		net_buf_init(b, b->max);
	} else {
		bytes = malloc(len);
		if (bytes != NULL)
			memcpy(bytes, b->data, len);
		net_buf_reset(b);
		if (bytes == NULL)
			len = 0; /* tells the server to close (session.h) */
	}
	if (s->c.out(s->c.arg, bytes, len) != 0 || bytes == NULL)
		s->gone = true;
}

/* No response could be built: the server must close the connection. */
static void send_close(struct net_session *s)
{
	net_buf_reset(&s->buf);
	if (!s->gone)
		(void)s->c.out(s->c.arg, NULL, 0); /* closing either way */
	s->gone = true;
}

static void reply_failure(struct net_session *s, uint64_t code,
			  const char *msg)
{
	int rv = net_encode_failure(&s->buf, code, msg);

	if (rv == -EMSGSIZE) /* a tiny max_msg and a long SQLite message */
		rv = net_encode_failure(&s->buf, code, "");
	if (rv != 0) {
		send_close(s);
		return;
	}
	send_buf(s);
}

/* An encoder's result: send what it built, or give up on the request. */
static void reply_encoded(struct net_session *s, int rv)
{
	if (rv == 0)
		send_buf(s);
	else if (rv == -EMSGSIZE)
		reply_failure(s, SQLITE_TOOBIG, "response too large");
	else
		send_close(s);
}

static bool is_leader(struct net_session *s)
{
	return s->c.is_leader == NULL || s->c.is_leader(s->c.arg) != 0;
}

/* The FAILURE for SQLite's current error on @db (§4.8: extended code and
 * sqlite3_errmsg).  An I/O error on a node that is no longer leader is
 * a write cut by leadership loss: 10506, as 1.11 reports it (§7.2). */
static void reply_sqlite_error(struct net_session *s, sqlite3 *db)
{
	int code = sqlite3_extended_errcode(db);

	if ((code & 0xff) == SQLITE_IOERR && !is_leader(s))
		code = SQLITE_IOERR_LEADERSHIP_LOST;
	reply_failure(s, (uint64_t)code, sqlite3_errmsg(db));
}

/* ---- SQLite callbacks ---- */

/* sqlite3_busy_timeout()'s schedule (@count tells the time waited so
 * far), except that it gives up at once when the session is being freed.
 * Non-zero to retry. */
static int busy_cb(void *arg, int count)
{
	static const int delays[] = {1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50};
	static const int totals[] = {0, 1, 3, 8, 18, 33, 53, 78, 103, 128, 178};
	struct net_session *s = arg;
	int n = (int)(sizeof delays / sizeof delays[0]), delay, prior;
	struct timespec ts;

	if (atomic_load(&s->stopping))
		return 0;
	delay = count < n ? delays[count] : 100;
	prior = count < n ? totals[count] : totals[n - 1] + 50 +
							(count - n) * 100;
	if ((unsigned)prior >= s->c.busy_timeout_ms)
		return 0;
	if ((unsigned)(prior + delay) > s->c.busy_timeout_ms)
		delay = (int)s->c.busy_timeout_ms - prior;
	ts.tv_sec = delay / 1000;
	ts.tv_nsec = (long)(delay % 1000) * 1000000;
	nanosleep(&ts, NULL);
	return 1;
}

/* Non-zero makes the running statement fail with SQLITE_INTERRUPT. */
static int progress_cb(void *arg)
{
	struct net_session *s = arg;

	if (atomic_load(&s->stopping))
		return 1;
	return s->streaming && atomic_load(&s->interrupts) > 0;
}

static bool interrupted(struct net_session *s)
{
	return atomic_load(&s->stopping) || atomic_load(&s->interrupts) > 0;
}

/* Open mount/@name with this session's handlers, creating the file only
 * if @create.  0 or a SQLite code with *@db set (or NULL). */
static int open_db(struct net_session *s, const char *name, bool create,
		   sqlite3 **db)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
	char *path = sqlite3_mprintf("%s/%s", s->mount, name);
	int rc;

	*db = NULL;
	if (path == NULL)
		return SQLITE_NOMEM;
	if (create)
		flags |= SQLITE_OPEN_CREATE;
	rc = sqlite3_open_v2(path, db, flags, NULL);
	sqlite3_free(path);
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_extended_result_codes(*db, 1);
	sqlite3_busy_handler(*db, busy_cb, s);
	sqlite3_progress_handler(*db, PROGRESS_OPS, progress_cb, s);
	/* Closing a session must not take the database's EXCLUSIVE lock for
	 * a last-close checkpoint: local programs without a busy timeout
	 * would see "database is locked".  Writers checkpoint as usual. */
	(void)sqlite3_db_config(*db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	return SQLITE_OK;
}

/* A name that OPEN and DUMP accept: a canonical relative path (no "..",
 * no empty or "." component), not a SQLite companion file. */
static bool name_ok(const char *name)
{
	static const char *const suffixes[] = {"-wal", "-shm", "-journal"};
	size_t len = strlen(name), i, n;

	if (!eng_name_valid(name, len))
		return false;
	for (i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		n = strlen(suffixes[i]);
		if (len >= n && strcmp(name + len - n, suffixes[i]) == 0)
			return false;
	}
	return true;
}

/* True if mount/@name does not exist. */
static bool missing(struct net_session *s, const char *name)
{
	char *path = sqlite3_mprintf("%s/%s", s->mount, name);
	bool rv = path != NULL && access(path, F_OK) != 0 && errno == ENOENT;

	sqlite3_free(path);
	return rv;
}

/* ---- the database and the statement registry ---- */

/* 0, or a FAILURE was sent: not leader (for the requests that need it,
 * §4), or no OPEN yet or a db id other than 0 (§4.4). */
static int check(struct net_session *s, bool need_leader, uint64_t db_id)
{
	if (need_leader && !is_leader(s)) {
		reply_failure(s, SQLITE_IOERR_NOT_LEADER, "not leader");
		return -1;
	}
	if (s->db != NULL && db_id == 0)
		return 0;
	reply_failure(s, SQLITE_NOTFOUND, "no database opened");
	return -1;
}

static sqlite3_stmt *find_stmt(struct net_session *s, uint32_t id)
{
	return s->stmts != NULL && id < s->c.max_stmts ? s->stmts[id] : NULL;
}

/* The lowest free statement id (§4.4); -1 if max_stmts are open or out
 * of memory.  The registry is allocated at the first PREPARE. */
static int64_t free_slot(struct net_session *s)
{
	unsigned i;

	if (s->stmts == NULL)
		s->stmts = calloc(s->c.max_stmts, sizeof *s->stmts);
	for (i = 0; s->stmts != NULL && i < s->c.max_stmts; i++)
		if (s->stmts[i] == NULL)
			return i;
	return -1;
}

/* Add the current row to the ROWS message in @w, first sending that with
 * PART if it holds batch_bytes already or if the row does not fit.  0, 1
 * if the connection is gone, or a SQLite code for a FAILURE (SQLITE_TOOBIG:
 * one row over max_msg). */
static int add_row(struct net_session *s, sqlite3_stmt *stmt,
		   const struct cols *c, struct net_rows_enc *w)
{
	int i, rv;

	for (i = 0; i < c->n; i++) {
		rv = net__column_value(stmt, c, i, &c->row[i]);
		if (rv != SQLITE_OK)
			return rv;
	}
	for (;;) {
		rv = -EMSGSIZE; /* full: send it, start another */
		if (w->n_rows == 0 || s->buf.len < s->c.batch_bytes)
			rv = net_rows_add(w, c->row);
		if (rv != -EMSGSIZE)
			return rv == 0 ? 0 : SQLITE_NOMEM;
		if (w->n_rows == 0)
			return SQLITE_TOOBIG;
		if (net_rows_end(w, false) != 0)
			return SQLITE_NOMEM;
		send_buf(s);
		if (s->gone)
			return 1;
		rv = net_rows_begin(w, &s->buf, c->names, (uint64_t)c->n);
		if (rv != 0)
			return rv == -EMSGSIZE ? SQLITE_TOOBIG : SQLITE_NOMEM;
	}
}

/* Stream the rows of @stmt (bound, not yet stepped) as ROWS messages
 * (QUERY, QUERY_SQL), then reset it: one stream ending in DONE or in a
 * clean FAILURE, or nothing more once interrupted (§6.5). */
static void stream_rows(struct net_session *s, sqlite3_stmt *stmt)
{
	struct net_rows_enc w;
	struct cols c = {0};
	bool begun = false;
	int rc, rv = 0;

	if (sqlite3_column_count(stmt) == 0) {
		/* DDL/DML through QUERY: 1.11 fails it unrun (§4.9). */
		reply_failure(s, SQLITE_ERROR, "not an error");
		return;
	}
	s->streaming = true;
	while (!interrupted(s)) { /* else drop the batch being filled */
		rc = sqlite3_step(stmt);
		if (rc == SQLITE_INTERRUPT && interrupted(s))
			break;
		if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
			rv = -1; /* SQLite's own error */
			break;
		}
		if (!begun) {
			rv = net__cols_init(&c, stmt);
			if (rv == 0)
				rv = net_rows_begin(&w, &s->buf, c.names,
						    (uint64_t)c.n);
			if (rv != 0)
				rv = rv == -EMSGSIZE ? SQLITE_TOOBIG
						     : SQLITE_NOMEM;
			if (rv != 0)
				break;
			begun = true;
		}
		if (rc == SQLITE_DONE) {
			begun = false;
			reply_encoded(s, net_rows_end(&w, true));
			break;
		}
		rv = add_row(s, stmt, &c, &w);
		if (rv != 0)
			break;
	}
	if (begun)
		net_rows_abort(&w); /* a FAILURE follows on a clean buffer */
	if (rv == -1)
		reply_sqlite_error(s, s->db);
	else if (rv == SQLITE_TOOBIG)
		reply_failure(s, SQLITE_TOOBIG, "row too large");
	else if (rv == SQLITE_NOMEM)
		send_close(s);
	s->streaming = false;
	(void)sqlite3_reset(stmt); /* its error was reported above */
	free(c.row); /* and the names and kinds after it */
}

/* ---- requests ---- */

static void handle_open(struct net_session *s, const struct net_request *q)
{
	const struct net_open *m = &q->u.open;
	sqlite3_stmt *stmt = NULL;
	sqlite3 *db = NULL;
	int rc;

	if (s->db != NULL) {
		reply_failure(s, SQLITE_BUSY,
			      "a database for this connection is already open");
		return;
	}
	if (!name_ok(m->name)) {
		reply_failure(s, SQLITE_CANTOPEN, "invalid database name");
		return;
	}
	rc = open_db(s, m->name, true, &db);
	if (rc != SQLITE_OK)
		goto err;
	/* A new database is put in WAL mode, as dqlite's are (issue 3). */
	rc = sqlite3_prepare_v2(db, "PRAGMA page_count", -1, &stmt, NULL);
	if (rc == SQLITE_OK && sqlite3_step(stmt) != SQLITE_ROW)
		rc = sqlite3_extended_errcode(db);
	if (rc == SQLITE_OK && sqlite3_column_int64(stmt, 0) == 0) {
		(void)sqlite3_finalize(stmt);
		stmt = NULL;
		rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL,
				  NULL);
	}
	(void)sqlite3_finalize(stmt);
	if (rc != SQLITE_OK)
		goto err;
	pthread_mutex_lock(&s->mu); /* for net_session_free() */
	s->db = db;
	pthread_mutex_unlock(&s->mu);
	reply_encoded(s, net_encode_db(&s->buf, 0));
	return;

err:
	reply_sqlite_error(s, db); /* a NULL @db is SQLITE_NOMEM */
	(void)sqlite3_close(db);
}

static void handle_prepare(struct net_session *s, const struct net_request *q)
{
	const struct net_prepare *m = &q->u.prepare;
	struct net_stmt out = {0};
	sqlite3_stmt *stmt = NULL;
	const char *tail = NULL;
	int64_t id;
	int rc;

	if (check(s, false, m->db_id) != 0)
		return;
	id = free_slot(s);
	if (id < 0) {
		reply_failure(s, SQLITE_ERROR, "too many prepared statements");
		return;
	}
	/* Only the first statement; the tail is ignored (§4.4) or, in
	 * revision 1, its offset is returned (§3). */
	rc = sqlite3_prepare_v2(s->db, m->sql, -1, &stmt, &tail);
	if (rc != SQLITE_OK) {
		reply_sqlite_error(s, s->db);
		return;
	}
	if (stmt == NULL) {
		reply_failure(s, 0, "empty statement");
		return;
	}
	s->stmts[id] = stmt;
	out.db_id = 0;
	out.stmt_id = (uint32_t)id;
	out.n_params = (uint64_t)sqlite3_bind_parameter_count(stmt);
	out.offset = (uint64_t)(tail - m->sql);
	reply_encoded(s, net_encode_stmt(&s->buf, &out, q->schema));
}

/* The checks EXEC and QUERY share (§4.5): leader, database, statement,
 * parameters.  The statement, ready to step, or NULL after a FAILURE. */
static sqlite3_stmt *exec_prepare(struct net_session *s,
				  const struct net_request *q)
{
	const struct net_exec *m = &q->u.exec;
	sqlite3_stmt *stmt;
	int rc;

	if (check(s, true, m->db_id) != 0)
		return NULL;
	stmt = find_stmt(s, m->stmt_id);
	if (stmt == NULL) {
		reply_failure(s, SQLITE_NOTFOUND,
			      "no statement with the given id");
		return NULL;
	}
	/* Reset, but keep the bindings of an earlier EXEC when this one
	 * has no tuple (§4.5). */
	(void)sqlite3_reset(stmt); /* an old error, reported then */
	rc = net__bind_params(stmt, &m->params, q->schema);
	if (rc != SQLITE_OK) {
		reply_failure(s, (uint64_t)rc, "bind parameters");
		return NULL;
	}
	return stmt;
}

/* Step a write to its end: 0, or a FAILURE was sent (a statement that
 * yields a row is one, §4.8).  Leaves @stmt to be reset or finalized. */
static int step_write(struct net_session *s, sqlite3_stmt *stmt)
{
	int rc = sqlite3_step(stmt);

	if (rc == SQLITE_DONE)
		return 0;
	if (rc == SQLITE_ROW)
		reply_failure(s, SQLITE_ROW, "another row available");
	else
		reply_sqlite_error(s, s->db);
	return -1;
}

static void reply_result(struct net_session *s)
{
	uint64_t id = (uint64_t)sqlite3_last_insert_rowid(s->db);

	reply_encoded(s, net_encode_result(&s->buf, id,
					   (uint64_t)sqlite3_changes64(s->db)));
}

static void handle_exec(struct net_session *s, const struct net_request *q)
{
	sqlite3_stmt *stmt = exec_prepare(s, q);

	if (stmt == NULL)
		return;
	if (step_write(s, stmt) == 0)
		reply_result(s);
	(void)sqlite3_reset(stmt);
}

static void handle_query(struct net_session *s, const struct net_request *q)
{
	sqlite3_stmt *stmt = exec_prepare(s, q);

	if (stmt != NULL)
		stream_rows(s, stmt);
}

static void handle_finalize(struct net_session *s, const struct net_request *q)
{
	const struct net_finalize *m = &q->u.finalize;

	if (check(s, false, m->db_id) != 0)
		return;
	if (find_stmt(s, m->stmt_id) == NULL) {
		reply_failure(s, SQLITE_NOTFOUND,
			      "no statement with the given id");
		return;
	}
	/* Its last error was reported when it happened. */
	(void)sqlite3_finalize(s->stmts[m->stmt_id]);
	s->stmts[m->stmt_id] = NULL;
	reply_encoded(s, net_encode_empty(&s->buf));
}

/* A bind failure of EXEC_SQL or QUERY_SQL: SQLITE_RANGE is "column index
 * out of range" (§4.9), a bad tuple 1005 (§6.1). */
static void reply_bind_error(struct net_session *s, int rc)
{
	reply_failure(s, (uint64_t)rc, rc == DQLITE_PARSE
					       ? "malformed parameter tuple"
					       : sqlite3_errmsg(s->db));
}

/* Statements one at a time, each its own transaction unless the SQL
 * opens one; the parameters go to the first only.  On a failure the
 * statements before stay applied (§4.8). */
static void handle_exec_sql(struct net_session *s, const struct net_request *q)
{
	const struct net_exec_sql *m = &q->u.exec_sql;
	const char *sql = m->sql, *tail;
	bool first = true;
	sqlite3_stmt *stmt;
	int rc;

	if (check(s, true, m->db_id) != 0)
		return;
	while (*sql != '\0') {
		stmt = NULL;
		rc = sqlite3_prepare_v2(s->db, sql, -1, &stmt, &tail);
		if (rc != SQLITE_OK) {
			reply_sqlite_error(s, s->db);
			return;
		}
		if (stmt == NULL) { /* only a comment or blanks left */
			if (tail == sql)
				break;
			sql = tail;
			continue;
		}
		if (first) {
			rc = net__bind_params(stmt, &m->params, q->schema);
			first = false;
			if (rc != SQLITE_OK) {
				reply_bind_error(s, rc);
				(void)sqlite3_finalize(stmt);
				return;
			}
		}
		rc = step_write(s, stmt);
		(void)sqlite3_finalize(stmt); /* its error was just sent */
		if (rc != 0)
			return;
		sql = tail;
	}
	reply_result(s);
}

static void handle_query_sql(struct net_session *s, const struct net_request *q)
{
	const struct net_exec_sql *m = &q->u.exec_sql;
	sqlite3_stmt *stmt = NULL;
	int rc;

	if (check(s, true, m->db_id) != 0)
		return;
	rc = sqlite3_prepare_v2(s->db, m->sql, -1, &stmt, NULL);
	if (rc != SQLITE_OK) {
		reply_sqlite_error(s, s->db);
		return;
	}
	if (stmt == NULL) {
		reply_failure(s, 0, "empty statement");
		return;
	}
	rc = net__bind_params(stmt, &m->params, q->schema);
	if (rc == SQLITE_OK)
		stream_rows(s, stmt);
	else
		reply_bind_error(s, rc);
	(void)sqlite3_finalize(stmt);
}

/* Whatever ran before it was stopped by net_session_interrupt(); this
 * matches one such call, if any, and answers EMPTY (§4.10, §6.5). */
static void handle_interrupt(struct net_session *s, const struct net_request *q)
{
	unsigned n = atomic_load(&s->interrupts);

	(void)q; /* the db id does not matter (§4.10) */
	while (n > 0 &&
	       !atomic_compare_exchange_weak(&s->interrupts, &n, n - 1))
		;
	reply_encoded(s, net_encode_empty(&s->buf));
}

/* FILES with <name> and <name>-wal (§9).  File 1 is a consistent image
 * as of one commit, read through the mount in one read transaction
 * (BEGIN, a read, then sqlite3_serialize(), which reads every page through
 * the pager, WAL frames included); file 2 is empty: the checkpointed form
 * that §9 allows.  A database that does not exist gives two empty files,
 * as in 1.11. */
static void handle_dump(struct net_session *s, const struct net_request *q)
{
	static const char size_sql[] =
		"SELECT page_count * page_size"
		" FROM pragma_page_count(), pragma_page_size()";
	const char *name = q->u.dump.name;
	struct net_file files[2] = {{0}};
	unsigned char *data = NULL;
	sqlite3_int64 size = 0;
	sqlite3_stmt *stmt = NULL;
	sqlite3 *db = NULL;
	int rc;

	if (!name_ok(name)) {
		reply_failure(s, SQLITE_CANTOPEN, "invalid database name");
		return;
	}
	rc = open_db(s, name, false, &db);
	if (rc == SQLITE_CANTOPEN && missing(s, name))
		goto files;
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, size_sql, -1, &stmt, NULL);
	if (rc == SQLITE_OK && sqlite3_step(stmt) != SQLITE_ROW)
		rc = sqlite3_extended_errcode(db);
	if (rc == SQLITE_OK)
		size = sqlite3_column_int64(stmt, 0);
	(void)sqlite3_finalize(stmt);
	if (rc != SQLITE_OK) {
		reply_sqlite_error(s, db); /* a NULL @db is SQLITE_NOMEM */
		goto out;
	}
	if ((uint64_t)size > s->c.max_msg) {
		reply_failure(s, SQLITE_TOOBIG, "database too large to dump");
		goto out;
	}
	/* Not on an empty database: serialize would write a page 1. */
	if (size > 0) {
		data = sqlite3_serialize(db, "main", &size, 0);
		if (data == NULL && sqlite3_errcode(db) != SQLITE_OK)
			reply_sqlite_error(s, db);
		else if (data == NULL)
			reply_failure(s, SQLITE_NOMEM, "out of memory");
		if (data == NULL)
			goto out;
	}
files:
	files[0].name = name;
	files[0].data = data;
	files[0].size = (uint64_t)size;
	files[1].name = sqlite3_mprintf("%s-wal", name);
	if (files[1].name == NULL)
		send_close(s);
	else
		reply_encoded(s, net_encode_files(&s->buf, files, 2));
	sqlite3_free((char *)files[1].name);
out:
	sqlite3_free(data);
	(void)sqlite3_close(db); /* rolls the read transaction back */
}

/* The requests a session runs, by type; NULL for the server's own. */
static void (*const handlers[NET_REQ_COUNT])(struct net_session *s,
					     const struct net_request *q) = {
	[NET_REQ_OPEN] = handle_open,
	[NET_REQ_PREPARE] = handle_prepare,
	[NET_REQ_EXEC] = handle_exec,
	[NET_REQ_QUERY] = handle_query,
	[NET_REQ_FINALIZE] = handle_finalize,
	[NET_REQ_EXEC_SQL] = handle_exec_sql,
	[NET_REQ_QUERY_SQL] = handle_query_sql,
	[NET_REQ_INTERRUPT] = handle_interrupt,
	[NET_REQ_DUMP] = handle_dump,
};

/* Decode the body with the codec and run the request. */
static void handle(struct net_session *s, const struct req *r)
{
	struct net_msg msg;
	struct net_request q;
	int rv;

	memset(&msg, 0, sizeof msg);
	msg.h.words = (uint32_t)(r->len / NET_WORD);
	msg.h.type = r->type;
	msg.h.schema = r->schema;
	msg.body.p = r->body;
	msg.body.len = r->len;
	rv = net_decode_request(&msg, &q);
	if (rv == -EPROTONOSUPPORT) {
		reply_failure(s, SQLITE_ERROR, "unrecognized schema version");
		return;
	}
	if (rv != 0) {
		reply_failure(s, DQLITE_PARSE, "malformed request");
		return;
	}
	handlers[r->type](s, &q);
}

/* ---- the thread and the API ---- */

static void *session_main(void *arg)
{
	struct net_session *s = arg;
	struct req *r;

	for (;;) {
		pthread_mutex_lock(&s->mu);
		while (s->head == NULL && !atomic_load(&s->stopping))
			pthread_cond_wait(&s->cond, &s->mu);
		if (atomic_load(&s->stopping)) {
			pthread_mutex_unlock(&s->mu);
			return NULL;
		}
		r = s->head;
		s->head = r->next;
		if (s->head == NULL)
			s->tail = NULL;
		pthread_mutex_unlock(&s->mu);
		if (!s->gone)
			handle(s, r);
		free(r);
	}
}

int net_session_new(struct net_session **sp, const struct net_session_config *c)
{
	struct net_session *s;
	int rv;

	*sp = NULL;
	if (c->mount == NULL || c->out == NULL)
		return -EINVAL;
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return -ENOMEM;
	s->c = *c;
	if (s->c.busy_timeout_ms == 0)
		s->c.busy_timeout_ms = NET_SESSION_BUSY_TIMEOUT_MS;
	if (s->c.batch_bytes == 0)
		s->c.batch_bytes = NET_SESSION_BATCH_BYTES;
	if (s->c.max_msg == 0)
		s->c.max_msg = NET_MAX_MSG_DEFAULT;
	if (s->c.max_stmts == 0)
		s->c.max_stmts = NET_SESSION_MAX_STMTS;
	rv = -ENOMEM;
	s->mount = strdup(c->mount);
	if (s->mount == NULL)
		goto err_after_alloc;
	s->c.mount = s->mount;
	atomic_init(&s->stopping, false);
	atomic_init(&s->interrupts, 0);
	net_buf_init(&s->buf, s->c.max_msg);
	rv = -pthread_mutex_init(&s->mu, NULL);
	if (rv != 0)
		goto err_after_mount;
	rv = -pthread_cond_init(&s->cond, NULL);
	if (rv != 0)
		goto err_after_mu;
	rv = -pthread_create(&s->thread, NULL, session_main, s);
	if (rv != 0)
		goto err_after_cond;
	*sp = s;
	return 0;

err_after_cond:
	pthread_cond_destroy(&s->cond);
err_after_mu:
	pthread_mutex_destroy(&s->mu);
err_after_mount:
	free(s->mount);
err_after_alloc:
	free(s);
	return rv;
}

int net_session_submit(struct net_session *s, uint8_t type, uint8_t schema,
		       const void *body, size_t len)
{
	struct req *r;

	if (type >= NET_REQ_COUNT || handlers[type] == NULL)
		return -EINVAL;
	r = malloc(sizeof *r + len);
	if (r == NULL)
		return -ENOMEM;
	r->next = NULL;
	r->type = type;
	r->schema = schema;
	r->len = len;
	if (len > 0)
		memcpy(r->body, body, len);
	pthread_mutex_lock(&s->mu);
	if (atomic_load(&s->stopping)) {
		pthread_mutex_unlock(&s->mu);
		free(r);
		return QF_ESHUTDOWN;
	}
	if (s->tail != NULL)
		s->tail->next = r;
	else
		s->head = r;
	s->tail = r;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

void net_session_interrupt(struct net_session *s)
{
	/* The session thread sees it before its next row, or from the
	 * progress handler inside a step. */
	atomic_fetch_add(&s->interrupts, 1);
}

void net_session_free(struct net_session *s)
{
	struct req *r, *next;
	unsigned i;

	pthread_mutex_lock(&s->mu);
	atomic_store(&s->stopping, true);
	/* The progress and busy handlers see @stopping; this also cuts a
	 * statement short between two progress calls. */
	if (s->db != NULL)
		sqlite3_interrupt(s->db);
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->mu);
	(void)pthread_join(s->thread, NULL); /* ours: cannot fail */

	for (r = s->head; r != NULL; r = next) {
		next = r->next;
		free(r);
	}
	for (i = 0; s->stmts != NULL && i < s->c.max_stmts; i++)
		(void)sqlite3_finalize(s->stmts[i]); /* NULL is a no-op */
	free(s->stmts);
	(void)sqlite3_close(s->db); /* every statement is finalized */
	net_buf_close(&s->buf);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->mu);
	free(s->mount);
	free(s);
}
