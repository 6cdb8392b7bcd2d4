/* SMTP sessions: connection events, the input loop, the state machine,
 * replies, the pregreet test, timeouts and graceful stop.  LMTP (role
 * lmtp) is the same session in another mode (smtp_lmtp.c).
 *
 * Input comes from core/conn, the daemon's one reader: command lines in
 * line mode (CRLF only: a bare LF or CR never ends a line, RFC 5321 §2.3.8
 * and SMTP smuggling), message text of DATA and BDAT in raw mode.  The
 * chunk that ends a message may also hold the next pipelined commands (RFC
 * 2920): the text handler says how much it used and the rest goes back
 * with conn_unread(), to be read again as lines, so ordering is exact
 * whatever the client pipelines (smtp_input_mode).  Before the greeting
 * on port 25 the connection is raw too, so that any byte at all fails the
 * pregreet test.  While a command waits for a worker (password check,
 * quota check, store write, commit) the session is "busy": the connection
 * is paused and what the client sent meanwhile waits in conn's input.
 *
 * Timeouts.  One idle timeout, cfg->smtp_timeout (default 300 s), for
 * every state: RFC 5321 §4.5.3.2 asks for 5 minutes for commands, 3 for
 * the DATA initiation and 10 for the end of data; with a 300 s default a
 * single value satisfies all but the last (a client that stalls 5 to 10
 * minutes after sending the final dot), which we accept.
 *
 * Enhanced status codes (RFC 2034 §3) are on every reply except the
 * greeting and the EHLO/HELO replies, which RFC 2034 exempts, and the
 * 334/354 intermediate replies, which carry no status class.
 */
#include "smtp_private.h"
#include "smtp_inbound.h"
#include "smtp_queue.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "smtp.h"

static const char *const smtp_state_names[] = {
	[SMTP_STATE_PREGREET] = "pregreet", [SMTP_STATE_INIT] = "init",
	[SMTP_STATE_READY] = "ready",       [SMTP_STATE_MAIL] = "mail",
	[SMTP_STATE_RCPT] = "rcpt",         [SMTP_STATE_DATA] = "data",
	[SMTP_STATE_BDAT] = "bdat",         [SMTP_STATE_CHUNKING] = "chunking",
	[SMTP_STATE_AUTH] = "auth",         [SMTP_STATE_TLS] = "tls",
	[SMTP_STATE_QUIT] = "quit",
};

void smtp_enter_state(struct smtp_session *s, enum smtp_state state)
{
	if (s->state == state)
		return;
	conn_log(s->conn, LOG_LEVEL_DEBUG, "smtp state %s -> %s", smtp_state_names[s->state],
		 smtp_state_names[state]);
	s->state = state;
}

/* Write one reply line; returns its first octet (the reply class). */
static char smtp_vreply(struct smtp_session *s, const char *fmt, va_list ap)
{
	char line[SMTP_REPLY_MAX + 8];
	int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);

	if (n < 1)
		return '\0';
	if ((size_t)n > sizeof(line) - 3)
		n = (int)sizeof(line) - 3;
	line[n++] = '\r';
	line[n++] = '\n';
	conn_write(s->conn, line, (size_t)n);
	conn_log(s->conn, line[0] == '5' ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG, "smtp reply %.*s",
		 n - 2, line);
	return line[0];
}

void smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;
	char c;

	va_start(ap, fmt);
	c = smtp_vreply(s, fmt, ap);
	va_end(ap);
	if (c == '2' || c == '3')
		s->bad_commands = 0;
	else if (c == '5' && ++s->bad_commands >= SMTP_BAD_COMMANDS_MAX)
		smtp_close(s, "421 4.7.0 %s Too many errors, closing connection",
			   s->ctx->cfg->hostname);
}

void smtp_reply_line(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_vreply(s, fmt, ap);
	va_end(ap);
}

void smtp_end_reply(struct smtp_session *s, const char *fmt, ...)
{
	char text[SMTP_REPLY_MAX];
	size_t n = s->role == ROLE_LMTP ? smtp_lmtp_accepted(s) : 1;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* the transaction's one failure counts once */
	for (size_t i = 1; i < n; i++)
		smtp_reply_line(s, "%s", text);
	smtp_reply(s, "%s", text);
}

void smtp_close(struct smtp_session *s, const char *fmt, ...)
{
	va_list ap;

	if (s->state == SMTP_STATE_QUIT)
		return;
	va_start(ap, fmt);
	smtp_vreply(s, fmt, ap);
	va_end(ap);
	if (s->state == SMTP_STATE_AUTH)
		smtp_auth_abort(s);
	smtp_enter_state(s, SMTP_STATE_QUIT);
	conn_close(s->conn);
}

