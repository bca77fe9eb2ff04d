/* Forwarding a client connection to the leader (forward.c).  Private to
 * net/.  Loop thread only. */
#ifndef QF_NET_FORWARD_H
#define QF_NET_FORWARD_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Hand @client (a raft_malloc'd stream) to a forwarder: dial @leader
 * ("HOST:PORT"), send @prefix (@len malloc'd bytes: the version word and
 * the requests read so far), then pipe bytes both ways until either side
 * closes; the forwarder then closes and frees @client.  0 once both are
 * taken (a failed dial later just closes @client), or an error before
 * anything was taken. */
int net__forward(uv_loop_t *loop, uv_tcp_t *client, const char *leader,
		 uint8_t *prefix, size_t len);

#endif /* QF_NET_FORWARD_H */
