/* The link between the daemon and its SQL worker process.  Private to
 * net/.
 *
 * Why a second process.  Each SQL session runs SQLite on a database of
 * the daemon's own mount, and SQLite maps the database's -shm file.
 * Unmapping a dirty shared FUSE mapping writes it back synchronously
 * while the unmapping thread holds its process's mmap lock; the FUSE
 * worker that must serve that write-back may itself need the same mmap
 * lock (to pin the pages of its read buffer).  In one process that is a
 * deadlock, which we hit when stopping with open sessions.  A separate
 * process has its own address space, so its mappings can never wait on
 * the server's.  It also keeps a killed daemon from waiting on its own
 * mount: the worker dies with it (PR_SET_PDEATHSIG).
 *
 * The link is one stream socket (a socketpair).  Every frame is a
 * 16-byte header, then @len payload bytes:
 *
 *   u32 len | u8 kind | u8 type | u8 schema | u8 flags | u64 serial
 *
 * little-endian, @serial naming the client connection.  Daemon to worker:
 *   SUBMIT     one SQL request: @type, @schema, payload = its body;
 *              flags bit 0: this node is the leader (may write)
 *   INTERRUPT  net_session_interrupt() on the connection's session
 *   CLOSE      the connection is gone: free its session
 *   ACK        payload = u64 bytes of its output written to the client
 *              (flow control: a session waits while too much is unacked)
 *   APPLY      a transaction to make visible through the mount;
 *              @serial = its raft index; payload = u32 n, n u64 hashes
 *              the entry's pages must have before (0: not checked;
 *              n = 0: no check at all), then the log entry (engine.h's
 *              format); split over consecutive APPLY frames of one
 *              serial, flagged NET_LINK_MORE but the last.  Or a whole
 *              database from an image file: u32 NET_APPLY_IMAGE_FILE,
 *              u32 page_size, u32 db_pages, u32 name_len, u32 path_len,
 *              the database name, the file's path (no terminators).
 *              Or, @serial 0 and not answered: u32 NET_APPLY_REINDEX,
 *              the database name: have SQLite rebuild its wal-index
 *              (a local writer died before publishing a commit)
 * Worker to daemon:
 *   OUT        payload = one complete encoded response message
 *   DROP       the session cannot answer (out of memory): close
 *   APPLIED    an APPLY is done: @serial = its index, payload = i32
 *              status (0 or a negative code), u64 frames now in the
 *              database's WAL, then the database name
 *   HELLO      @serial = the kernel tid of the worker's applier thread
 *              (the daemon's mount lets its files bypass interception)
 * End of stream from the daemon tells the worker to free every session
 * and exit. */
#ifndef NET_LINK_H
#define NET_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_LINK_HDR 16
/* APPLY's first word for an image file (link.h's header comment). */
#define NET_APPLY_IMAGE_FILE 0xffffffffu
/* APPLY's first word for rebuilding a wal-index (link.h's header). */
#define NET_APPLY_REINDEX 0xfffffffeu
#define NET_LINK_LEADER 1 /* flags bit of SUBMIT */
#define NET_LINK_MORE 1	  /* flags bit of APPLY: the payload goes on in
			     the next APPLY frame (each frame is at most
			     the link's max_msg; an image can be larger) */

enum {
	NET_LINK_SUBMIT = 1,
	NET_LINK_INTERRUPT,
	NET_LINK_CLOSE,
	NET_LINK_ACK,
	NET_LINK_OUT,
	NET_LINK_DROP,
	NET_LINK_APPLY,
	NET_LINK_APPLIED,
	NET_LINK_HELLO,
	NET_LINK_KIND_MAX = NET_LINK_HELLO
};

struct net_link_hdr {
	uint32_t len;
	uint8_t kind;
	uint8_t type;
	uint8_t schema;
	uint8_t flags;
	uint64_t serial;
};

void net__link_hdr_encode(const struct net_link_hdr *h,
			  uint8_t out[NET_LINK_HDR]);
/* 0, or QF_EMALFORMED for an unknown kind or @len above @max_len. */
int net__link_hdr_decode(const uint8_t in[NET_LINK_HDR], size_t max_len,
			 struct net_link_hdr *h);

/* A frame in one malloc'd buffer: header then @len payload bytes, for
 * one write.  NULL when out of memory. */
uint8_t *net__link_frame(const struct net_link_hdr *h, const void *payload);

/* Incremental reader for a byte stream of frames (the daemon's side,
 * fed whatever a read returned). */
struct net_link_reader {
	size_t max_len;
	uint8_t hdr[NET_LINK_HDR];
	size_t got;
	bool in_payload;
	struct net_link_hdr h;
	uint8_t *payload;
};

void net__link_reader_init(struct net_link_reader *r, size_t max_len);
void net__link_reader_close(struct net_link_reader *r);

/* Called for each complete frame; @payload is malloc'd (NULL when @len is
 * 0) and belongs to the callee. */
typedef void (*net_link_frame_cb)(void *arg, const struct net_link_hdr *h,
				  uint8_t *payload);

/* Consume @n bytes.  0, QF_EMALFORMED (a bad header: the stream cannot
 * be trusted any more) or -ENOMEM. */
int net__link_reader_feed(struct net_link_reader *r, const uint8_t *bytes,
			  size_t n, net_link_frame_cb cb, void *arg);

#endif /* NET_LINK_H */
