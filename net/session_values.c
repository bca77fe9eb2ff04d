/* SQLite values to and from the wire (§6.1-§6.4): parameters bound from
 * a tuple, and result columns typed as dqlite types them. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "session_values.h"


/* Bind the tuple @params (request schema @schema) by position.  0, or
 * DQLITE_PARSE for a malformed tuple or a UNIXTIME parameter (1.11
 * rejects it, §6.2), or sqlite3_bind_*'s code (SQLITE_RANGE for too many
 * parameters).  Text and blobs are copied: a prepared statement keeps its
 * bindings after the body is gone (§4.5). */
int net__bind_params(sqlite3_stmt *stmt, const struct net_slice *params,
		       uint8_t schema)
{
	struct net_tuple t;
	struct net_value v;
	int i = 1, rc = SQLITE_OK;

	if (net_tuple_init(&t, params, schema) != 0)
		return DQLITE_PARSE;
	while (rc == SQLITE_OK && net_tuple_next(&t, &v) == 1) {
		switch (v.type) {
		case NET_INTEGER:
			rc = sqlite3_bind_int64(stmt, i, v.integer);
			break;
		case NET_FLOAT:
			rc = sqlite3_bind_double(stmt, i, v.real);
			break;
		case NET_TEXT:
		case NET_ISO8601:
			rc = sqlite3_bind_text64(stmt, i, v.text.p, v.text.len,
						 SQLITE_TRANSIENT, SQLITE_UTF8);
			break;
		case NET_BLOB:
			/* A NULL pointer would bind NULL, not an empty blob. */
			if (v.blob.len == 0)
				rc = sqlite3_bind_zeroblob(stmt, i, 0);
			else
				rc = sqlite3_bind_blob64(stmt, i, v.blob.p,
							 v.blob.len,
							 SQLITE_TRANSIENT);
			break;
		case NET_NULL:
			rc = sqlite3_bind_null(stmt, i);
			break;
		case NET_BOOLEAN:
			rc = sqlite3_bind_int64(stmt, i, v.word != 0);
			break;
		default: /* NET_UNIXTIME */
			rc = DQLITE_PARSE;
			break;
		}
		i++;
	}
	return rc;
}



int net__cols_init(struct cols *c, sqlite3_stmt *stmt)
{
	const char *decl;
	int i;

	c->n = sqlite3_column_count(stmt);
	c->row = calloc((size_t)c->n, sizeof *c->row + sizeof *c->names + 1);
	if (c->row == NULL)
		return SQLITE_NOMEM;
	c->names = (const char **)(c->row + c->n);
	c->kinds = (uint8_t *)(c->names + c->n);
	for (i = 0; i < c->n; i++) {
		c->names[i] = sqlite3_column_name(stmt, i);
		if (c->names[i] == NULL)
			return SQLITE_NOMEM;
		/* §6.2: by declared type, which only column refs have. */
		decl = sqlite3_column_decltype(stmt, i);
		if (decl == NULL)
			continue; /* COL_PLAIN */
		if (strcasecmp(decl, "DATETIME") == 0 ||
		    strcasecmp(decl, "DATE") == 0 ||
		    strcasecmp(decl, "TIMESTAMP") == 0)
			c->kinds[i] = COL_TIME;
		else if (strcasecmp(decl, "BOOLEAN") == 0)
			c->kinds[i] = COL_BOOL;
	}
	return SQLITE_OK;
}

/* Column @i of the current row as dqlite types it (§6.2): a BOOLEAN
 * column is column_int64 (NULL is 0); in a time column an integer is
 * UNIXTIME, text or NULL is ISO8601 (NULL as ""), anything else keeps its
 * type (where 1.11 asserts).  The value points into SQLite until the next
 * step.  SQLITE_OK or SQLITE_NOMEM. */
int net__column_value(sqlite3_stmt *stmt, const struct cols *c, int i,
			struct net_value *v)
{
	bool time = c->kinds[i] == COL_TIME;

	switch (c->kinds[i] == COL_BOOL ? -1 : sqlite3_column_type(stmt, i)) {
	case -1:
		v->type = NET_BOOLEAN;
		v->word = (uint64_t)sqlite3_column_int64(stmt, i);
		return SQLITE_OK;
	case SQLITE_INTEGER:
		v->type = time ? NET_UNIXTIME : NET_INTEGER;
		v->integer = sqlite3_column_int64(stmt, i);
		return SQLITE_OK;
	case SQLITE_FLOAT:
		v->type = NET_FLOAT;
		v->real = sqlite3_column_double(stmt, i);
		return SQLITE_OK;
	case SQLITE_TEXT:
		v->type = time ? NET_ISO8601 : NET_TEXT;
		v->text.p = (const char *)sqlite3_column_text(stmt, i);
		v->text.len = (size_t)sqlite3_column_bytes(stmt, i);
		return v->text.p != NULL ? SQLITE_OK : SQLITE_NOMEM;
	case SQLITE_BLOB:
		v->type = NET_BLOB;
		v->blob.p = sqlite3_column_blob(stmt, i);
		v->blob.len = (size_t)sqlite3_column_bytes(stmt, i);
		return v->blob.p != NULL || v->blob.len == 0 ? SQLITE_OK
							     : SQLITE_NOMEM;
	default: /* SQLITE_NULL */
		v->type = time ? NET_ISO8601 : NET_NULL;
		v->text.p = ""; /* NULL is a zero word whatever this holds */
		v->text.len = 0;
		return SQLITE_OK;
	}
}

