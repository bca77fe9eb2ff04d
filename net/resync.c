/* Resynchronising a database whose files diverged, or are behind a
 * snapshot (engine.h): the leader serves quorafs's IMAGE request, and a
 * follower fetches one with the client library (in the threadpool) and
 * hands it to eng_resync.  A fetch that fails is not retried here: the
 * engine asks again every few seconds while the database stays diverged.
 *
 * Neither holds an image in memory.  The leader writes its pages at one
 * state to a scratch file in the threadpool, then sends them from it in
 * IMAGE messages of about PART_BYTES, the next part once the connection's
 * write queue is short; the follower writes the parts to its own scratch
 * file as they arrive, and the applier installs from that file.  Loop
 * thread, except the *_work functions. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "server.h"

/* Largest IMAGE message accepted: a part and its header. */
#define IMAGE_MAX_MSG ((size_t)4 << 20)
/* Pages of an IMAGE message: about this many bytes (one page at least). */
#define PART_BYTES ((size_t)1 << 20)
/* More parts wait while the connection has this much unsent. */
#define QUEUE_BYTES ((size_t)4 << 20)
/* A follower that takes none of the queued bytes for this long has
 * stalled: its connection is closed, and the leader's image slot is free
 * again. */
#define SEND_STALL_MS 10000
/* A follower's fetch: connecting; the first part (the leader copies its
 * pages first: a large database takes a while); each part after it. */
#define FETCH_CONNECT_MS 5000
#define FETCH_FIRST_MS 600000
#define FETCH_PART_MS 30000
/* Reads that never caught one state (writers too fast) are described
 * and read again this many times before the request fails. */
#define IMAGE_TRIES 3
/* Images a leader sends at once, and fetches a follower runs at once. */
#define IMAGES_AT_ONCE 1

/* ---- the leader: IMAGE ---- */

struct image_job {
	uv_work_t req;
	uv_timer_t timer; /* paces the parts */
	struct net_server *srv;
	uint64_t serial; /* of the connection: it may close meanwhile */
	char *db;
	char *path; /* the scratch file */
	int fd;
	struct eng_image im;
	uint32_t next; /* the next page to send */
	uint64_t moved_at; /* uv_now when parts were last queued or sent */
	size_t queued;	   /* the connection's unsent bytes then */
	int tries;
	int rv;
};

static void image_work(uv_work_t *req)
{
	struct image_job *j = req->data;

	j->rv = ftruncate(j->fd, 0) == 0
			? eng_image_write(j->srv->engine, j->db, &j->im, j->fd)
			: -errno;
}

static void image_done(uv_work_t *req, int status);

/* Describe @j's database now and write it to the scratch file in the
 * threadpool. */
static int image_start(struct image_job *j)
{
	int rv = eng_image_describe(j->srv->engine, j->db, &j->im);

	if (rv != 0)
		return rv;
	j->req.data = j;
	return uv_queue_work(eng_loop(j->srv->engine), &j->req, image_work,
			     image_done) == 0 ? 0 : -ENOMEM;
}

static void image_fail(struct conn *c, const char *db, int rv)
{
	char msg[512];

	if (rv == QF_ENOTLEADER) {
		net__reply_failure(c, 10250, "not leader");
		return;
	}
	snprintf(msg, sizeof msg, "image of %s: %s", db,
		 rv == -ENOENT ? "no such database" : qf_strerror(rv));
	net__reply_failure(c, 1, msg);
}

static void image_closed_cb(uv_handle_t *h)
{
	struct image_job *j = h->data;
	struct net_server *s = j->srv;

	if (j->fd >= 0)
		close(j->fd);
	if (j->path != NULL)
		(void)unlink(j->path);
	free(j->path);
	free(j->db);
	free(j);
	s->images--;
	net__handle_closed(s);
}

/* The job is over (answered, failed or abandoned). */
static void image_end(struct image_job *j)
{
	uv_close((uv_handle_t *)&j->timer, image_closed_cb);
}

/* One IMAGE message: the pages from j->next, read from the scratch file. */
static int send_part(struct image_job *j, struct conn *c)
{
	struct net_image ni = {.seq = j->im.seq, .cksum = j->im.cksum,
			       .page_size = j->im.page_size,
			       .db_pages = j->im.db_pages, .first = j->next};
	size_t per = PART_BYTES / j->im.page_size, start;
	struct net_buf b;
	uint8_t *pages;
	long got;
	int rv;

	if (per == 0)
		per = 1;
	ni.n = j->im.db_pages - j->next + 1 < per ? j->im.db_pages - j->next + 1
						  : (uint32_t)per;
	net_buf_init(&b, IMAGE_MAX_MSG);
	rv = net_encode_image_begin(&b, &ni, &start, &pages);
	if (rv == 0) {
		got = qf_pread_full(j->fd, pages, (size_t)ni.n * ni.page_size,
				    (int64_t)(j->next - 1) * ni.page_size);
		rv = got < 0 ? (int)got
			     : (size_t)got == (size_t)ni.n * ni.page_size
				       ? 0 : -EIO;
	}
	if (rv == 0)
		rv = net_msg_end(&b, start);
	if (rv != 0) {
		net_buf_close(&b);
		return rv;
	}
	net__reply(c, &b);
	j->next += ni.n;
	return 0;
}

