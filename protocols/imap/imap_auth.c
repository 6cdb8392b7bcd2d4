/* IMAP NOT-AUTHENTICATED state: CAPABILITY, STARTTLS (RFC 3501 §6.2.1),
 * LOGIN (§6.2.3), AUTHENTICATE PLAIN/LOGIN with SASL-IR (RFC 4959), and
 * the login behind them: the shared password login (protocols/login/:
 * throttle, delay timer, verify on the AUTH pool), then the user's store
 * opened on an IO worker -> AUTHENTICATED.
 */
#include "imap_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "conn.h"
#include "server.h"
#include "store.h"

void imap_auth_cleanup(struct imap_session *s)
{
	sasl_free(s->sasl);
	s->sasl = NULL;
	login_cleanup(&s->login);
}

void imap_cmd_capability(struct imap_session *s, struct imap_cursor *args)
{
	char caps[512];

	if (!imap_at_end(args)) {
		imap_reply(s, "BAD", "CAPABILITY takes no arguments");
		return;
	}
	imap_capability(s, caps, sizeof(caps));
	imap_out(s, "* CAPABILITY %s\r\n", caps);
	imap_reply(s, "OK", "Capability completed");
}

void imap_cmd_starttls(struct imap_session *s, struct imap_cursor *args)
{
	if (!imap_at_end(args)) {
		imap_reply(s, "BAD", "STARTTLS takes no arguments");
		return;
	}
	if (conn_is_tls(s->conn)) {
		imap_reply(s, "BAD", "TLS is already active");
		return;
	}
	if (conn_is_compressed(s->conn)) {
		/* after COMPRESS and UNAUTHENTICATE: TLS would go under DEFLATE */
		imap_reply(s, "BAD", "STARTTLS cannot follow COMPRESS");
		return;
	}
	if (!s->starttls_allowed) {
		imap_reply(s, "NO", "[CANNOT] STARTTLS is not available on this port");
		return;
	}
	imap_reply(s, "OK", "Begin TLS negotiation now");
	imap_flush(s);
	/* Discards whatever the client pipelined after STARTTLS (RFC 3501
	 * §6.2.1, CVE-2011-0411); our reader holds nothing past this line. */
	if (conn_starttls(s->conn) < 0) {
		conn_log(s->conn, LOG_LEVEL_ERROR, "imap starttls failed: TLS not available");
		conn_close(s->conn);
	}
}

/* ---- the login ------------------------------------------------------------ */

/* On an IO worker, once the password is verified: open the user's store. */
static enum imap_cmd_status imap_login_work(struct imap_session *s)
{
	enum md_result r;
	char caps[512];

	r = md_user_open(imap_ctx_store(s->ctx), s->canonical, MD_USER_CREATE, &s->md_user);
	if (r != MD_OK) {
		s->verified = false;
		s->job_result = (int)r;
		imap_reply(s, "NO", "[UNAVAILABLE] Cannot open the mailbox store, try again later");
		s->canonical[0] = '\0';
		return CMD_DONE;
	}
	s->verified = true;
	/* Thunderbird trusts this list and never asks again. */
	s->state = IMAP_STATE_AUTH; /* for imap_capability(); logged in after */
	imap_capability(s, caps, sizeof(caps));
	s->state = IMAP_STATE_NOT_AUTH;
	imap_reply(s, "OK", "[CAPABILITY %s] Logged in", caps);
	return CMD_DONE;
}

static void imap_login_after(struct imap_session *s)
{
	if (!s->verified) {
		if (s->job_result != MD_OK)
			conn_log(s->conn, LOG_LEVEL_ERROR, "imap user open failed result=%s",
				 md_result_name((enum md_result)s->job_result));
		return;
	}
	imap_enter_state(s, IMAP_STATE_AUTH);
	conn_log(s->conn, LOG_LEVEL_INFO, "imap login user=%s rip=%s tls=%s", s->canonical,
		 conn_peer_addr(s->conn), conn_is_tls(s->conn) ? "yes" : "no");
}

