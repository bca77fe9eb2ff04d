/* Inode table and per-database objects.  Any FUSE worker thread. */
#include "inode.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_BUCKETS 4096

static const struct {
	const char *suffix;
	enum fs_kind kind;
} suffixes[] = {
	{"-wal", FS_WAL},
	{"-shm", FS_SHM},
	{"-journal", FS_JOURNAL},
};

enum fs_kind fs__kind_of(const char *name, bool is_dir)
{
	size_t len = strlen(name), i, sl;

	if (is_dir)
		return FS_DIR;
	for (i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		sl = strlen(suffixes[i].suffix);
		if (len > sl && strcmp(name + len - sl, suffixes[i].suffix) == 0)
			return suffixes[i].kind;
	}
	return FS_DB;
}

char *fs__db_name_of(const char *name, enum fs_kind kind)
{
	size_t len = strlen(name), i;

	for (i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++)
		if (suffixes[i].kind == kind)
			return strndup(name, len - strlen(suffixes[i].suffix));
	return strdup(name);
}

int fs__itable_init(struct fs_itable *t, const char *backing_dir)
{
	struct stat st;

	memset(t, 0, sizeof *t);
	t->root.fd = -1;
	pthread_mutex_init(&t->mu, NULL);
	t->n_buckets = N_BUCKETS;
	t->buckets = calloc(t->n_buckets, sizeof *t->buckets);
	if (t->buckets == NULL)
		return -ENOMEM;
	t->root.fd = open(backing_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (t->root.fd < 0 || fstat(t->root.fd, &st) != 0)
		return -errno;
	t->root.dev = st.st_dev;
	t->root.ino = st.st_ino;
	t->root.kind = FS_DIR;
	t->root.name = strdup("");
	t->root.rw_fd = -1;
	t->root.nlookup = 1;
	pthread_mutex_init(&t->root.mu, NULL);
	return t->root.name ? 0 : -ENOMEM;
}

static void inode_free(struct fs_inode *in)
{
	if (in->wal != NULL) {
		fs__wal_close(in->wal);
		free(in->wal);
	}
	if (in->rw_fd >= 0)
		close(in->rw_fd);
	if (in->fd >= 0)
		close(in->fd);
	pthread_mutex_destroy(&in->mu);
	free(in->name);
	free(in);
}

void fs__itable_close(struct fs_itable *t)
{
	struct fs_inode *in, *next;
	struct fs_db *d, *dn;
	size_t i;

	for (i = 0; t->buckets != NULL && i < t->n_buckets; i++)
		for (in = t->buckets[i]; in != NULL; in = next) {
			next = in->hnext;
			inode_free(in);
		}
	free(t->buckets);
	for (d = t->dbs; d != NULL; d = dn) {
		dn = d->next;
		fs__dirty_close(&d->dirty);
		pthread_mutex_destroy(&d->mu);
		free(d->name);
		free(d);
	}
	if (t->root.fd >= 0)
		close(t->root.fd);
	free(t->root.name);
	pthread_mutex_destroy(&t->mu);
}

static size_t bucket_of(const struct fs_itable *t, dev_t dev, ino_t ino)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ULL) ^ dev) % t->n_buckets;
}

static char *child_name(const struct fs_inode *parent, const char *name)
{
	char *out = NULL;

	if (parent->name[0] == '\0')
		return strdup(name);
	if (asprintf(&out, "%s/%s", parent->name, name) < 0)
		return NULL;
	return out;
}

int fs__inode_lookup(struct fs_itable *t, struct fs_inode *parent,
		     const char *name, struct fs_inode **out, struct stat *st)
{
	struct fs_inode *in;
	size_t b;
	int fd;

	fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
		int rv = -errno;

		close(fd);
		return rv;
	}
	b = bucket_of(t, st->st_dev, st->st_ino);
	pthread_mutex_lock(&t->mu);
	if (st->st_dev == t->root.dev && st->st_ino == t->root.ino) {
		in = &t->root;
	} else {
		for (in = t->buckets[b]; in != NULL; in = in->hnext)
			if (in->dev == st->st_dev && in->ino == st->st_ino)
				break;
	}
	if (in != NULL) {
		in->nlookup++;
		pthread_mutex_unlock(&t->mu);
		close(fd);
		*out = in;
		return 0;
	}
	in = calloc(1, sizeof *in);
	if (in == NULL || (in->name = child_name(parent, name)) == NULL) {
		pthread_mutex_unlock(&t->mu);
		free(in);
		close(fd);
		return -ENOMEM;
	}
	in->dev = st->st_dev;
	in->ino = st->st_ino;
	in->fd = fd;
	in->rw_fd = -1;
	in->nlookup = 1;
	in->kind = fs__kind_of(name, S_ISDIR(st->st_mode));
	pthread_mutex_init(&in->mu, NULL);
	in->hnext = t->buckets[b];
	t->buckets[b] = in;
	pthread_mutex_unlock(&t->mu);
	*out = in;
	return 0;
}

void fs__inode_forget(struct fs_itable *t, struct fs_inode *in, uint64_t n)
{
	struct fs_inode **pp;

	if (in == &t->root)
		return;
	pthread_mutex_lock(&t->mu);
	in->nlookup = in->nlookup > n ? in->nlookup - n : 0;
	if (in->nlookup > 0) {
		pthread_mutex_unlock(&t->mu);
		return;
	}
	for (pp = &t->buckets[bucket_of(t, in->dev, in->ino)]; *pp != NULL;
	     pp = &(*pp)->hnext)
		if (*pp == in) {
			*pp = in->hnext;
			break;
		}
	pthread_mutex_unlock(&t->mu);
	inode_free(in);
}

struct fs_db *fs__db_get(struct fs_itable *t, const char *db_name)
{
	struct fs_db *d;

	pthread_mutex_lock(&t->mu);
	for (d = t->dbs; d != NULL; d = d->next)
		if (strcmp(d->name, db_name) == 0)
			break;
	if (d == NULL) {
		d = calloc(1, sizeof *d);
		if (d != NULL && (d->name = strdup(db_name)) == NULL) {
			free(d);
			d = NULL;
		}
		if (d != NULL) {
			pthread_mutex_init(&d->mu, NULL);
			fs__dirty_init(&d->dirty);
			d->next = t->dbs;
			t->dbs = d;
		}
	}
	pthread_mutex_unlock(&t->mu);
	return d;
}
