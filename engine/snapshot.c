/* Snapshot take, copy and restore.  See snapshot.h. */
#include "snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SNAP_MAGIC_V1 0x314e4651u /* "QFN1": images inside (read only) */
#define SNAP_MAGIC 0x324e4651u	  /* "QFN2": page hashes, images beside */
#define REC_FIXED 32
/* A copy that raced writers is retried with growing pauses, about 2 s in
 * all, before the snapshot is given up (raft tries again later). */
#define COPY_TRIES 40
/* Pages moved per read or write while copying an image: the bound on a
 * snapshot's buffer, whatever the database's size. */
#define CHUNK_BYTES (1u << 20)

static size_t pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

static size_t rec_size(const struct eng_db *d)
{
	return REC_FIXED + pad8(strlen(d->name)) + 8 + (size_t)d->db_pages * 8;
}

int eng__snapshot_take(struct eng_dbs *s, uint64_t index,
		       struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct eng_db *d;
	size_t size = 24, off;
	uint64_t n_db = 0;
	uint32_t i;
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
		size += rec_size(d);
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
	qf_put_le32(p + 4, 2);
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
		/* Local, zeroed by copy: the WAL frames holding the state. */
		qf_put_le64(p + off, d->wal_frames);
		off += 8;
		for (i = 0; i < d->db_pages; i++, off += 8)
			qf_put_le64(p + off, i < d->hash_cap ? d->hash[i] : 0);
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
	uint8_t *local;		/* v2: where wal_frames is stored */
	const uint8_t *hashes;	/* v2: db_pages little-endian u64, or NULL */
};

enum rec_layout {
	REC_V1,	     /* v1 as stored: no local field, no hashes */
	REC_V1_TAKE, /* v1 as take made it: the local field */
	REC_V2,	     /* local field, then the page hashes */
};

/* Parse the record starting at *off. */
static int parse_rec(const uint8_t *p, size_t len, size_t *off,
		     enum rec_layout layout, struct rec *r)
{
	size_t extra;

	if (*off + REC_FIXED > len)
		return QF_EMALFORMED;
	r->name_len = qf_get_le32(p + *off);
	r->page_size = qf_get_le32(p + *off + 4);
	r->db_pages = qf_get_le32(p + *off + 8);
	r->seq = qf_get_le64(p + *off + 16);
	r->cksum = qf_get_le64(p + *off + 24);
	r->name = (const char *)p + *off + REC_FIXED;
	extra = layout == REC_V1 ? 0 : 8;
	if (layout == REC_V2)
		extra += (size_t)r->db_pages * 8;
	if (r->name_len == 0 || r->name_len > 4095 ||
	    *off + REC_FIXED + pad8(r->name_len) > len ||
	    len - (*off + REC_FIXED + pad8(r->name_len)) < extra ||
	    !valid_page_size(r->page_size) ||
	    !eng_name_valid(r->name, r->name_len))
		return QF_EMALFORMED;
	*off += REC_FIXED + pad8(r->name_len);
	r->wal_frames = 0;
	r->local = NULL;
	r->hashes = NULL;
	if (layout != REC_V1) {
		r->local = (uint8_t *)p + *off;
		r->wal_frames = qf_get_le64(p + *off);
		*off += 8;
	}
	if (layout == REC_V2) {
		r->hashes = p + *off;
		*off += (size_t)r->db_pages * 8;
	}
	return 0;
}

/* Where read_image puts the pages it reads, in page order. */
struct sink {
	int (*page)(struct sink *k, uint32_t pgno, const uint8_t *page);
	int (*restart)(struct sink *k); /* a retry starts over */
};

/* Read database @r's image at its recorded state into @k; 0 when every
 * page matches (its checksum, and each page's hash when @r has them),
 * QF_EDIVERGED when the files moved on, -errno. */
