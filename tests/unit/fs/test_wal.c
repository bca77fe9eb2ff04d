/* Unit tests for the WAL tracker (fs/wal.c).
 *
 * Most tests replay write sequences captured from real SQLite 3.40.1
 * sessions (tests/unit/fs/capture/ records them into
 * tests/unit/data/wal/).  A replay feeds each -wal write to a tracker over
 * a temporary backing file the way fs/fs.c does: a PASS write is applied,
 * a COMMIT is checked, committed and its held write applied.  Each
 * assembled transaction is applied to a shadow image that starts from the
 * capture's base database; at the end the shadow must equal, page by
 * page, the database SQLite itself produced (checkpointed at its last
 * close), and the number of transactions must equal SQLite's commits.
 * Writes can be split the way the kernel fragments them, or anywhere.
 *
 * Independent checks use this file's own recovery scanner and checksum,
 * not the tracker's.  This file also defines pread() so that the I/O the
 * tracker does can be counted (the real call is made with syscall()). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../../../fs/wal.h"
#include "../../lib/unit.h"

#ifndef QF_TEST_DATA
#error "QF_TEST_DATA must name tests/unit/data"
#endif

#define DB_NAME "dir/t.db"

/* ---- counting pread ---- */

static uint64_t pread_bytes; /* bytes read through pread() */

/* Replaces libc's pread for this executable: the tracker's reads. */
ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	long rv = syscall(SYS_pread64, fd, buf, n, off);

	if (rv > 0)
		pread_bytes += (uint64_t)rv;
	return rv;
}

/* ---- files ---- */

/* Read all of @path; NULL if it cannot be read. */
static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t done = 0;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return NULL;
	}
	p = malloc((size_t)st.st_size + 1);
	while (p != NULL && done < (size_t)st.st_size) {
		ssize_t rv = read(fd, p + done, (size_t)st.st_size - done);

		if (rv <= 0) {
			free(p);
			p = NULL;
			break;
		}
		done += (size_t)rv;
	}
	close(fd);
	*len = done;
	return p;
}

/* A fresh empty temporary file, unlinked; its fd. */
static int temp_fd(void)
{
	char path[] = "/tmp/qf-test-wal-XXXXXX";
	int fd = mkstemp(path);

	if (fd >= 0)
		unlink(path);
	return fd;
}

static int put_bytes(int fd, const void *p, size_t n, uint64_t off)
{
	return qf_pwrite_full(fd, p, n, (int64_t)off);
}

/* ---- the test's own WAL reading (independent of fs/wal.c) ---- */

static void ref_cksum(bool be, const uint8_t *p, size_t n, uint32_t s[2])
{
	size_t i;

	for (i = 0; i < n; i += 8) {
		const uint8_t *q = p + i;
		uint32_t a = be ? qf_get_be32(q) : qf_get_le32(q);
		uint32_t b = be ? qf_get_be32(q + 4) : qf_get_le32(q + 4);

		s[0] += a + s[1];
		s[1] += b + s[0];
	}
}

/* What SQLite's recovery would adopt from the file behind @fd: the number
 * of frames up to the last valid commit frame. */
static uint64_t ref_scan(int fd)
{
	struct stat st;
	uint8_t *p;
	uint64_t size, k, last = 0, fsz;
	uint32_t ps, s[2] = {0, 0};
	bool be;

	if (fstat(fd, &st) != 0 || st.st_size < 32)
		return 0;
	size = (uint64_t)st.st_size;
	p = malloc(size);
	if (p == NULL || syscall(SYS_pread64, fd, p, size, 0) != (long)size) {
		free(p);
		return UINT64_MAX;
	}
	ps = qf_get_be32(p + 8);
	be = qf_get_be32(p) & 1;
	ref_cksum(be, p, 24, s);
	if ((qf_get_be32(p) & ~1u) != 0x377f0682u ||
	    qf_get_be32(p + 4) != 3007000 || ps < 512 || ps > 65536 ||
	    (ps & (ps - 1)) || s[0] != qf_get_be32(p + 24) ||
	    s[1] != qf_get_be32(p + 28))
		goto out;
	fsz = ps + 24;
	for (k = 1; 32 + k * fsz <= size; k++) {
		const uint8_t *f = p + 32 + (k - 1) * fsz;

		if (qf_get_be32(f) == 0 || memcmp(f + 8, p + 16, 8) != 0)
			break;
		ref_cksum(be, f, 8, s);
		ref_cksum(be, f + 24, ps, s);
		if (s[0] != qf_get_be32(f + 16) || s[1] != qf_get_be32(f + 20))
			break;
		if (qf_get_be32(f + 4) != 0)
			last = k;
	}
out:
	free(p);
	return last;
}

/* ---- synthetic WAL bytes, for tests that need a shape SQLite does not
 * produce on demand ---- */

static void synth_header(uint8_t h[32], uint32_t ps, uint32_t salt1)
{
	uint32_t s[2] = {0, 0};

	qf_put_be32(h, 0x377f0682u);
	qf_put_be32(h + 4, 3007000);
	qf_put_be32(h + 8, ps);
	qf_put_be32(h + 12, 0);
	qf_put_be32(h + 16, salt1);
	qf_put_be32(h + 20, 0x5a17u);
	ref_cksum(false, h, 24, s);
	qf_put_be32(h + 24, s[0]);
	qf_put_be32(h + 28, s[1]);
}

/* Frame header for @page, continuing the chain @s (updated). */
static void synth_frame(uint8_t fh[24], const uint8_t *hdr, uint32_t pgno,
			uint32_t nt, const uint8_t *page, uint32_t ps,
			uint32_t s[2])
{
	qf_put_be32(fh, pgno);
	qf_put_be32(fh + 4, nt);
	memcpy(fh + 8, hdr + 16, 8);
	ref_cksum(false, fh, 8, s);
	ref_cksum(false, page, ps, s);
	qf_put_be32(fh + 16, s[0]);
	qf_put_be32(fh + 20, s[1]);
}

static void fill_page(uint8_t *page, uint32_t ps, uint32_t seed)
{
	uint32_t i;

	for (i = 0; i < ps; i++)
		page[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 8));
}

/* ---- captures ---- */

struct rec {
	char kind; /* 'W' write, 'T' truncate, 'S' sync */
	uint64_t off;
	uint32_t len;
	const uint8_t *data;
};

struct capture {
	const char *name;
	uint8_t *raw, *base, *final;
	size_t raw_len, base_len, final_len;
	struct rec *recs;
	size_t n;
	int commits;
	uint32_t page_size;
};

static const char *const all_captures[] = {
	"autocommit_full", "autocommit_normal", "spill", "savepoint",
	"sp0",		   "restart",		"vacuum",	   "psow0",
};
#define N_CAPTURES (sizeof all_captures / sizeof all_captures[0])

static uint8_t *load_part(const char *name, const char *ext, size_t *len)
{
	char path[512];

	snprintf(path, sizeof path, "%s/wal/%s%s", QF_TEST_DATA, name, ext);
	return slurp(path, len);
}

static void free_capture(struct capture *c)
{
	free(c->raw);
	free(c->base);
	free(c->final);
	free(c->recs);
	memset(c, 0, sizeof *c);
}

static int load_capture(const char *name, struct capture *c)
{
	size_t i, txt_len = 0, cap_recs = 0;
	uint8_t *txt;

	memset(c, 0, sizeof *c);
	c->name = name;
	c->raw = load_part(name, ".cap", &c->raw_len);
	c->base = load_part(name, ".base.db", &c->base_len);
	c->final = load_part(name, ".final.db", &c->final_len);
	txt = load_part(name, ".txt", &txt_len);
	ASSERT_NOT_NULL(c->raw);
	ASSERT_NOT_NULL(c->base);
	ASSERT_NOT_NULL(c->final);
	ASSERT_NOT_NULL(txt);
	txt[txt_len] = '\0';
	if (sscanf((char *)txt, "commits %d", &c->commits) != 1)
		c->commits = -1;
	free(txt);
	ASSERT_TRUE(c->commits > 0);
	ASSERT_TRUE(c->base_len >= 100);
	c->page_size = qf_sqlite_page_size(c->base);
	ASSERT_TRUE(c->page_size != 0);
	ASSERT_TRUE(c->raw_len >= 16 && memcmp(c->raw, "QFWALCAP", 8) == 0);
	for (i = 16; i < c->raw_len;) {
		struct rec r;

		ASSERT_TRUE(i + 16 <= c->raw_len);
		r.kind = (char)c->raw[i];
		r.len = qf_get_le32(c->raw + i + 4);
		r.off = qf_get_le64(c->raw + i + 8);
		r.data = c->raw + i + 16;
		i += 16 + r.len;
		ASSERT_TRUE(i <= c->raw_len);
		ASSERT_TRUE(r.kind == 'W' || r.kind == 'T' || r.kind == 'S');
		if (c->n == cap_recs) {
			cap_recs = cap_recs ? 2 * cap_recs : 256;
			c->recs = realloc(c->recs, cap_recs * sizeof *c->recs);
			ASSERT_NOT_NULL(c->recs);
		}
		c->recs[c->n++] = r;
	}
	return TEST_OK;
}

/* ---- replay ---- */

/* Transactions SQLite committed plus, under psow=0, one for each padding
 * frame (which changes no page): @ntxn and @noops must account for them. */
static int count_matches(const struct capture *c, size_t ntxn,
			 unsigned noops)
{
	if (strcmp(c->name, "psow0") != 0)
		ASSERT_EQ(noops, 0);
	ASSERT_EQ(ntxn - noops, c->commits);
	return TEST_OK;
}

