/* ManageSieve before login: STARTTLS (RFC 5804 §2.2), AUTHENTICATE with
 * SASL PLAIN (§2.1, RFC 4616) and the login behind it (login.h: throttle,
 * delay, password verify on the WORKER_AUTH pool), then the user's store
 * opened on a worker -> authenticated.  Also UNAUTHENTICATE (§2.14), the
 * way back. */
#include "msieve_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "conn.h"
#include "login.h"
#include "server.h"
#include "store.h"
#include "util.h"

void msieve_auth_cleanup(struct msieve_session *s)
{
	sasl_free(s->sasl);
	s->sasl = NULL;
	login_cleanup(&s->login);
}

void msieve_release_user(struct msieve_session *s)
{
	if (s->md_user != NULL)
		md_user_close(s->md_user); /* frees memory; writes nothing */
	s->md_user = NULL;
}

/* ---- the login jobs ------------------------------------------------------ */

static void msieve_open_work(void *arg)
{
	struct msieve_session *s = arg;

	if (md_user_open(s->ctx->store, s->canonical, MD_USER_CREATE, &s->md_user) != MD_OK)
		s->md_user = NULL;
}

static void msieve_open_done(void *arg)
{
	struct msieve_session *s = arg;

	if (!conn_is_closing(s->conn)) {
		if (s->md_user == NULL) {
			conn_log(s->conn, LOG_LEVEL_ERROR, "managesieve store open failed user=%s",
				 s->canonical);
			msieve_reply(s, "NO", "TRYLATER", "Cannot open your mail store");
		} else {
			msieve_enter_state(s, MSIEVE_STATE_AUTH);
			conn_log(s->conn, LOG_LEVEL_INFO, "managesieve login user=%s rip=%s tls=%s",
				 s->canonical, conn_peer_addr(s->conn),
				 conn_is_tls(s->conn) ? "yes" : "no");
			msieve_reply(s, "OK", NULL, "Logged in");
		}
	}
	msieve_command_done(s);
}

/* login.h's callback: the password was checked. */
static void msieve_login_done(void *arg, enum login_result result)
{
	struct msieve_session *s = arg;

	if (conn_is_closing(s->conn)) {
		msieve_command_done(s);
		return;
	}
	if (result == LOGIN_FAILED) {
		msieve_reply(s, "NO", NULL, "Authentication failed");
	} else if (result == LOGIN_TEMPFAIL) {
		msieve_reply(s, "NO", "TRYLATER", "Out of resources, try again later");
	} else {
		str_copy(s->canonical, s->login.canonical, sizeof(s->canonical));
		if (conn_submit(s->conn, msieve_open_work, msieve_open_done, s) == 0)
			return;
		msieve_reply(s, "NO", "TRYLATER", "Out of resources, try again later");
	}
	msieve_command_done(s);
}

static void msieve_login_start(struct msieve_session *s, const char *user, const char *password)
{
	s->login.conn = s->conn;
	s->login.auth = s->ctx->auth;
	s->login.proto = "managesieve";
	s->login.done = msieve_login_done;
	s->login.arg = s;
	switch (login_begin(&s->login, user, password, strlen(password))) {
	case LOGIN_STARTED:
		msieve_begin_async(s);
		return;
	case LOGIN_REFUSED:
		msieve_reply(s, "NO", "TRYLATER", "Too many failed logins, try again later");
		return;
	case LOGIN_REJECTED:
		msieve_reply(s, "NO", NULL, "Authentication failed");
		return;
	case LOGIN_NOMEM:
		msieve_reply(s, "NO", "TRYLATER", "Out of resources, try again later");
		return;
	}
}

/* ---- AUTHENTICATE ---------------------------------------------------------- */

static void msieve_sasl_result(struct msieve_session *s, struct sasl_exchange *x,
			       enum sasl_result r, const char *challenge)
{
	switch (r) {
	case SASL_CONTINUE:
		/* RFC 5804 §2.1: the challenge is a string of base64 ("" for
		 * PLAIN); the client answers with a string, or "*" */
		s->sasl = x;
		conn_printf(s->conn, "\"%s\"\r\n", challenge);
		return;
	case SASL_DONE:
		msieve_login_start(s, sasl_authcid(x), sasl_password(x));
		sasl_free(x);
		return;
	case SASL_FAIL:
		break;
	}
	switch (sasl_error(x)) {
	case SASL_ERR_BASE64:
		msieve_reply(s, "NO", NULL, "Invalid base64 data");
		break;
	case SASL_ERR_TOO_LONG:
		msieve_reply(s, "NO", NULL, "Authentication response too long");
		break;
	default:
		/* as POP3: a malformed message is no password guess */
		msieve_reply(s, "NO", NULL, sasl_error_text(sasl_error(x)));
		break;
	}
	sasl_free(x);
}

