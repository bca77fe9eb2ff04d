/* quorafs mount: run one node.  Checks the paths, takes the data dir's
 * lock, starts the engine (raft), mounts the filesystem and serves it until
 * SIGINT or SIGTERM, then answers what is pending, unmounts and exits 0. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <dirent.h>

#include "../engine/engine.h"
#include "../fs/fs.h"
#include "../net/net.h"
#include "tools.h"

#define FUSE_SUPER_MAGIC 0x65735546

struct opts {
	const char *data_dir, *mount, *address, *join;
	unsigned long long id;
	bool bootstrap, fsync_wal, allow_other, direct_wal;
	unsigned threshold, trailing, threads, max_conns, busy_ms, max_stmts;
	size_t max_msg;
	unsigned election_ms, heartbeat_ms;
};

static void usage(FILE *out)
{
	fprintf(out,
"usage: quorafs mount --data-dir DIR --mount DIR --id N --address HOST:PORT\n"
"                     [--bootstrap | --join ADDR[,ADDR...]] [options]\n\n"
"Run a quorafs node in the foreground: mount its databases at --mount and\n"
"commit every transaction through Raft before the writer's commit returns.\n"
"The --address port also serves the dqlite wire protocol (dqlite -s ADDR).\n"
"Stop it with SIGINT or SIGTERM (Ctrl-C): it unmounts and exits 0.\n\n"
"  --data-dir DIR          raft log, snapshots and backing files (created)\n"
"  --mount DIR             where the databases appear (created; must be empty)\n"
"  --id N                  this node's raft id (> 0); remembered in DIR\n"
"  --address HOST:PORT     this node's raft address; remembered in DIR\n"
"  --bootstrap             form a new one-node cluster if DIR is new;\n"
"                          ignored when DIR is already initialised\n"
"  --join ADDR[,ADDR...]   ask the cluster at these addresses to add this\n"
"                          node (a voter while it has fewer than 3, else a\n"
"                          standby); ignored once this node is a member\n"
"  --election-timeout MS   raft election timeout (default 1000): a dead\n"
"                          leader is replaced after 1 to 2 of these\n"
"  --heartbeat-timeout MS  raft heartbeat (default 100): followers see a\n"
"                          commit within about this long\n"
"  --snapshot-threshold N  log entries between snapshots (default 4096)\n"
"  --snapshot-trailing N   entries kept after a snapshot (default 4096)\n"
"  --threads N             FUSE worker threads (default 16)\n"
"  --fsync-wal             also fdatasync -wal files on fsync (default: no,\n"
"                          raft's log is the durable copy)\n"
"  --allow-other           let users other than the owner use the mount\n"
"  --direct-wal            serve -wal files with direct I/O (default: through\n"
"                          the page cache; direct I/O makes reads of pages\n"
"                          still in the WAL slower)\n"
"  --max-conns N           wire-protocol connections at once (default 256)\n"
"  --max-message BYTES     largest wire-protocol message (default 67108864,\n"
"                          at least 65536); larger requests are refused\n"
"  --max-statements N      prepared statements open per connection\n"
"                          (default 1024)\n"
"  --busy-timeout MS       how long a remote statement waits for SQLite's\n"
"                          locks (default 10000)\n"
"  --log-level LEVEL       debug, info (default), warn or error\n"
"  -h, --help              this text\n\n"
"A restart with the same --data-dir resumes the node; --id and --address may\n"
"then be omitted.\n");
}

static int parse_uint(const char *s, unsigned long long max,
		      unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno == 0 && *s != '\0' && *s != '-' && *end == '\0' &&
			       *out <= max ? 0 : -1;
}

static int check_address(const char *a)
{
	const char *colon = strrchr(a, ':');
	unsigned long long port;

	return colon != NULL && colon != a &&
	       parse_uint(colon + 1, 65535, &port) == 0 && port > 0 ? 0 : -1;
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option longs[] = {
		{"data-dir", required_argument, NULL, 'd'},
		{"mount", required_argument, NULL, 'm'},
		{"id", required_argument, NULL, 'i'},
		{"address", required_argument, NULL, 'a'},
		{"bootstrap", no_argument, NULL, 'b'},
		{"snapshot-threshold", required_argument, NULL, 'T'},
		{"snapshot-trailing", required_argument, NULL, 'R'},
		{"threads", required_argument, NULL, 't'},
		{"fsync-wal", no_argument, NULL, 'F'},
		{"allow-other", no_argument, NULL, 'A'},
		{"direct-wal", no_argument, NULL, 'C'},
		{"max-conns", required_argument, NULL, 'M'},
		{"max-message", required_argument, NULL, 'X'},
		{"max-statements", required_argument, NULL, 'S'},
		{"busy-timeout", required_argument, NULL, 'B'},
		{"log-level", required_argument, NULL, 'l'},
		{"join", required_argument, NULL, 'j'},
		{"election-timeout", required_argument, NULL, 'E'},
		{"heartbeat-timeout", required_argument, NULL, 'H'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	unsigned long long v;
	int c, level, idx = -1;

	memset(o, 0, sizeof *o);
	o->threshold = 4096;
	o->trailing = 4096;
	o->threads = 16;
	o->max_conns = 256;
	o->busy_ms = 10000;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longs, &idx)) != -1) {
		switch (c) {
		case 'd': o->data_dir = optarg; break;
		case 'm': o->mount = optarg; break;
		case 'a': o->address = optarg; break;
		case 'b': o->bootstrap = true; break;
		case 'j': o->join = optarg; break;
		case 'F': o->fsync_wal = true; break;
		case 'A': o->allow_other = true; break;
		case 'C': o->direct_wal = true; break;
		case 'h': usage(stdout); exit(0);
		case 'i':
			if (parse_uint(optarg, UINT64_MAX, &o->id) != 0 || o->id == 0) {
				fprintf(stderr, "quorafs mount: --id must be a positive integer, not '%s'\n", optarg);
				return -1;
			}
			break;
		case 'X':
			if (parse_uint(optarg, 1u << 30, &v) != 0 || v < 65536) {
				fprintf(stderr, "quorafs mount: --max-message needs a number of bytes from 65536 to 1073741824, not '%s'\n", optarg);
				return -1;
			}
			o->max_msg = (size_t)v;
			break;
		case 'T': case 'R': case 't': case 'M': case 'B': case 'E': case 'H': case 'S':
			if (parse_uint(optarg, 1u << 30, &v) != 0 || v == 0) {
				fprintf(stderr, "quorafs mount: --%s needs a positive integer, not '%s'\n",
					longs[idx].name, optarg);
				return -1;
			}
			if (c == 'T') o->threshold = (unsigned)v;
			else if (c == 'R') o->trailing = (unsigned)v;
			else if (c == 'M') o->max_conns = (unsigned)v;
			else if (c == 'B') o->busy_ms = (unsigned)v;
			else if (c == 'E') o->election_ms = (unsigned)v;
			else if (c == 'H') o->heartbeat_ms = (unsigned)v;
			else if (c == 'S') o->max_stmts = (unsigned)v;
			else o->threads = (unsigned)v;
			break;
		case 'l':
			level = qf_log_parse_level(optarg);
			if (level < 0) {
				fprintf(stderr, "quorafs mount: unknown log level '%s' (debug, info, warn, error)\n", optarg);
				return -1;
			}
			qf_log_set_level(level);
			break;
		default:
			fprintf(stderr, "quorafs mount: unknown or incomplete option '%s'\n"
				"Run 'quorafs mount --help' for usage.\n", argv[optind - 1]);
			return -1;
		}
	}
	if ((o->election_ms ? o->election_ms : 1000) <=
	    (o->heartbeat_ms ? o->heartbeat_ms : 100)) {
		fprintf(stderr, "quorafs mount: --heartbeat-timeout must be below --election-timeout\n");
		return -1;
	}
	if (o->bootstrap && o->join != NULL) {
		fprintf(stderr, "quorafs mount: --bootstrap and --join exclude each other\n");
		return -1;
	}
	if (optind < argc) {
		fprintf(stderr, "quorafs mount: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (o->data_dir == NULL || o->mount == NULL) {
		fprintf(stderr, "quorafs mount: --data-dir and --mount are required\n"
			"Run 'quorafs mount --help' for usage.\n");
		return -1;
	}
	if (o->address != NULL && check_address(o->address) != 0) {
		fprintf(stderr, "quorafs mount: --address must be HOST:PORT, not '%s'\n", o->address);
		return -1;
	}
	return 0;
}

static int make_dirs(const char *path)
{
	char buf[PATH_MAX];
	char *p;

	if (strlen(path) >= sizeof buf)
		return -ENAMETOOLONG;
	strcpy(buf, path);
	for (p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (mkdir(buf, 0755) != 0 && errno != EEXIST)
				return -errno;
			*p = '/';
		}
	if (mkdir(buf, 0755) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* @path made absolute and normalised lexically ("." and ".." resolved,
 * no symlinks followed), for checks made before anything is created. */
