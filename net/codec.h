/* Wire codec of the dqlite protocol as go-dqlite 1.11.5 and dqlite 1.11
 * speak it (wire-protocol.md, "the spec" below: §1-§7, §9).  Private to
 * net/: the server, the client library and the raft transport use it.
 *
 * Pure functions over bytes: no sockets, no SQLite, no global state.  Any
 * thread may call anything; one object (buffer, decoder, iterator) must not
 * be used by two threads at once.
 *
 * Encoding.  Encoders append whole messages (8-byte header + body) to a
 * struct net_buf, which grows by doubling up to the bound given at init.
 * Each net_encode_*() call is atomic: it returns 0 with the message
 * appended, or a negative code with the buffer exactly as before.  The
 * field putters (net_put_*) instead record their first failure in the
 * buffer (sticky) and do nothing after it; net_msg_end() reports it and
 * rolls the half-written message back.  That keeps encoders a flat list of
 * fields with a single check at the end.
 *
 * Decoding.  Input is hostile.  Decoders read only through a bounds-checked
 * cursor, compare every length and count with the bytes left using 64-bit
 * arithmetic before using it, allocate nothing that the bytes present do
 * not bound, and return QF_EMALFORMED for any byte that breaks the format.
 * Decoded text, blobs and raw parameter tuples point into the body given to
 * the decoder (no copy): they live as long as that body.  Padding is never
 * checked (§1.5: go-dqlite sends garbage in the tuple-header padding), but
 * it must be present.
 *
 * Return codes (beyond 0):
 *   QF_EMALFORMED     the bytes break the format; for a fixed request part
 *                     the server closes the connection (§7.2), for a
 *                     parameter tuple it answers FAILURE 1005.
 *   -ENOSYS           unknown request type (net_decode_request): the
 *                     server answers FAILURE instead of hanging (§4.1).
 *   -EPROTONOSUPPORT  unknown handshake version (close, §1.2), or a schema
 *                     revision the type does not have (FAILURE, §3).
 *   -EMSGSIZE         a message over the decoder's maximum, or a message
 *                     that would grow a net_buf beyond its bound.
 *   -EINVAL           an encoder was given something the protocol cannot
 *                     carry (a value type clients do not know, a ROWS
 *                     message with no column, a FILES size not a multiple
 *                     of 8).
 *   -ENOMEM           out of memory. */
#ifndef NET_CODEC_H
#define NET_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../engine/lib/lib.h"

/* Handshake words (§1.2). */
#define NET_PROTO_VERSION 1ULL
#define NET_PROTO_LEGACY 0x86104dd760433fe5ULL

#define NET_WORD 8
#define NET_HEADER_SIZE 8

/* ROWS end markers (§6.3). */
#define NET_ROWS_DONE 0xffffffffffffffffULL
#define NET_ROWS_PART 0xeeeeeeeeeeeeeeeeULL

/* A generous default message cap (§1.3): one benchmark request is ~1 KiB. */
#define NET_MAX_MSG_DEFAULT (64u << 20)

/* What CLIENT's WELCOME advertises (§4.2, §12). */
#define NET_HEARTBEAT_TIMEOUT_MS 15000

/* Request types (§2.1). */
enum {
	NET_REQ_LEADER = 0,
	NET_REQ_CLIENT = 1,
	NET_REQ_HEARTBEAT = 2,
	NET_REQ_OPEN = 3,
	NET_REQ_PREPARE = 4,
	NET_REQ_EXEC = 5,
	NET_REQ_QUERY = 6,
	NET_REQ_FINALIZE = 7,
	NET_REQ_EXEC_SQL = 8,
	NET_REQ_QUERY_SQL = 9,
	NET_REQ_INTERRUPT = 10,
	NET_REQ_CONNECT = 11,
	NET_REQ_ADD = 12,
	NET_REQ_ASSIGN = 13,
	NET_REQ_REMOVE = 14,
	NET_REQ_DUMP = 15,
	NET_REQ_CLUSTER = 16,
	NET_REQ_TRANSFER = 17,
	NET_REQ_DESCRIBE = 18,
	NET_REQ_WEIGHT = 19,
	NET_REQ_COUNT
};

