/* Per-database replicated state: hashes, checksums, persistence.  See
 * state.h for the contract and the on-disk layout. */
#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HDR_MAGIC 0x31534651u /* "QFS1" */
#define HASH_MAGIC 0x31484651u /* "QFH1" */
#define HDR_SIZE 96
#define HDR_FILES_SUSPECT 1u /* flags at offset 72 */

/* ---- names ---- */

/* Escape @name into a flat file name: '%' -> %25, '/' -> %2F. */
static char *escape_name(const char *name)
{
	size_t n = strlen(name), i, j = 0;
	char *out = malloc(3 * n + 1);

	if (out == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (name[i] == '%' || name[i] == '/') {
			sprintf(out + j, "%%%02X", (unsigned char)name[i]);
			j += 3;
		} else {
			out[j++] = name[i];
		}
	}
	out[j] = '\0';
	return out;
}

static char *unescape_name(const char *file, size_t len)
{
	char *out = malloc(len + 1);
	size_t i, j = 0;

	if (out == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		if (file[i] == '%' && i + 2 < len) {
			char hex[3] = {file[i + 1], file[i + 2], 0};

			out[j++] = (char)strtol(hex, NULL, 16);
			i += 2;
		} else {
			out[j++] = file[i];
		}
	}
	out[j] = '\0';
	return out;
}

static char *state_path(const struct eng_dbs *s, const char *name,
			const char *suffix)
{
	char *esc = escape_name(name);
	char *path = NULL;

	if (esc == NULL)
		return NULL;
	if (asprintf(&path, "%s/%s%s", s->state_dir, esc, suffix) < 0)
		path = NULL;
	free(esc);
	return path;
}

static char *backing_path(const struct eng_dbs *s, const char *name,
			  const char *suffix)
{
	char *path = NULL;

	if (asprintf(&path, "%s/%s%s", s->db_dir, name, suffix) < 0)
		return NULL;
	return path;
}

/* ---- in-memory state ---- */

int eng__dbs_init(struct eng_dbs *s, const char *state_dir, const char *db_dir)
{
	s->state_dir = strdup(state_dir);
	s->db_dir = strdup(db_dir);
	s->head = NULL;
	if (s->state_dir == NULL || s->db_dir == NULL) {
		eng__dbs_close(s);
		return -ENOMEM;
	}
	return 0;
}

static void db_free(struct eng_db *d)
{
	if (d->fd >= 0)
		close(d->fd);
	free(d->hash);
	free(d->name);
	free(d);
}

void eng__dbs_close(struct eng_dbs *s)
{
	struct eng_db *d = s->head, *next;

	for (; d != NULL; d = next) {
		next = d->next;
		db_free(d);
	}
	s->head = NULL;
	free(s->state_dir);
	free(s->db_dir);
	s->state_dir = s->db_dir = NULL;
}

struct eng_db *eng__db_find(struct eng_dbs *s, const char *name)
{
	struct eng_db *d;

	for (d = s->head; d != NULL; d = d->next)
		if (strcmp(d->name, name) == 0)
			return d;
	return NULL;
}

struct eng_db *eng__db_get(struct eng_dbs *s, const char *name)
{
	struct eng_db *d = eng__db_find(s, name);

	if (d != NULL)
		return d;
	d = calloc(1, sizeof *d);
	if (d == NULL)
		return NULL;
	d->name = strdup(name);
	if (d->name == NULL) {
		free(d);
		return NULL;
	}
	d->fd = -1;
	d->next = s->head;
	s->head = d;
	return d;
}

static int ensure_hash_cap(struct eng_db *d, uint32_t pages)
{
	uint64_t *h;
	uint32_t cap;

	if (pages <= d->hash_cap)
		return 0;
	cap = d->hash_cap ? d->hash_cap : 64;
	while (cap < pages)
		cap = cap > UINT32_MAX / 2 ? pages : cap * 2;
	h = realloc(d->hash, (size_t)cap * sizeof *h);
	if (h == NULL)
		return -ENOMEM;
	memset(h + d->hash_cap, 0, (size_t)(cap - d->hash_cap) * sizeof *h);
	d->hash = h;
	d->hash_cap = cap;
	return 0;
}

static uint64_t old_hash(const struct eng_db *d, uint32_t pgno)
{
	return pgno <= d->db_pages && pgno <= d->hash_cap ? d->hash[pgno - 1]
							  : 0;
}

/* A page size change (VACUUM) leaves pages the txn does not carry without a
 * meaningful image: they count as absent (hash 0) on every node alike. */
