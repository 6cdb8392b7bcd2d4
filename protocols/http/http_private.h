/* Shared by the files of protocols/http/ only. */
#ifndef HTTP_HTTP_PRIVATE_H
#define HTTP_HTTP_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct auth;
struct auth_shard;
struct buf;
struct evhttp;
struct evhttp_request;
struct server;

/* RFC 9112 §3 / §5: no fixed limit; our longest legitimate request is an
 * autoconfig URL with one address (RFC 5321 §4.5.3.1.3: 254 octets), so 8
 * KiB of request line and headers is plenty. */
#define HTTP_HEADERS_MAX 8192
/* Autodiscover's POX request is ~400 bytes of XML; nothing else has a
 * body. */
#define HTTP_BODY_MAX 16384
/* Seconds a connection may be idle or a request take to arrive. */
#define HTTP_TIMEOUT_S 30
/* Every answer is generated from the configuration: a few KiB. */
#define HTTP_REPLY_MAX 65536
#define HTTP_LISTENERS_MAX CONFIG_LISTENERS_MAX
/* Delayed or running password checks at once; more are answered 503. */
#define HTTP_AUTH_PENDING_MAX 64
/* Status codes evhttp has no name for (RFC 9110 §15.5.2, §15.5.4). */
#define HTTP_STATUS_UNAUTHORIZED 401
#define HTTP_STATUS_FORBIDDEN 403

struct http_ctx;

struct http_listener {
	struct http_ctx *ctx;
	const struct config_listener *lcfg;
	struct evhttp *http;
};

struct http_auth_job;

struct http_ctx {
	struct server *srv;
	struct auth *auth;
	const struct config *cfg;
	struct http_listener listeners[HTTP_LISTENERS_MAX];
	size_t n_listeners;
	struct http_auth_job *pending; /* waiting on a throttle timer or a worker */
	size_t n_pending;
	struct http_conns *conns;      /* http_conns.c */
};

/* http_conns.c: evhttp's connections in connections_max.  add() is
 * called with every bufferevent handed to evhttp (tls: an implicit TLS
 * listener); free() after evhttp_free(). */
struct bufferevent;
struct http_conns *http_conns_new(struct server *srv);
void http_conns_add(struct http_conns *cs, struct bufferevent *bev, bool tls);
void http_conns_free(struct http_conns *cs);

/* One service to advertise, derived from the listeners (http_autoconfig.c). */
enum http_service_type { HTTP_SVC_IMAP, HTTP_SVC_POP3, HTTP_SVC_SMTP };
struct http_service {
	enum http_service_type type;
	uint16_t port;
	bool implicit_tls; /* false: STARTTLS */
};
#define HTTP_SERVICES_MAX CONFIG_LISTENERS_MAX

/* http_autoconfig.c: services clients may use, implicit TLS first (RFC
 * 8314 §3), without plaintext-only listeners and duplicates. */
size_t http_services(const struct config *cfg, struct http_service *out, size_t max);
/* Append text with &, <, >, " and ' escaped for XML. */
int http_xml_escape(struct buf *out, const char *text);
/* The answers; 0, or -1 when out's cap is reached. */
int http_autoconfig_xml(const struct config *cfg, const char *domain, struct buf *out);
int http_autodiscover_xml(const struct config *cfg, const char *address, struct buf *out);
int http_mobileconfig(const struct config *cfg, const char *address, struct buf *out);
/* The address inside <EMailAddress> of an Autodiscover request body, or
 * "" when there is none or it is not a valid address. */
void http_autodiscover_address(const char *body, size_t len, char *out, size_t outlen);

/* http.c: send body (may be NULL) with status code and content type. */
void http_reply(struct evhttp_request *req, int code, const char *type,
		const struct buf *body);
/* The peer's address as text ("" when unknown) and whether it is trusted
 * (trusted_networks) or loopback. */
void http_peer(struct evhttp_request *req, const struct config *cfg, char *ip,
	       size_t iplen, bool *trusted_r, bool *loopback_r);

/* http_metrics.c: GET /metrics. */
void http_metrics_serve(struct http_listener *l, struct evhttp_request *req);
/* http_auth.c: GET /mail.mobileconfig with Basic authentication. */
void http_mobileconfig_serve(struct http_listener *l, struct evhttp_request *req);
/* Free checks still waiting (at server_free). */
void http_auth_free_pending(struct http_ctx *ctx);
/* The password check behind both: throttle, verify on the AUTH pool, then
 * answer the request as kind says.  user and password are the client's. */
enum http_auth_kind { HTTP_AUTH_MOBILECONFIG, HTTP_AUTH_NGINX };
void http_auth_begin(struct http_listener *l, struct evhttp_request *req, const char *ip,
		     const char *user, const char *password, enum http_auth_kind kind,
		     const char *proto, unsigned attempt);

/* http_nginx.c: GET /auth, nginx's auth_http protocol. */
void http_nginx_serve(struct http_listener *l, struct evhttp_request *req);
/* The answer once the password was checked: canonical is the user's
 * address, or NULL when the login failed; sh its instance (NULL: none). */
void http_nginx_answer(struct http_ctx *ctx, struct evhttp_request *req, const char *canonical,
		       const struct auth_shard *sh, const char *proto, unsigned attempt);

#endif
