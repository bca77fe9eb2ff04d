/* Resynchronising a database whose files diverged: the leader's side
 * (describe and read an image) and the follower's (install it).  See
 * engine.h and follow.c. */
#include <errno.h>
#include <stdlib.h>

#include "core.h"
#include "snapshot.h"

struct set_resync {
	struct eng *e;
	eng_resync_fn fn;
	void *arg;
};

static void set_resync_on_loop(void *arg)
{
	struct set_resync *sr = arg;

	sr->e->follow.resync = sr->fn;
	sr->e->follow.resync_arg = sr->arg;
	free(sr);
}

int eng_set_resync(struct eng *e, eng_resync_fn fn, void *arg)
{
	struct set_resync *sr = malloc(sizeof *sr);
	int rv;

	if (sr == NULL)
		return -ENOMEM;
	sr->e = e;
	sr->fn = fn;
	sr->arg = arg;
	rv = eng_call(e, set_resync_on_loop, sr);
	if (rv != 0)
		free(sr);
	return rv;
}

int eng_image_describe(struct eng *e, const char *db, struct eng_image *im)
{
	struct eng_db *d;

	if (!eng_is_leader(e))
		return QF_ENOTLEADER;
	d = eng__db_find(&e->dbs, db);
	if (d == NULL || d->db_pages == 0)
		return -ENOENT;
	if (d->diverged)
		return QF_EDIVERGED;
	im->page_size = d->page_size;
	im->db_pages = d->db_pages;
	im->seq = d->seq;
	im->cksum = d->cksum;
	im->wal_frames = d->wal_frames;
	return 0;
}

int eng_image_write(struct eng *e, const char *db,
		    const struct eng_image *im, int fd)
{
	return eng__image_write(e->db_dir, db, im, fd);
}

const char *eng_state_dir(const struct eng *e)
{
	return e->state_dir;
}

int eng_resync(struct eng *e, struct eng_txn *t)
{
	struct eng_db *d = eng__db_find(&e->dbs, t->db);

	if (d == NULL) {
		eng_txn_free(t);
		return -EALREADY;
	}
	return eng__follow_resync(&e->follow, d, t,
				  raft_last_applied(&e->raft));
}