static int read_image(const char *db_dir, const struct rec *r,
		      struct sink *k)
{
	char *path = NULL;
	uint32_t *frame_of = NULL;
	uint8_t fh[24], *page = NULL;
	uint64_t ck = 0, k_frame, h;
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
	page = malloc(ps);
	if (frame_of == NULL || page == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	/* The latest committed frame of each page wins over the db file. */
	for (k_frame = 1; wal_fd >= 0 && k_frame <= r->wal_frames; k_frame++) {
		if (qf_pread_full(wal_fd, fh, 24, 32 + (int64_t)(k_frame - 1) * (int64_t)(ps + 24)) != 24)
			break;
		p = qf_get_be32(fh);
		if (p >= 1 && p <= r->db_pages)
			frame_of[p] = (uint32_t)k_frame;
	}
	for (p = 1; p <= r->db_pages; p++) {
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
		h = qf_page_hash(p, page, ps);
		if (r->hashes != NULL &&
		    h != qf_get_le64(r->hashes + 8 * (size_t)(p - 1))) {
			rv = QF_EDIVERGED; /* a writer changed it meanwhile */
			goto out;
		}
		ck ^= h;
		rv = k->page(k, p, page);
		if (rv != 0)
			goto out;
	}
	rv = ck == r->cksum ? 0 : QF_EDIVERGED;
out:
	free(frame_of);
	free(page);
	if (db_fd >= 0)
		close(db_fd);
	if (wal_fd >= 0)
		close(wal_fd);
	return rv;
}

/* read_image, retried while writers move the files on. */
static int read_image_retrying(const char *db_dir, const struct rec *r,
			       struct sink *k)
{
	int rv = QF_EDIVERGED, try;

