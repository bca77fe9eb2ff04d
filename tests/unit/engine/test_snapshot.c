/* Unit tests for snapshots (engine/snapshot.c): take, copy, restore.
 *
 * Every test gets its own directories under a root made by fx_main()
 * (which removes the root when the runner is done, also after a failed or
 * crashed test; see fixture.h).  Source databases are real SQLite files
 * described to the state as one transaction carrying every page; expected
 * checksums are XORs of qf_page_hash computed here.  Hand-made snapshots
 * follow the format documented in snapshot.h, so rejection tests can break
 * one field.
 * Every restore reads a heap copy of exactly the given length, so an
 * over-read shows up under valgrind or ASan. */
#include <errno.h>
#include <raft.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/snapshot.h"
#include "fixture.h"
#include "tests/lib/unit.h"

/* ---- snapshots ---- */

static size_t pad8(size_t n)
{
	return (n + 7) / 8 * 8;
}

/* One database of a hand-made snapshot. */
struct srec {
	const char *name;
	uint32_t name_len; /* 0: strlen(name) */
	uint32_t ps, pages;
	uint64_t seq, cksum;
	const uint8_t *img; /* pages * ps bytes */
};

/* A snapshot in the format of snapshot.h: header, then the images. */
static uint8_t *snap_build(uint64_t index, const struct srec *r, size_t n,
			   size_t *len)
{
	size_t size = 24, off, i;
	uint8_t *b;

	for (i = 0; i < n; i++) {
		size_t nl = r[i].name_len ? r[i].name_len : strlen(r[i].name);

		size += 32 + pad8(nl) + (size_t)r[i].pages * r[i].ps;
	}
	b = calloc(1, size);
	if (b == NULL)
		abort();
	qf_put_le32(b, 0x314e4651);
	qf_put_le32(b + 4, 1);
	qf_put_le64(b + 8, index);
	qf_put_le64(b + 16, n);
	off = 24;
	for (i = 0; i < n; i++) {
		size_t nl = r[i].name_len ? r[i].name_len : strlen(r[i].name);

		qf_put_le32(b + off, (uint32_t)nl);
		qf_put_le32(b + off + 4, r[i].ps);
		qf_put_le32(b + off + 8, r[i].pages);
		qf_put_le64(b + off + 16, r[i].seq);
		qf_put_le64(b + off + 24, r[i].cksum);
		memcpy(b + off + 32, r[i].name, nl);
		off += 32 + pad8(nl);
	}
	for (i = 0; i < n; i++) {
		memcpy(b + off, r[i].img, (size_t)r[i].pages * r[i].ps);
		off += (size_t)r[i].pages * r[i].ps;
	}
	*len = size;
	return b;
}

/* What raft stores of a version 2 snapshot (snapshot.h): the records
 * with the (zeroed) local field and the page hashes; no pages. */
static uint8_t *meta_build(uint64_t index, const struct srec *r, size_t n,
			   size_t *len)
{
	size_t size = 24, off, i;
	uint32_t p;
	uint8_t *b;

	for (i = 0; i < n; i++)
		size += 32 + pad8(strlen(r[i].name)) + 8 + 8 * (size_t)r[i].pages;
	b = calloc(1, size);
	if (b == NULL)
		abort();
	qf_put_le32(b, 0x324e4651);
	qf_put_le32(b + 4, 2);
	qf_put_le64(b + 8, index);
	qf_put_le64(b + 16, n);
	off = 24;
	for (i = 0; i < n; i++) {
		size_t nl = strlen(r[i].name);

		qf_put_le32(b + off, (uint32_t)nl);
		qf_put_le32(b + off + 4, r[i].ps);
		qf_put_le32(b + off + 8, r[i].pages);
		qf_put_le64(b + off + 16, r[i].seq);
		qf_put_le64(b + off + 24, r[i].cksum);
		memcpy(b + off + 32, r[i].name, nl);
		off += 32 + pad8(nl) + 8;
		for (p = 1; p <= r[i].pages; p++, off += 8)
			qf_put_le64(b + off,
				    qf_page_hash(p, r[i].img + (size_t)(p - 1) * r[i].ps,
						 r[i].ps));
	}
	*len = size;
	return b;
}

/* Take and copy a snapshot of @f at @index: what raft stores (the
 * metadata) is returned, the image stays in @f's state dir.  NULL if take
 * or copy failed. */
static uint8_t *snapshot_of(struct fx *f, uint64_t index, size_t *len)
{
	struct raft_buffer *bufs = NULL;
	unsigned n = 0;
	uint8_t *out;

	if (eng__snapshot_take(&f->dbs, index, &bufs, &n) != 0)
		return NULL;
	if (eng__snapshot_copy(f->db, f->state, f->dir, &bufs, &n) != 0)
		return NULL;
	if (n != 1)
		abort();
	*len = bufs[0].len;
	out = malloc(*len + 1);
	if (out == NULL)
		abort();
	memcpy(out, bufs[0].base, *len);
	eng__snapshot_free(&bufs, &n);
	return out;
}

static const char *image_file(struct fx *f, uint64_t index)
{
	return fx_path("%s/snapshots/%llu.img", f->state,
		       (unsigned long long)index);
}

/* The image file of @f's snapshot at @index; NULL if there is none. */
static uint8_t *image_of(struct fx *f, uint64_t index, size_t *len)
{
	if (fx_file_size(image_file(f, index)) < 0)
		return NULL;
	return fx_read_file(image_file(f, index), len);
}

/* Give @dst the image of @src's snapshot at @index, as a restart finds it. */
static void copy_image(struct fx *src, struct fx *dst, uint64_t index)
{
	size_t len;
	uint8_t *img = image_of(src, index, &len);

	if (img == NULL)
		abort();
	fx_write_file(image_file(dst, index), img, len);
	free(img);
}

/* Restore from a heap copy of exactly @len bytes of @buf. */
static int restore(struct fx *f, const uint8_t *buf, size_t len,
		   uint64_t *index)
{
	uint8_t *copy = malloc(len ? len : 1);
	int rv;

	if (copy == NULL)
		abort();
	memcpy(copy, buf, len);
	rv = eng__snapshot_restore(&f->dbs, copy, len, index);
	free(copy);
	return rv;
}

