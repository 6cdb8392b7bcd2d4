/* ManageSieve server: registration, connection events, the command table,
 * dispatch, replies, and CAPABILITY / NOOP / LOGOUT (RFC 5804 §2).
 *
 * One session per connection.  Commands run one at a time: a command that
 * needs a worker (login, every script command) pauses reading, so
 * pipelined commands wait in the input buffer and are answered in order.
 * Memory: see msieve_private.h.
 */
#include "msieve_private.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "server.h"
#include "store.h"
#include "util.h"
#ifdef POSTERN_HAVE_SIEVE
#include "sieve.h"
#endif

static msieve_handler_fn msieve_cmd_capability, msieve_cmd_noop, msieve_cmd_logout;

#define MSIEVE_ANY (MSIEVE_IN_NONAUTH | MSIEVE_IN_AUTH)

/* RFC 5804 §2.  State and argument counts are checked before a handler
 * runs; handlers check argument types. */
static const struct msieve_verb msieve_verbs[] = {
	{ "CAPABILITY", MSIEVE_ANY, 0, 0, msieve_cmd_capability },
	{ "NOOP", MSIEVE_ANY, 0, 1, msieve_cmd_noop },
	{ "LOGOUT", MSIEVE_ANY, 0, 0, msieve_cmd_logout },
	{ "STARTTLS", MSIEVE_IN_NONAUTH, 0, 0, msieve_cmd_starttls },
	{ "AUTHENTICATE", MSIEVE_IN_NONAUTH, 1, 2, msieve_cmd_authenticate },
	{ "UNAUTHENTICATE", MSIEVE_IN_AUTH, 0, 0, msieve_cmd_unauthenticate },
	{ "HAVESPACE", MSIEVE_IN_AUTH, 2, 2, msieve_cmd_havespace },
	{ "PUTSCRIPT", MSIEVE_IN_AUTH, 2, 2, msieve_cmd_putscript },
	{ "CHECKSCRIPT", MSIEVE_IN_AUTH, 1, 1, msieve_cmd_checkscript },
	{ "LISTSCRIPTS", MSIEVE_IN_AUTH, 0, 0, msieve_cmd_listscripts },
	{ "SETACTIVE", MSIEVE_IN_AUTH, 1, 1, msieve_cmd_setactive },
	{ "GETSCRIPT", MSIEVE_IN_AUTH, 1, 1, msieve_cmd_getscript },
	{ "DELETESCRIPT", MSIEVE_IN_AUTH, 1, 1, msieve_cmd_deletescript },
	{ "RENAMESCRIPT", MSIEVE_IN_AUTH, 2, 2, msieve_cmd_renamescript },
};

static const struct msieve_verb *msieve_verb_find(const char *verb)
{
	for (size_t i = 0; i < sizeof(msieve_verbs) / sizeof(msieve_verbs[0]); i++)
		if (strcmp(msieve_verbs[i].verb, verb) == 0)
			return &msieve_verbs[i];
	return NULL;
}

/* ---- replies and state ------------------------------------------------- */

void msieve_enter_state(struct msieve_session *s, enum msieve_state state)
{
	conn_log(s->conn, LOG_LEVEL_DEBUG, "managesieve state=%s->%s",
		 s->state == MSIEVE_STATE_AUTH ? "AUTH" : "NONAUTH",
		 state == MSIEVE_STATE_AUTH ? "AUTH" : "NONAUTH");
	s->state = state;
}

/* RFC 5804 §4: a quoted string holds no CR, LF or NUL; '"' and '\' are
 * escaped.  Our texts (and a Sieve compiler's messages) fit that once
 * control characters become spaces. */
void msieve_quote(struct msieve_session *s, const char *text)
{
	char out[2 * MSIEVE_TEXT_MAX + 3];
	size_t o = 0;

	out[o++] = '"';
	for (const char *p = text; *p != '\0' && p - text < MSIEVE_TEXT_MAX; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch == '"' || ch == '\\')
			out[o++] = '\\';
		out[o++] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
	}
	out[o++] = '"';
	conn_write(s->conn, out, o);
}

