/* Wire codec, part 1: the output buffer, field encodings (§1.5), values
 * (§6.2), handshake and header (§1.2, §1.3) and the incremental decoder.
 * Requests are in codec_request.c, responses in codec_response.c; the
 * contract for all three is in codec.h.
 *
 * The incremental decoder's happy path: 8 handshake bytes, then for each
 * message an 8-byte header and words * 8 body bytes.  When the body is
 * entirely inside the caller's chunk it is handed out in place; otherwise
 * it is copied into a buffer that grows with the bytes actually received
 * (doubling, capped at the body size), so a header that claims a large
 * body costs nothing until the bytes arrive.  Failure modes: an unknown
 * handshake word, words = 0, a message over max_msg, out of memory.  All
 * are sticky: the connection is to be closed. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

#define BUF_MIN 256		 /* first allocation of a net_buf */
#define BODY_MIN 4096		 /* first allocation of a reassembled body */
#define BODY_KEEP (64u << 10)	 /* a larger body buffer is freed after use */

enum { DEC_HANDSHAKE, DEC_HEADER, DEC_BODY };

static uint64_t pad8(uint64_t n)
{
	return (n + 7) & ~(uint64_t)7;
}

/* ---- net_buf ---- */

void net_buf_init(struct net_buf *b, size_t max)
{
	memset(b, 0, sizeof *b);
	b->max = max;
}

void net_buf_close(struct net_buf *b)
{
	free(b->data);
	net_buf_init(b, b->max);
}

void net_buf_reset(struct net_buf *b)
{
	b->len = 0;
	b->mark = 0;
	b->status = 0;
}

void net_buf_truncate(struct net_buf *b, size_t len)
{
	assert(len <= b->len);
	b->len = len;
	if (b->mark > len)
		b->mark = len;
}

/* Room for @n more bytes, growing by doubling but never beyond b->max.
 * Returns 0, or the failure, which is also recorded in b->status. */
