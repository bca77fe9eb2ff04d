/* The server's side of the SQL worker process (link.h): spawning it,
 * the link's frames both ways, a worker that dies, and the followers'
 * transactions sent to its applier.  Loop thread only. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"



#define APPLY_FRAME_MAX ((size_t)1 << 30) /* well inside the u32 length */

static void resend_applying(struct net_server *s, struct applying *a);

/* Loop thread: one frame to the current worker.  0, or -errno when
 * there is no worker or no memory. */
int net__worker_send(struct net_server *s, struct net_link_hdr *h,
		       const void *payload)
{
	uint8_t *frame;

	if (s->worker == NULL || s->worker->lost)
		return -ESRCH;
	frame = net__link_frame(h, payload);
	if (frame == NULL)
		return -ENOMEM;
	net__stream_write(s, (uv_stream_t *)&s->worker->pipe, frame,
		     NET_LINK_HDR + (size_t)h->len, 0);
	return 0;
}

void net__send_ack(struct net_server *s, uint64_t serial, size_t n)
{
	struct net_link_hdr h = {.len = 8, .kind = NET_LINK_ACK,
				 .serial = serial};
	uint8_t payload[8];

	qf_put_le64(payload, n);
	(void)net__worker_send(s, &h, payload); /* no worker: nobody waits */
}


/* In frames of at most max_msg bytes, written back to back. */
static int send_apply(struct net_server *s, struct applying *a)
{
	size_t off = 0, n;
	int rv = 0;

	do {
		struct net_link_hdr h = {.kind = NET_LINK_APPLY,
					 .serial = a->index};

		size_t max = s->cfg.max_msg < APPLY_FRAME_MAX ? s->cfg.max_msg
							       : APPLY_FRAME_MAX;

		n = a->len - off < max ? a->len - off : max;
		h.len = (uint32_t)n;
		h.flags = off + n < a->len ? NET_LINK_MORE : 0;
		rv = net__worker_send(s, &h, a->entry + off);
		off += n;
	} while (rv == 0 && off < a->len);
	return rv;
}

/* An APPLY of an image file (link.h): the applier reads the pages. */
static void encode_image_file(const struct eng_txn *t, uint8_t *p)
{
	size_t nl = strlen(t->db), pl = strlen(t->file);

	qf_put_le32(p, NET_APPLY_IMAGE_FILE);
	qf_put_le32(p + 4, t->page_size);
	qf_put_le32(p + 8, t->db_pages);
	qf_put_le32(p + 12, (uint32_t)nl);
	qf_put_le32(p + 16, (uint32_t)pl);
	memcpy(p + 20, t->db, nl);
	memcpy(p + 20 + nl, t->file, pl);
}

void net_server_apply(void *server, const struct eng_txn *t, uint64_t index)
{
	struct net_server *s = server;
	struct applying *a = calloc(1, sizeof *a);
	uint32_t n_check = t->old_hashes != NULL ? t->n : 0, i;
	int rv = -ENOMEM;

	if (a != NULL) {
		a->index = index;
		a->db = strdup(t->db);
		a->len = t->file != NULL
				 ? 20 + strlen(t->db) + strlen(t->file)
				 : 4 + 8 * (size_t)n_check + eng_entry_size(t);
		a->entry = malloc(a->len);
	}
	if (a == NULL || a->entry == NULL || a->db == NULL) {
		if (a != NULL) {
			free(a->entry);
			free(a->db);
		}
		free(a);
		eng_apply_done(s->engine, t->db, index, rv, 0);
		return;
	}
	if (t->file != NULL) {
		encode_image_file(t, a->entry);
	} else {
		qf_put_le32(a->entry, n_check);
		for (i = 0; i < n_check; i++)
			qf_put_le64(a->entry + 4 + 8 * (size_t)i,
				    t->old_hashes[i]);
		eng_entry_encode(ENG_ENTRY_TXN, t, 0, 0,
				 a->entry + 4 + 8 * (size_t)n_check);
	}
	a->next = s->applying;
	s->applying = a;
	if (s->worker == NULL && !s->stopping)
		net__worker_respawn_soon(s); /* its HELLO sends what is applying */
	else if (s->worker != NULL && s->worker->hello)
		(void)send_apply(s, a);
}