/* The backing file of @name in @f holds exactly @want_len bytes of @want. */
static int file_is(struct fx *f, const char *name, const uint8_t *want,
		   size_t want_len)
{
	size_t len;
	uint8_t *got = fx_read_file(fx_path("%s/%s", f->db, name), &len);

	ASSERT_NOT_NULL(got);
	ASSERT_EQ(len, want_len);
	ASSERT_MEM_EQ(got, want, len);
	free(got);
	return TEST_OK;
}

/* Two state records agree on everything a snapshot carries. */
static int same_db(const struct eng_db *a, const struct eng_db *b)
{
	uint32_t i;

	ASSERT_NOT_NULL(a);
	ASSERT_NOT_NULL(b);
	ASSERT_EQ(a->page_size, b->page_size);
	ASSERT_EQ(a->db_pages, b->db_pages);
	ASSERT_U64_EQ(a->seq, b->seq);
	ASSERT_U64_EQ(a->cksum, b->cksum);
	for (i = 0; i < a->db_pages; i++)
		ASSERT_U64_EQ(a->hash[i], b->hash[i]);
	return TEST_OK;
}

/* A snapshot record for @name: @pages pages of 512 bytes filled into @img
 * from @seed, seq 4. */
static struct srec synth_rec(const char *name, uint8_t *img, uint32_t pages,
			     uint32_t seed)
{
	struct srec r = {.name = name, .ps = 512, .pages = pages, .seq = 4,
			 .img = img};

	fill_page(img, pages * 512, seed);
	r.cksum = xor_pages(img, 512, pages);
	return r;
}

/* A valid two-database hand-made snapshot at index 20. */
static uint8_t *two_db_snapshot(size_t *len, uint8_t img_a[3 * 512],
				uint8_t img_b[2 * 512])
{
	struct srec r[2];

	r[0] = synth_rec("a.db", img_a, 3, 1);
	r[1] = synth_rec("d/b.db", img_b, 2, 2);
	return snap_build(20, r, 2, len);
}

/* A target with "a.db" (4 pages) and "d/b.db" (2 pages), both at seq 1
 * and applied 1, older than two_db_snapshot()'s seq 4: a restore replaces
 * them, a rejected one must leave them alone. */
static void older_target(struct fx *f, uint8_t old_a[4 * 512],
			 uint8_t old_b[2 * 512])
{
	struct eng_db *d;

	fill_page(old_a, 4 * 512, 90);
	fill_page(old_b, 2 * 512, 91);
	fx_write_file(fx_path("%s/a.db", f->db), old_a, 4 * 512);
	fx_write_file(fx_path("%s/d/b.db", f->db), old_b, 2 * 512);
	d = eng__db_get(&f->dbs, "a.db");
	d->page_size = 512;
	d->db_pages = 4;
	d->cksum = xor_pages(old_a, 512, 4);
	d->seq = 1;
	d->applied = 1;
	if (eng__db_rehash(&f->dbs, d) != 1 || eng__db_save_all(&f->dbs, d))
		abort();
	d = eng__db_get(&f->dbs, "d/b.db");
	d->page_size = 512;
	d->db_pages = 2;
	d->cksum = xor_pages(old_b, 512, 2);
	d->seq = 1;
	d->applied = 1;
	if (eng__db_rehash(&f->dbs, d) != 1 || eng__db_save_all(&f->dbs, d))
		abort();
}

/* The target built by older_target() is as it was. */
static int older_target_intact(struct fx *f, const uint8_t *old_a,
			       const uint8_t *old_b)
{
	struct eng_db *a = eng__db_find(&f->dbs, "a.db");
	struct eng_db *b = eng__db_find(&f->dbs, "d/b.db");

	ASSERT_EQ(file_is(f, "a.db", old_a, 4 * 512), TEST_OK);
	ASSERT_EQ(file_is(f, "d/b.db", old_b, 2 * 512), TEST_OK);
	ASSERT_NOT_NULL(a);
	ASSERT_NOT_NULL(b);
	ASSERT_U64_EQ(a->applied, 1);
	ASSERT_U64_EQ(b->applied, 1);
	ASSERT_EQ(a->db_pages, 4);
	ASSERT_EQ(b->db_pages, 2);
	ASSERT_U64_EQ(a->cksum, xor_pages(old_a, 512, 4));
	ASSERT_U64_EQ(b->cksum, xor_pages(old_b, 512, 2));
	return TEST_OK;
}

/* ---- round trip ---- */

/* take, copy and restore into a fresh state and db dir reproduce every
 * database file byte for byte, and its seq, checksum and hashes, at the
 * snapshot's index; the restored state is persisted. */
TEST(snapshot, round_trip)
{
	static const char *names[] = {"a.db", "sub/b.db", "sub/deeper/c.db"};
	struct fx src, dst;
	struct eng_db *d;
	uint64_t index = 0;
	uint8_t *snap;
	size_t len, i;

	fx_init(&src);
	fx_init(&dst);
	make_db(fx_path("%s/a.db", src.db), 4096, 30, 0);
	make_db(fx_path("%s/sub/b.db", src.db), 512, 50, 1);
	make_db(fx_path("%s/sub/deeper/c.db", src.db), 1024, 10, 2);
	for (i = 0; i < 3; i++)
		adopt_file(&src, eng__db_get(&src.dbs, names[i]), i + 2);
	sql_run(fx_path("%s/a.db", src.db),
		"UPDATE t SET b = printf('%0400d', a);");
	adopt_file(&src, eng__db_find(&src.dbs, "a.db"), 6);
	snap = snapshot_of(&src, 9, &len);
	ASSERT_NOT_NULL(snap);
	copy_image(&src, &dst, 9);
	ASSERT_EQ(restore(&dst, snap, len, &index), 0);
	ASSERT_U64_EQ(index, 9);
	for (i = 0; i < 3; i++) {
		size_t n;
		uint8_t *want =
			fx_read_file(fx_path("%s/%s", src.db, names[i]), &n);

		ASSERT_NOT_NULL(want);
		ASSERT_EQ(file_is(&dst, names[i], want, n), TEST_OK);
		free(want);
		d = eng__db_find(&dst.dbs, names[i]);
		ASSERT_EQ(same_db(d, eng__db_find(&src.dbs, names[i])),
			  TEST_OK);
		ASSERT_U64_EQ(d->applied, 9);
		ASSERT_U64_EQ(d->wal_frames, 0);
	}
	ASSERT_U64_EQ(eng__db_find(&dst.dbs, "a.db")->seq, 2);
	fx_restart(&dst);
	ASSERT_EQ(eng__dbs_load(&dst.dbs, false), 0);
	for (i = 0; i < 3; i++) {
		d = eng__db_find(&dst.dbs, names[i]);
		ASSERT_EQ(same_db(d, eng__db_find(&src.dbs, names[i])),
			  TEST_OK);
		ASSERT_U64_EQ(d->applied, 9);
	}
	free(snap);
	fx_fini(&src);
	fx_fini(&dst);
	return TEST_OK;
}