/* Response types (§2.2). */
enum {
	NET_RESP_FAILURE = 0,
	NET_RESP_SERVER = 1,
	NET_RESP_WELCOME = 2,
	NET_RESP_SERVERS = 3,
	NET_RESP_DB = 4,
	NET_RESP_STMT = 5,
	NET_RESP_RESULT = 6,
	NET_RESP_ROWS = 7,
	NET_RESP_EMPTY = 8,
	NET_RESP_FILES = 9,
	NET_RESP_METADATA = 10,
	NET_RESP_COUNT
};

/* quorafs's extension (codec_quorafs.c): outside dqlite's numbering. */
enum { NET_QF_REQ_DATABASES = 100, NET_QF_RESP_DATABASES = 100 };
enum { NET_QF_REQ_IMAGE = 101, NET_QF_RESP_IMAGE = 101 };

/* Value type codes (§6.2).  Nothing else is ever valid on the wire. */
enum {
	NET_INTEGER = 1,
	NET_FLOAT = 2,
	NET_TEXT = 3,
	NET_BLOB = 4,
	NET_NULL = 5,
	NET_UNIXTIME = 9,
	NET_ISO8601 = 10,
	NET_BOOLEAN = 11
};

/* Node roles in dqlite numbering (§11). */
enum { NET_ROLE_VOTER = 0, NET_ROLE_STANDBY = 1, NET_ROLE_SPARE = 2 };

/* ---- byte ranges and values ---- */

struct net_slice {
	const uint8_t *p;
	size_t len;
};

/* One SQL value.  Decoded text (TEXT, ISO8601) is NUL-terminated in place;
 * to encode, @text.p need not be, and text stops at an embedded NUL, as it
 * does in dqlite (a NUL inside would break the padding). */
struct net_value {
	uint8_t type; /* NET_INTEGER ... NET_BOOLEAN */
	union {
		int64_t integer; /* INTEGER, UNIXTIME */
		double real;	 /* FLOAT */
		uint64_t word;	 /* BOOLEAN (nonzero = true) and NULL, raw */
		struct {
			const char *p;
			size_t len;
		} text; /* TEXT, ISO8601 */
		struct {
			const void *p;
			size_t len;
		} blob; /* BLOB */
	};
};

/* ---- growable output buffer ---- */

struct net_buf {
	uint8_t *data;
	size_t len;    /* bytes written */
	size_t cap;    /* bytes allocated */
	size_t max;    /* never grows beyond this */
	size_t mark;   /* start of the message being written */
	int status;    /* first putter failure since the last net_msg_end */
};

/* An empty buffer that may grow to @max bytes.  Allocates nothing yet. */
void net_buf_init(struct net_buf *b, size_t max);
/* Free the memory; @b may be initialized again. */
void net_buf_close(struct net_buf *b);
/* Drop the content (keeps the memory for reuse). */
void net_buf_reset(struct net_buf *b);
/* Drop everything after the first @len bytes (@len <= b->len). */
void net_buf_truncate(struct net_buf *b, size_t len);

/* ---- field encodings (§1.5), appended to @b; errors are sticky ---- */

void net_put_u8(struct net_buf *b, uint8_t v);
void net_put_u32(struct net_buf *b, uint32_t v);
void net_put_u64(struct net_buf *b, uint64_t v);
void net_put_i64(struct net_buf *b, int64_t v);
void net_put_double(struct net_buf *b, double v);
/* @s (NULL counts as ""), a NUL, zeros to the next word. */
void net_put_text(struct net_buf *b, const char *s);
/* The first @n bytes of @s, stopping early at a NUL; then as above. */
void net_put_text_n(struct net_buf *b, const char *s, size_t n);
/* u64 length, the bytes, zeros to the next word. */
void net_put_blob(struct net_buf *b, const void *p, size_t n);
/* The bytes as they are, no length and no padding. */
void net_put_raw(struct net_buf *b, const void *p, size_t n);
/* Zeros up to the next word boundary of the current message. */
void net_put_pad(struct net_buf *b);
/* A value encoded by its type (§6.2); a type not in §6.2 gives -EINVAL. */
void net_put_value(struct net_buf *b, const struct net_value *v);