static bool msieve_is_text(const struct msieve_arg *a)
{
	return a->type == MSIEVE_ARG_STRING && memchr(a->data, '\0', a->len) == NULL;
}

void msieve_cmd_authenticate(struct msieve_session *s, struct msieve_command *cmd)
{
	struct sasl_exchange *x;
	const char *challenge = "";
	bool ir = cmd->nargs > 1;

	if (!msieve_is_text(&cmd->args[0]) || (ir && !msieve_is_text(&cmd->args[1]))) {
		msieve_reply(s, "NO", NULL, "AUTHENTICATE takes strings");
		return;
	}
	if (!msieve_login_allowed(s)) {
		/* RFC 5804 §1.3: ENCRYPT-NEEDED, the client should STARTTLS */
		msieve_reply(s, "NO", "ENCRYPT-NEEDED", "Use STARTTLS before authenticating");
		return;
	}
	if (!sasl_mech_supported(cmd->args[0].data)) {
		msieve_reply(s, "NO", NULL, "Unsupported authentication mechanism");
		return;
	}
	if ((x = sasl_new()) == NULL) {
		msieve_reply(s, "NO", "TRYLATER", "Out of memory");
		return;
	}
	/* an empty initial response is "" here; SASL's "=" means the same */
	msieve_sasl_result(s, x, sasl_start(x, cmd->args[0].data,
					    ir ? (cmd->args[1].len > 0 ? cmd->args[1].data : "=") : NULL,
					    ir ? (cmd->args[1].len > 0 ? cmd->args[1].len : 1) : 0,
					    &challenge),
			   challenge);
}

void msieve_sasl_response(struct msieve_session *s, struct msieve_command *cmd)
{
	struct sasl_exchange *x = s->sasl;
	const char *challenge = "";

	s->sasl = NULL;
	if (cmd->error != NULL || cmd->nargs != 1 || !msieve_is_text(&cmd->args[0])) {
		sasl_free(x);
		msieve_reply(s, "NO", NULL, cmd->error != NULL ? cmd->error :
			     "Expected one string as the authentication response");
		return;
	}
	if (sasl_is_cancel(cmd->args[0].data, cmd->args[0].len)) {
		sasl_free(x);
		msieve_reply(s, "NO", NULL, "Authentication cancelled");
		return;
	}
	msieve_sasl_result(s, x, sasl_step(x, cmd->args[0].data, cmd->args[0].len, &challenge),
			   challenge);
}

/* ---- STARTTLS, UNAUTHENTICATE --------------------------------------------- */

void msieve_cmd_starttls(struct msieve_session *s, struct msieve_command *cmd)
{
	(void)cmd;
	if (conn_is_tls(s->conn)) {
		msieve_reply(s, "NO", NULL, "TLS is already active");
		return;
	}
	if (!s->starttls_allowed) {
		msieve_reply(s, "NO", NULL, "STARTTLS is not available on this port");
		return;
	}
	msieve_reply(s, "OK", NULL, "Begin TLS negotiation now");
	/* Discards whatever the client pipelined after STARTTLS
	 * (CVE-2011-0411); CONN_EV_TLS_READY sends the capabilities. */
	if (conn_starttls(s->conn) < 0) {
		conn_log(s->conn, LOG_LEVEL_ERROR, "managesieve starttls failed: TLS not available");
		conn_close(s->conn);
	}
}

void msieve_cmd_unauthenticate(struct msieve_session *s, struct msieve_command *cmd)
{
	(void)cmd;
	conn_log(s->conn, LOG_LEVEL_INFO, "managesieve unauthenticate user=%s", s->canonical);
	msieve_release_user(s);
	s->canonical[0] = '\0';
	msieve_enter_state(s, MSIEVE_STATE_NONAUTH);
	msieve_reply(s, "OK", NULL, "Unauthenticated");
}
