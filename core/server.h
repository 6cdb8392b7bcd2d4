/* The daemon: one libevent loop, the listeners, connection limits, signals
 * (SIGTERM/SIGINT graceful stop, SIGHUP reload), privilege drop. */
#ifndef CORE_SERVER_H
#define CORE_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "conn.h"
#include "tls.h"
#include "worker.h"

struct event_base;
struct server;

/* A protocol plugs in with these.  accept() is called for every new
 * connection of a listener with this role (for implicit TLS the handshake
 * then runs before anything written reaches the client) and must call
 * conn_set_handler() and queue its greeting. */
struct server_protocol {
	const char *name; /* "smtp", "imap", "pop3" for logs */
	void (*accept)(struct conn *conn, enum listener_role role, void *ctx);
	/* On SIGTERM, and again every SERVER_STOP_POLL_MS until the deadline:
	 * say goodbye and conn_close() when no transaction is in flight.
	 * Without it, connections are closed at once. */
	void (*stop)(struct conn *conn, void *session);
	/* Optional: on SIGHUP, after certificates were reloaded. */
	void (*reload)(void *ctx);
	/* Sent on plaintext listeners when a connection limit refuses a
	 * client, e.g. "421 4.7.0 Too many connections\r\n". */
	const char *busy_reply;
	void *ctx;
};

#define SERVER_STOP_POLL_MS 200

/* Creates the loop, the worker pools (one per enum worker_kind) and TLS
 * contexts; binds nothing yet. */
struct server *server_new(const struct config *cfg, char *err, size_t errlen);
void server_free(struct server *srv);

void server_set_protocol(struct server *srv, enum listener_role role,
			 const struct server_protocol *proto);
/* Binds every configured listener whose role is in role_mask (bit 1<<role:
 * the protocols this build has).  Binding comes before the privilege drop,
 * registering protocols may come after it: connections are accepted only
 * once the loop runs.  -1 with err naming the address and port
 * ("127.0.0.1:25: Address already in use"). */
#define SERVER_ROLES_ALL ((1u << ROLE_COUNT) - 1)
int server_listen(struct server *srv, unsigned role_mask, char *err, size_t errlen);
/* Hand every bound listener of this role to fn, which takes it over (its
 * callback, its freeing): a protocol with its own connection handling,
 * such as evhttp's, accepts on it.  Such connections are not closed by
 * the graceful stop (the protocol frees them in its server_on_free()
 * hook); the protocol counts them in connections_max with
 * server_conn_reserve().  0, or fn's -1. */
struct evconnlistener;
int server_take_listeners(struct server *srv, enum listener_role role,
			  int (*fn)(struct evconnlistener *lev,
				    const struct config_listener *lcfg, void *arg),
			  void *arg);
/* A connection a protocol accepted itself (server_take_listeners) counts
 * in connections_max with every other one: true when it may stay, false
 * when the limit is reached (refuse it; nothing was counted).  Each true
 * gets one server_conn_release() when the connection is gone. */
bool server_conn_reserve(struct server *srv);
void server_conn_release(struct server *srv);
/* Drop to cfg->run_as_user when running as root; -1 with err. */
int server_drop_privileges(struct server *srv, char *err, size_t errlen);
/* setgroups/setgid/setuid to user (for CLI commands run as root). */
int server_drop_privileges_to(const char *user, char *err, size_t errlen);
/* Certificates and keys are read with ps's help on SIGHUP (privsep.h);
 * the caller keeps ps until server_free().  NULL (the default): directly. */
struct privsep;
void server_set_privsep(struct server *srv, struct privsep *ps);
/* fn(arg) runs on a worker thread every `seconds` (store upkeep).  At most
 * SERVER_PERIODIC_MAX; a run is skipped while the previous one is busy. */
int server_every(struct server *srv, unsigned seconds, void (*fn)(void *arg), void *arg);
/* fn(arg) runs in server_free(), after every connection is gone: a
 * protocol frees its context there. */
void server_on_free(struct server *srv, void (*fn)(void *arg), void *arg);
/* Called on SIGHUP after certificates are reloaded (users file watchers). */
void server_on_reload(struct server *srv, void (*fn)(void *arg), void *arg);
/* Run until SIGTERM/SIGINT and the graceful stop; returns 0 or -1. */
int server_run(struct server *srv);

const struct config *server_config(const struct server *srv);
/* The TLS contexts in use (replaced on SIGHUP); NULL without certificates. */
struct tls_server *server_tls(struct server *srv);
struct event_base *server_event_base(struct server *srv);
/* The WORKER_IO pool (server_workers_kind(srv, WORKER_IO)). */
struct worker_pool *server_workers(struct server *srv);
/* The pool for one kind of work; the server owns one per kind. */
struct worker_pool *server_workers_kind(struct server *srv, enum worker_kind kind);

#endif
