/* Frames of the daemon <-> SQL worker link (link.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/lib/lib.h"
#include "link.h"

void net__link_hdr_encode(const struct net_link_hdr *h,
			  uint8_t out[NET_LINK_HDR])
{
	qf_put_le32(out, h->len);
	out[4] = h->kind;
	out[5] = h->type;
	out[6] = h->schema;
	out[7] = h->flags;
	qf_put_le64(out + 8, h->serial);
}

int net__link_hdr_decode(const uint8_t in[NET_LINK_HDR], size_t max_len,
			 struct net_link_hdr *h)
{
	h->len = qf_get_le32(in);
	h->kind = in[4];
	h->type = in[5];
	h->schema = in[6];
	h->flags = in[7];
	h->serial = qf_get_le64(in + 8);
	if (h->kind < NET_LINK_SUBMIT || h->kind > NET_LINK_KIND_MAX ||
	    h->len > max_len)
		return QF_EMALFORMED;
	return 0;
}

uint8_t *net__link_frame(const struct net_link_hdr *h, const void *payload)
{
	uint8_t *f = malloc(NET_LINK_HDR + (size_t)h->len);

	if (f == NULL)
		return NULL;
	net__link_hdr_encode(h, f);
	if (h->len > 0)
		memcpy(f + NET_LINK_HDR, payload, h->len);
	return f;
}

void net__link_reader_init(struct net_link_reader *r, size_t max_len)
{
	memset(r, 0, sizeof *r);
	r->max_len = max_len;
}

void net__link_reader_close(struct net_link_reader *r)
{
	free(r->payload);
	r->payload = NULL;
}

/* The header is complete: start its payload, or emit a bare frame. */
static int start_payload(struct net_link_reader *r, net_link_frame_cb cb,
			 void *arg)
{
	int rv = net__link_hdr_decode(r->hdr, r->max_len, &r->h);

	if (rv != 0)
		return rv;
	r->got = 0;
	if (r->h.len == 0) {
		cb(arg, &r->h, NULL);
		return 0;
	}
	r->payload = malloc(r->h.len);
	if (r->payload == NULL)
		return -ENOMEM;
	r->in_payload = true;
	return 0;
}

int net__link_reader_feed(struct net_link_reader *r, const uint8_t *bytes,
			  size_t n, net_link_frame_cb cb, void *arg)
{
	size_t take;
	uint8_t *p;
	int rv;

	while (n > 0) {
		if (!r->in_payload) {
			take = NET_LINK_HDR - r->got;
			take = take < n ? take : n;
			memcpy(r->hdr + r->got, bytes, take);
			r->got += take;
			if (r->got == NET_LINK_HDR) {
				rv = start_payload(r, cb, arg);
				if (rv != 0)
					return rv;
			}
		} else {
			take = r->h.len - r->got;
			take = take < n ? take : n;
			memcpy(r->payload + r->got, bytes, take);
			r->got += take;
			if (r->got == r->h.len) {
				p = r->payload;
				r->payload = NULL;
				r->in_payload = false;
				r->got = 0;
				cb(arg, &r->h, p);
			}
		}
		bytes += take;
		n -= take;
	}
	return 0;
}
