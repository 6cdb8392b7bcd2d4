/* The HTTP endpoint: one evhttp per http listener, taken over from the
 * server (server_take_listeners), with bounded headers and bodies, a
 * timeout, GET/HEAD (and POST for Autodiscover) only, and one router.
 * Memory: every answer is built in a bounded struct buf freed when it is
 * sent; nothing outlives a request but a pending password check
 * (http_auth.c). */
#include "http.h"
#include "http_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "tls.h"
#include "util.h"

void http_reply(struct evhttp_request *req, int code, const char *type,
		const struct buf *body)
{
	struct evbuffer *evb = evbuffer_new();
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);

	if (type != NULL)
		evhttp_add_header(headers, "Content-Type", type);
	/* Answers are per request: a shared cache must not keep them. */
	evhttp_add_header(headers, "Cache-Control", "no-store");
	evhttp_add_header(headers, "X-Content-Type-Options", "nosniff");
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		/* RFC 9110 §9.3.2: the GET's headers, no content (evhttp 2.1
		 * would send it). */
		char len[24];
		snprintf(len, sizeof(len), "%zu", body != NULL ? body->len : 0);
		evhttp_add_header(headers, "Content-Length", len);
	} else if (evb != NULL && body != NULL && body->len > 0) {
		evbuffer_add(evb, body->data, body->len);
	}
	evhttp_send_reply(req, code, NULL, evb);
	if (evb != NULL)
		evbuffer_free(evb);
}

static void http_reply_text(struct evhttp_request *req, int code, const char *text)
{
	struct buf b;

	buf_init(&b, HTTP_REPLY_MAX);
	(void)buf_appendf(&b, "%s\n", text);
	http_reply(req, code, "text/plain; charset=utf-8", &b);
	buf_free(&b);
}

void http_peer(struct evhttp_request *req, const struct config *cfg, char *ip,
	       size_t iplen, bool *trusted_r, bool *loopback_r)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	const struct sockaddr *sa = evcon != NULL ? evhttp_connection_get_addr(evcon) : NULL;
	unsigned port;

	ip[0] = '\0';
	*trusted_r = false;
	*loopback_r = false;
	if (sa == NULL)
		return;
	*trusted_r = config_addr_is_trusted(cfg, sa);
	conn_addr_text(sa, ip, iplen, &port, loopback_r);
}

/* The domain an autoconfig request is about: the emailaddress parameter's
 * domain, else the first of `domains`.  NULL when it is not ours. */
static const char *http_autoconfig_domain(const struct config *cfg, const char *query)
{
	struct evkeyvalq params;
	const char *address, *at, *domain = NULL;

	if (cfg->n_domains == 0)
		return NULL;
	if (query == NULL)
		return cfg->domains[0];
	TAILQ_INIT(&params);
	if (evhttp_parse_query_str(query, &params) < 0)
		return NULL;
	address = evhttp_find_header(&params, "emailaddress");
	if (address == NULL)
		domain = cfg->domains[0];
	else if ((at = strrchr(address, '@')) != NULL)
		for (size_t i = 0; i < cfg->n_domains && domain == NULL; i++)
			if (strcasecmp(at + 1, cfg->domains[i]) == 0)
				domain = cfg->domains[i];
	evhttp_clear_headers(&params);
	return domain;
}

/* Send b as a 200 of this type, or a 500 when building it failed (rc < 0);
 * b is freed. */
static void http_reply_answer(struct evhttp_request *req, int rc, struct buf *b,
			      const char *type)
{
	if (rc < 0)
		http_reply_text(req, HTTP_INTERNAL, "answer too large");
	else
		http_reply(req, HTTP_OK, type, b);
	buf_free(b);
}

static void http_serve_autoconfig(struct http_listener *l, struct evhttp_request *req,
				  const char *query)
{
	const char *domain = http_autoconfig_domain(l->ctx->cfg, query);
	struct buf b;

	if (domain == NULL) {
		http_reply_text(req, HTTP_NOTFOUND, "not a domain of this server");
		return;
	}
	buf_init(&b, HTTP_REPLY_MAX);
	http_reply_answer(req, http_autoconfig_xml(l->ctx->cfg, domain, &b), &b,
			  "application/xml; charset=utf-8");
}