void msieve_reply(struct msieve_session *s, const char *status, const char *code,
		  const char *text)
{
	conn_printf(s->conn, "%s", status);
	if (code != NULL)
		conn_printf(s->conn, " (%s)", code);
	if (text != NULL) {
		conn_write(s->conn, " ", 1);
		msieve_quote(s, text);
	}
	conn_write(s->conn, "\r\n", 2);
	if (strcmp(status, "BYE") == 0) {
		conn_close(s->conn);
		return;
	}
	if (strcmp(status, "NO") != 0) {
		s->errors = 0;
		return;
	}
	if (++s->errors >= MSIEVE_ERRORS_MAX && !conn_is_closing(s->conn)) {
		conn_log(s->conn, LOG_LEVEL_INFO, "managesieve too many errors rip=%s",
			 conn_peer_addr(s->conn));
		msieve_reply(s, "BYE", NULL, "Too many errors");
	}
}

bool msieve_login_allowed(const struct msieve_session *s)
{
	const struct config *cfg = server_config(conn_server(s->conn));

	/* The same rule as IMAP and POP3 (DESIGN.md): plaintext passwords
	 * only over TLS, or on loopback when the configuration allows it. */
	return conn_is_tls(s->conn) ||
	       (conn_peer_is_loopback(s->conn) && cfg->allow_plaintext_auth_on_loopback);
}

static const char *msieve_extensions(void)
{
#ifdef POSTERN_HAVE_SIEVE
	return sieve_extensions();
#else
	return ""; /* no interpreter in this build: no extension either */
#endif
}

/* RFC 5804 §1.7 MAXREDIRECTS: what the interpreter allows one run. */
static int msieve_max_redirects(void)
{
#ifdef POSTERN_HAVE_SIEVE
	return SIEVE_REDIRECTS_MAX;
#else
	return 0;
#endif
}

void msieve_capability(struct msieve_session *s)
{
	/* RFC 5804 §1.7.  SASL lists no mechanism where a password may not
	 * be sent yet (RFC 5804 §2.1: clients look again after STARTTLS). */
	conn_printf(s->conn, "\"IMPLEMENTATION\" \"Postern\"\r\n\"SASL\" \"%s\"\r\n",
		    msieve_login_allowed(s) ? "PLAIN" : "");
	conn_write(s->conn, "\"SIEVE\" ", 8);
	msieve_quote(s, msieve_extensions());
	conn_write(s->conn, "\r\n", 2);
	if (s->starttls_allowed && !conn_is_tls(s->conn) && s->state == MSIEVE_STATE_NONAUTH)
		conn_printf(s->conn, "\"STARTTLS\"\r\n");
	conn_printf(s->conn, "\"MAXREDIRECTS\" \"%d\"\r\n", msieve_max_redirects());
	if (s->state == MSIEVE_STATE_AUTH) {
		conn_write(s->conn, "\"OWNER\" ", 8);
		msieve_quote(s, s->canonical);
		conn_write(s->conn, "\r\n", 2);
	}
	conn_printf(s->conn, "\"UNAUTHENTICATE\"\r\n\"VERSION\" \"1.0\"\r\n");
}

void msieve_begin_async(struct msieve_session *s)
{
	s->busy = true;
	conn_pause(s->conn);
}

void msieve_command_done(struct msieve_session *s)
{
	s->busy = false;
	if (!conn_is_closing(s->conn))
		conn_resume(s->conn);
}

/* ---- commands of every state ------------------------------------------- */

static void msieve_cmd_capability(struct msieve_session *s, struct msieve_command *cmd)
{
	(void)cmd;
	msieve_capability(s);
	msieve_reply(s, "OK", NULL, "Capability completed");
}

