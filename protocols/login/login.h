/* One password login of a protocol session, the same for every protocol
 * that takes passwords (IMAP, POP3, ManageSieve): the throttle is asked first
 * (auth.h, "Failed-login throttling"), a delay it asks for waits on a
 * timer of the loop (a sleeping worker would be one taken from everybody),
 * the password is verified on the WORKER_AUTH pool (DESIGN.md: logins
 * never queue in front of deliveries), the throttle hears the result, and
 * the protocol's callback gets it on the loop.
 *
 * The password lives in the struct only between login_begin() and the end
 * of the verify job, which wipes it.  A protocol embeds one struct login
 * in its session, fills in the first five fields once, and calls
 * login_cleanup() when the session ends.
 */
#ifndef LOGIN_LOGIN_H
#define LOGIN_LOGIN_H

#include <stdbool.h>
#include <stddef.h>

#include "auth.h"

struct auth;
struct conn;
struct event;

enum login_result {
	LOGIN_OK,       /* canonical holds the verified address */
	LOGIN_FAILED,   /* wrong user or password (the throttle counted it) */
	LOGIN_TEMPFAIL, /* the verify job could not be queued: try again */
};

typedef void login_done_fn(void *arg, enum login_result result);

struct login {
	/* set by the protocol */
	struct conn *conn;
	struct auth *auth;
	const char *proto;      /* "imap", "pop3", "managesieve": the log's proto= */
	login_done_fn *done;    /* on the loop, even when the client left */
	void *arg;
	/* one attempt */
	char user[AUTH_ADDRESS_MAX + 1];
	char canonical[AUTH_ADDRESS_MAX + 1];
	bool verified;
	char *password;
	struct event *delay_ev;
};

enum login_begin {
	LOGIN_STARTED,  /* done() follows, never from inside login_begin() */
	LOGIN_REFUSED,  /* the throttle refuses: answer "try later" */
	LOGIN_REJECTED, /* cannot be anybody's password: answer "failed" */
	LOGIN_NOMEM,    /* nothing started: answer "try later" */
};

/* Start verifying user/password (password_len octets, may hold NUL: then
 * LOGIN_REJECTED, as for a user name longer than AUTH_ADDRESS_MAX).
 * Every refused or rejected attempt is counted. */
enum login_begin login_begin(struct login *l, const char *user, const char *password,
			     size_t password_len);
/* Wipe the password, stop a pending delay (idempotent). */
void login_cleanup(struct login *l);

#endif