void smtp_busy(struct smtp_session *s)
{
	s->busy = true;
	conn_pause(s->conn);
}

void smtp_unbusy(struct smtp_session *s)
{
	s->busy = false;
	if (conn_is_closing(s->conn) || s->state == SMTP_STATE_QUIT)
		return;
	smtp_input_mode(s);
	conn_resume(s->conn);
}

int smtp_submit(struct smtp_session *s, worker_work_fn *work, worker_done_fn *done)
{
	return smtp_submit_kind(s, WORKER_IO, work, done);
}

int smtp_submit_kind(struct smtp_session *s, enum worker_kind kind, worker_work_fn *work,
		     worker_done_fn *done)
{
	smtp_busy(s);
	if (conn_submit_kind(s->conn, kind, work, done, s) < 0) {
		conn_log(s->conn, LOG_LEVEL_ERROR, "smtp: cannot queue a worker job");
		s->busy = false;
		conn_resume(s->conn);
		return -1;
	}
	return 0;
}

void smtp_make_id(char out[SMTP_ID_LEN + 1])
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char raw[SMTP_ID_LEN / 2];

	if (random_bytes(raw, sizeof(raw)) < 0)
		memset(raw, 0, sizeof(raw)); /* ids are labels, not secrets */
	for (size_t i = 0; i < sizeof(raw); i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[SMTP_ID_LEN] = '\0';
}

void smtp_tx_reset(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;

	if (tx->msg != NULL)
		smtp_msg_free(s, tx->msg);
	free(tx->rcpts);
	free(tx->owners);
	free(tx->pending_owners);
	free(tx->links);
	memset(tx, 0, sizeof(*tx));
}

bool smtp_starttls_allowed(const struct smtp_session *s)
{
	return s->tls_mode == TLS_MODE_STARTTLS && s->ctx->cfg->n_certs > 0 &&
	       !conn_is_tls(s->conn);
}

/* RFC 4954 §4 and RFC 8314 §3: submission only, never in plaintext except
 * on loopback when the configuration allows it. */
bool smtp_auth_allowed(const struct smtp_session *s)
{
	if (!smtp_is_submission(s))
		return false;
	return conn_is_tls(s->conn) ||
	       (conn_peer_is_loopback(s->conn) && s->ctx->cfg->allow_plaintext_auth_on_loopback);
}

/* ---- input ------------------------------------------------------------------ */

/* Message text is read raw, everything else as lines. */
void smtp_input_mode(struct smtp_session *s)
{
	bool text = s->state == SMTP_STATE_DATA || s->state == SMTP_STATE_BDAT;

	if (s->state == SMTP_STATE_PREGREET || s->state == SMTP_STATE_QUIT ||
	    s->state == SMTP_STATE_TLS || text == s->reading_text)
		return;
	s->reading_text = text;
	if (text)
		conn_read_raw(s->conn);
	else
		conn_read_lines(s->conn, SMTP_AUTH_LINE_MAX, false);
}

static void smtp_on_line(struct smtp_session *s, const char *data, size_t len)
{
	char line[SMTP_AUTH_LINE_MAX + 1];

	if (s->state == SMTP_STATE_QUIT || s->state == SMTP_STATE_TLS)
		return; /* RFC 3207 §4.2: nothing sent before the handshake runs */
	memcpy(line, data, len);
	line[len] = '\0';
	if (memchr(line, '\0', len) != NULL) {
		if (s->state == SMTP_STATE_AUTH) {
			smtp_auth_abort(s);
			smtp_enter_state(s, SMTP_STATE_READY);
		}
		smtp_reply(s, "500 5.5.2 NUL octet in command line");
		return;
	}
	if (s->state == SMTP_STATE_AUTH)
		smtp_auth_response(s, line, len);
	else
		smtp_command(s, line, len);
	smtp_input_mode(s); /* DATA or BDAT switch to message text */
}

static void smtp_on_line_too_long(struct smtp_session *s)
{
	if (s->state == SMTP_STATE_QUIT || s->state == SMTP_STATE_TLS)
		return;
	if (s->state == SMTP_STATE_AUTH) {
		smtp_auth_abort(s);
		smtp_enter_state(s, SMTP_STATE_READY);
		smtp_reply(s, "500 5.5.6 Authentication exchange line is too long");
	} else {
		smtp_reply(s, "500 5.5.2 Line too long");
	}
}

