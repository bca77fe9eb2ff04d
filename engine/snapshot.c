/* Snapshot take, copy and restore.  See snapshot.h. */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SNAP_MAGIC 0x314e4651u /* "QFN1" */
#define REC_FIXED 32
/* A copy that raced writers is retried with growing pauses, about 2 s in
 * all, before the snapshot is given up (raft tries again later). */
#define COPY_TRIES 40

static size_t pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

int eng__snapshot_take(struct eng_dbs *s, uint64_t index,
		       struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct eng_db *d;
	size_t size = 24, off;
	uint64_t n_db = 0;
	uint8_t *p;

	for (d = s->head; d != NULL; d = d->next) {
		if (d->diverged) {
			/* Its files do not hold its state: nothing to copy
			 * until an image repairs them (raft tries later). */
			QF_LOG(QF_WARN, "snapshot postponed: db=%s is diverged",
			       d->name);
			return RAFT_BUSY;
		}
		if (d->db_pages == 0)
			continue;
		size += REC_FIXED + pad8(strlen(d->name)) + 8;
		n_db++;
	}
	*bufs = calloc(1, sizeof **bufs);
	p = calloc(1, size);
	if (*bufs == NULL || p == NULL) {
		free(*bufs);
		free(p);
		return RAFT_NOMEM;
	}
	qf_put_le32(p, SNAP_MAGIC);
	qf_put_le32(p + 4, 1);
	qf_put_le64(p + 8, index);
	qf_put_le64(p + 16, n_db);
	off = 24;
	for (d = s->head; d != NULL; d = d->next) {
		size_t len = strlen(d->name);

		if (d->db_pages == 0)
			continue;
		qf_put_le32(p + off, (uint32_t)len);
		qf_put_le32(p + off + 4, d->page_size);
		qf_put_le32(p + off + 8, d->db_pages);
		qf_put_le64(p + off + 16, d->seq);
		qf_put_le64(p + off + 24, d->cksum);
		memcpy(p + off + REC_FIXED, d->name, len);
		off += REC_FIXED + pad8(len);
		/* Local only, dropped by copy: WAL frames holding the state. */
		qf_put_le64(p + off, d->wal_frames);
		off += 8;
	}
	(*bufs)[0].base = p;
	(*bufs)[0].len = size;
	*n_bufs = 1;
	return 0;
}

static bool valid_page_size(uint32_t ps)
{
	return ps >= 512 && ps <= 65536 && (ps & (ps - 1)) == 0;
}

struct rec {
	const char *name;
	size_t name_len;
	uint32_t page_size, db_pages;
	uint64_t seq, cksum, wal_frames;
};

/* Parse record @i's fields starting at *off; with_wal for take's layout. */
static int parse_rec(const uint8_t *p, size_t len, size_t *off, bool with_wal,
		     struct rec *r)
{
	if (*off + REC_FIXED > len)
		return QF_EMALFORMED;
	r->name_len = qf_get_le32(p + *off);
	r->page_size = qf_get_le32(p + *off + 4);
	r->db_pages = qf_get_le32(p + *off + 8);
	r->seq = qf_get_le64(p + *off + 16);
	r->cksum = qf_get_le64(p + *off + 24);
	r->name = (const char *)p + *off + REC_FIXED;
	if (r->name_len == 0 || r->name_len > 4095 ||
	    *off + REC_FIXED + pad8(r->name_len) + (with_wal ? 8 : 0) > len ||
	    !valid_page_size(r->page_size) ||
	    !eng_name_valid(r->name, r->name_len))
		return QF_EMALFORMED;
	*off += REC_FIXED + pad8(r->name_len);
	r->wal_frames = 0;
	if (with_wal) {
		r->wal_frames = qf_get_le64(p + *off);
		*off += 8;
	}
	return 0;
}

/* Read database @r's image at its recorded state into @out; 0 when its
 * checksum matches, QF_EDIVERGED when the files moved on, -errno. */
