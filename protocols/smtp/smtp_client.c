/* The SMTP client: one connection to one host, one transaction for the
 * recipients of one domain, on the event loop.
 *
 *   connect -> 220 -> EHLO (HELO when EHLO is refused) -> STARTTLS when
 *   offered (required for the relay host) -> EHLO again -> AUTH PLAIN (relay
 *   host with relay_user) -> MAIL, RCPT..., DATA (sent together when the
 *   server offers PIPELINING, RFC 2920) -> message -> QUIT.
 *
 * The certificate is checked against the host name (MX name or relay
 * host) and the result logged; an MX delivery goes on when it does not
 * verify (opportunistic TLS, RFC 7435: no MTA-STS/DANE yet); when the
 * handshake itself fails, the scheduler connects once more without
 * STARTTLS (RFC 3207 §4.1 leaves that to the client; Postfix does it too).
 *
 * Results go into the job: per recipient the RCPT reply, or for those
 * accepted the reply after the message.  A failure before MAIL (no
 * connection, a greeting other than 220, a TLS failure) sets next_host:
 * the scheduler tries the domain's next address (RFC 5321 §5.1).  A lost
 * connection after the message was sent but before its reply leaves those
 * recipients deferred: a duplicate later is what RFC 5321 §6.1 prefers to
 * a loss.
 *
 * Reuse: with job->keep, a 250 for the message leaves the connection
 * open instead of QUIT: done() finds it in job->kept and the scheduler
 * sends the next message to the same destination over it (a new MAIL,
 * RFC 5321 §3.3), or parks it for CLIENT_IDLE_S.  A kept connection that
 * fails before its message was sent (closed while idle, 421, a lost
 * connection) sets reuse_failed: nothing was delivered, and the scheduler
 * tries again on a new connection.  After CLIENT_MESSAGES_MAX messages the
 * connection QUITs as before.
 *
 * LMTP (job->lmtp, RFC 2033): the hop to another shard (smtp_shard.c).
 * LHLO instead of EHLO (no HELO fallback), no STARTTLS or AUTH (the
 * shards talk on a private network or a unix socket, as nginx does to
 * them), and after the message one reply per recipient whose RCPT got a
 * 2xx, in RCPT order (§4.2), each applied to its own recipient.  A
 * connection lost among those replies leaves the unanswered ones deferred.
 *
 * Memory: the client owns itself and frees itself after done(), unless
 * it was kept; a parked one frees itself after closed().
 */
#include "smtp_queue.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"

enum client_state {
	CLIENT_CONNECTING, CLIENT_GREETING, CLIENT_EHLO, CLIENT_HELO, CLIENT_STARTTLS,
	CLIENT_TLS, CLIENT_AUTH, CLIENT_MAIL, CLIENT_RCPT, CLIENT_DATA, CLIENT_DOT,
	CLIENT_FLUSH_DOT, CLIENT_QUIT, CLIENT_DONE,
	CLIENT_IDLE,         /* kept, parked: waiting for the next message */
	CLIENT_CLOSING,      /* QUIT sent from idle; nobody waits for it */
};

struct smtp_client {
	struct event_base *base;
	SSL_CTX *tls_ctx;
	struct bufferevent *bev;
	struct client_job *job;
	client_done_fn *done;
	void *arg;
	enum client_state state;
	/* EHLO keywords */
	bool esmtp, pipelining, starttls, auth_plain, eightbit, dsn, smtputf8, size;
	uint64_t size_max;   /* SIZE limit; 0: none announced (RFC 1870 §4) */
	bool tls_on;
	char tls[sizeof(((struct client_job *)0)->tls)]; /* for reused jobs */
	struct route_host host;   /* for logs while no job is attached */
	unsigned messages;        /* transactions with a 250 so far */
	bool keep;                /* finishing keeps the connection */
	client_closed_fn *closed; /* parked: who to tell when it goes */
	void *closed_arg;
	/* reply being read */
	int code;
	unsigned lines;
	char text[SMTP_REPLY_MAX];
	/* transaction */
	size_t rcpt_next;    /* next RCPT reply expected */
	size_t accepted;
	size_t lmtp_next;    /* LMTP: next recipient a reply after DATA is for */
	size_t lmtp_replies;
	bool lmtp_ok;        /* ... one of them was 2xx */
	bool mail_ok;
	bool finished;
	bool in_read;        /* inside client_read_replies: free afterwards */
	struct event *once;  /* reports a connect() that failed at once */
};

