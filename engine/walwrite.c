/* Writing a transaction into a WAL-mode database's -wal and wal-index
 * exactly as SQLite's own writer would (sqlite-io.md §1, §3, §4): what a
 * follower does to make a replicated transaction visible to its local
 * readers without blocking them.
 *
 * One call: take the WRITE lock (-shm byte 120, an OFD lock, so that it
 * conflicts with every SQLite connection's POSIX locks and no close() of
 * another descriptor drops it); read and check the wal-index header;
 * restart the WAL when SQLite would (everything backfilled and no reader
 * on a mark); write a WAL header when the log is empty; append the frames
 * (its own salts and checksum chain); index them (page-number arrays and
 * hash tables); publish the header (copy 2, barrier, copy 1, iChange + 1);
 * unlock.  Readers that began before keep their snapshot: nothing at or
 * below their mxFrame changes.
 *
 * The -shm blocks stay mapped between calls (unmapping a dirty FUSE
 * mapping writes it back synchronously). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"

#define BLOCK 32768u
#define NPAGE 4096u		  /* page numbers per block */
#define NSLOT 8192u		  /* hash slots per block */
#define HDR_BYTES 136u		  /* wal-index header + checkpoint info */
#define NPAGE_ONE (NPAGE - HDR_BYTES / 4) /* 4062 in block 0 */
#define MAX_BLOCKS 4096u	  /* 16 M frames: far beyond any checkpoint */
#define WAL_MAGIC 0x377f0682u	  /* little-endian checksum words */
#define WAL_VERSION 3007000u
#define READMARK_NOT_USED 0xffffffffu
#define SHM_WRITE_LOCK 120
#define SHM_READ1_LOCK 124 /* READ(1..4): 124..127 */

/* The wal-index header (WalIndexHdr), native byte order, 48 bytes. */
struct idx_hdr {
	uint32_t version;
	uint32_t unused;
	uint32_t change;
	uint8_t is_init;
	uint8_t big_end_cksum;
	uint16_t page_size;
	uint32_t mx_frame;
	uint32_t n_page;
	uint32_t frame_cksum[2];
	uint8_t salt[8];
	uint32_t cksum[2];
};

_Static_assert(sizeof(struct idx_hdr) == 48, "WalIndexHdr is 48 bytes");

/* The checkpoint info (WalCkptInfo) at offset 96. */
struct ckpt_info {
	uint32_t n_backfill;
	uint32_t read_mark[5];
	uint8_t lock[8];
	uint32_t n_backfill_attempted;
	uint32_t unused;
};

_Static_assert(sizeof(struct ckpt_info) == 40, "WalCkptInfo is 40 bytes");

struct eng_walw {
	int wal_fd, shm_fd;
	uint8_t *blocks[MAX_BLOCKS]; /* mapped -shm blocks, or NULL */
	unsigned n_blocks;	     /* blocks[0..n_blocks) may be set */
	uint32_t mx_frame;	     /* published by the last write */
};

uint32_t eng_walw_frames(const struct eng_walw *w)
{
	return w->mx_frame;
}

int eng_walw_open(struct eng_walw **w, int wal_fd, int shm_fd)
{
	*w = calloc(1, sizeof **w);
	if (*w == NULL)
		return -ENOMEM;
	(*w)->wal_fd = wal_fd;
	(*w)->shm_fd = shm_fd;
	return 0;
}

void eng_walw_close(struct eng_walw *w)
{
	unsigned i;

	if (w == NULL)
		return;
	for (i = 0; i < w->n_blocks; i++)
		if (w->blocks[i] != NULL)
			munmap(w->blocks[i], BLOCK);
	free(w);
}

/* ---- locks ---- */

