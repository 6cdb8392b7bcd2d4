/* POP3 AUTHORIZATION state: USER/PASS (RFC 1939 §7), AUTH with SASL PLAIN
 * and LOGIN (RFC 5034), STLS (RFC 2595 §4), and the login that follows:
 * login.h (throttle check -> (delay timer) -> password verify on a worker)
 * -> lock -> INBOX snapshot on a worker -> TRANSACTION. */
#include "pop3_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "config.h"
#include "conn.h"
#include "login.h"
#include "server.h"
#include "store.h"
#include "util.h"

void pop3_auth_cleanup(struct pop3_session *s)
{
	sasl_free(s->sasl);
	s->sasl = NULL;
	login_cleanup(&s->login);
}

/* Refuses (and says why) when this connection may not log in. */
static bool pop3_require_login_allowed(struct pop3_session *s)
{
	if (pop3_login_allowed(s))
		return true;
	pop3_err(s, "[AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.");
	return false;
}

/* ---- snapshot: open INBOX once, at login -------------------------------- */

static void pop3_snapshot_work(void *arg)
{
	struct pop3_session *s = arg;
	enum md_result r;

	r = md_user_open(pop3_ctx_store(s->ctx), s->canonical, MD_USER_CREATE, &s->md_user);
	if (r == MD_OK)
		r = md_mailbox_open(s->md_user, "INBOX", &s->mb, NULL);
	/* RFC 1939 §8 leaves it open; we show the messages present at login
	 * and nothing that arrives later (the next session sees those). */
	if (r == MD_OK)
		r = md_msg_list(s->mb, 1, UINT32_MAX, 0, MD_READ_PATH, &s->md_msgs, &s->n_msgs);
	if (r == MD_OK)
		s->n_md_msgs = s->n_msgs;
	if (r == MD_OK && pop3_snapshot_sizes(s) < 0)
		r = MD_TEMPFAIL;
	if (r != MD_OK) {
		if (s->md_user != NULL)
			str_copy(s->job_error, md_user_error(s->md_user), sizeof(s->job_error));
		pop3_release_store(s);
		free(s->msgs);
		s->msgs = NULL;
		s->n_msgs = 0;
	}
	s->job_result = (int)r;
}

static void pop3_snapshot_done(void *arg)
{
	struct pop3_session *s = arg;
	uint64_t total = 0;

	if (conn_is_closing(s->conn)) {
		pop3_command_done(s);
		return;
	}
	if (s->job_result != MD_OK) {
		conn_log(s->conn, LOG_LEVEL_ERROR, "pop3 mailbox open failed user=%s result=%s: %s",
			 s->canonical, md_result_name((enum md_result)s->job_result), s->job_error);
		pop3_lock_release(s->ctx, s->canonical);
		s->locked = false;
		/* RFC 3206 §4: SYS/PERM when retrying cannot help without the
		 * administrator (a damaged index, an unusable address). */
		if (s->job_result == MD_CORRUPT || s->job_result == MD_BADNAME ||
		    s->job_result == MD_NOMAILBOX)
			pop3_err(s, "[SYS/PERM] Cannot open the mailbox; tell the administrator");
		else
			pop3_err(s, "[SYS/TEMP] Cannot open the mailbox, try again later");
		pop3_command_done(s);
		return;
	}
	for (size_t i = 0; i < s->n_msgs; i++)
		total += s->msgs[i].size;
	pop3_enter_state(s, POP3_STATE_TRANSACTION);
	conn_log(s->conn, LOG_LEVEL_INFO, "pop3 login user=%s rip=%s tls=%s messages=%zu",
		 s->canonical, conn_peer_addr(s->conn), conn_is_tls(s->conn) ? "yes" : "no",
		 s->n_msgs);
	pop3_ok(s, "Logged in, maildrop has %zu messages (%llu octets)", s->n_msgs,
		(unsigned long long)total);
	pop3_command_done(s);
}

/* ---- password verification (login.h) ---------------------------------- */