static int lexical_abs(const char *path, char *out, size_t size)
{
	char buf[PATH_MAX * 2], *tok, *save = NULL;
	size_t len = 0;

	if (path[0] == '/')
		snprintf(buf, sizeof buf, "%s", path);
	else if (getcwd(buf, PATH_MAX) != NULL)
		snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "/%s", path);
	else
		return -1;
	out[0] = '\0';
	for (tok = strtok_r(buf, "/", &save); tok != NULL;
	     tok = strtok_r(NULL, "/", &save)) {
		if (strcmp(tok, ".") == 0)
			continue;
		if (strcmp(tok, "..") == 0) {
			while (len > 0 && out[len - 1] != '/')
				len--;
			if (len > 0)
				len--;
			out[len] = '\0';
			continue;
		}
		if (len + strlen(tok) + 2 > size)
			return -1;
		out[len++] = '/';
		strcpy(out + len, tok);
		len += strlen(tok);
	}
	if (len == 0)
		strcpy(out, "/");
	return 0;
}

/* Is @inner equal to or inside @outer (both real paths)? */
static bool nested(const char *inner, const char *outer)
{
	size_t n = strlen(outer);

	return strncmp(inner, outer, n) == 0 &&
	       (inner[n] == '\0' || inner[n] == '/' || strcmp(outer, "/") == 0);
}