static bool page_size_changes(const struct eng_db *d, const struct eng_txn *t)
{
	return d->page_size != 0 && t->page_size != d->page_size;
}

bool eng__db_txn_is_noop(const struct eng_db *d, const struct eng_txn *t)
{
	uint32_t i;

	if (t->db_pages != d->db_pages || t->page_size != d->page_size)
		return false;
	for (i = 0; i < t->n; i++) {
		const uint8_t *page = t->pages + (size_t)i * t->page_size;

		if (qf_page_hash(t->pgnos[i], page, t->page_size) !=
		    old_hash(d, t->pgnos[i]))
			return false;
	}
	return true;
}

/* The checksum after @t, with its pages' hashes from @h when given. */
static uint64_t cksum_after(const struct eng_db *d, const struct eng_txn *t,
			    const uint64_t *h)
{
	uint64_t ck = d->cksum;
	uint32_t i, p;

	if (page_size_changes(d, t))
		ck = 0;
	else
		/* Pages cut off by a shrink leave the checksum. */
		for (p = t->db_pages + 1; p <= d->db_pages; p++)
			ck ^= old_hash(d, p);
	for (i = 0; i < t->n; i++) {
		const uint8_t *page = t->pages + (size_t)i * t->page_size;

		if (!page_size_changes(d, t) && t->pgnos[i] <= d->db_pages)
			ck ^= old_hash(d, t->pgnos[i]);
		ck ^= h != NULL ? h[i]
				: qf_page_hash(t->pgnos[i], page, t->page_size);
	}
	return ck;
}

uint64_t eng__db_cksum_after(const struct eng_db *d, const struct eng_txn *t)
{
	return cksum_after(d, t, NULL);
}

int eng__db_covered(struct eng_db *d, const struct eng_txn *t, uint64_t index)
{
	if (t->seq > d->base_seq)
		return 0;
	if (t->seq == d->base_seq && t->cksum_after != d->base_cksum) {
		QF_LOG(QF_ERROR, "divergence db=%s index=%llu: entry seq=%llu "
		       "ends at %016llx, the installed image at %016llx",
		       d->name, (unsigned long long)index,
		       (unsigned long long)t->seq,
		       (unsigned long long)t->cksum_after,
		       (unsigned long long)d->base_cksum);
		return QF_EDIVERGED;
	}
	if (index > d->applied)
		d->applied = index;
	return 1;
}

int eng__db_old_hashes(const struct eng_db *d, struct eng_txn *t)
{
	uint32_t i;

	free(t->old_hashes);
	t->old_hashes = calloc(t->n ? t->n : 1, sizeof *t->old_hashes);
	if (t->old_hashes == NULL)
		return -ENOMEM;
	if (page_size_changes(d, t))
		return 0;
	for (i = 0; i < t->n; i++)
		t->old_hashes[i] = old_hash(d, t->pgnos[i]);
	return 0;
}

int eng__db_apply(struct eng_db *d, const struct eng_txn *t, uint64_t index)
{
	uint64_t *h;
	uint32_t i, p;
	int rv;

	if (t->seq != d->seq + 1 || t->cksum_before != d->cksum) {
		QF_LOG(QF_ERROR,
		       "divergence db=%s index=%llu: entry seq=%llu before=%016llx, "
		       "local seq=%llu cksum=%016llx",
		       d->name, (unsigned long long)index,
		       (unsigned long long)t->seq,
		       (unsigned long long)t->cksum_before,
		       (unsigned long long)d->seq,
		       (unsigned long long)d->cksum);
		return QF_EDIVERGED;
	}
	/* Each page hashed once (an image may be the whole database). */
	h = malloc((t->n ? t->n : 1) * sizeof *h);
	if (h == NULL)
		return -ENOMEM;
	for (i = 0; i < t->n; i++)
		h[i] = qf_page_hash(t->pgnos[i],
				    t->pages + (size_t)i * t->page_size,
				    t->page_size);
	rv = cksum_after(d, t, h) == t->cksum_after ? 0 : QF_EDIVERGED;
	if (rv != 0)
		QF_LOG(QF_ERROR, "divergence db=%s index=%llu: pages do not "
		       "produce the leader's checksum", d->name,
		       (unsigned long long)index);
	else
		rv = ensure_hash_cap(d, t->db_pages);
	if (rv != 0) {
		free(h);
		return rv;
	}
	if (page_size_changes(d, t))
		memset(d->hash, 0, (size_t)d->hash_cap * sizeof *d->hash);
	for (p = t->db_pages + 1; p <= d->db_pages && p <= d->hash_cap; p++)
		d->hash[p - 1] = 0;
	for (i = 0; i < t->n; i++)
		d->hash[t->pgnos[i] - 1] = h[i];
	free(h);
	d->page_size = t->page_size;
	d->db_pages = t->db_pages;
	d->seq = t->seq;
	d->cksum = t->cksum_after;
	d->applied = index;
	return 0;
}