static void pop3_login_done(void *arg, enum login_result result)
{
	struct pop3_session *s = arg;
	const char *ip = conn_peer_addr(s->conn);

	if (conn_is_closing(s->conn)) {
		pop3_command_done(s);
		return;
	}
	if (result != LOGIN_OK) {
		if (result == LOGIN_TEMPFAIL)
			pop3_err(s, "[SYS/TEMP] Out of resources, try again later");
		else
			pop3_err(s, "[AUTH] Authentication failed");
		pop3_command_done(s);
		return;
	}
	str_copy(s->canonical, s->login.canonical, sizeof(s->canonical));
	/* RFC 1939 §8 / RFC 2449 §8.1.1: one POP3 session per maildrop. */
	if (!pop3_lock_take(s->ctx, s->canonical)) {
		conn_log(s->conn, LOG_LEVEL_INFO, "pop3 login refused in-use user=%s rip=%s",
			 s->canonical, ip);
		pop3_err(s, "[IN-USE] Mailbox is locked by another POP3 session");
		pop3_command_done(s);
		return;
	}
	s->locked = true;
	if (pop3_submit(s, POP3_JOB_SNAPSHOT, pop3_snapshot_work, pop3_snapshot_done) < 0) {
		pop3_lock_release(s->ctx, s->canonical);
		s->locked = false;
		pop3_err(s, "[SYS/TEMP] Out of resources, try again later");
		pop3_command_done(s);
	}
}

/* The throttle, the password check on a worker, then pop3_login_done(). */
static void pop3_login_start(struct pop3_session *s, const char *user, const char *password,
			     size_t password_len)
{
	s->login.conn = s->conn;
	s->login.auth = pop3_ctx_auth(s->ctx);
	s->login.proto = "pop3";
	s->login.done = pop3_login_done;
	s->login.arg = s;
	switch (login_begin(&s->login, user, password, password_len)) {
	case LOGIN_STARTED:
		pop3_begin_async(s);
		return;
	case LOGIN_REFUSED:
		pop3_err(s, "[LOGIN-DELAY] Too many failed logins, try again later");
		return;
	case LOGIN_REJECTED:
		pop3_err(s, "[AUTH] Authentication failed");
		return;
	case LOGIN_NOMEM:
		pop3_err(s, "[SYS/TEMP] Out of memory");
		return;
	}
}

/* ---- USER / PASS -------------------------------------------------------- */

void pop3_cmd_user(struct pop3_session *s, const struct pop3_parsed *cmd)
{
	if (!pop3_require_login_allowed(s))
		return;
	if (cmd->arg_len[0] > AUTH_ADDRESS_MAX) {
		s->have_user = false;
		pop3_err(s, "User name too long");
		return;
	}
	str_copy(s->user, cmd->args[0], sizeof(s->user));
	s->have_user = true;
	/* Same answer for every name: USER reveals nothing. */
	pop3_ok(s, "Send your password");
}

void pop3_cmd_pass(struct pop3_session *s, const struct pop3_parsed *cmd)
{
	if (!pop3_require_login_allowed(s))
		return;
	if (!s->have_user) {
		pop3_err(s, "Send USER first");
		return;
	}
	/* RFC 1939 §7: after a failed PASS the client starts again with
	 * USER; after a good one there is no PASS any more. */
	s->have_user = false;
	pop3_login_start(s, s->user, cmd->args[0], cmd->arg_len[0]);
}

/* ---- AUTH (RFC 5034) ---------------------------------------------------- */

static void pop3_sasl_limit(struct pop3_session *s, bool sasl)
{
	/* Only called at a line boundary: conn_read_lines() forgets a
	 * half-discarded over-long line. */
	s->sasl_limit = sasl;
	conn_read_lines(s->conn, sasl ? POP3_SASL_LINE_MAX : POP3_LINE_MAX, true);
}

void pop3_sasl_restore_limit(struct pop3_session *s)
{
	if (s->sasl == NULL && s->sasl_limit)
		pop3_sasl_limit(s, false);
}