static void msieve_cmd_noop(struct msieve_session *s, struct msieve_command *cmd)
{
	if (cmd->nargs == 0) {
		msieve_reply(s, "OK", NULL, "Done");
		return;
	}
	if (cmd->args[0].type != MSIEVE_ARG_STRING ||
	    cmd->args[0].len > MSIEVE_TEXT_MAX - 2 || memchr(cmd->args[0].data, '\0', cmd->args[0].len)) {
		msieve_reply(s, "NO", NULL, "NOOP takes one short string");
		return;
	}
	/* RFC 5804 §2.13: the tag comes back in a TAG response code. */
	conn_printf(s->conn, "OK (TAG ");
	msieve_quote(s, cmd->args[0].data);
	conn_printf(s->conn, ") \"Done\"\r\n");
	s->errors = 0;
}

static void msieve_cmd_logout(struct msieve_session *s, struct msieve_command *cmd)
{
	(void)cmd;
	msieve_reply(s, "OK", NULL, "Logout completed");
	conn_close(s->conn);
}

/* ---- dispatch ----------------------------------------------------------- */

static void msieve_dispatch(struct msieve_session *s, struct msieve_command *cmd)
{
	const struct msieve_verb *v;

	if (cmd->verb[0] == '\0' && cmd->error == NULL && cmd->nargs == 0)
		return; /* an empty line */
	v = cmd->error == NULL ? msieve_verb_find(cmd->verb) : NULL;
	if (cmd->error != NULL) {
		msieve_reply(s, "NO", cmd->error_code, cmd->error);
	} else if (v == NULL) {
		conn_log(s->conn, LOG_LEVEL_DEBUG, "managesieve unknown command");
		msieve_reply(s, "NO", NULL, "Unknown command");
	} else if (!(v->states & (1u << s->state))) {
		msieve_reply(s, "NO", NULL, s->state == MSIEVE_STATE_AUTH ?
			     "Not allowed once authenticated" : "Authenticate first");
	} else if (cmd->nargs < v->min_args || cmd->nargs > v->max_args) {
		msieve_reply(s, "NO", NULL, "Wrong number of arguments");
	} else {
		conn_log(s->conn, LOG_LEVEL_DEBUG, "managesieve cmd=%s", v->verb);
		v->handler(s, cmd);
	}
}

/* A complete command or SASL response: handle it, then forget it. */
static void msieve_complete(struct msieve_session *s)
{
	struct msieve_command *cmd = &s->cmd;

	if (s->sasl != NULL)
		msieve_sasl_response(s, cmd);
	else
		msieve_dispatch(s, cmd);
	msieve_command_reset(cmd);
}

static void msieve_on_line(struct msieve_session *s, const char *line, size_t len)
{
	switch (msieve_read_line(&s->cmd, line, len, s->sasl != NULL)) {
	case MSIEVE_READ_DONE:
		msieve_complete(s);
		break;
	case MSIEVE_READ_LITERAL:
		if (s->cmd.literal_left > 0)
			conn_read_bytes(s->conn, (size_t)s->cmd.literal_left);
		break; /* {0}: the next line goes on with the command */
	case MSIEVE_READ_FATAL:
		msieve_reply(s, "BYE", NULL, s->cmd.error);
		msieve_command_reset(&s->cmd);
		break;
	}
}

static void msieve_on_bytes(struct msieve_session *s, const char *data, size_t len)
{
	msieve_read_bytes(&s->cmd, data, len);
	/* then the connection reads lines again by itself: the command's
	 * next line, often empty, ends it */
}

static void msieve_session_free(struct msieve_session *s)
{
	msieve_job_free(s);
	msieve_auth_cleanup(s);
	msieve_release_user(s);
	msieve_command_reset(&s->cmd);
	free(s);
}

