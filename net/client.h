/* The client library's private state and the helpers its files share
 * (net/client.c, client_rows.c, client_admin.c).  The API is in net.h;
 * this header is for net/ and the unit tests. */
#ifndef NET_CLIENT_H
#define NET_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "net.h"

#define NET_CLIENT_RBUF (64u << 10) /* bytes read from the socket at once */
#define NET_CLIENT_ERRMSG 512

/* The result set being read, if any (one per connection, §1.4). */
struct net_client_rs {
	bool open;  /* handed out, not closed yet */
	bool over;  /* DONE, FAILURE or an error seen: no more rows */
	bool more;  /* the server may still be sending batches */
	int status; /* once over: 0 (DONE) or the error that ended it */
	struct net_rows batch; /* the current ROWS message */
	uint64_t n_cols;
	char *names_mem;	  /* the column names, copied once */
	const char **names;
	struct net_sql_value *row;
	struct net_client_rows *rows; /* the caller's handle */
};

struct net_client {
	struct net_client_config cfg;
	int fd;		  /* -1 when not connected */
	int cancel_fd;	  /* net_client_set_cancel's, or -1 */
	char *address;	  /* as dialed; NULL when not connected */
	bool legacy;	  /* handshake was the legacy version (§1.2) */
	int64_t deadline; /* of the current call, monotonic ms; 0: none */
	struct net_buf out;	/* the request being sent */
	struct net_decoder dec; /* responses */
	uint8_t *rbuf;		/* bytes read, [rpos, rlen) not fed yet */
	size_t rpos, rlen;
	struct net_value *wire; /* parameters in codec form */
	size_t wire_cap;
	char *scratch;		/* a string handed back (leader) */
	uint64_t failure_code;	/* of the last NET_EFAILURE */
	char errmsg[NET_CLIENT_ERRMSG];
	struct net_client_rs rs;
};

/* ---- shared by the client's files (client.c) ---- */

/* The cancel fd became readable within @ms (0: is it now?); without one,
 * sleeps @ms and says false. */
bool net__cli_cancelled(struct net_client *c, int64_t ms);
/* The monotonic time @ms from now, as c->deadline holds it; 0 for 0. */
int64_t net__cli_deadline_in(unsigned ms);

/* Record the last error's text; returns @rv. */
int net__cli_error(struct net_client *c, int rv, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* As net__cli_error, for an error that leaves the byte stream in an
 * unknown place: also drops the connection. */
int net__cli_fail(struct net_client *c, int rv, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* QF_EMALFORMED for a bad @what response; drops the connection. */
int net__cli_malformed(struct net_client *c, const char *what);
/* Connected and no result set open: 0, -ENOTCONN or -EBUSY. */
int net__cli_ready(struct net_client *c);
/* An encoder failed: nothing was sent; returns @rv. */
int net__cli_encode_failed(struct net_client *c, int rv);
/* @n parameters in codec form, in c->wire: 0 or -EINVAL/-ENOMEM. */
int net__cli_params(struct net_client *c, const struct net_sql_value *p,
		    size_t n);
/* Start a call's deadline (config.timeout_ms from now). */
void net__cli_call(struct net_client *c);
/* Send what c->out holds and empty it. */
int net__cli_send(struct net_client *c);
/* The next whole response; its body lives until the next read. */
int net__cli_recv(struct net_client *c, struct net_msg *m);
/* Keep a FAILURE's code and message: NET_EFAILURE. */
int net__cli_failure(struct net_client *c, const struct net_msg *m);
/* Start a call, send c->out, read a response of @type (FAILURE gives
 * NET_EFAILURE, another type QF_EMALFORMED). */
int net__cli_roundtrip(struct net_client *c, uint8_t type,
		       struct net_msg *m);
/* The same for a request answered by EMPTY. */
int net__cli_empty(struct net_client *c);
/* Free the result set's memory and forget it (client_rows.c). */
void net__cli_rs_free(struct net_client *c);

#endif /* NET_CLIENT_H */