/* On the loop, with the password checked (login.h). */
static void imap_login_done(void *arg, enum login_result result)
{
	struct imap_session *s = arg;

	s->busy = false;
	if (conn_is_closing(s->conn)) {
		imap_command_done(s);
		return;
	}
	if (result == LOGIN_OK) {
		str_copy(s->canonical, s->login.canonical, sizeof(s->canonical));
		imap_job_start(s, imap_login_work, imap_login_after);
		return;
	}
	if (result == LOGIN_TEMPFAIL)
		imap_reply(s, "NO", "[UNAVAILABLE] Out of resources, try again later");
	else
		imap_reply(s, "NO", "[AUTHENTICATIONFAILED] Authentication failed");
	imap_flush(s);
	imap_command_done(s);
}

static void imap_login_start(struct imap_session *s, const char *user, const char *password,
			     size_t password_len)
{
	s->verified = false;
	s->job_result = MD_OK;
	s->login.conn = s->conn;
	s->login.auth = imap_ctx_auth(s->ctx);
	s->login.proto = "imap";
	s->login.done = imap_login_done;
	s->login.arg = s;
	switch (login_begin(&s->login, user, password, password_len)) {
	case LOGIN_STARTED:
		s->busy = true;
		conn_pause(s->conn);
		return;
	case LOGIN_REFUSED:
		imap_reply(s, "NO", "[UNAVAILABLE] Too many failed logins, try again later");
		return;
	case LOGIN_REJECTED:
		imap_reply(s, "NO", "[AUTHENTICATIONFAILED] Authentication failed");
		return;
	case LOGIN_NOMEM:
		imap_reply(s, "NO", "[SERVERBUG] Out of memory");
		return;
	}
}

static bool imap_require_login_allowed(struct imap_session *s)
{
	if (imap_login_allowed(s))
		return true;
	/* RFC 3501 §6.2.3: LOGINDISABLED is advertised; refuse. */
	imap_reply(s, "NO", "[PRIVACYREQUIRED] Plaintext authentication disallowed without TLS");
	return false;
}

void imap_cmd_login(struct imap_session *s, struct imap_cursor *args)
{
	char user[AUTH_ADDRESS_MAX + 2];
	const char *pass;
	size_t pass_len;

	if (!imap_sp(args) || !imap_astring_copy(args, user, sizeof(user)) || !imap_sp(args) ||
	    !imap_astring(args, &pass, &pass_len) || !imap_at_end(args)) {
		imap_reply(s, "BAD", "%s", args->err != NULL ? args->err : "Invalid arguments");
		return;
	}
	if (!imap_require_login_allowed(s))
		return;
	imap_login_start(s, user, pass, pass_len);
}

/* ---- AUTHENTICATE (RFC 3501 §6.2.2, RFC 4959 SASL-IR) --------------------- */

static void imap_sasl_limit(struct imap_session *s, bool sasl)
{
	const struct config *cfg = server_config(conn_server(s->conn));

	conn_read_lines(s->conn, sasl ? IMAP_SASL_LINE_MAX : cfg->line_length_max, true);
}

static void imap_sasl_result(struct imap_session *s, struct sasl_exchange *x,
			     enum sasl_result r, const char *challenge)
{
	switch (r) {
	case SASL_CONTINUE:
		s->sasl = x;
		s->busy = true; /* continuation lines go to the exchange */
		imap_sasl_limit(s, true);
		imap_out(s, "+ %s\r\n", challenge);
		imap_flush(s);
		return;
	case SASL_DONE:
		s->sasl = NULL;
		s->busy = false;
		imap_sasl_limit(s, false);
		imap_login_start(s, sasl_authcid(x), sasl_password(x), strlen(sasl_password(x)));
		sasl_free(x);
		return;
	case SASL_FAIL:
		break;
	}
	s->sasl = NULL;
	s->busy = false;
	imap_sasl_limit(s, false);
	switch (sasl_error(x)) {
	case SASL_ERR_BASE64:
		imap_reply(s, "BAD", "Invalid base64 data");
		break;
	case SASL_ERR_TOO_LONG:
		imap_reply(s, "BAD", "Authentication response too long");
		break;
	case SASL_ERR_MECH:
		imap_reply(s, "NO", "[CANNOT] Unsupported authentication mechanism");
		break;
	default:
		auth_throttle_failure(imap_ctx_auth(s->ctx), "imap", conn_peer_addr(s->conn), "-",
				      time(NULL));
		imap_reply(s, "NO", "[AUTHENTICATIONFAILED] Authentication failed: %s",
			   sasl_error_text(sasl_error(x)));
		break;
	}
	sasl_free(x);
}

