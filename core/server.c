/* The daemon's frame: listeners on IPv4 and IPv6 (and unix sockets for
 * LMTP), connection limits in total and per client address, signals,
 * graceful stop, privilege drop.
 *
 * A unix socket listener (address = unix:/path) is created at start-up
 * while still root: a stale socket file left by a crash is replaced, but
 * one that a live server answers on is not ("in use"); the socket gets the
 * listener's mode and, when we drop privileges, run_as_user as owner.  It
 * is removed when the listeners close (stop); sandbox.c lets the daemon
 * remove files in the socket's directory for that. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "server_private.h"
#include "util.h"

#define SERVER_LISTEN_BACKLOG 511

static unsigned server_peer_hash(const char *addr)
{
	unsigned h = 2166136261u; /* FNV-1a */

	for (; *addr != '\0'; addr++)
		h = (h ^ (unsigned char)*addr) * 16777619u;
	return h % SERVER_PEER_BUCKETS;
}

static struct server_peer *server_peer_find(struct server *srv, const char *addr)
{
	for (struct server_peer *p = srv->peers[server_peer_hash(addr)]; p != NULL; p = p->next)
		if (strcmp(p->addr, addr) == 0)
			return p;
	return NULL;
}

/* Count one more connection from addr; -1 when over the per-address limit.
 * Trusted networks are counted but never refused (Postfix exempts
 * mynetworks the same way): a webmail or relay on this host opens many. */
static int server_peer_acquire(struct server *srv, const char *addr, bool trusted)
{
	struct server_peer *p = server_peer_find(srv, addr);

	if (p == NULL) {
		unsigned h = server_peer_hash(addr);
		p = calloc(1, sizeof(*p));
		if (p == NULL)
			return -1;
		str_copy(p->addr, addr, sizeof(p->addr));
		p->next = srv->peers[h];
		srv->peers[h] = p;
	}
	if (p->count >= srv->cfg.connections_per_ip_max && !trusted)
		return -1;
	p->count++;
	return 0;
}

void server_peer_release(struct server *srv, const char *addr)
{
	unsigned h = server_peer_hash(addr);
	struct server_peer **pp = &srv->peers[h];

	for (; *pp != NULL; pp = &(*pp)->next) {
		struct server_peer *p = *pp;
		if (strcmp(p->addr, addr) != 0)
			continue;
		if (p->count > 0)
			p->count--;
		if (p->count == 0) {
			*pp = p->next;
			free(p);
		}
		return;
	}
}

bool server_conn_reserve(struct server *srv)
{
	if (srv->n_conns + srv->n_external >= srv->cfg.connections_max)
		return false;
	srv->n_external++;
	return true;
}

void server_conn_release(struct server *srv)
{
	if (srv->n_external > 0)
		srv->n_external--;
}

void server_conn_unlink(struct server *srv, struct conn *conn)
{
	conn_unlink(conn, &srv->conns);
	srv->n_conns--;
}

static void server_refuse(int fd, const struct config_listener *lcfg,
			  const struct server_protocol *proto)
{
	/* A TLS client would read the text as a broken handshake: just close. */
	if (lcfg->tls != TLS_MODE_IMPLICIT && proto->busy_reply != NULL)
		(void)!send(fd, proto->busy_reply, strlen(proto->busy_reply), MSG_DONTWAIT | MSG_NOSIGNAL);
	evutil_closesocket(fd);
}

static void server_on_accept(struct evconnlistener *lev, evutil_socket_t fd,
			     struct sockaddr *sa, int salen, void *arg)
{
	struct server_listener *l = arg;
	struct server *srv = l->srv;
	const struct server_protocol *proto = &srv->protocols[l->cfg->role];
	struct conn *conn;
	char peer[64] = "";

