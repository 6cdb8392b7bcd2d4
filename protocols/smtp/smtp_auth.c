/* AUTH (RFC 4954) with the shared SASL PLAIN and LOGIN mechanisms.
 *
 * Offered on submission ports only, and only over TLS unless the client is
 * on loopback and allow_plaintext_auth_on_loopback is set.  The password
 * check (yescrypt, ~20 ms) runs on the WORKER_AUTH pool; failures are throttled per
 * client address and account (auth_throttle_*): a delayed attempt waits on
 * the session timer, a refused one fails without a check.  After
 * SMTP_AUTH_FAILURES_MAX failures the session is closed.
 */
#include "smtp_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

void smtp_auth_abort(struct smtp_session *s)
{
	sasl_free(s->sasl);
	s->sasl = NULL;
}

static void smtp_auth_fail(struct smtp_session *s, const char *reply)
{
	s->auth_failures++;
	smtp_auth_abort(s);
	smtp_enter_state(s, SMTP_STATE_READY);
	if (s->auth_failures >= SMTP_AUTH_FAILURES_MAX) {
		smtp_close(s, "421 4.7.0 %s Too many authentication failures",
			   s->ctx->cfg->hostname);
		return;
	}
	smtp_reply(s, "%s", reply);
}

static void smtp_auth_verify_work(void *arg)
{
	struct smtp_session *s = arg;

	/* The loop does not touch s->sasl while the session is busy. */
	s->auth_ok = auth_verify_password(s->ctx->auth, sasl_authcid(s->sasl),
					  sasl_password(s->sasl), s->auth_name,
					  sizeof(s->auth_name)) == 0;
}

static void smtp_auth_verify_done(void *arg)
{
	struct smtp_session *s = arg;
	const char *ip = conn_peer_addr(s->conn);

	if (s->auth_ok) {
		auth_throttle_success(s->ctx->auth, ip, s->auth_name);
		s->authenticated = true;
		str_copy(s->user, s->auth_name, sizeof(s->user));
		smtp_auth_abort(s);
		smtp_enter_state(s, SMTP_STATE_READY);
		conn_log(s->conn, LOG_LEVEL_INFO, "smtp auth ok user=%s rip=%s", s->user, ip);
		smtp_reply(s, "235 2.7.0 Authentication successful");
	} else {
		auth_throttle_failure(s->ctx->auth, "smtp", ip, sasl_authcid(s->sasl), time(NULL));
		smtp_auth_fail(s, "535 5.7.8 Authentication credentials invalid");
	}
	smtp_unbusy(s);
}

static void smtp_auth_verify(struct smtp_session *s)
{
	s->auth_ok = false;
	if (smtp_submit_kind(s, WORKER_AUTH, smtp_auth_verify_work, smtp_auth_verify_done) < 0) {
		smtp_auth_abort(s);
		smtp_enter_state(s, SMTP_STATE_READY);
		smtp_reply(s, "454 4.7.0 Temporary authentication failure");
	}
}

void smtp_auth_timer(struct smtp_session *s)
{
	/* the throttle delay is over: verify now (still busy) */
	s->auth_ok = false;
	if (conn_submit_kind(s->conn, WORKER_AUTH, smtp_auth_verify_work, smtp_auth_verify_done,
			     s) < 0) {
		smtp_auth_abort(s);
		smtp_enter_state(s, SMTP_STATE_READY);
		smtp_reply(s, "454 4.7.0 Temporary authentication failure");
		smtp_unbusy(s);
	}
}

/* SASL_DONE: throttle, then check the password. */
static void smtp_auth_done(struct smtp_session *s)
{
	const char *ip = conn_peer_addr(s->conn), *user = sasl_authcid(s->sasl);
	unsigned delay_ms = 0;
	time_t now = time(NULL);

	switch (auth_throttle_check(s->ctx->auth, ip, user, now, &delay_ms)) {
	case AUTH_THROTTLE_ALLOW:
		smtp_auth_verify(s);
		return;
	case AUTH_THROTTLE_DELAY:
		/* wait on a timer, never a sleep: the loop serves others */
		smtp_busy(s);
		if (smtp_timer_start(s, delay_ms) == 0)
			return;
		s->busy = false;
		conn_resume(s->conn);
		smtp_auth_verify(s);
		return;
	case AUTH_THROTTLE_REFUSE:
		break;
	}
	auth_throttle_failure(s->ctx->auth, "smtp", ip, user, now);
	smtp_auth_fail(s, "535 5.7.8 Authentication credentials invalid");
}

