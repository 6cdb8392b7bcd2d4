/* One client connection over a libevent bufferevent (plain, TLS socket, or
 * a TLS filter after STARTTLS), with a DEFLATE filter on top of any of
 * them after conn_compress() (conn_zlib.c).
 *
 * Memory: the connection owns its bufferevent and a line scratch buffer
 * that lives only while a line event is delivered.  Teardown is deferred
 * while a callback into the protocol is running or a worker job for this
 * connection is in flight, so a session never sees its connection freed
 * under it.
 */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "conn_zlib.h"
#include "log.h"
#include "server_private.h"
#include "util.h"

#define CONN_READ_CHUNK (64 * 1024)  /* bytes handed over per BYTES event */
#define CONN_EVENTS_PER_TURN 64      /* lines handled before yielding */
#define CONN_FLUSH_POLL_MS 10        /* closing TLS-after-STARTTLS: drain check */

enum conn_read_mode {
	CONN_READ_LINES,
	CONN_READ_BYTES,
	CONN_READ_RAW,
};

struct conn {
	struct conn *prev, *next; /* server's list */
	struct server *srv;
	const struct config_listener *lcfg;
	struct bufferevent *bev;
	struct event *kick_ev;
	SSL *ssl;
	struct conn_zlib *zlib;   /* conn_compress(): owned by the filter bev */

	conn_event_fn *handler;
	void *session;

	enum conn_read_mode mode;
	size_t line_max;
	bool allow_bare_lf;
	size_t line_scanned;    /* input searched for a line end in vain */
	bool discarding;        /* inside an over-long line */
	uint64_t bytes_left;    /* CONN_READ_BYTES */

	bool paused;            /* by the protocol */
	bool blocked;           /* by back-pressure */
	bool handshaking;       /* STARTTLS in progress */
	bool closing;           /* conn_close(): flush then teardown */
	bool dead;              /* socket gone; free when nothing holds us */
	bool closed_sent;
	unsigned in_callback;
	unsigned jobs;
	unsigned timeout;

	char id[CONN_ID_LEN];
	char peer[INET6_ADDRSTRLEN];
	unsigned local_port;
	bool loopback;
	bool trusted;           /* in cfg trusted_networks, or a unix socket peer */
	bool local_socket;      /* a unix socket peer */
};

struct conn_job {
	struct conn *conn;
	worker_work_fn *work;
	worker_done_fn *done;
	void *arg;
};

static void conn_on_read(struct bufferevent *bev, void *arg);
static void conn_on_write(struct bufferevent *bev, void *arg);
static void conn_on_event(struct bufferevent *bev, short what, void *arg);
static void conn_process_input(struct conn *conn);
static void conn_maybe_free(struct conn *conn);
static void conn_kill(struct conn *conn);

static void conn_emit(struct conn *conn, enum conn_event ev, const char *data, size_t len)
{
	if (conn->handler == NULL || conn->closed_sent)
		return;
	if (ev == CONN_EV_CLOSED)
		conn->closed_sent = true;
	conn->in_callback++;
	conn->handler(conn, ev, data, len, conn->session);
	conn->in_callback--;
}

static void conn_update_read(struct conn *conn)
{
	size_t hwm;

	if (conn->bev == NULL)
		return;
	hwm = conn->mode == CONN_READ_LINES ? conn->line_max + 2 : CONN_READ_CHUNK;
	if (hwm < CONN_READ_CHUNK)
		hwm = CONN_READ_CHUNK;
	bufferevent_setwatermark(conn->bev, EV_READ, 0, hwm);
	if (conn->paused || conn->blocked || conn->closing)
		bufferevent_disable(conn->bev, EV_READ);
	else
		bufferevent_enable(conn->bev, EV_READ);
}

static void conn_apply_timeout(struct conn *conn)
{
	struct timeval tv = { .tv_sec = conn->timeout, .tv_usec = 0 };

	if (conn->bev == NULL)
		return;
	if (conn->timeout == 0)
		bufferevent_set_timeouts(conn->bev, NULL, NULL);
	else
		bufferevent_set_timeouts(conn->bev, &tv, &tv);
}

static void conn_setup_bev(struct conn *conn)
{
	bufferevent_setcb(conn->bev, conn_on_read, conn_on_write, conn_on_event, conn);
	bufferevent_setwatermark(conn->bev, EV_WRITE, CONN_OUTPUT_HIGH / 2, 0);
	conn_apply_timeout(conn);
	conn_update_read(conn);
	bufferevent_enable(conn->bev, EV_WRITE);
}