/* A wal-index to rebuild (net_server_reindex), on its way to the loop. */
struct reindex {
	struct net_server *srv;
	char db[];
};

static void reindex_on_loop(void *arg)
{
	struct reindex *r = arg;
	struct net_server *s = r->srv;
	size_t n = strlen(r->db);
	struct net_link_hdr h = {.len = (uint32_t)(4 + n),
				 .kind = NET_LINK_APPLY, .serial = 0};
	uint8_t *p = malloc(4 + n);

	/* Without a worker ready the write is refused again, and asks
	 * again. */
	if (p != NULL && !s->stopping && s->worker != NULL &&
	    s->worker->hello) {
		qf_put_le32(p, NET_APPLY_REINDEX);
		memcpy(p + 4, r->db, n);
		(void)net__worker_send(s, &h, p);
	}
	free(p);
	free(r);
}

void net_server_reindex(void *server, const char *db)
{
	struct net_server *s = server;
	size_t n = strlen(db);
	struct reindex *r = malloc(sizeof *r + n + 1);

	if (r == NULL)
		return;
	r->srv = s;
	memcpy(r->db, db, n + 1);
	if (eng_call(s->engine, reindex_on_loop, r) != 0)
		free(r);
}

/* Take what was sent for @index (and @db, unless it is empty) out of the
 * list and report it done with @status. */
static bool complete_applying(struct net_server *s, uint64_t index,
			      const char *db, int status, uint64_t wal_frames)
{
	struct applying **pp, *a;

	for (pp = &s->applying; *pp != NULL; pp = &(*pp)->next) {
		a = *pp;
		if (a->index != index ||
		    (db[0] != '\0' && strcmp(a->db, db) != 0))
			continue;
		*pp = a->next;
		eng_apply_done(s->engine, a->db, index, status, wal_frames);
		free(a->entry);
		free(a->db);
		free(a);
		return true;
	}
	return false;
}

/* The worker reports an APPLY: status, then the database name.  It is
 * empty if the worker could not decode the APPLY: the index alone then
 * names it, and since an image of one database can share its index with
 * another's entry, every APPLY at that index fails (a failed one is
 * repaired by an image; a later report of a good one is only logged). */
static void applied(struct net_server *s, uint64_t index,
		    const uint8_t *payload, size_t len)
{
	char name[4096];
	uint64_t wal_frames;
	int status, n = 0;

	if (payload == NULL || len < 12 || len - 12 >= sizeof name)
		return;
	status = (int)qf_get_le32(payload);
	wal_frames = qf_get_le64(payload + 4);
	memcpy(name, payload + 12, len - 12);
	name[len - 12] = '\0';
	if (name[0] == '\0') {
		if (status == 0)
			status = QF_EMALFORMED; /* success needs a name */
		while (complete_applying(s, index, "", status, 0))
			n++;
	} else if (complete_applying(s, index, name, status, wal_frames)) {
		n = 1;
	}
	if (n == 0)
		QF_LOG(QF_WARN, "worker reported index=%llu db=%s, which it "
		       "was not sent (or no longer waits for)",
		       (unsigned long long)index, name);
}

static void worker_frame_cb(void *arg, const struct net_link_hdr *h,
			    uint8_t *payload)
{
	struct worker *w = arg;
	struct conn *c;

	if (h->kind == NET_LINK_APPLIED || h->kind == NET_LINK_HELLO) {
		if (h->kind == NET_LINK_APPLIED) {
			applied(w->srv, h->serial, payload, h->len);
		} else if (w == w->srv->worker && !w->hello) {
			/* Files the applier opens from now on bypass the
			 * mount's interception: only now may APPLY go. */
			if (w->srv->cfg.on_applier != NULL)
				w->srv->cfg.on_applier(w->srv->cfg.applier_arg,
						       (int)h->serial);
			w->hello = true;
			resend_applying(w->srv, w->srv->applying);
		}
		free(payload);
		return;
	}
	c = net__find_conn(w->srv, h->serial);

	if (c == NULL || c->closing) {
		free(payload);
		return;
	}
	if (h->kind == NET_LINK_OUT && payload != NULL) {
		net__conn_write(c, payload, h->len, h->serial);
		return;
	}
	free(payload);
	if (h->kind == NET_LINK_DROP || h->kind == NET_LINK_OUT)
		net__conn_close(c); /* the session cannot answer */
}