/* Databases with no pages are left out of a snapshot and not created by
 * its restore. */
TEST(snapshot, empty_dbs_left_out)
{
	struct fx src, dst;
	uint64_t index = 0;
	uint8_t *snap;
	size_t len;

	fx_init(&src);
	fx_init(&dst);
	ASSERT_NOT_NULL(eng__db_get(&src.dbs, "e.db"));
	make_db(fx_path("%s/a.db", src.db), 1024, 5, 0);
	adopt_file(&src, eng__db_get(&src.dbs, "a.db"), 2);
	ASSERT_NOT_NULL(eng__db_get(&src.dbs, "e2.db"));
	snap = snapshot_of(&src, 3, &len);
	ASSERT_NOT_NULL(snap);
	ASSERT_U64_EQ(qf_get_le64(snap + 16), 1);
	copy_image(&src, &dst, 3);
	ASSERT_EQ(restore(&dst, snap, len, &index), 0);
	ASSERT_NOT_NULL(eng__db_find(&dst.dbs, "a.db"));
	ASSERT_NULL(eng__db_find(&dst.dbs, "e.db"));
	ASSERT_NULL(eng__db_find(&dst.dbs, "e2.db"));
	ASSERT_EQ(fx_file_size(fx_path("%s/e.db", dst.db)), -1);
	free(snap);
	fx_fini(&src);
	fx_fini(&dst);
	return TEST_OK;
}

/* A snapshot of no databases restores as nothing, with its index. */
TEST(snapshot, no_databases)
{
	struct fx src, dst;
	uint64_t index = 0;
	uint8_t *snap;
	size_t len;

	fx_init(&src);
	fx_init(&dst);
	snap = snapshot_of(&src, 77, &len);
	ASSERT_NOT_NULL(snap);
	ASSERT_EQ(len, 24);
	ASSERT_EQ(fx_file_size(image_file(&src, 77)), 0);
	ASSERT_EQ(restore(&dst, snap, len, &index), 0);
	ASSERT_U64_EQ(index, 77);
	ASSERT_NULL(dst.dbs.head);
	free(snap);
	fx_fini(&src);
	fx_fini(&dst);
	return TEST_OK;
}

/* A diverged database's files do not hold its state: no snapshot is
 * taken (RAFT_BUSY, raft tries later) until it is repaired. */
TEST(snapshot, postponed_while_diverged)
{
	struct fx f;
	struct raft_buffer *bufs = NULL;
	unsigned n = 0;
	struct eng_db *d;

	fx_init(&f);
	d = eng__db_get(&f.dbs, "x.db");
	ASSERT_NOT_NULL(d);
	d->diverged = true;
	ASSERT_EQ(eng__snapshot_take(&f.dbs, 5, &bufs, &n), RAFT_BUSY);
	ASSERT_NULL(bufs);
	d->diverged = false;
	ASSERT_EQ(eng__snapshot_take(&f.dbs, 5, &bufs, &n), 0);
	eng__snapshot_free(&bufs, &n);
	fx_fini(&f);
	return TEST_OK;
}

/* copy's output is exactly the format snapshot.h documents (no local WAL
 * frame count left in it), and the image file holds the pages. */
TEST(snapshot, copy_matches_format)
{
	struct fx f;
	struct eng_db *d;
	struct srec r;
	uint8_t *img, *snap, *want, *file;
	size_t img_len, len, want_len, file_len;

	fx_init(&f);
	make_db(fx_path("%s/dir/x1.db", f.db), 1024, 12, 0);
	d = eng__db_get(&f.dbs, "dir/x1.db"); /* 9 bytes: padded name */
	adopt_file(&f, d, 4);
	d->wal_frames = 0; /* nothing in a WAL, but the field must be 0 */
	img = fx_read_file(fx_path("%s/dir/x1.db", f.db), &img_len);
	ASSERT_NOT_NULL(img);
	r = (struct srec){.name = "dir/x1.db", .ps = 1024,
			  .pages = (uint32_t)(img_len / 1024), .seq = 1,
			  .cksum = xor_pages(img, 1024,
					     (uint32_t)(img_len / 1024)),
			  .img = img};
	want = meta_build(0x0102030405060708ULL, &r, 1, &want_len);
	snap = snapshot_of(&f, 0x0102030405060708ULL, &len);
	ASSERT_NOT_NULL(snap);
	ASSERT_EQ(len, want_len);
	ASSERT_MEM_EQ(snap, want, len);
	file = image_of(&f, 0x0102030405060708ULL, &file_len);
	ASSERT_NOT_NULL(file);
	ASSERT_EQ(file_len, img_len);
	ASSERT_MEM_EQ(file, img, img_len);
	ASSERT_EQ(fx_file_size(fx_path("%s/snapshots/%llu.img.tmp", f.state,
				       0x0102030405060708ULL)), -1);
	free(file);
	free(img);
	free(snap);
	free(want);
	fx_fini(&f);
	return TEST_OK;
}

/* The memory a snapshot takes does not grow with the databases: what raft
 * keeps is 8 bytes a page, however large the pages. */