static int check_mountpoint(const char *mnt, char *real)
{
	struct stat st, parent;
	char up[PATH_MAX + 3];
	struct statfs sf;
	DIR *d;
	struct dirent *e;

	/* stat() may be answered from the kernel's attribute cache; statfs
	 * reaches the (dead) daemon. */
	if ((stat(mnt, &st) != 0 && errno == ENOTCONN) ||
	    (statfs(mnt, &sf) != 0 && errno == ENOTCONN)) {
		fprintf(stderr, "quorafs mount: %s is a stale FUSE mount (its daemon died).\n"
			"Fix it with: fusermount3 -u %s   (or: umount -l %s)\n", mnt, mnt, mnt);
		return -1;
	}
	if (make_dirs(mnt) != 0 || realpath(mnt, real) == NULL ||
	    stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "quorafs mount: mount point %s is not a usable directory: %s\n",
			mnt, strerror(errno ? errno : ENOTDIR));
		return -1;
	}
	snprintf(up, sizeof up, "%s/..", real);
	if (stat(up, &parent) == 0 && parent.st_dev != st.st_dev) {
		fprintf(stderr, "quorafs mount: %s is already a mount point; unmount it first "
			"(umount %s)\n", real, real);
		return -1;
	}
	d = opendir(real);
	while (d != NULL && (e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			closedir(d);
			fprintf(stderr, "quorafs mount: mount point %s is not empty; "
				"mount on an empty directory\n", real);
			return -1;
		}
	if (d != NULL)
		closedir(d);
	return 0;
}

static int check_data_dir(const char *dir, char *real)
{
	struct statfs sf;

	if (make_dirs(dir) != 0 || realpath(dir, real) == NULL) {
		fprintf(stderr, "quorafs mount: cannot create data dir %s: %s\n", dir, strerror(errno));
		return -1;
	}
	if (statfs(real, &sf) != 0) {
		fprintf(stderr, "quorafs mount: statfs %s: %s\n", real, strerror(errno));
		return -1;
	}
	if (sf.f_type == FUSE_SUPER_MAGIC) {
		fprintf(stderr, "quorafs mount: data dir %s is on a FUSE filesystem; raft's log "
			"needs a local disk filesystem (ext4, xfs, tmpfs)\n", real);
		return -1;
	}
	return 0;
}

/* Hold an OFD lock on DATA/LOCK for the life of the process. */
static int lock_data_dir(const char *dir)
{
	char path[PATH_MAX + 8], pid[32];
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	int fd;
	long n;

	snprintf(path, sizeof path, "%s/LOCK", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "quorafs mount: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
		n = qf_pread_full(fd, pid, sizeof pid - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		fprintf(stderr, "quorafs mount: another quorafs daemon%s%s is using %s\n",
			pid[0] ? " (pid " : "", pid[0] ? strcat(pid, ")") : "", dir);
		close(fd);
		return -1;
	}
	n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || qf_pwrite_full(fd, pid, (size_t)n, 0) != 0)
		QF_LOG(QF_WARN, "could not record the pid in %s", path);
	return fd; /* kept open: the lock lives as long as the process */
}