/* ---- persistence ---- */

static void encode_header(const struct eng_db *d, uint64_t hashes_index,
			  uint8_t *h)
{
	memset(h, 0, HDR_SIZE);
	qf_put_le32(h, HDR_MAGIC);
	qf_put_le32(h + 4, 1);
	qf_put_le32(h + 8, d->page_size);
	qf_put_le32(h + 12, d->db_pages);
	qf_put_le64(h + 16, d->seq);
	qf_put_le64(h + 24, d->cksum);
	qf_put_le64(h + 32, d->applied);
	qf_put_le64(h + 40, hashes_index);
	qf_put_le64(h + 48, d->wal_frames);
	qf_put_le64(h + 56, d->base_seq);
	qf_put_le64(h + 64, d->base_cksum);
	qf_put_le64(h + 72, d->files_suspect ? HDR_FILES_SUSPECT : 0);
	qf_put_le64(h + HDR_SIZE - 8, qf_hash64(h, HDR_SIZE - 8, HDR_MAGIC));
}

static int open_state_fd(struct eng_dbs *s, struct eng_db *d)
{
	char *path;

	if (d->fd >= 0)
		return 0;
	path = state_path(s, d->name, ".state");
	if (path == NULL)
		return -ENOMEM;
	d->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	free(path);
	return d->fd < 0 ? -errno : 0;
}

int eng__db_save_header(struct eng_dbs *s, struct eng_db *d)
{
	uint8_t h[HDR_SIZE];
	int rv = open_state_fd(s, d);

	if (rv != 0)
		return rv;
	/* The hashes' index as stored (not @applied): a crash then leaves
	 * "hashes older than header" visible.  Known since load or the last
	 * save_all: no read per commit. */
	encode_header(d, d->hashes_at, h);
	return qf_pwrite_full(d->fd, h, HDR_SIZE, 0);
}

int eng__db_save_all(struct eng_dbs *s, struct eng_db *d)
{
	char *path = state_path(s, d->name, ".hashes");
	char *tmp = state_path(s, d->name, ".hashes.tmp");
	size_t body = (size_t)d->db_pages * 8;
	uint8_t *buf = NULL;
	uint8_t h[HDR_SIZE];
	int fd = -1, rv = -ENOMEM;
	uint32_t i;

	if (path == NULL || tmp == NULL)
		goto out;
	buf = malloc(24 + body + 8);
	if (buf == NULL)
		goto out;
	qf_put_le32(buf, HASH_MAGIC);
	qf_put_le32(buf + 4, d->db_pages);
	qf_put_le64(buf + 8, d->applied);
	qf_put_le64(buf + 16, d->cksum);
	for (i = 0; i < d->db_pages; i++)
		qf_put_le64(buf + 24 + 8 * (size_t)i, old_hash(d, i + 1));
	qf_put_le64(buf + 24 + body, qf_hash64(buf, 24 + body, HASH_MAGIC));
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rv = -errno;
		goto out;
	}
	rv = qf_pwrite_full(fd, buf, 24 + body + 8, 0);
	if (rv == 0 && fdatasync(fd) != 0)
		rv = -errno;
	close(fd);
	if (rv == 0 && rename(tmp, path) != 0)
		rv = -errno;
	if (rv != 0)
		goto out;
	rv = open_state_fd(s, d);
	if (rv != 0)
		goto out;
	encode_header(d, d->applied, h);
	rv = qf_pwrite_full(d->fd, h, HDR_SIZE, 0);
	if (rv == 0 && fdatasync(d->fd) != 0)
		rv = -errno;
	if (rv == 0)
		d->hashes_at = d->applied;
out:
	free(buf);
	free(path);
	free(tmp);
	return rv;
}

/* Load NAME.hashes if it describes exactly @index.  1 if loaded, 0 if
 * absent or stale, negative on error. */