TEST(snapshot, metadata_is_eight_bytes_a_page)
{
	struct fx f;
	uint8_t *snap;
	size_t len, img_len;
	uint8_t *img;
	uint32_t pages;

	fx_init(&f);
	make_db(fx_path("%s/big.db", f.db), 65536, 400, 0);
	adopt_file(&f, eng__db_get(&f.dbs, "big.db"), 2);
	pages = eng__db_find(&f.dbs, "big.db")->db_pages;
	ASSERT_TRUE(pages > 4);
	snap = snapshot_of(&f, 5, &len);
	ASSERT_NOT_NULL(snap);
	ASSERT_EQ(len, 24 + 32 + 8 + 8 + 8 * (size_t)pages);
	img = image_of(&f, 5, &img_len);
	ASSERT_NOT_NULL(img);
	ASSERT_EQ(img_len, (size_t)pages * 65536);
	free(img);
	free(snap);
	fx_fini(&f);
	return TEST_OK;
}

/* ---- copy ---- */

/* copy fails with RAFT_IOERR, and frees the buffers, when the backing file
 * no longer matches the recorded checksum. */
TEST(snapshot, copy_fails_on_mismatch)
{
	struct fx f;
	struct raft_buffer *bufs = NULL;
	unsigned n = 0;
	uint8_t byte = 0x5a;

	fx_init(&f);
	make_db(fx_path("%s/a.db", f.db), 1024, 20, 0);
	adopt_file(&f, eng__db_get(&f.dbs, "a.db"), 2);
	ASSERT_EQ(eng__snapshot_take(&f.dbs, 2, &bufs, &n), 0);
	fx_patch_file(fx_path("%s/a.db", f.db), 1024 + 700, &byte, 1);
	ASSERT_EQ(eng__snapshot_copy(f.db, f.state, f.dir, &bufs, &n), RAFT_IOERR);
	ASSERT_NULL(bufs);
	ASSERT_EQ(n, 0);
	ASSERT_EQ(fx_file_size(image_file(&f, 2)), -1);
	ASSERT_EQ(fx_file_size(fx_path("%s.tmp", image_file(&f, 2))), -1);
	fx_fini(&f);
	return TEST_OK;
}

/* The checksum check in copy covers every database: one good and one
 * changed database still fail the copy. */
TEST(snapshot, copy_fails_on_second_db_mismatch)
{
	struct fx f;
	struct raft_buffer *bufs = NULL;
	unsigned n = 0;

	fx_init(&f);
	make_db(fx_path("%s/a.db", f.db), 1024, 20, 0);
	make_db(fx_path("%s/b.db", f.db), 1024, 20, 1);
	adopt_file(&f, eng__db_get(&f.dbs, "a.db"), 2);
	adopt_file(&f, eng__db_get(&f.dbs, "b.db"), 3);
	ASSERT_EQ(eng__snapshot_take(&f.dbs, 3, &bufs, &n), 0);
	/* The record taken first is the state created last: change a.db. */
	ASSERT_EQ(truncate(fx_path("%s/a.db", f.db), 1024), 0);
	ASSERT_EQ(eng__snapshot_copy(f.db, f.state, f.dir, &bufs, &n), RAFT_IOERR);
	ASSERT_NULL(bufs);
	fx_fini(&f);
	return TEST_OK;
}

/* With WAL frames recorded, pages from the WAL's committed prefix win over
 * the database file: the copy is the database SQLite itself sees. */
TEST(snapshot, copy_reads_wal_frames)
{
	struct fx f;
	struct eng_db *d;
	sqlite3 *conn;
	char path[512];
	uint8_t *img, *snap, *file;
	size_t len, snap_len, file_len;
	long long wal;
	uint32_t pages;

	fx_init(&f);
	snprintf(path, sizeof path, "%s/w.db", f.db);
	conn = make_wal_db(path, 40);
	wal = fx_file_size(fx_path("%s-wal", path));
	ASSERT_TRUE(wal > 32);
	img = checkpointed_image(path, fx_path("%s/scratch.db", f.dir), &len);
	ASSERT_NOT_NULL(img);
	pages = (uint32_t)(len / 1024);
	/* Precondition: the database file alone is not that database. */
	file = fx_read_file(path, &file_len);
	ASSERT_NOT_NULL(file);
	ASSERT_TRUE(file_len < len);
	d = eng__db_get(&f.dbs, "w.db");
	adopt_image(d, img, len, 3);
	d->wal_frames = (uint64_t)(wal - 32) / (1024 + 24);
	snap = snapshot_of(&f, 3, &snap_len);
	ASSERT_NOT_NULL(snap);
	ASSERT_EQ(qf_get_le32(snap + 32), pages);
	ASSERT_EQ(snap_len, 24 + 32 + 8 + 8 + 8 * (size_t)pages);
	free(file);
	file = image_of(&f, 3, &file_len);
	ASSERT_NOT_NULL(file);
	ASSERT_EQ(file_len, len);
	ASSERT_MEM_EQ(file, img, len);
	sqlite3_close(conn);
	free(img);
	free(file);
	free(snap);
	fx_fini(&f);
	return TEST_OK;
}

/* WAL frames past the recorded count (later transactions) are not read:
 * the copy is the database at the recorded state. */