/* Stopping: SIGINT, SIGTERM and SIGHUP are blocked in every thread and
 * taken here.  Remote sessions close first, while the mount is still
 * served (they open databases through it), then the FUSE loop ends. */
struct stopper {
	sigset_t set;
	struct net_server *srv;
	struct fs *fs;
	pthread_mutex_t mu;
	bool stopped_server;
	/* Read-held while the server is handed a wal-index to rebuild,
	 * write-held while it is stopped. */
	pthread_rwlock_t srv_lock;
};

/* fs_config.on_stale_index: to the server, unless it is being stopped
 * (then the write that found it is refused anyway). */
static void on_stale_index(void *arg, const char *db)
{
	struct stopper *st = arg;

	if (pthread_rwlock_tryrdlock(&st->srv_lock) != 0)
		return; /* the server is stopping: a FUSE worker must not wait */
	if (st->srv != NULL && !st->stopped_server)
		net_server_reindex(st->srv, db);
	pthread_rwlock_unlock(&st->srv_lock);
}

static void *stopper_main(void *arg)
{
	struct stopper *st = arg;
	int sig;

	if (sigwait(&st->set, &sig) != 0)
		return NULL;
	QF_LOG(QF_INFO, "signal %d: stopping", sig);
	pthread_mutex_lock(&st->mu);
	pthread_rwlock_wrlock(&st->srv_lock);
	if (st->srv != NULL) {
		net_server_stop(st->srv);
		st->stopped_server = true;
	}
	pthread_rwlock_unlock(&st->srv_lock);
	pthread_mutex_unlock(&st->mu);
	fs_exit(st->fs);
	return NULL;
}

/* One attempt: add node @id as a voter while the cluster has fewer than
 * 3, else as a stand-by (ADD then ASSIGN, as dqlite's nodes join); a
 * member already keeps its role, a node added but not yet assigned gets
 * its role now.  0 or a client error. */
static int try_join(struct net_client *c, char **servers, size_t n,
		    uint64_t id, const char *address, const char **role)
{
	struct net_member *m = NULL;
	size_t nm = 0, i;
	unsigned voters = 0;
	bool added = false;
	int rv;

	rv = net_client_connect_leader(c, (const char *const *)servers, n);
	if (rv == 0)
		rv = net_client_cluster(c, &m, &nm);
	for (i = 0; rv == 0 && i < nm; i++) {
		if (m[i].id == id) {
			added = true;
			if (m[i].role != NET_SPARE) {
				*role = NULL; /* a member already */
				goto out;
			}
		} else {
			voters += m[i].role == NET_VOTER;
		}
	}
	if (rv == 0 && !added)
		rv = net_client_add(c, id, address);
	*role = voters < 3 ? "voter" : "stand-by";
	if (rv == 0)
		rv = net_client_assign(c, id, voters < 3 ? NET_VOTER
							 : NET_STANDBY);
out:
	net_members_free(m, nm);
	net_client_disconnect(c);
	return rv;
}

/* Ask the cluster at @list to take this node in, retrying for a minute
 * (another node's change may be in progress, or a leader being elected).
 * 0, or 1 after printing why. */
static int join_cluster(const char *list, uint64_t id, const char *address)
{
	struct net_client_config cfg = {.discovery_timeout_ms = 10000,
					.timeout_ms = 30000};
	struct net_client *c = NULL;
	const char *role = NULL;
	char **servers = NULL;
	size_t n = 0;
	unsigned waited_ms = 0, delay_ms = 100;
	int rv;

	if (qf_servers_add(&servers, &n, list) != 0 ||
	    net_client_new(&cfg, &c) != 0) {
		fprintf(stderr, "quorafs mount: out of memory\n");
		qf_servers_free(servers, n);
		return 1;
	}
	while ((rv = try_join(c, servers, n, id, address, &role)) != 0 &&
	       waited_ms < 60000) {
		QF_LOG(QF_INFO, "joining: %s; retrying",
		       rv == NET_EFAILURE ? net_client_errmsg(c)
					  : qf_strerror(rv));
		usleep(delay_ms * 1000);
		waited_ms += delay_ms;
		delay_ms = delay_ms < 1000 ? delay_ms * 2 : 1000;
	}
	if (rv != 0)
		fprintf(stderr, "quorafs mount: joining the cluster at %s: %s\n",
			list, rv == NET_EFAILURE ? net_client_errmsg(c)
						 : qf_strerror(rv));
	else if (role != NULL)
		QF_LOG(QF_INFO, "joined the cluster at %s as a %s", list, role);
	net_client_free(c);
	qf_servers_free(servers, n);
	return rv == 0 ? 0 : 1;
}