/* Send parts while the connection's queue is short; come back later. */
static void parts_cb(uv_timer_t *t)
{
	struct image_job *j = t->data;
	struct net_server *s = j->srv;
	struct conn *c = net__find_conn(s, j->serial);
	uint64_t now = uv_now(eng_loop(s->engine));
	int rv = 0, sent = 0;
	size_t queued;

	if (c == NULL || c->closing || s->stopping) {
		image_end(j); /* nobody to send it to */
		return;
	}
	queued = uv_stream_get_write_queue_size((uv_stream_t *)c->tcp);
	while (rv == 0 && j->next <= j->im.db_pages && sent < 4 &&
	       queued < QUEUE_BYTES) {
		rv = send_part(j, c);
		sent++;
		queued = uv_stream_get_write_queue_size((uv_stream_t *)c->tcp);
	}
	if (sent > 0 || queued < j->queued)
		j->moved_at = now; /* a slow follower still makes progress */
	else if (now - j->moved_at >= SEND_STALL_MS)
		rv = -ETIMEDOUT;
	j->queued = queued;
	if (rv != 0) {
		/* Parts already went: the client cannot tell a FAILURE from
		 * a part, so the connection ends. */
		QF_LOG(QF_WARN, "image of %s: %s", j->db,
		       rv == -ETIMEDOUT ? "the follower stopped reading it"
					: qf_strerror(rv));
		net__conn_close(c);
		image_end(j);
		return;
	}
	if (j->next > j->im.db_pages) {
		image_end(j);
		return;
	}
	/* Not 0: libuv 1.44 runs a timer restarted at 0 again in the same
	 * pass, before the written parts are freed. */
	(void)uv_timer_start(&j->timer, parts_cb, 1, 0);
}

static void image_done(uv_work_t *req, int status)
{
	struct image_job *j = req->data;
	struct net_server *s = j->srv;
	struct conn *c = net__find_conn(s, j->serial);
	int rv = status != 0 ? -ECANCELED : j->rv;

	if (rv == QF_EDIVERGED && c != NULL && !s->stopping &&
	    ++j->tries < IMAGE_TRIES) {
		rv = image_start(j);
		if (rv == 0)
			return;
	}
	if (c == NULL || c->closing || s->stopping) {
		image_end(j);
		return;
	}
	if (rv != 0) {
		image_fail(c, j->db, rv);
		image_end(j);
		return;
	}
	j->next = 1;
	j->moved_at = uv_now(eng_loop(s->engine));
	j->queued = 0;
	parts_cb(&j->timer);
}

