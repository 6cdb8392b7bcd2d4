/* evhttp's connections counted in connections_max, as every other
 * listener's are (core/server.c), and refused over it.
 *
 * evhttp accepts on the listeners it took over (server_take_listeners)
 * and tells us of a new connection only through its bufferevent callback
 * (http_on_connection), before the socket is set, and of nothing when it
 * frees one.  libevent 2.1 has no connection limit of its own
 * (evhttp_set_max_connections came with 2.2).  So:
 *   - each bufferevent we hand out is held (bufferevent_incref) in a table
 *     and counted with server_conn_reserve(), or marked refused when the
 *     limit is reached;
 *   - right after the accept (an event activated from the callback, run
 *     in the same loop round once evhttp has set the socket and before it
 *     reads anything), a refused connection gets "503 Service
 *     Unavailable" on plain HTTP, or nothing on TLS (a TLS client would
 *     read the text as a broken handshake: server_refuse() does the same),
 *     and its socket is shut down, so evhttp sees the end and frees it;
 *   - evhttp frees a connection with bufferevent_free(), which clears the
 *     callbacks; every HTTP_CONNS_SWEEP_MS (and whenever the table is
 *     full) such entries are released (server_conn_release) and let go
 *     (bufferevent_decref: the socket closes then).
 * A connection thus stays counted up to HTTP_CONNS_SWEEP_MS after it
 * ends.  When the table is full even after a sweep, a connection is
 * served without being counted (logged); the table holds at most
 * connections_max counted entries plus HTTP_CONNS_REFUSED_MAX refused
 * ones waiting for their sweep.
 */
#include "http_private.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"
#include "server.h"

#define HTTP_CONNS_SWEEP_MS 250
#define HTTP_CONNS_REFUSED_MAX 4096 /* refused connections not yet swept */
#define HTTP_BUSY_REPLY "HTTP/1.1 503 Service Unavailable\r\n" \
			"Content-Type: text/plain; charset=utf-8\r\n" \
			"Content-Length: 22\r\nRetry-After: 5\r\nConnection: close\r\n\r\n" \
			"Too many connections\r\n"

struct http_conn {
	struct bufferevent *bev;  /* held: one reference of ours */
	bool counted;             /* server_conn_reserve() said yes */
	bool tls;                 /* on an implicit TLS listener */
};

struct http_conns {
	struct server *srv;
	unsigned connections_max;
	struct http_conn *v;
	size_t n, cap;
	size_t resolved;          /* v[resolved..n) are new since the last
				   * resolve (http_conns_resolve) */
	struct event *resolve_ev; /* activated by each new connection */
	struct event *sweep_ev;   /* every HTTP_CONNS_SWEEP_MS */
};

/* evhttp freed it: bufferevent_free() cleared the callbacks. */
static bool http_conn_gone(const struct http_conn *c)
{
	bufferevent_data_cb readcb = NULL;

	bufferevent_getcb(c->bev, &readcb, NULL, NULL, NULL);
	return readcb == NULL;
}

/* Let go of the connections evhttp has freed. */
static void http_conns_sweep(struct http_conns *cs)
{
	size_t kept = 0, resolved = 0;

	for (size_t i = 0; i < cs->n; i++) {
		struct http_conn *c = &cs->v[i];
		if (!http_conn_gone(c)) {
			resolved += i < cs->resolved;
			cs->v[kept++] = *c;
			continue;
		}
		if (c->counted)
			server_conn_release(cs->srv);
		bufferevent_decref(c->bev);
	}
	cs->n = kept;
	cs->resolved = resolved;
}

static void http_conns_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	http_conns_sweep(arg);
}

/* The refusal, once evhttp has set the socket. */
static void http_conn_refuse(const struct http_conn *c)
{
	evutil_socket_t fd = bufferevent_getfd(c->bev);

	if (fd < 0 || http_conn_gone(c))
		return;
	log_warn("http connection refused: connections_max reached");
	if (!c->tls)
		(void)!send(fd, HTTP_BUSY_REPLY, strlen(HTTP_BUSY_REPLY),
			    MSG_DONTWAIT | MSG_NOSIGNAL);
	/* evhttp reads the end and frees the connection */
	shutdown(fd, SHUT_RDWR);
}

static void http_conns_resolve(evutil_socket_t fd, short what, void *arg)
{
	struct http_conns *cs = arg;

	(void)fd;
	(void)what;
	for (size_t i = cs->resolved; i < cs->n; i++)
		if (!cs->v[i].counted)
			http_conn_refuse(&cs->v[i]);
	cs->resolved = cs->n;
}

struct http_conns *http_conns_new(struct server *srv)
{
	struct http_conns *cs = calloc(1, sizeof(*cs));
	struct timeval tv = { 0, HTTP_CONNS_SWEEP_MS * 1000 };

	if (cs == NULL)
		return NULL;
	cs->srv = srv;
	cs->connections_max = server_config(srv)->connections_max;
	cs->resolve_ev = event_new(server_event_base(srv), -1, 0, http_conns_resolve, cs);
	cs->sweep_ev = event_new(server_event_base(srv), -1, EV_PERSIST, http_conns_sweep_cb, cs);
	if (cs->resolve_ev == NULL || cs->sweep_ev == NULL || event_add(cs->sweep_ev, &tv) < 0) {
		http_conns_free(cs);
		return NULL;
	}
	return cs;
}

/* Room for one more entry; false when the table is at its bound. */
static bool http_conns_room(struct http_conns *cs)
{
	size_t bound = (size_t)cs->connections_max + HTTP_CONNS_REFUSED_MAX, cap;
	struct http_conn *v;

	if (cs->n == bound)
		http_conns_sweep(cs);
	if (cs->n == bound)
		return false;
	if (cs->n < cs->cap)
		return true;
	cap = cs->cap == 0 ? 64 : cs->cap * 2;
	if (cap > bound)
		cap = bound;
	v = realloc(cs->v, cap * sizeof(*v));
	if (v == NULL)
		return false;
	cs->v = v;
	cs->cap = cap;
	return true;
}

void http_conns_add(struct http_conns *cs, struct bufferevent *bev, bool tls)
{
	struct http_conn *c;

	if (!http_conns_room(cs)) {
		log_warn("http connection not counted: no room to track it");
		return;
	}
	c = &cs->v[cs->n++];
	c->bev = bev;
	c->tls = tls;
	c->counted = server_conn_reserve(cs->srv);
	bufferevent_incref(bev);
	if (!c->counted)
		event_active(cs->resolve_ev, EV_TIMEOUT, 0);
	else
		cs->resolved += cs->resolved == cs->n - 1; /* nothing to do later */
}

void http_conns_free(struct http_conns *cs)
{
	if (cs == NULL)
		return;
	/* after evhttp_free(): every connection is freed, ours the last
	 * reference */
	for (size_t i = 0; i < cs->n; i++)
		bufferevent_decref(cs->v[i].bev);
	if (cs->resolve_ev != NULL)
		event_free(cs->resolve_ev);
	if (cs->sweep_ev != NULL)
		event_free(cs->sweep_ev);
	free(cs->v);
	free(cs);
}