static void worker_handle_closed_cb(uv_handle_t *h)
{
	struct worker *w = h->data;
	struct net_server *s = w->srv;

	if (--w->handles == 0) {
		net__link_reader_close(&w->reader);
		free(w);
	}
	net__handle_closed(s);
}

/* Loop thread: @w's stream ended or its process exited.  Its sessions
 * are gone, so are their connections: the clients reconnect. */
static void respawn_cb(uv_timer_t *t)
{
	struct net_server *s = t->data;

	if (s->worker == NULL && !s->stopping &&
	    (s->applying != NULL || s->n_parked > 0) &&
	    net__worker_spawn(s) != 0)
		(void)uv_timer_start(&s->kill_timer, respawn_cb, 1000, 0);
}

bool net__worker_may_spawn(struct net_server *s)
{
	return s->spawned_ms == 0 ||
	       uv_now(eng_loop(s->engine)) - s->spawned_ms >= 1000;
}

/* A new worker at once, unless the last one started less than a second
 * ago: a worker that dies on every transaction must not spin. */
void net__worker_respawn_soon(struct net_server *s)
{
	uint64_t wait;

	if (uv_is_active((uv_handle_t *)&s->kill_timer))
		return; /* a respawn is due already */
	if (net__worker_may_spawn(s) && net__worker_spawn(s) == 0)
		return;
	/* When the second is up; after a failed spawn, a second later. */
	wait = net__worker_may_spawn(s)
		       ? 1000
		       : 1000 - (uv_now(eng_loop(s->engine)) - s->spawned_ms);
	(void)uv_timer_start(&s->kill_timer, respawn_cb, wait, 0);
}

static void worker_lost(struct worker *w)
{
	struct net_server *s = w->srv;
	struct conn *c, *next;

	if (w->lost)
		return;
	w->lost = true;
	if (!uv_is_closing((uv_handle_t *)&w->pipe))
		uv_close((uv_handle_t *)&w->pipe, worker_handle_closed_cb);
	if (s->worker != w)
		return;
	s->worker = NULL;
	if (!s->stopping)
		QF_LOG(QF_ERROR, "the SQL worker process ended: closing its "
		       "%s", "clients' connections (a new one starts on demand)");
	for (c = s->conns; c != NULL; c = next) {
		next = c->next;
		if (c->has_session)
			net__conn_close(c);
	}
	if (s->applying != NULL && !s->stopping)
		net__worker_respawn_soon(s); /* replicated transactions wait */
}

static void worker_exit_cb(uv_process_t *proc, int64_t status, int sig)
{
	struct worker *w = proc->data;

	if (sig != 0 || status != 0)
		QF_LOG(QF_ERROR, "SQL worker process %d: %s %d",
		       (int)proc->pid, sig != 0 ? "killed by signal" : "exit",
		       sig != 0 ? sig : (int)status);
	worker_lost(w);
	uv_close((uv_handle_t *)proc, worker_handle_closed_cb);
	if (w->srv->stopping && w->srv->worker == NULL &&
	    uv_is_active((uv_handle_t *)&w->srv->kill_timer))
		uv_timer_stop(&w->srv->kill_timer);
}

static void worker_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static __thread char chunk[1 << 16]; /* the loop's; copied at once */

	(void)h;
	(void)suggested;
	*buf = uv_buf_init(chunk, sizeof chunk);
}

