/* One client connection: socket, optional TLS, a bounded line reader, raw
 * byte reads, buffered output with back-pressure, idle timeout, STARTTLS.
 *
 * The protocol sees typed events through one callback (STYLE.md).  Reading
 * modes:
 *   lines (default): CONN_EV_LINE per line, without its line end.  A line
 *     longer than the limit is discarded up to its end and reported once
 *     as CONN_EV_LINE_TOO_LONG.
 *   bytes(n): the next n bytes arrive as CONN_EV_BYTES chunks, then the
 *     connection falls back to lines by itself (IMAP literals).
 *   raw: every chunk that arrives is CONN_EV_BYTES until the protocol asks
 *     for lines again (SMTP DATA, which does its own dot-unstuffing).  The
 *     protocol hands back what it did not use with conn_unread() (the
 *     commands pipelined after the end of a message), so every byte is
 *     read once, in order, whatever the client pipelines.
 * Nothing is read while the connection is paused or while more than
 * CONN_OUTPUT_HIGH bytes of output wait (a client that does not read its
 * answers is not read from).
 */
#ifndef CORE_CONN_H
#define CORE_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "log.h"
#include "worker.h"

struct conn;
struct server;

#define CONN_OUTPUT_HIGH (256 * 1024) /* stop reading above this much output */
#define CONN_ID_LEN 9                 /* 8 hex digits + NUL */

enum conn_event {
	CONN_EV_LINE,          /* data, len: one line without CRLF/LF */
	CONN_EV_LINE_TOO_LONG, /* the line was longer than the limit */
	CONN_EV_BYTES,         /* data, len: a chunk in bytes or raw mode */
	CONN_EV_DRAINED,       /* output fell below CONN_OUTPUT_HIGH / 2 */
	CONN_EV_TIMEOUT,       /* idle timeout; the protocol says goodbye */
	CONN_EV_TLS_READY,     /* STARTTLS handshake completed */
	CONN_EV_CLOSED,        /* peer gone or error; free the session now */
};

typedef void conn_event_fn(struct conn *conn, enum conn_event ev,
			   const char *data, size_t len, void *session);

/* Set the protocol's callback and session pointer (at accept time). */
void conn_set_handler(struct conn *conn, conn_event_fn *fn, void *session);

void conn_read_lines(struct conn *conn, size_t max_len, bool allow_bare_lf);
void conn_read_bytes(struct conn *conn, size_t n);
void conn_read_raw(struct conn *conn);
/* Give back the unused tail of the CONN_EV_BYTES chunk being handled (raw
 * mode): it is read again first, in whatever mode is set next.  len is at
 * most the chunk's length, so the input never grows by it. */
void conn_unread(struct conn *conn, const char *data, size_t len);

void conn_pause(struct conn *conn);
void conn_resume(struct conn *conn);

/* Queue output.  Never blocks; back-pressure is by pausing input. */
void conn_write(struct conn *conn, const void *data, size_t len);
void conn_printf(struct conn *conn, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Queue len bytes of a malloc()ed buffer without copying them: the
 * connection owns data from now on and frees it once sent (or at once
 * when the connection is gone).  For large bodies built off the loop. */
void conn_write_owned(struct conn *conn, void *data, size_t len);
size_t conn_output_pending(const struct conn *conn);

/* Flush what is queued, then close; CONN_EV_CLOSED follows. */
void conn_close(struct conn *conn);
bool conn_is_closing(const struct conn *conn);

void conn_set_timeout(struct conn *conn, unsigned seconds);

/* STARTTLS: the reply already queued goes out in plaintext, every byte the
 * client sent after the command is discarded (RFC 3207 §4.2, CVE-2011-0411),
 * then the handshake runs; CONN_EV_TLS_READY or CONN_EV_CLOSED follows.
 * -1 when TLS is not configured or already on. */
int conn_starttls(struct conn *conn);
bool conn_is_tls(const struct conn *conn);

/* COMPRESS=DEFLATE (RFC 4978): what is queued already (the tagged OK)
 * goes out as it is; every octet after it, both ways, is one raw DEFLATE
 * stream (RFC 1951), over TLS when TLS is on.  Inflating is bounded by the
 * line and byte limits above (a "deflate bomb" is held compressed until
 * the protocol wants more), and input that does not inflate closes the
 * connection (CONN_EV_CLOSED).  -1 when already compressed, during a TLS
 * handshake, or out of memory (nothing changed then). */
int conn_compress(struct conn *conn);
bool conn_is_compressed(const struct conn *conn);
/* The listener's TLS mode: NONE, STARTTLS (may be offered) or IMPLICIT. */
enum tls_mode conn_tls_mode(const struct conn *conn);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384", or "" without TLS. */
void conn_tls_describe(const struct conn *conn, char *out, size_t outlen);

const char *conn_id(const struct conn *conn);
/* The peer address of a unix socket client (LMTP from the MTA in front). */
#define CONN_PEER_LOCAL "local"
/* An IPv4 or IPv6 socket address as text (an IPv4-mapped IPv6 address as
 * IPv4), its port and whether it is loopback; a unix socket peer is
 * CONN_PEER_LOCAL, port 0, and counts as loopback (the same machine); ""
 * and 0 for other families.
 * For servers that accept outside conn (the HTTP endpoint). */
struct sockaddr;
void conn_addr_text(const struct sockaddr *sa, char *out, size_t outlen,
		    unsigned *port_r, bool *loopback_r);
/* Peer address as text ("192.0.2.1", "2001:db8::1", CONN_PEER_LOCAL). */
const char *conn_peer_addr(const struct conn *conn);
bool conn_peer_is_loopback(const struct conn *conn);
/* true for a unix socket peer. */
bool conn_peer_is_local_socket(const struct conn *conn);
/* In the configuration's trusted_networks (loopback by default); a unix
 * socket peer is trusted (the socket file's permissions chose it). */
bool conn_peer_is_trusted(const struct conn *conn);
unsigned conn_local_port(const struct conn *conn);
struct server *conn_server(const struct conn *conn);

/* Run work() on a worker thread, then done() on the loop.  The connection
 * stays allocated until done() has run, even if the peer goes away in the
 * meantime (then CONN_EV_CLOSED is delivered after done()). */
int conn_submit(struct conn *conn, worker_work_fn *work, worker_done_fn *done, void *arg);
/* The same on the pool of the given kind: WORKER_AUTH for password
 * verification, WORKER_IO (what conn_submit() uses) for everything else. */
int conn_submit_kind(struct conn *conn, enum worker_kind kind, worker_work_fn *work,
		     worker_done_fn *done, void *arg);

/* log_write with this connection's id. */
void conn_log(const struct conn *conn, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