	for (try = 0; try < COPY_TRIES; try++) {
		if (try > 0) {
			nanosleep(&(struct timespec){0, (long)try * 2500000L},
				  NULL);
			rv = k->restart(k);
			if (rv != 0)
				return rv;
		}
		rv = read_image(db_dir, r, k);
		if (rv != QF_EDIVERGED)
			break;
	}
	return rv;
}

/* A sink into a file from offset @start, through a bounded buffer. */
struct file_sink {
	struct sink k;
	int fd;
	int64_t start, off;
	uint8_t *buf;
	size_t used, page_size;
};

static int file_flush(struct file_sink *f)
{
	int rv = qf_pwrite_full(f->fd, f->buf, f->used, f->off);

	f->off += (int64_t)f->used;
	f->used = 0;
	return rv;
}

static int file_page(struct sink *k, uint32_t pgno, const uint8_t *page)
{
	struct file_sink *f = (struct file_sink *)k;

	(void)pgno;
	if (f->used + f->page_size > CHUNK_BYTES) {
		int rv = file_flush(f);

		if (rv != 0)
			return rv;
	}
	memcpy(f->buf + f->used, page, f->page_size);
	f->used += f->page_size;
	return 0;
}

static int file_restart(struct sink *k)
{
	struct file_sink *f = (struct file_sink *)k;

	f->off = f->start;
	f->used = 0;
	return 0;
}

int eng__image_write(const char *db_dir, const char *name,
		     const struct eng_image *im, int fd)
{
	struct rec r = {.name = name, .name_len = strlen(name),
			.page_size = im->page_size, .db_pages = im->db_pages,
			.seq = im->seq, .cksum = im->cksum,
			.wal_frames = im->wal_frames};
	struct file_sink f = {{file_page, file_restart}, fd, 0, 0, NULL, 0,
			      im->page_size};
	int rv;

	f.buf = malloc(CHUNK_BYTES);
	if (f.buf == NULL)
		return -ENOMEM;
	rv = read_image_retrying(db_dir, &r, &f.k);
	if (rv == 0)
		rv = file_flush(&f);
	free(f.buf);
	return rv;
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

/* ---- image files: STATE_DIR/snapshots/INDEX.img ---- */

static char *image_path(const char *state_dir, uint64_t index,
			const char *suffix)
{
	char *path;

	if (asprintf(&path, "%s/snapshots/%llu.img%s", state_dir,
		     (unsigned long long)index, suffix) < 0)
		return NULL;
	return path;
}

/* Does raft keep a snapshot at @index (a snapshot-TERM-INDEX-TS.meta)? */
static bool raft_has_snapshot(const char *raft_dir, uint64_t index)
{
	unsigned long long term, idx, ts;
	struct dirent *de;
	bool found = false;
	DIR *dir = opendir(raft_dir);

	if (dir == NULL)
		return true; /* cannot tell: keep it */
	while (!found && (de = readdir(dir)) != NULL)
		found = sscanf(de->d_name, "snapshot-%llu-%llu-%llu.meta",
			       &term, &idx, &ts) == 3 && idx == index;
	closedir(dir);
	return found;
}

void eng__snapshot_gc(const char *state_dir, const char *raft_dir,
		      uint64_t keep)
{
	unsigned long long idx;
	struct dirent *de;
	char *path, *dir_path;
	DIR *dir;

	if (asprintf(&dir_path, "%s/snapshots", state_dir) < 0)
		return;
	dir = opendir(dir_path);
	while (dir != NULL && (de = readdir(dir)) != NULL) {
		char tail[8] = "";

		if (sscanf(de->d_name, "%llu.im%7s", &idx, tail) != 2 ||
		    (strcmp(tail, "g") != 0 && strcmp(tail, "g.tmp") != 0) ||
		    idx == keep || (strcmp(tail, "g") == 0 &&
				    raft_has_snapshot(raft_dir, idx)))
			continue;
		if (asprintf(&path, "%s/%s", dir_path, de->d_name) >= 0) {
			if (unlink(path) != 0 && errno != ENOENT)
				QF_LOG(QF_WARN, "removing %s: %s", path,
				       strerror(errno));
			free(path);
		}
	}
	if (dir != NULL)
		closedir(dir);
	free(dir_path);
}

static int sync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rv = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		rv = -errno;
	close(fd);
	return rv;
}

/* Write every database's image described by @meta into @fd, back to back
 * in record order, and zero the local fields of @meta. */
static int copy_images(const char *db_dir, uint8_t *meta, size_t len, int fd)
{
	uint64_t n_db = qf_get_le64(meta + 16), i;
	struct file_sink f = {{file_page, file_restart}, fd, 0, 0, NULL, 0, 0};
	size_t off = 24;
	int rv = 0;

	f.buf = malloc(CHUNK_BYTES);
	if (f.buf == NULL)
		return -ENOMEM;
	for (i = 0; i < n_db && rv == 0; i++) {
		struct rec r;

		rv = parse_rec(meta, len, &off, REC_V2, &r);
		if (rv != 0)
			break;
		f.page_size = r.page_size;
		f.used = 0;
		rv = read_image_retrying(db_dir, &r, &f.k);
		if (rv == 0)
			rv = file_flush(&f);
		if (rv != 0)
			QF_LOG(QF_WARN, "snapshot: db=%.*s: %s; will retry later",
			       (int)r.name_len, r.name,
			       rv == QF_EDIVERGED
				       ? "writers moved the files on faster than "
					 "they could be copied"
				       : qf_strerror(rv));
		qf_put_le64(r.local, 0);
		f.start = f.off;
	}
	if (rv == 0 && ftruncate(fd, f.off) != 0)
		rv = -errno;
	free(f.buf);
	return rv;
}

int eng__snapshot_copy(const char *db_dir, const char *state_dir,
		       const char *raft_dir, struct raft_buffer *bufs[],
		       unsigned *n_bufs)
{
	uint8_t *meta = (*bufs)[0].base;
	uint64_t index = qf_get_le64(meta + 8);
	char *tmp = image_path(state_dir, index, ".tmp");
	char *path = image_path(state_dir, index, "");
	char *dir = NULL;
	int fd = -1, rv;

	eng__snapshot_gc(state_dir, raft_dir, index);
	rv = tmp && path && asprintf(&dir, "%s/snapshots", state_dir) >= 0
		     ? 0 : -ENOMEM;
	if (rv == 0 && mkdir(dir, 0755) != 0 && errno != EEXIST)
		rv = -errno;
	if (rv == 0) /* the directory's entry: also after a failed sync */
		rv = sync_dir(state_dir);
	if (rv == 0) {
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0)
			rv = -errno;
	}
	if (rv == 0)
		rv = copy_images(db_dir, meta, (*bufs)[0].len, fd);
	if (rv == 0 && fdatasync(fd) != 0)
		rv = -errno;
	if (fd >= 0)
		close(fd);
	/* The image is durable before raft writes the snapshot naming it. */
	if (rv == 0 && rename(tmp, path) != 0)
		rv = -errno;
	if (rv == 0)
		rv = sync_dir(dir);
	if (rv != 0) {
		if (tmp != NULL)
			unlink(tmp);
		if (rv != QF_EDIVERGED)
			QF_LOG(QF_WARN, "snapshot index=%llu: writing its image: "
			       "%s", (unsigned long long)index,
			       qf_strerror(rv));
		eng__snapshot_free(bufs, n_bufs);
	}
	free(tmp);
	free(path);
	free(dir);
	return rv == 0 ? 0 : RAFT_IOERR;
}

/* ---- restore ---- */

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

/* Does @d already hold @r's state, or a later one?  Checked against the
 * files at load: a restart must not rewrite current files. */
static bool holds(const struct eng_db *d, const struct rec *r)
{
	return d->seq > r->seq || (d->seq == r->seq && d->cksum == r->cksum);
}

static int restore_db_v1(struct eng_dbs *s, const struct rec *r,
			 const uint8_t *image, uint64_t index)
{
	char name[4096];
	struct eng_db *d = rec_db(s, r, name);
	int rv;

	if (d == NULL)
		return -ENOMEM;
	if (holds(d, r))
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

/* A mounted follower, v1: databases whose state differs from the
 * snapshot's become one all-page transaction each, handed to @push (the
 * follower's queue writes it through the mount, after what is queued
 * before). */
static int restore_db_v1_live(struct eng_dbs *s, const struct rec *r,
			      const uint8_t *image, uint64_t index,
			      const struct eng__restore_to *to)
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
	return to->push(to->arg, d, t, index); /* takes @t */
}