TEST(snapshot, copy_ignores_later_wal_frames)
{
	struct fx f;
	struct eng_db *d;
	sqlite3 *conn;
	char path[512];
	uint8_t *img_a, *img_b, *snap;
	size_t len_a, len_b, snap_len;
	long long wal_a, wal_b;

	fx_init(&f);
	snprintf(path, sizeof path, "%s/w.db", f.db);
	conn = make_wal_db(path, 40);
	wal_a = fx_file_size(fx_path("%s-wal", path));
	img_a = checkpointed_image(path, fx_path("%s/scratch_a.db", f.dir),
				   &len_a);
	ASSERT_NOT_NULL(img_a);
	sql_exec(conn, "UPDATE t SET b = printf('%0400d', a + 3);");
	wal_b = fx_file_size(fx_path("%s-wal", path));
	ASSERT_TRUE(wal_b > wal_a);
	img_b = checkpointed_image(path, fx_path("%s/scratch_b.db", f.dir),
				   &len_b);
	ASSERT_NOT_NULL(img_b);
	ASSERT_EQ(len_a, len_b);
	ASSERT_TRUE(memcmp(img_a, img_b, len_a) != 0);
	d = eng__db_get(&f.dbs, "w.db");
	adopt_image(d, img_a, len_a, 3);
	d->wal_frames = (uint64_t)(wal_a - 32) / (1024 + 24);
	snap = snapshot_of(&f, 3, &snap_len);
	ASSERT_NOT_NULL(snap);
	ASSERT_EQ(snap_len, 24 + 32 + 8 + 8 + len_a / 1024 * 8);
	free(img_b);
	img_b = image_of(&f, 3, &len_b);
	ASSERT_NOT_NULL(img_b);
	ASSERT_EQ(len_b, len_a);
	ASSERT_MEM_EQ(img_b, img_a, len_a);
	sqlite3_close(conn);
	free(img_a);
	free(img_b);
	free(snap);
	fx_fini(&f);
	return TEST_OK;
}

/* ---- restore ---- */

/* A database whose local state already has the snapshot's seq and
 * checksum is kept as it is: its files are neither reset nor rewritten. */
TEST(snapshot, restore_keeps_same_state)
{
	struct fx f;
	struct eng_db *a;
	struct stat before, after;
	uint8_t img_a[3 * 512], img_b[2 * 512];
	uint64_t index = 0;
	uint8_t *snap;
	size_t len;

	fx_init(&f);
	snap = two_db_snapshot(&len, img_a, img_b);
	fx_write_file(fx_path("%s/a.db", f.db), img_a, sizeof img_a);
	/* A reset deletes it. */
	fx_write_file(fx_path("%s/a.db-wal", f.db), "", 0);
	a = eng__db_get(&f.dbs, "a.db");
	a->page_size = 512;
	a->db_pages = 3;
	a->seq = 4;
	a->cksum = xor_pages(img_a, 512, 3);
	a->applied = 2;
	ASSERT_EQ(eng__db_rehash(&f.dbs, a), 1);
	ASSERT_EQ(eng__db_save_all(&f.dbs, a), 0);
	ASSERT_EQ(stat(fx_path("%s/a.db", f.db), &before), 0);
	ASSERT_EQ(restore(&f, snap, len, &index), 0);
	ASSERT_EQ(stat(fx_path("%s/a.db", f.db), &after), 0);
	ASSERT_EQ(after.st_ino, before.st_ino);
	ASSERT_EQ(fx_file_size(fx_path("%s/a.db-wal", f.db)), 0);
	ASSERT_EQ(file_is(&f, "a.db", img_a, sizeof img_a), TEST_OK);
	ASSERT_U64_EQ(a->seq, 4);
	ASSERT_U64_EQ(a->cksum, xor_pages(img_a, 512, 3));
	free(snap);
	fx_fini(&f);
	return TEST_OK;
}

/* A database whose local seq is past the snapshot's is kept, files and
 * state, while an older one in the same snapshot is restored. */
TEST(snapshot, restore_keeps_later_seq)
{
	struct fx f;
	struct eng_db *a, *b;
	uint8_t img_a[3 * 512], img_b[2 * 512], old_a[4 * 512],
		old_b[2 * 512];
	uint64_t index = 0;
	uint8_t *snap;
	size_t len;

	fx_init(&f);
	older_target(&f, old_a, old_b);
	a = eng__db_find(&f.dbs, "a.db");
	a->seq = 5; /* the snapshot has seq 4 */
	ASSERT_EQ(eng__db_save_all(&f.dbs, a), 0);
	snap = two_db_snapshot(&len, img_a, img_b);
	ASSERT_EQ(restore(&f, snap, len, &index), 0);
	ASSERT_EQ(file_is(&f, "a.db", old_a, sizeof old_a), TEST_OK);
	ASSERT_EQ(a->db_pages, 4);
	ASSERT_U64_EQ(a->seq, 5);
	ASSERT_U64_EQ(a->cksum, xor_pages(old_a, 512, 4));
	ASSERT_U64_EQ(a->applied, 1);
	b = eng__db_find(&f.dbs, "d/b.db");
	ASSERT_EQ(file_is(&f, "d/b.db", img_b, sizeof img_b), TEST_OK);
	ASSERT_U64_EQ(b->seq, 4);
	ASSERT_U64_EQ(b->applied, 20);
	free(snap);
	fx_fini(&f);
	return TEST_OK;
}

/* A database at the snapshot's seq with another checksum (a copy that
 * went astray) is replaced by the snapshot's image. */
TEST(snapshot, restore_replaces_same_seq_other_cksum)
{
	struct fx f;
	struct eng_db *a;
	uint8_t img_a[3 * 512], img_b[2 * 512], old_a[4 * 512],
		old_b[2 * 512];
	uint64_t index = 0;
	uint8_t *snap;
	size_t len;

	fx_init(&f);
	older_target(&f, old_a, old_b);
	a = eng__db_find(&f.dbs, "a.db");
	a->seq = 4;
	ASSERT_EQ(eng__db_save_all(&f.dbs, a), 0);
	snap = two_db_snapshot(&len, img_a, img_b);
	ASSERT_EQ(restore(&f, snap, len, &index), 0);
	ASSERT_EQ(file_is(&f, "a.db", img_a, sizeof img_a), TEST_OK);
	ASSERT_EQ(a->db_pages, 3);
	ASSERT_U64_EQ(a->cksum, xor_pages(img_a, 512, 3));
	ASSERT_U64_EQ(a->applied, 20);
	free(snap);
	fx_fini(&f);
	return TEST_OK;
}

/* A database with an older seq than the snapshot's is replaced: its file
 * becomes the image, stale companions go, and the new state (at the
 * snapshot's index) is persisted. */