	(void)lev;
	if (sa->sa_family == AF_UNIX)
		str_copy(peer, CONN_PEER_LOCAL, sizeof(peer));
	else if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, peer, sizeof(peer));
	else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], peer, sizeof(peer));
		else
			inet_ntop(AF_INET6, &in6->sin6_addr, peer, sizeof(peer));
	}
	if (srv->stopping || !srv->has_protocol[l->cfg->role]) {
		evutil_closesocket(fd);
		return;
	}
	if (srv->n_conns + srv->n_external >= srv->cfg.connections_max) {
		log_warn("%s connection refused rip=%s: connections_max (%u) reached",
			 proto->name, peer, srv->cfg.connections_max);
		server_refuse(fd, l->cfg, proto);
		return;
	}
	if (server_peer_acquire(srv, peer, sa->sa_family == AF_UNIX ||
				config_addr_is_trusted(&srv->cfg, sa)) < 0) {
		log_warn("%s connection refused rip=%s: connections_per_ip_max (%u) reached",
			 proto->name, peer, srv->cfg.connections_per_ip_max);
		server_refuse(fd, l->cfg, proto);
		return;
	}
	conn = conn_new(srv, fd, sa, salen, l->cfg);
	if (conn == NULL) {
		server_peer_release(srv, peer);
		return;
	}
	conn_link(conn, &srv->conns);
	srv->n_conns++;
	metrics_connection(l->cfg->role);
	conn_log(conn, LOG_LEVEL_DEBUG, "%s connect rip=%s lport=%u", proto->name,
		 conn_peer_addr(conn), conn_local_port(conn));
	proto->accept(conn, l->cfg->role, proto->ctx);
}

/* A socket file at path that no server answers on (ECONNREFUSED) is a
 * leftover of a crash and may be replaced; anything else is not ours. */
static bool server_unix_stale(const struct sockaddr_un *un)
{
	struct stat st;
	int fd;
	bool stale;

	if (lstat(un->sun_path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return false;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	stale = connect(fd, (const struct sockaddr *)un, sizeof(*un)) < 0 && errno == ECONNREFUSED;
	close(fd);
	return stale;
}

/* The socket file belongs to run_as_user when we are root and will drop to
 * it, as every file the daemon makes later does; its permissions are the
 * listener's mode (who may connect).  0 or -1. */
static int server_unix_own(const struct server *srv, const struct config_listener *lcfg)
{
	if (geteuid() == 0 && srv->cfg.run_as_user[0] != '\0') {
		struct passwd *pw = getpwnam(srv->cfg.run_as_user);
		if (pw == NULL || chown(lcfg->unix_path, pw->pw_uid, pw->pw_gid) < 0)
			return -1;
	}
	return chmod(lcfg->unix_path, lcfg->mode);
}

static int server_bind_unix(const struct server *srv, const struct config_listener *lcfg,
			    char *err, size_t errlen)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	int fd;

	str_copy(un.sun_path, lcfg->unix_path, sizeof(un.sun_path));
	if (server_unix_stale(&un))
		(void)unlink(un.sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (bind(fd, (struct sockaddr *)&un, sizeof(un)) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		goto fail;
	}
	if (server_unix_own(srv, lcfg) < 0 || listen(fd, SERVER_LISTEN_BACKLOG) < 0) {
		int saved = errno;
		close(fd);
		(void)unlink(un.sun_path);
		errno = saved;
		goto fail;
	}
	return fd;
fail:
	snprintf(err, errlen, "unix:%s: %s", lcfg->unix_path,
		 errno == EADDRINUSE ? "in use (another server answers on it, or it is not "
		 "a socket)" : strerror(errno));
	return -1;
}

static int server_bind(const struct config_listener *lcfg, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	int fd, one = 1, zero = 0;
	bool any = strcmp(lcfg->address, "*") == 0;

	memset(&ss, 0, sizeof(ss));
	if (any || strchr(lcfg->address, ':') != NULL) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(lcfg->port);
		if (any)
			in6->sin6_addr = in6addr_any;
		else if (inet_pton(AF_INET6, lcfg->address, &in6->sin6_addr) != 1)
			goto bad_addr;
		sslen = sizeof(*in6);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		in->sin_port = htons(lcfg->port);
		if (inet_pton(AF_INET, lcfg->address, &in->sin_addr) != 1)
			goto bad_addr;
		sslen = sizeof(*in);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 && any && errno == EAFNOSUPPORT) {
		/* A kernel without IPv6: "*" falls back to IPv4 only. */
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		memset(&ss, 0, sizeof(ss));
		in->sin_family = AF_INET;
		in->sin_port = htons(lcfg->port);
		in->sin_addr.s_addr = htonl(INADDR_ANY);
		sslen = sizeof(*in);
		any = false;
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	}
	if (fd < 0)
		goto sys_fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (any) /* one socket for IPv4 and IPv6 */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	else if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sslen) < 0 ||
	    listen(fd, SERVER_LISTEN_BACKLOG) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		goto sys_fail;
	}
	return fd;
