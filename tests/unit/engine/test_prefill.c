/* Unit tests for engine/prefill.c: posix_fallocate of a new file in the
 * raft directory leaves written (zero) blocks, anything else stays plain
 * posix_fallocate, and existing content is never touched. */

/* Call posix_fallocate by the name libraft.so does (see prefill.c). */
#undef _FILE_OFFSET_BITS

#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "engine/core.h"
#include "fixture.h"
#include "tests/lib/unit.h"

#define SIZE (1 << 20)

/* Extents of @path flagged unwritten (FIEMAP); -1 if unknown. */
static int unwritten_extents(const char *path)
{
	struct {
		struct fiemap fm;
		struct fiemap_extent ext[64];
	} q;
	int fd = open(path, O_RDONLY), n = 0;
	unsigned i;

	if (fd < 0)
		return -1;
	memset(&q, 0, sizeof q);
	q.fm.fm_length = ~0ULL;
	q.fm.fm_flags = FIEMAP_FLAG_SYNC;
	q.fm.fm_extent_count = 64;
	if (ioctl(fd, FS_IOC_FIEMAP, &q.fm) != 0) {
		close(fd);
		return -1;
	}
	close(fd);
	for (i = 0; i < q.fm.fm_mapped_extents; i++)
		if (q.ext[i].fe_flags & FIEMAP_EXTENT_UNWRITTEN)
			n++;
	return n;
}

/* Create @path empty and posix_fallocate SIZE bytes from 0. */
static int allocate_new(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600), rv;

	if (fd < 0)
		fx_die("create");
	rv = posix_fallocate(fd, 0, SIZE);
	close(fd);
	return rv;
}

static bool all_zero(const char *path)
{
	size_t len, i;
	uint8_t *b = fx_read_file(path, &len);
	bool ok = b != NULL && len == SIZE;

	for (i = 0; ok && i < len; i++)
		ok = b[i] == 0;
	free(b);
	return ok;
}

TEST(prefill, new_segment_gets_written_blocks)
{
	struct fx f;
	const char *raft, *other;

	fx_init(&f);
	raft = strdup(fx_path("%s/raft", f.dir));
	other = strdup(fx_path("%s/other", f.dir));
	ASSERT_EQ(mkdir(raft, 0755), 0);
	ASSERT_EQ(mkdir(other, 0755), 0);
	eng__prefill_segments_in(raft);
	ASSERT_EQ(allocate_new(fx_path("%s/open-1", other)), 0);
	ASSERT_EQ(allocate_new(fx_path("%s/open-1", raft)), 0);
	ASSERT_TRUE(all_zero(fx_path("%s/open-1", raft)));
	if (unwritten_extents(fx_path("%s/open-1", other)) > 0)
		/* This filesystem leaves fallocated blocks unwritten: the
		 * segment's must not be. */
		ASSERT_EQ(unwritten_extents(fx_path("%s/open-1", raft)), 0);
	else
		fprintf(stderr, "  (no unwritten extents on this filesystem: "
				"content checked only)\n");
	eng__prefill_segments_in("");
	free((void *)raft);
	free((void *)other);
	fx_fini(&f);
	return TEST_OK;
}

TEST(prefill, existing_content_is_kept)
{
	struct fx f;
	const char *raft, *seg;
	static const char hello[] = "entries already written";
	char back[sizeof hello];
	int fd;

	fx_init(&f);
	raft = strdup(fx_path("%s/raft", f.dir));
	ASSERT_EQ(mkdir(raft, 0755), 0);
	eng__prefill_segments_in(raft);
	seg = fx_path("%s/open-2", raft);
	fx_write_file(seg, hello, sizeof hello);
	fd = open(seg, O_RDWR);
	ASSERT_TRUE(fd >= 0);
	ASSERT_EQ(posix_fallocate(fd, 0, SIZE), 0); /* not empty: plain */
	ASSERT_EQ(posix_fallocate(fd, SIZE, SIZE), 0); /* not from 0 */
	ASSERT_EQ(pread(fd, back, sizeof back, 0), (long)sizeof back);
	ASSERT_EQ(memcmp(back, hello, sizeof hello), 0);
	close(fd);
	eng__prefill_segments_in("");
	free((void *)raft);
	fx_fini(&f);
	return TEST_OK;
}

int main(int argc, char **argv)
{
	return fx_main(argc, argv, "prefill");
}