static int read_image(const char *db_dir, const struct rec *r, uint8_t *out)
{
	char *path = NULL;
	uint32_t *frame_of = NULL;
	uint8_t fh[24];
	uint64_t ck = 0, k;
	size_t ps = r->page_size;
	int db_fd = -1, wal_fd = -1, rv = 0;
	uint32_t p;

	if (asprintf(&path, "%s/%.*s", db_dir, (int)r->name_len, r->name) < 0)
		return -ENOMEM;
	db_fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (asprintf(&path, "%s/%.*s-wal", db_dir, (int)r->name_len, r->name) < 0) {
		rv = -ENOMEM;
		goto out;
	}
	wal_fd = r->wal_frames ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	free(path);
	frame_of = calloc((size_t)r->db_pages + 1, sizeof *frame_of);
	if (frame_of == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	/* The latest committed frame of each page wins over the db file. */
	for (k = 1; wal_fd >= 0 && k <= r->wal_frames; k++) {
		if (qf_pread_full(wal_fd, fh, 24, 32 + (int64_t)(k - 1) * (int64_t)(ps + 24)) != 24)
			break;
		p = qf_get_be32(fh);
		if (p >= 1 && p <= r->db_pages)
			frame_of[p] = (uint32_t)k;
	}
	for (p = 1; p <= r->db_pages; p++) {
		uint8_t *page = out + (size_t)(p - 1) * ps;
		long got;

		if (frame_of[p] != 0)
			got = qf_pread_full(wal_fd, page, ps,
					    32 + (int64_t)(frame_of[p] - 1) * (int64_t)(ps + 24) + 24);
		else if (db_fd >= 0)
			got = qf_pread_full(db_fd, page, ps, (int64_t)(p - 1) * (int64_t)ps);
		else
			got = 0;
		if (got < 0) {
			rv = (int)got;
			goto out;
		}
		memset(page + got, 0, ps - (size_t)got);
		ck ^= qf_page_hash(p, page, ps);
	}
	rv = ck == r->cksum ? 0 : QF_EDIVERGED;
out:
	free(frame_of);
	if (db_fd >= 0)
		close(db_fd);
	if (wal_fd >= 0)
		close(wal_fd);
	return rv;
}

/* read_image, retried while writers move the files on. */
static int read_image_retrying(const char *db_dir, const struct rec *r,
			       uint8_t *out)
{
	int rv = QF_EDIVERGED, try;

	for (try = 0; try < COPY_TRIES; try++) {
		rv = read_image(db_dir, r, out);
		if (rv != QF_EDIVERGED)
			break;
		nanosleep(&(struct timespec){0, (long)(1 + try) * 2500000L},
			  NULL);
	}
	return rv;
}

int eng__image_read(const char *db_dir, const char *name,
		    const struct eng_image *im, uint8_t *out)
{
	struct rec r = {.name = name, .name_len = strlen(name),
			.page_size = im->page_size, .db_pages = im->db_pages,
			.seq = im->seq, .cksum = im->cksum,
			.wal_frames = im->wal_frames};

	return read_image_retrying(db_dir, &r, out);
}

void eng__snapshot_free(struct raft_buffer *bufs[], unsigned *n_bufs)
{
	unsigned i;

	if (*bufs == NULL)
		return;
	for (i = 0; i < *n_bufs; i++)
		free((*bufs)[i].base);
	free(*bufs);
	*bufs = NULL;
	*n_bufs = 0;
}

int eng__snapshot_copy(const char *db_dir, struct raft_buffer *bufs[],
		       unsigned *n_bufs)
{
	const uint8_t *meta = (*bufs)[0].base;
	size_t len = (*bufs)[0].len, off = 24, out_off = 24;
	uint64_t n_db = qf_get_le64(meta + 16), i;
	struct raft_buffer *nb;
	uint8_t *hdr;
	int rv = 0;

	nb = calloc(n_db + 1, sizeof *nb);
	hdr = malloc(len);
	if (nb == NULL || hdr == NULL) {
		free(nb);
		free(hdr);
		eng__snapshot_free(bufs, n_bufs); /* as on every failure */
		return RAFT_NOMEM;
	}
	memcpy(hdr, meta, 24);
	nb[0].base = hdr;
	for (i = 0; i < n_db && rv == 0; i++) {
		struct rec r;
		size_t rec_start = off;

		rv = parse_rec(meta, len, &off, true, &r);
		if (rv != 0)
			break;
		/* Copy the record without its local WAL frame count. */
		memcpy(hdr + out_off, meta + rec_start, off - 8 - rec_start);
		out_off += off - 8 - rec_start;
		nb[i + 1].len = (size_t)r.db_pages * r.page_size;
		nb[i + 1].base = malloc(nb[i + 1].len ? nb[i + 1].len : 1);
		if (nb[i + 1].base == NULL) {
			rv = -ENOMEM;
			break;
		}
		rv = read_image_retrying(db_dir, &r, nb[i + 1].base);
		if (rv != 0)
			QF_LOG(QF_WARN, "snapshot: db=%.*s: %s; will retry later",
			       (int)r.name_len, r.name,
			       rv == QF_EDIVERGED
				       ? "writers moved the files on faster than "
					 "they could be copied"
				       : qf_strerror(rv));
	}
	nb[0].len = out_off;
	eng__snapshot_free(bufs, n_bufs);
	*bufs = nb;
	*n_bufs = (unsigned)n_db + 1;
	if (rv != 0) {
		eng__snapshot_free(bufs, n_bufs);
		return RAFT_IOERR;
	}
	return 0;
}

static uint64_t image_cksum(const struct rec *r, const uint8_t *image)
{
	uint64_t ck = 0;
	uint32_t p;

	for (p = 1; p <= r->db_pages; p++)
		ck ^= qf_page_hash(p, image + (size_t)(p - 1) * r->page_size,
				   r->page_size);
	return ck;
}

/* @r's database (created empty if new), its name into @name. */
static struct eng_db *rec_db(struct eng_dbs *s, const struct rec *r,
			     char name[4096])
{
	memcpy(name, r->name, r->name_len);
	name[r->name_len] = '\0';
	return eng__db_get(s, name);
}

static int restore_db(struct eng_dbs *s, const struct rec *r,
		      const uint8_t *image, uint64_t index)
{
	char name[4096];
	struct eng_db *d = rec_db(s, r, name);
	int rv;

	if (d == NULL)
		return -ENOMEM;
	/* Local files verified at load that already hold the snapshot's
	 * state, or a later one, are kept: restart must not rewrite them. */
	if (d->seq > r->seq || (d->seq == r->seq && d->cksum == r->cksum))
		return 0;
	if (image_cksum(r, image) != r->cksum) {
		QF_LOG(QF_ERROR, "db=%s: snapshot image fails its checksum",
		       name);
		return QF_EMALFORMED; /* before the local copy is touched */
	}
	QF_LOG(QF_INFO, "db=%s: restoring from snapshot index=%llu (%u pages)",
	       name, (unsigned long long)index, r->db_pages);
	rv = eng__db_reset(s, d);
	if (rv != 0)
		return rv;
	rv = eng__db_write_image(s, name, image, r->page_size, r->db_pages);
	if (rv != 0)
		return rv;
	d->page_size = r->page_size;
	d->db_pages = r->db_pages;
	d->cksum = r->cksum;
	rv = eng__db_rehash(s, d);
	if (rv == 0) {
		QF_LOG(QF_ERROR, "db=%s: snapshot image fails its checksum",
		       name);
		return QF_EMALFORMED;
	}
	if (rv < 0)
		return rv;
	d->seq = r->seq;
	d->base_seq = r->seq;
	d->base_cksum = r->cksum;
	d->applied = index;
	d->wal_frames = 0;
	return eng__db_save_all(s, d);
}

/* A mounted follower: databases whose state differs from the snapshot's
 * become one all-page transaction each, handed to @push (the follower's
 * queue writes it through the mount, after what is queued before). */
static int restore_db_live(struct eng_dbs *s, const struct rec *r,
			   const uint8_t *image, uint64_t index,
			   eng__restore_push_fn push, void *arg)
{
	size_t size = (size_t)r->db_pages * r->page_size;
	char name[4096];
	struct eng_db *d = rec_db(s, r, name);
	struct eng_txn *t;
	uint8_t *pages;

	if (d == NULL)
		return -ENOMEM;
	if (d->seq == r->seq && d->cksum == r->cksum && !d->diverged &&
	    d->fq_head == NULL)
		return 0; /* current */
	if (image_cksum(r, image) != r->cksum) {
		QF_LOG(QF_ERROR, "db=%s: snapshot image fails its checksum",
		       name);
		return QF_EMALFORMED;
	}
	if (r->db_pages == 0)
		return 0; /* nothing to write through the mount */
	pages = malloc(size);
	if (pages != NULL)
		memcpy(pages, image, size);
	t = eng_txn_image(name, r->page_size, r->db_pages, pages);
	if (t == NULL)
		return -ENOMEM;
	t->seq = r->seq;
	t->cksum_after = r->cksum;
	QF_LOG(QF_INFO, "db=%s: installing snapshot index=%llu (%u pages) "
	       "through the mount", name, (unsigned long long)index,
	       r->db_pages);
	return push(arg, d, t, index); /* takes @t */
}

int eng__snapshot_restore(struct eng_dbs *s, const void *buf, size_t len,
			  uint64_t *index)
{
	return eng__snapshot_install(s, buf, len, index, NULL, NULL);
}

int eng__snapshot_install(struct eng_dbs *s, const void *buf, size_t len,
			  uint64_t *index, eng__restore_push_fn push,
			  void *arg)
{
	const uint8_t *p = buf;
	size_t off = 24, data;
	uint64_t n_db, i, total;
	struct rec r;
	int rv;

	if (len < 24 || qf_get_le32(p) != SNAP_MAGIC || qf_get_le32(p + 4) != 1)
		return QF_EMALFORMED;
	*index = qf_get_le64(p + 8);
	n_db = qf_get_le64(p + 16);
	/* First pass: every record parses and the images fill the buffer
	 * exactly, before anything is restored. */
	total = 0;
	for (i = 0; i < n_db; i++) {
		rv = parse_rec(p, len, &off, false, &r);
		if (rv != 0)
			return rv;
		total += (uint64_t)r.db_pages * r.page_size;
	}
	if (off + total != len)
		return QF_EMALFORMED;
	data = off;
	off = 24;
	for (i = 0; i < n_db; i++) {
		size_t img;

		(void)parse_rec(p, len, &off, false, &r); /* checked above */
		img = (size_t)r.db_pages * r.page_size;
		if (data + img > len)
			return QF_EMALFORMED;
		rv = push != NULL ? restore_db_live(s, &r, p + data, *index,
						    push, arg)
				  : restore_db(s, &r, p + data, *index);
		if (rv != 0)
			return rv;
		data += img;
	}
	return data == len ? 0 : QF_EMALFORMED;
}