/* Start a message at the end of @b: writes its header with words = 0 and
 * returns its offset, to be given to net_msg_end(). */
size_t net_msg_begin(struct net_buf *b, uint8_t type, uint8_t schema);
/* Pad the body to a word, fill in the header's word count.  On any putter
 * failure since net_msg_begin(), or an empty or too long body, remove the
 * message from @b, clear the failure and return it. */
int net_msg_end(struct net_buf *b, size_t start);

/* ---- field decodings (§1.5) ---- */

/* A read position in a body.  @off counts bytes consumed, for padding. */
struct net_cursor {
	const uint8_t *p;
	size_t left;
	size_t off;
};

void net_cursor_init(struct net_cursor *c, const struct net_slice *s);

/* Each getter returns 0, or QF_EMALFORMED with @c unchanged. */
int net_get_u8(struct net_cursor *c, uint8_t *v);
int net_get_u32(struct net_cursor *c, uint32_t *v);
int net_get_u64(struct net_cursor *c, uint64_t *v);
int net_get_i64(struct net_cursor *c, int64_t *v);
int net_get_double(struct net_cursor *c, double *v);
/* Text up to the first NUL in the remaining bytes, padding skipped
 * unchecked; no NUL, or padding past the end, is malformed.  @len may be
 * NULL. */
int net_get_text(struct net_cursor *c, const char **s, size_t *len);
int net_get_blob(struct net_cursor *c, const void **p, size_t *len);
/* Skip to the next word boundary (counted from the cursor's start). */
int net_get_pad(struct net_cursor *c);
/* A value of @type (§6.2); a type not in §6.2 is malformed. */
int net_get_value(struct net_cursor *c, uint8_t type, struct net_value *v);

/* True if @type is one of the eight codes of §6.2. */
bool net_value_type_valid(unsigned type);

/* ---- handshake and header (§1.2, §1.3) ---- */

struct net_header {
	uint32_t words; /* body length in words */
	uint8_t type;
	uint8_t schema;
	uint16_t extra; /* unused; 0 on output, ignored on input */
};

/* The version word: 0 for NET_PROTO_VERSION or NET_PROTO_LEGACY, else
 * -EPROTONOSUPPORT (the server closes the connection). */
int net_handshake_decode(const uint8_t word[8], uint64_t *version);
/* Append the version word (8 bytes, no header). */
int net_encode_handshake(struct net_buf *b, uint64_t version);

void net_header_encode(const struct net_header *h, uint8_t out[8]);
/* QF_EMALFORMED for words = 0 (1.11 aborts on it, §1.3). */
int net_header_decode(const uint8_t in[8], struct net_header *h);

/* ---- incremental decoder ---- */

struct net_msg {
	struct net_header h;
	struct net_slice body; /* h.words * 8 bytes */
};

enum {
	NET_FEED_MORE = 0,	/* all input consumed, message incomplete */
	NET_FEED_HANDSHAKE = 1, /* d->version now holds the version */
	NET_FEED_MESSAGE = 2	/* *msg holds one complete message */
};

/* Turns a byte stream into messages.  Feed it chunks of any size; it
 * returns after each handshake or message so that the caller can stop
 * at a CONNECT and hand the rest of the chunk to raft (§10). */
struct net_decoder {
	uint64_t max_msg; /* largest message accepted, header included */
	uint64_t version; /* after NET_FEED_HANDSHAKE */
	int state;
	int error; /* sticky, once failed */
	uint8_t word[8];
	size_t word_len;
	struct net_header h;
	uint8_t *body; /* the body being reassembled */
	size_t body_len;
	size_t body_cap;
	bool handed_out; /* body was returned; drop it at the next feed */
};

