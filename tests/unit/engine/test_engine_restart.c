/* Unit tests for the running engine (engine/engine.c): what a restart
 * makes of the files a previous run left: replayed writes, snapshots,
 * divergence and rebuilt backing files (see engine_fixture.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "engine_fixture.h"
#include "tests/lib/unit.h"

/* ---- files ---- */

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0 || qf_pwrite_full(fd, buf, len, 0) != 0)
		ef_die(path);
	close(fd);
}

/* Patch @len bytes at @off of an existing file. */
static void patch_file(const char *path, int64_t off, const void *buf,
		       size_t len)
{
	int fd = open(path, O_WRONLY);

	if (fd < 0 || qf_pwrite_full(fd, buf, len, off) != 0)
		ef_die(path);
	close(fd);
}

/* A committed entry whose local write failed (the callee returned an
 * error) is written into the backing file by the next eng_start, before it
 * returns, and the database takes commits again. */
TEST(engine_replay, failed_write_replayed_at_start)
{
	struct image img[5];
	struct fx f;
	struct tc *t;
	struct hdr h;
	char db[512];
	int k;

	ef_init(&f);
	ef_make_images(f.dir, "a", img, 5);
	ASSERT_EQ(ef_first_start(&f), 0);
	ef_path(&f, db, sizeof db, "db", "r.db");
	for (k = 0; k < 3; k++)
		ASSERT_EQ(ef_commit_ok(&f, ef_txn_diff("r.db",
						       k ? &img[k - 1] : NULL,
						       &img[k])),
			  0);
	ASSERT_EQ(
		ef_commit(&f, ef_txn_diff("r.db", &img[2], &img[3]), -EIO, &t),
		0);
	ASSERT_EQ(ef_sync_loop(&f), 0);
	ASSERT_EQ(ef_check_file(db, &img[2]), 0); /* the write "failed" */
	h = ef_read_hdr(&f, "r.db");
	ASSERT_EQ(h.seq, 3); /* the header stays behind the files */
	ef_stop(&f);
	ASSERT_EQ(t->calls, 1);
	ef_tc_free(t);

	ASSERT_EQ(ef_start(&f), 0);
	ASSERT_EQ(ef_check_file(db, &img[3]), 0);
	h = ef_read_hdr(&f, "r.db");
	ASSERT_EQ(h.seq, 4);
	ASSERT_U64_EQ(h.cksum, ef_image_cksum(&img[3]));
	ASSERT_EQ(ef_commit_ok(&f, ef_txn_diff("r.db", &img[3], &img[4])), 0);
	ASSERT_EQ(ef_check_file(db, &img[4]), 0);
	ef_fini(&f);
	ef_free_images(img, 5);
	return TEST_OK;
}

/* Count the files in @dir whose names start with @prefix. */
static int count_files(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(d);
	return n;
}

/* The first index of raft's log in @dir: the lowest first index of a
 * closed segment "%016llu-%016llu" (open segments always follow those), or
 * 0 if there is none. */
static unsigned long long first_log_index(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	unsigned long long first, last, min = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (strlen(de->d_name) == 33 &&
		    sscanf(de->d_name, "%16llu-%16llu", &first, &last) == 2 &&
		    (min == 0 || first < min))
			min = first;
	closedir(d);
	return min;
}

/* Wait up to 30 s until @dir holds at least @n snapshot files. */
static void wait_for_snapshot_files(const char *dir, int n)
{
	int k;

	for (k = 0; k < 3000 && count_files(dir, "snapshot-") < n; k++)
		usleep(10000);
}

/* Wait up to 30 s until raft's log in @dir starts after @index. */
static void wait_for_truncation(const char *dir, uint64_t index)
{
	int k;

	for (k = 0; k < 3000 && first_log_index(dir) <= index; k++)
		usleep(10000);
}

/* With snapshots every 4 entries, a database whose backing and state files
 * are deleted is rebuilt at start from snapshot plus log, byte for byte,
 * although the log no longer holds its first entries. */
