/* libFuzzer harness for the log entry decoder (engine/entry.c).
 *
 * Each input is decoded as given, then again with its last 8 bytes
 * replaced by the correct trailer hash: the hash rejects almost every
 * mutation, and resealing lets the fuzzer reach the successful path too.
 * Beyond the sanitizers' checks, it aborts when a decode fails without
 * QF_EMALFORMED or leaves e.txn set, or when an accepted entry does not
 * re-encode to exactly the input bytes (the encoding is canonical: every
 * padding and reserved byte is checked).
 *
 * Built with -DQF_FUZZ_MAIN instead of -fsanitize=fuzzer it is a plain
 * program: "fuzz_entry FILE|DIR..." runs the harness over a corpus (for the
 * normal test suite), and "fuzz_entry --write-seeds DIR" writes the seed
 * corpus of tests/fuzz/corpus/entry/. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

#define ENTRY_SEED 0x51460001u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_entry: %s\n", what);
	abort();
}

/* An accepted entry must be the canonical encoding of what it decoded to. */
static void check_accepted(const uint8_t *data, size_t size,
			   const struct eng_entry *e)
{
	uint8_t *again;

	if (e->txn == NULL || e->txn->db == NULL || e->txn->db[0] == '\0')
		fail("accepted entry without a name");
	if (eng_entry_size(e->txn) != size)
		fail("size of the decoded entry differs from the input");
	again = malloc(size);
	if (again == NULL)
		fail("out of memory");
	eng_entry_encode(e->type, e->txn, e->origin, e->nonce, again);
	if (memcmp(again, data, size) != 0)
		fail("re-encoding differs from the input");
	free(again);
}

static void decode_one(const uint8_t *data, size_t size)
{
	struct eng_entry e;
	int rv;

	e.txn = (struct eng_txn *)&e; /* decode must overwrite it */
	rv = eng_entry_decode(data, size, &e);
	if (rv != 0) {
		if (rv != QF_EMALFORMED && rv != -ENOMEM)
			fail("unexpected error code");
		if (e.txn != NULL)
			fail("e.txn set after an error");
		return;
	}
	check_accepted(data, size, &e);
	eng_txn_free(e.txn);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *sealed;

	decode_one(data, size);
	if (size < 8)
		return 0;
	/* A heap copy of exactly @size bytes, so over-reads are caught. */
	sealed = malloc(size);
	if (sealed == NULL)
		return 0;
	memcpy(sealed, data, size);
	qf_put_le64(sealed + size - 8, qf_hash64(sealed, size - 8, ENTRY_SEED));
	decode_one(sealed, size);
	free(sealed);
	return 0;
}

#ifdef QF_FUZZ_MAIN
#include <dirent.h>

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long len;
	int rv = -1;

	if (f == NULL)
		goto err;
	if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0)
		goto err_after_open;
	buf = malloc(len > 0 ? (size_t)len : 1);
	if (buf == NULL || fread(buf, 1, (size_t)len, f) != (size_t)len)
		goto err_after_buf;
	LLVMFuzzerTestOneInput(buf, (size_t)len);
	rv = 0;

err_after_buf:
	free(buf);
err_after_open:
	fclose(f);
err:
	if (rv != 0)
		fprintf(stderr, "fuzz_entry: cannot read %s\n", path);
	return rv;
}

/* Run every regular file in @path, or @path itself if not a directory. */
static int run_path(const char *path, int *count)
{
	DIR *d = opendir(path);
	struct dirent *de;
	char full[4096];
	int rv = 0;

	if (d == NULL) {
		(*count)++;
		return run_file(path);
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(full, sizeof full, "%s/%s", path, de->d_name);
		(*count)++;
		if (run_file(full) != 0)
			rv = -1;
	}
	closedir(d);
	return rv;
}

static struct eng_txn *seed_txn(const char *name, uint32_t page_size,
				uint32_t n, uint32_t db_pages)
{
	struct eng_txn *t = eng_txn_new(name, page_size, n);
	size_t i;

	if (t == NULL)
		fail("out of memory");
	for (i = 0; i < n; i++)
		t->pgnos[i] = (uint32_t)(2 * i + 1);
	for (i = 0; i < (size_t)n * page_size; i++)
		t->pages[i] = (uint8_t)(i * 7 + i / 509);
	t->db_pages = db_pages;
	t->seq = n + 1;
	t->cksum_before = 0x0123456789abcdefULL * (n + 1);
	t->cksum_after = 0xfedcba9876543210ULL ^ db_pages;
	return t;
}

static int write_seed(const char *dir, const char *file, int type,
		      struct eng_txn *t)
{
	size_t len = eng_entry_size(t);
	uint8_t *buf = malloc(len);
	char path[4096];
	FILE *f;
	int rv = -1;

	if (buf == NULL)
		fail("out of memory");
	eng_entry_encode(type, t, 0x1000 + (uint64_t)type, t->seq * 3, buf);
	snprintf(path, sizeof path, "%s/%s", dir, file);
	f = fopen(path, "wb");
	if (f != NULL) {
		rv = fwrite(buf, 1, len, f) == len ? 0 : -1;
		if (fclose(f) != 0)
			rv = -1;
	}
	if (rv != 0)
		fprintf(stderr, "fuzz_entry: cannot write %s\n", path);
	free(buf);
	eng_txn_free(t);
	return rv;
}

static int write_seeds(const char *dir)
{
	int rv = 0;

	rv |= write_seed(dir, "txn_1page_512", ENG_ENTRY_TXN,
			 seed_txn("main.db", 512, 1, 1));
	rv |= write_seed(dir, "txn_3pages_1024", ENG_ENTRY_TXN,
			 seed_txn("a/b/c.sqlite", 1024, 3, 9));
	rv |= write_seed(dir, "txn_1page_4096", ENG_ENTRY_TXN,
			 seed_txn("x.db", 4096, 1, 2));
	rv |= write_seed(dir, "txn_no_pages", ENG_ENTRY_TXN,
			 seed_txn("shrunk.db", 512, 0, 5));
	rv |= write_seed(dir, "unlink_no_page_size", ENG_ENTRY_UNLINK,
			 seed_txn("dir/gone.db", 0, 0, 0));
	rv |= write_seed(dir, "unlink_4096", ENG_ENTRY_UNLINK,
			 seed_txn("gone.db", 4096, 0, 0));
	return rv;
}

int main(int argc, char **argv)
{
	int i, count = 0, rv = 0;

	if (argc == 3 && strcmp(argv[1], "--write-seeds") == 0)
		return write_seeds(argv[2]) == 0 ? 0 : 1;
	for (i = 1; i < argc; i++)
		if (run_path(argv[i], &count) != 0)
			rv = 1;
	printf("fuzz_entry: %d inputs\n", count);
	return rv != 0 || count == 0;
}
#endif /* QF_FUZZ_MAIN */
