/* IMAP server: registration, connection events, the state machine
 * (RFC 3501 §3), the command table and dispatch, worker jobs and replies.
 *
 * One command runs at a time.  A command that needs the store pauses
 * reading and runs its work on a worker; the work formats the untagged
 * and tagged answer into s->out, which the loop writes.  Pipelined
 * commands wait in the input buffer and are answered in order.  Memory:
 * see imap_private.h.
 */
#include "imap_private.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "auth.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "server.h"
#include "store.h"
#include "util.h"

static imap_handler_fn imap_cmd_logout, imap_cmd_enable;

/* RFC 3501 §6, RFC 2177 (IDLE), RFC 2971 (ID), RFC 5161 (ENABLE), RFC 3691
 * (UNSELECT), RFC 6851 (MOVE), RFC 4315 (UID EXPUNGE).  State and syntax
 * are checked before any handler has a side effect. */
static const struct imap_command imap_commands[] = {
	{ "CAPABILITY", IMAP_IN_ANY, 0, imap_cmd_capability },
	{ "NOOP", IMAP_IN_ANY, 0, imap_cmd_noop },
	{ "LOGOUT", IMAP_IN_ANY, 0, imap_cmd_logout },
	{ "ID", IMAP_IN_ANY, 0, imap_cmd_id },
	{ "STARTTLS", IMAP_IN_NOAUTH, 0, imap_cmd_starttls },
	{ "LOGIN", IMAP_IN_NOAUTH, 0, imap_cmd_login },
	{ "AUTHENTICATE", IMAP_IN_NOAUTH, 0, imap_cmd_authenticate },
	{ "ENABLE", IMAP_IN_LOGGED, 0, imap_cmd_enable },
	{ "SELECT", IMAP_IN_LOGGED, 0, imap_cmd_select },
	{ "EXAMINE", IMAP_IN_LOGGED, 0, imap_cmd_examine },
	{ "CREATE", IMAP_IN_LOGGED, 0, imap_cmd_create },
	{ "DELETE", IMAP_IN_LOGGED, 0, imap_cmd_delete },
	{ "RENAME", IMAP_IN_LOGGED, 0, imap_cmd_rename },
	{ "SUBSCRIBE", IMAP_IN_LOGGED, 0, imap_cmd_subscribe },
	{ "UNSUBSCRIBE", IMAP_IN_LOGGED, 0, imap_cmd_unsubscribe },
	{ "LIST", IMAP_IN_LOGGED, 0, imap_cmd_list },
	{ "LSUB", IMAP_IN_LOGGED, 0, imap_cmd_lsub },
	{ "NAMESPACE", IMAP_IN_LOGGED, 0, imap_cmd_namespace },
	{ "STATUS", IMAP_IN_LOGGED, 0, imap_cmd_status },
	{ "APPEND", IMAP_IN_LOGGED, 0, imap_cmd_append },
	{ "IDLE", IMAP_IN_LOGGED, 0, imap_cmd_idle },
	{ "CHECK", IMAP_IN_SEL, 0, imap_cmd_check },
	{ "CLOSE", IMAP_IN_SEL, 0, imap_cmd_close },
	{ "UNSELECT", IMAP_IN_SEL, 0, imap_cmd_unselect },
	{ "EXPUNGE", IMAP_IN_SEL, IMAP_CMD_UID, imap_cmd_expunge },
	{ "SEARCH", IMAP_IN_SEL, IMAP_CMD_UID, imap_cmd_search },
	{ "SORT", IMAP_IN_SEL, IMAP_CMD_UID, imap_cmd_sort },
	{ "THREAD", IMAP_IN_SEL, IMAP_CMD_UID, imap_cmd_thread },
	{ "FETCH", IMAP_IN_SEL, IMAP_CMD_UID, imap_cmd_fetch },
	{ "STORE", IMAP_IN_SEL, IMAP_CMD_UID, imap_cmd_store },
	{ "COPY", IMAP_IN_SEL, IMAP_CMD_UID, imap_cmd_copy },
	{ "MOVE", IMAP_IN_SEL, IMAP_CMD_UID, imap_cmd_move },
	{ "COMPRESS", IMAP_IN_LOGGED, 0, imap_cmd_compress },       /* RFC 4978 */
	{ "UNAUTHENTICATE", IMAP_IN_LOGGED, 0, imap_cmd_unauthenticate }, /* RFC 8437 */
	{ "GETQUOTA", IMAP_IN_LOGGED, 0, imap_cmd_getquota },       /* RFC 9208 */
	{ "GETQUOTAROOT", IMAP_IN_LOGGED, 0, imap_cmd_getquotaroot },
	{ "SETQUOTA", IMAP_IN_LOGGED, 0, imap_cmd_setquota },
	{ "GETMETADATA", IMAP_IN_LOGGED, 0, imap_cmd_getmetadata }, /* RFC 5464 */
	{ "SETMETADATA", IMAP_IN_LOGGED, 0, imap_cmd_setmetadata },
	{ "NOTIFY", IMAP_IN_LOGGED, 0, imap_cmd_notify },           /* RFC 5465 */
};

