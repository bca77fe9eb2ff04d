/* SQLite values to and from the wire (§6.1-§6.4), for the SQL sessions
 * (session_values.c).  Private to net/. */
#ifndef QF_NET_SESSION_VALUES_H
#define QF_NET_SESSION_VALUES_H

#include <sqlite3.h>
#include <stdint.h>

#include "codec.h"

/* 1.11's code for a malformed parameter tuple (§7.2). */
#define DQLITE_PARSE 1005

enum { COL_PLAIN, COL_TIME, COL_BOOL };

/* A query's columns, read after its first step (a re-prepare during that
 * step may change them).  One block: row, then names, then kinds. */
struct cols {
	int n;
	struct net_value *row;
	const char **names;
	uint8_t *kinds;
};

/* Bind the tuple @params (request schema @schema) by position.  0, or
 * DQLITE_PARSE for a malformed tuple or a UNIXTIME parameter (1.11
 * rejects it, §6.2), or sqlite3_bind_*'s code (SQLITE_RANGE for too many
 * parameters).  Text and blobs are copied. */
int net__bind_params(sqlite3_stmt *stmt, const struct net_slice *params,
		     uint8_t schema);
/* A query's columns after its first step; free(c->row) when done.
 * SQLITE_OK or SQLITE_NOMEM. */
int net__cols_init(struct cols *c, sqlite3_stmt *stmt);
/* Column @i of the current row as dqlite types it (§6.2); points into
 * SQLite until the next step.  SQLITE_OK or SQLITE_NOMEM. */
int net__column_value(sqlite3_stmt *stmt, const struct cols *c, int i,
		      struct net_value *v);

#endif /* QF_NET_SESSION_VALUES_H */