static int install_v1(struct eng_dbs *s, const uint8_t *p, size_t len,
		      uint64_t index, const struct eng__restore_to *to)
{
	size_t off = 24, data;
	uint64_t n_db = qf_get_le64(p + 16), i, total = 0;
	struct rec r;
	int rv;

	/* First pass: every record parses and the images fill the buffer
	 * exactly, before anything is restored. */
	for (i = 0; i < n_db; i++) {
		rv = parse_rec(p, len, &off, REC_V1, &r);
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

		(void)parse_rec(p, len, &off, REC_V1, &r); /* checked above */
		img = (size_t)r.db_pages * r.page_size;
		rv = to != NULL ? restore_db_v1_live(s, &r, p + data, index, to)
				: restore_db_v1(s, &r, p + data, index);
		if (rv != 0)
			return rv;
		data += img;
	}
	return 0;
}

static bool hashes_make_cksum(const struct rec *r)
{
	uint64_t ck = 0;
	uint32_t i;

	for (i = 0; i < r->db_pages; i++)
		ck ^= qf_get_le64(r->hashes + 8 * (size_t)i);
	return ck == r->cksum;
}

/* @r's state, its hashes decoded (malloc'd) into st->hashes. */
static int rec_state(const struct rec *r, struct eng_db_snap *st)
{
	uint32_t i;

	st->page_size = r->page_size;
	st->db_pages = r->db_pages;
	st->seq = r->seq;
	st->cksum = r->cksum;
	st->hashes = malloc(((size_t)r->db_pages + 1) * sizeof *st->hashes);
	if (st->hashes == NULL)
		return -ENOMEM;
	for (i = 0; i < r->db_pages; i++)
		st->hashes[i] = qf_get_le64(r->hashes + 8 * (size_t)i);
	return 0;
}

/* Copy @r's image from @img_fd at @img_off into its emptied backing file,
 * checking every page against the snapshot's hash: 0, QF_EMALFORMED if a
 * page differs or the image is short, or -errno. */
static int write_from_image(struct eng_dbs *s, const char *name,
			    const struct rec *r, int img_fd, uint64_t img_off)
{
	size_t ps = r->page_size, per = CHUNK_BYTES / ps, n, i;
	uint8_t *buf = malloc(CHUNK_BYTES);
	int fd = eng__db_open_empty(s, name), rv = 0;
	uint32_t p = 1;
	long got;

	if (fd < 0 || buf == NULL) {
		rv = fd < 0 ? fd : -ENOMEM;
		goto out;
	}
	while (rv == 0 && p <= r->db_pages) {
		n = r->db_pages - p + 1 < per ? r->db_pages - p + 1 : per;
		got = qf_pread_full(img_fd, buf, n * ps,
				    (int64_t)(img_off + (uint64_t)(p - 1) * ps));
		if (got < 0 || (size_t)got != n * ps) {
			rv = got < 0 ? (int)got : QF_EMALFORMED;
			break;
		}
		for (i = 0; i < n && rv == 0; i++)
			if (qf_page_hash(p + (uint32_t)i, buf + i * ps, ps) !=
			    qf_get_le64(r->hashes + 8 * ((size_t)p - 1 + i)))
				rv = QF_EMALFORMED;
		if (rv == 0)
			rv = qf_pwrite_full(fd, buf, n * ps,
					    (int64_t)(p - 1) * (int64_t)ps);
		p += (uint32_t)n;
	}
	if (rv == 0 && fdatasync(fd) != 0)
		rv = -errno;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rv;
}

/* Before the mount exists: rebuild @r's database from the image file
 * (@img_fd, -1 when missing).  Without a usable image the state is the
 * snapshot's and the files are marked suspect: the leader's image
 * repairs them once the node runs (follow.c). */
