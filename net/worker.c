/* The SQL worker process: the daemon's SQL sessions, in an address
 * space of their own (link.h says why).
 *
 * The main thread reads frames from the daemon and routes them to
 * sessions by connection serial; each session's thread sends its
 * responses back as OUT frames (whole frames under @wmu, so they never
 * interleave) and then waits while more than OUT_LIMIT of its output is
 * unacknowledged: the daemon ACKs what it wrote to the client, so a
 * streamed result never piles up in memory.  A CLOSE frees that
 * session on a thread of its own (it may be inside SQLite, waiting on a
 * commit); the end of the stream frees them all and ends the process. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "applier.h"
#include "codec.h"
#include "link.h"
#include "net.h"
#include "session.h"

#define OUT_LIMIT (256u << 10) /* unacked bytes before a session waits */

struct wsess {
	struct worker *w;
	uint64_t serial;
	struct net_session *session;
	size_t unacked; /* under w->mu */
	bool gone;	/* under w->mu: no more output is wanted */
	pthread_cond_t cond;
	struct wsess *next;
};

struct worker {
	const struct net_worker_config *c;
	pthread_mutex_t wmu; /* writes to the link */
	bool broken;	     /* under wmu: a write failed */
	pthread_mutex_t mu;  /* the session list, unacked, gone, frees */
	pthread_cond_t frees_cond;
	unsigned frees;
	struct wsess *sessions;
	atomic_int leader;
	struct net_applier *applier;
	uint8_t *apply_buf; /* an APPLY split over frames, so far */
	size_t apply_len;
	bool apply_discard; /* its pieces are dropped until the last */
};

/* Any thread: write one frame whole.  0 or -errno. */
static int send_frame(struct worker *w, uint8_t kind, uint64_t serial,
		      const void *payload, size_t len)
{
	struct net_link_hdr h = {.len = (uint32_t)len, .kind = kind,
				 .serial = serial};
	uint8_t hdr[NET_LINK_HDR];
	int rv = 0;

	net__link_hdr_encode(&h, hdr);
	pthread_mutex_lock(&w->wmu);
	if (w->broken ||
	    qf_write_full(w->c->fd, hdr, sizeof hdr) != 0 ||
	    (len > 0 && qf_write_full(w->c->fd, payload, len) != 0)) {
		w->broken = true;
		rv = -EPIPE;
	}
	pthread_mutex_unlock(&w->wmu);
	return rv;
}

static int applier_send(void *arg, uint8_t kind, uint64_t serial,
			const void *payload, size_t len)
{
	return send_frame(arg, kind, serial, payload, len);
}

static int session_is_leader(void *arg)
{
	struct wsess *s = arg;

	return atomic_load(&s->w->leader);
}

/* Session thread: one response message for the client. */
static int session_out(void *arg, uint8_t *bytes, size_t len)
{
	struct wsess *s = arg;
	struct worker *w = s->w;
	bool gone;
	int rv;

	if (bytes == NULL) {
		(void)send_frame(w, NET_LINK_DROP, s->serial, NULL, 0);
		return -1; /* the daemon closes the connection */
	}
	pthread_mutex_lock(&w->mu);
	gone = s->gone;
	if (!gone)
		s->unacked += len;
	pthread_mutex_unlock(&w->mu);
	rv = gone ? -1 : send_frame(w, NET_LINK_OUT, s->serial, bytes, len);
	free(bytes);
	if (rv != 0)
		return -1;
	pthread_mutex_lock(&w->mu);
	while (s->unacked > OUT_LIMIT && !s->gone)
		pthread_cond_wait(&s->cond, &w->mu);
	gone = s->gone;
	pthread_mutex_unlock(&w->mu);
	return gone ? -1 : 0;
}

/* Main thread, under w->mu. */
static struct wsess *find_session(struct worker *w, uint64_t serial)
{
	struct wsess *s;

	for (s = w->sessions; s != NULL; s = s->next)
		if (s->serial == serial)
			return s;
	return NULL;
}

static struct wsess *new_session(struct worker *w, uint64_t serial)
{
	struct net_session_config sc;
	struct wsess *s = calloc(1, sizeof *s);