static int buf_grow(struct net_buf *b, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (b->status != 0)
		return b->status;
	if (b->len > b->max || n > b->max - b->len) {
		b->status = -EMSGSIZE;
		return b->status;
	}
	if (n <= b->cap - b->len)
		return 0;
	cap = b->cap > 0 ? b->cap : BUF_MIN;
	while (cap - b->len < n)
		cap = cap > b->max / 2 ? b->max : cap * 2;
	if (cap > b->max)
		cap = b->max;
	p = realloc(b->data, cap);
	if (p == NULL) {
		b->status = -ENOMEM;
		return b->status;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

/* Append @n bytes: copies of @src, or zeros if @src is NULL. */
static void buf_append(struct net_buf *b, const void *src, size_t n)
{
	if (n == 0 || buf_grow(b, n) != 0)
		return;
	if (src != NULL)
		memcpy(b->data + b->len, src, n);
	else
		memset(b->data + b->len, 0, n);
	b->len += n;
}

/* ---- putters ---- */

void net_put_u8(struct net_buf *b, uint8_t v)
{
	buf_append(b, &v, 1);
}

void net_put_u32(struct net_buf *b, uint32_t v)
{
	uint8_t w[4];

	qf_put_le32(w, v);
	buf_append(b, w, sizeof w);
}

void net_put_u64(struct net_buf *b, uint64_t v)
{
	uint8_t w[8];

	qf_put_le64(w, v);
	buf_append(b, w, sizeof w);
}

void net_put_i64(struct net_buf *b, int64_t v)
{
	net_put_u64(b, (uint64_t)v);
}

/* The IEEE-754 bit pattern, little-endian (§1.1). */
void net_put_double(struct net_buf *b, double v)
{
	uint64_t bits;

	memcpy(&bits, &v, sizeof bits);
	net_put_u64(b, bits);
}

void net_put_text_n(struct net_buf *b, const char *s, size_t n)
{
	const char *nul = s != NULL && n > 0 ? memchr(s, 0, n) : NULL;

	if (s == NULL)
		n = 0;
	if (nul != NULL)
		n = (size_t)(nul - s);
	buf_append(b, s, n);
	/* The NUL and the padding: 1..8 zero bytes. */
	buf_append(b, NULL, (size_t)(pad8((uint64_t)n + 1) - n));
}

void net_put_text(struct net_buf *b, const char *s)
{
	net_put_text_n(b, s, s != NULL ? strlen(s) : 0);
}

void net_put_blob(struct net_buf *b, const void *p, size_t n)
{
	net_put_u64(b, n);
	buf_append(b, p, n);
	buf_append(b, NULL, (size_t)(pad8(n) - n));
}

void net_put_raw(struct net_buf *b, const void *p, size_t n)
{
	buf_append(b, p, n);
}

void net_put_pad(struct net_buf *b)
{
	size_t used = b->len - b->mark;

	buf_append(b, NULL, (size_t)(pad8(used) - used));
}

bool net_value_type_valid(unsigned type)
{
	switch (type) {
	case NET_INTEGER:
	case NET_FLOAT:
	case NET_TEXT:
	case NET_BLOB:
	case NET_NULL:
	case NET_UNIXTIME:
	case NET_ISO8601:
	case NET_BOOLEAN:
		return true;
	default:
		return false;
	}
}

void net_put_value(struct net_buf *b, const struct net_value *v)
{
	switch (v->type) {
	case NET_INTEGER:
	case NET_UNIXTIME:
		net_put_i64(b, v->integer);
		break;
	case NET_FLOAT:
		net_put_double(b, v->real);
		break;
	case NET_TEXT:
	case NET_ISO8601:
		net_put_text_n(b, v->text.p, v->text.len);
		break;
	case NET_BLOB:
		net_put_blob(b, v->blob.p, v->blob.len);
		break;
	case NET_NULL:
		net_put_u64(b, 0); /* always one zero word (§6.2) */
		break;
	case NET_BOOLEAN:
		net_put_u64(b, v->word);
		break;
	default:
		if (b->status == 0)
			b->status = -EINVAL;
		break;
	}
}

/* ---- messages ---- */

size_t net_msg_begin(struct net_buf *b, uint8_t type, uint8_t schema)
{
	struct net_header h = {.words = 0, .type = type, .schema = schema};
	size_t start = b->len;

	if (buf_grow(b, NET_HEADER_SIZE) == 0) {
		net_header_encode(&h, b->data + b->len);
		b->len += NET_HEADER_SIZE;
	}
	b->mark = start;
	return start;
}

int net_msg_end(struct net_buf *b, size_t start)
{
	uint64_t body;
	int rv;

	assert(start <= b->len);
	net_put_pad(b);
	rv = b->status;
	if (rv != 0)
		goto err;
	body = b->len - start - NET_HEADER_SIZE;
	rv = -EINVAL; /* words = 0 is a protocol error (§1.3) */
	if (body == 0)
		goto err;
	rv = -EMSGSIZE;
	if (body / NET_WORD > UINT32_MAX)
		goto err;
	qf_put_le32(b->data + start, (uint32_t)(body / NET_WORD));
	b->mark = b->len;
	return 0;

err:
	b->len = start;
	b->mark = start;
	b->status = 0;
	return rv;
}

/* ---- getters ---- */

void net_cursor_init(struct net_cursor *c, const struct net_slice *s)
{
	c->p = s->p;
	c->left = s->len;
	c->off = 0;
}

static void advance(struct net_cursor *c, size_t n)
{
	c->p += n;
	c->left -= n;
	c->off += n;
}

int net_get_u8(struct net_cursor *c, uint8_t *v)
{
	if (c->left < 1)
		return QF_EMALFORMED;
	*v = c->p[0];
	advance(c, 1);
	return 0;
}

int net_get_u32(struct net_cursor *c, uint32_t *v)
{
	if (c->left < 4)
		return QF_EMALFORMED;
	*v = qf_get_le32(c->p);
	advance(c, 4);
	return 0;
}

int net_get_u64(struct net_cursor *c, uint64_t *v)
{
	if (c->left < 8)
		return QF_EMALFORMED;
	*v = qf_get_le64(c->p);
	advance(c, 8);
	return 0;
}

int net_get_i64(struct net_cursor *c, int64_t *v)
{
	uint64_t u;
	int rv = net_get_u64(c, &u);

	if (rv == 0)
		*v = (int64_t)u;
	return rv;
}

int net_get_double(struct net_cursor *c, double *v)
{
	uint64_t bits;
	int rv = net_get_u64(c, &bits);

	if (rv == 0)
		memcpy(v, &bits, sizeof *v);
	return rv;
}

int net_get_text(struct net_cursor *c, const char **s, size_t *len)
{
	const uint8_t *nul = c->left > 0 ? memchr(c->p, 0, c->left) : NULL;
	uint64_t n, size;

	if (nul == NULL)
		return QF_EMALFORMED;
	n = (uint64_t)(nul - c->p);
	size = pad8(n + 1);
	if (size > c->left)
		return QF_EMALFORMED; /* padding cut off */
	*s = (const char *)c->p;
	if (len != NULL)
		*len = (size_t)n;
	advance(c, (size_t)size);
	return 0;
}

int net_get_blob(struct net_cursor *c, const void **p, size_t *len)
{
	uint64_t n;

	if (c->left < 8)
		return QF_EMALFORMED;
	n = qf_get_le64(c->p);
	/* Compare before padding: pad8() of a huge n would wrap. */
	if (n > c->left - 8 || pad8(n) > c->left - 8)
		return QF_EMALFORMED;
	advance(c, 8);
	*p = c->p;
	*len = (size_t)n;
	advance(c, (size_t)pad8(n));
	return 0;
}

int net_get_pad(struct net_cursor *c)
{
	uint64_t n = pad8(c->off) - c->off;

	if (n > c->left)
		return QF_EMALFORMED;
	advance(c, (size_t)n);
	return 0;
}

int net_get_value(struct net_cursor *c, uint8_t type, struct net_value *v)
{
	int rv;

	v->type = type;
	switch (type) {
	case NET_INTEGER:
	case NET_UNIXTIME:
		rv = net_get_i64(c, &v->integer);
		break;
	case NET_FLOAT:
		rv = net_get_double(c, &v->real);
		break;
	case NET_TEXT:
	case NET_ISO8601:
		rv = net_get_text(c, &v->text.p, &v->text.len);
		break;
	case NET_BLOB:
		rv = net_get_blob(c, &v->blob.p, &v->blob.len);
		break;
	case NET_NULL:
	case NET_BOOLEAN:
		/* NULL's word is not checked, as in 1.11 (tuple.c). */
		rv = net_get_u64(c, &v->word);
		break;
	default:
		rv = QF_EMALFORMED;
		break;
	}
	return rv;
}

/* ---- handshake and header ---- */

int net_handshake_decode(const uint8_t word[8], uint64_t *version)
{
	uint64_t v = qf_get_le64(word);

	if (v != NET_PROTO_VERSION && v != NET_PROTO_LEGACY)
		return -EPROTONOSUPPORT;
	*version = v;
	return 0;
}

int net_encode_handshake(struct net_buf *b, uint64_t version)
{
	size_t start = b->len;

	net_put_u64(b, version);
	if (b->status != 0) {
		int rv = b->status;

		net_buf_truncate(b, start);
		b->status = 0;
		return rv;
	}
	b->mark = b->len;
	return 0;
}

void net_header_encode(const struct net_header *h, uint8_t out[8])
{
	qf_put_le32(out, h->words);
	out[4] = h->type;
	out[5] = h->schema;
	out[6] = (uint8_t)h->extra;
	out[7] = (uint8_t)(h->extra >> 8);
}

int net_header_decode(const uint8_t in[8], struct net_header *h)
{
	h->words = qf_get_le32(in);
	h->type = in[4];
	h->schema = in[5];
	h->extra = (uint16_t)(in[6] | in[7] << 8);
	return h->words == 0 ? QF_EMALFORMED : 0;
}

/* ---- incremental decoder ---- */

void net_decoder_init(struct net_decoder *d, uint64_t max_msg, bool handshake)
{
	memset(d, 0, sizeof *d);
	d->max_msg = max_msg;
	d->state = handshake ? DEC_HANDSHAKE : DEC_HEADER;
}

void net_decoder_close(struct net_decoder *d)
{
	free(d->body);
	d->body = NULL;
	d->body_len = 0;
	d->body_cap = 0;
}

static int dec_fail(struct net_decoder *d, int rv)
{
	d->error = rv;
	net_decoder_close(d);
	return rv;
}

/* Take up to 8 - word_len bytes into d->word; true once it is full. */
static bool fill_word(struct net_decoder *d, const uint8_t **p, size_t *left)
{
	size_t take = sizeof d->word - d->word_len;

	if (take > *left)
		take = *left;
	memcpy(d->word + d->word_len, *p, take);
	d->word_len += take;
	*p += take;
	*left -= take;
	return d->word_len == sizeof d->word;
}

/* Make room for @more body bytes: 4 KiB, or less than twice what has
 * arrived, and never more than the body's @size. */
static int body_grow(struct net_decoder *d, size_t size, size_t more)
{
	size_t need = d->body_len + more;
	size_t cap = d->body_cap > 0 ? d->body_cap : BODY_MIN;
	uint8_t *p;

	if (need <= d->body_cap)
		return 0;
	while (cap < need)
		cap *= 2;
	if (cap > size)
		cap = size;
	p = realloc(d->body, cap);
	if (p == NULL)
		return -ENOMEM;
	d->body = p;
	d->body_cap = cap;
	return 0;
}

/* A header is complete in d->word: decode it into d->h and check it
 * before anything is allocated for the body. */
static int header_done(struct net_decoder *d)
{
	uint64_t size;
	int rv;

	rv = net_header_decode(d->word, &d->h);
	d->word_len = 0;
	if (rv != 0)
		return rv;
	size = (uint64_t)d->h.words * NET_WORD; /* < 2^35: no wrap */
	if (size > d->max_msg || d->max_msg - size < NET_HEADER_SIZE)
		return -EMSGSIZE;
	if (size > SIZE_MAX)
		return -EMSGSIZE;
	d->state = DEC_BODY;
	d->body_len = 0;
	return 0;
}

int net_decoder_feed(struct net_decoder *d, const uint8_t *data, size_t n,
		     size_t *used, struct net_msg *msg)
{
	const uint8_t *p = data;
	size_t left = n, size, take;
	int rv;

	*used = 0;
	if (d->error != 0)
		return d->error;
	if (d->handed_out) {
		d->handed_out = false;
		d->body_len = 0;
		if (d->body_cap > BODY_KEEP)
			net_decoder_close(d);
	}
	for (;;) {
		switch (d->state) {
		case DEC_HANDSHAKE:
			if (left == 0 || !fill_word(d, &p, &left))
				goto more;
			d->word_len = 0;
			rv = net_handshake_decode(d->word, &d->version);
			if (rv != 0)
				return dec_fail(d, rv);
			d->state = DEC_HEADER;
			*used = (size_t)(p - data);
			return NET_FEED_HANDSHAKE;
		case DEC_HEADER:
			if (left == 0 || !fill_word(d, &p, &left))
				goto more;
			rv = header_done(d);
			if (rv != 0)
				return dec_fail(d, rv);
			break;
		case DEC_BODY:
			size = (size_t)d->h.words * NET_WORD;
			if (d->body_len == 0 && left >= size) {
				/* All in the caller's chunk: no copy. */
				msg->body.p = p;
				p += size;
				goto message;
			}
			if (left == 0)
				goto more; /* header ended the chunk */
			take = size - d->body_len;
			if (take > left)
				take = left;
			rv = body_grow(d, size, take);
			if (rv != 0)
				return dec_fail(d, rv);
			memcpy(d->body + d->body_len, p, take);
			d->body_len += take;
			p += take;
			left -= take;
			if (d->body_len < size)
				goto more;
			msg->body.p = d->body;
			d->handed_out = true;
			goto message;
		default:
			assert(0);
			return dec_fail(d, QF_EMALFORMED);
		}
	}

message:
	msg->h = d->h;
	msg->body.len = (size_t)d->h.words * NET_WORD;
	d->state = DEC_HEADER;
	*used = (size_t)(p - data);
	return NET_FEED_MESSAGE;

more:
	*used = n;
	return NET_FEED_MORE;
}