static int load_hashes(struct eng_dbs *s, struct eng_db *d, uint64_t index)
{
	char *path = state_path(s, d->name, ".hashes");
	struct stat st;
	uint8_t *buf = NULL;
	int fd, rv = 0;
	uint32_t i, n;

	if (path == NULL)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) != 0 || st.st_size < 32)
		goto out;
	buf = malloc((size_t)st.st_size);
	if (buf == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	if (qf_pread_full(fd, buf, (size_t)st.st_size, 0) != st.st_size)
		goto out;
	n = qf_get_le32(buf + 4);
	if (qf_get_le32(buf) != HASH_MAGIC ||
	    (uint64_t)st.st_size != 32 + 8 * (uint64_t)n ||
	    qf_get_le64(buf + 8) != index || n != d->db_pages ||
	    qf_get_le64(buf + st.st_size - 8) !=
		    qf_hash64(buf, (size_t)st.st_size - 8, HASH_MAGIC))
		goto out;
	rv = ensure_hash_cap(d, n);
	if (rv != 0)
		goto out;
	for (i = 0; i < n; i++)
		d->hash[i] = qf_get_le64(buf + 24 + 8 * (size_t)i);
	rv = 1;
out:
	free(buf);
	close(fd);
	return rv;
}

/* A cheap sanity check before trusting a database's files: the database
 * file's size, or with a WAL at least a database file. */
static bool backing_size_matches(struct eng_dbs *s, struct eng_db *d)
{
	char *path = backing_path(s, d->name, "");
	struct stat st;
	bool ok;

	if (path == NULL)
		return false;
	ok = stat(path, &st) == 0 ? (d->wal_frames > 0 ||
				     (uint64_t)st.st_size ==
					     (uint64_t)d->db_pages * d->page_size)
				  : d->db_pages == 0;
	free(path);
	return ok;
}

static int load_one(struct eng_dbs *s, const char *file, size_t len,
		    bool trust_files)
{
	char *name = unescape_name(file, len);
	char *path = NULL;
	struct eng_db *d;
	uint8_t h[HDR_SIZE];
	uint64_t hashes_index;
	int fd = -1, rv;

	if (name == NULL)
		return -ENOMEM;
	d = eng__db_get(s, name);
	free(name);
	if (d == NULL)
		return -ENOMEM;
	path = state_path(s, d->name, ".state");
	fd = path ? open(path, O_RDWR | O_CLOEXEC) : -1;
	free(path);
	if (fd < 0)
		return -errno;
	d->fd = fd;
	if (qf_pread_full(fd, h, HDR_SIZE, 0) != HDR_SIZE ||
	    qf_get_le32(h) != HDR_MAGIC || qf_get_le32(h + 4) != 1 ||
	    qf_get_le64(h + HDR_SIZE - 8) != qf_hash64(h, HDR_SIZE - 8, HDR_MAGIC)) {
		QF_LOG(QF_WARN, "db=%s: state header unreadable, rebuilding "
		       "from snapshot and log", d->name);
		return eng__db_reset(s, d);
	}
	d->page_size = qf_get_le32(h + 8);
	d->db_pages = qf_get_le32(h + 12);
	d->seq = qf_get_le64(h + 16);
	d->cksum = qf_get_le64(h + 24);
	d->applied = qf_get_le64(h + 32);
	hashes_index = qf_get_le64(h + 40);
	d->wal_frames = qf_get_le64(h + 48);
	d->base_seq = qf_get_le64(h + 56);
	d->base_cksum = qf_get_le64(h + 64);
	if (qf_get_le64(h + 72) & HDR_FILES_SUSPECT) {
		QF_LOG(QF_WARN, "db=%s: its files diverged from the log before "
		       "the last stop; rebuilding from snapshot and log",
		       d->name);
		return eng__db_reset(s, d);
	}
	if (trust_files && hashes_index == d->applied &&
	    backing_size_matches(s, d)) {
		rv = load_hashes(s, d, d->applied);
		if (rv == 1)
			d->hashes_at = d->applied;
		if (rv != 0)
			return rv < 0 ? rv : 0;
	}
	/* The hashes are older than the header (a crash), or the files may
	 * have lost writes (a reboot): hash what the files hold. */
	QF_LOG(QF_INFO, "db=%s: re-hashing backing files (index=%llu)",
	       d->name, (unsigned long long)d->applied);
	rv = eng__db_settle(s, d->name);
	if (rv == 0) {
		d->wal_frames = 0; /* the WAL is folded into the file now */
		rv = eng__db_rehash(s, d);
	}
	if (rv == 1)
		return eng__db_save_all(s, d);
	if (rv == -ENOMEM)
		return rv;
	/* Unreadable (SQLite refused it) or different: rebuild. */
	QF_LOG(QF_WARN, "db=%s: backing files do not match state index=%llu; "
	       "rebuilding from snapshot and log", d->name,
	       (unsigned long long)d->applied);
	return eng__db_reset(s, d);
}