/* @handshake: expect the version word first (server side); false for the
 * client side, which reads only responses.  @max_msg counts the header. */
void net_decoder_init(struct net_decoder *d, uint64_t max_msg, bool handshake);
void net_decoder_close(struct net_decoder *d);

/* Consume bytes of @data (@n bytes) until a handshake or a message is
 * complete or the input is used up; *@used tells how many bytes were taken.
 * Returns NET_FEED_*, or QF_EMALFORMED (words = 0), -EPROTONOSUPPORT
 * (handshake), -EMSGSIZE (over max_msg: nothing of the claimed size is
 * allocated) or -ENOMEM; errors are sticky.  The body memory grows with the
 * bytes received, never ahead of them.  @msg->body points into @data when
 * the whole body was inside it, else into the decoder: either way it is
 * valid until the next feed or close, and while @data lives. */
int net_decoder_feed(struct net_decoder *d, const uint8_t *data, size_t n,
		     size_t *used, struct net_msg *msg);

/* ---- requests (§4): bodies ---- */

struct net_leader {
	uint64_t unused;
};
struct net_client_req {
	uint64_t id;
};
struct net_heartbeat {
	uint64_t timestamp;
};
struct net_open {
	const char *name;
	uint64_t flags;
	const char *vfs;
};
struct net_prepare {
	uint64_t db_id;
	const char *sql;
};
/* EXEC and QUERY.  @params is the raw parameter tuple, empty when absent:
 * decode it with net_tuple_init() (errors there are FAILURE 1005). */
struct net_exec {
	uint32_t db_id;
	uint32_t stmt_id;
	struct net_slice params;
};
struct net_finalize {
	uint32_t db_id;
	uint32_t stmt_id;
};
/* EXEC_SQL and QUERY_SQL; @params as for net_exec. */
struct net_exec_sql {
	uint64_t db_id;
	const char *sql;
	struct net_slice params;
};
struct net_interrupt {
	uint64_t db_id;
};
struct net_connect {
	uint64_t id;
	const char *address;
};
struct net_add {
	uint64_t id;
	const char *address;
};
/* A 1-word body is the legacy PROMOTE: role voter, has_role false. */
struct net_assign {
	uint64_t id;
	uint64_t role; /* as sent: the server rejects values > 2 */
	bool has_role;
};
struct net_remove {
	uint64_t id;
};
struct net_dump {
	const char *name;
};
struct net_cluster {
	uint64_t format;
};
struct net_transfer {
	uint64_t id;
};
struct net_describe {
	uint64_t format;
};
struct net_weight {
	uint64_t weight;
};

/* A decoded request.  EXEC and QUERY share u.exec, EXEC_SQL and QUERY_SQL
 * share u.exec_sql; @type tells them apart. */
struct net_request {
	uint8_t type;
	uint8_t schema;
	union {
		struct net_leader leader;
		struct net_client_req client;
		struct net_heartbeat heartbeat;
		struct net_open open;
		struct net_prepare prepare;
		struct net_exec exec;
		struct net_finalize finalize;
		struct net_exec_sql exec_sql;
		struct net_interrupt interrupt;
		struct net_connect connect;
		struct net_add add;
		struct net_assign assign;
		struct net_remove remove;
		struct net_dump dump;
		struct net_cluster cluster;
		struct net_transfer transfer;
		struct net_describe describe;
		struct net_weight weight;
	} u;
};

/* Body decoders: 0 or QF_EMALFORMED.  Extra trailing bytes are ignored,
 * except that they form the parameter tuple, or ASSIGN's role. */
