/* GET /mail.mobileconfig: HTTP Basic authentication (RFC 7617) checked
 * with auth/ like every other login: the throttle first (delays on a
 * timer, refusals at once), then auth_verify_password on the AUTH worker
 * pool, never on the loop.  Only over TLS, or from loopback when
 * allow_plaintext_auth_on_loopback says so; elsewhere 403 before any
 * password is read.  Wrong credentials, unknown users and throttled
 * attempts all get the same 401. */
#include "http_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>

#include "auth.h"
#include "base64.h"
#include "log.h"
#include "server.h"
#include "util.h"
#include "worker.h"

/* "Basic " + base64 of user ":" password, each at its auth.h maximum. */
#define HTTP_AUTH_HEADER_MAX (6 + 4 * ((AUTH_ADDRESS_MAX + 1 + AUTH_PASSWORD_MAX + 2) / 3))
#define HTTP_AUTH_REALM "Basic realm=\"postern\", charset=\"UTF-8\""

struct http_auth_job {
	struct http_auth_job *next;
	struct http_listener *l;
	struct evhttp_request *req;
	struct event *delay;
	char ip[64];
	char user[AUTH_ADDRESS_MAX + 1];
	char password[AUTH_PASSWORD_MAX + 1];
	char canonical[AUTH_ADDRESS_MAX + 1];
	int rc; /* auth_verify_password's */
	enum http_auth_kind kind;
	char proto[8];     /* for the log line: http, or nginx's imap|pop3|smtp */
	unsigned attempt;  /* nginx's Auth-Login-Attempt */
	struct auth_shard shard; /* nginx: the user's instance ... */
	bool has_shard;          /* ... when the shards file names one */
};

static void http_auth_unlink(struct http_auth_job *job)
{
	struct http_ctx *ctx = job->l->ctx;

	for (struct http_auth_job **pp = &ctx->pending; *pp != NULL; pp = &(*pp)->next)
		if (*pp == job) {
			*pp = job->next;
			ctx->n_pending--;
			return;
		}
}

static void http_auth_job_free(struct http_auth_job *job)
{
	if (job->delay != NULL)
		event_free(job->delay);
	OPENSSL_cleanse(job->password, sizeof(job->password));
	free(job);
}

static void http_auth_unauthorized(struct evhttp_request *req)
{
	struct buf b;

	evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
			  HTTP_AUTH_REALM);
	buf_init(&b, 256);
	(void)buf_appendf(&b, "authentication required\n");
	http_reply(req, HTTP_STATUS_UNAUTHORIZED, "text/plain; charset=utf-8", &b);
	buf_free(&b);
}

/* user:password from "Basic BASE64"; 0 or -1. */
static int http_auth_parse(const char *header, struct http_auth_job *job)
{
	unsigned char decoded[AUTH_ADDRESS_MAX + 1 + AUTH_PASSWORD_MAX + 3];
	size_t len = strlen(header);
	const char *colon;
	long n;

	if (len > HTTP_AUTH_HEADER_MAX || strncasecmp(header, "Basic ", 6) != 0)
		return -1;
	header += 6;
	len -= 6;
	if ((len / 4) * 3 > sizeof(decoded) - 1 ||
	    (n = base64_decode(header, len, decoded)) < 0)
		return -1;
	decoded[n] = '\0';
	colon = memchr(decoded, ':', (size_t)n); /* RFC 7617 §2: user-id has no ':' */
	if (colon == NULL || memchr(decoded, '\0', (size_t)n) != NULL)
		goto fail;
	if ((size_t)(colon - (char *)decoded) > AUTH_ADDRESS_MAX ||
	    strlen(colon + 1) > AUTH_PASSWORD_MAX)
		goto fail;
	memcpy(job->user, decoded, (size_t)(colon - (char *)decoded));
	job->user[colon - (char *)decoded] = '\0';
	str_copy(job->password, colon + 1, sizeof(job->password));
	OPENSSL_cleanse(decoded, sizeof(decoded));
	return auth_address_valid(job->user) ? 0 : -1;
fail:
	OPENSSL_cleanse(decoded, sizeof(decoded));
	return -1;
}

static void http_auth_work(void *arg)
{
	struct http_auth_job *job = arg;

	job->rc = auth_verify_password(job->l->ctx->auth, job->user, job->password,
				       job->canonical, sizeof(job->canonical));
	if (job->rc == 0 && job->kind == HTTP_AUTH_NGINX)
		job->has_shard = auth_shard_of(job->l->ctx->auth, job->canonical, &job->shard);
}

static void http_auth_done(void *arg)
{
	struct http_auth_job *job = arg;
	struct http_ctx *ctx = job->l->ctx;
	struct buf b;

	http_auth_unlink(job);
	if (job->rc < 0) {
		auth_throttle_failure(ctx->auth, job->proto, job->ip, job->user, time(NULL));
		if (job->kind == HTTP_AUTH_NGINX)
			http_nginx_answer(ctx, job->req, NULL, NULL, job->proto, job->attempt);
		else
			http_auth_unauthorized(job->req);
		http_auth_job_free(job);
		return;
	}
	auth_throttle_success(ctx->auth, job->ip, job->canonical);
	if (job->kind == HTTP_AUTH_NGINX) {
		http_nginx_answer(ctx, job->req, job->canonical,
				  job->has_shard ? &job->shard : NULL, job->proto, job->attempt);
		http_auth_job_free(job);
		return;
	}
	log_info("http mobileconfig user=%s rip=%s", job->canonical, job->ip);
	buf_init(&b, HTTP_REPLY_MAX);
	if (http_mobileconfig(ctx->cfg, job->canonical, &b) < 0) {
		buf_reset(&b);
		(void)buf_appendf(&b, "no IMAP or POP3 and submission listener with TLS\n");
		http_reply(job->req, HTTP_NOTFOUND, "text/plain; charset=utf-8", &b);
	} else {
		evhttp_add_header(evhttp_request_get_output_headers(job->req),
				  "Content-Disposition", "attachment; filename=\"mail.mobileconfig\"");
		http_reply(job->req, HTTP_OK, "application/x-apple-aspen-config", &b);
	}
	buf_free(&b);
	http_auth_job_free(job);
}