static void client_finish(struct smtp_client *c);
static void client_release(struct smtp_client *c);
static void client_idle_event(struct smtp_client *c, short what);

static void client_set_timeout(struct smtp_client *c, unsigned read_s)
{
	struct timeval r = { read_s, 0 }, w = { CLIENT_TIMEOUT_BLOCK, 0 };

	bufferevent_set_timeouts(c->bev, &r, &w);
}

static void client_send(struct smtp_client *c, unsigned timeout, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void client_send(struct smtp_client *c, unsigned timeout, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(c->bev), fmt, ap);
	va_end(ap);
	evbuffer_add(bufferevent_get_output(c->bev), "\r\n", 2);
	client_set_timeout(c, timeout);
}

/* Every recipient still without an answer gets reply (and code); with
 * accepted_too also those whose RCPT was accepted (DATA refused). */
static void client_fail_rest(struct smtp_client *c, const char *reply, bool accepted_too)
{
	int code = atoi(reply);

	for (size_t i = 0; i < c->job->n_rcpts; i++) {
		struct client_rcpt *r = &c->job->rcpts[i];
		if (r->code == 0 || (accepted_too && r->code >= 200 && r->code < 300)) {
			r->code = code;
			str_copy(r->reply, reply, sizeof(r->reply));
		}
	}
}

/* The session failed: before MAIL the next host is tried. */
static void client_abort(struct smtp_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void client_abort(struct smtp_client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->job->reply, sizeof(c->job->reply), fmt, ap);
	va_end(ap);
	if (c->job->reused && c->state < CLIENT_DOT)
		c->job->reuse_failed = true; /* nothing sent: a new connection */
	if (c->state < CLIENT_MAIL) {
		c->job->next_host = true;
	} else if (c->state < CLIENT_QUIT) {
		/* accepted recipients and those not yet answered are deferred */
		for (size_t i = 0; i < c->job->n_rcpts; i++) {
			struct client_rcpt *r = &c->job->rcpts[i];
			if (!r->final && (r->code == 0 || (r->code >= 200 && r->code < 300))) {
				r->code = atoi(c->job->reply);
				str_copy(r->reply, c->job->reply, sizeof(r->reply));
			}
		}
	}
	client_finish(c);
}

static void client_quit(struct smtp_client *c)
{
	c->state = CLIENT_QUIT;
	client_send(c, CLIENT_TIMEOUT_OTHER, "QUIT");
}

/* ---- EHLO keywords ------------------------------------------------------- */

static void client_ehlo_line(struct smtp_client *c, const char *kw)
{
	if (strncasecmp(kw, "PIPELINING", 10) == 0 && (kw[10] == '\0' || kw[10] == ' '))
		c->pipelining = true;
	else if (strncasecmp(kw, "STARTTLS", 8) == 0)
		c->starttls = true;
	else if (strncasecmp(kw, "8BITMIME", 8) == 0)
		c->eightbit = true;
	else if (strncasecmp(kw, "SMTPUTF8", 8) == 0)
		c->smtputf8 = true;
	else if (strncasecmp(kw, "DSN", 3) == 0 && (kw[3] == '\0' || kw[3] == ' '))
		c->dsn = true;
	else if (strncasecmp(kw, "SIZE", 4) == 0 && (kw[4] == '\0' || kw[4] == ' ')) {
		c->size = true;
		c->size_max = kw[4] == ' ' ? strtoull(kw + 5, NULL, 10) : 0;
	}
	else if (strncasecmp(kw, "AUTH", 4) == 0 && (kw[4] == ' ' || kw[4] == '=')) {
		for (const char *p = kw + 5; *p != '\0';) {
			size_t n = strcspn(p, " ");
			if (n == 5 && strncasecmp(p, "PLAIN", 5) == 0)
				c->auth_plain = true;
			p += n + (p[n] == ' ');
		}
	}
}

/* ---- the transaction ------------------------------------------------------- */