	if (s == NULL)
		return NULL;
	s->w = w;
	s->serial = serial;
	pthread_cond_init(&s->cond, NULL);
	memset(&sc, 0, sizeof sc);
	sc.mount = w->c->mount;
	sc.busy_timeout_ms = w->c->busy_timeout_ms;
	sc.max_msg = w->c->max_msg;
	sc.max_stmts = w->c->max_stmts;
	sc.is_leader = session_is_leader;
	sc.out = session_out;
	sc.arg = s;
	if (net_session_new(&s->session, &sc) != 0) {
		pthread_cond_destroy(&s->cond);
		free(s);
		return NULL;
	}
	pthread_mutex_lock(&w->mu);
	s->next = w->sessions;
	w->sessions = s;
	pthread_mutex_unlock(&w->mu);
	return s;
}

static void *free_session_main(void *arg)
{
	struct wsess *s = arg;
	struct worker *w = s->w;

	net_session_free(s->session);
	pthread_cond_destroy(&s->cond);
	free(s);
	pthread_mutex_lock(&w->mu);
	w->frees--;
	pthread_cond_broadcast(&w->frees_cond);
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Main thread: unlink @serial's session and free it aside. */
static void close_session(struct worker *w, uint64_t serial)
{
	struct wsess **pp, *s = NULL;
	pthread_attr_t attr;
	pthread_t th;

	pthread_mutex_lock(&w->mu);
	for (pp = &w->sessions; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->serial == serial) {
			s = *pp;
			*pp = s->next;
			break;
		}
	if (s != NULL) {
		s->gone = true;
		pthread_cond_broadcast(&s->cond);
		w->frees++;
	}
	pthread_mutex_unlock(&w->mu);
	if (s == NULL)
		return;
	net_session_interrupt(s->session);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, free_session_main, s) != 0)
		free_session_main(s); /* last resort: wait here */
	pthread_attr_destroy(&attr);
}

static void submit(struct worker *w, const struct net_link_hdr *h,
		   const uint8_t *body)
{
	struct wsess *s;
	struct net_buf b;

	atomic_store(&w->leader, (h->flags & NET_LINK_LEADER) ? 1 : 0);
	pthread_mutex_lock(&w->mu);
	s = find_session(w, h->serial);
	pthread_mutex_unlock(&w->mu);
	if (s == NULL)
		s = new_session(w, h->serial);
	if (s != NULL &&
	    net_session_submit(s->session, h->type, h->schema, body,
			       h->len) == 0)
		return;
	/* The client waits for an answer: give it a FAILURE. */
	net_buf_init(&b, 1 << 16);
	if (net_encode_failure(&b, 10, s == NULL ? "cannot start a session"
						 : "cannot queue the request") == 0)
		(void)send_frame(w, NET_LINK_OUT, h->serial, b.data, b.len);
	else
		(void)send_frame(w, NET_LINK_DROP, h->serial, NULL, 0);
	net_buf_close(&b);
}

static void ack(struct worker *w, uint64_t serial, const uint8_t *payload,
		size_t len)
{
	struct wsess *s;
	uint64_t n;

	if (len != 8)
		return;
	n = qf_get_le64(payload);
	pthread_mutex_lock(&w->mu);
	s = find_session(w, serial);
	if (s != NULL) {
		s->unacked = n > s->unacked ? 0 : s->unacked - n;
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&w->mu);
}

/* One APPLY frame: the whole transaction, or a piece of a larger one
 * (NET_LINK_MORE) gathered until its last.  @*payload may be taken. */
static void apply_frame(struct worker *w, const struct net_link_hdr *h,
			uint8_t **payload)
{
	uint8_t *p;

	if (w->apply_discard) { /* answered already, when memory ran out */
		w->apply_discard = (h->flags & NET_LINK_MORE) != 0;
		return;
	}
	if (w->apply_len == 0 && !(h->flags & NET_LINK_MORE)) {
		if (*payload != NULL)
			net__applier_submit(w->applier, h->serial, *payload,
					    h->len);
		*payload = NULL;
		return;
	}
	p = realloc(w->apply_buf, w->apply_len + h->len);
	if (p == NULL) {
		/* The transaction is lost here: answer it by its index
		 * alone, and the daemon repairs the database. */
		uint8_t r[12] = {0};

		QF_LOG(QF_ERROR, "applier index=%llu: out of memory for a "
		       "%zu-byte transaction", (unsigned long long)h->serial,
		       w->apply_len + h->len);
		qf_put_le32(r, (uint32_t)-ENOMEM);
		(void)send_frame(w, NET_LINK_APPLIED, h->serial, r, sizeof r);
		free(w->apply_buf);
		w->apply_buf = NULL;
		w->apply_len = 0;
		w->apply_discard = (h->flags & NET_LINK_MORE) != 0;
		return;
	}
	if (h->len > 0)
		memcpy(p + w->apply_len, *payload, h->len);
	w->apply_buf = p;
	w->apply_len += h->len;
	if (h->flags & NET_LINK_MORE)
		return;
	net__applier_submit(w->applier, h->serial, w->apply_buf,
			    w->apply_len);
	w->apply_buf = NULL;
	w->apply_len = 0;
}