static void conn_on_kick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_process_input(arg);
}

static void conn_kick(struct conn *conn)
{
	if (conn->kick_ev != NULL && !conn->dead)
		event_active(conn->kick_ev, EV_READ, 0);
}

void conn_addr_text(const struct sockaddr *sa, char *out, size_t outlen,
			   unsigned *port_r, bool *loopback_r)
{
	out[0] = '\0';
	*port_r = 0;
	*loopback_r = false;
	if (sa->sa_family == AF_UNIX) {
		str_copy(out, CONN_PEER_LOCAL, outlen);
		*loopback_r = true;
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, out, (socklen_t)outlen);
		*port_r = ntohs(in->sin_port);
		*loopback_r = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		*port_r = ntohs(in6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			/* Show an IPv4 client on a dual-stack socket as IPv4, so
			 * that limits and fail2ban see one form per address. */
			struct in_addr v4;
			memcpy(&v4, &in6->sin6_addr.s6_addr[12], 4);
			inet_ntop(AF_INET, &v4, out, (socklen_t)outlen);
			*loopback_r = in6->sin6_addr.s6_addr[12] == 127;
		} else {
			inet_ntop(AF_INET6, &in6->sin6_addr, out, (socklen_t)outlen);
			*loopback_r = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
		}
	}
}

