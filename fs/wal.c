/* WAL tracker: turns the byte-range writes a -wal file receives into
 * complete transactions.  Format facts: sqlite-io.md §1-§3; why writes
 * arrive as fragments and why refusals are sticky: fuse-spike.md §1-§2.
 *
 * Contract.  The tracker models the backing file as bytes.  A transaction
 * is complete exactly when the file (with the write under examination
 * overlaid) holds a valid WAL header and frames committed+1 .. k, k the
 * first frame with a non-zero commit size, that carry the header's salts,
 * a non-zero pgno and validate along the checksum chain: what SQLite's own
 * recovery would adopt (§2 "Assembly rule").  So the write returning
 * FS_WAL_COMMIT is the first one after which a crash would let recovery
 * publish the transaction, whatever SQLite's write pattern or the kernel's
 * fragmentation; holding it keeps the transaction invisible.
 *
 * Threads: one tracker per -wal inode, entered under that inode's mutex.
 *
 * Happy path, per write:
 *   1. A write touching bytes 0..31 may replace the header.  A different
 *      valid header (new WAL, restart, ROLLBACK TO frame 0) resets the log:
 *      committed = 0.  Identical bytes change nothing.
 *   2. A write into frames after @committed cuts validation back to the
 *      frame before the first one it touches.
 *   3. Validation resumes at frame committed+valid+1 and walks forward
 *      while frames are present and valid; the first commit frame ends it
 *      and the transaction is assembled (last image per pgno, pages above
 *      the commit size dropped, pgnos ascending).
 * Cost: step 3 reads a frame only when the write touched it (or the frame
 * before it changed), so SQLite's header-then-page appends and the
 * commit-time header-rewrite pass cost O(frames) page reads per
 * transaction.  Frames past a cut that were validated before and not
 * written since are re-adopted without reading them once the cut frame
 * revalidates to its old checksum (@known), so a data rewrite that
 * restores earlier bytes does not revalidate the whole tail.
 *
 * Failure modes:
 *   - bytes that are not a WAL (a bad complete header, wrong magic or
 *     version bytes in a header fragment, frames with no header): -EINVAL,
 *     nothing changes;
 *   - frame writes that change committed frames: FS_WAL_STALE, nothing
 *     changes (the writer's wal-index misses them);
 *   - pread or allocation failure: -errno, the header state is restored
 *     and validation restarts from @committed at the next write;
 *   - a refused commit (fs__wal_refused): its first frame header is zeroed
 *     and every write is refused until SQLite's retry starts over at
 *     offset 0 or at the header of frame committed+1. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "wal.h"

#define WAL_MAGIC 0x377f0682u
#define WAL_VERSION 3007000u

/* The write being examined: not yet in the backing file. */
struct overlay {
	const uint8_t *buf;
	uint64_t off, end;
};

static uint64_t frame_size(const struct fs_wal *w)
{
	return (uint64_t)w->page_size + FS_WAL_FRAME_HDR;
}

/* Offset of frame @k (1-based). */
static uint64_t frame_off(const struct fs_wal *w, uint64_t k)
{
	return FS_WAL_HDR + (k - 1) * frame_size(w);
}

