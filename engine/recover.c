/* Quorum-loss recovery: force a new raft configuration into a stopped
 * node's log (raft_recover).  See engine.h. */
#include <errno.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core.h"

/* raft_init wants a state machine; recovery never applies anything. */
static int no_apply(struct raft_fsm *fsm, const struct raft_buffer *buf,
		    void **result)
{
	(void)fsm;
	(void)buf;
	*result = NULL;
	return RAFT_IOERR;
}

static int no_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
		       unsigned *n)
{
	(void)fsm;
	(void)bufs;
	(void)n;
	return RAFT_IOERR;
}

static int no_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	(void)fsm;
	(void)buf;
	return RAFT_IOERR;
}

struct closing {
	struct raft_io *io;
	struct raft_uv_transport *transport;
};

/* As engine.c does: the io and transport close once raft has. */
static void closed_cb(struct raft *r)
{
	struct closing *c = r->data;

	raft_uv_close(c->io);
	raft_uv_tcp_close(c->transport);
}

int eng_recover(const char *data_dir, const struct eng_member *m, unsigned n)
{
	struct raft_uv_transport transport = {0};
	struct raft_configuration conf;
	struct raft_fsm fsm = {0};
	struct raft_io io = {0};
	struct raft raft = {0};
	char raft_dir[4096], *address = NULL;
	struct closing closing = {&io, &transport};
	uv_loop_t loop;
	uint64_t id = 0;
	unsigned i;
	int rv;

	rv = eng__check_identity(data_dir, &id, &address); /* must exist */
	if (rv != 0)
		return rv;
	snprintf(raft_dir, sizeof raft_dir, "%s/raft", data_dir);
	if (uv_loop_init(&loop) != 0)
		return -ENOMEM;
	raft_configuration_init(&conf);
	for (i = 0, rv = 0; i < n && rv == 0; i++)
		rv = raft_configuration_add(&conf, m[i].id, m[i].address,
					    m[i].role == ENG_VOTER ? RAFT_VOTER
					    : m[i].role == ENG_STANDBY ? RAFT_STANDBY
								      : RAFT_SPARE);
	if (rv == 0)
		rv = raft_uv_tcp_init(&transport, &loop);
	if (rv == 0)
		rv = raft_uv_init(&io, &loop, raft_dir, &transport);
	if (rv == 0) {
		io.version = 2; /* libraft 0.15: as engine.c */
		fsm.version = 1;
		fsm.apply = no_apply;
		fsm.snapshot = no_snapshot;
		fsm.restore = no_restore;
		rv = raft_init(&raft, &io, &fsm, id, address);
		if (rv == 0) {
			raft.data = &closing;
			rv = raft_recover(&raft, &conf);
			if (rv != 0)
				QF_LOG(QF_ERROR, "raft_recover: %s",
				       raft_errmsg(&raft));
			raft_close(&raft, closed_cb);
		} else {
			raft_uv_close(&io);
			raft_uv_tcp_close(&transport);
		}
	} else if (transport.impl != NULL) {
		raft_uv_tcp_close(&transport);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	raft_configuration_close(&conf);
	free(address);
	return rv == 0 ? 0 : -EIO;
}