void imap_cmd_authenticate(struct imap_session *s, struct imap_cursor *args)
{
	char mech[32];
	const char *ir = NULL, *challenge = "";
	size_t ir_len = 0;
	struct sasl_exchange *x;
	enum sasl_result r;

	if (!imap_sp(args) || !imap_atom(args, mech, sizeof(mech), NULL)) {
		imap_reply(s, "BAD", "Missing mechanism");
		return;
	}
	if (imap_char(args, ' ')) {
		/* RFC 4959: the initial response, "=" for an empty one */
		ir = args->p;
		while (args->p < args->end && *args->p != ' ')
			args->p++;
		ir_len = (size_t)(args->p - ir);
		if (ir_len == 0) {
			imap_reply(s, "BAD", "Empty initial response");
			return;
		}
	}
	if (!imap_at_end(args)) {
		imap_reply(s, "BAD", "Invalid arguments");
		return;
	}
	if (!imap_require_login_allowed(s))
		return;
	if (!sasl_mech_supported(mech)) {
		imap_reply(s, "NO", "[CANNOT] Unsupported authentication mechanism");
		return;
	}
	x = sasl_new();
	if (x == NULL) {
		imap_reply(s, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	r = sasl_start(x, mech, ir, ir_len, &challenge);
	imap_sasl_result(s, x, r, challenge);
}

void imap_sasl_line(struct imap_session *s, const char *line, size_t len)
{
	struct sasl_exchange *x = s->sasl;
	const char *challenge = "";
	enum sasl_result r;

	s->sasl = NULL;
	s->busy = false;
	if (sasl_is_cancel(line, len)) {
		sasl_free(x);
		imap_sasl_limit(s, false);
		/* RFC 3501 §6.2.2: a cancelled exchange gets BAD. */
		imap_reply(s, "BAD", "Authentication cancelled");
	} else if (memchr(line, '\0', len) != NULL) {
		sasl_free(x);
		imap_sasl_limit(s, false);
		imap_reply(s, "BAD", "Invalid base64 data");
	} else {
		r = sasl_step(x, line, len, &challenge);
		imap_sasl_result(s, x, r, challenge);
	}
	if (!s->busy) {
		imap_flush(s);
		imap_reader_reset(&s->reader);
	} else if (s->sasl != NULL) {
		imap_flush(s);
	}
}

/* ---- UNAUTHENTICATE (RFC 8437) ------------------------------------------- */

/* RFC 8437 §3: back to NOT-AUTHENTICATED on the same connection, with
 * every trace of the user gone (the selected mailbox, what ENABLE turned
 * on); TLS and COMPRESS, layers of the connection, stay. */
void imap_cmd_unauthenticate(struct imap_session *s, struct imap_cursor *args)
{
	if (!imap_at_end(args)) {
		imap_reply(s, "BAD", "UNAUTHENTICATE takes no arguments");
		return;
	}
	conn_log(s->conn, LOG_LEVEL_INFO, "imap unauthenticate user=%s", s->canonical);
	imap_notify_stop(s);
	imap_close_mailbox(s);
	if (s->md_user != NULL)
		md_user_close(s->md_user);
	s->md_user = NULL;
	s->canonical[0] = '\0';
	s->verified = false;
	s->rev2 = false;
	s->utf8_accept = false;
	s->has_selected = false;
	s->preauth_count = 0;
	imap_enter_state(s, IMAP_STATE_NOT_AUTH);
	imap_reply(s, "OK", "Unauthenticated");
}
