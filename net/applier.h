/* The SQL worker's applier thread (applier.c).  Private to net/. */
#ifndef NET_APPLIER_H
#define NET_APPLIER_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/engine.h"
#include "link.h"

/* Send one frame to the daemon (HELLO, APPLIED).  Any thread. */
typedef int (*net_applier_send_fn)(void *arg, uint8_t kind, uint64_t serial,
				   const void *payload, size_t len);

struct net_applier;

/* Start the thread; it announces itself with HELLO.  0 or -ENOMEM. */
int net__applier_start(struct net_applier **a, const char *mount,
		       net_applier_send_fn send, void *arg);
/* Queue the log entry @entry (@len bytes, taken) at raft @index; APPLIED
 * follows once it is visible through the mount, or failed. */
void net__applier_submit(struct net_applier *a, uint64_t index,
			 uint8_t *entry, size_t len);
/* Drop what is queued, finish the current one, close and free. */
void net__applier_stop(struct net_applier *a);

#endif /* NET_APPLIER_H */