int net_decode_leader(const struct net_slice *body, struct net_leader *m);
int net_decode_client(const struct net_slice *body, struct net_client_req *m);
int net_decode_heartbeat(const struct net_slice *body, struct net_heartbeat *m);
int net_decode_open(const struct net_slice *body, struct net_open *m);
int net_decode_prepare(const struct net_slice *body, struct net_prepare *m);
int net_decode_exec(const struct net_slice *body, struct net_exec *m);
int net_decode_finalize(const struct net_slice *body, struct net_finalize *m);
int net_decode_exec_sql(const struct net_slice *body, struct net_exec_sql *m);
int net_decode_interrupt(const struct net_slice *body, struct net_interrupt *m);
int net_decode_connect(const struct net_slice *body, struct net_connect *m);
int net_decode_add(const struct net_slice *body, struct net_add *m);
int net_decode_assign(const struct net_slice *body, struct net_assign *m);
int net_decode_remove(const struct net_slice *body, struct net_remove *m);
int net_decode_dump(const struct net_slice *body, struct net_dump *m);
int net_decode_cluster(const struct net_slice *body, struct net_cluster *m);
int net_decode_transfer(const struct net_slice *body, struct net_transfer *m);
int net_decode_describe(const struct net_slice *body, struct net_describe *m);
int net_decode_weight(const struct net_slice *body, struct net_weight *m);

/* Decode any request by its header.  -ENOSYS for an unknown type,
 * -EPROTONOSUPPORT for a schema revision other than 0 (or 1 on PREPARE,
 * EXEC, QUERY, EXEC_SQL, QUERY_SQL, §3), else as the body decoder.
 * r->type and r->schema are set even on error. */
int net_decode_request(const struct net_msg *msg, struct net_request *r);

/* Lower-case name of a request type ("exec_sql"), or "unknown". */
const char *net_request_name(unsigned type);

/* True if request @type has schema revision 1 (§3). */
bool net_request_has_rev1(unsigned type);

/* ---- parameter tuples (§6.1) ---- */

struct net_tuple {
	uint32_t n;	      /* number of values */
	uint32_t i;	      /* values returned so far */
	const uint8_t *types; /* n type codes */
	struct net_cursor values;
};

/* Parse and validate a whole tuple: the header for @schema (0: u8 count,
 * 1: u32 count), every type code and every value.  An empty @params is a
 * tuple of no values.  0 or QF_EMALFORMED (FAILURE 1005). */
int net_tuple_init(struct net_tuple *t, const struct net_slice *params,
		   uint8_t schema);
/* The next value: 1, or 0 after the last. */
int net_tuple_next(struct net_tuple *t, struct net_value *v);

/* ---- requests: encoders (client side) ---- */

/* Tuples use schema 0 for up to 255 values, else revision 1 (and the
 * message's schema byte says so), as go-dqlite >= 1.20 does. */
int net_encode_leader(struct net_buf *b);
int net_encode_client(struct net_buf *b, uint64_t id);
int net_encode_heartbeat(struct net_buf *b, uint64_t timestamp);
int net_encode_open(struct net_buf *b, const char *name, uint64_t flags,
		    const char *vfs);
int net_encode_prepare(struct net_buf *b, uint64_t db_id, const char *sql);
int net_encode_exec(struct net_buf *b, uint32_t db_id, uint32_t stmt_id,
		    const struct net_value *params, size_t n);
int net_encode_query(struct net_buf *b, uint32_t db_id, uint32_t stmt_id,
		     const struct net_value *params, size_t n);
int net_encode_finalize(struct net_buf *b, uint32_t db_id, uint32_t stmt_id);
int net_encode_exec_sql(struct net_buf *b, uint64_t db_id, const char *sql,
			const struct net_value *params, size_t n);
int net_encode_query_sql(struct net_buf *b, uint64_t db_id, const char *sql,
			 const struct net_value *params, size_t n);
int net_encode_interrupt(struct net_buf *b, uint64_t db_id);
int net_encode_connect(struct net_buf *b, uint64_t id, const char *address);
int net_encode_add(struct net_buf *b, uint64_t id, const char *address);
/* Always sends the role word (the 1-word PROMOTE form is never sent). */
int net_encode_assign(struct net_buf *b, uint64_t id, uint64_t role);
int net_encode_remove(struct net_buf *b, uint64_t id);
int net_encode_dump(struct net_buf *b, const char *name);
int net_encode_cluster(struct net_buf *b, uint64_t format);
int net_encode_transfer(struct net_buf *b, uint64_t id);
int net_encode_describe(struct net_buf *b, uint64_t format);
int net_encode_weight(struct net_buf *b, uint64_t weight);