bad_addr:
	snprintf(err, errlen, "%s:%u: invalid address", lcfg->address, lcfg->port);
	return -1;
sys_fail:
	snprintf(err, errlen, "%s%s%s:%u: %s", strchr(lcfg->address, ':') ? "[" : "",
		 lcfg->address, strchr(lcfg->address, ':') ? "]" : "", lcfg->port, strerror(errno));
	return -1;
}

static void server_on_signal(evutil_socket_t sig, short what, void *arg);

/* Every connection is a descriptor: take the hard limit, so that
 * connections_max and not a default of 1024 is what limits us. */
static void server_raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

struct server *server_new(const struct config *cfg, char *err, size_t errlen)
{
	static bool threads_ready;
	struct server *srv;

	if (!threads_ready) {
		/* Worker completions activate events from other threads. */
		if (evthread_use_pthreads() < 0) {
			snprintf(err, errlen, "libevent: no thread support");
			return NULL;
		}
		threads_ready = true;
	}
	signal(SIGPIPE, SIG_IGN); /* LIBRARIES.md §3: a closed peer must not kill us */
	server_raise_fd_limit();
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	srv->cfg = *cfg;
	if (random_bytes(&srv->next_conn_id, sizeof(srv->next_conn_id)) < 0)
		srv->next_conn_id = (unsigned)getpid() << 16;
	srv->base = event_base_new();
	if (srv->base == NULL) {
		snprintf(err, errlen, "libevent: cannot create event base");
		goto fail;
	}
	srv->workers = worker_pool_new(srv->base, WORKER_IO_THREADS);
	srv->auth_workers = worker_pool_new(srv->base, WORKER_AUTH_THREADS);
	srv->dns_workers = worker_pool_new(srv->base, WORKER_DNS_THREADS);
	if (srv->workers == NULL || srv->auth_workers == NULL || srv->dns_workers == NULL) {
		snprintf(err, errlen, "cannot start worker threads");
		goto fail;
	}
	srv->tickets = tls_tickets_new();
	if (srv->tickets == NULL) {
		snprintf(err, errlen, "no random bytes for TLS session ticket keys");
		goto fail;
	}
	if (cfg->n_certs > 0) {
		srv->tls = tls_server_new(cfg, srv->tickets, NULL, err, errlen);
		if (srv->tls == NULL)
			goto fail;
	}
	srv->sig_term = evsignal_new(srv->base, SIGTERM, server_on_signal, srv);
	srv->sig_int = evsignal_new(srv->base, SIGINT, server_on_signal, srv);
	srv->sig_hup = evsignal_new(srv->base, SIGHUP, server_on_signal, srv);
	if (srv->sig_term == NULL || srv->sig_int == NULL || srv->sig_hup == NULL ||
	    evsignal_add(srv->sig_term, NULL) < 0 || evsignal_add(srv->sig_int, NULL) < 0 ||
	    evsignal_add(srv->sig_hup, NULL) < 0) {
		snprintf(err, errlen, "libevent: cannot install signal handlers");
		goto fail;
	}
	return srv;
fail:
	server_free(srv);
	return NULL;
}

/* Close every connection now.  One with a worker job in flight stays
 * allocated (and listed) until the job's done() has run. */