const struct imap_command *imap_command_find(const char *verb)
{
	for (size_t i = 0; i < sizeof(imap_commands) / sizeof(imap_commands[0]); i++)
		if (str_ieq(imap_commands[i].verb, verb))
			return &imap_commands[i];
	return NULL;
}

void *imap_cmd_state_new(struct imap_session *s, size_t size, void (*free_fn)(void *))
{
	void *state = calloc(1, size);

	if (state == NULL) {
		imap_reply(s, "NO", "[SERVERBUG] Out of memory");
		return NULL;
	}
	s->cmd_state = state;
	s->cmd_free = free_fn;
	return state;
}

struct auth *imap_ctx_auth(struct imap_ctx *ctx)
{
	return ctx->auth;
}

struct md_store *imap_ctx_store(struct imap_ctx *ctx)
{
	return ctx->store;
}

/* ---- state, replies ------------------------------------------------------- */

static const char *imap_state_name(enum imap_state state)
{
	switch (state) {
	case IMAP_STATE_NOT_AUTH:
		return "NOT-AUTHENTICATED";
	case IMAP_STATE_AUTH:
		return "AUTHENTICATED";
	case IMAP_STATE_SELECTED:
		return "SELECTED";
	case IMAP_STATE_LOGOUT:
		return "LOGOUT";
	}
	return "?";
}

void imap_enter_state(struct imap_session *s, enum imap_state state)
{
	conn_log(s->conn, LOG_LEVEL_DEBUG, "imap state=%s->%s", imap_state_name(s->state),
		 imap_state_name(state));
	s->state = state;
}

void imap_out(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;
	char small[512];
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(small)) {
		buf_append(&s->out, small, (size_t)n);
		return;
	}
	{
		char *big = malloc((size_t)n + 1);
		if (big == NULL)
			return;
		va_start(ap, fmt);
		vsnprintf(big, (size_t)n + 1, fmt, ap);
		va_end(ap);
		buf_append(&s->out, big, (size_t)n);
		free(big);
	}
}

void imap_reply(struct imap_session *s, const char *status, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	imap_out(s, "%s %s %s\r\n", s->tag, status, text);
	s->replied = true;
	s->status = strcmp(status, "OK") == 0 ? "OK" : strcmp(status, "NO") == 0 ? "NO" : "BAD";
	if (strcmp(status, "BAD") != 0) {
		s->bad_count = 0;
		return;
	}
	/* Not a client that will ever get it right. */
	if (++s->bad_count >= IMAP_BAD_MAX && !s->close_after) {
		imap_out(s, "* BYE Too many invalid commands\r\n");
		s->close_after = true;
	}
}

void imap_flush(struct imap_session *s)
{
	if (s->out.len > 0)
		conn_write(s->conn, s->out.data, s->out.len);
	buf_reset(&s->out);
	if (s->close_after && !conn_is_closing(s->conn)) {
		conn_log(s->conn, LOG_LEVEL_INFO, "imap closing user=%s rip=%s",
			 s->canonical[0] != '\0' ? s->canonical : "-", conn_peer_addr(s->conn));
		conn_close(s->conn);
	}
}