static void http_auth_submit(struct http_auth_job *job)
{
	struct worker_pool *pool = server_workers_kind(job->l->ctx->srv, WORKER_AUTH);

	if (worker_submit(pool, http_auth_work, http_auth_done, job) < 0) {
		http_auth_unlink(job);
		http_reply(job->req, HTTP_SERVUNAVAIL, NULL, NULL);
		http_auth_job_free(job);
	}
}

static void http_auth_on_delay(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	http_auth_submit(arg);
}

/* Throttle, then verify now or after the delay. */
static void http_auth_start(struct http_auth_job *job)
{
	struct http_ctx *ctx = job->l->ctx;
	unsigned delay_ms = 0;

	job->next = ctx->pending;
	ctx->pending = job;
	ctx->n_pending++;
	switch (auth_throttle_check(ctx->auth, job->ip, job->user, time(NULL), &delay_ms)) {
	case AUTH_THROTTLE_REFUSE:
		job->rc = -1;
		http_auth_done(job);
		return;
	case AUTH_THROTTLE_DELAY: {
		struct timeval tv;
		if (delay_ms > AUTH_THROTTLE_DELAY_MAX_MS)
			delay_ms = AUTH_THROTTLE_DELAY_MAX_MS;
		tv.tv_sec = delay_ms / 1000;
		tv.tv_usec = (delay_ms % 1000) * 1000;
		job->delay = evtimer_new(server_event_base(ctx->srv), http_auth_on_delay, job);
		if (job->delay != NULL && evtimer_add(job->delay, &tv) == 0)
			return;
		break; /* no timer: verify at once rather than fail */
	}
	case AUTH_THROTTLE_ALLOW:
		break;
	}
	http_auth_submit(job);
}

void http_mobileconfig_serve(struct http_listener *l, struct evhttp_request *req)
{
	const struct config *cfg = l->ctx->cfg;
	const char *header = evhttp_find_header(evhttp_request_get_input_headers(req),
						"Authorization");
	struct http_auth_job *job;
	bool trusted, loopback;
	char ip[64];

	http_peer(req, cfg, ip, sizeof(ip), &trusted, &loopback);
	if (l->lcfg->tls != TLS_MODE_IMPLICIT &&
	    !(loopback && cfg->allow_plaintext_auth_on_loopback)) {
		struct buf b;
		buf_init(&b, 256);
		(void)buf_appendf(&b, "passwords only over TLS\n");
		http_reply(req, HTTP_STATUS_FORBIDDEN, "text/plain; charset=utf-8", &b);
		buf_free(&b);
		return;
	}
	if (header == NULL) {
		http_auth_unauthorized(req);
		return;
	}
	if (l->ctx->n_pending >= HTTP_AUTH_PENDING_MAX) {
		http_reply(req, HTTP_SERVUNAVAIL, NULL, NULL);
		return;
	}
	job = calloc(1, sizeof(*job));
	if (job == NULL) {
		http_reply(req, HTTP_SERVUNAVAIL, NULL, NULL);
		return;
	}
	job->l = l;
	job->req = req;
	job->kind = HTTP_AUTH_MOBILECONFIG;
	str_copy(job->proto, "http", sizeof(job->proto));
	str_copy(job->ip, ip, sizeof(job->ip));
	if (http_auth_parse(header, job) < 0) {
		auth_throttle_failure(l->ctx->auth, "http", ip, NULL, time(NULL));
		http_auth_unauthorized(req);
		http_auth_job_free(job);
		return;
	}
	http_auth_start(job);
}

void http_auth_begin(struct http_listener *l, struct evhttp_request *req, const char *ip,
		     const char *user, const char *password, enum http_auth_kind kind,
		     const char *proto, unsigned attempt)
{
	struct http_auth_job *job;

	if (l->ctx->n_pending >= HTTP_AUTH_PENDING_MAX || (job = calloc(1, sizeof(*job))) == NULL) {
		http_reply(req, HTTP_SERVUNAVAIL, NULL, NULL);
		return;
	}
	job->l = l;
	job->req = req;
	job->kind = kind;
	job->attempt = attempt;
	str_copy(job->proto, proto, sizeof(job->proto));
	str_copy(job->ip, ip, sizeof(job->ip));
	str_copy(job->user, user, sizeof(job->user));
	str_copy(job->password, password, sizeof(job->password));
	http_auth_start(job);
}

/* At server_free the worker pools are gone (their done() ran): what is
 * left waits on a throttle timer.  Answering 503 frees a request whose
 * client has left (evhttp keeps those apart); evhttp_free the others. */
void http_auth_free_pending(struct http_ctx *ctx)
{
	while (ctx->pending != NULL) {
		struct http_auth_job *job = ctx->pending;
		ctx->pending = job->next;
		http_reply(job->req, HTTP_SERVUNAVAIL, NULL, NULL);
		http_auth_job_free(job);
	}
	ctx->n_pending = 0;
}