static void server_abort_all(struct server *srv)
{
	for (struct conn *c = srv->conns, *next; c != NULL; c = next) {
		next = conn_next(c);
		conn_abort(c);
	}
}

static void server_close_listeners(struct server *srv)
{
	for (size_t i = 0; i < srv->n_listeners; i++) {
		struct server_listener *l = &srv->listeners[i];
		if (l->lev == NULL)
			continue;
		evconnlistener_free(l->lev);
		l->lev = NULL;
		if (l->cfg->unix_path[0] != '\0' && unlink(l->cfg->unix_path) < 0)
			log_warn("listener %s: cannot remove %s: %s", l->cfg->name,
				 l->cfg->unix_path, strerror(errno));
	}
}

void server_free(struct server *srv)
{
	if (srv == NULL)
		return;
	server_close_listeners(srv);
	server_abort_all(srv);
	/* Jobs still running finish; their done() frees the last connections.
	 * A login's done() may queue IO work (POP3's snapshot), so the AUTH
	 * pool goes first; anything submitted to it afterwards runs on the
	 * IO pool (server_workers_kind()).  The DNS pool's done() queues the
	 * delivery of a checked message on the IO pool, so it goes first. */
	worker_pool_free(srv->dns_workers);
	srv->dns_workers = NULL;
	worker_pool_free(srv->auth_workers);
	srv->auth_workers = NULL;
	worker_pool_free(srv->workers);
	for (size_t i = 0; i < srv->n_periodic; i++)
		event_free(srv->periodic[i].ev);
	for (size_t i = srv->n_free_hooks; i > 0; i--)
		srv->free_hooks[i - 1].fn(srv->free_hooks[i - 1].arg);
	if (srv->sig_term != NULL)
		event_free(srv->sig_term);
	if (srv->sig_int != NULL)
		event_free(srv->sig_int);
	if (srv->sig_hup != NULL)
		event_free(srv->sig_hup);
	if (srv->stop_timer != NULL)
		event_free(srv->stop_timer);
	tls_server_free(srv->tls);
	tls_tickets_free(srv->tickets);
	for (size_t i = 0; i < SERVER_PEER_BUCKETS; i++)
		while (srv->peers[i] != NULL) {
			struct server_peer *next = srv->peers[i]->next;
			free(srv->peers[i]);
			srv->peers[i] = next;
		}
	if (srv->base != NULL)
		event_base_free(srv->base);
	free(srv);
}

void server_set_protocol(struct server *srv, enum listener_role role,
			 const struct server_protocol *proto)
{
	srv->protocols[role] = *proto;
	srv->has_protocol[role] = true;
}

