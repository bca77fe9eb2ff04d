/* The data dir: node identity (DATA/node) and the boot the backing files
 * were written in (DATA/state/boot_id).  Main thread, at start. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"


static int read_small_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	long n;

	if (fd < 0)
		return -errno;
	n = qf_pread_full(fd, buf, size - 1, 0);
	close(fd);
	if (n < 0)
		return (int)n;
	buf[n] = '\0';
	return 0;
}

static int write_small_file(const char *path, const char *text)
{
	char tmp[4096];
	int fd, rv;

	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	rv = qf_pwrite_full(fd, text, strlen(text), 0);
	if (rv == 0 && fsync(fd) != 0)
		rv = -errno;
	close(fd);
	if (rv == 0 && rename(tmp, path) != 0)
		rv = -errno;
	return rv;
}

/* Check or record this node's id and address in DATA/node.  A restart may
 * omit them (id 0, address NULL); a different value is refused. */
int eng__check_identity(const char *data_dir, uint64_t *id_io, char **address)
{
	char path[4096], text[512], addr[256];
	unsigned long long id = 0;
	int rv;

	snprintf(path, sizeof path, "%s/node", data_dir);
	rv = read_small_file(path, text, sizeof text);
	if (rv == 0 && sscanf(text, "id=%llu address=%255s", &id, addr) == 2) {
		if (*id_io != 0 && *id_io != id) {
			QF_LOG(QF_ERROR, "data dir %s belongs to node id %llu, "
			       "not %llu", data_dir, id,
			       (unsigned long long)*id_io);
			return -EINVAL;
		}
		if (*address != NULL && strcmp(*address, addr) != 0) {
			QF_LOG(QF_ERROR, "data dir %s belongs to address %s, "
			       "not %s", data_dir, addr, *address);
			return -EINVAL;
		}
		*id_io = id;
		free(*address);
		*address = strdup(addr);
		return *address ? 0 : -ENOMEM;
	}
	if (rv != -ENOENT && rv != 0)
		return rv;
	if (*id_io == 0 || *address == NULL) {
		QF_LOG(QF_ERROR, "new data dir %s: --id and --address are "
		       "required", data_dir);
		return -EINVAL;
	}
	snprintf(text, sizeof text, "id=%llu address=%s\n",
		 (unsigned long long)*id_io, *address);
	return write_small_file(path, text);
}

/* Were the backing files written during this boot?  Writes are not
 * fsynced (raft's log is the durable copy), so after a reboot they may
 * have lost data and must be checked against their state.  *now receives
 * this boot's id, recorded by record_boot() once the check is done. */
int eng__check_boot(const char *state_dir, char *now, size_t size,
		    bool *same_boot)
{
	char path[4096], before[128] = "";
	int rv;

	rv = read_small_file("/proc/sys/kernel/random/boot_id", now, size);
	if (rv != 0)
		return rv;
	snprintf(path, sizeof path, "%s/boot_id", state_dir);
	rv = read_small_file(path, before, sizeof before);
	*same_boot = rv == 0 && strcmp(now, before) == 0;
	return 0;
}

int eng__record_boot(const char *state_dir, const char *now)
{
	char path[4096];

	snprintf(path, sizeof path, "%s/boot_id", state_dir);
	return write_small_file(path, now);
}

int eng__make_dir(const char *path)
{
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}


void eng__remove_scratch(const char *state_dir)
{
	char path[4096];
	struct dirent *de;
	DIR *d = opendir(state_dir);

	while (d != NULL && (de = readdir(d)) != NULL) {
		/* '%' then a letter: never an escaped database name. */
		if (strncmp(de->d_name, "%image-in-", 10) != 0 &&
		    strncmp(de->d_name, "%image-out-", 11) != 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", state_dir, de->d_name);
		if (unlink(path) != 0 && errno != ENOENT)
			QF_LOG(QF_WARN, "removing %s: %s", path,
			       strerror(errno));
	}
	if (d != NULL)
		closedir(d);
}