/* RFC 3461 parameters go only to a server that offers DSN. */
static void client_send_mail(struct smtp_client *c)
{
	const struct queue_env *env = c->job->env;
	struct evbuffer *out = bufferevent_get_output(c->bev);

	evbuffer_add_printf(out, "MAIL FROM:<%s>", env->sender);
	if (c->size)
		evbuffer_add_printf(out, " SIZE=%llu", (unsigned long long)c->job->size);
	if (c->job->eightbit && c->eightbit)
		evbuffer_add_printf(out, " BODY=8BITMIME");
	if (env->smtputf8 && c->smtputf8)
		evbuffer_add_printf(out, " SMTPUTF8");
	if (c->dsn && env->ret != SMTP_RET_NONE)
		evbuffer_add_printf(out, " RET=%s", env->ret == SMTP_RET_FULL ? "FULL" : "HDRS");
	if (c->dsn && env->envid[0] != '\0')
		evbuffer_add_printf(out, " ENVID=%s", env->envid);
	evbuffer_add(out, "\r\n", 2);
}

static void client_send_rcpt(struct smtp_client *c, size_t i)
{
	const struct queue_rcpt *r = c->job->rcpts[i].rcpt;
	struct evbuffer *out = bufferevent_get_output(c->bev);

	evbuffer_add_printf(out, "RCPT TO:<%s>", r->addr);
	if (c->dsn && r->notify != 0) {
		static const char *const names[] = { "NEVER", "SUCCESS", "FAILURE", "DELAY" };
		const char *sep = " NOTIFY=";
		for (unsigned b = 0; b < 4; b++)
			if (r->notify & (1u << b)) {
				evbuffer_add_printf(out, "%s%s", sep, names[b]);
				sep = ",";
			}
	}
	if (c->dsn && r->orcpt[0] != '\0')
		evbuffer_add_printf(out, " ORCPT=%s", r->orcpt);
	evbuffer_add(out, "\r\n", 2);
}

/* Refusals we decide before MAIL: SIZE (RFC 1870 §6.1), 8BITMIME (RFC
 * 6152 §3: sent converted to quoted-printable, or bounced when it cannot
 * be converted, smtp_mime8.c) and
 * SMTPUTF8 (RFC 6531 §3.4). */
static bool client_precheck(struct smtp_client *c)
{
	const struct queue_env *env = c->job->env;
	const char *why = NULL;

	if (c->size_max > 0 && c->job->size > c->size_max)
		why = "552 5.3.4 Message too big for the receiving server (its SIZE limit)";
	else if (env->smtputf8 && !c->smtputf8)
		why = "553 5.6.7 The receiving server does not support SMTPUTF8";
	else if (c->job->eightbit && !c->eightbit && c->job->data7 == NULL)
		why = "554 5.6.3 The receiving server does not accept 8-bit data and "
		      "the message cannot be converted to 7 bit";
	if (why == NULL)
		return true;
	c->state = CLIENT_MAIL;
	client_fail_rest(c, why, false);
	client_quit(c);
	return false;
}

static void client_start_transaction(struct smtp_client *c)
{
	if (!client_precheck(c))
		return;
	c->state = CLIENT_MAIL;
	c->rcpt_next = 0;
	c->lmtp_next = c->lmtp_replies = 0;
	c->lmtp_ok = false;
	c->job->dsn = c->dsn;
	client_send_mail(c);
	if (c->pipelining) {
		/* RFC 2920 §3.1: MAIL, RCPT... and DATA in one group */
		for (size_t i = 0; i < c->job->n_rcpts; i++)
			client_send_rcpt(c, i);
		evbuffer_add(bufferevent_get_output(c->bev), "DATA\r\n", 6);
	}
	client_set_timeout(c, CLIENT_TIMEOUT_MAIL);
}

static void client_send_auth(struct smtp_client *c)
{
	const char *user = c->job->cfg->relay_user, *pw = c->job->password;
	size_t ul = strlen(user), pl = strlen(pw), n = ul + pl + 2;
	char *raw = malloc(n), *b64 = malloc(base64_encoded_len(n) + 1);

	if (raw == NULL || b64 == NULL) {
		free(raw);
		free(b64);
		client_abort(c, "451 4.3.0 Out of memory");
		return;
	}
	/* RFC 4616 §2: authzid NUL authcid NUL passwd */
	raw[0] = '\0';
	memcpy(raw + 1, user, ul);
	raw[ul + 1] = '\0';
	memcpy(raw + ul + 2, pw, pl);
	base64_encode(raw, n, b64);
	c->state = CLIENT_AUTH;
	client_send(c, CLIENT_TIMEOUT_OTHER, "AUTH PLAIN %s", b64);
	OPENSSL_cleanse(raw, n);
	OPENSSL_cleanse(b64, strlen(b64));
	free(raw);
	free(b64);
}