enum split { SPLIT_NONE, SPLIT_KERNEL, SPLIT_RANDOM, SPLIT_BYTE };

/* What the capture shows about SQLite's writes, counted per unsplit write
 * against the replay's commit points. */
struct stats {
	unsigned syncs;	       /* fsync/fdatasync of the WAL */
	unsigned hdr_mid_txn;  /* header at 0 after frames of the open txn */
	unsigned restarts;     /* header with new salts over older frames */
	unsigned data_only;    /* page rewritten without its header */
	unsigned hdr_rewrites; /* header rewritten after its page */
	unsigned slot_reuse;   /* an open txn's slot reused for another page */
	unsigned shrinks;      /* a commit that made the database smaller */
	unsigned noops;	       /* a transaction that changed no page */
};

struct replay {
	const struct capture *cap;
	enum split split;
	uint64_t rng;
	unsigned max_piece;    /* SPLIT_RANDOM: pieces of 1..max_piece bytes */
	bool check_scan;       /* compare with ref_scan after each change */
	unsigned refuse_every; /* refuse and retry every Nth commit */
	bool apply_first;      /* apply the held write before committed() */
	/* State. */
	struct fs_wal w;
	int fd;
	uint8_t *shadow;
	size_t shadow_len, shadow_cap;
	uint64_t *digests;
	size_t ntxn, digests_cap;
	unsigned commits_seen; /* COMMIT results, refused ones included */
	unsigned refused;
	bool retrying;
	uint64_t retry_digest;
	uint32_t db_pages;
	struct stats st;
	/* Per-frame bookkeeping for the stats: generation (commit count + 1)
	 * in which the header / page was last written, and its pgno. */
	uint32_t *hdr_gen, *data_gen, *slot_pgno;
	size_t slots;
	int last_hdr_frame;
};

static uint64_t txn_digest(const struct eng_txn *t)
{
	uint64_t h = qf_hash64(t->pgnos, t->n * sizeof *t->pgnos, t->db_pages);

	return qf_hash64(t->pages, (size_t)t->n * t->page_size, h);
}

static uint64_t next_rand(struct replay *r)
{
	r->rng ^= r->rng << 13;
	r->rng ^= r->rng >> 7;
	r->rng ^= r->rng << 17;
	return r->rng;
}

static size_t piece_len(struct replay *r, uint64_t off, size_t left)
{
	size_t n = left;

	switch (r->split) {
	case SPLIT_NONE:
		break;
	case SPLIT_KERNEL:
		n = 4096 - (size_t)(off % 4096);
		break;
	case SPLIT_RANDOM:
		n = 1 + (size_t)(next_rand(r) % r->max_piece);
		break;
	case SPLIT_BYTE:
		n = 1;
		break;
	}
	return n < left ? n : left;
}

static int check_scan(struct replay *r)
{
	if (r->check_scan)
		ASSERT_EQ(ref_scan(r->fd), fs__wal_frames(&r->w));
	return TEST_OK;
}

/* Apply @t to the shadow database after checking its shape. */
static int shadow_apply(struct replay *r, const struct eng_txn *t)
{
	size_t ps = r->cap->page_size, need;
	uint32_t i;

	ASSERT_TRUE(strcmp(t->db, DB_NAME) == 0);
	ASSERT_EQ(t->page_size, ps);
	ASSERT_TRUE(t->n >= 1);
	ASSERT_TRUE(t->db_pages >= 1);
	for (i = 0; i < t->n; i++) {
		ASSERT_TRUE(t->pgnos[i] >= 1 && t->pgnos[i] <= t->db_pages);
		if (i > 0)
			ASSERT_TRUE(t->pgnos[i] > t->pgnos[i - 1]);
	}
	need = (size_t)t->db_pages * ps;
	if (need > r->shadow_cap) {
		r->shadow = realloc(r->shadow, need);
		ASSERT_NOT_NULL(r->shadow);
		r->shadow_cap = need;
	}
	if (need > r->shadow_len)
		memset(r->shadow + r->shadow_len, 0, need - r->shadow_len);
	for (i = 0; i < t->n; i++)
		if (memcmp(r->shadow + (size_t)(t->pgnos[i] - 1) * ps,
			   t->pages + (size_t)i * ps, ps) != 0)
			break;
	if (i == t->n && need == r->shadow_len)
		r->st.noops++;
	r->shadow_len = need;
	for (i = 0; i < t->n; i++)
		memcpy(r->shadow + (size_t)(t->pgnos[i] - 1) * ps,
		       t->pages + (size_t)i * ps, ps);
	if (t->db_pages < r->db_pages)
		r->st.shrinks++;
	r->db_pages = t->db_pages;
	return TEST_OK;
}

static int push_digest(struct replay *r, uint64_t d)
{
	if (r->ntxn == r->digests_cap) {
		r->digests_cap = r->digests_cap ? 2 * r->digests_cap : 64;
		r->digests = realloc(r->digests,
				     r->digests_cap * sizeof *r->digests);
		ASSERT_NOT_NULL(r->digests);
	}
	r->digests[r->ntxn++] = d;
	return TEST_OK;
}

static int grow_slots(struct replay *r, size_t k)
{
	size_t n = r->slots ? r->slots : 64, old = r->slots;

	if (k < r->slots)
		return TEST_OK;
	while (n <= k)
		n *= 2;
	r->hdr_gen = realloc(r->hdr_gen, n * sizeof *r->hdr_gen);
	r->data_gen = realloc(r->data_gen, n * sizeof *r->data_gen);
	r->slot_pgno = realloc(r->slot_pgno, n * sizeof *r->slot_pgno);
	ASSERT_TRUE(r->hdr_gen && r->data_gen && r->slot_pgno);
	memset(r->hdr_gen + old, 0, (n - old) * sizeof *r->hdr_gen);
	memset(r->data_gen + old, 0, (n - old) * sizeof *r->data_gen);
	memset(r->slot_pgno + old, 0, (n - old) * sizeof *r->slot_pgno);
	r->slots = n;
	return TEST_OK;
}

/* Classify one unsplit SQLite write for struct stats. */
static int note_write(struct replay *r, const struct rec *rec)
{
	uint64_t fsz = r->cap->page_size + 24;
	uint32_t gen = r->commits_seen + 1;
	size_t k;

	if (rec->off == 0) {
		struct stat st;
		bool frames_open = false;

		for (k = 0; k < r->slots; k++)
			if (r->hdr_gen[k] == gen || r->data_gen[k] == gen)
				frames_open = true;
		if (frames_open)
			r->st.hdr_mid_txn++;
		ASSERT_EQ(fstat(r->fd, &st), 0);
		if ((uint64_t)st.st_size >= 32 + fsz && rec->len >= 32 &&
		    r->w.have_hdr &&
		    memcmp(rec->data + 16, r->w.hdr + 16, 8) != 0)
			r->st.restarts++;
		for (k = 0; k < r->slots; k++)
			r->hdr_gen[k] = r->data_gen[k] = 0;
		r->last_hdr_frame = -1;
		return TEST_OK;
	}
	if (rec->off < 32)
		return TEST_OK;
	k = (size_t)((rec->off - 32) / fsz);
	ASSERT_EQ(grow_slots(r, k), TEST_OK);
	if ((rec->off - 32) % fsz == 0 && rec->len == 24) {
		uint32_t pgno = qf_get_be32(rec->data);

		if (r->data_gen[k] == gen)
			r->st.hdr_rewrites++;
		if (r->hdr_gen[k] == gen && r->slot_pgno[k] != pgno)
			r->st.slot_reuse++;
		r->hdr_gen[k] = gen;
		r->slot_pgno[k] = pgno;
		r->last_hdr_frame = (int)k;
	} else if ((rec->off - 32) % fsz == 24 &&
		   rec->len == r->cap->page_size) {
		if (r->last_hdr_frame != (int)k)
			r->st.data_only++;
		r->data_gen[k] = gen;
		r->last_hdr_frame = -1;
	}
	return TEST_OK;
}

/* Feed records [from, to] of the capture; on a refusal, feed the retry. */
static int feed_range(struct replay *r, size_t from, size_t to);

/* Feed one write of the capture, split per @r->split.  *committed_out is
 * set if one of its pieces committed a transaction; *refused_out if one
 * was refused (the rest of the write is then refused too). */