TEST(snapshot, restore_replaces_older)
{
	struct fx f;
	struct eng_db *a;
	uint8_t img_a[3 * 512], img_b[2 * 512], old_a[4 * 512],
		old_b[2 * 512];
	uint64_t index = 0;
	uint8_t *snap;
	size_t len;

	fx_init(&f);
	older_target(&f, old_a, old_b);
	fx_write_file(fx_path("%s/a.db-wal", f.db), "stale", 5);
	fx_write_file(fx_path("%s/a.db-journal", f.db), "stale", 5);
	snap = two_db_snapshot(&len, img_a, img_b);
	ASSERT_EQ(restore(&f, snap, len, &index), 0);
	ASSERT_U64_EQ(index, 20);
	ASSERT_EQ(file_is(&f, "a.db", img_a, sizeof img_a), TEST_OK);
	ASSERT_EQ(fx_file_size(fx_path("%s/a.db-wal", f.db)), -1);
	ASSERT_EQ(fx_file_size(fx_path("%s/a.db-journal", f.db)), -1);
	a = eng__db_find(&f.dbs, "a.db");
	ASSERT_EQ(a->db_pages, 3);
	ASSERT_U64_EQ(a->seq, 4);
	ASSERT_U64_EQ(a->cksum, xor_pages(img_a, 512, 3));
	ASSERT_U64_EQ(a->applied, 20);
	fx_restart(&f);
	ASSERT_EQ(eng__dbs_load(&f.dbs, true), 0);
	a = eng__db_find(&f.dbs, "a.db");
	ASSERT_NOT_NULL(a);
	ASSERT_U64_EQ(a->seq, 4);
	ASSERT_U64_EQ(a->cksum, xor_pages(img_a, 512, 3));
	ASSERT_U64_EQ(a->applied, 20);
	free(snap);
	fx_fini(&f);
	return TEST_OK;
}

/* Every truncation of a valid snapshot is rejected with QF_EMALFORMED. */
TEST(snapshot, restore_rejects_truncated)
{
	struct fx f;
	uint8_t img_a[3 * 512], img_b[2 * 512];
	uint64_t index;
	uint8_t *snap;
	size_t len, cut;

	fx_init(&f);
	snap = two_db_snapshot(&len, img_a, img_b);
	for (cut = 0; cut < len; cut++) {
		int rv = restore(&f, snap, cut, &index);

		if (rv != QF_EMALFORMED) {
			fprintf(stderr, "length %zu of %zu: %s\n", cut, len,
				qf_strerror(rv));
			return TEST_FAIL;
		}
	}
	ASSERT_EQ(restore(&f, snap, len, &index), 0);
	free(snap);
	fx_fini(&f);
	return TEST_OK;
}

/* A snapshot with bytes after the last image is rejected. */
TEST(snapshot, restore_rejects_trailing_bytes)
{
	struct fx f;
	uint8_t img_a[3 * 512], img_b[2 * 512];
	uint64_t index;
	uint8_t *snap, *longer;
	size_t len;

	fx_init(&f);
	snap = two_db_snapshot(&len, img_a, img_b);
	longer = calloc(1, len + 8);
	ASSERT_NOT_NULL(longer);
	memcpy(longer, snap, len);
	ASSERT_EQ(restore(&f, longer, len + 1, &index), QF_EMALFORMED);
	ASSERT_EQ(restore(&f, longer, len + 8, &index), QF_EMALFORMED);
	free(longer);
	free(snap);
	fx_fini(&f);
	return TEST_OK;
}

/* A wrong magic or version is rejected before any database is touched. */
TEST(snapshot, restore_rejects_magic_and_version)
{
	struct fx f;
	uint8_t img_a[3 * 512], img_b[2 * 512], old_a[4 * 512],
		old_b[2 * 512];
	uint64_t index;
	uint8_t *snap;
	size_t len;

	fx_init(&f);
	older_target(&f, old_a, old_b);
	snap = two_db_snapshot(&len, img_a, img_b);
	snap[0] ^= 1;
	ASSERT_EQ(restore(&f, snap, len, &index), QF_EMALFORMED);
	snap[0] ^= 1;
	qf_put_le32(snap + 4, 2);
	ASSERT_EQ(restore(&f, snap, len, &index), QF_EMALFORMED);
	qf_put_le32(snap + 4, 0);
	ASSERT_EQ(restore(&f, snap, len, &index), QF_EMALFORMED);
	ASSERT_EQ(older_target_intact(&f, old_a, old_b), TEST_OK);
	free(snap);
	fx_fini(&f);
	return TEST_OK;
}

/* An invalid page size in the last record is rejected before any
 * database, even the first, is touched. */
TEST(snapshot, restore_rejects_bad_page_size)
{
	static const uint32_t bad[] = {0, 256, 1000, 131072, 0x80000200u};
	struct fx f;
	uint8_t img_a[3 * 512], img_b[2 * 512], old_a[4 * 512],
		old_b[2 * 512];
	uint64_t index;
	uint8_t *snap;
	size_t len, i, rec2 = 24 + 32 + 8;

	fx_init(&f);
	older_target(&f, old_a, old_b);
	snap = two_db_snapshot(&len, img_a, img_b);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		qf_put_le32(snap + rec2 + 4, bad[i]);
		ASSERT_EQ(restore(&f, snap, len, &index), QF_EMALFORMED);
	}
	ASSERT_EQ(older_target_intact(&f, old_a, old_b), TEST_OK);
	free(snap);
	fx_fini(&f);
	return TEST_OK;
}

/* A record with an empty name, an over-long name or a NUL in its name is
 * rejected before any database is touched. */
TEST(snapshot, restore_rejects_bad_name)
{
	struct fx f;
	uint8_t img_a[3 * 512], img_b[2 * 512], old_a[4 * 512],
		old_b[2 * 512];
	uint64_t index;
	uint8_t *snap;
	size_t len, rec2 = 24 + 32 + 8;

	fx_init(&f);
	older_target(&f, old_a, old_b);
	snap = two_db_snapshot(&len, img_a, img_b);
	qf_put_le32(snap + rec2, 0);
	ASSERT_EQ(restore(&f, snap, len, &index), QF_EMALFORMED);
	qf_put_le32(snap + rec2, 4096);
	ASSERT_EQ(restore(&f, snap, len, &index), QF_EMALFORMED);
	qf_put_le32(snap + rec2, 0xffffffffu);
	ASSERT_EQ(restore(&f, snap, len, &index), QF_EMALFORMED);
	qf_put_le32(snap + rec2, 6);
	snap[rec2 + 32 + 1] = '\0'; /* "d\0b.db" */
	ASSERT_EQ(restore(&f, snap, len, &index), QF_EMALFORMED);
	ASSERT_EQ(older_target_intact(&f, old_a, old_b), TEST_OK);
	free(snap);
	fx_fini(&f);
	return TEST_OK;
}