/* Re-encode a decoded request; raw tuples are copied as they came, with
 * r->schema.  A legacy 1-word ASSIGN stays 1 word. */
int net_encode_request(struct net_buf *b, const struct net_request *r);

/* ---- responses (§5) ---- */

struct net_failure {
	uint64_t code;
	const char *message;
};
/* SERVER: the leader as this node knows it; id 0 in the legacy form. */
struct net_server_info {
	uint64_t id;
	const char *address;
};
struct net_welcome {
	uint64_t heartbeat_timeout;
};
struct net_node {
	uint64_t id;
	const char *address;
	uint64_t role; /* NET_ROLE_*, 0 when the format has none */
};
struct net_db {
	uint32_t id;
};
/* @offset: only in schema 1 (§3). */
struct net_stmt {
	uint32_t db_id;
	uint32_t stmt_id;
	uint64_t n_params;
	uint64_t offset;
};
struct net_result {
	uint64_t last_insert_id;
	uint64_t rows_affected;
};
struct net_file {
	const char *name;
	const void *data;
	uint64_t size; /* a multiple of 8 (§9) */
};
struct net_metadata {
	uint64_t failure_domain;
	uint64_t weight;
};

int net_encode_failure(struct net_buf *b, uint64_t code, const char *message);
int net_encode_server(struct net_buf *b, uint64_t id, const char *address);
/* The legacy-protocol LEADER answer: the address only (§4.1). */
int net_encode_server_legacy(struct net_buf *b, const char *address);
int net_encode_welcome(struct net_buf *b, uint64_t heartbeat_timeout);
/* Format 0: id and address; any other: with the role too (§4.16). */
int net_encode_servers(struct net_buf *b, const struct net_node *nodes,
		       size_t n, uint64_t format);
int net_encode_db(struct net_buf *b, uint32_t id);
/* Schema 0: three fields; schema 1 adds the tail offset. */
int net_encode_stmt(struct net_buf *b, const struct net_stmt *s,
		    uint8_t schema);
int net_encode_result(struct net_buf *b, uint64_t last_insert_id,
		      uint64_t rows_affected);
int net_encode_empty(struct net_buf *b);
int net_encode_files(struct net_buf *b, const struct net_file *files,
		     size_t n);
int net_encode_metadata(struct net_buf *b, uint64_t failure_domain,
			uint64_t weight);

int net_decode_failure(const struct net_slice *body, struct net_failure *m);
int net_decode_server(const struct net_slice *body, bool legacy,
		      struct net_server_info *m);
int net_decode_welcome(const struct net_slice *body, struct net_welcome *m);
int net_decode_db(const struct net_slice *body, struct net_db *m);
/* -EPROTONOSUPPORT for a schema other than 0 or 1. */
int net_decode_stmt(const struct net_slice *body, uint8_t schema,
		    struct net_stmt *m);
int net_decode_result(const struct net_slice *body, struct net_result *m);
int net_decode_empty(const struct net_slice *body);
int net_decode_metadata(const struct net_slice *body, struct net_metadata *m);

/* SERVERS, read node by node.  init checks that @n nodes can fit. */
struct net_servers {
	uint64_t n;
	uint64_t i;
	uint64_t format;
	struct net_cursor cur;
};
int net_servers_init(struct net_servers *s, const struct net_slice *body,
		     uint64_t format);
/* 1 with *@node filled, 0 after the last node, or QF_EMALFORMED. */
int net_servers_next(struct net_servers *s, struct net_node *node);

