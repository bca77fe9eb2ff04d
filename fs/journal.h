/* Rollback-journal commit points (sqlite-io.md §7) and the set of database
 * pages written while a journal is live.  Private to fs/. */
#ifndef QF_FS_JOURNAL_H
#define QF_FS_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Is a write of @size bytes at @off to a -journal the PERSIST-mode commit
 * point (28 zero bytes at offset 0)? */
bool fs__journal_is_persist_commit(const void *buf, size_t size, uint64_t off);

/* Pages written to a database since its last journal commit point. */
struct fs_dirty {
	uint32_t *pgnos;
	uint32_t n, cap;
	uint8_t *bits;	 /* bit per page, for O(1) duplicate checks */
	uint32_t bits_pages;
	bool truncated;	 /* the file was truncated */
};

void fs__dirty_init(struct fs_dirty *d);
void fs__dirty_close(struct fs_dirty *d);
/* Record pages [first, first + count). 0 or -ENOMEM. */
int fs__dirty_add(struct fs_dirty *d, uint32_t first, uint32_t count);
void fs__dirty_clear(struct fs_dirty *d);
/* Sort the recorded page numbers ascending. */
void fs__dirty_sort(struct fs_dirty *d);

#endif /* QF_FS_JOURNAL_H */