/* @*payload may be taken (set to NULL). */
static void handle_frame(struct worker *w, const struct net_link_hdr *h,
			 uint8_t **payload)
{
	struct wsess *s;

	switch (h->kind) {
	case NET_LINK_APPLY:
		apply_frame(w, h, payload);
		break;
	case NET_LINK_SUBMIT:
		submit(w, h, *payload);
		break;
	case NET_LINK_INTERRUPT:
		pthread_mutex_lock(&w->mu);
		s = find_session(w, h->serial);
		if (s != NULL)
			net_session_interrupt(s->session);
		pthread_mutex_unlock(&w->mu);
		break;
	case NET_LINK_CLOSE:
		close_session(w, h->serial);
		break;
	case NET_LINK_ACK:
		ack(w, h->serial, *payload, h->len);
		break;
	default:
		QF_LOG(QF_WARN, "sql worker: unexpected frame kind %u",
		       (unsigned)h->kind);
		break;
	}
}

/* Read one frame into @h and *@payload (malloc'd, or NULL).  0, 1 at the
 * end of the stream, or -errno / QF_EMALFORMED. */
static int read_frame(struct worker *w, struct net_link_hdr *h,
		      uint8_t **payload)
{
	uint8_t hdr[NET_LINK_HDR];
	int rv;

	*payload = NULL;
	rv = qf_read_full(w->c->fd, hdr, sizeof hdr);
	if (rv != 0)
		return rv == -ENODATA ? 1 : rv;
	rv = net__link_hdr_decode(hdr, w->c->max_msg, h);
	if (rv != 0 || h->len == 0)
		return rv;
	*payload = malloc(h->len);
	if (*payload == NULL)
		return -ENOMEM;
	rv = qf_read_full(w->c->fd, *payload, h->len);
	if (rv != 0) {
		free(*payload);
		*payload = NULL;
		return rv == -ENODATA ? -EPIPE : rv;
	}
	return 0;
}

/* The daemon is gone or done: close every session, wait for all. */
static void close_all(struct worker *w)
{
	while (true) {
		pthread_mutex_lock(&w->mu);
		if (w->sessions == NULL) {
			while (w->frees > 0)
				pthread_cond_wait(&w->frees_cond, &w->mu);
			pthread_mutex_unlock(&w->mu);
			return;
		}
		uint64_t serial = w->sessions->serial;
		pthread_mutex_unlock(&w->mu);
		close_session(w, serial);
	}
}

/* Die with the daemon, and leave stop signals to it: a Ctrl-C reaches
 * the whole process group, but the daemon decides when we end. */
static int detach_from_signals(void)
{
	pid_t parent = getppid();

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
		return -errno;
	if (getppid() != parent || parent == 1)
		return -ESRCH; /* the daemon died before prctl */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

int net_worker_run(const struct net_worker_config *c)
{
	struct worker w;
	struct net_link_hdr h;
	uint8_t *payload;
	int flags, rv;

	rv = detach_from_signals();
	if (rv != 0)
		return 1;
	flags = fcntl(c->fd, F_GETFL);
	if (flags < 0 || fcntl(c->fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
		QF_LOG(QF_ERROR, "sql worker: link fd %d: %s", c->fd,
		       strerror(errno));
		return 1;
	}
	memset(&w, 0, sizeof w);
	w.c = c;
	pthread_mutex_init(&w.wmu, NULL);
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.frees_cond, NULL);
	atomic_init(&w.leader, 0);
	if (net__applier_start(&w.applier, c->mount, applier_send, &w) != 0) {
		QF_LOG(QF_ERROR, "sql worker: cannot start the applier");
		return 1;
	}
	while ((rv = read_frame(&w, &h, &payload)) == 0) {
		handle_frame(&w, &h, &payload);
		free(payload);
	}
	if (rv < 0)
		QF_LOG(QF_ERROR, "sql worker: link: %s", qf_strerror(rv));
	net__applier_stop(w.applier);
	free(w.apply_buf); /* an APPLY cut short by the daemon's end */
	close_all(&w);
	pthread_cond_destroy(&w.frees_cond);
	pthread_mutex_destroy(&w.mu);
	pthread_mutex_destroy(&w.wmu);
	return rv < 0 ? 1 : 0;
}