struct conn *conn_new(struct server *srv, int fd, const struct sockaddr *sa,
		      int salen, const struct config_listener *lcfg)
{
	struct conn *conn = calloc(1, sizeof(*conn));
	struct sockaddr_storage local;
	socklen_t local_len = sizeof(local);
	char local_text[INET6_ADDRSTRLEN];
	unsigned peer_port;
	bool unused;

	(void)salen;
	if (conn == NULL) {
		evutil_closesocket(fd);
		return NULL;
	}
	conn->srv = srv;
	conn->lcfg = lcfg;
	conn->mode = CONN_READ_LINES;
	conn->line_max = srv->cfg.line_length_max;
	snprintf(conn->id, sizeof(conn->id), "%08x", srv->next_conn_id++);
	conn_addr_text(sa, conn->peer, sizeof(conn->peer), &peer_port, &conn->loopback);
	conn->local_socket = sa->sa_family == AF_UNIX;
	conn->trusted = conn->local_socket || config_addr_is_trusted(&srv->cfg, sa);
	if (getsockname(fd, (struct sockaddr *)&local, &local_len) == 0)
		conn_addr_text((struct sockaddr *)&local, local_text, sizeof(local_text),
			       &conn->local_port, &unused);
	evutil_make_socket_nonblocking(fd);
	evutil_make_socket_closeonexec(fd);
	/* Replies often leave in two writes (a status line, then data, or TLS
	 * records); with Nagle each second write waits ~40 ms for the peer's
	 * delayed ACK.  Our writes are already whole replies. */
	if (!conn->local_socket)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));

	if (lcfg->tls == TLS_MODE_IMPLICIT) {
		conn->ssl = tls_server_new_ssl(srv->tls, lcfg->role);
		if (conn->ssl != NULL)
			conn->bev = bufferevent_openssl_socket_new(
				srv->base, fd, conn->ssl, BUFFEREVENT_SSL_ACCEPTING,
				BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (conn->bev != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(conn->bev, 1);
		else if (conn->ssl != NULL)
			SSL_free(conn->ssl);
	} else {
		conn->bev = bufferevent_socket_new(srv->base, fd,
						   BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	}
	conn->kick_ev = event_new(srv->base, -1, 0, conn_on_kick, conn);
	if (conn->bev == NULL || conn->kick_ev == NULL) {
		log_error("c=%s cannot set up connection from %s", conn->id, conn->peer);
		if (conn->bev != NULL)
			bufferevent_free(conn->bev);
		else
			evutil_closesocket(fd);
		if (conn->kick_ev != NULL)
			event_free(conn->kick_ev);
		free(conn);
		return NULL;
	}
	conn_setup_bev(conn);
	return conn;
}

void conn_set_handler(struct conn *conn, conn_event_fn *fn, void *session)
{
	conn->handler = fn;
	conn->session = session;
}

void conn_read_lines(struct conn *conn, size_t max_len, bool allow_bare_lf)
{
	conn->mode = CONN_READ_LINES;
	conn->line_scanned = 0;
	conn->line_max = max_len;
	conn->allow_bare_lf = allow_bare_lf;
	conn->discarding = false;
	conn_update_read(conn);
	conn_kick(conn);
}

void conn_read_bytes(struct conn *conn, size_t n)
{
	conn->mode = CONN_READ_BYTES;
	conn->line_scanned = 0;
	conn->bytes_left = n;
	conn_update_read(conn);
	conn_kick(conn);
}

void conn_read_raw(struct conn *conn)
{
	conn->mode = CONN_READ_RAW;
	conn->line_scanned = 0;
	conn_update_read(conn);
	conn_kick(conn);
}

void conn_unread(struct conn *conn, const char *data, size_t len)
{
	if (conn->bev == NULL || conn->dead || len == 0)
		return;
	if (evbuffer_prepend(bufferevent_get_input(conn->bev), data, len) < 0) {
		conn_log(conn, LOG_LEVEL_ERROR, "cannot keep %zu unread bytes", len);
		conn_abort(conn);
		return;
	}
	if (conn->mode == CONN_READ_BYTES)
		conn->bytes_left += len;
	conn->line_scanned = 0;
	conn_kick(conn);
}

void conn_pause(struct conn *conn)
{
	conn->paused = true;
	conn_update_read(conn);
}

void conn_resume(struct conn *conn)
{
	conn->paused = false;
	conn_update_read(conn);
	conn_kick(conn);
}

static void conn_check_backpressure(struct conn *conn)
{
	if (conn->bev == NULL)
		return;
	if (!conn->blocked &&
	    evbuffer_get_length(bufferevent_get_output(conn->bev)) > CONN_OUTPUT_HIGH) {
		conn->blocked = true;
		conn_update_read(conn);
	}
}

void conn_write(struct conn *conn, const void *data, size_t len)
{
	if (conn->bev == NULL || conn->dead)
		return;
	bufferevent_write(conn->bev, data, len);
	conn_check_backpressure(conn);
}

static void conn_free_owned(const void *data, size_t len, void *arg)
{
	(void)len;
	(void)arg;
	free((void *)data);
}

void conn_write_owned(struct conn *conn, void *data, size_t len)
{
	if (conn->bev == NULL || conn->dead || len == 0 ||
	    evbuffer_add_reference(bufferevent_get_output(conn->bev), data, len,
				   conn_free_owned, NULL) < 0) {
		free(data);
		return;
	}
	conn_check_backpressure(conn);
}

void conn_printf(struct conn *conn, const char *fmt, ...)
{
	va_list ap;

	if (conn->bev == NULL || conn->dead)
		return;
	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(conn->bev), fmt, ap);
	va_end(ap);
	conn_check_backpressure(conn);
}

/* After STARTTLS or COMPRESS the connection's bufferevent is a filter: its
 * output moves, encrypted or compressed, to the bufferevents underneath,
 * which may still hold it.  Every layer counts. */
size_t conn_output_pending(const struct conn *conn)
{
	size_t n = 0;

	for (struct bufferevent *b = conn->bev; b != NULL; b = bufferevent_get_underlying(b))
		n += evbuffer_get_length(bufferevent_get_output(b));
	return n;
}

/* A closing connection goes once its last byte is out.  The socket
 * bufferevent under a TLS filter tells nobody when it has drained, so
 * that case is polled. */
static void conn_close_progress(struct conn *conn)
{
	struct timeval tv = { 0, CONN_FLUSH_POLL_MS * 1000 };

	if (conn->dead)
		return;
	if (conn_output_pending(conn) == 0) {
		conn_kill(conn);
		return;
	}
	if (bufferevent_get_underlying(conn->bev) != NULL &&
	    evbuffer_get_length(bufferevent_get_output(conn->bev)) == 0)
		event_add(conn->kick_ev, &tv);
}

/* The socket is gone (or must go): free the bufferevent now, and the
 * connection once no callback or job holds it. */
static void conn_kill(struct conn *conn)
{
	if (conn->dead)
		return;
	conn->dead = true;
	if (conn->bev != NULL) {
		bufferevent_free(conn->bev);
		conn->bev = NULL;
	}
	conn_maybe_free(conn);
}

static void conn_maybe_free(struct conn *conn)
{
	if (!conn->dead || conn->in_callback > 0 || conn->jobs > 0)
		return;
	conn_emit(conn, CONN_EV_CLOSED, NULL, 0);
	if (conn->in_callback > 0)
		return;
	server_conn_unlink(conn->srv, conn);
	server_peer_release(conn->srv, conn->peer);
	event_free(conn->kick_ev);
	free(conn);
}

void conn_close(struct conn *conn)
{
	if (conn->closing || conn->dead)
		return;
	conn->closing = true;
	conn_update_read(conn);
	conn_kick(conn); /* teardown from the loop, not inside the caller */
}

void conn_abort(struct conn *conn)
{
	conn->closing = true;
	conn_kill(conn);
}

bool conn_is_closing(const struct conn *conn)
{
	return conn->closing || conn->dead;
}

void conn_set_timeout(struct conn *conn, unsigned seconds)
{
	conn->timeout = seconds;
	conn_apply_timeout(conn);
}

int conn_starttls(struct conn *conn)
{
	struct bufferevent *filter;
	SSL *ssl;

	if (conn->ssl != NULL || conn->zlib != NULL || conn->bev == NULL || conn->dead)
		return -1;
	ssl = tls_server_new_ssl(conn->srv->tls, conn->lcfg->role);
	if (ssl == NULL)
		return -1;
	/* RFC 3207 §4.2: whatever the client sent after STARTTLS was sent
	 * before the handshake and must never be executed (CVE-2011-0411). */
	evbuffer_drain(bufferevent_get_input(conn->bev),
		       evbuffer_get_length(bufferevent_get_input(conn->bev)));
	filter = bufferevent_openssl_filter_new(conn->srv->base, conn->bev, ssl,
						BUFFEREVENT_SSL_ACCEPTING,
						BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (filter == NULL) {
		SSL_free(ssl);
		return -1;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(filter, 1);
	conn->ssl = ssl;
	conn->bev = filter;
	conn->handshaking = true;
	conn->discarding = false;
	conn->line_scanned = 0;
	conn_setup_bev(conn);
	return 0;
}

/* conn_zlib_input() found the client's stream corrupt (inside libevent's
 * filter callback): the connection goes from the loop (conn_process_input). */
static void conn_on_zlib_fail(void *arg)
{
	conn_kick(arg);
}

int conn_compress(struct conn *conn)
{
	struct bufferevent *filter, *under = conn->bev;
	struct conn_zlib *z;

	if (conn->zlib != NULL || conn->bev == NULL || conn->dead || conn->closing ||
	    conn->handshaking)
		return -1;
	z = conn_zlib_new(conn_on_zlib_fail, conn);
	if (z == NULL)
		return -1;
	filter = bufferevent_filter_new(under, conn_zlib_input, conn_zlib_output,
					BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS,
					conn_zlib_free, z);
	if (filter == NULL) {
		conn_zlib_free(z);
		return -1;
	}
	/* The layer underneath now only carries compressed octets: it keeps
	 * no timeout of its own (the filter has the connection's), and holds
	 * little, so that the limits of conn_update_read() and
	 * CONN_OUTPUT_HIGH stay the ones that count (conn_zlib.c). */
	bufferevent_set_timeouts(under, NULL, NULL);
	bufferevent_setwatermark(under, EV_READ, 0, CONN_ZLIB_UNDER_READ_MAX);
	bufferevent_setwatermark(under, EV_WRITE, CONN_ZLIB_UNDER_WRITE_MAX / 2,
				 CONN_ZLIB_UNDER_WRITE_MAX);
	conn->zlib = z;
	conn->bev = filter;
	conn->line_scanned = 0;
	conn_setup_bev(conn);
	conn_kick(conn); /* octets the client sent after the command, compressed */
	return 0;
}

bool conn_is_compressed(const struct conn *conn)
{
	return conn->zlib != NULL;
}

/* The filter holds back what does not fit under the read high-water mark
 * and is not called again unless the client sends more: ask it for more
 * when the connection has used up what it had.  true when it gave some. */
static bool conn_zlib_pull(struct conn *conn, struct evbuffer *input)
{
	size_t before = evbuffer_get_length(input);

	if (conn->zlib == NULL || conn->dead || conn->bev == NULL)
		return false;
	bufferevent_flush(conn->bev, EV_READ, BEV_NORMAL);
	return evbuffer_get_length(input) > before;
}

bool conn_is_tls(const struct conn *conn)
{
	return conn->ssl != NULL && !conn->handshaking;
}

enum tls_mode conn_tls_mode(const struct conn *conn)
{
	return conn->lcfg->tls;
}

void conn_tls_describe(const struct conn *conn, char *out, size_t outlen)
{
	if (conn->ssl == NULL) {
		if (outlen > 0)
			out[0] = '\0';
		return;
	}
	tls_describe(conn->ssl, out, outlen);
}

const char *conn_id(const struct conn *conn)
{
	return conn->id;
}

const char *conn_peer_addr(const struct conn *conn)
{
	return conn->peer;
}

bool conn_peer_is_loopback(const struct conn *conn)
{
	return conn->loopback;
}

bool conn_peer_is_local_socket(const struct conn *conn)
{
	return conn->local_socket;
}

bool conn_peer_is_trusted(const struct conn *conn)
{
	return conn->trusted;
}

unsigned conn_local_port(const struct conn *conn)
{
	return conn->local_port;
}

struct server *conn_server(const struct conn *conn)
{
	return conn->srv;
}

struct conn *conn_next(struct conn *conn)
{
	return conn->next;
}

enum listener_role conn_role(const struct conn *conn)
{
	return conn->lcfg->role;
}

void *conn_session(const struct conn *conn)
{
	return conn->session;
}

void conn_link(struct conn *conn, struct conn **head)
{
	conn->prev = NULL;
	conn->next = *head;
	if (*head != NULL)
		(*head)->prev = conn;
	*head = conn;
}

void conn_unlink(struct conn *conn, struct conn **head)
{
	if (conn->prev != NULL)
		conn->prev->next = conn->next;
	else
		*head = conn->next;
	if (conn->next != NULL)
		conn->next->prev = conn->prev;
	conn->prev = conn->next = NULL;
}

static void conn_job_work(void *arg)
{
	struct conn_job *job = arg;

	job->work(job->arg);
}

static void conn_job_done(void *arg)
{
	struct conn_job *job = arg;
	struct conn *conn = job->conn;

	conn->in_callback++;
	if (job->done != NULL)
		job->done(job->arg);
	conn->in_callback--;
	free(job);
	conn->jobs--;
	conn_maybe_free(conn);
}

int conn_submit(struct conn *conn, worker_work_fn *work, worker_done_fn *done, void *arg)
{
	return conn_submit_kind(conn, WORKER_IO, work, done, arg);
}

int conn_submit_kind(struct conn *conn, enum worker_kind kind, worker_work_fn *work,
		     worker_done_fn *done, void *arg)
{
	struct conn_job *job = malloc(sizeof(*job));

	if (job == NULL)
		return -1;
	job->conn = conn;
	job->work = work;
	job->done = done;
	job->arg = arg;
	if (worker_submit(server_workers_kind(conn->srv, kind), conn_job_work, conn_job_done,
			  job) < 0) {
		free(job);
		return -1;
	}
	conn->jobs++;
	return 0;
}

void conn_log(const struct conn *conn, enum log_level level, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	if (level > log_level_current)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_write(level, conn->id, "%s", text);
}

/* One line from the input, if a whole one is there.  1: an event was
 * delivered, 0: need more input. */
static int conn_take_line(struct conn *conn, struct evbuffer *input)
{
	size_t eol_len = 0, buffered = evbuffer_get_length(input);
	struct evbuffer_ptr p, start;
	char *line;

	/* Resume the search where the last one ended (less one octet, a CR
	 * that may start the CRLF): a client sending a long line one octet at
	 * a time must not make every read rescan it (quadratic). */
	if (conn->line_scanned > 1 && conn->line_scanned <= buffered &&
	    evbuffer_ptr_set(input, &start, conn->line_scanned - 1, EVBUFFER_PTR_SET) == 0)
		p = evbuffer_search_eol(input, &start, &eol_len,
					conn->allow_bare_lf ? EVBUFFER_EOL_CRLF
							    : EVBUFFER_EOL_CRLF_STRICT);
	else
		p = evbuffer_search_eol(input, NULL, &eol_len,
					conn->allow_bare_lf ? EVBUFFER_EOL_CRLF
							    : EVBUFFER_EOL_CRLF_STRICT);
	conn->line_scanned = 0;
	if (p.pos < 0) {
		if (buffered <= conn->line_max + 1) {
			conn->line_scanned = buffered;
			return 0;
		}
		/* Over-long and no end yet: drop what we have, but keep a
		 * trailing CR that may be the start of the CRLF. */
		evbuffer_drain(input, buffered - 1);
		if (!conn->discarding) {
			conn->discarding = true;
			conn_emit(conn, CONN_EV_LINE_TOO_LONG, NULL, 0);
			return 1;
		}
		return 0;
	}
	if (conn->discarding || (size_t)p.pos > conn->line_max) {
		bool report = !conn->discarding;
		evbuffer_drain(input, (size_t)p.pos + eol_len);
		conn->discarding = false;
		if (report)
			conn_emit(conn, CONN_EV_LINE_TOO_LONG, NULL, 0);
		return 1;
	}
	line = malloc((size_t)p.pos + 1);
	if (line == NULL) {
		conn_abort(conn);
		return 0;
	}
	evbuffer_remove(input, line, (size_t)p.pos);
	line[p.pos] = '\0';
	evbuffer_drain(input, eol_len);
	conn_emit(conn, CONN_EV_LINE, line, (size_t)p.pos);
	free(line);
	return 1;
}

static int conn_take_bytes(struct conn *conn, struct evbuffer *input)
{
	char chunk[CONN_READ_CHUNK];
	size_t n = evbuffer_get_length(input);

	if (n == 0)
		return 0;
	if (n > sizeof(chunk))
		n = sizeof(chunk);
	if (conn->mode == CONN_READ_BYTES && n > conn->bytes_left)
		n = (size_t)conn->bytes_left;
	evbuffer_remove(input, chunk, n);
	conn->line_scanned = 0;
	if (conn->mode == CONN_READ_BYTES) {
		conn->bytes_left -= n;
		if (conn->bytes_left == 0)
			conn->mode = CONN_READ_LINES; /* before the event: it may change it */
	}
	conn_emit(conn, CONN_EV_BYTES, chunk, n);
	return 1;
}

static void conn_process_input(struct conn *conn)
{
	unsigned turns = 0;

	if (conn->zlib != NULL && conn_zlib_failed(conn->zlib) && !conn->dead) {
		conn_log(conn, LOG_LEVEL_INFO, "compressed input is corrupt rip=%s", conn->peer);
		conn_kill(conn); /* may free conn: nothing below runs */
		return;
	}
	conn->in_callback++;
	while (!conn->dead && conn->bev != NULL && !conn->paused && !conn->blocked &&
	       !conn->closing && !conn->handshaking) {
		struct evbuffer *input = bufferevent_get_input(conn->bev);
		int rc;

		if (++turns > CONN_EVENTS_PER_TURN) {
			conn_kick(conn); /* let other connections run */
			break;
		}
		if (conn->mode == CONN_READ_LINES)
			rc = conn_take_line(conn, input);
		else if (conn->mode == CONN_READ_BYTES && conn->bytes_left == 0) {
			conn->mode = CONN_READ_LINES;
			rc = 1;
		} else
			rc = conn_take_bytes(conn, input);
		if (rc == 0 && !conn_zlib_pull(conn, input))
			break;
	}
	conn->in_callback--;
	if (conn->closing && !conn->dead)
		conn_close_progress(conn);
	else
		conn_maybe_free(conn);
}

static void conn_on_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_process_input(arg);
}

static void conn_on_write(struct bufferevent *bev, void *arg)
{
	struct conn *conn = arg;

	(void)bev;
	if (conn->closing) {
		conn_close_progress(conn);
		return;
	}
	if (conn->blocked) {
		conn->blocked = false;
		conn_update_read(conn);
		conn_kick(conn);
	}
	conn->in_callback++;
	conn_emit(conn, CONN_EV_DRAINED, NULL, 0);
	conn->in_callback--;
	conn_maybe_free(conn);
}

static void conn_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *conn = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		if (conn->handshaking) {
			conn->handshaking = false;
			conn->in_callback++;
			conn_emit(conn, CONN_EV_TLS_READY, NULL, 0);
			conn->in_callback--;
			conn_kick(conn);
			conn_maybe_free(conn);
		}
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if ((what & BEV_EVENT_WRITING) || conn->closing) {
			/* A client that does not read its output for the whole
			 * timeout is gone for us. */
			conn_kill(conn);
			return;
		}
		conn->in_callback++;
		conn_emit(conn, CONN_EV_TIMEOUT, NULL, 0);
		conn->in_callback--;
		if (!conn->closing && !conn->dead)
			conn_update_read(conn); /* libevent disabled reading */
		if (conn->closing && !conn->dead)
			conn_close_progress(conn);
		else
			conn_maybe_free(conn);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e = bufferevent_get_openssl_error(conn->bev);
		if (e != 0 && ERR_GET_REASON(e) != SSL_R_UNEXPECTED_EOF_WHILE_READING) {
			char reason[160];
			ERR_error_string_n(e, reason, sizeof(reason));
			conn_log(conn, LOG_LEVEL_INFO, "tls error rip=%s: %s", conn->peer, reason);
		}
	}
	/* EOF or error: the peer is gone. */
	conn_kill(conn);
}