static void smtp_on_bytes(struct smtp_session *s, const char *data, size_t len)
{
	size_t used = 0;

	if (s->state == SMTP_STATE_PREGREET) {
		/* RFC 5321 §4.3.1: the client waits for the greeting; one that
		 * talks first is a bot that does not read replies. */
		conn_log(s->conn, LOG_LEVEL_INFO, "smtp pregreet rip=%s: client spoke before the greeting",
			 conn_peer_addr(s->conn));
		if (s->timer != NULL)
			evtimer_del(s->timer);
		smtp_close(s, "554 5.5.1 %s Protocol error: talking before the greeting",
			   s->ctx->cfg->hostname);
		return;
	}
	while (used < len && !s->busy && !conn_is_closing(s->conn) &&
	       (s->state == SMTP_STATE_DATA || s->state == SMTP_STATE_BDAT))
		used += smtp_data_input(s, data + used, len - used);
	if (conn_is_closing(s->conn))
		return;
	/* The end of the message, or a wait for the store: the rest (the next
	 * pipelined commands, or more text) is read again afterwards. */
	conn_unread(s->conn, data + used, len - used);
	if (!s->busy)
		smtp_input_mode(s);
}

static void smtp_greet(struct smtp_session *s)
{
	if (s->role == ROLE_LMTP)
		smtp_lmtp_greet(s);
	else
		conn_printf(s->conn, "220 %s ESMTP Postern\r\n", s->ctx->cfg->hostname);
	smtp_enter_state(s, SMTP_STATE_INIT);
	smtp_input_mode(s);
}

static void smtp_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	(void)fd;
	(void)what;
	if (s->state == SMTP_STATE_PREGREET) {
		s->pregreet_waited = true;
		smtp_greet(s);
	} else
		smtp_auth_timer(s);
}

int smtp_timer_start(struct smtp_session *s, unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (s->timer == NULL)
		s->timer = evtimer_new(server_event_base(s->ctx->srv), smtp_on_timer, s);
	if (s->timer == NULL || evtimer_add(s->timer, &tv) < 0)
		return -1;
	return 0;
}

static void smtp_free(struct smtp_session *s)
{
	smtp_tx_reset(s);
	if (s->sasl != NULL)
		sasl_free(s->sasl);
	if (s->timer != NULL)
		event_free(s->timer);
	free(s);
}

static void smtp_on_event(struct conn *conn, enum conn_event ev, const char *data,
			  size_t len, void *session)
{
	struct smtp_session *s = session;

	(void)conn;
	switch (ev) {
	case CONN_EV_BYTES:
		smtp_on_bytes(s, data, len);
		break;
	case CONN_EV_LINE:
		smtp_on_line(s, data, len);
		break;
	case CONN_EV_LINE_TOO_LONG:
		smtp_on_line_too_long(s);
		break;
	case CONN_EV_DRAINED:
		break;
	case CONN_EV_TIMEOUT:
		conn_log(s->conn, LOG_LEVEL_INFO, "smtp timeout state=%s", smtp_state_names[s->state]);
		smtp_close(s, "421 4.4.2 %s Error: timeout exceeded", s->ctx->cfg->hostname);
		break;
	case CONN_EV_TLS_READY: {
		char desc[128];
		conn_tls_describe(s->conn, desc, sizeof(desc));
		conn_log(s->conn, LOG_LEVEL_DEBUG, "smtp starttls done: %s", desc);
		smtp_enter_state(s, SMTP_STATE_INIT);
		break;
	}
	case CONN_EV_CLOSED:
		conn_log(s->conn, LOG_LEVEL_DEBUG, "smtp disconnect messages=%lu", s->messages);
		smtp_free(s);
		break;
	}
}

/* Port 25 only, never for trusted networks, and only once per TTL for a
 * client that passed. */
static bool smtp_pregreet_needed(const struct smtp_session *s)
{
	if (s->role != ROLE_SMTP || s->ctx->pregreet == NULL || conn_peer_is_trusted(s->conn))
		return false;
	if (smtp_pregreet_passed(s->ctx->pregreet, conn_peer_addr(s->conn), time(NULL))) {
		conn_log(s->conn, LOG_LEVEL_DEBUG, "smtp pregreet remembered rip=%s",
			 conn_peer_addr(s->conn));
		return false;
	}
	return true;
}

