/* Rollback-journal commit points and dirty page sets.  Pure functions;
 * callers serialise access to a struct fs_dirty. */
#include "journal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool fs__journal_is_persist_commit(const void *buf, size_t size, uint64_t off)
{
	static const uint8_t zeros[28];

	return off == 0 && size >= 28 && memcmp(buf, zeros, 28) == 0;
}

void fs__dirty_init(struct fs_dirty *d)
{
	memset(d, 0, sizeof *d);
}

void fs__dirty_close(struct fs_dirty *d)
{
	free(d->pgnos);
	free(d->bits);
	memset(d, 0, sizeof *d);
}

static int grow_bits(struct fs_dirty *d, uint32_t pages)
{
	uint32_t n = d->bits_pages ? d->bits_pages : 1024;
	uint8_t *b;

	while (n < pages)
		n = n > UINT32_MAX / 2 ? pages : n * 2;
	b = realloc(d->bits, n / 8 + 1);
	if (b == NULL)
		return -ENOMEM;
	memset(b + (d->bits_pages ? d->bits_pages / 8 + 1 : 0), 0,
	       n / 8 + 1 - (d->bits_pages ? d->bits_pages / 8 + 1 : 0));
	d->bits = b;
	d->bits_pages = n;
	return 0;
}

int fs__dirty_add(struct fs_dirty *d, uint32_t first, uint32_t count)
{
	uint32_t p;
	int rv;

	for (p = first; p < first + count; p++) {
		if (p >= d->bits_pages) {
			rv = grow_bits(d, p + 1);
			if (rv != 0)
				return rv;
		}
		if (d->bits[p / 8] & (1u << (p % 8)))
			continue;
		if (d->n == d->cap) {
			uint32_t cap = d->cap ? d->cap * 2 : 64;
			uint32_t *np = realloc(d->pgnos, cap * sizeof *np);

			if (np == NULL)
				return -ENOMEM;
			d->pgnos = np;
			d->cap = cap;
		}
		d->pgnos[d->n++] = p;
		d->bits[p / 8] |= (uint8_t)(1u << (p % 8));
	}
	return 0;
}

void fs__dirty_clear(struct fs_dirty *d)
{
	uint32_t i;

	for (i = 0; i < d->n; i++)
		d->bits[d->pgnos[i] / 8] &= (uint8_t)~(1u << (d->pgnos[i] % 8));
	d->n = 0;
	d->truncated = false;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

void fs__dirty_sort(struct fs_dirty *d)
{
	qsort(d->pgnos, d->n, sizeof *d->pgnos, cmp_u32);
}