/* FILES (§9), read file by file. */
struct net_files {
	uint64_t n;
	uint64_t i;
	struct net_cursor cur;
};
int net_files_init(struct net_files *f, const struct net_slice *body);
/* 1 with *@file filled, 0 after the last file, or QF_EMALFORMED. */
int net_files_next(struct net_files *f, struct net_file *file);

/* ---- ROWS (§6.3, §6.4) ---- */

/* Writes one ROWS message: begin, any number of rows, then end with DONE
 * or PART.  Each call is atomic.  A row that does not fit (-EMSGSIZE)
 * leaves the message ready to end with PART; net_rows_abort() removes the
 * whole message, so a FAILURE can follow on a clean buffer (§6.4). */
struct net_rows_enc {
	struct net_buf *b;
	size_t start;
	uint64_t n_cols;
	uint64_t n_rows; /* rows in this message */
};

int net_rows_begin(struct net_rows_enc *w, struct net_buf *b,
		   const char *const *names, uint64_t n_cols);
/* @row holds n_cols values; types must be valid (§6.2) or -EINVAL. */
int net_rows_add(struct net_rows_enc *w, const struct net_value *row);
int net_rows_end(struct net_rows_enc *w, bool done);
void net_rows_abort(struct net_rows_enc *w);

/* Reads one ROWS message.  init decodes the column names and allocates
 * @names and @row (bounded by the body size); close frees them. */
struct net_rows {
	uint64_t n_cols;
	const char **names;
	struct net_value *row; /* the current row */
	uint64_t end;	       /* NET_ROWS_DONE or _PART once ended */
	struct net_cursor cur;
};

int net_rows_init(struct net_rows *r, const struct net_slice *body);
/* 1 with r->row filled, 0 at the end marker (r->end), or QF_EMALFORMED
 * (no marker, bad type nibble, truncated value). */
int net_rows_next(struct net_rows *r);
void net_rows_close(struct net_rows *r);

/* ---- DATABASES, quorafs's extension (codec_quorafs.c) ---- */

/* What a node holds of one database: its engine state. */
struct net_db_info {
	const char *name;
	uint64_t applied;   /* raft index of its last entry applied here */
	uint64_t seq;	    /* its transactions so far */
	uint64_t cksum;	    /* XOR of qf_page_hash over its pages */
	uint64_t pages;
	uint64_t page_size;
	bool diverged;
};

int net_encode_databases_req(struct net_buf *b);
/* @idle: every replicated transaction is in the files. */
int net_encode_databases(struct net_buf *b, uint64_t applied, bool idle,
			 const struct net_db_info *dbs, size_t n);

struct net_databases {
	uint64_t applied;
	bool idle;
	uint64_t n, i;
	struct net_cursor cur;
};
int net_databases_init(struct net_databases *d, const struct net_slice *body);
/* 1 with *@db filled (name points into the body), 0 after the last, or
 * QF_EMALFORMED. */
int net_databases_next(struct net_databases *d, struct net_db_info *db);

/* ---- IMAGE, quorafs's extension (codec_quorafs.c) ---- */

/* One database's pages at one state, from the leader: what a follower
 * whose files diverged installs.  The response comes as consecutive
 * IMAGE messages, each with pages @first .. @first + @n - 1, until the
 * last page: no message holds more than a bounded part of the database. */
struct net_image {
	uint64_t seq, cksum;
	uint32_t page_size, db_pages;
	uint32_t first, n;    /* this message's pages (first from 1) */
	const uint8_t *pages; /* n * page_size bytes (decoded: into the
				 body) */
};

int net_encode_image_req(struct net_buf *b, const char *db);
/* 0 with *@db pointing into the body, or QF_EMALFORMED. */
int net_decode_image_req(const struct net_slice *body, const char **db);
/* Start one response message for @im and leave room for its @n pages:
 * they go to *@pages, then net_msg_end(@b, *@start) ends it.  0 or
 * -errno. */
int net_encode_image_begin(struct net_buf *b, const struct net_image *im,
			   size_t *start, uint8_t **pages);
int net_decode_image(const struct net_slice *body, struct net_image *im);

#endif /* NET_CODEC_H */