static int feed_write(struct replay *r, size_t idx, bool *committed_out,
		      bool *refused_out)
{
	const struct rec *rec = &r->cap->recs[idx];
	size_t done = 0;

	*committed_out = *refused_out = false;
	if (r->split == SPLIT_NONE && !r->retrying)
		ASSERT_EQ(note_write(r, rec), TEST_OK);
	while (done < rec->len) {
		uint64_t off = rec->off + done;
		size_t n = piece_len(r, off, rec->len - done);
		const uint8_t *p = rec->data + done;
		struct eng_txn *t = NULL;
		uint64_t before = fs__wal_frames(&r->w), zoff, zlen;
		int rv;

		if (*refused_out) {
			/* The kernel's next fragment, and SQLite resending
			 * the rest: both refused. */
			ASSERT_EQ(fs__wal_write(&r->w, p, n, off, DB_NAME, &t),
				  FS_WAL_REFUSE);
			ASSERT_NULL(t);
			done += n;
			continue;
		}
		rv = fs__wal_write(&r->w, p, n, off, DB_NAME, &t);
		if (rv == FS_WAL_PASS) {
			ASSERT_NULL(t);
			ASSERT_EQ(put_bytes(r->fd, p, n, off), 0);
			ASSERT_EQ(check_scan(r), TEST_OK);
			done += n;
			continue;
		}
		if (rv != FS_WAL_COMMIT)
			fprintf(stderr, "%s: record %zu off=%llu len=%zu: %d\n",
				r->cap->name, idx, (unsigned long long)off, n,
				rv);
		ASSERT_EQ(rv, FS_WAL_COMMIT);
		ASSERT_NOT_NULL(t);
		ASSERT_EQ(check_scan(r), TEST_OK); /* held: not in the file */
		r->commits_seen++;
		if (r->retrying) {
			ASSERT_U64_EQ(txn_digest(t), r->retry_digest);
			r->retrying = false;
		} else if (r->refuse_every &&
			   r->commits_seen % r->refuse_every == 0) {
			r->retry_digest = txn_digest(t);
			eng_txn_free(t);
			ASSERT_EQ(fs__wal_refused(&r->w, &zoff, &zlen), 0);
			ASSERT_EQ(zlen, 24);
			ASSERT_U64_EQ(zoff,
				      32 + before * (r->cap->page_size + 24));
			ASSERT_EQ(check_scan(r), TEST_OK);
			/* The held piece itself, resent. */
			ASSERT_EQ(fs__wal_write(&r->w, p, n, off, DB_NAME, &t),
				  FS_WAL_REFUSE);
			r->refused++;
			*refused_out = true;
			done += n;
			continue;
		}
		ASSERT_EQ(shadow_apply(r, t), TEST_OK);
		ASSERT_EQ(push_digest(r, txn_digest(t)), TEST_OK);
		eng_txn_free(t);
		if (r->apply_first) {
			ASSERT_EQ(put_bytes(r->fd, p, n, off), 0);
			fs__wal_committed(&r->w);
		} else {
			fs__wal_committed(&r->w);
			ASSERT_EQ(put_bytes(r->fd, p, n, off), 0);
		}
		ASSERT_EQ(check_scan(r), TEST_OK);
		*committed_out = true;
		done += n;
	}
	return TEST_OK;
}

static int feed_range(struct replay *r, size_t from, size_t to)
{
	size_t i, txn_start = from;

	for (i = from; i <= to && i < r->cap->n; i++) {
		const struct rec *rec = &r->cap->recs[i];
		bool committed, refused;

		if (rec->kind == 'S') {
			if (!r->retrying)
				r->st.syncs++;
			continue;
		}
		if (rec->kind == 'T') {
			ASSERT_EQ(ftruncate(r->fd, (off_t)rec->off), 0);
			fs__wal_truncated(&r->w, rec->off);
			ASSERT_EQ(check_scan(r), TEST_OK);
			continue;
		}
		ASSERT_EQ(feed_write(r, i, &committed, &refused), TEST_OK);
		if (refused) {
			/* SQLite rolls back and runs the transaction again:
			 * the same writes from its start. */
			r->retrying = true;
			ASSERT_EQ(feed_range(r, txn_start, i), TEST_OK);
			ASSERT_TRUE(!r->retrying); /* it committed again */
			committed = true;
		}
		if (committed)
			txn_start = i + 1;
	}
	return TEST_OK;
}

static void replay_free(struct replay *r)
{
	fs__wal_close(&r->w);
	if (r->fd >= 0)
		close(r->fd);
	free(r->shadow);
	free(r->digests);
	free(r->hdr_gen);
	free(r->data_gen);
	free(r->slot_pgno);
}

/* Replay the whole capture; the caller frees @r with replay_free. */
static int replay_run(struct replay *r, const struct capture *c)
{
	r->cap = c;
	r->fd = temp_fd();
	r->last_hdr_frame = -1;
	if (r->rng == 0)
		r->rng = 0x9e3779b97f4a7c15ULL;
	ASSERT_TRUE(r->fd >= 0);
	ASSERT_EQ(fs__wal_init(&r->w, r->fd), 0);
	r->shadow = malloc(c->base_len);
	ASSERT_NOT_NULL(r->shadow);
	memcpy(r->shadow, c->base, c->base_len);
	r->shadow_len = r->shadow_cap = c->base_len;
	r->db_pages = (uint32_t)(c->base_len / c->page_size);
	ASSERT_EQ(feed_range(r, 0, c->n - 1), TEST_OK);
	return TEST_OK;
}

/* The shadow equals the database SQLite produced, page by page. */
static int shadow_matches(const struct replay *r)
{
	const struct capture *c = r->cap;
	size_t pg, ps = c->page_size;

	if (r->shadow_len != c->final_len)
		fprintf(stderr, "%s: shadow %zu B, SQLite's db %zu B\n",
			c->name, r->shadow_len, c->final_len);
	ASSERT_EQ(r->shadow_len, c->final_len);
	for (pg = 0; pg < c->final_len / ps; pg++) {
		if (memcmp(r->shadow + pg * ps, c->final + pg * ps, ps) != 0)
			fprintf(stderr, "%s: page %zu differs\n", c->name,
				pg + 1);
		ASSERT_MEM_EQ(r->shadow + pg * ps, c->final + pg * ps, ps);
	}
	return TEST_OK;
}

/* Replay @name unsplit and check the transactions against SQLite's. */
static int replay_checked(const char *name, struct replay *r,
			  struct capture *c)
{
	ASSERT_EQ(load_capture(name, c), TEST_OK);
	r->check_scan = true;
	ASSERT_EQ(replay_run(r, c), TEST_OK);
	ASSERT_EQ(count_matches(c, r->ntxn, r->st.noops), TEST_OK);
	ASSERT_EQ(shadow_matches(r), TEST_OK);
	return TEST_OK;
}

/* Replay every capture with @tmpl's settings; each must give the same
 * transactions as the unsplit replay and SQLite's final database. */
static int replay_all_same(const struct replay *tmpl)
{
	size_t i, j;

	for (i = 0; i < N_CAPTURES; i++) {
		struct capture c;
		struct replay base = {.fd = -1}, r = *tmpl;

		ASSERT_EQ(load_capture(all_captures[i], &c), TEST_OK);
		ASSERT_EQ(replay_run(&base, &c), TEST_OK);
		r.fd = -1;
		ASSERT_EQ(replay_run(&r, &c), TEST_OK);
		if (r.ntxn != base.ntxn)
			fprintf(stderr, "%s: %zu txns, unsplit %zu\n", c.name,
				r.ntxn, base.ntxn);
		ASSERT_EQ(r.ntxn, base.ntxn);
		ASSERT_EQ(count_matches(&c, r.ntxn, r.st.noops), TEST_OK);
		for (j = 0; j < r.ntxn; j++)
			ASSERT_U64_EQ(r.digests[j], base.digests[j]);
		ASSERT_EQ(shadow_matches(&r), TEST_OK);
		replay_free(&base);
		replay_free(&r);
		free_capture(&c);
	}
	return TEST_OK;
}

/* ---- checksum ---- */

/* The header checksum of a WAL header SQLite wrote matches its stored
 * checksum. */
TEST(wal_checksum, sqlite_header)
{
	static const uint32_t zero[2] = {0, 0};
	struct capture c;
	uint32_t ck[2];

	ASSERT_EQ(load_capture("autocommit_full", &c), TEST_OK);
	ASSERT_EQ(c.recs[0].off, 0);
	ASSERT_EQ(c.recs[0].len, 32);
	fs__wal_checksum(false, c.recs[0].data, 24, zero, ck);
	ASSERT_U64_EQ(ck[0], qf_get_be32(c.recs[0].data + 24));
	ASSERT_U64_EQ(ck[1], qf_get_be32(c.recs[0].data + 28));
	free_capture(&c);
	return TEST_OK;
}

/* Frame 1's checksum continues from the header's over its first 8 header
 * bytes and its page, as in the frame SQLite wrote. */
TEST(wal_checksum, sqlite_first_frame)
{
	struct capture c;
	const struct rec *h, *fh = NULL, *pg = NULL;
	uint32_t ck[2];
	size_t i;

	ASSERT_EQ(load_capture("autocommit_full", &c), TEST_OK);
	h = &c.recs[0];
	for (i = 1; i < c.n; i++) {
		if (c.recs[i].kind == 'W' && c.recs[i].off == 32)
			fh = &c.recs[i];
		if (c.recs[i].kind == 'W' && c.recs[i].off == 56) {
			pg = &c.recs[i];
			break;
		}
	}
	ASSERT_NOT_NULL(fh);
	ASSERT_NOT_NULL(pg);
	ASSERT_EQ(pg->len, c.page_size);
	ck[0] = qf_get_be32(h->data + 24);
	ck[1] = qf_get_be32(h->data + 28);
	fs__wal_checksum(false, fh->data, 8, ck, ck);
	fs__wal_checksum(false, pg->data, pg->len, ck, ck);
	ASSERT_U64_EQ(ck[0], qf_get_be32(fh->data + 16));
	ASSERT_U64_EQ(ck[1], qf_get_be32(fh->data + 20));
	free_capture(&c);
	return TEST_OK;
}