/* A database count larger than the records present is rejected before
 * any database is touched. */
TEST(snapshot, restore_rejects_extra_count)
{
	static const uint64_t bad[] = {3, 4, 1000, UINT64_MAX};
	struct fx f;
	uint8_t img_a[3 * 512], img_b[2 * 512], old_a[4 * 512],
		old_b[2 * 512];
	uint64_t index;
	uint8_t *snap;
	size_t len, i;

	fx_init(&f);
	older_target(&f, old_a, old_b);
	snap = two_db_snapshot(&len, img_a, img_b);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		qf_put_le64(snap + 16, bad[i]);
		ASSERT_EQ(restore(&f, snap, len, &index), QF_EMALFORMED);
	}
	ASSERT_EQ(older_target_intact(&f, old_a, old_b), TEST_OK);
	free(snap);
	fx_fini(&f);
	return TEST_OK;
}

/* An image whose pages do not produce the recorded checksum is rejected. */
TEST(snapshot, restore_rejects_corrupted_image)
{
	struct fx f;
	uint8_t img_a[3 * 512], img_b[2 * 512];
	uint64_t index;
	uint8_t *snap;
	size_t len;

	fx_init(&f);
	snap = two_db_snapshot(&len, img_a, img_b);
	snap[len - 700] ^= 0x10; /* inside d/b.db's first page */
	ASSERT_EQ(restore(&f, snap, len, &index), QF_EMALFORMED);
	free(snap);
	fx_fini(&f);
	return TEST_OK;
}

/* Flipping the top bit of any header byte never crashes restore: it
 * either succeeds or reports QF_EMALFORMED. */
TEST(snapshot, restore_header_flips)
{
	uint8_t img_a[3 * 512], img_b[2 * 512];
	uint64_t index;
	uint8_t *snap;
	size_t len, off, hdr = 24 + 2 * (32 + 8);

	snap = two_db_snapshot(&len, img_a, img_b);
	for (off = 0; off < hdr; off++) {
		struct fx f;
		int rv;

		fx_init(&f);
		snap[off] ^= 0x80;
		rv = restore(&f, snap, len, &index);
		snap[off] ^= 0x80;
		if (rv != 0 && rv != QF_EMALFORMED) {
			fprintf(stderr, "byte %zu: %s\n", off,
				qf_strerror(rv));
			return TEST_FAIL;
		}
		fx_fini(&f);
	}
	free(snap);
	return TEST_OK;
}

/* A record whose name climbs out of the db dir ("../") is rejected and
 * nothing is written outside the db dir. */
TEST(snapshot, restore_rejects_escaping_name)
{
	struct fx f;
	struct srec r;
	uint8_t img[2 * 512];
	uint64_t index;
	uint8_t *snap;
	size_t len;
	int rv;

	fx_init(&f);
	r = synth_rec("../escaped.db", img, 2, 7);
	snap = snap_build(5, &r, 1, &len);
	rv = restore(&f, snap, len, &index);
	ASSERT_EQ(fx_file_size(fx_path("%s/escaped.db", f.dir)), -1);
	ASSERT_EQ(rv, QF_EMALFORMED);
	free(snap);
	fx_fini(&f);
	return TEST_OK;
}

/* ---- version 2: the image beside the snapshot ---- */

/* A two-database v2 snapshot of @src at index 20 (a.db 3 pages, d/b.db 2
 * pages, both newer than older_target()). */
static uint8_t *two_db_v2(struct fx *src, size_t *len)
{
	make_db(fx_path("%s/a.db", src->db), 1024, 20, 3);
	make_db(fx_path("%s/d/b.db", src->db), 512, 20, 4);
	adopt_file(src, eng__db_get(&src->dbs, "a.db"), 4);
	adopt_file(src, eng__db_get(&src->dbs, "d/b.db"), 4);
	return snapshot_of(src, 20, len);
}

/* A version 2 snapshot of @src's two databases, and @dst holding older
 * versions of both; the caller frees the snapshot and both fixtures. */
static uint8_t *v2_onto_older(struct fx *src, struct fx *dst,
			      uint8_t old_a[4 * 512], uint8_t old_b[2 * 512],
			      size_t *len)
{
	fx_init(src);
	fx_init(dst);
	older_target(dst, old_a, old_b);
	return two_db_v2(src, len);
}

/* Without its image (a follower that raft sent the snapshot), restore
 * takes the snapshot's state, leaves no stale file and marks the files
 * suspect (persisted) for the leader's image to replace them. */
TEST(snapshot, restore_without_image_marks_files_suspect)
{
	struct fx src, dst;
	uint8_t old_a[4 * 512], old_b[2 * 512];
	uint64_t index = 0;
	uint8_t *snap, *hdr;
	size_t len, hdr_len;
	struct eng_db *d;

	snap = v2_onto_older(&src, &dst, old_a, old_b, &len);
	ASSERT_NOT_NULL(snap);
	ASSERT_EQ(restore(&dst, snap, len, &index), 0);
	ASSERT_U64_EQ(index, 20);
	d = eng__db_find(&dst.dbs, "a.db");
	ASSERT_EQ(same_db(d, eng__db_find(&src.dbs, "a.db")), TEST_OK);
	ASSERT_TRUE(d->files_suspect);
	ASSERT_TRUE(d->diverged);
	ASSERT_U64_EQ(d->base_seq, d->seq);
	ASSERT_EQ(fx_file_size(fx_path("%s/a.db", dst.db)), -1);
	ASSERT_EQ(fx_file_size(fx_path("%s/d/b.db", dst.db)), -1);
	/* The mark is in the header on disk (flags at offset 72). */
	hdr = fx_read_file(fx_path("%s/a.db.state", dst.state), &hdr_len);
	ASSERT_NOT_NULL(hdr);
	ASSERT_TRUE(hdr_len >= 96);
	ASSERT_U64_EQ(qf_get_le64(hdr + 72) & 1, 1);
	ASSERT_U64_EQ(qf_get_le64(hdr + 16), d->seq);
	free(hdr);
	free(snap);
	fx_fini(&src);
	fx_fini(&dst);
	return TEST_OK;
}