/* Frame (1-based) holding byte @off >= FS_WAL_HDR. */
static uint64_t frame_at(const struct fs_wal *w, uint64_t off)
{
	return (off - FS_WAL_HDR) / frame_size(w) + 1;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* Does the checksum stored big-endian at @p equal @ck? */
static bool ck_equals(const uint32_t ck[2], const uint8_t *p)
{
	return ck[0] == qf_get_be32(p) && ck[1] == qf_get_be32(p + 4);
}

/* Is @h a header SQLite's recovery accepts (§1)?  Sets *ps and *be. */
static bool parse_header(const uint8_t *h, uint32_t *ps, bool *be)
{
	static const uint32_t zero[2] = {0, 0};
	uint32_t magic = qf_get_be32(h), size = qf_get_be32(h + 8);
	uint32_t ck[2];

	if ((magic & ~1u) != WAL_MAGIC || qf_get_be32(h + 4) != WAL_VERSION)
		return false;
	if (size < 512 || size > 65536 || (size & (size - 1)) != 0)
		return false;
	qf_wal_checksum(magic & 1, h, 24, zero, ck);
	if (!ck_equals(ck, h + 24))
		return false;
	*ps = size;
	*be = magic & 1;
	return true;
}

/* Could the bytes a write puts at 0..7 start a WAL header?  @p holds the
 * bytes for offsets @off .. @end-1. */
static bool header_prefix_ok(const uint8_t *p, uint64_t off, uint64_t end)
{
	static const uint8_t want[8] = {0x37, 0x7f, 0x06, 0x82,
					0x00, 0x2d, 0xe2, 0x18};
	uint64_t i;

	for (i = off; i < end && i < 8; i++) {
		uint8_t b = p[i - off];

		if (b != want[i] && !(i == 3 && b == 0x83))
			return false;
	}
	return true;
}

/* Read @n bytes at @off of the backing file as the tracker sees it: bytes
 * at or past @w->size read as zero (a hole the write would create). */
static int read_file(const struct fs_wal *w, uint8_t *dst, uint64_t off,
		     size_t n)
{
	size_t have = 0;
	long rv;

	if (off < w->size) {
		rv = qf_pread_full(w->fd, dst, min_u64(n, w->size - off),
				   (int64_t)off);
		if (rv < 0)
			return (int)rv;
		have = (size_t)rv;
	}
	memset(dst + have, 0, n - have);
	return 0;
}

/* Read @n bytes at @off of the file with @o overlaid. */
static int read_view(const struct fs_wal *w, const struct overlay *o,
		     uint8_t *dst, uint64_t off, size_t n)
{
	uint64_t p = off, end = off + n;
	int rv;

	while (p < end) {
		uint64_t q;

		if (o != NULL && p >= o->off && p < o->end) {
			q = min_u64(end, o->end);
			memcpy(dst + (p - off), o->buf + (p - o->off), q - p);
		} else {
			q = end;
			if (o != NULL && p < o->off && o->off < q)
				q = o->off;
			rv = read_file(w, dst + (p - off), p, q - p);
			if (rv != 0)
				return rv;
		}
		p = q;
	}
	return 0;
}

/* Bytes @off .. @off+@n-1 of the view, pointing into the write when it
 * covers them all, otherwise read into @w->buf. */
static int view_bytes(struct fs_wal *w, const struct overlay *o,
		      uint64_t off, size_t n, const uint8_t **out)
{
	int rv;

	assert(n <= w->buf_cap);
	if (off >= o->off && off + n <= o->end) {
		*out = o->buf + (off - o->off);
		return 0;
	}
	rv = read_view(w, o, w->buf, off, n);
	*out = w->buf;
	return rv;
}

static int reserve_buf(struct fs_wal *w, uint32_t page_size)
{
	size_t need = (size_t)page_size + FS_WAL_FRAME_HDR;
	uint8_t *b;

	if (w->buf_cap >= need)
		return 0;
	b = realloc(w->buf, need);
	if (b == NULL)
		return -ENOMEM;
	w->buf = b;
	w->buf_cap = need;
	return 0;
}

/* Room for @n frames in @ck and @meta. */
static int reserve_frames(struct fs_wal *w, uint64_t n)
{
	uint64_t cap = w->ck_cap ? w->ck_cap : 64;
	uint32_t *ck, *meta;

	if (n <= w->ck_cap)
		return 0;
	while (cap < n)
		cap *= 2;
	if (cap > SIZE_MAX / (2 * sizeof(uint32_t)))
		return -ENOMEM;
	ck = realloc(w->ck, cap * 2 * sizeof *ck);
	if (ck == NULL)
		return -ENOMEM;
	w->ck = ck;
	meta = realloc(w->meta, cap * 2 * sizeof *meta);
	if (meta == NULL)
		return -ENOMEM;
	w->meta = meta;
	w->ck_cap = cap;
	return 0;
}

/* Adopt the valid header @h. */
static void set_header(struct fs_wal *w, const uint8_t *h, uint32_t ps,
		       bool be)
{
	memcpy(w->hdr, h, FS_WAL_HDR);
	w->have_hdr = true;
	w->page_size = ps;
	w->big_endian = be;
	w->committed = 0;
	w->commit_ck[0] = qf_get_be32(h + 24);
	w->commit_ck[1] = qf_get_be32(h + 28);
	w->valid = 0;
	w->known = 0;
	w->stuck = false;
}

static void drop_header(struct fs_wal *w)
{
	w->have_hdr = false;
	w->committed = 0;
	w->valid = 0;
	w->known = 0;
	w->stuck = false;
}

/* Recovery scan of the whole file: the header and the longest valid frame
 * chain; committed = its last commit frame (§2). */
static int scan(struct fs_wal *w)
{
	uint8_t h[FS_WAL_HDR];
	uint32_t ps, ck[2];
	uint64_t k, fsz;
	bool be;
	int rv;

	drop_header(w);
	if (w->size < FS_WAL_HDR)
		return 0;
	rv = read_file(w, h, 0, FS_WAL_HDR);
	if (rv != 0)
		return rv;
	if (!parse_header(h, &ps, &be))
		return 0;	/* SQLite treats it as an empty WAL */
	rv = reserve_buf(w, ps);
	if (rv != 0)
		return rv;
	set_header(w, h, ps, be);
	ck[0] = w->commit_ck[0];
	ck[1] = w->commit_ck[1];
	fsz = frame_size(w);
	for (k = 1; frame_off(w, k) + fsz <= w->size; k++) {
		const uint8_t *f = w->buf;

		rv = read_file(w, w->buf, frame_off(w, k), fsz);
		if (rv != 0) {
			drop_header(w);
			return rv;
		}
		if (qf_get_be32(f) == 0 || memcmp(f + 8, w->hdr + 16, 8) != 0)
			break;
		qf_wal_checksum(be, f, 8, ck, ck);
		qf_wal_checksum(be, f + FS_WAL_FRAME_HDR, ps, ck, ck);
		if (!ck_equals(ck, f + 16))
			break;
		if (qf_get_be32(f + 4) != 0) {
			w->committed = k;
			w->commit_ck[0] = ck[0];
			w->commit_ck[1] = ck[1];
		}
	}
	return 0;
}

int fs__wal_init(struct fs_wal *w, int fd)
{
	struct stat st;
	int rv;

	memset(w, 0, sizeof *w);
	w->fd = fd;
	if (fstat(fd, &st) != 0)
		return -errno;
	w->size = (uint64_t)st.st_size;
	rv = scan(w);
	if (rv != 0) {
		fs__wal_close(w);
		return rv;
	}
	QF_LOG(QF_DEBUG, "wal init size=%llu frames=%llu",
	       (unsigned long long)w->size, (unsigned long long)w->committed);
	return 0;
}

void fs__wal_close(struct fs_wal *w)
{
	free(w->ck);
	free(w->meta);
	free(w->buf);
	free(w->sort);
	w->ck = w->meta = NULL;
	w->buf = NULL;
	w->sort = NULL;
	w->ck_cap = 0;
	w->buf_cap = 0;
	w->sort_cap = 0;
}

uint64_t fs__wal_frames(const struct fs_wal *w)
{
	return w->committed;
}

/* 0 if the write's bytes at @off .. @off+@n-1 equal the file's, 1 if they
 * differ, or -errno. */
static int differs(struct fs_wal *w, const uint8_t *p, uint64_t off,
		   uint64_t n)
{
	while (n > 0) {
		size_t chunk = (size_t)min_u64(n, w->buf_cap);
		int rv = read_file(w, w->buf, off, chunk);

		if (rv != 0)
			return rv;
		if (memcmp(w->buf, p, chunk) != 0)
			return 1;
		p += chunk;
		off += chunk;
		n -= chunk;
	}
	return 0;
}

/* A write touched frames committed+@a .. committed+@b (@a <= @b): cut
 * validation before @a and forget what it may have changed. */
static void touch(struct fs_wal *w, uint64_t a, uint64_t b)
{
	if (a <= w->valid) {
		/* Frames a+1 .. valid are untouched if b == a; the
		 * remembered frames past valid+1 may not be. */
		w->known = b > a ? a : w->valid;
		w->valid = a - 1;
		w->stuck = false;
	} else if (a == w->valid + 1) {
		if (b > a)
			w->known = min_u64(w->known, a);
		w->stuck = false;
	} else {
		w->known = min_u64(w->known, a - 1);
	}
}

/* Validate frames from committed+valid+1 on, with @o overlaid, up to the
 * first commit frame; *commit = 1 if one was reached. */
static int extend(struct fs_wal *w, const struct overlay *o, int *commit)
{
	uint64_t fsz = frame_size(w), size = max_u64(w->size, o->end);
	int rv;

	*commit = 0;
	for (;;) {
		uint64_t i = w->valid, off = frame_off(w, w->committed + i + 1);
		const uint32_t *prev = i ? &w->ck[2 * (i - 1)] : w->commit_ck;
		uint8_t h[FS_WAL_FRAME_HDR];
		const uint8_t *page;
		uint32_t ck[2], pgno, nt;
		bool same;

		if (off + fsz > size) {
			w->stuck = true;	/* not all written yet */
			return 0;
		}
		rv = read_view(w, o, h, off, sizeof h);
		if (rv != 0)
			return rv;
		pgno = qf_get_be32(h);
		nt = qf_get_be32(h + 4);
		if (pgno == 0 || memcmp(h + 8, w->hdr + 16, 8) != 0) {
			w->stuck = true;	/* stale or zero-salt frame */
			return 0;
		}
		rv = view_bytes(w, o, off + FS_WAL_FRAME_HDR, w->page_size,
				&page);
		if (rv != 0)
			return rv;
		qf_wal_checksum(w->big_endian, h, 8, prev, ck);
		qf_wal_checksum(w->big_endian, page, w->page_size, ck, ck);
		if (!ck_equals(ck, h + 16)) {
			w->stuck = true;	/* partly written or stale */
			return 0;
		}
		if (i >= UINT32_MAX)
			return -EFBIG;	/* assembly indexes frames in 32 bits */
		rv = reserve_frames(w, i + 1);
		if (rv != 0)
			return rv;
		same = i < w->known && w->ck[2 * i] == ck[0] &&
		       w->ck[2 * i + 1] == ck[1] && w->meta[2 * i] == pgno &&
		       w->meta[2 * i + 1] == nt;
		w->ck[2 * i] = ck[0];
		w->ck[2 * i + 1] = ck[1];
		w->meta[2 * i] = pgno;
		w->meta[2 * i + 1] = nt;
		w->valid = i + 1;
		if (!same)
			w->known = w->valid;
		/* Same checksum in: the remembered frames after it are valid
		 * again without reading them. */
		while (same && w->meta[2 * (w->valid - 1) + 1] == 0 &&
		       w->valid < w->known)
			w->valid++;
		if (w->meta[2 * (w->valid - 1) + 1] != 0) {
			*commit = 1;
			return 0;
		}
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Build the transaction of frames committed+1 .. committed+valid, the last
 * one its commit frame. */
static int assemble(struct fs_wal *w, const struct overlay *o, const char *db,
		    struct eng_txn **out)
{
	uint64_t v = w->valid, i, n = 0, j;
	uint32_t nt = w->meta[2 * (v - 1) + 1];
	struct eng_txn *t;
	int rv;

	if (w->sort_cap < v) {
		uint64_t *s = realloc(w->sort, v * sizeof *s);

		if (s == NULL)
			return -ENOMEM;
		w->sort = s;
		w->sort_cap = v;
	}
	/* Key: pgno, then the latest frame first. */
	for (i = 0; i < v; i++)
		if (w->meta[2 * i] <= nt)
			w->sort[n++] = (uint64_t)w->meta[2 * i] << 32 |
				       (UINT32_MAX - (uint32_t)i);
	qsort(w->sort, n, sizeof *w->sort, cmp_u64);
	for (i = 0, j = 0; i < n; i++)
		if (j == 0 || w->sort[i] >> 32 != w->sort[j - 1] >> 32)
			w->sort[j++] = w->sort[i];
	t = eng_txn_new(db, w->page_size, (uint32_t)j);
	if (t == NULL)
		return -ENOMEM;
	t->db_pages = nt;
	for (i = 0; i < j; i++) {
		uint64_t f = UINT32_MAX - (uint32_t)w->sort[i];

		t->pgnos[i] = (uint32_t)(w->sort[i] >> 32);
		rv = read_view(w, o, t->pages + i * (size_t)w->page_size,
			       frame_off(w, w->committed + f + 1) +
				       FS_WAL_FRAME_HDR,
			       w->page_size);
		if (rv != 0) {
			eng_txn_free(t);
			return rv;
		}
	}
	*out = t;
	return 0;
}

/* Saved header state, restored when a write fails after changing it. */
struct saved {
	bool have_hdr, big_endian;
	uint8_t hdr[FS_WAL_HDR];
	uint32_t page_size;
	uint64_t committed;
	uint32_t commit_ck[2];
};

int fs__wal_write(struct fs_wal *w, const void *buf, size_t size,
		  uint64_t off, const char *db, struct eng_txn **txn)
{
	struct overlay o = {buf, off, off + size};
	uint8_t h[FS_WAL_HDR];
	bool new_hdr = false, hv = false, be = false;
	uint32_t ps = w->page_size;
	uint64_t committed = w->committed, start;
	struct saved s;
	int commit = 0, rv;

	*txn = NULL;
	if (w->pending != 0)
		return -EBUSY;	/* a held write is outstanding */
	if (size == 0)
		return FS_WAL_PASS;
	if (size > INT64_MAX || off > (uint64_t)INT64_MAX - size)
		return -EFBIG;
	/* Sticky refusal: SQLite's retry of the refused transaction starts
	 * with the WAL header or the header of frame committed+1; anything
	 * else is a fragment or the resent rest of the refused write. */
	if (w->refused && off != 0 &&
	    !(w->have_hdr && off == frame_off(w, w->committed + 1)))
		return FS_WAL_REFUSE;

	/* Checks first; nothing changes if the write is rejected. */
	if (off < FS_WAL_HDR) {
		if (!header_prefix_ok(o.buf, off, o.end))
			goto einval;
		rv = read_view(w, &o, h, 0, FS_WAL_HDR);
		if (rv != 0)
			return rv;
		hv = parse_header(h, &ps, &be);
		if (!hv && o.end >= FS_WAL_HDR && off == 0)
			goto einval;	/* a whole header, and a bad one */
		/* A partial header write leaves an invalid header until
		 * its other fragments arrive: no WAL until then. */
		new_hdr = !(hv && w->have_hdr &&
			    memcmp(h, w->hdr, FS_WAL_HDR) == 0);
		if (new_hdr)
			committed = 0;
		if (hv) {
			rv = reserve_buf(w, ps);
			if (rv != 0)
				return rv;
		}
	}
	start = max_u64(off, FS_WAL_HDR);
	if (o.end > FS_WAL_HDR) {
		if (new_hdr ? !hv : !w->have_hdr)
			goto einval;	/* frames with no header */
		if (committed > 0) {
			uint64_t cend = frame_off(w, committed + 1);

			if (start < cend) {
				rv = differs(w, o.buf + (start - off), start,
					     min_u64(o.end, cend) - start);
				if (rv < 0)
					return rv;
				if (rv > 0)
					goto stale;
				start = cend;	/* identical: a no-op */
			}
		}
	}

	memcpy(s.hdr, w->hdr, FS_WAL_HDR);
	s.have_hdr = w->have_hdr;
	s.big_endian = w->big_endian;
	s.page_size = w->page_size;
	s.committed = w->committed;
	s.commit_ck[0] = w->commit_ck[0];
	s.commit_ck[1] = w->commit_ck[1];
	if (new_hdr && hv)
		set_header(w, h, ps, be);
	else if (new_hdr)
		drop_header(w);
	if (w->have_hdr) {
		uint64_t f = w->committed + w->valid + 1;

		if (start < o.end)
			touch(w, frame_at(w, start) - w->committed,
			      frame_at(w, o.end - 1) - w->committed);
		/* Growing the file past a partly written frontier frame
		 * fills it with zeros: it must be looked at again. */
		if (w->size < frame_off(w, f) + frame_size(w))
			w->stuck = false;
		if (!w->stuck) {
			rv = extend(w, &o, &commit);
			if (rv == 0 && commit)
				rv = assemble(w, &o, db, txn);
			if (rv != 0)
				goto err;
		}
	}

	w->refused = false;
	if (commit) {
		w->pending = w->valid;
		w->held_end = o.end;
		QF_LOG(QF_DEBUG, "wal commit db=%s frames=%llu..%llu pages=%u",
		       db, (unsigned long long)w->committed + 1,
		       (unsigned long long)(w->committed + w->valid),
		       (*txn)->n);
		return FS_WAL_COMMIT;
	}
	w->size = max_u64(w->size, o.end);
	return FS_WAL_PASS;

stale:
	QF_LOG(QF_WARN, "wal write off=%llu size=%zu: it would change "
	       "committed frames", (unsigned long long)off, size);
	return FS_WAL_STALE;
einval:
	QF_LOG(QF_WARN, "wal write off=%llu size=%zu: not WAL bytes",
	       (unsigned long long)off, size);
	return -EINVAL;
err:
	/* The write will not be applied: back to the file as it is, and
	 * revalidate from @committed at the next write. */
	memcpy(w->hdr, s.hdr, FS_WAL_HDR);
	w->have_hdr = s.have_hdr;
	w->big_endian = s.big_endian;
	w->page_size = s.page_size;
	w->committed = s.committed;
	w->commit_ck[0] = s.commit_ck[0];
	w->commit_ck[1] = s.commit_ck[1];
	w->valid = 0;
	w->known = 0;
	w->stuck = false;
	QF_LOG(QF_WARN, "wal write off=%llu size=%zu: %s",
	       (unsigned long long)off, size, qf_strerror(rv));
	return rv;
}

void fs__wal_committed(struct fs_wal *w)
{
	uint64_t k = w->pending;
	int rv;

	assert(k > 0 && k <= w->valid);
	if (w->held_cut) {
		/* Not SQLite: it holds the WAL write lock during the hold. */
		w->pending = 0;
		w->held_cut = false;
		w->size = max_u64(w->size, w->held_end);
		rv = scan(w);
		if (rv != 0)
			QF_LOG(QF_WARN, "wal rescan after a cut commit: %s",
			       qf_strerror(rv));
		return;
	}
	w->committed += k;
	w->commit_ck[0] = w->ck[2 * (k - 1)];
	w->commit_ck[1] = w->ck[2 * (k - 1) + 1];
	w->size = max_u64(w->size, w->held_end);
	w->pending = 0;
	w->valid = 0;
	w->known = 0;
	w->stuck = false;	/* the held write may reach past the commit */
}

int fs__wal_refused(struct fs_wal *w, uint64_t *zero_off, uint64_t *zero_len)
{
	static const uint8_t zero[FS_WAL_FRAME_HDR];
	uint64_t off, len = 0;
	int rv = 0;

	assert(w->pending > 0);
	w->pending = 0;
	w->held_cut = false;
	w->valid = 0;
	w->known = 0;
	w->stuck = false;
	w->refused = true;
	/* Without the held write the chain is broken already; zeroing the
	 * first header also stops a recovery that finds the transaction
	 * complete by other means (fuse-spike.md §2, constructed case). */
	off = frame_off(w, w->committed + 1);
	if (off < w->size)
		len = min_u64(FS_WAL_FRAME_HDR, w->size - off);
	if (len > 0)
		rv = qf_pwrite_full(w->fd, zero, (size_t)len, (int64_t)off);
	if (rv != 0) {
		QF_LOG(QF_ERROR, "wal refuse: zeroing off=%llu: %s",
		       (unsigned long long)off, qf_strerror(rv));
		len = 0;
	}
	if (zero_off != NULL)
		*zero_off = off;
	if (zero_len != NULL)
		*zero_len = len;
	return rv;
}

struct pf {
	uint32_t pgno;
	uint64_t frame;
};

static int pf_cmp(const void *a, const void *b)
{
	const struct pf *x = a, *y = b;

	if (x->pgno != y->pgno)
		return x->pgno < y->pgno ? -1 : 1;
	return x->frame < y->frame ? -1 : x->frame > y->frame;
}

/* Is the last image of page @v->pgno (frame @v->frame) in @db_fd? */
static int page_in_db(struct fs_wal *w, int db_fd, const struct pf *v)
{
	uint8_t *db_page = malloc(w->page_size);
	long got;
	int rv;

	if (db_page == NULL)
		return -ENOMEM;
	got = qf_pread_full(w->fd, w->buf, w->page_size,
			    (int64_t)frame_off(w, v->frame) + FS_WAL_FRAME_HDR);
	rv = got == (long)w->page_size ? 0 : got < 0 ? (int)got : -EIO;
	if (rv == 0) {
		got = qf_pread_full(db_fd, db_page, w->page_size,
				    (int64_t)(v->pgno - 1) * w->page_size);
		rv = got < 0 ? (int)got
			     : got == (long)w->page_size &&
				       memcmp(db_page, w->buf, w->page_size) ==
					       0;
	}
	free(db_page);
	return rv;
}

int fs__wal_in_db(struct fs_wal *w, int db_fd)
{
	uint64_t n = w->committed, k, i;
	uint32_t db_pages = 0;
	uint8_t h[FS_WAL_FRAME_HDR];
	struct pf *v;
	int rv = 1;

	if (!w->have_hdr || n == 0)
		return 1;
	if (reserve_buf(w, w->page_size) != 0 ||
	    (v = malloc(n * sizeof *v)) == NULL)
		return -ENOMEM;
	for (k = 1; k <= n && rv == 1; k++) {
		long got = qf_pread_full(w->fd, h, sizeof h,
					 (int64_t)frame_off(w, k));

		if (got != (long)sizeof h) {
			rv = got < 0 ? (int)got : -EIO;
			break;
		}
		v[k - 1].pgno = qf_get_be32(h);
		v[k - 1].frame = k;
		if (qf_get_be32(h + 4) != 0)
			db_pages = qf_get_be32(h + 4);
	}
	if (rv == 1)
		qsort(v, n, sizeof *v, pf_cmp);
	for (i = 0; rv == 1 && i < n; i++)
		if ((i + 1 == n || v[i + 1].pgno != v[i].pgno) &&
		    v[i].pgno <= db_pages)
			rv = page_in_db(w, db_fd, &v[i]);
	free(v);
	return rv;
}

void fs__wal_truncated(struct fs_wal *w, uint64_t size)
{
	int rv;

	if (w->pending != 0) {
		/* The held write lands later: keep the held transaction
		 * unless its frames were cut. */
		if (size < frame_off(w, w->committed + w->pending + 1))
			w->held_cut = true;
		w->size = size;
		return;
	}
	w->size = size;
	w->stuck = false;
	if (!w->have_hdr || size < FS_WAL_HDR) {
		drop_header(w);
		return;
	}
	if (size < frame_off(w, w->committed + 1)) {
		/* Committed frames cut off: only SQLite's own truncations
		 * after a full checkpoint do that; find what is left. */
		rv = scan(w);
		if (rv != 0)
			QF_LOG(QF_WARN, "wal rescan after truncate: %s",
			       qf_strerror(rv));
		return;
	}
	if (size < frame_off(w, w->committed + w->known + 1)) {
		uint64_t n = (size - frame_off(w, w->committed + 1)) /
			     frame_size(w);

		w->valid = min_u64(w->valid, n);
		w->known = min_u64(w->known, n);
	}
}
