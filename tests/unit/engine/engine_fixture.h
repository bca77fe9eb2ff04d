/* Helpers shared by the running-engine unit tests (test_engine_*.c): a
 * real raft_uv node on its own loop thread, bootstrapped as a one-node
 * cluster.  Not to be used with fixture.h, whose fx_ names and struct fx
 * mean something else.
 *
 * Every test gets its own directory under a root made by ef_main()
 * (removed when the runner is done, also after a failed or crashed test)
 * and its own loopback port.  Transactions are real SQLite page images: a
 * scratch database is built with the sqlite3 API, its file is read after
 * each statement, and each transaction carries the pages that differ from
 * the previous image.  So the backing files stay databases SQLite accepts
 * when the engine settles or re-hashes them.
 *
 * The commit callback plays the mount: on status 0 it writes the
 * transaction's pages into the backing file under eng_db_dir().  It runs
 * on the loop thread; the test thread waits for it on a condition
 * variable.  Expected checksums come from a model (XOR of qf_page_hash
 * over an image), never from the code under test; state headers are read
 * from disk (engine/state.h: magic "QFS1", seq at 16, cksum at 24, applied
 * index at 32, hashes index at 40, trailer hash at 88).
 *
 * Any failure to set up prints what failed and aborts, which fails the one
 * forked test. */
#ifndef QF_TEST_ENGINE_FIXTURE_H
#define QF_TEST_ENGINE_FIXTURE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

#define PS 1024		      /* page size of every test database */
#define HDR_SIZE 96	      /* engine/state.h */
#define HDR_MAGIC 0x31534651u /* "QFS1" */

/* perror(@what) and abort. */
void ef_die(const char *what);

/* The whole file in a new buffer, or NULL if it does not exist. */
uint8_t *ef_read_file(const char *path, size_t *len);

/* ---- SQLite page images ---- */

struct image {
	uint8_t *bytes;
	uint32_t pages;
};

/* @n successive images of one real database, built in @dir. */
void ef_make_images(const char *dir, const char *tag, struct image *img,
		    int n);

/* Free the bytes of images @img[0..@n-1]. */
void ef_free_images(struct image *img, int n);

/* The model's rolling checksum of @im. */
uint64_t ef_image_cksum(const struct image *im);

/* A transaction of @db turning image @from (NULL: no database) into @to. */
struct eng_txn *ef_txn_diff(const char *db, const struct image *from,
			    const struct image *to);

/* 0 if the file at @path holds exactly @im; otherwise says why. */
int ef_check_file(const char *path, const struct image *im);

/* ---- fixture: one engine, one data dir, one port ---- */

struct fx {
	char dir[128];	/* the test's directory: scratch files */
	char data[160]; /* the engine's data dir */
	char addr[32];
	unsigned threshold, trailing;
	struct eng *e;
};

/* Make the test's directory under the root and pick a port. */
void ef_init(struct fx *f);

/* Start (or restart) the engine on the fixture's data dir. */
int ef_start(struct fx *f);

/* The first start, retried on a fresh dir and port if the port is taken. */
int ef_first_start(struct fx *f);

/* Stop the engine, if it runs. */
void ef_stop(struct fx *f);

/* Stop the engine and remove the test's directory. */
void ef_fini(struct fx *f);

/* @buf = the data dir's @sub/@name. */
void ef_path(const struct fx *f, char *buf, size_t size, const char *sub,
	     const char *name);

/* A database's state header, as read from disk. */
struct hdr {
	bool ok; /* exists, with magic and trailer hash right */
	uint32_t page_size, db_pages;
	uint64_t seq, cksum, applied, hashes_at;
};

/* The state header of @db as on disk (ok false if missing or broken). */
struct hdr ef_read_hdr(const struct fx *f, const char *db);

/* Run the tests in a fresh root /tmp/qf_test_engine_XXXXXX, then remove it. */
int ef_main(int argc, char **argv);

/* ---- commits ---- */

/* Guards what the callbacks record: struct tc's observed fields. */
extern pthread_mutex_t ef_mu;

/* One commit as the mount would make it. */
struct tc {
	struct eng_commit c;
	struct fx *f;
	char db[64];
	/* A copy of the transaction: the engine frees c.txn before the
	 * callback runs. */
	uint32_t n, db_pages;
	uint32_t *pgnos;
	uint8_t *pages;
	int ret;    /* the callback's return for status 0 */
	bool block; /* hold the loop thread in the callback until released */
	/* Observed in the callback, under @ef_mu. */
	int calls, status, order;
	bool txn_gone;	     /* c->txn was NULL */
	uint64_t wal_preset; /* *wal_frames on entry */
	struct hdr seen;     /* the database's state header at that time */
	bool in_cb, release;
};

/* A commit of @txn (taken over) into @db that the callback writes. */
struct tc *ef_tc_new(struct fx *f, struct eng_txn *txn);

/* Free @t and the transaction, unless the engine took it. */
void ef_tc_free(struct tc *t);

/* Submit @t; on failure the caller keeps the transaction. */
int ef_tc_submit(struct tc *t);

/* Wait until @t's callback has run; -ETIMEDOUT after WAIT_S seconds. */
int ef_tc_wait(struct tc *t);

/* Let @t's blocked callback return. */
void ef_tc_release(struct tc *t);

/* Submit and wait: the callback's status, or > 0 if it never ran. */
int ef_commit(struct fx *f, struct eng_txn *txn, int ret, struct tc **out);

/* Commit @txn, check status 0 and free the request. */
int ef_commit_ok(struct fx *f, struct eng_txn *txn);

/* Wait until the loop thread has finished everything it started before. */
int ef_sync_loop(struct fx *f);

#endif /* QF_TEST_ENGINE_FIXTURE_H */