int server_listen(struct server *srv, unsigned role_mask, char *err, size_t errlen)
{
	for (size_t i = 0; i < srv->cfg.n_listeners; i++) {
		const struct config_listener *lcfg = &srv->cfg.listeners[i];
		struct server_listener *l;
		int fd;

		if (!(role_mask & (1u << lcfg->role))) {
			log_warn("listener %s (%s) skipped: protocol not available yet",
				 lcfg->name, config_role_name(lcfg->role));
			continue;
		}
		if (lcfg->tls != TLS_MODE_NONE && !tls_server_has_certificate(srv->tls)) {
			snprintf(err, errlen, "listener %s: TLS needs a tls_certificate", lcfg->name);
			return -1;
		}
		fd = lcfg->unix_path[0] != '\0' ? server_bind_unix(srv, lcfg, err, errlen) :
						    server_bind(lcfg, err, errlen);
		if (fd < 0)
			return -1;
		l = &srv->listeners[srv->n_listeners];
		l->srv = srv;
		l->cfg = lcfg;
		l->lev = evconnlistener_new(srv->base, server_on_accept, l,
					    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
		if (l->lev == NULL) {
			close(fd);
			snprintf(err, errlen, "%s:%u: cannot listen", lcfg->address, lcfg->port);
			return -1;
		}
		srv->n_listeners++;
		log_info("listening role=%s addr=%s%s%s port=%u tls=%s", config_role_name(lcfg->role),
			 lcfg->address, lcfg->unix_path[0] != '\0' ? ":" : "", lcfg->unix_path,
			 lcfg->port,
			 lcfg->tls == TLS_MODE_IMPLICIT ? "implicit" :
			 lcfg->tls == TLS_MODE_STARTTLS ? "starttls" : "none");
	}
	return 0;
}

int server_take_listeners(struct server *srv, enum listener_role role,
			  int (*fn)(struct evconnlistener *lev,
				    const struct config_listener *lcfg, void *arg),
			  void *arg)
{
	for (size_t i = 0; i < srv->n_listeners; i++) {
		struct server_listener *l = &srv->listeners[i];
		if (l->lev == NULL || l->cfg->role != role)
			continue;
		if (fn(l->lev, l->cfg, arg) < 0)
			return -1;
		l->lev = NULL; /* fn's now */
	}
	return 0;
}

int server_drop_privileges_to(const char *user, char *err, size_t errlen)
{
	struct passwd *pw = getpwnam(user);

	if (pw == NULL) {
		snprintf(err, errlen, "run_as_user '%s' does not exist", user);
		return -1;
	}
	if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
		snprintf(err, errlen, "cannot become %s: %s", user, strerror(errno));
		return -1;
	}
	if (pw->pw_uid != 0 && setuid(0) == 0) { /* must be impossible now */
		snprintf(err, errlen, "privilege drop to %s did not stick", user);
		return -1;
	}
	return 0;
}

int server_drop_privileges(struct server *srv, char *err, size_t errlen)
{
	if (geteuid() != 0)
		return 0;
	if (srv->cfg.run_as_user[0] == '\0') {
		log_warn("running as root: set run_as_user to drop privileges");
		return 0;
	}
	if (server_drop_privileges_to(srv->cfg.run_as_user, err, errlen) < 0)
		return -1;
	log_info("running as user=%s uid=%u", srv->cfg.run_as_user, (unsigned)getuid());
	return 0;
}

void server_set_privsep(struct server *srv, struct privsep *ps)
{
	srv->privsep = ps;
}

static void server_periodic_work(void *arg)
{
	struct server_periodic *p = arg;

	p->fn(p->arg);
}

static void server_periodic_done(void *arg)
{
	struct server_periodic *p = arg;

	p->busy = false;
}

static void server_on_periodic(evutil_socket_t fd, short what, void *arg)
{
	struct server_periodic *p = arg;

	(void)fd;
	(void)what;
	if (p->busy || p->srv->stopping)
		return;
	if (worker_submit(p->srv->workers, server_periodic_work, server_periodic_done, p) == 0)
		p->busy = true;
}

int server_every(struct server *srv, unsigned seconds, void (*fn)(void *arg), void *arg)
{
	struct server_periodic *p;
	struct timeval tv = { .tv_sec = seconds, .tv_usec = 0 };

	if (srv->n_periodic >= SERVER_PERIODIC_MAX)
		return -1;
	p = &srv->periodic[srv->n_periodic];
	p->srv = srv;
	p->fn = fn;
	p->arg = arg;
	p->ev = event_new(srv->base, -1, EV_PERSIST, server_on_periodic, p);
	if (p->ev == NULL || event_add(p->ev, &tv) < 0) {
		if (p->ev != NULL)
			event_free(p->ev);
		p->ev = NULL;
		return -1;
	}
	srv->n_periodic++;
	return 0;
}

void server_on_free(struct server *srv, void (*fn)(void *arg), void *arg)
{
	if (srv->n_free_hooks < SERVER_FREE_HOOKS_MAX) {
		srv->free_hooks[srv->n_free_hooks].fn = fn;
		srv->free_hooks[srv->n_free_hooks].arg = arg;
		srv->n_free_hooks++;
	} else {
		log_error("server: too many free hooks");
	}
}