bool imap_login_allowed(const struct imap_session *s)
{
	const struct config *cfg = server_config(conn_server(s->conn));

	/* Same rule as POP3 (DESIGN.md; RFC 3501 §6.2.3 LOGINDISABLED). */
	return conn_is_tls(s->conn) ||
	       (conn_peer_is_loopback(s->conn) && cfg->allow_plaintext_auth_on_loopback);
}

/* Only what works (Thunderbird turns on whatever is offered). */
#define IMAP_CAPS_BASE "IMAP4rev1 IMAP4rev2 SASL-IR LITERAL+ ID ENABLE IDLE"
#define IMAP_CAPS_AUTH                                                                 \
	" NAMESPACE UNSELECT CHILDREN UIDPLUS MOVE LIST-EXTENDED SPECIAL-USE"          \
	" CREATE-SPECIAL-USE LIST-STATUS STATUS=SIZE MULTIAPPEND ESEARCH SEARCHRES BINARY" \
	" SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES OBJECTID I18NLEVEL=1"\
	" CONDSTORE QRESYNC SAVEDATE UTF8=ACCEPT PREVIEW"
#define IMAP_CAPS_COMPRESS " COMPRESS=DEFLATE"
#define IMAP_CAPS_EXTRA " UNAUTHENTICATE QUOTA QUOTA=RES-STORAGE METADATA NOTIFY"

void imap_capability(const struct imap_session *s, char *out, size_t outlen)
{
	if (s->state != IMAP_STATE_NOT_AUTH) {
		snprintf(out, outlen, "%s%s%s%s", IMAP_CAPS_BASE, IMAP_CAPS_AUTH,
			 conn_is_compressed(s->conn) ? "" : IMAP_CAPS_COMPRESS, IMAP_CAPS_EXTRA);
		return;
	}
	snprintf(out, outlen, "%s%s%s", IMAP_CAPS_BASE,
		 s->starttls_allowed && !conn_is_tls(s->conn) && !conn_is_compressed(s->conn)
			 ? " STARTTLS" : "",
		 imap_login_allowed(s) ? " AUTH=PLAIN AUTH=LOGIN" : " LOGINDISABLED");
}

/* ---- jobs ----------------------------------------------------------------- */

static uint64_t imap_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* STYLE.md: one line per command, key=value. */
static void imap_log_command(struct imap_session *s)
{
	if (s->cmd == NULL)
		return;
	conn_log(s->conn, LOG_LEVEL_DEBUG, "imap user=%s cmd=%s%s result=%s ms=%llu",
		 s->canonical[0] != '\0' ? s->canonical : "-", s->uid ? "UID " : "", s->cmd->verb,
		 s->replied && s->status != NULL ? s->status : "-",
		 (unsigned long long)(imap_now_ms() - s->started_ms));
}

void imap_command_done(struct imap_session *s)
{
	imap_log_command(s);
	if (s->cmd_free != NULL)
		s->cmd_free(s->cmd_state);
	s->cmd_state = NULL;
	s->cmd_free = NULL;
	s->work = NULL;
	s->after = NULL;
	s->cmd = NULL;
	s->busy = false;
	s->appending = false;
	s->wait_drain = false;
	if (s->out.len == 0 && s->out.cap > IMAP_OUT_KEEP)
		buf_free(&s->out);
	imap_reader_reset(&s->reader);
	if (!conn_is_closing(s->conn))
		conn_resume(s->conn);
	imap_notify_kick(s); /* RFC 5465: between commands */
}

static void imap_job_work(void *arg)
{
	struct imap_session *s = arg;

	s->work_status = s->work(s);
}

static void imap_job_submit(struct imap_session *s);
static void imap_ensure_reply(struct imap_session *s);