/* After EHLO (first or after TLS): STARTTLS, AUTH or the transaction. */
static void client_after_ehlo(struct smtp_client *c)
{
	if (c->job->lmtp) {
		client_start_transaction(c);
		return;
	}
	if (!c->tls_on && c->starttls && c->tls_ctx != NULL && !c->job->no_starttls &&
	    !(c->job->relay && c->job->cfg->relay_tls == TLS_MODE_IMPLICIT)) {
		c->state = CLIENT_STARTTLS;
		client_send(c, CLIENT_TIMEOUT_OTHER, "STARTTLS");
		return;
	}
	if (c->job->relay && !c->tls_on) {
		client_abort(c, "451 4.7.10 relay host %s does not offer STARTTLS",
			     c->job->host.name);
		return;
	}
	if (c->job->relay && c->job->cfg->relay_user[0] != '\0') {
		if (!c->auth_plain) {
			client_abort(c, "451 4.7.10 relay host %s does not offer AUTH PLAIN",
				     c->job->host.name);
			return;
		}
		client_send_auth(c);
		return;
	}
	client_start_transaction(c);
}

static void client_ehlo(struct smtp_client *c)
{
	c->pipelining = c->starttls = c->auth_plain = c->eightbit = c->dsn = false;
	c->smtputf8 = c->size = false;
	c->size_max = 0;
	c->state = CLIENT_EHLO;
	client_send(c, CLIENT_TIMEOUT_OTHER, "%s %s", c->job->lmtp ? "LHLO" : "EHLO",
		    c->job->cfg->hostname);
}

/* ---- TLS ------------------------------------------------------------------- */

static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);

static SSL *client_new_ssl(struct smtp_client *c)
{
	SSL *ssl = SSL_new(c->tls_ctx);

	if (ssl == NULL)
		return NULL;
	/* SNI and the name the certificate must carry (RFC 6125) */
	if (inet_pton(AF_INET, c->job->host.name, &(struct in_addr){ 0 }) != 1 &&
	    strchr(c->job->host.name, ':') == NULL)
		SSL_set_tlsext_host_name(ssl, c->job->host.name);
	SSL_set1_host(ssl, c->job->host.name);
	return ssl;
}

/* The peer certificate's subject CN (for logs; RFC 6125 checks the
 * names, SSL_set1_host), printable ASCII only, "" when there is none. */
static void client_peer_cn(SSL *ssl, char *out, size_t outlen)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	X509_NAME *name = cert != NULL ? X509_get_subject_name(cert) : NULL;
	int n = name != NULL ? X509_NAME_get_text_by_NID(name, NID_commonName, out, (int)outlen) : -1;

	if (n < 0) {
		out[0] = '\0';
		return;
	}
	for (char *p = out; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			*p = '?';
}

static void client_tls_done(struct smtp_client *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	char cn[SMTP_DOMAIN_MAX + 1];
	long v = SSL_get_verify_result(ssl);
	bool ok = v == X509_V_OK && SSL_get0_peer_certificate(ssl) != NULL;

	c->tls_on = true;
	client_peer_cn(ssl, cn, sizeof(cn));
	snprintf(c->job->tls, sizeof(c->job->tls), "%s %s verified=%s%s%s%s cn=%s",
		 SSL_get_version(ssl), SSL_get_cipher_name(ssl), ok ? "yes" : "no",
		 ok ? "" : " (", ok ? "" : X509_verify_cert_error_string(v), ok ? "" : ")",
		 cn[0] != '\0' ? cn : "-");
	str_copy(c->tls, c->job->tls, sizeof(c->tls));
	log_info("queue id=%s host=%s[%s] tls=\"%s\"", c->job->env->id, c->job->host.name,
		 c->job->host.addr, c->job->tls);
}