/* An image that is there but cannot be opened (here: a symlink loop) is
 * not taken for a missing one: the restore fails and the node's files and
 * state stay as they were, instead of being emptied. */
TEST(snapshot, restore_fails_on_unreadable_image)
{
	struct fx src, dst;
	uint8_t old_a[4 * 512], old_b[2 * 512];
	uint64_t index = 0;
	uint8_t *snap, *got;
	size_t len, got_len;
	struct eng_db *d;

	snap = v2_onto_older(&src, &dst, old_a, old_b, &len);
	ASSERT_NOT_NULL(snap);
	ASSERT_EQ(mkdir(fx_path("%s/snapshots", dst.state), 0755), 0);
	ASSERT_EQ(symlink("20.img", fx_path("%s/snapshots/20.img", dst.state)),
		  0);
	ASSERT_EQ(restore(&dst, snap, len, &index), -ELOOP);
	d = eng__db_find(&dst.dbs, "a.db");
	ASSERT_NOT_NULL(d);
	ASSERT_TRUE(!d->files_suspect);
	ASSERT_U64_EQ(d->seq, 1);
	got = fx_read_file(fx_path("%s/a.db", dst.db), &got_len);
	ASSERT_NOT_NULL(got);
	ASSERT_EQ(got_len, sizeof old_a);
	ASSERT_EQ(memcmp(got, old_a, sizeof old_a), 0);
	free(got);
	free(snap);
	fx_fini(&src);
	fx_fini(&dst);
	return TEST_OK;
}

/* A damaged image is caught page by page: the files are not rebuilt from
 * it (none is left behind) and are marked suspect. */
TEST(snapshot, restore_checks_every_image_page)
{
	struct fx src, dst;
	uint64_t index = 0;
	uint8_t *snap, byte = 0x33;
	size_t len;
	struct eng_db *a, *b;

	fx_init(&src);
	fx_init(&dst);
	snap = two_db_v2(&src, &len);
	ASSERT_NOT_NULL(snap);
	copy_image(&src, &dst, 20);
	/* Records are taken newest first: d/b.db, then a.db at offset
	 * 2 pages of 512; damage a.db's last page. */
	fx_patch_file(image_file(&dst, 20),
		      (long)fx_file_size(image_file(&dst, 20)) - 10, &byte, 1);
	ASSERT_EQ(restore(&dst, snap, len, &index), 0);
	a = eng__db_find(&dst.dbs, "a.db");
	b = eng__db_find(&dst.dbs, "d/b.db");
	ASSERT_TRUE(a->files_suspect);
	ASSERT_EQ(fx_file_size(fx_path("%s/a.db", dst.db)), -1);
	ASSERT_TRUE(!b->files_suspect);
	ASSERT_EQ(fx_file_size(fx_path("%s/d/b.db", dst.db)),
		  (long long)b->db_pages * 512);
	free(snap);
	fx_fini(&src);
	fx_fini(&dst);
	return TEST_OK;
}

/* A v2 snapshot cut short, or whose hashes do not make a record's
 * checksum, is rejected before any local database is touched. */
TEST(snapshot, restore_v2_rejects_bad_metadata)
{
	struct fx src, dst;
	uint8_t old_a[4 * 512], old_b[2 * 512];
	uint64_t index;
	uint8_t *snap;
	size_t len, cut;

	snap = v2_onto_older(&src, &dst, old_a, old_b, &len);
	ASSERT_NOT_NULL(snap);
	copy_image(&src, &dst, 20);
	for (cut = 24; cut < len; cut += 8)
		ASSERT_EQ(restore(&dst, snap, cut, &index), QF_EMALFORMED);
	snap[len - 1] ^= 1; /* the last page hash */
	ASSERT_EQ(restore(&dst, snap, len, &index), QF_EMALFORMED);
	ASSERT_EQ(older_target_intact(&dst, old_a, old_b), TEST_OK);
	free(snap);
	fx_fini(&src);
	fx_fini(&dst);
	return TEST_OK;
}

/* Images of snapshots raft no longer keeps, and unfinished ones, are
 * removed; the one being written and those raft keeps stay. */
TEST(snapshot, gc_keeps_what_raft_keeps)
{
	struct fx f;
	uint8_t x = 1;

	fx_init(&f);
	fx_write_file(image_file(&f, 5), &x, 1);
	fx_write_file(image_file(&f, 6), &x, 1);
	fx_write_file(image_file(&f, 7), &x, 1);
	fx_write_file(fx_path("%s.tmp", image_file(&f, 4)), &x, 1);
	fx_write_file(fx_path("%s/snapshots/notes.txt", f.state), &x, 1);
	fx_write_file(fx_path("%s/raft/snapshot-2-6-1234.meta", f.dir), &x, 1);
	eng__snapshot_gc(f.state, fx_path("%s/raft", f.dir), 7);
	ASSERT_EQ(fx_file_size(image_file(&f, 5)), -1);
	ASSERT_EQ(fx_file_size(image_file(&f, 6)), 1);
	ASSERT_EQ(fx_file_size(image_file(&f, 7)), 1);
	ASSERT_EQ(fx_file_size(fx_path("%s.tmp", image_file(&f, 4))), -1);
	ASSERT_EQ(fx_file_size(fx_path("%s/snapshots/notes.txt", f.state)), 1);
	fx_fini(&f);
	return TEST_OK;
}

int main(int argc, char **argv)
{
	return fx_main(argc, argv, "snapshot");
}