static void imap_job_done(void *arg)
{
	struct imap_session *s = arg;

	imap_flush(s);
	if (conn_is_closing(s->conn)) {
		imap_command_done(s);
		return;
	}
	if (s->work_status == CMD_MORE) {
		if (conn_output_pending(s->conn) < IMAP_OUTPUT_HIGH)
			imap_job_submit(s);
		else
			s->wait_drain = true;
		return;
	}
	if (s->after != NULL)
		s->after(s);
	if (s->busy && !s->appending && !s->idle) {
		imap_ensure_reply(s);
		imap_flush(s);
		imap_command_done(s);
	}
}

static void imap_job_submit(struct imap_session *s)
{
	if (conn_submit(s->conn, imap_job_work, imap_job_done, s) < 0) {
		imap_reply(s, "NO", "[SERVERBUG] Out of resources, try again later");
		imap_flush(s);
		imap_command_done(s);
	}
}

void imap_job_start(struct imap_session *s, imap_work_fn *work, imap_after_fn *after)
{
	s->busy = true;
	s->work = work;
	s->after = after;
	conn_pause(s->conn);
	imap_job_submit(s);
}

/* ---- commands of every state ---------------------------------------------- */

static void imap_cmd_logout(struct imap_session *s, struct imap_cursor *args)
{
	if (!imap_at_end(args)) {
		imap_reply(s, "BAD", "LOGOUT takes no arguments");
		return;
	}
	imap_out(s, "* BYE Logging out\r\n");
	imap_reply(s, "OK", "Logout completed");
	imap_enter_state(s, IMAP_STATE_LOGOUT);
	s->close_after = true;
}

/* RFC 5161: IMAP4rev2 (RFC 9051 §6.3.1), UTF8=ACCEPT (RFC 6855 §3),
 * CONDSTORE and QRESYNC (RFC 7162 §3.1, §3.2.3: QRESYNC implies
 * CONDSTORE) need enabling; unknown ones are ignored.  RFC 5161 §3.1:
 * IMAP4rev2 and UTF8=ACCEPT only before the first SELECT / EXAMINE, so a
 * mailbox's responses never change dialect midway; later they are simply
 * not enabled. */
static void imap_cmd_enable(struct imap_session *s, struct imap_cursor *args)
{
	char cap[64];
	bool rev2 = false, utf8 = false, condstore = false, qresync = false;

	if (!imap_sp(args)) {
		imap_reply(s, "BAD", "ENABLE needs capability names");
		return;
	}
	do {
		if (!imap_atom(args, cap, sizeof(cap), NULL)) {
			imap_reply(s, "BAD", "Invalid capability name");
			return;
		}
		rev2 = rev2 || str_ieq(cap, "IMAP4rev2");
		utf8 = utf8 || str_ieq(cap, "UTF8=ACCEPT");
		condstore = condstore || str_ieq(cap, "CONDSTORE");
		qresync = qresync || str_ieq(cap, "QRESYNC");
	} while (imap_char(args, ' '));
	if (!imap_at_end(args)) {
		imap_reply(s, "BAD", "Invalid capability name");
		return;
	}
	/* RFC 5161 §3.2: ENABLED lists only what this command newly enabled */
	imap_out(s, "* ENABLED");
	if (rev2 && !s->rev2 && s->state == IMAP_STATE_AUTH && !s->has_selected) {
		s->rev2 = true;
		conn_log(s->conn, LOG_LEVEL_DEBUG, "imap enabled IMAP4rev2 user=%s", s->canonical);
		imap_out(s, " IMAP4rev2");
	}
	if (utf8 && !s->utf8_accept && s->state == IMAP_STATE_AUTH && !s->has_selected) {
		s->utf8_accept = true;
		conn_log(s->conn, LOG_LEVEL_DEBUG, "imap enabled UTF8=ACCEPT user=%s", s->canonical);
		imap_out(s, " UTF8=ACCEPT");
	}
	if (condstore && !s->condstore) {
		s->condstore = true;
		imap_out(s, " CONDSTORE");
	}
	if (qresync && !s->qresync) {
		s->qresync = s->condstore = true;
		imap_out(s, " QRESYNC");
	}
	imap_out(s, "\r\n");
	imap_reply(s, "OK", "Enabled");
}