TEST(engine_snapshot, rebuilds_deleted_database)
{
	enum { N = 20 };
	struct image img[N + 1];
	struct fx f;
	struct hdr h;
	char raft[512], path[512];
	uint64_t first_index;
	int k;

	ef_init(&f);
	ef_make_images(f.dir, "a", img, N + 1);
	f.threshold = 4;
	f.trailing = 4;
	ASSERT_EQ(ef_first_start(&f), 0);
	ASSERT_EQ(ef_commit_ok(&f, ef_txn_diff("s.db", NULL, &img[0])), 0);
	ASSERT_EQ(ef_sync_loop(&f), 0);
	first_index = ef_read_hdr(&f, "s.db").applied;
	ASSERT_TRUE(first_index > 0);
	/* Snapshots are written in the threadpool, behind whatever else
	 * waits there (raft preparing and prefilling segments), and a copy
	 * that the next commits raced fails and is retried once the files
	 * are still.  The log loses its first entries only when a second
	 * snapshot comes after one that closed their segment: so half the
	 * commits, a snapshot, the rest, and the log's truncation. */
	snprintf(raft, sizeof raft, "%s/raft", f.data);
	for (k = 1; k <= N; k++) {
		ASSERT_EQ(ef_commit_ok(&f, ef_txn_diff("s.db", &img[k - 1],
						       &img[k])),
			  0);
		if (k == N / 2)
			wait_for_snapshot_files(raft, 1);
	}
	wait_for_truncation(raft, first_index);
	ef_stop(&f);
	ASSERT_TRUE(count_files(raft, "snapshot-") > 0);
	ASSERT_TRUE(first_log_index(raft) > first_index);
	ef_path(&f, path, sizeof path, "db", "s.db");
	ASSERT_EQ(unlink(path), 0);
	ef_path(&f, path, sizeof path, "state", "s.db.state");
	ASSERT_EQ(unlink(path), 0);
	ef_path(&f, path, sizeof path, "state", "s.db.hashes");
	ASSERT_EQ(unlink(path), 0);

	ASSERT_EQ(ef_start(&f), 0);
	ef_path(&f, path, sizeof path, "db", "s.db");
	ASSERT_EQ(ef_check_file(path, &img[N]), 0);
	h = ef_read_hdr(&f, "s.db");
	ASSERT_EQ(h.seq, N + 1);
	ASSERT_U64_EQ(h.cksum, ef_image_cksum(&img[N]));
	ef_fini(&f);
	ef_free_images(img, N + 1);
	return TEST_OK;
}

/* Rewrite the checksum in @db's state header, keeping the header valid. */
static void forge_header_cksum(const struct fx *f, const char *db)
{
	char path[512];
	uint8_t h[HDR_SIZE];
	int fd;

	snprintf(path, sizeof path, "%s/state/%s.state", f->data, db);
	fd = open(path, O_RDWR);
	if (fd < 0 || qf_pread_full(fd, h, HDR_SIZE, 0) != HDR_SIZE)
		ef_die(path);
	qf_put_le64(h + 24, qf_get_le64(h + 24) ^ 0x5a5a5a5a5a5a5a5aull);
	qf_put_le64(h + HDR_SIZE - 8, qf_hash64(h, HDR_SIZE - 8, HDR_MAGIC));
	if (qf_pwrite_full(fd, h, HDR_SIZE, 0) != 0)
		ef_die(path);
	close(fd);
}

/* A replayed entry whose "checksum before" disagrees with the trusted
 * local state marks the database diverged: its file is not written and
 * commits fail with QF_EDIVERGED. */
TEST(engine_divergence, replay_detects_wrong_state)
{
	struct image img[3];
	struct fx f;
	struct tc *t;
	char db[512];

	ef_init(&f);
	ef_make_images(f.dir, "a", img, 3);
	ASSERT_EQ(ef_first_start(&f), 0);
	ASSERT_EQ(ef_commit_ok(&f, ef_txn_diff("v.db", NULL, &img[0])), 0);
	ef_stop(&f); /* hashes saved: the next start trusts the state */
	ASSERT_EQ(ef_start(&f), 0);
	/* Committed, but the local write fails: replayed at the next start. */
	ASSERT_EQ(
		ef_commit(&f, ef_txn_diff("v.db", &img[0], &img[1]), -EIO, &t),
		0);
	ef_tc_free(t);
	ef_stop(&f);
	forge_header_cksum(&f, "v.db");

	ASSERT_EQ(ef_start(&f), 0);
	ef_path(&f, db, sizeof db, "db", "v.db");
	ASSERT_EQ(ef_check_file(db, &img[0]), 0);
	ASSERT_EQ(ef_commit(&f, ef_txn_diff("v.db", &img[1], &img[2]), 0, &t),
		  QF_EDIVERGED);
	ef_tc_free(t);
	ef_fini(&f);
	ef_free_images(img, 3);
	return TEST_OK;
}