/* Wait for the engine to be ready, or for a stop signal (still blocked
 * in every thread: taken here with sigtimedwait).  0, -EINTR after a
 * signal, or the engine's error. */
static int wait_ready(struct eng *e, const sigset_t *set)
{
	struct timespec zero = {0, 0};
	int rv, sig;

	while ((rv = eng_wait_ready_for(e, 200)) == -EAGAIN) {
		sig = sigtimedwait(set, NULL, &zero);
		if (sig > 0) {
			QF_LOG(QF_INFO, "signal %d while starting: stopping", sig);
			return -EINTR;
		}
	}
	return rv;
}

/* The SQL worker's applier thread, announced on the loop thread, maybe
 * before the mount exists: kept until it does. */
struct applier_tid {
	pthread_mutex_t mu;
	struct fs *fs;
	int tid;
};

static void on_applier(void *arg, int tid)
{
	struct applier_tid *a = arg;

	pthread_mutex_lock(&a->mu);
	a->tid = tid;
	if (a->fs != NULL)
		fs_set_applier(a->fs, tid);
	pthread_mutex_unlock(&a->mu);
}

static void applier_set_fs(struct applier_tid *a, struct fs *fs)
{
	pthread_mutex_lock(&a->mu);
	a->fs = fs;
	if (fs != NULL && a->tid != 0)
		fs_set_applier(fs, a->tid);
	pthread_mutex_unlock(&a->mu);
}