/* ---- dispatch ------------------------------------------------------------- */

/* Our own invariant: every command ends with a tagged reply.  Should a
 * handler forget, the client is told rather than left waiting. */
static void imap_ensure_reply(struct imap_session *s)
{
	if (s->replied || s->idle || s->sasl != NULL)
		return;
	conn_log(s->conn, LOG_LEVEL_ERROR, "imap bug: %s ended without a reply",
		 s->cmd != NULL ? s->cmd->verb : "?");
	imap_reply(s, "NO", "[SERVERBUG] Internal error");
}

static void imap_dispatch(struct imap_session *s)
{
	struct imap_cursor c;
	char verb[IMAP_VERB_MAX + 1];
	const struct imap_command *cmd;

	imap_cursor_init(&c, s->reader.cmd.data, s->reader.cmd.len);
	s->uid = false;
	if (s->state == IMAP_STATE_NOT_AUTH && ++s->preauth_count > IMAP_PREAUTH_COMMANDS_MAX) {
		conn_log(s->conn, LOG_LEVEL_INFO, "imap too many commands before login rip=%s",
			 conn_peer_addr(s->conn));
		imap_out(s, "* BYE Too many commands before login\r\n");
		s->close_after = true;
		goto done;
	}
	if (!imap_tag(&c, s->tag, sizeof(s->tag))) {
		strcpy(s->tag, "*");
		imap_reply(s, "BAD", "Invalid tag");
		goto done;
	}
	if (!imap_char(&c, ' ') || !imap_atom(&c, verb, sizeof(verb), NULL)) {
		imap_reply(s, "BAD", "Missing or invalid command");
		goto done;
	}
	if (str_ieq(verb, "UID")) {
		s->uid = true;
		if (!imap_char(&c, ' ') || !imap_atom(&c, verb, sizeof(verb), NULL)) {
			imap_reply(s, "BAD", "Missing command after UID");
			goto done;
		}
	}
	cmd = imap_command_find(verb);
	if (cmd == NULL || (s->uid && !(cmd->flags & IMAP_CMD_UID))) {
		conn_log(s->conn, LOG_LEVEL_DEBUG, "imap unknown command");
		imap_reply(s, "BAD", "Unknown command");
		goto done;
	}
	if (!(cmd->states & (1u << s->state))) {
		imap_reply(s, "BAD", "%s is not allowed %s", cmd->verb,
			   s->state == IMAP_STATE_NOT_AUTH ? "before login"
			   : s->state == IMAP_STATE_AUTH   ? "without a selected mailbox"
							   : "in this state");
		goto done;
	}
	s->cmd = cmd;
	s->replied = false;
	s->started_ms = imap_now_ms();
	cmd->handler(s, &c);
	if (s->busy)
		return; /* a job or an exchange goes on */
	imap_ensure_reply(s);
	imap_log_command(s);
done:
	imap_flush(s);
	if (s->cmd_free != NULL)
		s->cmd_free(s->cmd_state);
	s->cmd_state = NULL;
	s->cmd_free = NULL;
	s->cmd = NULL;
	imap_reader_reset(&s->reader);
	imap_notify_kick(s);
}

/* The literal just announced in an APPEND is its mailbox name (the one
 * literal that can come before the message), not the message. */
static bool imap_append_mailbox_literal(const struct imap_session *s)
{
	const char *p = s->reader.cmd.data, *end = p + s->reader.cmd.len;
	int spaces = 0;

	if (s->reader.literals != 1)
		return false;
	while (p < end && spaces < 2)
		if (*p++ == ' ')
			spaces++;
	return p < end && *p == '{';
}

static void imap_refuse(struct imap_session *s, const char *status, const char *text)
{
	imap_reader_tag(&s->reader, s->tag);
	imap_reply(s, status, "%s", text);
	imap_flush(s);
}