/* A scratch file for an image being sent: STATE_DIR/%image-out-SERIAL. */
static int open_scratch(struct image_job *j)
{
	if (asprintf(&j->path, "%s/%%image-out-%llu",
		     eng_state_dir(j->srv->engine),
		     (unsigned long long)j->serial) < 0) {
		j->path = NULL;
		return -ENOMEM;
	}
	j->fd = open(j->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	return j->fd < 0 ? -errno : 0;
}

void net__handle_image(struct conn *c, const struct net_slice *body)
{
	struct net_server *s = c->srv;
	struct image_job *j;
	const char *db;
	int rv;

	if (net_decode_image_req(body, &db) != 0 ||
	    !eng_name_valid(db, strlen(db))) {
		net__reply_failure(c, 1005, "malformed request");
		return;
	}
	if (s->images >= IMAGES_AT_ONCE) {
		/* Each takes a scratch copy and a threadpool thread;
		 * followers ask again. */
		net__reply_failure(c, 5, "busy: another image is being sent");
		return;
	}
	j = calloc(1, sizeof *j);
	if (j == NULL || (j->db = strdup(db)) == NULL ||
	    uv_timer_init(eng_loop(s->engine), &j->timer) != 0) {
		if (j != NULL)
			free(j->db);
		free(j);
		net__reply_failure(c, 10, "out of memory");
		return;
	}
	j->timer.data = j;
	j->srv = s;
	j->serial = c->serial;
	j->fd = -1;
	s->images++;
	s->handles_open++; /* until the timer closes */
	rv = open_scratch(j);
	if (rv == 0)
		rv = image_start(j);
	if (rv != 0) {
		image_fail(c, db, rv);
		image_end(j);
	}
}

/* ---- a follower: fetching ---- */

struct resync_job {
	uv_work_t req;
	struct net_server *srv;
	char *db;
	char *path; /* the scratch file the image goes to */
	char leader[256];
	int cancel_fd; /* an eventfd: written to end the fetch on stop */
	struct net_client_image img;
	int rv;
	char err[512];
	struct resync_job *next;
};

static void fetch_work(uv_work_t *req)
{
	struct resync_job *j = req->data;
	struct net_client_config cfg = {.connect_timeout_ms = FETCH_CONNECT_MS,
					.timeout_ms = FETCH_FIRST_MS,
					.max_msg = IMAGE_MAX_MSG};
	struct net_client *c = NULL;
	int fd = open(j->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	j->rv = fd < 0 ? -errno : net_client_new(&cfg, &c);
	if (j->rv == 0) {
		net_client_set_cancel(c, j->cancel_fd);
		j->rv = net_client_connect(c, j->leader);
	}
	if (j->rv == 0)
		j->rv = net_client_image(c, j->db, fd, FETCH_PART_MS, &j->img);
	snprintf(j->err, sizeof j->err, "%s",
		 c != NULL && net_client_errmsg(c)[0] != '\0'
			 ? net_client_errmsg(c)
			 : qf_strerror(j->rv));
	net_client_free(c);
	if (fd >= 0)
		close(fd);
}

/* The fetched image as a transaction over its file (takes both). */
static struct eng_txn *image_txn(struct resync_job *j)
{
	struct eng_txn *t = eng_txn_image_file(j->db, j->img.page_size,
					       j->img.db_pages, j->path,
					       j->img.hashes);

	j->img.hashes = NULL;
	free(j->path);
	j->path = NULL; /* the transaction's now, or removed */
	if (t != NULL) {
		t->seq = j->img.seq;
		t->cksum_after = j->img.cksum;
	}
	return t;
}

static void fetch_done(uv_work_t *req, int status)
{
	struct resync_job *j = req->data, **pp;
	struct net_server *s = j->srv;
	struct eng_txn *t;
	int rv = status != 0 ? -ECANCELED : j->rv;

	for (pp = &s->resyncs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	if (s->stopping) {
		/* nothing to install any more */
	} else if (rv != 0) {
		QF_LOG(QF_WARN, "db=%s: fetching the leader's image from %s: "
		       "%s (asked again shortly)", j->db, j->leader,
		       status != 0 ? "cancelled" : j->err);
	} else {
		t = image_txn(j);
		rv = t != NULL ? eng_resync(s->engine, t) : -ENOMEM;
		if (rv == -EAGAIN)
			QF_LOG(QF_INFO, "db=%s: the leader's image is older "
			       "than this node's state; asked again shortly",
			       j->db);
		else if (rv != 0 && rv != -EALREADY)
			QF_LOG(QF_WARN, "db=%s: the leader's image: %s", j->db,
			       qf_strerror(rv));
	}
	if (j->path != NULL)
		(void)unlink(j->path);
	close(j->cancel_fd);
	free(j->path);
	free(j->img.hashes);
	free(j->db);
	free(j);
	net__handle_closed(s);
}

void net_server_resync(void *server, const char *db)
{
	struct net_server *s = server;
	struct resync_job *j;
	uint64_t id;
	char leader[256];

	if (s->stopping)
		return;
	if (s->resyncs != NULL)
		return; /* one fetch at a time: the engine asks again */
	if (getenv("QF_FAULT_NO_RESYNC") != NULL)
		return; /* fault injection for tests: a diverged node stays so */
	eng_leader(s->engine, &id, leader, sizeof leader);
	if (id == 0 || id == eng_id(s->engine))
		return; /* no leader to ask (yet): the engine asks again */
	j = calloc(1, sizeof *j);
	if (j == NULL || (j->db = strdup(db)) == NULL ||
	    asprintf(&j->path, "%s/%%image-in-%llu", eng_state_dir(s->engine),
		     (unsigned long long)++s->fetches) < 0) {
		if (j != NULL)
			free(j->db);
		free(j);
		return;
	}
	j->srv = s;
	snprintf(j->leader, sizeof j->leader, "%s", leader);
	j->req.data = j;
	j->cancel_fd = eventfd(0, EFD_CLOEXEC);
	if (j->cancel_fd < 0 ||
	    uv_queue_work(eng_loop(s->engine), &j->req, fetch_work,
			  fetch_done) != 0) {
		if (j->cancel_fd >= 0)
			close(j->cancel_fd);
		free(j->path);
		free(j->db);
		free(j);
		return;
	}
	QF_LOG(QF_INFO, "db=%s: fetching the leader's image from %s", db,
	       leader);
	s->handles_open++;
	j->next = s->resyncs;
	s->resyncs = j;
}

void net__resync_cancel_all(struct net_server *s)
{
	struct resync_job *j;

	for (j = s->resyncs; j != NULL; j = j->next)
		(void)eventfd_write(j->cancel_fd, 1);
}