static void smtp_auth_result(struct smtp_session *s, enum sasl_result r, const char *challenge)
{
	switch (r) {
	case SASL_CONTINUE:
		smtp_enter_state(s, SMTP_STATE_AUTH);
		/* 334 carries no enhanced code (RFC 2034 §3) */
		conn_printf(s->conn, "334 %s\r\n", challenge != NULL ? challenge : "");
		return;
	case SASL_DONE:
		smtp_enter_state(s, SMTP_STATE_READY);
		smtp_auth_done(s);
		return;
	case SASL_FAIL:
		break;
	}
	switch (sasl_error(s->sasl)) {
	case SASL_ERR_MECH:
		smtp_auth_abort(s);
		smtp_enter_state(s, SMTP_STATE_READY);
		smtp_reply(s, "504 5.5.4 Unrecognized authentication type");
		return;
	case SASL_ERR_BASE64:
		smtp_auth_abort(s);
		smtp_enter_state(s, SMTP_STATE_READY);
		smtp_reply(s, "501 5.5.2 Invalid base64 data");
		return;
	case SASL_ERR_TOO_LONG:
		smtp_auth_abort(s);
		smtp_enter_state(s, SMTP_STATE_READY);
		smtp_reply(s, "500 5.5.6 Authentication exchange line is too long");
		return;
	case SASL_ERR_AUTHZID:
		auth_throttle_failure(s->ctx->auth, "smtp", conn_peer_addr(s->conn), NULL, time(NULL));
		smtp_auth_fail(s, "535 5.7.8 Authentication credentials invalid");
		return;
	case SASL_ERR_SYNTAX:
	case SASL_ERR_STATE:
	case SASL_ERR_NONE:
		break;
	}
	smtp_auth_abort(s);
	smtp_enter_state(s, SMTP_STATE_READY);
	smtp_reply(s, "501 5.5.2 Malformed authentication data");
}

void smtp_cmd_auth(struct smtp_session *s, const char *args)
{
	char mech[32];
	const char *sp, *ir = NULL, *challenge = NULL;
	size_t mlen;

	if (!smtp_is_submission(s)) {
		smtp_reply(s, "502 5.5.1 AUTH not available on this port, use submission");
		return;
	}
	if (!s->esmtp) {
		smtp_reply(s, "503 5.5.1 Send EHLO first");
		return;
	}
	if (s->authenticated) {
		smtp_reply(s, "503 5.5.1 Already authenticated");
		return;
	}
	if (!smtp_auth_allowed(s)) {
		smtp_reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
		return;
	}
	sp = strchr(args, ' ');
	mlen = sp != NULL ? (size_t)(sp - args) : strlen(args);
	if (mlen == 0 || mlen >= sizeof(mech)) {
		smtp_reply(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
		return;
	}
	memcpy(mech, args, mlen);
	mech[mlen] = '\0';
	if (sp != NULL) {
		ir = sp + 1;
		if (*ir == '\0' || strchr(ir, ' ') != NULL) {
			smtp_reply(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
			return;
		}
	}
	if (!sasl_mech_supported(mech)) {
		smtp_reply(s, "504 5.5.4 Unrecognized authentication type");
		return;
	}
	s->sasl = sasl_new();
	if (s->sasl == NULL) {
		smtp_reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	}
	smtp_auth_result(s, sasl_start(s->sasl, mech, ir, ir != NULL ? strlen(ir) : 0, &challenge),
			 challenge);
}

void smtp_auth_response(struct smtp_session *s, const char *line, size_t len)
{
	const char *challenge = NULL;

	if (sasl_is_cancel(line, len)) {
		/* RFC 4954 §4: "*" cancels with 501 */
		smtp_auth_abort(s);
		smtp_enter_state(s, SMTP_STATE_READY);
		smtp_reply(s, "501 5.7.0 Authentication cancelled");
		return;
	}
	smtp_auth_result(s, sasl_step(s->sasl, line, len, &challenge), challenge);
}