int eng__dbs_load(struct eng_dbs *s, bool trust_files)
{
	static const char suffix[] = ".state";
	DIR *dir = opendir(s->state_dir);
	struct dirent *e;
	int rv = 0;

	if (dir == NULL)
		return -errno;
	while (rv == 0 && (e = readdir(dir)) != NULL) {
		size_t len = strlen(e->d_name);

		if (len <= sizeof suffix - 1 ||
		    strcmp(e->d_name + len - (sizeof suffix - 1), suffix) != 0)
			continue;
		rv = load_one(s, e->d_name, len - (sizeof suffix - 1),
			      trust_files);
	}
	closedir(dir);
	return rv;
}

int eng__db_settle(struct eng_dbs *s, const char *name)
{
	char *path = backing_path(s, name, "");
	sqlite3 *db = NULL;
	struct stat st;
	int rv;

	if (path == NULL)
		return -ENOMEM;
	if (stat(path, &st) != 0) {
		rv = errno == ENOENT ? 0 : -errno;
		goto out;
	}
	rv = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rv == SQLITE_OK)
		/* Reading the schema rolls back a hot journal or recovers the
		 * WAL; the checkpoint folds the WAL into the database file. */
		rv = sqlite3_exec(db, "SELECT count(*) FROM sqlite_master;"
				  "PRAGMA wal_checkpoint(TRUNCATE);",
				  NULL, NULL, NULL);
	if (rv != SQLITE_OK) {
		QF_LOG(QF_ERROR, "db=%s: settling backing files: %s", name,
		       db ? sqlite3_errmsg(db) : sqlite3_errstr(rv));
		rv = -EIO;
	}
	sqlite3_close(db);
out:
	free(path);
	return rv;
}

