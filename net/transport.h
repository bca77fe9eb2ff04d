/* libraft transport over the node's single port (wire-protocol.md §10).
 * Private to net/.
 *
 * Dialing: a non-blocking uv_tcp_connect, then the version word and a
 * CONNECT request, then the stream belongs to raft.  Accepting: the server
 * (server.c) reads a connection's first message; on CONNECT it hands the
 * stream to net__transport_accept().  Loop thread only. */
#ifndef QF_NET_TRANSPORT_H
#define QF_NET_TRANSPORT_H

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

/* Hand an accepted raft stream (allocated with raft_malloc, reading
 * stopped) to raft.  Closes it if raft is not listening. */
void net__transport_accept(struct raft_uv_transport *t, uint64_t id,
			   const char *address, uv_tcp_t *tcp);

/* "HOST:PORT" or "[V6]:PORT" (numeric) into @sa.  0 or -EINVAL / a uv
 * error. */
int net__parse_address(const char *address, struct sockaddr_storage *sa);

#endif /* QF_NET_TRANSPORT_H */
