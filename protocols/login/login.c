/* Password logins for the protocols (login.h). */
#include "login.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "auth.h"
#include "conn.h"
#include "server.h"
#include "util.h"

static void login_wipe_password(struct login *l)
{
	if (l->password == NULL)
		return;
	explicit_bzero(l->password, strlen(l->password));
	free(l->password);
	l->password = NULL;
}

void login_cleanup(struct login *l)
{
	if (l->delay_ev != NULL) {
		event_free(l->delay_ev);
		l->delay_ev = NULL;
	}
	login_wipe_password(l);
}

static void login_verify_work(void *arg)
{
	struct login *l = arg;

	l->verified = auth_verify_password(l->auth, l->user, l->password, l->canonical,
					   sizeof(l->canonical)) == 0;
	login_wipe_password(l);
}

static void login_verify_done(void *arg)
{
	struct login *l = arg;
	const char *ip = conn_peer_addr(l->conn);

	if (l->verified) {
		auth_throttle_success(l->auth, ip, l->canonical);
		l->done(l->arg, LOGIN_OK);
		return;
	}
	/* Counted even when the client has gone: it was a guess. */
	auth_throttle_failure(l->auth, l->proto, ip, l->user, time(NULL));
	l->done(l->arg, LOGIN_FAILED);
}

static int login_verify_submit(struct login *l)
{
	if (conn_submit_kind(l->conn, WORKER_AUTH, login_verify_work, login_verify_done, l) == 0)
		return 0;
	login_wipe_password(l);
	return -1;
}

static void login_delay_done(evutil_socket_t fd, short what, void *arg)
{
	struct login *l = arg;

	(void)fd;
	(void)what;
	event_free(l->delay_ev);
	l->delay_ev = NULL;
	if (login_verify_submit(l) < 0)
		l->done(l->arg, LOGIN_TEMPFAIL);
}

enum login_begin login_begin(struct login *l, const char *user, const char *password,
			     size_t password_len)
{
	const char *ip = conn_peer_addr(l->conn);
	unsigned delay_ms = 0;
	time_t now = time(NULL);

	login_cleanup(l);
	if (user != l->user)
		str_copy(l->user, user, sizeof(l->user));
	l->verified = false;
	l->canonical[0] = '\0';
	switch (auth_throttle_check(l->auth, ip, l->user, now, &delay_ms)) {
	case AUTH_THROTTLE_REFUSE:
		auth_throttle_failure(l->auth, l->proto, ip, l->user, now);
		return LOGIN_REFUSED;
	case AUTH_THROTTLE_DELAY:
		break;
	case AUTH_THROTTLE_ALLOW:
		delay_ms = 0;
		break;
	}
	if (password_len > AUTH_PASSWORD_MAX || memchr(password, '\0', password_len) != NULL ||
	    strlen(user) > AUTH_ADDRESS_MAX) {
		/* Cannot be anybody's password; still a failed attempt. */
		auth_throttle_failure(l->auth, l->proto, ip, l->user, now);
		return LOGIN_REJECTED;
	}
	if ((l->password = strndup(password, password_len)) == NULL)
		return LOGIN_NOMEM;
	if (delay_ms > 0) {
		struct timeval tv;

		if (delay_ms > AUTH_THROTTLE_DELAY_MAX_MS)
			delay_ms = AUTH_THROTTLE_DELAY_MAX_MS;
		tv.tv_sec = delay_ms / 1000;
		tv.tv_usec = (delay_ms % 1000) * 1000;
		l->delay_ev = evtimer_new(server_event_base(conn_server(l->conn)), login_delay_done, l);
		if (l->delay_ev != NULL && evtimer_add(l->delay_ev, &tv) == 0)
			return LOGIN_STARTED;
		if (l->delay_ev != NULL)
			event_free(l->delay_ev);
		l->delay_ev = NULL; /* verify at once rather than not at all */
	}
	return login_verify_submit(l) == 0 ? LOGIN_STARTED : LOGIN_NOMEM;
}