void server_on_reload(struct server *srv, void (*fn)(void *arg), void *arg)
{
	if (srv->n_reload_hooks < SERVER_RELOAD_HOOKS_MAX) {
		srv->reload_hooks[srv->n_reload_hooks].fn = fn;
		srv->reload_hooks[srv->n_reload_hooks].arg = arg;
		srv->n_reload_hooks++;
	}
}

static void server_reload(struct server *srv)
{
	char err[CONFIG_ERROR_MAX];

	(void)notify_systemd("RELOADING=1");
	if (srv->cfg.n_certs > 0) {
		struct tls_server *tls = tls_server_new(&srv->cfg, srv->tickets, srv->privsep,
							err, sizeof(err));
		if (tls == NULL) {
			log_error("reload: keeping the old certificates: %s", err);
		} else {
			/* Live connections hold references to the old contexts. */
			tls_server_free(srv->tls);
			srv->tls = tls;
			log_info("reload: certificates reloaded");
		}
	}
	for (size_t i = 0; i < srv->n_reload_hooks; i++)
		srv->reload_hooks[i].fn(srv->reload_hooks[i].arg);
	for (int r = 0; r < ROLE_COUNT; r++)
		if (srv->has_protocol[r] && srv->protocols[r].reload != NULL)
			srv->protocols[r].reload(srv->protocols[r].ctx);
	(void)notify_systemd("READY=1");
}

static void server_stop_poll(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	struct timeval tv = { 0, SERVER_STOP_POLL_MS * 1000 };

	(void)fd;
	(void)what;
	for (struct conn *c = srv->conns, *next; c != NULL; c = next) {
		const struct server_protocol *proto = &srv->protocols[conn_role(c)];
		next = conn_next(c);
		if (conn_is_closing(c))
			continue;
		if (proto->stop != NULL)
			proto->stop(c, conn_session(c));
		else
			conn_close(c);
	}
	if (srv->n_conns == 0) {
		event_base_loopexit(srv->base, NULL);
		return;
	}
	if (time(NULL) >= srv->stop_deadline) {
		log_warn("shutdown: closing %zu connections at the deadline", srv->n_conns);
		server_abort_all(srv);
		event_base_loopexit(srv->base, NULL);
		return;
	}
	evtimer_add(srv->stop_timer, &tv);
}

/* SIGTERM/SIGINT: no new connections, let sessions finish, then exit. */
static void server_stop(struct server *srv)
{
	if (srv->stopping)
		return;
	srv->stopping = true;
	(void)notify_systemd("STOPPING=1");
	log_info("shutdown: no new connections, %zu open", srv->n_conns);
	server_close_listeners(srv);
	srv->stop_deadline = time(NULL) + srv->cfg.shutdown_timeout;
	srv->stop_timer = evtimer_new(srv->base, server_stop_poll, srv);
	if (srv->stop_timer == NULL) {
		event_base_loopexit(srv->base, NULL);
		return;
	}
	server_stop_poll(-1, 0, srv);
}

static void server_on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;

	(void)what;
	if (sig == SIGHUP) {
		log_info("SIGHUP: reloading");
		server_reload(srv);
		return;
	}
	log_info("signal %d: stopping", (int)sig);
	server_stop(srv);
}

int server_run(struct server *srv)
{
	int rc = event_base_dispatch(srv->base);

	return rc < 0 ? -1 : 0;
}

const struct config *server_config(const struct server *srv)
{
	return &srv->cfg;
}

struct tls_server *server_tls(struct server *srv)
{
	return srv->tls;
}

struct event_base *server_event_base(struct server *srv)
{
	return srv->base;
}

struct worker_pool *server_workers(struct server *srv)
{
	return srv->workers;
}

struct worker_pool *server_workers_kind(struct server *srv, enum worker_kind kind)
{
	if (kind == WORKER_AUTH && srv->auth_workers != NULL)
		return srv->auth_workers;
	if (kind == WORKER_DNS && srv->dns_workers != NULL)
		return srv->dns_workers;
	return srv->workers;
}