/* Pretend the machine rebooted since the files were written. */
static void fake_reboot(const struct fx *f)
{
	char path[512];

	snprintf(path, sizeof path, "%s/state/boot_id", f->data);
	write_file(path, "00000000-0000-0000-0000-000000000000\n", 37);
}

/* Commit images 0..@n-1 of @name, stop, and return the file's path. */
static int commit_all_and_stop(struct fx *f, const char *name,
			       const struct image *img, int n, char *db,
			       size_t size)
{
	int k, rv = 0;

	for (k = 0; k < n && rv == 0; k++)
		rv = ef_commit_ok(
			f, ef_txn_diff(name, k ? &img[k - 1] : NULL, &img[k]));
	ef_stop(f);
	ef_path(f, db, size, "db", name);
	return rv;
}

/* After a reboot, a backing file that lost a write (a data page differs
 * from the state) is reset and rebuilt from the log. */
TEST(engine_rebuild, corrupt_page_after_reboot)
{
	struct image img[4];
	struct fx f;
	struct hdr h;
	char db[512];
	uint8_t junk[16];

	ef_init(&f);
	ef_make_images(f.dir, "a", img, 4);
	ASSERT_EQ(ef_first_start(&f), 0);
	ASSERT_EQ(commit_all_and_stop(&f, "c.db", img, 4, db, sizeof db), 0);
	memset(junk, 0xa5, sizeof junk);
	patch_file(db, (int64_t)(img[3].pages - 1) * PS + 200, junk,
		   sizeof junk);
	fake_reboot(&f);

	ASSERT_EQ(ef_start(&f), 0);
	ASSERT_EQ(ef_check_file(db, &img[3]), 0);
	h = ef_read_hdr(&f, "c.db");
	ASSERT_EQ(h.seq, 4);
	ef_fini(&f);
	ef_free_images(img, 4);
	return TEST_OK;
}

/* A backing file shorter than its state (same boot) is re-hashed, reset
 * and rebuilt from the log. */
TEST(engine_rebuild, truncated_file)
{
	struct image img[4];
	struct fx f;
	char db[512];

	ef_init(&f);
	ef_make_images(f.dir, "a", img, 4);
	ASSERT_EQ(ef_first_start(&f), 0);
	ASSERT_EQ(commit_all_and_stop(&f, "c.db", img, 4, db, sizeof db), 0);
	ASSERT_EQ(truncate(db, (off_t)(img[3].pages - 1) * PS), 0);

	ASSERT_EQ(ef_start(&f), 0);
	ASSERT_EQ(ef_check_file(db, &img[3]), 0);
	ef_fini(&f);
	ef_free_images(img, 4);
	return TEST_OK;
}

/* After a reboot, a backing file SQLite cannot open at all (its header
 * page is garbage) disagrees with its state like any other, so it is
 * rebuilt from the log rather than failing the start. */
TEST(engine_rebuild, unreadable_file_after_reboot)
{
	struct image img[4];
	struct fx f;
	char db[512];
	uint8_t junk[100];

	ef_init(&f);
	ef_make_images(f.dir, "a", img, 4);
	ASSERT_EQ(ef_first_start(&f), 0);
	ASSERT_EQ(commit_all_and_stop(&f, "c.db", img, 4, db, sizeof db), 0);
	memset(junk, 0xa5, sizeof junk);
	patch_file(db, 0, junk, sizeof junk);
	fake_reboot(&f);

	ASSERT_EQ(ef_start(&f), 0);
	ASSERT_EQ(ef_check_file(db, &img[3]), 0);
	ef_fini(&f);
	ef_free_images(img, 4);
	return TEST_OK;
}