static void http_serve_autodiscover(struct http_listener *l, struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	char address[CONFIG_DOMAIN_LEN + 1] = "";
	struct buf b;

	if (len > 0) { /* bounded by evhttp_set_max_body_size */
		const char *body = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
		if (body != NULL)
			http_autodiscover_address(body, len, address, sizeof(address));
	}
	buf_init(&b, HTTP_REPLY_MAX);
	http_reply_answer(req, http_autodiscover_xml(l->ctx->cfg, address, &b), &b,
			  "application/xml; charset=utf-8");
}

static void http_serve_mta_sts(struct http_listener *l, struct evhttp_request *req)
{
	struct buf b;

	buf_init(&b, HTTP_REPLY_MAX);
	/* RFC 8461 §3.3: media type text/plain */
	http_reply_answer(req, config_mta_sts_policy(l->ctx->cfg, &b), &b, "text/plain");
}

enum http_route {
	HTTP_ROUTE_AUTOCONFIG,
	HTTP_ROUTE_AUTODISCOVER,
	HTTP_ROUTE_MOBILECONFIG,
	HTTP_ROUTE_MTA_STS,
	HTTP_ROUTE_METRICS,
	HTTP_ROUTE_NGINX_AUTH,
	HTTP_ROUTE_NONE,
};

static const struct {
	const char *path;
	enum http_route route;
	bool post; /* POST allowed as well as GET and HEAD */
} http_routes[] = {
	{ "/.well-known/autoconfig/mail/config-v1.1.xml", HTTP_ROUTE_AUTOCONFIG, false },
	{ "/mail/config-v1.1.xml", HTTP_ROUTE_AUTOCONFIG, false },
	/* Outlook asks with either case. */
	{ "/autodiscover/autodiscover.xml", HTTP_ROUTE_AUTODISCOVER, true },
	{ "/mail.mobileconfig", HTTP_ROUTE_MOBILECONFIG, false },
	{ "/.well-known/mta-sts.txt", HTTP_ROUTE_MTA_STS, false },
	{ "/metrics", HTTP_ROUTE_METRICS, false },
	{ "/auth", HTTP_ROUTE_NGINX_AUTH, false },
};

static enum http_route http_find_route(const char *path, bool *post_r)
{
	for (size_t i = 0; i < sizeof(http_routes) / sizeof(http_routes[0]); i++) {
		bool match = http_routes[i].route == HTTP_ROUTE_AUTODISCOVER ?
			     strcasecmp(path, http_routes[i].path) == 0 :
			     strcmp(path, http_routes[i].path) == 0;
		if (match) {
			*post_r = http_routes[i].post;
			return http_routes[i].route;
		}
	}
	return HTTP_ROUTE_NONE;
}

/* evhttp serves a connection without TLS when http_on_connection() could
 * not make an SSL object (it then makes a plain bufferevent itself): on an
 * implicit TLS listener such a request is never answered. */
static bool http_is_tls_as_configured(const struct http_listener *l,
				      struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);

	if (l->lcfg->tls != TLS_MODE_IMPLICIT)
		return true;
	return evcon != NULL &&
	       bufferevent_openssl_get_ssl(evhttp_connection_get_bufferevent(evcon)) != NULL;
}