static void client_starttls(struct smtp_client *c)
{
	SSL *ssl = client_new_ssl(c);
	struct bufferevent *filter;

	if (ssl == NULL) {
		client_abort(c, "451 4.7.5 Cannot set up TLS");
		return;
	}
	evbuffer_drain(bufferevent_get_input(c->bev), evbuffer_get_length(bufferevent_get_input(c->bev)));
	filter = bufferevent_openssl_filter_new(c->base, c->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
					       BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (filter == NULL) {
		SSL_free(ssl);
		client_abort(c, "451 4.7.5 Cannot set up TLS");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(filter, 1);
	c->bev = filter;
	c->state = CLIENT_TLS;
	bufferevent_setcb(c->bev, client_read_cb, NULL, client_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	client_set_timeout(c, CLIENT_TIMEOUT_OTHER);
}

/* ---- replies ---------------------------------------------------------------- */

static void client_rcpt_reply(struct smtp_client *c)
{
	struct client_rcpt *r = &c->job->rcpts[c->rcpt_next++];

	r->code = c->code;
	str_copy(r->reply, c->text, sizeof(r->reply));
	if (c->code >= 200 && c->code < 300)
		c->accepted++;
	if (c->pipelining)
		return; /* DATA is on its way */
	if (c->rcpt_next < c->job->n_rcpts) {
		client_send_rcpt(c, c->rcpt_next);
		client_set_timeout(c, CLIENT_TIMEOUT_RCPT);
		return;
	}
	if (c->accepted == 0) {
		client_quit(c);
		return;
	}
	c->state = CLIENT_DATA;
	client_send(c, CLIENT_TIMEOUT_DATA, "DATA");
}

static void client_data_reply(struct smtp_client *c)
{
	if (c->code != 354) {
		if (c->mail_ok && c->accepted > 0)
			client_fail_rest(c, c->text, true);
		client_quit(c);
		return;
	}
	if (!c->mail_ok || c->accepted == 0) {
		/* RFC 2920 §3.1: a 354 with no valid recipient gets an empty
		 * message, whose reply is ignored */
		c->state = CLIENT_FLUSH_DOT;
		client_send(c, CLIENT_TIMEOUT_DOT, ".");
		return;
	}
	c->state = CLIENT_DOT;
	if (c->job->eightbit && !c->eightbit)
		evbuffer_add(bufferevent_get_output(c->bev), c->job->data7, c->job->data7_len);
	else
		evbuffer_add(bufferevent_get_output(c->bev), c->job->data, c->job->data_len);
	client_set_timeout(c, CLIENT_TIMEOUT_DOT);
}

/* After the message, the mail is finished: keep the connection for the
 * next one, or QUIT. */
static void client_after_dot(struct smtp_client *c, bool ok)
{
	c->state = CLIENT_QUIT;
	if (ok && c->job->keep && ++c->messages < CLIENT_MESSAGES_MAX) {
		c->keep = true; /* RFC 5321 §3.3: the next MAIL needs no RSET */
		client_finish(c);
	} else {
		client_quit(c);
	}
}

/* LMTP after the message: this reply is for the next recipient whose RCPT
 * was accepted (RFC 2033 §4.2). */
static void client_lmtp_reply(struct smtp_client *c)
{
	struct client_job *job = c->job;
	size_t i = c->lmtp_next;

	while (i < job->n_rcpts && (job->rcpts[i].final || job->rcpts[i].code < 200 ||
				    job->rcpts[i].code >= 300))
		i++;
	if (i == job->n_rcpts) { /* cannot happen: replies are counted */
		client_abort(c, "451 4.5.0 Unexpected reply from %s", job->host.name);
		return;
	}
	job->rcpts[i].code = c->code;
	str_copy(job->rcpts[i].reply, c->text, sizeof(job->rcpts[i].reply));
	job->rcpts[i].final = true;
	c->lmtp_next = i + 1;
	c->lmtp_ok = c->lmtp_ok || (c->code >= 200 && c->code < 300);
	if (++c->lmtp_replies < c->accepted) {
		client_set_timeout(c, CLIENT_TIMEOUT_DOT);
		return;
	}
	client_after_dot(c, c->lmtp_ok);
}

/* One complete reply (c->code, c->text) in c->state. */
static void client_reply(struct smtp_client *c)
{
	bool ok = c->code >= 200 && c->code < 300;

	/* RFC 5321 §3.8: 421 closes the session; on a kept connection before
	 * the message was sent, nothing is lost by trying a new one */
	if (c->code == 421 && c->job->reused && c->state < CLIENT_DOT) {
		client_abort(c, "%s", c->text);
		return;
	}
	switch (c->state) {
	case CLIENT_GREETING:
		if (c->code != 220)
			client_abort(c, "%s", c->text);
		else
			client_ehlo(c);
		break;
	case CLIENT_EHLO:
		if (ok) {
			c->esmtp = true;
			client_after_ehlo(c);
		} else if (c->code >= 500 && !c->tls_on && !c->job->lmtp) {
			c->state = CLIENT_HELO;
			client_send(c, CLIENT_TIMEOUT_OTHER, "HELO %s", c->job->cfg->hostname);
		} else {
			client_abort(c, "%s", c->text);
		}
		break;
	case CLIENT_HELO:
		if (ok)
			client_after_ehlo(c);
		else
			client_abort(c, "%s", c->text);
		break;
	case CLIENT_STARTTLS:
		if (c->code == 220) {
			client_starttls(c);
		} else if (c->job->relay) {
			client_abort(c, "%s", c->text);
		} else {
			c->starttls = false; /* go on in plaintext */
			client_after_ehlo(c);
		}
		break;
	case CLIENT_AUTH:
		if (c->code == 235)
			client_start_transaction(c);
		else /* a configuration problem: defer rather than bounce */
			client_abort(c, "451 4.7.0 relay host refused AUTH: %s", c->text);
		break;
	case CLIENT_MAIL:
		c->mail_ok = ok;
		if (!ok)
			client_fail_rest(c, c->text, false);
		if (c->pipelining) {
			c->state = CLIENT_RCPT;
			if (c->job->n_rcpts == 0)
				c->state = CLIENT_DATA;
		} else if (!ok) {
			client_quit(c);
		} else {
			c->state = CLIENT_RCPT;
			client_send_rcpt(c, 0);
			client_set_timeout(c, CLIENT_TIMEOUT_RCPT);
		}
		break;
	case CLIENT_RCPT:
		if (!c->mail_ok) { /* pipelined RCPT after a refused MAIL */
			if (++c->rcpt_next == c->job->n_rcpts)
				c->state = CLIENT_DATA;
			break;
		}
		client_rcpt_reply(c);
		if (c->pipelining && c->rcpt_next == c->job->n_rcpts)
			c->state = CLIENT_DATA;
		break;
	case CLIENT_DATA:
		client_data_reply(c);
		break;
	case CLIENT_DOT:
		if (c->job->lmtp) {
			client_lmtp_reply(c);
			break;
		}
		/* SMTP: the reply applies to every accepted one */
		for (size_t i = 0; i < c->job->n_rcpts; i++) {
			struct client_rcpt *r = &c->job->rcpts[i];
			if (r->code >= 200 && r->code < 300) {
				r->code = c->code;
				str_copy(r->reply, c->text, sizeof(r->reply));
			}
		}
		client_after_dot(c, ok);
		break;
	case CLIENT_FLUSH_DOT:
		client_quit(c);
		break;
	case CLIENT_QUIT:
		client_finish(c);
		break;
	default:
		client_abort(c, "451 4.5.0 Unexpected reply from %s", c->job->host.name);
		break;
	}
}

/* Read reply lines: "CODE-text" continues, "CODE text" ends (RFC 5321
 * §4.2.1).  The first line's text is kept, later ones are appended while
 * room remains.
 *
 * Only client_read_cb calls this, with c->in_read set, so client_finish()
 * inside never frees c: client_read_cb releases it afterwards.  GCC 12 at
 * -O2 cannot see that the flag survives the libevent calls in between and
 * warns (-Wuse-after-free) about a path that cannot happen. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuse-after-free"
static int client_read_replies(struct smtp_client *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	while (c->state != CLIENT_DONE && c->state != CLIENT_TLS) {
		size_t len;
		char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
		int code;
		if (line == NULL) {
			if (evbuffer_get_length(in) > CLIENT_REPLY_LINE_MAX) {
				client_abort(c, "451 4.5.0 Over-long reply line from %s",
					     c->job->host.name);
				return -1;
			}
			return 0;
		}
		if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
		    line[2] < '0' || line[2] > '9' || (len > 3 && line[3] != ' ' && line[3] != '-') ||
		    ++c->lines > CLIENT_REPLY_LINES_MAX) {
			free(line);
			client_abort(c, "451 4.5.0 Malformed reply from %s", c->job->host.name);
			return -1;
		}
		code = atoi(line);
		if (c->lines == 1) {
			c->code = code;
			str_copy(c->text, line, sizeof(c->text));
		} else if (code != c->code) {
			free(line);
			client_abort(c, "451 4.5.0 Inconsistent reply codes from %s",
				     c->job->host.name);
			return -1;
		} else if (c->state == CLIENT_EHLO && len > 4) {
			client_ehlo_line(c, line + 4);
		}
		if (len > 3 && line[3] == '-') {
			free(line);
			continue;
		}
		free(line);
		c->lines = 0;
		client_reply(c);
	}
	return 0;
}
#pragma GCC diagnostic pop

static void client_read_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;

	(void)bev;
	if (c->state == CLIENT_IDLE || c->state == CLIENT_CLOSING) {
		client_idle_event(c, 0);
		return;
	}
	c->in_read = true;
	client_read_replies(c);
	c->in_read = false;
	if (c->finished)
		client_release(c);
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_client *c = arg;

	(void)bev;
	if (c->state == CLIENT_IDLE || c->state == CLIENT_CLOSING) {
		client_idle_event(c, what);
		return;
	}
	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == CLIENT_TLS) {
			client_tls_done(c);
			client_ehlo(c);
			return;
		}
		c->job->connected = true;
		if (c->job->relay && c->job->cfg->relay_tls == TLS_MODE_IMPLICIT)
			client_tls_done(c);
		c->state = CLIENT_GREETING;
		client_set_timeout(c, CLIENT_TIMEOUT_GREETING);
		return;
	}
	if (c->state == CLIENT_QUIT) { /* closed after our QUIT: fine */
		client_finish(c);
		return;
	}
	if (c->state == CLIENT_TLS)
		c->job->tls_failed = true;
	if (what & BEV_EVENT_TIMEOUT)
		client_abort(c, "451 4.4.2 Timeout talking to %s[%s]", c->job->host.name,
			     c->job->host.addr);
	else if (c->state == CLIENT_CONNECTING)
		client_abort(c, "451 4.4.1 Cannot connect to %s[%s]:%u", c->job->host.name,
			     c->job->host.addr, c->job->host.port);
	else if (c->state == CLIENT_TLS)
		client_abort(c, "451 4.7.5 TLS handshake with %s[%s] failed", c->job->host.name,
			     c->job->host.addr);
	else
		client_abort(c, "451 4.4.2 Connection to %s[%s] lost", c->job->host.name,
			     c->job->host.addr);
}

static void client_finish(struct smtp_client *c)
{
	if (c->finished)
		return;
	c->finished = true;
	c->state = CLIENT_DONE;
	if (!c->in_read)
		client_release(c);
}

/* After client_finish() with c->keep: the job ends, the connection
 * goes to the caller through job->kept. */
static void client_release_kept(struct smtp_client *c)
{
	struct client_job *job = c->job;

	c->keep = false;
	c->finished = false;
	c->state = CLIENT_IDLE;
	c->job = NULL;
	job->client = NULL;
	job->kept = c;
	c->done(job, c->arg); /* may reuse c at once: do not touch it after */
}

/* After client_finish(), outside the reply loop. */
static void client_release(struct smtp_client *c)
{
	if (c->keep && c->bev != NULL) {
		client_release_kept(c);
		return;
	}
	/* everyone not answered yet shares the session's reply */
	if (!c->job->next_host)
		client_fail_rest(c, c->job->reply[0] != '\0' ? c->job->reply :
			"451 4.4.2 No reply for this recipient", false);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	c->bev = NULL;
	if (c->once != NULL)
		event_free(c->once);
	c->job->client = NULL;
	c->done(c->job, c->arg);
	free(c);
}

void smtp_client_cancel(struct smtp_client *c)
{
	if (c == NULL || c->finished)
		return;
	c->finished = true;
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	c->bev = NULL;
	if (c->once != NULL)
		event_free(c->once);
	free(c);
}

/* ---- kept connections -------------------------------------------------------- */

static void client_free_idle(struct smtp_client *c)
{
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	free(c);
}

/* Parked: the far side said something or closed (what 0: input), or the
 * idle time is up.  Closing: QUIT's reply, EOF or its timeout. */
static void client_idle_event(struct smtp_client *c, short what)
{
	client_closed_fn *closed = c->closed;
	void *arg = c->closed_arg;

	if (c->state == CLIENT_CLOSING) {
		client_free_idle(c);
		if (closed != NULL)
			closed(arg, true);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		/* RFC 5321 §4.1.1.10: QUIT, and wait for its reply */
		log_debug("queue host=%s[%s] idle connection closed (QUIT)", c->host.name,
			  c->host.addr);
		c->state = CLIENT_CLOSING;
		evbuffer_drain(bufferevent_get_input(c->bev),
			       evbuffer_get_length(bufferevent_get_input(c->bev)));
		evbuffer_add(bufferevent_get_output(c->bev), "QUIT\r\n", 6);
		client_set_timeout(c, CLIENT_TIMEOUT_QUIT_IDLE);
		/* a timeout disables reading: on again for QUIT's reply */
		bufferevent_enable(c->bev, EV_READ | EV_WRITE);
		if (closed != NULL)
			closed(arg, false);
		return;
	}
	log_info("queue host=%s[%s] idle connection ended by the far side", c->host.name,
		 c->host.addr);
	client_free_idle(c);
	if (closed != NULL)
		closed(arg, true);
}

int smtp_client_park(struct smtp_client *c, client_closed_fn *closed, void *arg)
{
	if (c->bev == NULL || evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		return -1; /* something arrived after the 250 (421?): not usable */
	c->state = CLIENT_IDLE;
	c->closed = closed;
	c->closed_arg = arg;
	client_set_timeout(c, CLIENT_IDLE_S);
	return 0;
}

void smtp_client_reuse(struct smtp_client *c, struct client_job *job, client_done_fn *done,
		       void *arg)
{
	c->job = job;
	c->done = done;
	c->arg = arg;
	c->closed = NULL;
	c->state = CLIENT_MAIL;
	c->code = 0;
	c->lines = 0;
	c->rcpt_next = c->accepted = 0;
	c->mail_ok = c->finished = c->keep = false;
	job->client = c;
	job->connected = true;
	job->reused = true;
	str_copy(job->tls, c->tls, sizeof(job->tls));
	log_info("queue id=%s host=%s[%s] reusing connection (message %u on it)%s%s%s",
		 job->env->id, c->host.name, c->host.addr, c->messages + 1,
		 c->tls_on ? " tls=\"" : "", c->tls_on ? c->tls : "", c->tls_on ? "\"" : "");
	client_start_transaction(c);
}

static void client_finish_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	client_finish(arg);
}

int smtp_client_start(struct event_base *base, SSL_CTX *tls, struct client_job *job,
		      client_done_fn *done, void *arg)
{
	struct smtp_client *c = calloc(1, sizeof(*c));
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct timeval tv = { CLIENT_TIMEOUT_CONNECT, 0 };

	if (c == NULL)
		return -1;
	c->base = base;
	c->tls_ctx = tls;
	c->job = job;
	c->done = done;
	c->arg = arg;
	c->state = CLIENT_CONNECTING;
	c->host = job->host;
	job->client = c;
	memset(&ss, 0, sizeof(ss));
	if (job->host.family == AF_UNIX) { /* a shard's LMTP socket */
		struct sockaddr_un *su = (struct sockaddr_un *)&ss;
		su->sun_family = AF_UNIX;
		str_copy(su->sun_path, job->host.addr, sizeof(su->sun_path));
		sslen = sizeof(*su);
	} else if (job->host.family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)job->host.port);
		inet_pton(AF_INET6, job->host.addr, &s6->sin6_addr);
		sslen = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)job->host.port);
		inet_pton(AF_INET, job->host.addr, &s4->sin_addr);
		sslen = sizeof(*s4);
	}
	if (job->relay && job->cfg->relay_tls == TLS_MODE_IMPLICIT) {
		SSL *ssl = tls != NULL ? client_new_ssl(c) : NULL;
		if (ssl != NULL)
			c->bev = bufferevent_openssl_socket_new(base, -1, ssl,
				BUFFEREVENT_SSL_CONNECTING,
				BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (c->bev != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
		else if (ssl != NULL)
			SSL_free(ssl);
	} else {
		c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	}
	if (c->bev == NULL) {
		free(c);
		return -1;
	}
	bufferevent_setcb(c->bev, client_read_cb, NULL, client_event_cb, c);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss, (int)sslen) < 0) {
		/* report the failure from the loop, never from inside start */
		snprintf(job->reply, sizeof(job->reply), "451 4.4.1 Cannot connect to %s[%s]:%u",
			 job->host.name, job->host.addr, job->host.port);
		job->next_host = true;
		bufferevent_free(c->bev);
		c->bev = NULL;
		c->once = evtimer_new(base, client_finish_cb, c);
		if (c->once == NULL) {
			free(c);
			return -1;
		}
		event_active(c->once, EV_TIMEOUT, 1);
	}
	return 0;
}