int eng__db_rehash(struct eng_dbs *s, struct eng_db *d)
{
	char *path = backing_path(s, d->name, "");
	uint8_t *page = NULL;
	uint64_t ck = 0;
	uint32_t p;
	long got;
	int fd = -1, rv;

	if (path == NULL)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	rv = ensure_hash_cap(d, d->db_pages);
	if (fd < 0 || rv != 0) {
		/* No file: it matches only an empty state. */
		rv = rv != 0 ? rv : (d->db_pages == 0 ? 1 : 0);
		goto out;
	}
	page = malloc(d->page_size ? d->page_size : 1);
	if (page == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	for (p = 1; p <= d->db_pages; p++) {
		got = qf_pread_full(fd, page, d->page_size,
				    (int64_t)(p - 1) * d->page_size);
		if (got < 0) {
			rv = (int)got;
			goto out;
		}
		if ((uint32_t)got < d->page_size) {
			rv = 0; /* shorter than the state says */
			goto out;
		}
		d->hash[p - 1] = qf_page_hash(p, page, d->page_size);
		ck ^= d->hash[p - 1];
	}
	rv = ck == d->cksum ? 1 : 0;
out:
	if (fd >= 0)
		close(fd);
	free(page);
	free(path);
	return rv;
}

/* Remove @rel (relative to the db dir) and its companions. */
static void remove_db_files(struct eng_dbs *s, const char *rel)
{
	static const char *companions[] = {"", "-wal", "-shm", "-journal"};
	char *path;
	size_t i;

	for (i = 0; i < 4; i++) {
		path = backing_path(s, rel, companions[i]);
		if (path != NULL && unlink(path) != 0 && errno != ENOENT)
			QF_LOG(QF_WARN, "unlink %s: %s", path, strerror(errno));
		free(path);
	}
}

int eng__db_reset(struct eng_dbs *s, struct eng_db *d)
{
	remove_db_files(s, d->name);
	d->page_size = d->db_pages = 0;
	d->seq = d->cksum = d->applied = d->wal_frames = 0;
	d->base_seq = d->base_cksum = 0;
	d->files_suspect = false;
	if (d->hash != NULL)
		memset(d->hash, 0, (size_t)d->hash_cap * sizeof *d->hash);
	return eng__db_save_all(s, d);
}

/* mkdir -p for the parent directories of @path (relative to nothing). */
static int make_parents(char *path)
{
	char *slash;

	for (slash = strchr(path + 1, '/'); slash != NULL;
	     slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		if (mkdir(path, 0755) != 0 && errno != EEXIST) {
			*slash = '/';
			return -errno;
		}
		*slash = '/';
	}
	return 0;
}

/* Open (creating it and its parent directories) the backing database
 * file of @name for writing.  Returns the descriptor or -errno. */
static int open_backing_db(struct eng_dbs *s, const char *name, int flags)
{
	char *path = backing_path(s, name, "");
	int fd, rv;

	if (path == NULL)
		return -ENOMEM;
	rv = make_parents(path);
	fd = rv == 0 ? open(path, O_RDWR | O_CREAT | O_CLOEXEC | flags, 0644) : rv;
	if (fd < 0 && rv == 0)
		fd = -errno;
	free(path);
	return fd;
}

int eng__db_write_backing(struct eng_dbs *s, const struct eng_txn *t)
{
	int fd = open_backing_db(s, t->db, 0), rv = 0;
	uint32_t i;

	if (fd < 0)
		return fd;
	for (i = 0; i < t->n && rv == 0; i++)
		rv = qf_pwrite_full(fd, t->pages + (size_t)i * t->page_size,
				    t->page_size,
				    (int64_t)(t->pgnos[i] - 1) * t->page_size);
	if (rv == 0 &&
	    ftruncate(fd, (off_t)t->db_pages * t->page_size) != 0)
		rv = -errno;
	close(fd);
	return rv;
}

int eng__db_open_empty(struct eng_dbs *s, const char *name)
{
	return open_backing_db(s, name, O_TRUNC);
}

int eng__db_set_state(struct eng_db *d, const struct eng_db_snap *st,
		      uint64_t index)
{
	uint64_t ck = 0;
	uint32_t i;
	int rv;

	for (i = 0; i < st->db_pages; i++)
		ck ^= st->hashes[i];
	if (ck != st->cksum)
		return QF_EMALFORMED;
	rv = ensure_hash_cap(d, st->db_pages);
	if (rv != 0)
		return rv;
	if (d->hash != NULL)
		memset(d->hash, 0, (size_t)d->hash_cap * sizeof *d->hash);
	if (st->db_pages > 0)
		memcpy(d->hash, st->hashes, (size_t)st->db_pages * sizeof *d->hash);
	d->page_size = st->page_size;
	d->db_pages = st->db_pages;
	d->seq = d->base_seq = st->seq;
	d->cksum = d->base_cksum = st->cksum;
	d->applied = index;
	return 0;
}

int eng__db_write_image(struct eng_dbs *s, const char *name,
			const uint8_t *image, uint32_t page_size,
			uint32_t db_pages)
{
	int fd = open_backing_db(s, name, O_TRUNC), rv;

	if (fd < 0)
		return fd;
	rv = qf_pwrite_full(fd, image, (size_t)page_size * db_pages, 0);
	close(fd);
	return rv;
}

static bool is_companion(const char *name)
{
	static const char *suffixes[] = {"-wal", "-shm", "-journal"};
	size_t len = strlen(name), i, sl;

	for (i = 0; i < 3; i++) {
		sl = strlen(suffixes[i]);
		if (len > sl && strcmp(name + len - sl, suffixes[i]) == 0)
			return true;
	}
	return false;
}

static int remove_orphans_in(struct eng_dbs *s, const char *rel)
{
	char *dir_path = backing_path(s, rel, "");
	struct dirent *e;
	struct stat st;
	DIR *d;
	int rv = 0;

	if (dir_path == NULL)
		return -ENOMEM;
	d = opendir(dir_path);
	free(dir_path);
	if (d == NULL)
		return -errno;
	while (rv == 0 && (e = readdir(d)) != NULL) {
		char *child = NULL;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (asprintf(&child, "%s%s%s", rel, rel[0] ? "/" : "",
			     e->d_name) < 0) {
			rv = -ENOMEM;
			break;
		}
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			free(child);
			continue;
		}
		if (S_ISDIR(st.st_mode))
			rv = remove_orphans_in(s, child);
		else if (S_ISREG(st.st_mode) && !is_companion(e->d_name) &&
			 st.st_size > 0 && eng__db_find(s, child) == NULL) {
			QF_LOG(QF_WARN, "db=%s: removing backing files that hold "
			       "no committed transaction", child);
			remove_db_files(s, child);
		}
		free(child);
	}
	closedir(d);
	return rv;
}

int eng__dbs_remove_orphans(struct eng_dbs *s)
{
	return remove_orphans_in(s, "");
}