static void smtp_accept(struct conn *conn, enum listener_role role, void *ctx_arg)
{
	struct smtp_ctx *ctx = ctx_arg;
	struct smtp_session *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		conn_write(conn, "421 4.3.0 Out of memory\r\n", 25);
		conn_close(conn);
		return;
	}
	s->ctx = ctx;
	s->conn = conn;
	s->role = role;
	s->tls_mode = conn_tls_mode(conn);
	conn_set_handler(conn, smtp_on_event, s);
	conn_set_timeout(conn, ctx->cfg->smtp_timeout);
	conn_read_raw(conn); /* any byte before the greeting fails the pregreet test */
	s->reading_text = true;
	s->state = SMTP_STATE_PREGREET;
	if (smtp_pregreet_needed(s) && smtp_timer_start(s, ctx->cfg->smtp_pregreet_delay_ms) == 0)
		return;
	smtp_greet(s);
}

/* Graceful stop: a session in the middle of a message or waiting for the
 * store is left alone until it is done (the server polls again). */
static void smtp_stop(struct conn *conn, void *session)
{
	struct smtp_session *s = session;

	(void)conn;
	if (s == NULL || s->busy || s->state == SMTP_STATE_DATA || s->state == SMTP_STATE_BDAT ||
	    s->state == SMTP_STATE_CHUNKING || s->state == SMTP_STATE_TLS)
		return;
	smtp_close(s, "421 4.3.2 %s Service shutting down", s->ctx->cfg->hostname);
}

static void smtp_ctx_free(void *arg)
{
	struct smtp_ctx *ctx = arg;

	smtp_pregreet_free(ctx->pregreet);
	smtp_dns_cache_free(ctx->dns);
	dmarc_psl_free(ctx->psl);
	free(ctx);
}

static void smtp_outq_free_hook(void *arg)
{
	smtp_outq_free(arg);
}

/* The inbound checks' DNS cache and the Public Suffix List (DMARC). */
static int smtp_inbound_setup(struct smtp_ctx *ctx, char *err, size_t errlen)
{
	ctx->dns = smtp_dns_cache_new(ctx->cfg);
	if (ctx->dns == NULL) {
		snprintf(err, errlen, "smtp: out of memory");
		return -1;
	}
	ctx->psl = dmarc_psl_load(DMARC_PSL_PATH);
	if (ctx->psl == NULL)
		log_error("smtp: cannot read the Public Suffix List %s (Debian package "
			  "publicsuffix): DMARC takes the last two labels of a domain as its "
			  "organisational domain", DMARC_PSL_PATH);
	return 0;
}

int smtp_register(struct server *srv, struct auth *auth, struct md_store *store,
		  char *err, size_t errlen)
{
	struct smtp_ctx *ctx = calloc(1, sizeof(*ctx));
	struct server_protocol proto = {
		.name = "smtp",
		.accept = smtp_accept,
		.stop = smtp_stop,
		.busy_reply = "421 4.7.0 Too many connections, try again later\r\n",
	};

	if (ctx == NULL) {
		snprintf(err, errlen, "smtp: out of memory");
		return -1;
	}
	ctx->srv = srv;
	ctx->auth = auth;
	ctx->store = store;
	ctx->cfg = server_config(srv);
	if (ctx->cfg->smtp_pregreet_delay_ms > 0) {
		ctx->pregreet = smtp_pregreet_new(ctx->cfg->smtp_pregreet_cache_max,
						  ctx->cfg->smtp_pregreet_ttl);
		if (ctx->pregreet == NULL) {
			free(ctx);
			snprintf(err, errlen, "smtp: out of memory");
			return -1;
		}
	}
	if (smtp_inbound_setup(ctx, err, errlen) < 0) {
		smtp_pregreet_free(ctx->pregreet);
		free(ctx);
		return -1;
	}
	proto.ctx = ctx;
	server_set_protocol(srv, ROLE_SMTP, &proto);
	server_set_protocol(srv, ROLE_SUBMISSION, &proto);
	server_set_protocol(srv, ROLE_SUBMISSIONS, &proto);
	server_set_protocol(srv, ROLE_LMTP, &proto);
	server_on_free(srv, smtp_ctx_free, ctx);
	if (ctx->cfg->outbound_delivery) {
		/* freed before ctx: free hooks run in reverse order */
		ctx->outq = smtp_outq_new(ctx);
		if (ctx->outq == NULL) {
			snprintf(err, errlen, "smtp: cannot start the outbound queue in %s/queue",
				 ctx->cfg->data_dir);
			return -1;
		}
		server_on_free(srv, smtp_outq_free_hook, ctx->outq);
	}
	smtp_shard_check(ctx);
	return 0;
}