int qf_cmd_mount(int argc, char **argv)
{
	char data[PATH_MAX], mnt[PATH_MAX];
	struct raft_uv_transport *transport = NULL;
	struct stopper stop = {0};
	pthread_t stopper;
	struct net_server_config nc;
	struct net_server *srv = NULL;
	struct eng_config ec;
	struct fs_config fc;
	struct eng *e = NULL;
	struct fs *fs = NULL;
	struct applier_tid at = {.mu = PTHREAD_MUTEX_INITIALIZER};
	struct opts o;
	int rv, lock_fd;

	if (parse(argc, argv, &o) != 0)
		return 2;
	/* A peer or client that goes away must not kill the daemon. */
	signal(SIGPIPE, SIG_IGN);
	/* libuv's threadpool (read once, at its first use) is shared by
	 * raft's disk work, snapshots and image transfers (net/resync.c):
	 * room for all of them.  A value set by the user is kept. */
	(void)setenv("UV_THREADPOOL_SIZE", "8", 0);
	sigemptyset(&stop.set);
	sigaddset(&stop.set, SIGINT);
	sigaddset(&stop.set, SIGTERM);
	sigaddset(&stop.set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop.set, NULL); /* every thread inherits */
	pthread_mutex_init(&stop.mu, NULL);
	pthread_rwlock_init(&stop.srv_lock, NULL);
	/* Refuse nesting before creating either directory. */
	if (lexical_abs(o.data_dir, data, sizeof data) != 0 ||
	    lexical_abs(o.mount, mnt, sizeof mnt) != 0) {
		fprintf(stderr, "quorafs mount: path too long\n");
		return 1;
	}
	if (nested(mnt, data) || nested(data, mnt)) {
		fprintf(stderr, "quorafs mount: the mount point (%s) and the data dir (%s) must not "
			"contain each other\n", mnt, data);
		return 1;
	}
	if (check_data_dir(o.data_dir, data) != 0)
		return 1;
	if (check_mountpoint(o.mount, mnt) != 0)
		return 1;
	if (nested(mnt, data) || nested(data, mnt)) {
		fprintf(stderr, "quorafs mount: the mount point (%s) and the data dir (%s) must not "
			"contain each other\n", mnt, data);
		return 1;
	}
	lock_fd = lock_data_dir(data);
	if (lock_fd < 0)
		return 1;
	if (net_transport_new(&transport) != 0) {
		fprintf(stderr, "quorafs mount: out of memory\n");
		return 1;
	}
	memset(&ec, 0, sizeof ec);
	ec.data_dir = data;
	ec.transport = transport;
	ec.id = o.id;
	ec.address = o.address;
	ec.bootstrap = o.bootstrap;
	ec.snapshot_threshold = o.threshold;
	ec.snapshot_trailing = o.trailing < o.threshold ? o.threshold : o.trailing;
	ec.election_timeout_ms = o.election_ms;
	ec.heartbeat_timeout_ms = o.heartbeat_ms;
	ec.cluster = true;
	ec.join = o.join != NULL;
	ec.ready_timeout_ms = o.join != NULL ? 120000 : 30000;
	rv = eng_start(&e, &ec);
	if (rv != 0) {
		fprintf(stderr, "quorafs mount: cannot start the node: %s\n", qf_strerror(rv));
		if (e != NULL)
			eng_stop(e); /* raft may still hold the transport */
		else
			net_transport_free(transport);
		return 1;
	}
	/* Serve raft (and the protocol, without SQL) before the mount: a
	 * joining or restarting follower catches up through it first. */
	memset(&nc, 0, sizeof nc);
	nc.address = eng_address(e);
	nc.mount = mnt;
	nc.max_conns = o.max_conns;
	nc.max_msg = o.max_msg;
	nc.max_stmts = o.max_stmts;
	nc.busy_timeout_ms = o.busy_ms;
	nc.start_closed = true;
	nc.on_applier = on_applier;
	nc.applier_arg = &at;
	rv = net_server_start(&srv, e, transport, &nc);
	if (rv != 0) {
		fprintf(stderr, "quorafs mount: cannot serve the wire protocol on %s: %s\n",
			eng_address(e), qf_strerror(rv));
		eng_stop(e);
		net_transport_free(transport);
		return 1;
	}
	if (o.join != NULL && join_cluster(o.join, eng_id(e), eng_address(e)) != 0)
		rv = -1;
	if (rv == 0) {
		rv = wait_ready(e, &stop.set);
		if (rv != 0 && rv != -EINTR)
			fprintf(stderr, "quorafs mount: the node is not ready: %s\n",
				qf_strerror(rv));
	}
	/* Replicated transactions wait from here until the applier can
	 * write them through the mount. */
	if (rv == 0)
		rv = eng_set_applier(e, NULL, NULL);
	if (rv == 0) {
		memset(&fc, 0, sizeof fc);
		fc.mountpoint = mnt;
		fc.backing_dir = eng_db_dir(e);
		fc.engine = e;
		fc.fsync_wal = o.fsync_wal;
		fc.max_threads = o.threads;
		fc.allow_other = o.allow_other;
		fc.direct_wal = o.direct_wal;
		fc.on_stale_index = on_stale_index;
		fc.stale_arg = &stop;
		rv = fs_new(&fs, &fc);
		if (rv != 0)
			fprintf(stderr, "quorafs mount: cannot mount %s: %s\n", mnt,
				qf_strerror(rv));
	}
	if (rv == 0) {
		applier_set_fs(&at, fs);
		rv = eng_set_applier(e, net_server_apply, srv);
	}
	if (rv == 0)
		rv = eng_set_resync(e, net_server_resync, srv);
	if (rv == 0)
		rv = net_server_open(srv);
	if (rv != 0) {
		net_server_stop(srv);
		eng_stop(e);
		if (fs != NULL)
			fs_free(fs);
		net_transport_free(transport);
		return rv == -EINTR ? 0 : 1; /* stopped while starting: clean */
	}
	QF_LOG(QF_INFO, "ready: databases at %s (try: sqlite3 %s/app.db), "
	       "wire protocol on %s (try: dqlite -s %s app.db)", mnt, mnt,
	       eng_address(e), eng_address(e));
	stop.srv = srv;
	stop.fs = fs;
	if (pthread_create(&stopper, NULL, stopper_main, &stop) != 0) {
		fprintf(stderr, "quorafs mount: cannot start the signal thread\n");
		net_server_stop(srv);
		eng_stop(e);
		fs_free(fs);
		return 1;
	}
	rv = fs_loop(fs);
	QF_LOG(QF_INFO, "stopping");
	pthread_mutex_lock(&stop.mu);
	pthread_rwlock_wrlock(&stop.srv_lock);
	if (!stop.stopped_server) /* unmounted from outside: no signal */
		net_server_stop(srv);
	stop.srv = NULL;
	stop.stopped_server = true;
	pthread_rwlock_unlock(&stop.srv_lock);
	pthread_mutex_unlock(&stop.mu);
	eng_stop(e);
	fs_free(fs);
	net_transport_free(transport);
	close(lock_fd);
	QF_LOG(QF_INFO, "stopped");
	return rv == 0 ? 0 : 1;
}