static void worker_read_cb(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf)
{
	struct worker *w = stream->data;
	int rv;

	if (n == 0)
		return;
	if (n < 0) {
		if (n != UV_EOF)
			QF_LOG(QF_ERROR, "SQL worker link: %s",
			       uv_strerror((int)n));
		worker_lost(w);
		return;
	}
	rv = net__link_reader_feed(&w->reader, (const uint8_t *)buf->base,
				   (size_t)n, worker_frame_cb, w);
	if (rv != 0) {
		QF_LOG(QF_ERROR, "SQL worker link: %s", qf_strerror(rv));
		uv_process_kill(&w->proc, SIGKILL);
		worker_lost(w);
	}
}

/* Oldest first, as they were sent. */
static void resend_applying(struct net_server *s, struct applying *a)
{
	if (a == NULL)
		return;
	resend_applying(s, a->next);
	(void)send_apply(s, a);
}

/* Loop thread: start `quorafs sql-worker` with the link on its fd 3. */
int net__worker_spawn(struct net_server *s)
{
	uv_loop_t *loop = eng_loop(s->engine);
	struct worker *w = calloc(1, sizeof *w);
	char exe[4096], busy[32], max_msg[32], max_stmts[32];
	size_t exe_len = sizeof exe;
	char *args[14];
	uv_stdio_container_t stdio[4];
	uv_process_options_t o;
	int rv;

	if (w == NULL)
		return -ENOMEM;
	w->srv = s;
	net__link_reader_init(&w->reader, s->cfg.max_msg);
	rv = uv_exepath(exe, &exe_len);
	if (rv == 0)
		rv = uv_pipe_init(loop, &w->pipe, 0);
	if (rv != 0) {
		free(w);
		return rv;
	}
	w->pipe.data = w;
	w->proc.data = w;
	w->handles = 1;
	s->handles_open++;
	snprintf(busy, sizeof busy, "%u", s->cfg.busy_timeout_ms);
	snprintf(max_msg, sizeof max_msg, "%zu", s->cfg.max_msg);
	snprintf(max_stmts, sizeof max_stmts, "%u", s->cfg.max_stmts);
	args[0] = exe;
	args[1] = (char *)NET_WORKER_COMMAND;
	args[2] = (char *)"--mount";
	args[3] = s->mount;
	args[4] = (char *)"--busy-timeout";
	args[5] = busy;
	args[6] = (char *)"--max-msg";
	args[7] = max_msg;
	args[8] = (char *)"--log-level";
	args[9] = (char *)qf_log_level_name(qf_log_level());
	args[10] = (char *)"--max-statements";
	args[11] = max_stmts;
	args[12] = NULL;
	memset(stdio, 0, sizeof stdio);
	stdio[0].flags = UV_IGNORE;
	stdio[1].flags = UV_INHERIT_FD;
	stdio[1].data.fd = 1;
	stdio[2].flags = UV_INHERIT_FD;
	stdio[2].data.fd = 2;
	stdio[NET_WORKER_FD].flags =
		UV_CREATE_PIPE | UV_READABLE_PIPE | UV_WRITABLE_PIPE;
	stdio[NET_WORKER_FD].data.stream = (uv_stream_t *)&w->pipe;
	memset(&o, 0, sizeof o);
	o.exit_cb = worker_exit_cb;
	o.file = exe;
	o.args = args;
	o.stdio_count = 4;
	o.stdio = stdio;
	rv = uv_spawn(loop, &w->proc, &o);
	if (rv != 0) {
		QF_LOG(QF_ERROR, "starting the SQL worker %s: %s", exe,
		       uv_strerror(rv));
		w->lost = true;
		uv_close((uv_handle_t *)&w->pipe, worker_handle_closed_cb);
		return rv;
	}
	w->handles++;
	s->handles_open++;
	rv = uv_read_start((uv_stream_t *)&w->pipe, worker_alloc_cb,
			   worker_read_cb);
	if (rv != 0) {
		uv_process_kill(&w->proc, SIGKILL);
		w->lost = true;
		uv_close((uv_handle_t *)&w->pipe, worker_handle_closed_cb);
		return rv;
	}
	QF_LOG(QF_DEBUG, "SQL worker process %d started", (int)w->proc.pid);
	s->spawned_ms = uv_now(loop);
	s->worker = w;
	net__resume_parked(s);
	return 0;
}

