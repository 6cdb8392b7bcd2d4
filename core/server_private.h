/* Shared between server.c and conn.c only. */
#ifndef CORE_SERVER_PRIVATE_H
#define CORE_SERVER_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>

#include "server.h"

struct evconnlistener;
struct event;

#define SERVER_RELOAD_HOOKS_MAX 8
#define SERVER_FREE_HOOKS_MAX 8
#define SERVER_PERIODIC_MAX 4
#define SERVER_PEER_BUCKETS 4096

struct server_listener {
	struct server *srv;
	struct evconnlistener *lev;
	const struct config_listener *cfg;
};

struct server_peer {
	struct server_peer *next;
	unsigned count;
	char addr[64];
};

struct server {
	struct config cfg;
	struct event_base *base;
	struct worker_pool *workers;      /* WORKER_IO */
	struct worker_pool *auth_workers; /* WORKER_AUTH */
	struct worker_pool *dns_workers;  /* WORKER_DNS */
	struct tls_server *tls;
	struct tls_tickets *tickets; /* shared by every tls_server, kept across reloads */
	struct privsep *privsep;     /* the caller's; NULL: read files directly */
	struct server_protocol protocols[ROLE_COUNT];
	bool has_protocol[ROLE_COUNT];
	struct server_listener listeners[CONFIG_LISTENERS_MAX];
	size_t n_listeners;

	struct conn *conns; /* every live connection, doubly linked */
	size_t n_conns;
	size_t n_external; /* connections a protocol accepts itself (evhttp's):
			    * in connections_max, not in the graceful stop */
	struct server_peer *peers[SERVER_PEER_BUCKETS];
	unsigned next_conn_id;

	struct event *sig_term, *sig_int, *sig_hup, *stop_timer;
	bool stopping;
	time_t stop_deadline;
	struct {
		void (*fn)(void *arg);
		void *arg;
	} reload_hooks[SERVER_RELOAD_HOOKS_MAX];
	size_t n_reload_hooks;
	struct {
		void (*fn)(void *arg);
		void *arg;
	} free_hooks[SERVER_FREE_HOOKS_MAX];
	size_t n_free_hooks;
	struct server_periodic {
		struct server *srv;
		struct event *ev;
		void (*fn)(void *arg);
		void *arg;
		bool busy;
	} periodic[SERVER_PERIODIC_MAX];
	size_t n_periodic;
};

/* conn.c: a new connection on fd, or NULL (fd closed). */
struct conn *conn_new(struct server *srv, int fd, const struct sockaddr *sa,
		      int salen, const struct config_listener *lcfg);
/* conn.c: close now without flushing (shutdown deadline). */
void conn_abort(struct conn *conn);
struct conn *conn_next(struct conn *conn);
enum listener_role conn_role(const struct conn *conn);
void conn_link(struct conn *conn, struct conn **head);
void conn_unlink(struct conn *conn, struct conn **head);
void *conn_session(const struct conn *conn);

/* server.c: per-address accounting used by conn.c. */
void server_peer_release(struct server *srv, const char *addr);
void server_conn_unlink(struct server *srv, struct conn *conn);

#endif