static void imap_on_line(struct imap_session *s, const char *line, size_t len)
{
	enum imap_read_result r;

	if (s->sasl != NULL) {
		imap_sasl_line(s, line, len);
		return;
	}
	if (s->idle) {
		imap_idle_line(s, line, len);
		return;
	}
	if (s->appending) {
		imap_append_line(s, line, len);
		return;
	}
	r = imap_reader_line(&s->reader, line, len);
	switch (r) {
	case IMAP_READ_MORE:
		break;
	case IMAP_READ_COMMAND:
		imap_dispatch(s);
		break;
	case IMAP_READ_LITERAL:
		if (s->reader.discard) {
			conn_read_bytes(s->conn, (size_t)s->reader.literal_left);
			break;
		}
		if (s->reader.is_append && !imap_append_mailbox_literal(s)) {
			imap_dispatch(s); /* APPEND takes the literal over */
			break;
		}
		if (s->reader.literal_sync)
			conn_printf(s->conn, "+ Ready for literal data\r\n");
		if (s->reader.literal_left > 0)
			conn_read_bytes(s->conn, (size_t)s->reader.literal_left);
		break;
	case IMAP_READ_TOOBIG:
		/* RFC 7888 §4 / RFC 4469 §2: TOOBIG, before any "+". */
		if (s->reader.is_append)
			imap_refuse(s, "NO", "[TOOBIG] Message too large");
		else
			imap_refuse(s, "BAD", "[TOOBIG] Literal too large");
		if (s->reader.discard && s->reader.literal_left > 0)
			conn_read_bytes(s->conn, (size_t)s->reader.literal_left);
		else
			imap_reader_reset(&s->reader);
		break;
	case IMAP_READ_BAD:
		imap_refuse(s, "BAD", "Invalid command line");
		imap_reader_reset(&s->reader);
		break;
	case IMAP_READ_CLOSE:
		conn_printf(s->conn, "* BYE [TOOBIG] Literal too large\r\n");
		conn_close(s->conn);
		break;
	}
}

static void imap_on_too_long(struct imap_session *s)
{
	if (s->sasl != NULL) {
		imap_sasl_line(s, "*", 1); /* cancels the exchange */
		return;
	}
	if (s->idle || s->appending) {
		conn_printf(s->conn, "* BYE Line too long\r\n");
		conn_close(s->conn);
		return;
	}
	/* RFC 7162 §4: the client learns the limit from the BAD. */
	imap_refuse(s, "BAD", "[TOOBIG] Command line too long");
	imap_reader_reset(&s->reader);
}

void imap_close_mailbox(struct imap_session *s)
{
	imap_idle_link(s, false);
	if (s->view.mb != NULL)
		md_mailbox_close(s->view.mb);
	free(s->view.uids);
	free(s->view.recent);
	memset(&s->view, 0, sizeof(s->view));
	free(s->searchres.ranges);
	memset(&s->searchres, 0, sizeof(s->searchres));
}

static void imap_session_free(struct imap_session *s)
{
	imap_idle_stop(s);
	imap_notify_stop(s);
	imap_auth_cleanup(s);
	if (s->cmd_free != NULL)
		s->cmd_free(s->cmd_state);
	imap_close_mailbox(s);
	if (s->md_user != NULL)
		md_user_close(s->md_user);
	imap_reader_free(&s->reader);
	buf_free(&s->out);
	free(s);
}

