/* Allocation of struct eng_txn.  Any thread. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"

struct eng_txn *eng_txn_new(const char *db, uint32_t page_size, uint32_t n)
{
	struct eng_txn *t = calloc(1, sizeof *t);

	if (t == NULL)
		return NULL;
	t->db = strdup(db);
	t->pgnos = calloc(n ? n : 1, sizeof *t->pgnos);
	t->pages = calloc(n ? n : 1, page_size ? page_size : 1);
	if (t->db == NULL || t->pgnos == NULL || t->pages == NULL) {
		eng_txn_free(t);
		return NULL;
	}
	t->page_size = page_size;
	t->n = n;
	return t;
}

void eng_txn_free(struct eng_txn *t)
{
	if (t == NULL)
		return;
	free(t->db);
	free(t->pgnos);
	free(t->pages);
	free(t->old_hashes);
	if (t->file != NULL && unlink(t->file) != 0 && errno != ENOENT)
		QF_LOG(QF_WARN, "removing %s: %s", t->file, strerror(errno));
	free(t->file);
	free(t->hashes);
	free(t);
}

struct eng_txn *eng_txn_image(const char *db, uint32_t page_size,
			      uint32_t db_pages, uint8_t *pages)
{
	struct eng_txn *t = calloc(1, sizeof *t);
	uint32_t p;

	if (t != NULL && pages != NULL) {
		t->db = strdup(db);
		t->pgnos = calloc(db_pages ? db_pages : 1, sizeof *t->pgnos);
	}
	if (t == NULL || pages == NULL || t->db == NULL || t->pgnos == NULL) {
		free(pages);
		eng_txn_free(t);
		return NULL;
	}
	for (p = 0; p < db_pages; p++)
		t->pgnos[p] = p + 1;
	t->pages = pages;
	t->page_size = page_size;
	t->n = t->db_pages = db_pages;
	return t;
}

struct eng_txn *eng_txn_image_file(const char *db, uint32_t page_size,
				   uint32_t db_pages, const char *path,
				   uint64_t *hashes)
{
	struct eng_txn *t = calloc(1, sizeof *t);

	if (t != NULL) {
		t->db = strdup(db);
		t->file = strdup(path);
	}
	if (t == NULL || t->db == NULL || t->file == NULL || hashes == NULL) {
		if (t == NULL || t->file == NULL)
			(void)unlink(path);
		free(hashes);
		eng_txn_free(t);
		return NULL;
	}
	t->hashes = hashes;
	t->page_size = page_size;
	t->db_pages = db_pages;
	return t;
}