/* Big-endian word order gives a different checksum from little-endian. */
TEST(wal_checksum, byte_order_matters)
{
	static const uint32_t zero[2] = {0, 0};
	uint8_t p[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	uint32_t le[2], be[2], s[2] = {0, 0};

	fs__wal_checksum(false, p, 16, zero, le);
	fs__wal_checksum(true, p, 16, zero, be);
	ref_cksum(true, p, 16, s);
	ASSERT_TRUE(le[0] != be[0] || le[1] != be[1]);
	ASSERT_U64_EQ(be[0], s[0]);
	ASSERT_U64_EQ(be[1], s[1]);
	return TEST_OK;
}

/* ---- replays of real sessions ---- */

/* Single-row autocommit transactions under synchronous=FULL (each commit
 * fsynced) give SQLite's transactions and final database. */
TEST(wal_replay, autocommit_full)
{
	struct capture c;
	struct replay r = {.fd = -1};

	ASSERT_EQ(replay_checked("autocommit_full", &r, &c), TEST_OK);
	ASSERT_TRUE(r.st.syncs >= (unsigned)c.commits);
	replay_free(&r);
	free_capture(&c);
	return TEST_OK;
}

/* Autocommit transactions under synchronous=NORMAL (no commit fsync) give
 * SQLite's transactions and final database. */
TEST(wal_replay, autocommit_normal)
{
	struct capture c;
	struct replay r = {.fd = -1};

	ASSERT_EQ(replay_checked("autocommit_normal", &r, &c), TEST_OK);
	ASSERT_TRUE(r.st.syncs < (unsigned)c.commits);
	replay_free(&r);
	free_capture(&c);
	return TEST_OK;
}

/* Cache spills with in-place page rewrites and the commit-time header
 * rewrite pass assemble into SQLite's transactions. */
TEST(wal_replay, spill_rewrites)
{
	struct capture c;
	struct replay r = {.fd = -1};

	ASSERT_EQ(replay_checked("spill", &r, &c), TEST_OK);
	ASSERT_TRUE(r.st.data_only > 0);
	ASSERT_TRUE(r.st.hdr_rewrites > 0);
	replay_free(&r);
	free_capture(&c);
	return TEST_OK;
}

/* ROLLBACK TO over a spilled insert, with frame slots reused for other
 * pages, and a full ROLLBACK, assemble into SQLite's transactions. */
TEST(wal_replay, savepoint_slot_reuse)
{
	struct capture c;
	struct replay r = {.fd = -1};

	ASSERT_EQ(replay_checked("savepoint", &r, &c), TEST_OK);
	ASSERT_TRUE(r.st.slot_reuse > 0);
	replay_free(&r);
	free_capture(&c);
	return TEST_OK;
}

/* ROLLBACK TO back to frame 0 after a TRUNCATE checkpoint, which rewrites
 * the WAL header mid-transaction, assembles into SQLite's transactions. */
TEST(wal_replay, rollback_to_frame_zero)
{
	struct capture c;
	struct replay r = {.fd = -1};

	ASSERT_EQ(replay_checked("sp0", &r, &c), TEST_OK);
	ASSERT_TRUE(r.st.hdr_mid_txn >= 2);
	replay_free(&r);
	free_capture(&c);
	return TEST_OK;
}

/* A WAL restart at offset 0 with new salts, stale frames after it, gives
 * SQLite's transactions. */
TEST(wal_replay, restart_new_salts)
{
	struct capture c;
	struct replay r = {.fd = -1};

	ASSERT_EQ(replay_checked("restart", &r, &c), TEST_OK);
	ASSERT_TRUE(r.st.restarts >= 2);
	replay_free(&r);
	free_capture(&c);
	return TEST_OK;
}

/* A VACUUM that shrinks the database under cache pressure gives
 * transactions whose db_pages truncate the shadow to SQLite's size. */
TEST(wal_replay, vacuum_shrinks)
{
	struct capture c;
	struct replay r = {.fd = -1};

	ASSERT_EQ(replay_checked("vacuum", &r, &c), TEST_OK);
	ASSERT_TRUE(r.st.shrinks > 0);
	replay_free(&r);
	free_capture(&c);
	return TEST_OK;
}

/* With psow=0 each commit frame is repeated as padding; each padding
 * frame comes as one more transaction that changes no page. */
TEST(wal_replay, psow0_padding)
{
	struct capture c;
	struct replay r = {.fd = -1};

	ASSERT_EQ(replay_checked("psow0", &r, &c), TEST_OK);
	ASSERT_TRUE(r.st.noops > 0);
	replay_free(&r);
	free_capture(&c);
	return TEST_OK;
}

/* Applying the held write before fs__wal_committed (fs.c's order) gives
 * the same transactions as after it. */
TEST(wal_replay, apply_before_committed)
{
	struct replay t = {.apply_first = true, .check_scan = true};

	ASSERT_EQ(replay_all_same(&t), TEST_OK);
	return TEST_OK;
}

/* ---- fragmentation ---- */

/* Writes split at every 4096-byte file offset, as the kernel fragments
 * them, give the same transactions. */
TEST(wal_split, kernel_pages)
{
	struct replay t = {.split = SPLIT_KERNEL};

	ASSERT_EQ(replay_all_same(&t), TEST_OK);
	return TEST_OK;
}

/* Writes split at random points give the same transactions. */
TEST(wal_split, random_points)
{
	uint64_t seeds[] = {1, 0xdeadbeef, 77777};
	size_t i;

	for (i = 0; i < 3; i++) {
		struct replay t = {.split = SPLIT_RANDOM,
				   .rng = seeds[i],
				   .max_piece = i == 0 ? 40 : 700};

		ASSERT_EQ(replay_all_same(&t), TEST_OK);
	}
	return TEST_OK;
}

/* Writes fed one byte at a time (header fragments included) give the same
 * transactions. */
TEST(wal_split, single_bytes)
{
	const char *names[] = {"autocommit_normal", "sp0"};
	size_t i, j;

	for (i = 0; i < 2; i++) {
		struct capture c;
		struct replay base = {.fd = -1};
		struct replay r = {.fd = -1, .split = SPLIT_BYTE};

		ASSERT_EQ(load_capture(names[i], &c), TEST_OK);
		ASSERT_EQ(replay_run(&base, &c), TEST_OK);
		ASSERT_EQ(replay_run(&r, &c), TEST_OK);
		ASSERT_EQ(r.ntxn, base.ntxn);
		for (j = 0; j < r.ntxn; j++)
			ASSERT_U64_EQ(r.digests[j], base.digests[j]);
		ASSERT_EQ(shadow_matches(&r), TEST_OK);
		replay_free(&base);
		replay_free(&r);
		free_capture(&c);
	}
	return TEST_OK;
}

/* COMMIT comes from exactly the first write after which SQLite's recovery
 * would publish the transaction: after every applied write, kernel-split
 * or not, a recovery scan of the file finds fs__wal_frames() frames. */
TEST(wal_commit, exact_point)
{
	struct replay a = {.check_scan = true};
	struct replay b = {.split = SPLIT_KERNEL, .check_scan = true};
	struct replay c = {.split = SPLIT_RANDOM,
			   .check_scan = true,
			   .max_piece = 300,
			   .rng = 5};

	ASSERT_EQ(replay_all_same(&a), TEST_OK);
	ASSERT_EQ(replay_all_same(&b), TEST_OK);
	ASSERT_EQ(replay_all_same(&c), TEST_OK);
	return TEST_OK;
}

/* Tracker reads stay linear: replaying every capture, unsplit or
 * kernel-split, preads at most 4 bytes per byte written. */
TEST(wal_commit, linear_reads)
{
	size_t i, k;

	for (k = 0; k < 2; k++) {
		for (i = 0; i < N_CAPTURES; i++) {
			struct capture c;
			struct replay r = {.fd = -1,
					   .split = k ? SPLIT_KERNEL
						      : SPLIT_NONE};
			uint64_t written = 0;
			size_t j;

			ASSERT_EQ(load_capture(all_captures[i], &c), TEST_OK);
			for (j = 0; j < c.n; j++)
				written += c.recs[j].len;
			pread_bytes = 0;
			ASSERT_EQ(replay_run(&r, &c), TEST_OK);
			if (pread_bytes > 4 * written)
				fprintf(stderr, "%s: read %llu for %llu\n",
					c.name,
					(unsigned long long)pread_bytes,
					(unsigned long long)written);
			ASSERT_TRUE(pread_bytes <= 4 * written);
			replay_free(&r);
			free_capture(&c);
		}
	}
	return TEST_OK;
}

/* ---- refusal ---- */

/* Replay @name kernel-split up to its @nth COMMIT and refuse it; @r keeps
 * the tracker and file, *idx the record of the held piece. */
static int replay_to_refusal(const char *name, unsigned nth, struct replay *r,
			     struct capture *c, size_t *idx, uint64_t *zoff)
{
	size_t i;
	uint64_t zlen;

	ASSERT_EQ(load_capture(name, c), TEST_OK);
	r->cap = c;
	r->fd = temp_fd();
	ASSERT_TRUE(r->fd >= 0);
	ASSERT_EQ(fs__wal_init(&r->w, r->fd), 0);
	for (i = 0; i < c->n; i++) {
		const struct rec *rec = &c->recs[i];
		struct eng_txn *t = NULL;
		int rv;

		if (rec->kind == 'T') {
			ASSERT_EQ(ftruncate(r->fd, (off_t)rec->off), 0);
			fs__wal_truncated(&r->w, rec->off);
		}
		if (rec->kind != 'W')
			continue;
		rv = fs__wal_write(&r->w, rec->data, rec->len, rec->off,
				   DB_NAME, &t);
		ASSERT_TRUE(rv == FS_WAL_PASS || rv == FS_WAL_COMMIT);
		if (rv == FS_WAL_COMMIT && ++r->commits_seen == nth) {
			eng_txn_free(t);
			ASSERT_EQ(fs__wal_refused(&r->w, zoff, &zlen), 0);
			ASSERT_EQ(zlen, 24);
			*idx = i;
			return TEST_OK;
		}
		if (rv == FS_WAL_COMMIT) {
			eng_txn_free(t);
			fs__wal_committed(&r->w);
		}
		ASSERT_EQ(put_bytes(r->fd, rec->data, rec->len, rec->off), 0);
	}
	ASSERT_TRUE(false); /* fewer commits than asked for */
	return TEST_FAIL;
}

/* After a refusal, the resent held write and writes elsewhere in the
 * transaction are refused. */
TEST(wal_refuse, sticky)
{
	struct capture c;
	struct replay r = {.fd = -1};
	struct eng_txn *t = NULL;
	const struct rec *held;
	uint64_t zoff, fsz;
	uint8_t junk[24] = {0};
	size_t idx;

	ASSERT_EQ(replay_to_refusal("autocommit_full", 5, &r, &c, &idx, &zoff),
		  TEST_OK);
	held = &c.recs[idx];
	fsz = c.page_size + 24;
	ASSERT_EQ(fs__wal_write(&r.w, held->data, held->len, held->off,
				DB_NAME, &t),
		  FS_WAL_REFUSE);
	ASSERT_EQ(fs__wal_write(&r.w, held->data + 1, held->len - 1,
				held->off + 1, DB_NAME, &t),
		  FS_WAL_REFUSE);
	ASSERT_EQ(fs__wal_write(&r.w, junk, sizeof junk, zoff + fsz, DB_NAME,
				&t),
		  FS_WAL_REFUSE);
	ASSERT_EQ(fs__wal_write(&r.w, junk, 8, zoff + 24, DB_NAME, &t),
		  FS_WAL_REFUSE);
	ASSERT_NULL(t);
	replay_free(&r);
	free_capture(&c);
	return TEST_OK;
}

/* A write at the header of frame committed+1 (SQLite's retry) ends the
 * refusal. */
TEST(wal_refuse, ends_at_first_frame_header)
{
	struct capture c;
	struct replay r = {.fd = -1};
	struct eng_txn *t = NULL;
	uint8_t hdr[24] = {0};
	uint64_t zoff;
	size_t idx;

	ASSERT_EQ(replay_to_refusal("autocommit_full", 5, &r, &c, &idx, &zoff),
		  TEST_OK);
	ASSERT_EQ(fs__wal_write(&r.w, hdr, 24, zoff, DB_NAME, &t),
		  FS_WAL_PASS);
	ASSERT_EQ(put_bytes(r.fd, hdr, 24, zoff), 0);
	ASSERT_EQ(fs__wal_write(&r.w, hdr, 8, zoff + 24, DB_NAME, &t),
		  FS_WAL_PASS);
	ASSERT_NULL(t);
	replay_free(&r);
	free_capture(&c);
	return TEST_OK;
}

/* A write at offset 0 (a new WAL header) ends the refusal. */
TEST(wal_refuse, ends_at_offset_zero)
{
	struct capture c;
	struct replay r = {.fd = -1};
	struct eng_txn *t = NULL;
	uint8_t h[32];
	uint64_t zoff;
	size_t idx;

	ASSERT_EQ(replay_to_refusal("autocommit_full", 5, &r, &c, &idx, &zoff),
		  TEST_OK);
	synth_header(h, c.page_size, 1234);
	ASSERT_EQ(fs__wal_write(&r.w, h, 32, 0, DB_NAME, &t), FS_WAL_PASS);
	ASSERT_EQ(fs__wal_frames(&r.w), 0);
	ASSERT_NULL(t);
	replay_free(&r);
	free_capture(&c);
	return TEST_OK;
}

/* A refusal zeroes the refused transaction's first frame header, the
 * range it reports, and nothing else. */
TEST(wal_refuse, zeroes_first_frame_header)
{
	struct capture c;
	struct replay r = {.fd = -1};
	uint8_t *got, *want;
	size_t i, idx, got_len, want_len;
	uint64_t zoff;
	int fd = temp_fd();

	ASSERT_EQ(replay_to_refusal("autocommit_full", 5, &r, &c, &idx, &zoff),
		  TEST_OK);
	ASSERT_U64_EQ(zoff, 32 + fs__wal_frames(&r.w) * (c.page_size + 24));
	/* Expected: every write before the held one, then 24 zero bytes. */
	for (i = 0; i < idx; i++)
		if (c.recs[i].kind == 'W')
			ASSERT_EQ(put_bytes(fd, c.recs[i].data, c.recs[i].len,
					    c.recs[i].off),
				  0);
	ASSERT_TRUE(ref_scan(fd) == fs__wal_frames(&r.w));
	{
		static const uint8_t zero[24];

		ASSERT_EQ(put_bytes(fd, zero, 24, zoff), 0);
	}
	{
		char a[64], b[64];

		snprintf(a, sizeof a, "/proc/self/fd/%d", r.fd);
		snprintf(b, sizeof b, "/proc/self/fd/%d", fd);
		got = slurp(a, &got_len);
		want = slurp(b, &want_len);
	}
	ASSERT_NOT_NULL(got);
	ASSERT_NOT_NULL(want);
	ASSERT_EQ(got_len, want_len);
	ASSERT_MEM_EQ(got, want, got_len);
	free(got);
	free(want);
	close(fd);
	replay_free(&r);
	free_capture(&c);
	return TEST_OK;
}

/* Refusing every third commit, each followed by SQLite's retry of the same
 * writes, still gives SQLite's transactions and database; the retry
 * assembles the refused transaction again. */
TEST(wal_refuse, retry_commits_same_txn)
{
	size_t i;

	for (i = 0; i < N_CAPTURES; i++) {
		struct capture c;
		struct replay r = {.fd = -1,
				   .split = SPLIT_KERNEL,
				   .check_scan = true,
				   .refuse_every = 3};

		ASSERT_EQ(load_capture(all_captures[i], &c), TEST_OK);
		ASSERT_EQ(replay_run(&r, &c), TEST_OK);
		ASSERT_TRUE(r.refused > 0);
		ASSERT_EQ(count_matches(&c, r.ntxn, r.st.noops), TEST_OK);
		ASSERT_EQ(shadow_matches(&r), TEST_OK);
		replay_free(&r);
		free_capture(&c);
	}
	return TEST_OK;
}

/* A refused transaction whose bytes are all in the file anyway (the held
 * write applied behind the tracker's back) is not found by a recovery
 * scan or by fs__wal_init once the refusal zeroed its first header. */
TEST(wal_refuse, recovery_skips_refused)
{
	struct capture c;
	struct replay r = {.fd = -1};
	struct fs_wal w2;
	const struct rec *held;
	uint64_t committed;
	size_t i;

	ASSERT_EQ(load_capture("spill", &c), TEST_OK);
	r.cap = &c;
	r.fd = temp_fd();
	ASSERT_EQ(fs__wal_init(&r.w, r.fd), 0);
	for (i = 0; i < c.n; i++) {
		const struct rec *rec = &c.recs[i];
		struct eng_txn *t = NULL;
		int rv;

		if (rec->kind != 'W')
			continue;
		rv = fs__wal_write(&r.w, rec->data, rec->len, rec->off,
				   DB_NAME, &t);
		ASSERT_TRUE(rv == FS_WAL_PASS || rv == FS_WAL_COMMIT);
		eng_txn_free(t);
		if (rv == FS_WAL_COMMIT && ++r.commits_seen == 2)
			break;
		if (rv == FS_WAL_COMMIT)
			fs__wal_committed(&r.w);
		ASSERT_EQ(put_bytes(r.fd, rec->data, rec->len, rec->off), 0);
	}
	ASSERT_TRUE(i < c.n);
	held = &c.recs[i];
	committed = fs__wal_frames(&r.w);
	ASSERT_EQ(put_bytes(r.fd, held->data, held->len, held->off), 0);
	ASSERT_TRUE(ref_scan(r.fd) > committed); /* it would come back */
	ASSERT_EQ(fs__wal_refused(&r.w, NULL, NULL), 0);
	ASSERT_U64_EQ(ref_scan(r.fd), committed);
	ASSERT_EQ(fs__wal_init(&w2, r.fd), 0);
	ASSERT_U64_EQ(fs__wal_frames(&w2), committed);
	fs__wal_close(&w2);
	replay_free(&r);
	free_capture(&c);
	return TEST_OK;
}

/* ---- init, truncation, holds ---- */

/* Replay @name (unsplit) up to and including record @upto into @r. */
static int replay_prefix(const char *name, size_t upto, struct replay *r,
			 struct capture *c)
{
	ASSERT_EQ(load_capture(name, c), TEST_OK);
	r->cap = c;
	r->fd = temp_fd();
	r->last_hdr_frame = -1;
	ASSERT_TRUE(r->fd >= 0);
	ASSERT_EQ(fs__wal_init(&r->w, r->fd), 0);
	r->shadow = malloc(c->base_len);
	ASSERT_NOT_NULL(r->shadow);
	memcpy(r->shadow, c->base, c->base_len);
	r->shadow_len = r->shadow_cap = c->base_len;
	r->db_pages = (uint32_t)(c->base_len / c->page_size);
	ASSERT_EQ(feed_range(r, 0, upto), TEST_OK);
	return TEST_OK;
}

/* fs__wal_init on a file with committed frames, an unfinished transaction
 * and trailing garbage finds exactly the committed frames. */
TEST(wal_init, committed_frames_and_garbage)
{
	struct capture c;
	struct replay r = {.fd = -1};
	struct fs_wal w2;
	uint8_t junk[3000];
	struct stat st;
	size_t i, upto = 0;
	unsigned spills = 0;

	/* Stop in the middle of the spill capture's second transaction. */
	ASSERT_EQ(load_capture("spill", &c), TEST_OK);
	for (i = 0; i < c.n && spills < 40; i++)
		if (c.recs[i].kind == 'W' && c.recs[i].len == 24)
			spills++;
	upto = i;
	free_capture(&c);
	ASSERT_EQ(replay_prefix("spill", upto, &r, &c), TEST_OK);
	ASSERT_TRUE(fs__wal_frames(&r.w) > 0);
	for (i = 0; i < sizeof junk; i++)
		junk[i] = (uint8_t)(i * 13 + 5);
	ASSERT_EQ(fstat(r.fd, &st), 0);
	ASSERT_EQ(put_bytes(r.fd, junk, sizeof junk, (uint64_t)st.st_size), 0);
	ASSERT_EQ(fs__wal_init(&w2, r.fd), 0);
	ASSERT_U64_EQ(fs__wal_frames(&w2), fs__wal_frames(&r.w));
	ASSERT_U64_EQ(fs__wal_frames(&w2), ref_scan(r.fd));
	fs__wal_close(&w2);
	replay_free(&r);
	free_capture(&c);
	return TEST_OK;
}

/* A tracker started by fs__wal_init mid-session picks up the following
 * transactions as a tracker that saw everything does. */
TEST(wal_init, continues_session)
{
	struct capture c;
	struct replay r = {.fd = -1, .check_scan = true};
	size_t upto, n0;

	/* Stop halfway, then start a new tracker on the file. */
	ASSERT_EQ(load_capture("restart", &c), TEST_OK);
	upto = c.n / 2;
	free_capture(&c);
	ASSERT_EQ(replay_prefix("restart", upto, &r, &c), TEST_OK);
	n0 = r.ntxn;
	ASSERT_TRUE(n0 > 0 && n0 < (size_t)c.commits);
	fs__wal_close(&r.w);
	ASSERT_EQ(fs__wal_init(&r.w, r.fd), 0);
	ASSERT_U64_EQ(fs__wal_frames(&r.w), ref_scan(r.fd));
	ASSERT_EQ(feed_range(&r, upto + 1, c.n - 1), TEST_OK);
	ASSERT_EQ(count_matches(&c, r.ntxn, r.st.noops), TEST_OK);
	ASSERT_EQ(shadow_matches(&r), TEST_OK);
	replay_free(&r);
	free_capture(&c);
	return TEST_OK;
}

/* fs__wal_init on an empty file or one without a WAL header finds no
 * frames and succeeds (SQLite treats both as an empty WAL). */
TEST(wal_init, empty_or_not_wal)
{
	struct fs_wal w;
	uint8_t junk[4096];
	int fd = temp_fd();

	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ(fs__wal_init(&w, fd), 0);
	ASSERT_EQ(fs__wal_frames(&w), 0);
	ASSERT_TRUE(!w.have_hdr);
	fs__wal_close(&w);
	memset(junk, 0xab, sizeof junk);
	ASSERT_EQ(put_bytes(fd, junk, sizeof junk, 0), 0);
	ASSERT_EQ(fs__wal_init(&w, fd), 0);
	ASSERT_EQ(fs__wal_frames(&w), 0);
	ASSERT_TRUE(!w.have_hdr);
	fs__wal_close(&w);
	close(fd);
	return TEST_OK;
}

/* Truncation to 0 forgets the header and every frame: frames need a new
 * header first. */
TEST(wal_truncate, to_zero)
{
	struct capture c;
	struct replay r = {.fd = -1};
	struct eng_txn *t = NULL;
	uint8_t h[32], fh[24] = {0, 0, 0, 1};

	ASSERT_EQ(replay_prefix("autocommit_full", 30, &r, &c), TEST_OK);
	ASSERT_TRUE(fs__wal_frames(&r.w) > 0);
	ASSERT_EQ(ftruncate(r.fd, 0), 0);
	fs__wal_truncated(&r.w, 0);
	ASSERT_EQ(fs__wal_frames(&r.w), 0);
	ASSERT_EQ(fs__wal_write(&r.w, fh, 24, 32, DB_NAME, &t), -EINVAL);
	synth_header(h, c.page_size, 99);
	ASSERT_EQ(fs__wal_write(&r.w, h, 32, 0, DB_NAME, &t), FS_WAL_PASS);
	ASSERT_EQ(put_bytes(r.fd, h, 32, 0), 0);
	ASSERT_EQ(fs__wal_write(&r.w, fh, 24, 32, DB_NAME, &t), FS_WAL_PASS);
	ASSERT_NULL(t);
	replay_free(&r);
	free_capture(&c);
	return TEST_OK;
}

/* Truncation into the open transaction's validated frames makes them be
 * validated again: the transaction commits only once rewritten. */
TEST(wal_truncate, into_open_txn)
{
	uint8_t h[32], fh[24], page[1024];
	uint32_t s[2];
	struct fs_wal w;
	struct eng_txn *t = NULL;
	int fd = temp_fd(), k;

	synth_header(h, 1024, 7);
	s[0] = qf_get_be32(h + 24);
	s[1] = qf_get_be32(h + 28);
	ASSERT_EQ(fs__wal_init(&w, fd), 0);
	ASSERT_EQ(fs__wal_write(&w, h, 32, 0, DB_NAME, &t), FS_WAL_PASS);
	ASSERT_EQ(put_bytes(fd, h, 32, 0), 0);
	for (k = 1; k <= 2; k++) {
		uint64_t off = 32 + (uint64_t)(k - 1) * 1048;

		fill_page(page, 1024, (uint32_t)k);
		synth_frame(fh, h, (uint32_t)k, 0, page, 1024, s);
		ASSERT_EQ(fs__wal_write(&w, fh, 24, off, DB_NAME, &t),
			  FS_WAL_PASS);
		ASSERT_EQ(put_bytes(fd, fh, 24, off), 0);
		ASSERT_EQ(fs__wal_write(&w, page, 1024, off + 24, DB_NAME, &t),
			  FS_WAL_PASS);
		ASSERT_EQ(put_bytes(fd, page, 1024, off + 24), 0);
	}
	ASSERT_EQ(w.valid, 2);
	ASSERT_EQ(ftruncate(fd, 32 + 1048 + 100), 0);
	fs__wal_truncated(&w, 32 + 1048 + 100);
	ASSERT_EQ(w.valid, 1);
	fs__wal_close(&w);
	close(fd);
	return TEST_OK;
}

/* A write while a commit is held is answered -EBUSY and changes
 * nothing. */
TEST(wal_hold, write_while_held)
{
	struct capture c;
	struct replay r = {.fd = -1};
	struct eng_txn *t = NULL;
	size_t i;
	int rv = FS_WAL_PASS;

	ASSERT_EQ(load_capture("autocommit_full", &c), TEST_OK);
	r.fd = temp_fd();
	ASSERT_EQ(fs__wal_init(&r.w, r.fd), 0);
	for (i = 0; i < c.n && rv != FS_WAL_COMMIT; i++) {
		const struct rec *rec = &c.recs[i];

		if (rec->kind != 'W')
			continue;
		rv = fs__wal_write(&r.w, rec->data, rec->len, rec->off,
				   DB_NAME, &t);
		if (rv == FS_WAL_PASS)
			ASSERT_EQ(put_bytes(r.fd, rec->data, rec->len,
					    rec->off),
				  0);
	}
	ASSERT_EQ(rv, FS_WAL_COMMIT);
	eng_txn_free(t);
	t = NULL;
	ASSERT_EQ(fs__wal_write(&r.w, c.recs[i].data, c.recs[i].len,
				c.recs[i].off, DB_NAME, &t),
		  -EBUSY);
	ASSERT_NULL(t);
	fs__wal_committed(&r.w);
	ASSERT_TRUE(fs__wal_frames(&r.w) > 0);
	replay_free(&r);
	free_capture(&c);
	return TEST_OK;
}

/* ---- bytes that are not a WAL ---- */

/* A database header written at offset 0 of the -wal is -EINVAL. */
TEST(wal_header, sqlite_db_header_rejected)
{
	struct fs_wal w;
	struct eng_txn *t = NULL;
	uint8_t buf[100] = "SQLite format 3";
	int fd = temp_fd();

	ASSERT_EQ(fs__wal_init(&w, fd), 0);
	ASSERT_EQ(fs__wal_write(&w, buf, sizeof buf, 0, DB_NAME, &t), -EINVAL);
	ASSERT_EQ(fs__wal_write(&w, buf, 1, 0, DB_NAME, &t), -EINVAL);
	ASSERT_NULL(t);
	fs__wal_close(&w);
	close(fd);
	return TEST_OK;
}

/* A whole WAL header with a wrong checksum is -EINVAL. */
TEST(wal_header, bad_checksum_rejected)
{
	struct fs_wal w;
	struct eng_txn *t = NULL;
	uint8_t h[32];
	int fd = temp_fd();

	synth_header(h, 4096, 1);
	h[31] ^= 1;
	ASSERT_EQ(fs__wal_init(&w, fd), 0);
	ASSERT_EQ(fs__wal_write(&w, h, 32, 0, DB_NAME, &t), -EINVAL);
	h[31] ^= 1;
	ASSERT_EQ(fs__wal_write(&w, h, 32, 0, DB_NAME, &t), FS_WAL_PASS);
	fs__wal_close(&w);
	close(fd);
	return TEST_OK;
}

/* A header fragment whose version bytes are wrong is -EINVAL. */
TEST(wal_header, bad_version_fragment_rejected)
{
	struct fs_wal w;
	struct eng_txn *t = NULL;
	uint8_t h[32];
	int fd = temp_fd();

	synth_header(h, 4096, 1);
	h[6] = 0;
	ASSERT_EQ(fs__wal_init(&w, fd), 0);
	ASSERT_EQ(fs__wal_write(&w, h + 4, 4, 4, DB_NAME, &t), -EINVAL);
	ASSERT_EQ(fs__wal_write(&w, h, 4, 0, DB_NAME, &t), FS_WAL_PASS);
	fs__wal_close(&w);
	close(fd);
	return TEST_OK;
}

/* Frames written with no WAL header are -EINVAL. */
TEST(wal_header, frames_before_header_rejected)
{
	struct fs_wal w;
	struct eng_txn *t = NULL;
	uint8_t fh[24] = {0, 0, 0, 1};
	int fd = temp_fd();

	ASSERT_EQ(fs__wal_init(&w, fd), 0);
	ASSERT_EQ(fs__wal_write(&w, fh, 24, 32, DB_NAME, &t), -EINVAL);
	fs__wal_close(&w);
	close(fd);
	return TEST_OK;
}

/* Changing a committed frame is -EINVAL; rewriting it with the same bytes
 * passes. */
TEST(wal_header, committed_frame_rewrite)
{
	struct capture c;
	struct replay r = {.fd = -1};
	struct eng_txn *t = NULL;
	uint8_t buf[24];

	ASSERT_EQ(replay_prefix("autocommit_full", 30, &r, &c), TEST_OK);
	ASSERT_TRUE(fs__wal_frames(&r.w) >= 2);
	ASSERT_EQ(syscall(SYS_pread64, r.fd, buf, 24, 32 + c.page_size + 24),
		  24);
	ASSERT_EQ(fs__wal_write(&r.w, buf, 24, 32 + c.page_size + 24, DB_NAME,
				&t),
		  FS_WAL_PASS);
	buf[3] ^= 0x40;
	ASSERT_EQ(fs__wal_write(&r.w, buf, 24, 32 + c.page_size + 24, DB_NAME,
				&t),
		  -EINVAL);
	ASSERT_NULL(t);
	replay_free(&r);
	free_capture(&c);
	return TEST_OK;
}

/* ---- synthetic shapes ---- */

/* A page rewritten and then restored in a long open transaction does not
 * make the tracker read the frames after it again, and the commit still
 * carries every page. */
TEST(wal_synth, restored_page_not_quadratic)
{
	enum { PS = 1024, N = 300 };
	uint8_t h[32], fh[24], page[PS], other[PS];
	uint32_t s[2];
	struct fs_wal w;
	struct eng_txn *t = NULL;
	int fd = temp_fd(), k, round;
	uint64_t off2 = 32 + (PS + 24) + 24;

	synth_header(h, PS, 3);
	s[0] = qf_get_be32(h + 24);
	s[1] = qf_get_be32(h + 28);
	ASSERT_EQ(fs__wal_init(&w, fd), 0);
	ASSERT_EQ(fs__wal_write(&w, h, 32, 0, DB_NAME, &t), FS_WAL_PASS);
	ASSERT_EQ(put_bytes(fd, h, 32, 0), 0);
	for (k = 1; k <= N; k++) {
		uint64_t off = 32 + (uint64_t)(k - 1) * (PS + 24);

		fill_page(page, PS, (uint32_t)k);
		synth_frame(fh, h, (uint32_t)k, k == N ? N : 0, page, PS, s);
		if (k == N)
			break;
		ASSERT_EQ(fs__wal_write(&w, fh, 24, off, DB_NAME, &t),
			  FS_WAL_PASS);
		ASSERT_EQ(put_bytes(fd, fh, 24, off), 0);
		ASSERT_EQ(fs__wal_write(&w, page, PS, off + 24, DB_NAME, &t),
			  FS_WAL_PASS);
		ASSERT_EQ(put_bytes(fd, page, PS, off + 24), 0);
	}
	ASSERT_EQ(w.valid, N - 1);
	fill_page(page, PS, 2);
	fill_page(other, PS, 9999);
	pread_bytes = 0;
	for (round = 0; round < 50; round++) {
		ASSERT_EQ(fs__wal_write(&w, other, PS, off2, DB_NAME, &t),
			  FS_WAL_PASS);
		ASSERT_EQ(put_bytes(fd, other, PS, off2), 0);
		ASSERT_EQ(w.valid, 1);
		ASSERT_EQ(fs__wal_write(&w, page, PS, off2, DB_NAME, &t),
			  FS_WAL_PASS);
		ASSERT_EQ(put_bytes(fd, page, PS, off2), 0);
		ASSERT_EQ(w.valid, N - 1);
	}
	ASSERT_TRUE(pread_bytes <= 50 * 2 * 64);
	/* The commit frame: all N pages. */
	fill_page(page, PS, N);
	{
		uint64_t off = 32 + (uint64_t)(N - 1) * (PS + 24);

		ASSERT_EQ(fs__wal_write(&w, fh, 24, off, DB_NAME, &t),
			  FS_WAL_PASS);
		ASSERT_EQ(put_bytes(fd, fh, 24, off), 0);
		ASSERT_EQ(fs__wal_write(&w, page, PS, off + 24, DB_NAME, &t),
			  FS_WAL_COMMIT);
	}
	ASSERT_NOT_NULL(t);
	ASSERT_EQ(t->n, N);
	ASSERT_EQ(t->db_pages, N);
	for (k = 0; k < N; k++) {
		ASSERT_EQ(t->pgnos[k], k + 1);
		fill_page(page, PS, (uint32_t)k + 1);
		ASSERT_MEM_EQ(t->pages + (size_t)k * PS, page, PS);
	}
	eng_txn_free(t);
	fs__wal_committed(&w);
	ASSERT_EQ(fs__wal_frames(&w), N);
	fs__wal_close(&w);
	close(fd);
	return TEST_OK;
}

/* A synthetic WAL being built: header, chain and file. */
struct synth {
	uint32_t ps;
	uint8_t h[32];
	uint32_t s[2];
	struct fs_wal w;
	int fd;
};

static int synth_start(struct synth *y, uint32_t ps)
{
	struct eng_txn *t = NULL;

	y->ps = ps;
	y->fd = temp_fd();
	ASSERT_TRUE(y->fd >= 0);
	synth_header(y->h, ps, 0x1234 + ps);
	y->s[0] = qf_get_be32(y->h + 24);
	y->s[1] = qf_get_be32(y->h + 28);
	ASSERT_EQ(fs__wal_init(&y->w, y->fd), 0);
	ASSERT_EQ(fs__wal_write(&y->w, y->h, 32, 0, DB_NAME, &t), FS_WAL_PASS);
	ASSERT_EQ(put_bytes(y->fd, y->h, 32, 0), 0);
	return TEST_OK;
}

static uint64_t synth_off(const struct synth *y, uint32_t k)
{
	return 32 + (uint64_t)(k - 1) * (y->ps + 24);
}

/* Write @n bytes at @off through the tracker; expect @want; apply unless
 * it is a COMMIT. */
static int synth_put(struct synth *y, const void *p, size_t n, uint64_t off,
		     int want)
{
	struct eng_txn *t = NULL;

	ASSERT_EQ(fs__wal_write(&y->w, p, n, off, DB_NAME, &t), want);
	eng_txn_free(t);
	if (want == FS_WAL_PASS)
		ASSERT_EQ(put_bytes(y->fd, p, n, off), 0);
	return TEST_OK;
}

static void synth_end(struct synth *y)
{
	fs__wal_close(&y->w);
	close(y->fd);
}

/* Build frame @k (page seeded @seed, commit size @nt) in @f (ps + 24
 * bytes), continuing the chain. */
static void synth_build(struct synth *y, uint8_t *f, uint32_t k, uint32_t nt,
			uint32_t seed)
{
	fill_page(f + 24, y->ps, seed);
	synth_frame(f, y->h, k, nt, f + 24, y->ps, y->s);
}

/* A frame whose checksum is right but whose salts are not the header's is
 * not valid. */
TEST(wal_synth, salts_must_match)
{
	struct synth y;
	uint8_t f[512 + 24];

	ASSERT_EQ(synth_start(&y, 512), TEST_OK);
	synth_build(&y, f, 1, 1, 1);
	f[8] ^= 1; /* the checksum does not cover the salts */
	ASSERT_EQ(synth_put(&y, f, sizeof f, 32, FS_WAL_PASS), TEST_OK);
	ASSERT_EQ(fs__wal_frames(&y.w), 0);
	ASSERT_U64_EQ(ref_scan(y.fd), 0);
	f[8] ^= 1;
	ASSERT_EQ(synth_put(&y, f, 24, 32, FS_WAL_COMMIT), TEST_OK);
	synth_end(&y);
	return TEST_OK;
}

/* A write past the end that leaves a zero-filled hole completing the
 * frontier frame (its page all zeros) commits it. */
TEST(wal_synth, hole_completes_frame)
{
	struct synth y;
	uint8_t f[512 + 24], zero[512] = {0}, b = 0;

	ASSERT_EQ(synth_start(&y, 512), TEST_OK);
	memset(f + 24, 0, 512);
	synth_frame(f, y.h, 1, 1, zero, 512, y.s);
	ASSERT_EQ(synth_put(&y, f, 24, 32, FS_WAL_PASS), TEST_OK);
	ASSERT_EQ(synth_put(&y, &b, 1, synth_off(&y, 3), FS_WAL_COMMIT),
		  TEST_OK);
	synth_end(&y);
	return TEST_OK;
}

/* Writes beyond a frontier frame that failed validation do not make the
 * tracker read that frame again. */
TEST(wal_synth, stuck_frame_not_reread)
{
	struct synth y;
	uint8_t f[4096 + 24];
	uint32_t k;

	ASSERT_EQ(synth_start(&y, 4096), TEST_OK);
	synth_build(&y, f, 1, 0, 1);
	f[30] ^= 1; /* frame 1: salts right, page wrong */
	ASSERT_EQ(synth_put(&y, f, sizeof f, 32, FS_WAL_PASS), TEST_OK);
	pread_bytes = 0;
	for (k = 2; k < 100; k++) {
		synth_build(&y, f, k, 0, k);
		ASSERT_EQ(synth_put(&y, f, 24, synth_off(&y, k), FS_WAL_PASS),
			  TEST_OK);
		ASSERT_EQ(synth_put(&y, f + 24, 4096, synth_off(&y, k) + 24,
				    FS_WAL_PASS),
			  TEST_OK);
	}
	ASSERT_TRUE(pread_bytes < 4096);
	synth_end(&y);
	return TEST_OK;
}

/* One write over two validated frames, the first unchanged and the second
 * broken, leaves the second invalid: a later commit frame does not
 * commit. */
TEST(wal_synth, spanning_write_forgets_touched_frames)
{
	struct synth y;
	uint8_t f[4][512 + 24];
	uint32_t k;

	ASSERT_EQ(synth_start(&y, 512), TEST_OK);
	for (k = 1; k <= 4; k++)
		synth_build(&y, f[k - 1], k, k == 4 ? 4 : 0, k);
	for (k = 1; k <= 3; k++)
		ASSERT_EQ(synth_put(&y, f[k - 1], sizeof f[0],
				    synth_off(&y, k), FS_WAL_PASS),
			  TEST_OK);
	ASSERT_EQ(y.w.valid, 3);
	{
		uint8_t two[2 * (512 + 24)];

		memcpy(two, f[1], sizeof f[1]);
		memcpy(two + sizeof f[1], f[2], sizeof f[2]);
		two[sizeof two - 1] ^= 1;
		ASSERT_EQ(synth_put(&y, two, sizeof two, synth_off(&y, 2),
				    FS_WAL_PASS),
			  TEST_OK);
	}
	ASSERT_EQ(synth_put(&y, f[3], sizeof f[3], synth_off(&y, 4),
			    FS_WAL_PASS),
		  TEST_OK);
	ASSERT_U64_EQ(ref_scan(y.fd), 0);
	ASSERT_EQ(synth_put(&y, f[2], sizeof f[2], synth_off(&y, 3),
			    FS_WAL_COMMIT),
		  TEST_OK);
	synth_end(&y);
	return TEST_OK;
}

/* After a frame is broken, an unchanged rewrite of an earlier frame does
 * not re-adopt the broken one: a later commit frame does not commit. */
TEST(wal_synth, earlier_rewrite_keeps_broken_frame)
{
	struct synth y;
	uint8_t f[5][512 + 24], bad[512];
	uint32_t k;

	ASSERT_EQ(synth_start(&y, 512), TEST_OK);
	for (k = 1; k <= 5; k++)
		synth_build(&y, f[k - 1], k, k == 5 ? 5 : 0, k);
	for (k = 1; k <= 4; k++)
		ASSERT_EQ(synth_put(&y, f[k - 1], sizeof f[0],
				    synth_off(&y, k), FS_WAL_PASS),
			  TEST_OK);
	memcpy(bad, f[2] + 24, 512);
	bad[0] ^= 1;
	ASSERT_EQ(synth_put(&y, bad, 512, synth_off(&y, 3) + 24, FS_WAL_PASS),
		  TEST_OK);
	ASSERT_EQ(synth_put(&y, f[0] + 24, 512, synth_off(&y, 1) + 24,
			    FS_WAL_PASS),
		  TEST_OK);
	ASSERT_EQ(synth_put(&y, f[4], sizeof f[4], synth_off(&y, 5),
			    FS_WAL_PASS),
		  TEST_OK);
	ASSERT_U64_EQ(ref_scan(y.fd), 0);
	ASSERT_EQ(synth_put(&y, f[2] + 24, 512, synth_off(&y, 3) + 24,
			    FS_WAL_COMMIT),
		  TEST_OK);
	synth_end(&y);
	return TEST_OK;
}

/* Five frames (5 commits), 1..4 written and valid, frame 2's page then
 * broken: validation is back at frame 1 and frames 3..4 are remembered. */
static int synth_five_broken_two(struct synth *y, uint8_t f[5][512 + 24])
{
	uint8_t bad[512];
	uint32_t k;

	ASSERT_EQ(synth_start(y, 512), TEST_OK);
	for (k = 1; k <= 5; k++)
		synth_build(y, f[k - 1], k, k == 5 ? 5 : 0, k);
	for (k = 1; k <= 4; k++)
		ASSERT_EQ(synth_put(y, f[k - 1], 512 + 24, synth_off(y, k),
				    FS_WAL_PASS),
			  TEST_OK);
	memcpy(bad, f[1] + 24, 512);
	bad[7] ^= 1;
	ASSERT_EQ(synth_put(y, bad, 512, synth_off(y, 2) + 24, FS_WAL_PASS),
		  TEST_OK);
	ASSERT_EQ(y->w.valid, 1);
	return TEST_OK;
}

/* One write restoring the first invalid frame and breaking the next does
 * not re-adopt the broken one: a later commit frame does not commit. */
TEST(wal_synth, frontier_spanning_write_forgets_next)
{
	struct synth y;
	uint8_t f[5][512 + 24], two[2 * (512 + 24)];

	ASSERT_EQ(synth_five_broken_two(&y, f), TEST_OK);
	memcpy(two, f[1], sizeof f[1]);
	memcpy(two + sizeof f[1], f[2], sizeof f[2]);
	two[sizeof two - 1] ^= 1;
	ASSERT_EQ(synth_put(&y, two, sizeof two, synth_off(&y, 2),
			    FS_WAL_PASS),
		  TEST_OK);
	ASSERT_EQ(synth_put(&y, f[4], sizeof f[4], synth_off(&y, 5),
			    FS_WAL_PASS),
		  TEST_OK);
	ASSERT_U64_EQ(ref_scan(y.fd), 0);
	ASSERT_EQ(synth_put(&y, f[2] + 24, 512, synth_off(&y, 3) + 24,
			    FS_WAL_COMMIT),
		  TEST_OK);
	synth_end(&y);
	return TEST_OK;
}

/* A remembered frame past the first invalid one, broken and then the
 * first one restored, is not re-adopted: a later commit frame does not
 * commit. */
TEST(wal_synth, remembered_frame_broken_later)
{
	struct synth y;
	uint8_t f[5][512 + 24], bad[512];

	ASSERT_EQ(synth_five_broken_two(&y, f), TEST_OK);
	memcpy(bad, f[2] + 24, 512);
	bad[100] ^= 1;
	ASSERT_EQ(synth_put(&y, bad, 512, synth_off(&y, 3) + 24, FS_WAL_PASS),
		  TEST_OK);
	ASSERT_EQ(synth_put(&y, f[1] + 24, 512, synth_off(&y, 2) + 24,
			    FS_WAL_PASS),
		  TEST_OK);
	ASSERT_EQ(y.w.valid, 2);
	ASSERT_EQ(synth_put(&y, f[4], sizeof f[4], synth_off(&y, 5),
			    FS_WAL_PASS),
		  TEST_OK);
	ASSERT_U64_EQ(ref_scan(y.fd), 0);
	ASSERT_EQ(synth_put(&y, f[2] + 24, 512, synth_off(&y, 3) + 24,
			    FS_WAL_COMMIT),
		  TEST_OK);
	synth_end(&y);
	return TEST_OK;
}

/* A truncation that cuts the held transaction makes fs__wal_committed
 * rescan the file instead of trusting the held frames. */
TEST(wal_synth, truncate_while_held)
{
	enum { PS = 512 };
	uint8_t h[32], fh[24], page[PS];
	uint32_t s[2];
	struct fs_wal w;
	struct eng_txn *t = NULL;
	int fd = temp_fd();

	synth_header(h, PS, 11);
	s[0] = qf_get_be32(h + 24);
	s[1] = qf_get_be32(h + 28);
	fill_page(page, PS, 1);
	synth_frame(fh, h, 1, 1, page, PS, s);
	ASSERT_EQ(fs__wal_init(&w, fd), 0);
	ASSERT_EQ(fs__wal_write(&w, h, 32, 0, DB_NAME, &t), FS_WAL_PASS);
	ASSERT_EQ(put_bytes(fd, h, 32, 0), 0);
	ASSERT_EQ(fs__wal_write(&w, fh, 24, 32, DB_NAME, &t), FS_WAL_PASS);
	ASSERT_EQ(put_bytes(fd, fh, 24, 32), 0);
	ASSERT_EQ(fs__wal_write(&w, page, PS, 56, DB_NAME, &t),
		  FS_WAL_COMMIT);
	eng_txn_free(t);
	ASSERT_EQ(ftruncate(fd, 32), 0);
	fs__wal_truncated(&w, 32);
	ASSERT_EQ(put_bytes(fd, page, PS, 56), 0); /* the held write lands */
	fs__wal_committed(&w);
	ASSERT_EQ(fs__wal_frames(&w), 0); /* frame 1's header is gone */
	ASSERT_U64_EQ(ref_scan(fd), 0);
	fs__wal_close(&w);
	close(fd);
	return TEST_OK;
}

int main(int argc, char **argv)
{
	return unit_main(argc, argv);
}