static void imap_on_event(struct conn *conn, enum conn_event ev, const char *data, size_t len,
			  void *session)
{
	struct imap_session *s = session;

	switch (ev) {
	case CONN_EV_LINE:
		imap_on_line(s, data, len);
		break;
	case CONN_EV_LINE_TOO_LONG:
		imap_on_too_long(s);
		break;
	case CONN_EV_BYTES:
		if (s->appending)
			imap_append_bytes(s, data, len);
		else
			imap_reader_bytes(&s->reader, data, len);
		break;
	case CONN_EV_DRAINED:
		if (s->wait_drain) {
			s->wait_drain = false;
			imap_job_submit(s);
		} else {
			imap_notify_kick(s); /* held back while the client did not read */
		}
		break;
	case CONN_EV_TIMEOUT:
		conn_log(conn, LOG_LEVEL_INFO, "imap idle timeout user=%s",
			 s->canonical[0] != '\0' ? s->canonical : "-");
		conn_printf(conn, "* BYE Autologout; idle for too long\r\n");
		conn_close(conn);
		break;
	case CONN_EV_TLS_READY:
		conn_log(conn, LOG_LEVEL_DEBUG, "imap starttls done");
		break;
	case CONN_EV_CLOSED:
		s->closed = true;
		if (s->state != IMAP_STATE_NOT_AUTH)
			conn_log(conn, LOG_LEVEL_INFO, "imap disconnected user=%s", s->canonical);
		imap_session_free(s);
		break;
	}
}

static void imap_accept(struct conn *conn, enum listener_role role, void *arg)
{
	struct imap_ctx *ctx = arg;
	struct imap_session *s = calloc(1, sizeof(*s));
	const struct config *cfg = server_config(conn_server(conn));
	char caps[512];

	if (s == NULL) {
		conn_printf(conn, "* BYE Out of memory\r\n");
		conn_close(conn);
		return;
	}
	s->ctx = ctx;
	s->conn = conn;
	s->state = IMAP_STATE_NOT_AUTH;
	s->starttls_allowed = role == ROLE_IMAP && conn_tls_mode(conn) == TLS_MODE_STARTTLS;
	imap_reader_init(&s->reader, cfg->message_size_max);
	buf_init(&s->out, 0);
	conn_set_handler(conn, imap_on_event, s);
	/* RFC 3501 §2.2: CRLF; a bare LF is tolerated (nothing is relayed). */
	conn_read_lines(conn, cfg->line_length_max, true);
	conn_set_timeout(conn, cfg->imap_idle_timeout);
	conn_log(conn, LOG_LEVEL_DEBUG, "imap connect rip=%s tls=%s", conn_peer_addr(conn),
		 role == ROLE_IMAPS ? "implicit" : "no");
	imap_capability(s, caps, sizeof(caps));
	conn_printf(conn, "* OK [CAPABILITY %s] Postern IMAP server ready\r\n", caps);
}

static void imap_stop(struct conn *conn, void *session)
{
	struct imap_session *s = session;

	if (s != NULL && s->busy && !s->idle)
		return;
	conn_printf(conn, "* BYE Server shutting down\r\n");
	conn_close(conn);
}

static void imap_store_changed(void *arg, uint32_t user_id, uint32_t mailbox_id)
{
	struct imap_ctx *ctx = arg;

	/* On the store's writer thread: queue and wake the loop. */
	pthread_mutex_lock(&ctx->wake_lock);
	if (ctx->n_wake < IMAP_WAKE_QUEUE) {
		ctx->wake[ctx->n_wake].user_id = user_id;
		ctx->wake[ctx->n_wake].mailbox_id = mailbox_id;
		ctx->n_wake++;
	} else {
		ctx->wake_all = true;
	}
	pthread_mutex_unlock(&ctx->wake_lock);
	event_active(ctx->wake_ev, EV_READ, 0);
}

void imap_ctx_changed(struct imap_ctx *ctx, uint32_t user_id, uint32_t mailbox_id)
{
	imap_store_changed(ctx, user_id, mailbox_id);
}

static void imap_on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct imap_ctx *ctx = arg;
	struct imap_wake wake[IMAP_WAKE_QUEUE];
	size_t n;
	bool all;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&ctx->wake_lock);
	n = ctx->n_wake;
	all = ctx->wake_all;
	memcpy(wake, ctx->wake, n * sizeof(wake[0]));
	ctx->n_wake = 0;
	ctx->wake_all = false;
	pthread_mutex_unlock(&ctx->wake_lock);
	if (all) {
		imap_idle_wake(ctx, 0, 0);
		imap_notify_wake(ctx, 0, 0);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		imap_idle_wake(ctx, wake[i].user_id, wake[i].mailbox_id);
		imap_notify_wake(ctx, wake[i].user_id, wake[i].mailbox_id);
	}
}