static int restore_db_v2(struct eng_dbs *s, const struct rec *r,
			 int img_fd, uint64_t img_off, uint64_t index)
{
	struct eng_db_snap st;
	char name[4096];
	struct eng_db *d = rec_db(s, r, name);
	int rv, img_rv;

	if (d == NULL)
		return -ENOMEM;
	if (holds(d, r))
		return 0;
	rv = rec_state(r, &st);
	if (rv != 0)
		return rv;
	QF_LOG(QF_INFO, "db=%s: restoring from snapshot index=%llu (%u pages)",
	       name, (unsigned long long)index, r->db_pages);
	rv = eng__db_reset(s, d);
	if (rv != 0)
		goto out;
	img_rv = img_fd >= 0 ? write_from_image(s, name, r, img_fd, img_off)
			     : -ENOENT;
	rv = eng__db_set_state(d, &st, index);
	if (rv != 0) {
		QF_LOG(QF_ERROR, "db=%s: snapshot hashes do not make its "
		       "checksum", name);
		goto out;
	}
	d->wal_frames = 0;
	if (img_rv != 0) {
		QF_LOG(QF_ERROR, "db=%s: the image of snapshot index=%llu is "
		       "%s: the files stay empty until the leader's image "
		       "replaces them", name, (unsigned long long)index,
		       img_rv == -ENOENT ? "not on this node" : "damaged");
		(void)eng__db_reset(s, d); /* no partial image left */
		(void)eng__db_set_state(d, &st, index);
		d->files_suspect = true;
		d->diverged = true;
	}
	rv = eng__db_save_all(s, d);
out:
	free(st.hashes);
	return rv;
}

/* A mounted follower: a database whose state differs from the snapshot's
 * takes the snapshot's state through the follower's queue; its files then
 * wait for the leader's image. */
static int restore_db_v2_live(struct eng_dbs *s, const struct rec *r,
			      uint64_t index, const struct eng__restore_to *to)
{
	struct eng_db_snap st;
	char name[4096];
	struct eng_db *d = rec_db(s, r, name);
	int rv;

	if (d == NULL)
		return -ENOMEM;
	if (d->seq == r->seq && d->cksum == r->cksum && !d->diverged &&
	    d->fq_head == NULL)
		return 0; /* current */
	rv = rec_state(r, &st);
	if (rv != 0)
		return rv;
	QF_LOG(QF_INFO, "db=%s: installing snapshot index=%llu (%u pages): "
	       "the files follow from the leader's image", name,
	       (unsigned long long)index, r->db_pages);
	return to->state(to->arg, d, &st, index); /* takes st.hashes */
}

static int install_v2(struct eng_dbs *s, const uint8_t *p, size_t len,
		      uint64_t index, const struct eng__restore_to *to)
{
	uint64_t n_db = qf_get_le64(p + 16), i, img_off = 0;
	size_t off = 24;
	char *path = NULL;
	int img_fd = -1, rv = 0;
	struct rec r;

	for (i = 0; i < n_db; i++) { /* every record checks out first */
		rv = parse_rec(p, len, &off, REC_V2, &r);
		if (rv == 0 && !hashes_make_cksum(&r))
			rv = QF_EMALFORMED;
		if (rv != 0)
			return rv;
	}
	if (off != len)
		return QF_EMALFORMED;
	if (to == NULL) {
		path = image_path(s->state_dir, index, "");
		if (path == NULL)
			return -ENOMEM;
		img_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (img_fd < 0 && errno != ENOENT) {
			/* Not a missing image (which the leader repairs) but
			 * a node that cannot read its own: say so, and let
			 * the start fail rather than empty the databases. */
			rv = -errno;
			QF_LOG(QF_ERROR, "snapshot index=%llu: opening %s: %s",
			       (unsigned long long)index, path,
			       qf_strerror(rv));
		}
		free(path);
		if (rv != 0)
			return rv;
	}
	off = 24;
	for (i = 0; i < n_db && rv == 0; i++) {
		(void)parse_rec(p, len, &off, REC_V2, &r); /* checked above */
		rv = to != NULL ? restore_db_v2_live(s, &r, index, to)
				: restore_db_v2(s, &r, img_fd, img_off, index);
		img_off += (uint64_t)r.db_pages * r.page_size;
	}
	if (img_fd >= 0)
		close(img_fd);
	return rv;
}

int eng__snapshot_restore(struct eng_dbs *s, const void *buf, size_t len,
			  uint64_t *index)
{
	return eng__snapshot_install(s, buf, len, index, NULL);
}

int eng__snapshot_install(struct eng_dbs *s, const void *buf, size_t len,
			  uint64_t *index, const struct eng__restore_to *to)
{
	const uint8_t *p = buf;
	uint32_t magic, version;

	if (len < 24)
		return QF_EMALFORMED;
	magic = qf_get_le32(p);
	version = qf_get_le32(p + 4);
	*index = qf_get_le64(p + 8);
	if (magic == SNAP_MAGIC_V1 && version == 1)
		return install_v1(s, p, len, *index, to);
	if (magic == SNAP_MAGIC && version == 2)
		return install_v2(s, p, len, *index, to);
	return QF_EMALFORMED;
}
