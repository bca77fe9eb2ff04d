/* Allocation of struct eng_txn.  Any thread. */
#include <stdlib.h>
#include <string.h>

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
	free(t);
}