/* inotify saw a change in a watched mailbox (loop thread) */
static void imap_watch_changed(void *arg, uint32_t user_id, uint32_t mailbox_id)
{
	imap_idle_wake(arg, user_id, mailbox_id);
	imap_notify_wake(arg, user_id, mailbox_id);
}

static void imap_on_watch(evutil_socket_t fd, short what, void *arg)
{
	struct imap_ctx *ctx = arg;

	(void)fd;
	(void)what;
	if (md_watch_read(ctx->watch, imap_watch_changed, ctx) < 0)
		log_warn("imap: reading inotify events failed; IDLE falls back to polling");
}

static void imap_ctx_free(void *arg)
{
	struct imap_ctx *ctx = arg;

	if (ctx->watch_ev != NULL)
		event_free(ctx->watch_ev);
	md_watch_free(ctx->watch);
	md_store_set_change_hook(ctx->store, NULL, NULL);
	if (ctx->wake_ev != NULL)
		event_free(ctx->wake_ev);
	pthread_mutex_destroy(&ctx->wake_lock);
	pthread_mutex_destroy(&ctx->recent_lock);
	free(ctx->recent);
	imap_sort_cache_free(ctx->sort_cache);
	free(ctx);
}

int imap_register(struct server *srv, struct auth *auth, struct md_store *store, char *err,
		  size_t errlen)
{
	struct imap_ctx *ctx = calloc(1, sizeof(*ctx));
	struct server_protocol proto = {
		.name = "imap",
		.accept = imap_accept,
		.stop = imap_stop,
		.busy_reply = "* BYE Too many connections\r\n",
	};

	if (ctx == NULL) {
		snprintf(err, errlen, "imap: out of memory");
		return -1;
	}
	ctx->auth = auth;
	ctx->store = store;
	ctx->srv = srv;
	pthread_mutex_init(&ctx->wake_lock, NULL);
	pthread_mutex_init(&ctx->recent_lock, NULL);
	ctx->recent = calloc(IMAP_RECENT_SLOTS, sizeof(*ctx->recent));
	ctx->sort_cache = imap_sort_cache_new(IMAP_SORT_CACHE_MAX, IMAP_SORT_CACHE_MAILBOXES);
	ctx->wake_ev = event_new(server_event_base(srv), -1, 0, imap_on_wake, ctx);
	if (ctx->wake_ev == NULL || ctx->recent == NULL || ctx->sort_cache == NULL) {
		if (ctx->wake_ev != NULL)
			event_free(ctx->wake_ev);
		pthread_mutex_destroy(&ctx->wake_lock);
		pthread_mutex_destroy(&ctx->recent_lock);
		free(ctx->recent);
		imap_sort_cache_free(ctx->sort_cache);
		free(ctx);
		snprintf(err, errlen, "imap: out of memory");
		return -1;
	}
	md_store_set_change_hook(store, imap_store_changed, ctx);
	ctx->watch = md_watch_new();
	if (ctx->watch != NULL)
		ctx->watch_ev = event_new(server_event_base(srv), md_watch_fd(ctx->watch),
					  EV_READ | EV_PERSIST, imap_on_watch, ctx);
	if (ctx->watch_ev == NULL || event_add(ctx->watch_ev, NULL) < 0) {
		log_warn("imap: no inotify (%s): IDLE polls mailboxes every %d ms",
			 strerror(errno), IMAP_IDLE_POLL_MS);
		if (ctx->watch_ev != NULL)
			event_free(ctx->watch_ev);
		ctx->watch_ev = NULL;
		md_watch_free(ctx->watch);
		ctx->watch = NULL;
	}
	proto.ctx = ctx;
	server_on_free(srv, imap_ctx_free, ctx);
	server_set_protocol(srv, ROLE_IMAP, &proto);
	server_set_protocol(srv, ROLE_IMAPS, &proto);
	return 0;
}
