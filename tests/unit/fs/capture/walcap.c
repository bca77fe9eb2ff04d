/* LD_PRELOAD shim that records every change a process makes to files whose
 * name ends in "-wal": pwrite64/pwrite/write (offset, length, bytes),
 * ftruncate (new size) and fsync/fdatasync (a marker).  Used by capture.py
 * to record real SQLite sessions for tests/unit/fs/test_wal.c.
 *
 * Output: the file named by $QF_WALCAP, opened O_APPEND, one write(2) per
 * record so several connections or processes can share it.  Format, all
 * integers little-endian:
 *   file header: "QFWALCAP" then u32 version (1) then u32 0
 *   record:      u8 kind ('W' write, 'T' truncate, 'S' sync), 3 zero bytes,
 *                u32 length, u64 offset (for 'T' the new size), then
 *                length bytes for 'W'.
 * Only successful calls are recorded, with the byte count actually written.
 *
 * Build: gcc -shared -fPIC -O2 -o walcap.so walcap.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int log_fd = -1;
static char log_name[4096]; /* the file log_fd is open on */

static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_write)(int, const void *, size_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

static void resolve(void)
{
	if (real_write != NULL)
		return;
	real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
	real_pwrite = dlsym(RTLD_NEXT, "pwrite");
	real_ftruncate = dlsym(RTLD_NEXT, "ftruncate");
	real_ftruncate64 = dlsym(RTLD_NEXT, "ftruncate64");
	real_fsync = dlsym(RTLD_NEXT, "fsync");
	real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
	real_write = dlsym(RTLD_NEXT, "write");
}

static int is_wal(int fd)
{
	char link[64], path[4096];
	ssize_t n;

	if (fd < 0 || fd == log_fd)
		return 0;
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof path - 1);
	if (n < 4)
		return 0;
	path[n] = '\0';
	return strcmp(path + n - 4, "-wal") == 0;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void emit(char kind, uint64_t off, const void *buf, size_t len)
{
	const char *name = getenv("QF_WALCAP");
	uint8_t *rec;
	int saved = errno;

	if (name == NULL)
		return;
	pthread_mutex_lock(&lock);
	if (log_fd >= 0 && strcmp(name, log_name) != 0) {
		close(log_fd);	/* $QF_WALCAP changed: a new capture */
		log_fd = -1;
	}
	if (log_fd < 0) {
		snprintf(log_name, sizeof log_name, "%s", name);
		log_fd = open(name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
			      0644);
		if (log_fd >= 0 && lseek(log_fd, 0, SEEK_END) == 0) {
			uint8_t h[16] = "QFWALCAP";

			put32(h + 8, 1);
			put32(h + 12, 0);
			if (real_write(log_fd, h, 16) != 16)
				abort();
		}
	}
	rec = malloc(16 + len);
	if (log_fd < 0 || rec == NULL)
		abort();
	memset(rec, 0, 16);
	rec[0] = (uint8_t)kind;
	put32(rec + 4, (uint32_t)len);
	put64(rec + 8, off);
	if (len > 0)
		memcpy(rec + 16, buf, len);
	if (real_write(log_fd, rec, 16 + len) != (ssize_t)(16 + len))
		abort();
	free(rec);
	pthread_mutex_unlock(&lock);
	errno = saved;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	ssize_t rv;

	resolve();
	rv = real_pwrite64(fd, buf, n, off);
	if (rv > 0 && is_wal(fd))
		emit('W', (uint64_t)off, buf, (size_t)rv);
	return rv;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	ssize_t rv;

	resolve();
	rv = real_pwrite(fd, buf, n, off);
	if (rv > 0 && is_wal(fd))
		emit('W', (uint64_t)off, buf, (size_t)rv);
	return rv;
}

ssize_t write(int fd, const void *buf, size_t n)
{
	off_t off;
	ssize_t rv;
	int wal;

	resolve();
	wal = is_wal(fd);
	off = wal ? lseek(fd, 0, SEEK_CUR) : 0;
	rv = real_write(fd, buf, n);
	if (rv > 0 && wal && off >= 0)
		emit('W', (uint64_t)off, buf, (size_t)rv);
	return rv;
}

int ftruncate(int fd, off_t size)
{
	int rv;

	resolve();
	rv = real_ftruncate(fd, size);
	if (rv == 0 && is_wal(fd))
		emit('T', (uint64_t)size, NULL, 0);
	return rv;
}

int ftruncate64(int fd, off_t size)
{
	int rv;

	resolve();
	rv = real_ftruncate64(fd, size);
	if (rv == 0 && is_wal(fd))
		emit('T', (uint64_t)size, NULL, 0);
	return rv;
}

int fsync(int fd)
{
	int rv;

	resolve();
	rv = real_fsync(fd);
	if (rv == 0 && is_wal(fd))
		emit('S', 0, NULL, 0);
	return rv;
}

int fdatasync(int fd)
{
	int rv;

	resolve();
	rv = real_fdatasync(fd);
	if (rv == 0 && is_wal(fd))
		emit('S', 0, NULL, 0);
	return rv;
}