static void pop3_sasl_result(struct pop3_session *s, struct sasl_exchange *x,
			     enum sasl_result r, const char *challenge)
{
	switch (r) {
	case SASL_CONTINUE:
		s->sasl = x;
		pop3_sasl_limit(s, true);
		/* RFC 5034 §4: "+" SP base64 challenge (empty for PLAIN). */
		conn_printf(s->conn, "+ %s\r\n", challenge);
		return;
	case SASL_DONE:
		pop3_sasl_limit(s, false);
		pop3_login_start(s, sasl_authcid(x), sasl_password(x), strlen(sasl_password(x)));
		sasl_free(x);
		return;
	case SASL_FAIL:
		break;
	}
	pop3_sasl_limit(s, false);
	switch (sasl_error(x)) {
	case SASL_ERR_BASE64:
		pop3_err(s, "Invalid base64 data");
		break;
	case SASL_ERR_TOO_LONG:
		pop3_err(s, "Authentication response too long");
		break;
	case SASL_ERR_MECH:
		pop3_err(s, "Unsupported authentication mechanism");
		break;
	default:
		pop3_err(s, "[AUTH] Authentication failed: %s", sasl_error_text(sasl_error(x)));
		break;
	}
	sasl_free(x);
}

void pop3_cmd_auth(struct pop3_session *s, const struct pop3_parsed *cmd)
{
	struct sasl_exchange *x;
	const char *challenge = "";
	enum sasl_result r;

	if (cmd->nargs == 0) {
		/* RFC 1734 (which RFC 5034 replaced): AUTH alone lists the
		 * mechanisms; older clients still ask. */
		pop3_ok(s, "Mechanisms follow");
		if (pop3_login_allowed(s))
			conn_printf(s->conn, "PLAIN\r\nLOGIN\r\n");
		conn_printf(s->conn, ".\r\n");
		return;
	}
	if (!pop3_require_login_allowed(s))
		return;
	if (!sasl_mech_supported(cmd->args[0])) {
		pop3_err(s, "Unsupported authentication mechanism");
		return;
	}
	x = sasl_new();
	if (x == NULL) {
		pop3_err(s, "[SYS/TEMP] Out of memory");
		return;
	}
	s->have_user = false;
	r = sasl_start(x, cmd->args[0], cmd->nargs > 1 ? cmd->args[1] : NULL,
		       cmd->nargs > 1 ? cmd->arg_len[1] : 0, &challenge);
	pop3_sasl_result(s, x, r, challenge);
}

void pop3_sasl_abort(struct pop3_session *s, const char *why)
{
	/* From a LINE_TOO_LONG event: the rest of that line is still being
	 * discarded, so the line limit is put back at the next line. */
	sasl_free(s->sasl);
	s->sasl = NULL;
	pop3_err(s, "%s", why);
}

void pop3_sasl_line(struct pop3_session *s, const char *line, size_t len)
{
	struct sasl_exchange *x = s->sasl;
	const char *challenge = "";
	enum sasl_result r;

	s->sasl = NULL;
	if (sasl_is_cancel(line, len)) {
		sasl_free(x);
		pop3_sasl_limit(s, false);
		/* RFC 5034 §4: a cancelled exchange gets -ERR. */
		pop3_err(s, "Authentication cancelled");
		return;
	}
	if (memchr(line, '\0', len) != NULL) {
		sasl_free(x);
		pop3_sasl_limit(s, false);
		pop3_err(s, "Invalid base64 data");
		return;
	}
	r = sasl_step(x, line, len, &challenge);
	pop3_sasl_result(s, x, r, challenge);
}

/* ---- STLS (RFC 2595 §4) ------------------------------------------------- */

void pop3_cmd_stls(struct pop3_session *s, const struct pop3_parsed *cmd)
{
	(void)cmd;
	if (conn_is_tls(s->conn)) {
		pop3_err(s, "TLS is already active");
		return;
	}
	if (!s->stls_allowed) {
		pop3_err(s, "STLS is not available on this port");
		return;
	}
	pop3_ok(s, "Begin TLS negotiation");
	/* Discards whatever the client pipelined after STLS (RFC 2595 §4,
	 * CVE-2011-0411); TLS_READY or CLOSED follows. */
	if (conn_starttls(s->conn) < 0) {
		conn_log(s->conn, LOG_LEVEL_ERROR, "pop3 stls failed: TLS not available");
		pop3_close(s);
		return;
	}
	s->have_user = false;
}
