/* Helpers shared by the WAL tracker unit tests: files, the tests' own WAL
 * reader and writer, captures and their replay (see wal_fixture.h).  This
 * file also defines pread(), for the whole test executable. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../../lib/unit.h"
#include "wal_fixture.h"

#ifndef QF_TEST_DATA
#error "QF_TEST_DATA must name tests/unit/data"
#endif

/* ---- counting pread ---- */

uint64_t wf_pread_bytes; /* bytes read through pread() */

/* Replaces libc's pread for this executable: the tracker's reads. */
ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	long rv = syscall(SYS_pread64, fd, buf, n, off);

	if (rv > 0)
		wf_pread_bytes += (uint64_t)rv;
	return rv;
}

/* ---- files ---- */

/* Read all of @path; NULL if it cannot be read. */
uint8_t *wf_slurp(const char *path, size_t *len)
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
int wf_temp_fd(void)
{
	char path[] = "/tmp/qf-test-wal-XXXXXX";
	int fd = mkstemp(path);

	if (fd >= 0)
		unlink(path);
	return fd;
}

int wf_put_bytes(int fd, const void *p, size_t n, uint64_t off)
{
	return qf_pwrite_full(fd, p, n, (int64_t)off);
}

/* ---- the test's own WAL reading (independent of fs/wal.c) ---- */

void wf_ref_cksum(bool be, const uint8_t *p, size_t n, uint32_t s[2])
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
uint64_t wf_ref_scan(int fd)
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
	wf_ref_cksum(be, p, 24, s);
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
		wf_ref_cksum(be, f, 8, s);
		wf_ref_cksum(be, f + 24, ps, s);
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

void wf_synth_header(uint8_t h[32], uint32_t ps, uint32_t salt1)
{
	uint32_t s[2] = {0, 0};

	qf_put_be32(h, 0x377f0682u);
	qf_put_be32(h + 4, 3007000);
	qf_put_be32(h + 8, ps);
	qf_put_be32(h + 12, 0);
	qf_put_be32(h + 16, salt1);
	qf_put_be32(h + 20, 0x5a17u);
	wf_ref_cksum(false, h, 24, s);
	qf_put_be32(h + 24, s[0]);
	qf_put_be32(h + 28, s[1]);
}

/* Frame header for @page, continuing the chain @s (updated). */
void wf_synth_frame(uint8_t fh[24], const uint8_t *hdr, uint32_t pgno,
		    uint32_t nt, const uint8_t *page, uint32_t ps,
		    uint32_t s[2])
{
	qf_put_be32(fh, pgno);
	qf_put_be32(fh + 4, nt);
	memcpy(fh + 8, hdr + 16, 8);
	wf_ref_cksum(false, fh, 8, s);
	wf_ref_cksum(false, page, ps, s);
	qf_put_be32(fh + 16, s[0]);
	qf_put_be32(fh + 20, s[1]);
}

void wf_fill_page(uint8_t *page, uint32_t ps, uint32_t seed)
{
	uint32_t i;

	for (i = 0; i < ps; i++)
		page[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 8));
}

/* ---- captures ---- */

const char *const wf_all_captures[N_CAPTURES] = {
	"autocommit_full", "autocommit_normal", "spill", "savepoint",
	"sp0",		   "restart",		"vacuum",	   "psow0",
};

static uint8_t *load_part(const char *name, const char *ext, size_t *len)
{
	char path[512];

	snprintf(path, sizeof path, "%s/wal/%s%s", QF_TEST_DATA, name, ext);
	return wf_slurp(path, len);
}

void wf_free_capture(struct capture *c)
{
	free(c->raw);
	free(c->base);
	free(c->final);
	free(c->recs);
	memset(c, 0, sizeof *c);
}