static void msieve_on_event(struct conn *conn, enum conn_event ev, const char *data,
			    size_t len, void *session)
{
	struct msieve_session *s = session;

	switch (ev) {
	case CONN_EV_LINE:
		msieve_on_line(s, data, len);
		break;
	case CONN_EV_LINE_TOO_LONG:
		/* the rest of the line is dropped; any literal it announced
		 * cannot be told from commands any more */
		msieve_reply(s, "BYE", NULL, "Line too long");
		break;
	case CONN_EV_BYTES:
		msieve_on_bytes(s, data, len);
		break;
	case CONN_EV_DRAINED:
		break; /* every reply is small, or queued whole by a job */
	case CONN_EV_TIMEOUT:
		conn_log(conn, LOG_LEVEL_INFO, "managesieve idle timeout user=%s",
			 s->state == MSIEVE_STATE_AUTH ? s->canonical : "-");
		msieve_reply(s, "BYE", "TRYLATER", "Idle for too long");
		break;
	case CONN_EV_TLS_READY:
		/* RFC 5804 §2.2: after the handshake the server sends its
		 * capabilities again, then OK. */
		conn_log(conn, LOG_LEVEL_DEBUG, "managesieve starttls done");
		msieve_capability(s);
		msieve_reply(s, "OK", NULL, "TLS negotiation successful");
		break;
	case CONN_EV_CLOSED:
		if (s->state == MSIEVE_STATE_AUTH)
			conn_log(conn, LOG_LEVEL_INFO, "managesieve disconnected user=%s",
				 s->canonical);
		s->closed = true;
		msieve_session_free(s);
		break;
	}
}

static void msieve_accept(struct conn *conn, enum listener_role role, void *arg)
{
	struct msieve_session *s = calloc(1, sizeof(*s));

	(void)role;
	if (s == NULL) {
		conn_write(conn, "BYE (TRYLATER) \"Out of memory\"\r\n", 32);
		conn_close(conn);
		return;
	}
	s->ctx = arg;
	s->conn = conn;
	s->state = MSIEVE_STATE_NONAUTH;
	s->starttls_allowed = conn_tls_mode(conn) == TLS_MODE_STARTTLS;
	conn_set_handler(conn, msieve_on_event, s);
	/* RFC 5804 §4 asks for CRLF; a bare LF harms nothing here (nothing
	 * is relayed) and hand-typed sessions send it. */
	conn_read_lines(conn, MSIEVE_LINE_MAX, true);
	conn_set_timeout(conn, MSIEVE_IDLE_TIMEOUT);
	conn_log(conn, LOG_LEVEL_DEBUG, "managesieve connect rip=%s tls=%s", conn_peer_addr(conn),
		 conn_tls_mode(conn) == TLS_MODE_IMPLICIT ? "implicit" : "no");
	/* RFC 5804 §1.8: the greeting is the capability response. */
	msieve_capability(s);
	msieve_reply(s, "OK", NULL, "Postern ManageSieve ready");
}

static void msieve_stop(struct conn *conn, void *session)
{
	struct msieve_session *s = session;

	/* Polled until the deadline: a script being written finishes first. */
	if (s == NULL || s->busy)
		return;
	(void)conn;
	msieve_reply(s, "BYE", "TRYLATER", "Server shutting down");
}

static void msieve_ctx_free(void *arg)
{
	free(arg);
}

int managesieve_register(struct server *srv, struct auth *auth, struct md_store *store,
			 char *err, size_t errlen)
{
	struct msieve_ctx *ctx = calloc(1, sizeof(*ctx));
	struct server_protocol proto = {
		.name = "managesieve",
		.accept = msieve_accept,
		.stop = msieve_stop,
		.busy_reply = "BYE (TRYLATER) \"Too many connections\"\r\n",
	};

	if (ctx == NULL) {
		snprintf(err, errlen, "managesieve: out of memory");
		return -1;
	}
	ctx->auth = auth;
	ctx->store = store;
	proto.ctx = ctx;
	server_on_free(srv, msieve_ctx_free, ctx);
	server_set_protocol(srv, ROLE_MANAGESIEVE, &proto);
	return 0;
}