static int shm_lock(struct eng_walw *w, short type, off_t start, off_t len)
{
	struct flock fl = {.l_type = type, .l_whence = SEEK_SET,
			   .l_start = start, .l_len = len};

	if (fcntl(w->shm_fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	return errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
}

/* ---- -shm blocks ---- */

/* Grow the -shm to cover block @i the way SQLite does: a 1-byte zero
 * write at the last byte of every 4 KiB page (only the holder of the
 * WRITE lock extends it). */
static int extend_shm(struct eng_walw *w, unsigned i)
{
	struct stat st;
	off_t end = (off_t)(i + 1) * BLOCK, off;
	uint8_t zero = 0;
	int rv;

	if (fstat(w->shm_fd, &st) != 0)
		return -errno;
	for (off = st.st_size - st.st_size % 4096 + 4096; off <= end;
	     off += 4096) {
		rv = qf_pwrite_full(w->shm_fd, &zero, 1, off - 1);
		if (rv != 0)
			return rv;
	}
	return 0;
}

/* Block @i, mapped (and the file extended) if need be; NULL on error
 * with *@rv set. */
static uint8_t *block(struct eng_walw *w, unsigned i, int *rv)
{
	void *p;

	if (i >= MAX_BLOCKS) {
		*rv = -EFBIG;
		return NULL;
	}
	if (i < w->n_blocks && w->blocks[i] != NULL)
		return w->blocks[i];
	*rv = extend_shm(w, i);
	if (*rv != 0)
		return NULL;
	p = mmap(NULL, BLOCK, PROT_READ | PROT_WRITE, MAP_SHARED, w->shm_fd,
		 (off_t)i * BLOCK);
	if (p == MAP_FAILED) {
		*rv = -errno;
		return NULL;
	}
	w->blocks[i] = p;
	if (i >= w->n_blocks)
		w->n_blocks = i + 1;
	return p;
}

/* ---- the header ---- */

static void hdr_checksum(const struct idx_hdr *h, uint32_t out[2])
{
	static const uint32_t zero[2];

	/* Native order: SQLite checksums the header as native words. */
	qf_wal_checksum(false, (const uint8_t *)h,
			offsetof(struct idx_hdr, cksum), zero, out);
}

/* Read the header as a reader would: copy 1, barrier, copy 2; both
 * equal, initialised and checksummed.  QF_EMALFORMED otherwise (SQLite
 * has to recover it first). */
static int read_hdr(const uint8_t *b0, struct idx_hdr *h)
{
	struct idx_hdr h2;
	uint32_t ck[2];

	memcpy(h, b0, sizeof *h);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	memcpy(&h2, b0 + sizeof *h, sizeof h2);
	if (memcmp(h, &h2, sizeof *h) != 0 || h->is_init != 1 ||
	    h->version != WAL_VERSION || h->big_end_cksum != 0)
		return QF_EMALFORMED;
	hdr_checksum(h, ck);
	if (ck[0] != h->cksum[0] || ck[1] != h->cksum[1])
		return QF_EMALFORMED;
	return 0;
}

/* Publish @h: checksum, copy 2, full barrier, copy 1 (§4 step 5). */
static void publish_hdr(uint8_t *b0, struct idx_hdr *h)
{
	h->is_init = 1;
	h->version = WAL_VERSION;
	hdr_checksum(h, h->cksum);
	memcpy(b0 + sizeof *h, h, sizeof *h);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	memcpy(b0, h, sizeof *h);
}

static struct ckpt_info *ckpt_of(uint8_t *b0)
{
	return (struct ckpt_info *)(void *)(b0 + 96);
}

static uint32_t hdr_page_size(const struct idx_hdr *h)
{
	return h->page_size == 1 ? 65536u : h->page_size;
}

/* ---- the hash tables ---- */

/* Block @b's page-number array, hash slots and first frame - 1. */
struct loc {
	uint32_t *pgno;
	uint16_t *hash;
	uint32_t zero;
};

static unsigned block_of(uint32_t frame)
{
	return (frame + NPAGE - NPAGE_ONE - 1) / NPAGE; /* (F+33) div 4096 */
}

static void locate(uint8_t *b, unsigned i, struct loc *l)
{
	uint32_t *words = (uint32_t *)(void *)b;

	l->hash = (uint16_t *)(void *)(words + NPAGE);
	if (i == 0) {
		l->pgno = words + HDR_BYTES / 4;
		l->zero = 0;
	} else {
		l->pgno = words;
		l->zero = NPAGE_ONE + (i - 1) * NPAGE;
	}
}

static unsigned hash_of(uint32_t pgno)
{
	return (pgno * 383u) & (NSLOT - 1);
}

/* Entries beyond @mx_frame left by a writer that died: clear their hash
 * slots and the array tail in the block holding @mx_frame (SQLite's
 * walCleanupHash; later blocks are cleared when first used). */
static int cleanup_stale(struct eng_walw *w, uint32_t mx_frame)
{
	unsigned i = block_of(mx_frame), k;
	struct loc l;
	uint32_t limit;
	uint8_t *b;
	int rv = 0;

	if (mx_frame == 0)
		return 0;
	b = block(w, i, &rv);
	if (b == NULL)
		return rv;
	locate(b, i, &l);
	limit = mx_frame - l.zero;
	for (k = 0; k < NSLOT; k++)
		if (l.hash[k] > limit)
			l.hash[k] = 0;
	memset(&l.pgno[limit], 0,
	       (size_t)((uint8_t *)l.hash - (uint8_t *)&l.pgno[limit]));
	return 0;
}

/* Index frame @frame as page @pgno; @mx_frame is the published end. */
static int index_frame(struct eng_walw *w, uint32_t frame, uint32_t pgno,
		       uint32_t mx_frame)
{
	unsigned i = block_of(frame), key, collide;
	struct loc l;
	uint32_t idx;
	uint8_t *b;
	int rv = 0;

	b = block(w, i, &rv);
	if (b == NULL)
		return rv;
	locate(b, i, &l);
	idx = frame - l.zero;
	if (idx == 1) /* a new block: clear array and hash */
		memset(l.pgno, 0, (size_t)((uint8_t *)(l.hash + NSLOT) -
					   (uint8_t *)l.pgno));
	if (l.pgno[idx - 1] != 0) {
		rv = cleanup_stale(w, mx_frame);
		if (rv != 0)
			return rv;
	}
	collide = idx;
	for (key = hash_of(pgno); l.hash[key] != 0;
	     key = (key + 1) & (NSLOT - 1))
		if (collide-- == 0)
			return QF_EMALFORMED; /* a corrupt table */
	l.pgno[idx - 1] = pgno;
	__atomic_store_n(&l.hash[key], (uint16_t)idx, __ATOMIC_RELAXED);
	return 0;
}

/* ---- the WAL file ---- */

/* Restart the log if SQLite's writer would: all of it backfilled and no
 * reader on READ(1..4).  Updates @h (published) and the marks. */
static bool maybe_restart(struct eng_walw *w, uint8_t *b0, struct idx_hdr *h)
{
	struct ckpt_info *ci = ckpt_of(b0);
	uint32_t salt1, salt2;
	int i;

	if (h->mx_frame == 0 ||
	    __atomic_load_n(&ci->n_backfill, __ATOMIC_SEQ_CST) != h->mx_frame)
		return false;
	if (shm_lock(w, F_WRLCK, SHM_READ1_LOCK, 4) != 0)
		return false; /* readers still on the log: append instead */
	salt1 = qf_get_be32(h->salt) + 1;
	if (getrandom(&salt2, sizeof salt2, 0) != sizeof salt2)
		salt2 = (uint32_t)rand();
	qf_put_be32(h->salt, salt1);
	memcpy(h->salt + 4, &salt2, 4);
	h->mx_frame = 0;
	h->change++;
	publish_hdr(b0, h);
	__atomic_store_n(&ci->n_backfill, 0, __ATOMIC_SEQ_CST);
	ci->n_backfill_attempted = 0;
	ci->read_mark[1] = 0;
	for (i = 2; i < 5; i++)
		ci->read_mark[i] = READMARK_NOT_USED;
	(void)shm_lock(w, F_UNLCK, SHM_READ1_LOCK, 4);
	return true;
}

/* A new WAL header for an empty log.  Unless a restart just chose them,
 * new salts: salt-1 moves on from the last one (stale frames then fail
 * the salt check), salt-2 is random. */
static int write_wal_header(struct eng_walw *w, struct idx_hdr *h,
			    uint32_t page_size, bool restarted)
{
	static const uint32_t zero[2];
	uint8_t wh[32];
	uint32_t ckpt_seq = 0, salt2;
	long n;

	n = qf_pread_full(w->wal_fd, wh, sizeof wh, 0);
	if (n < 0)
		return (int)n;
	if (n == 32 && (qf_get_be32(wh) & ~1u) == (WAL_MAGIC & ~1u))
		ckpt_seq = qf_get_be32(wh + 12) + 1;
	if (!restarted) {
		if (getrandom(&salt2, sizeof salt2, 0) != sizeof salt2)
			salt2 = (uint32_t)rand();
		qf_put_be32(h->salt, qf_get_be32(h->salt) + 1);
		memcpy(h->salt + 4, &salt2, 4);
	}
	qf_put_be32(wh, WAL_MAGIC);
	qf_put_be32(wh + 4, WAL_VERSION);
	qf_put_be32(wh + 8, page_size);
	qf_put_be32(wh + 12, ckpt_seq);
	memcpy(wh + 16, h->salt, 8);
	qf_wal_checksum(false, wh, 24, zero, h->frame_cksum);
	qf_put_be32(wh + 24, h->frame_cksum[0]);
	qf_put_be32(wh + 28, h->frame_cksum[1]);
	h->page_size = page_size == 65536 ? 1 : (uint16_t)page_size;
	return qf_pwrite_full(w->wal_fd, wh, sizeof wh, 0);
}

/* The log is not empty: it must be ours to extend (same salts and page
 * size in the file's header as in the index). */
static int check_wal_header(struct eng_walw *w, const struct idx_hdr *h,
			    uint32_t page_size)
{
	uint8_t wh[32];
	long n = qf_pread_full(w->wal_fd, wh, sizeof wh, 0);

	if (n < 0)
		return (int)n;
	if (n != 32 || qf_get_be32(wh) != WAL_MAGIC ||
	    memcmp(wh + 16, h->salt, 8) != 0 ||
	    qf_get_be32(wh + 8) != page_size ||
	    hdr_page_size(h) != page_size)
		return QF_EMALFORMED;
	return 0;
}

/* Frames encoded and written per batch: what a write holds in memory. */
#define BATCH_FRAMES 256u

/* Append @src's pages as frames after @h->mx_frame, and index them; the
 * last one carries the commit size.  Advances h->frame_cksum. */
static int write_frames(struct eng_walw *w, const struct eng_walw_src *src,
			struct idx_hdr *h)
{
	size_t fsz = 24 + (size_t)src->page_size;
	uint32_t per = src->n < BATCH_FRAMES ? src->n : BATCH_FRAMES;
	uint32_t pgnos[BATCH_FRAMES], mx = h->mx_frame, i, j, k;
	uint8_t *buf = malloc(fsz * per), *f;
	int rv = 0;

	if (buf == NULL)
		return -ENOMEM;
	for (i = 0; i < src->n && rv == 0; i += k) {
		k = src->n - i < per ? src->n - i : per;
		rv = src->read(src, i, k, pgnos, buf + 24, fsz);
		for (j = 0; j < k && rv == 0; j++) {
			f = buf + j * fsz;
			qf_put_be32(f, pgnos[j]);
			qf_put_be32(f + 4, i + j + 1 == src->n ? src->db_pages : 0);
			memcpy(f + 8, h->salt, 8);
			qf_wal_checksum(false, f, 8, h->frame_cksum,
					h->frame_cksum);
			qf_wal_checksum(false, f + 24, src->page_size,
					h->frame_cksum, h->frame_cksum);
			qf_put_be32(f + 16, h->frame_cksum[0]);
			qf_put_be32(f + 20, h->frame_cksum[1]);
		}
		if (rv == 0)
			rv = qf_pwrite_full(w->wal_fd, buf, fsz * k,
					    32 + (int64_t)(mx + i) * (int64_t)fsz);
		for (j = 0; j < k && rv == 0; j++)
			rv = index_frame(w, mx + i + j + 1, pgnos[j], mx);
	}
	free(buf);
	return rv;
}

static int write_locked(struct eng_walw *w, const struct eng_walw_src *src)
{
	struct idx_hdr h;
	uint32_t mx;
	bool restarted;
	uint8_t *b0;
	int rv = 0;

	b0 = block(w, 0, &rv);
	if (b0 == NULL)
		return rv;
	rv = read_hdr(b0, &h);
	if (rv != 0)
		return rv;
	restarted = maybe_restart(w, b0, &h);
	if (h.mx_frame == 0)
		rv = write_wal_header(w, &h, src->page_size, restarted);
	else
		rv = check_wal_header(w, &h, src->page_size);
	if (rv != 0)
		return rv;
	mx = h.mx_frame;
	rv = write_frames(w, src, &h);
	if (rv != 0)
		return rv; /* unpublished: readers never see these frames */
	h.mx_frame = mx + src->n;
	h.n_page = src->db_pages;
	h.change++;
	publish_hdr(b0, &h);
	w->mx_frame = h.mx_frame;
	return 0;
}

/* The last frame holding @pgno among the first @mx_frame, as SQLite's
 * walFindFrame finds it: blocks newest first, and in a block the largest
 * matching index.  0 when the log does not hold the page. */
static int find_frame(struct eng_walw *w, uint32_t pgno, uint32_t mx_frame,
		      uint32_t *frame)
{
	unsigned i, key, probes;
	uint32_t idx, f;
	struct loc l;
	uint8_t *b;
	int rv = 0;

	*frame = 0;
	if (mx_frame == 0)
		return 0;
	for (i = block_of(mx_frame) + 1; i-- > 0;) {
		b = block(w, i, &rv);
		if (b == NULL)
			return rv;
		locate(b, i, &l);
		probes = 0;
		for (key = hash_of(pgno);
		     (idx = __atomic_load_n(&l.hash[key], __ATOMIC_RELAXED)) != 0;
		     key = (key + 1) & (NSLOT - 1)) {
			if (++probes > NSLOT)
				return QF_EMALFORMED;
			f = l.zero + idx;
			if (f <= mx_frame && f > *frame && l.pgno[idx - 1] == pgno)
				*frame = f;
		}
		if (*frame != 0)
			return 0;
	}
	return 0;
}

static int read_page_locked(struct eng_walw *w, int db_fd, uint32_t pgno,
			    uint32_t page_size, uint8_t *buf);

int eng_walw_read_page(struct eng_walw *w, int db_fd, uint32_t pgno,
		       uint32_t page_size, uint8_t *buf)
{
	/* The WRITE lock keeps a checkpoint from restarting or truncating
	 * the log between finding the frame and reading it. */
	int rv = shm_lock(w, F_WRLCK, SHM_WRITE_LOCK, 1);

	if (rv != 0)
		return rv;
	rv = read_page_locked(w, db_fd, pgno, page_size, buf);
	(void)shm_lock(w, F_UNLCK, SHM_WRITE_LOCK, 1);
	return rv;
}

static int read_page_locked(struct eng_walw *w, int db_fd, uint32_t pgno,
			    uint32_t page_size, uint8_t *buf)
{
	struct idx_hdr h;
	uint32_t frame = 0;
	uint8_t *b0;
	long got;
	int rv = 0;

	b0 = block(w, 0, &rv);
	if (b0 == NULL)
		return rv;
	rv = read_hdr(b0, &h);
	if (rv == 0 && h.mx_frame > 0 && hdr_page_size(&h) != page_size)
		return QF_EMALFORMED;
	if (rv == 0)
		rv = find_frame(w, pgno, h.mx_frame, &frame);
	if (rv != 0)
		return rv;
	if (frame != 0)
		got = qf_pread_full(w->wal_fd, buf, page_size,
				    32 + (int64_t)(frame - 1) *
						 (int64_t)(page_size + 24) + 24);
	else
		got = qf_pread_full(db_fd, buf, page_size,
				    (int64_t)(pgno - 1) * (int64_t)page_size);
	if (got < 0)
		return (int)got;
	memset(buf + got, 0, page_size - (size_t)got);
	return 0;
}

int eng_walw_invalidate(struct eng_walw *w)
{
	uint8_t *b0;
	int rv = shm_lock(w, F_WRLCK, SHM_WRITE_LOCK, 1);

	if (rv != 0)
		return rv;
	b0 = block(w, 0, &rv);
	if (b0 != NULL) {
		/* Copy 1 uninitialised, so the copies differ: the next
		 * connection to read the header runs recovery (it takes the
		 * WRITE lock, which we hold until the header is so). */
		((struct idx_hdr *)(void *)b0)->is_init = 0;
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
	}
	(void)shm_lock(w, F_UNLCK, SHM_WRITE_LOCK, 1);
	return rv;
}

int eng_walw_write_from(struct eng_walw *w, const struct eng_walw_src *src)
{
	int rv;

	if (src->n == 0 || src->db_pages == 0)
		return -EINVAL;
	rv = shm_lock(w, F_WRLCK, SHM_WRITE_LOCK, 1);
	if (rv != 0)
		return rv;
	rv = write_locked(w, src);
	(void)shm_lock(w, F_UNLCK, SHM_WRITE_LOCK, 1); /* nothing to undo */
	return rv;
}

/* A transaction's pages, from memory. */
static int read_txn(const struct eng_walw_src *src, uint32_t i, uint32_t k,
		    uint32_t *pgnos, uint8_t *out, size_t stride)
{
	const struct eng_txn *t = src->arg;
	uint32_t j;

	for (j = 0; j < k; j++) {
		pgnos[j] = t->pgnos[i + j];
		memcpy(out + j * stride, t->pages + (size_t)(i + j) * t->page_size,
		       t->page_size);
	}
	return 0;
}

void eng_walw_src_of_txn(struct eng_walw_src *src, const struct eng_txn *t)
{
	*src = (struct eng_walw_src){t->n, t->page_size, t->db_pages, read_txn,
				     (void *)t};
}

int eng_walw_write(struct eng_walw *w, const struct eng_txn *t)
{
	struct eng_walw_src src;

	eng_walw_src_of_txn(&src, t);
	return eng_walw_write_from(w, &src);
}
