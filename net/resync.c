/* Resynchronising a database whose files diverged (engine.h): the
 * leader serves quorafs's IMAGE request (its pages at its current state,
 * read from its backing files in the threadpool), and a follower fetches
 * one with the client library (also in the threadpool) and hands it to
 * eng_resync.  A fetch that fails is not retried here: the engine asks
 * again every few seconds while the database stays diverged.
 *
 * Both hold the whole image in memory (unlike snapshots, which stream to
 * an image file: snapshot.h), one at a time per node.  Loop thread,
 * except the *_work functions. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

/* Largest image sent or accepted: 64 GiB. */
#define IMAGE_MAX_MSG ((size_t)64 << 30)
/* A follower's fetch: connecting, then the whole exchange. */
#define FETCH_CONNECT_MS 5000
#define FETCH_TIMEOUT_MS 60000
/* Reads that never caught one state (writers too fast) are described
 * and read again this many times before the request fails. */
#define IMAGE_TRIES 3
/* Images a leader sends at once, and fetches a follower runs at once. */
#define IMAGES_AT_ONCE 1

/* ---- the leader: IMAGE ---- */

struct image_job {
	uv_work_t req;
	struct net_server *srv;
	uint64_t serial; /* of the connection: it may close meanwhile */
	char *db;
	struct eng_image im;
	struct net_buf b;
	size_t start;
	uint8_t *pages; /* in @b */
	int tries;
	int rv;
};

static void image_work(uv_work_t *req)
{
	struct image_job *j = req->data;

	j->rv = eng_image_read(j->srv->engine, j->db, &j->im, j->pages);
}

static void image_done(uv_work_t *req, int status);

/* Describe @j's database now and read it in the threadpool. */
static int image_start(struct image_job *j)
{
	struct net_image ni;
	int rv = eng_image_describe(j->srv->engine, j->db, &j->im);

	if (rv != 0)
		return rv;
	ni.seq = j->im.seq;
	ni.cksum = j->im.cksum;
	ni.page_size = j->im.page_size;
	ni.db_pages = j->im.db_pages;
	net_buf_init(&j->b, IMAGE_MAX_MSG);
	rv = net_encode_image_begin(&j->b, &ni, &j->start, &j->pages);
	if (rv == 0) {
		j->req.data = j;
		rv = uv_queue_work(eng_loop(j->srv->engine), &j->req,
				   image_work, image_done);
		rv = rv == 0 ? 0 : -ENOMEM;
	}
	if (rv != 0) {
		net_buf_close(&j->b);
		return rv;
	}
	j->srv->handles_open++;
	return 0;
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

static void image_free(struct image_job *j)
{
	net_buf_close(&j->b);
	free(j->db);
	free(j);
}

static void image_done(uv_work_t *req, int status)
{
	struct image_job *j = req->data;
	struct net_server *s = j->srv;
	struct conn *c = net__find_conn(s, j->serial);
	int rv = status != 0 ? -ECANCELED : j->rv;

	if (rv == QF_EDIVERGED && c != NULL && !s->stopping &&
	    ++j->tries < IMAGE_TRIES) {
		net_buf_close(&j->b);
		rv = image_start(j);
		if (rv == 0) {
			net__handle_closed(s); /* this run's count */
			return;
		}
	}
	if (c != NULL && !c->closing) {
		if (rv == 0)
			rv = net_msg_end(&j->b, j->start);
		if (rv == 0)
			net__reply(c, &j->b);
		else
			image_fail(c, j->db, rv);
	}
	image_free(j);
	s->images--;
	net__handle_closed(s);
}

void net__handle_image(struct conn *c, const struct net_slice *body)
{
	struct image_job *j;
	const char *db;
	int rv;

	if (net_decode_image_req(body, &db) != 0 ||
	    !eng_name_valid(db, strlen(db))) {
		net__reply_failure(c, 1005, "malformed request");
		return;
	}
	if (c->srv->images >= IMAGES_AT_ONCE) {
		/* Each holds a whole database and a threadpool thread;
		 * followers ask again. */
		net__reply_failure(c, 5, "busy: another image is being sent");
		return;
	}
	j = calloc(1, sizeof *j);
	if (j == NULL || (j->db = strdup(db)) == NULL) {
		free(j);
		net__reply_failure(c, 10, "out of memory");
		return;
	}
	j->srv = c->srv;
	j->serial = c->serial;
	rv = image_start(j);
	if (rv != 0) {
		image_fail(c, db, rv);
		free(j->db);
		free(j);
		return;
	}
	c->srv->images++;
}

/* ---- a follower: fetching ---- */

struct resync_job {
	uv_work_t req;
	struct net_server *srv;
	char *db;
	char leader[256];
	struct net_client_image img;
	int rv;
	char err[512];
	struct resync_job *next;
};

static void fetch_work(uv_work_t *req)
{
	struct resync_job *j = req->data;
	struct net_client_config cfg = {.connect_timeout_ms = FETCH_CONNECT_MS,
					.timeout_ms = FETCH_TIMEOUT_MS,
					.max_msg = IMAGE_MAX_MSG};
	struct net_client *c = NULL;

	j->rv = net_client_new(&cfg, &c);
	if (j->rv == 0)
		j->rv = net_client_connect(c, j->leader);
	if (j->rv == 0)
		j->rv = net_client_image(c, j->db, &j->img);
	snprintf(j->err, sizeof j->err, "%s",
		 c != NULL && net_client_errmsg(c)[0] != '\0'
			 ? net_client_errmsg(c)
			 : qf_strerror(j->rv));
	net_client_free(c);
}

/* The fetched image as one all-page transaction (takes the pages). */
static struct eng_txn *image_txn(struct resync_job *j)
{
	struct eng_txn *t = eng_txn_image(j->db, j->img.page_size,
					  j->img.db_pages, j->img.pages);

	j->img.pages = NULL;
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
	free(j->img.pages);
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
	eng_leader(s->engine, &id, leader, sizeof leader);
	if (id == 0 || id == eng_id(s->engine))
		return; /* no leader to ask (yet): the engine asks again */
	j = calloc(1, sizeof *j);
	if (j == NULL || (j->db = strdup(db)) == NULL) {
		free(j);
		return;
	}
	j->srv = s;
	snprintf(j->leader, sizeof j->leader, "%s", leader);
	j->req.data = j;
	if (uv_queue_work(eng_loop(s->engine), &j->req, fetch_work,
			  fetch_done) != 0) {
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