static void http_on_request(struct evhttp_request *req, void *arg)
{
	struct http_listener *l = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	bool post = false;
	enum http_route route;

	log_debug("http method=%d uri=\"%.200s\"", (int)cmd, evhttp_request_get_uri(req));
	if (!http_is_tls_as_configured(l, req)) {
		http_reply_text(req, HTTP_SERVUNAVAIL, "TLS unavailable");
		return;
	}
	route = path != NULL ? http_find_route(path, &post) : HTTP_ROUTE_NONE;
	if (route == HTTP_ROUTE_NONE) {
		http_reply_text(req, HTTP_NOTFOUND, "not found");
		return;
	}
	if (cmd == EVHTTP_REQ_POST && !post) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		http_reply_text(req, HTTP_BADMETHOD, "method not allowed");
		return;
	}
	switch (route) {
	case HTTP_ROUTE_AUTOCONFIG:
		http_serve_autoconfig(l, req, evhttp_uri_get_query(uri));
		break;
	case HTTP_ROUTE_AUTODISCOVER:
		http_serve_autodiscover(l, req);
		break;
	case HTTP_ROUTE_MOBILECONFIG:
		http_mobileconfig_serve(l, req);
		break;
	case HTTP_ROUTE_MTA_STS:
		http_serve_mta_sts(l, req);
		break;
	case HTTP_ROUTE_METRICS:
		http_metrics_serve(l, req);
		break;
	case HTTP_ROUTE_NGINX_AUTH:
		http_nginx_serve(l, req);
		break;
	case HTTP_ROUTE_NONE:
		break;
	}
}

/* evhttp's hook for every new connection: count it (in the metrics, and
 * in connections_max: http_conns.c), and wrap it in TLS on an implicit TLS
 * listener (server certificates, reloaded on SIGHUP). */
static struct bufferevent *http_on_connection(struct event_base *base, void *arg)
{
	struct http_listener *l = arg;
	bool tls = l->lcfg->tls == TLS_MODE_IMPLICIT;
	struct bufferevent *bev;
	SSL *ssl = NULL;

	metrics_connection(ROLE_HTTP);
	if (tls && (ssl = tls_server_new_ssl(server_tls(l->ctx->srv), ROLE_HTTP)) == NULL)
		return NULL; /* see http_is_tls_as_configured() */
	bev = tls ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
						   BEV_OPT_CLOSE_ON_FREE)
		  : bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (bev != NULL)
		http_conns_add(l->ctx->conns, bev, tls);
	return bev;
}

static int http_take_listener(struct evconnlistener *lev, const struct config_listener *lcfg,
			      void *arg)
{
	struct http_ctx *ctx = arg;
	struct http_listener *l;

	if (ctx->n_listeners >= HTTP_LISTENERS_MAX)
		return -1;
	l = &ctx->listeners[ctx->n_listeners];
	l->ctx = ctx;
	l->lcfg = lcfg;
	l->http = evhttp_new(server_event_base(ctx->srv));
	if (l->http == NULL)
		return -1;
	ctx->n_listeners++;
	evhttp_set_max_headers_size(l->http, HTTP_HEADERS_MAX);
	evhttp_set_max_body_size(l->http, HTTP_BODY_MAX);
	evhttp_set_timeout(l->http, HTTP_TIMEOUT_S);
	evhttp_set_allowed_methods(l->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
	evhttp_set_gencb(l->http, http_on_request, l);
	evhttp_set_bevcb(l->http, http_on_connection, l);
	if (evhttp_bind_listener(l->http, lev) == NULL)
		return -1;
	return 0;
}

static void http_free(void *arg)
{
	struct http_ctx *ctx = arg;

	http_auth_free_pending(ctx);
	for (size_t i = 0; i < ctx->n_listeners; i++)
		evhttp_free(ctx->listeners[i].http); /* and its listener, connections */
	http_conns_free(ctx->conns);
	free(ctx);
}

int http_register(struct server *srv, struct auth *auth, struct md_store *store,
		  char *err, size_t errlen)
{
	struct http_ctx *ctx = calloc(1, sizeof(*ctx));

	(void)store;
	if (ctx == NULL) {
		snprintf(err, errlen, "http: out of memory");
		return -1;
	}
	ctx->srv = srv;
	ctx->auth = auth;
	ctx->cfg = server_config(srv);
	ctx->conns = http_conns_new(srv);
	if (ctx->conns == NULL) {
		free(ctx);
		snprintf(err, errlen, "http: out of memory");
		return -1;
	}
	server_on_free(srv, http_free, ctx);
	if (server_take_listeners(srv, ROLE_HTTP, http_take_listener, ctx) < 0) {
		snprintf(err, errlen, "http: cannot serve the http listeners");
		return -1;
	}
	return 0;
}
