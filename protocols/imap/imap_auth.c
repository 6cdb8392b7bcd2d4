/* IMAP NOT-AUTHENTICATED state: CAPABILITY, STARTTLS (RFC 3501 §6.2.1),
 * LOGIN (§6.2.3), AUTHENTICATE PLAIN/LOGIN with SASL-IR (RFC 4959), and
 * the login behind them: throttle check -> (delay timer) -> password
 * verify and user open on a worker -> AUTHENTICATED.
 *
 * The password lives in s->password only between the command and the end
 * of the login job, which wipes it. */
#include "imap_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "auth.h"
#include "conn.h"
#include "server.h"
#include "store.h"

static void imap_wipe_password(struct imap_session *s)
{
	if (s->password == NULL)
		return;
	explicit_bzero(s->password, strlen(s->password));
	free(s->password);
	s->password = NULL;
}

void imap_auth_cleanup(struct imap_session *s)
{
	sasl_free(s->sasl);
	s->sasl = NULL;
	if (s->delay_ev != NULL) {
		event_free(s->delay_ev);
		s->delay_ev = NULL;
	}
	imap_wipe_password(s);
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

/* ---- the login job -------------------------------------------------------- */

static enum imap_cmd_status imap_login_work(struct imap_session *s)
{
	struct auth *auth = imap_ctx_auth(s->ctx);
	const char *ip = conn_peer_addr(s->conn);
	enum md_result r;
	char caps[512];

	s->verified = auth_verify_password(auth, s->user, s->password, s->canonical,
					   sizeof(s->canonical)) == 0;
	imap_wipe_password(s);
	if (!s->verified) {
		s->canonical[0] = '\0';
		auth_throttle_failure(auth, "imap", ip, s->user, time(NULL));
		imap_reply(s, "NO", "[AUTHENTICATIONFAILED] Authentication failed");
		return CMD_DONE;
	}
	auth_throttle_success(auth, ip, s->canonical);
	r = md_user_open(imap_ctx_store(s->ctx), s->canonical, MD_USER_CREATE, &s->md_user);
	if (r != MD_OK) {
		s->verified = false;
		s->job_result = (int)r;
		imap_reply(s, "NO", "[UNAVAILABLE] Cannot open the mailbox store, try again later");
		s->canonical[0] = '\0';
		return CMD_DONE;
	}
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

static void imap_delay_done(evutil_socket_t fd, short what, void *arg)
{
	struct imap_session *s = arg;

	(void)fd;
	(void)what;
	event_free(s->delay_ev);
	s->delay_ev = NULL;
	s->busy = false;
	imap_job_start(s, imap_login_work, imap_login_after);
}

/* Throttle check, then the login job (after the throttle's delay, on a
 * timer: a sleeping worker would be taken from everybody else). */
static void imap_login_start(struct imap_session *s, const char *user, const char *password,
			     size_t password_len)
{
	struct auth *auth = imap_ctx_auth(s->ctx);
	const char *ip = conn_peer_addr(s->conn);
	unsigned delay_ms = 0;
	time_t now = time(NULL);

	str_copy(s->user, user, sizeof(s->user));
	s->verified = false;
	s->job_result = MD_OK;
	switch (auth_throttle_check(auth, ip, s->user, now, &delay_ms)) {
	case AUTH_THROTTLE_REFUSE:
		auth_throttle_failure(auth, "imap", ip, s->user, now);
		imap_reply(s, "NO", "[UNAVAILABLE] Too many failed logins, try again later");
		return;
	case AUTH_THROTTLE_DELAY:
		break;
	case AUTH_THROTTLE_ALLOW:
		delay_ms = 0;
		break;
	}
	if (password_len > AUTH_PASSWORD_MAX || memchr(password, '\0', password_len) != NULL ||
	    strlen(user) > AUTH_ADDRESS_MAX) {
		auth_throttle_failure(auth, "imap", ip, s->user, now);
		imap_reply(s, "NO", "[AUTHENTICATIONFAILED] Authentication failed");
		return;
	}
	s->password = strndup(password, password_len);
	if (s->password == NULL) {
		imap_reply(s, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	if (delay_ms > 0) {
		struct timeval tv;

		if (delay_ms > AUTH_THROTTLE_DELAY_MAX_MS)
			delay_ms = AUTH_THROTTLE_DELAY_MAX_MS;
		tv.tv_sec = delay_ms / 1000;
		tv.tv_usec = (delay_ms % 1000) * 1000;
		s->delay_ev = evtimer_new(server_event_base(conn_server(s->conn)), imap_delay_done, s);
		if (s->delay_ev != NULL && evtimer_add(s->delay_ev, &tv) == 0) {
			s->busy = true;
			conn_pause(s->conn);
			return;
		}
		if (s->delay_ev != NULL)
			event_free(s->delay_ev);
		s->delay_ev = NULL;
	}
	imap_job_start(s, imap_login_work, imap_login_after);
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
	s->user[0] = '\0';
	s->canonical[0] = '\0';
	s->verified = false;
	s->rev2 = false;
	s->utf8_accept = false;
	s->has_selected = false;
	s->preauth_count = 0;
	imap_enter_state(s, IMAP_STATE_NOT_AUTH);
	imap_reply(s, "OK", "Unauthenticated");
}