int wf_load_capture(const char *name, struct capture *c)
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
int wf_count_matches(const struct capture *c, size_t ntxn, unsigned noops)
{
	if (strcmp(c->name, "psow0") != 0)
		ASSERT_EQ(noops, 0);
	ASSERT_EQ(ntxn - noops, c->commits);
	return TEST_OK;
}

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
		ASSERT_EQ(wf_ref_scan(r->fd), fs__wal_frames(&r->w));
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
			ASSERT_EQ(wf_put_bytes(r->fd, p, n, off), 0);
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
			ASSERT_EQ(wf_put_bytes(r->fd, p, n, off), 0);
			fs__wal_committed(&r->w);
		} else {
			fs__wal_committed(&r->w);
			ASSERT_EQ(wf_put_bytes(r->fd, p, n, off), 0);
		}
		ASSERT_EQ(check_scan(r), TEST_OK);
		*committed_out = true;
		done += n;
	}
	return TEST_OK;
}

int wf_feed_range(struct replay *r, size_t from, size_t to)
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
			ASSERT_EQ(wf_feed_range(r, txn_start, i), TEST_OK);
			ASSERT_TRUE(!r->retrying); /* it committed again */
			committed = true;
		}
		if (committed)
			txn_start = i + 1;
	}
	return TEST_OK;
}

void wf_replay_free(struct replay *r)
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

/* Replay the whole capture; the caller frees @r with wf_replay_free(). */
int wf_replay_run(struct replay *r, const struct capture *c)
{
	r->cap = c;
	r->fd = wf_temp_fd();
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
	ASSERT_EQ(wf_feed_range(r, 0, c->n - 1), TEST_OK);
	return TEST_OK;
}

/* The shadow equals the database SQLite produced, page by page. */
int wf_shadow_matches(const struct replay *r)
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
int wf_replay_checked(const char *name, struct replay *r, struct capture *c)
{
	ASSERT_EQ(wf_load_capture(name, c), TEST_OK);
	r->check_scan = true;
	ASSERT_EQ(wf_replay_run(r, c), TEST_OK);
	ASSERT_EQ(wf_count_matches(c, r->ntxn, r->st.noops), TEST_OK);
	ASSERT_EQ(wf_shadow_matches(r), TEST_OK);
	return TEST_OK;
}

/* Replay every capture with @tmpl's settings; each must give the same
 * transactions as the unsplit replay and SQLite's final database. */
int wf_replay_all_same(const struct replay *tmpl)
{
	size_t i, j;

	for (i = 0; i < N_CAPTURES; i++) {
		struct capture c;
		struct replay base = {.fd = -1}, r = *tmpl;

		ASSERT_EQ(wf_load_capture(wf_all_captures[i], &c), TEST_OK);
		ASSERT_EQ(wf_replay_run(&base, &c), TEST_OK);
		r.fd = -1;
		ASSERT_EQ(wf_replay_run(&r, &c), TEST_OK);
		if (r.ntxn != base.ntxn)
			fprintf(stderr, "%s: %zu txns, unsplit %zu\n", c.name,
				r.ntxn, base.ntxn);
		ASSERT_EQ(r.ntxn, base.ntxn);
		ASSERT_EQ(wf_count_matches(&c, r.ntxn, r.st.noops), TEST_OK);
		for (j = 0; j < r.ntxn; j++)
			ASSERT_U64_EQ(r.digests[j], base.digests[j]);
		ASSERT_EQ(wf_shadow_matches(&r), TEST_OK);
		wf_replay_free(&base);
		wf_replay_free(&r);
		wf_free_capture(&c);
	}
	return TEST_OK;
}

/* Replay @name (unsplit) up to and including record @upto into @r. */
int wf_replay_prefix(const char *name, size_t upto, struct replay *r,
		     struct capture *c)
{
	ASSERT_EQ(wf_load_capture(name, c), TEST_OK);
	r->cap = c;
	r->fd = wf_temp_fd();
	r->last_hdr_frame = -1;
	ASSERT_TRUE(r->fd >= 0);
	ASSERT_EQ(fs__wal_init(&r->w, r->fd), 0);
	r->shadow = malloc(c->base_len);
	ASSERT_NOT_NULL(r->shadow);
	memcpy(r->shadow, c->base, c->base_len);
	r->shadow_len = r->shadow_cap = c->base_len;
	r->db_pages = (uint32_t)(c->base_len / c->page_size);
	ASSERT_EQ(wf_feed_range(r, 0, upto), TEST_OK);
	return TEST_OK;
}
