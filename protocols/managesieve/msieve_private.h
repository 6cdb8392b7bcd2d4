/* Shared inside protocols/managesieve/ only: limits, the command reader,
 * the session and the replies.
 *
 * Files:
 *   msieve.c        registration, connection events, the command table,
 *                   dispatch, replies, CAPABILITY/NOOP/LOGOUT
 *   msieve_parse.c  the command reader: atoms, numbers, quoted strings and
 *                   literals ({n} and {n+}) across lines
 *   msieve_auth.c   STARTTLS, AUTHENTICATE (SASL PLAIN) and the login
 *                   behind it, UNAUTHENTICATE
 *   msieve_cmd.c    the script commands, each one worker job
 *
 * Memory: a session owns everything it points to.  The command being read
 * (its string arguments, at most MSIEVE_ARGS_MAX of at most
 * MSIEVE_LITERAL_MAX octets each) is freed when its reply is queued; a job
 * frees its own results in its done() callback.
 */
#ifndef MANAGESIEVE_MSIEVE_PRIVATE_H
#define MANAGESIEVE_MSIEVE_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "login.h"
#include "managesieve.h"
#include "store.h"

struct conn;
struct md_user;
struct sasl_exchange;
struct auth;

/* RFC 5804 sets no line limit.  A line holds a verb and at most two
 * quoted script names (MD_SIEVE_NAME_MAX octets each, doubled by quoting)
 * or a SASL response: base64 of AUTH_SASL_MAX octets. */
#define MSIEVE_LINE_MAX 8192
#define MSIEVE_VERB_MAX 16       /* the longest verb is UNAUTHENTICATE */
#define MSIEVE_ARGS_MAX 3        /* PUTSCRIPT name script, RENAMESCRIPT a b */
/* A literal ({n} or {n+}, RFC 5804 §4) holds at most one script. */
#define MSIEVE_LITERAL_MAX MD_SIEVE_SIZE_MAX
/* A larger literal is read and thrown away (the client sends it without
 * waiting) up to this many octets, then answered NO; beyond, BYE. */
#define MSIEVE_DISCARD_MAX (16 * 1024 * 1024)
#define MSIEVE_ERRORS_MAX 10     /* NO replies in a row before BYE */
/* No RFC value: Dovecot and Cyrus keep idle ManageSieve clients for
 * minutes; the Thunderbird add-on sends NOOP while its editor is open. */
#define MSIEVE_IDLE_TIMEOUT 600  /* seconds */
/* Octets of one quoted string we send: a reply text, a script name. */
#define MSIEVE_TEXT_MAX 1024

/* ---- the command reader ------------------------------------------------ */

enum msieve_arg_type {
	MSIEVE_ARG_STRING, /* quoted or literal */
	MSIEVE_ARG_NUMBER, /* RFC 5804 §4: number = 1*DIGIT, 0..4294967295 */
};

struct msieve_arg {
	enum msieve_arg_type type;
	char *data;        /* malloc'd, NUL-terminated (may hold NULs) */
	size_t len;
	uint64_t number;
};

/* One command (or, while authenticating, one SASL response) being read. */
struct msieve_command {
	char verb[MSIEVE_VERB_MAX + 1]; /* upper case; "" for a response */
	struct msieve_arg args[MSIEVE_ARGS_MAX];
	size_t nargs;
	uint64_t literal_left;  /* octets of the literal still to come */
	bool discarding;        /* the literal is thrown away */
	bool started;           /* a line has been read into it */
	/* the first error, reported when the command is complete */
	const char *error;      /* NULL: none */
	const char *error_code; /* response code for it, or NULL */
};

enum msieve_read {
	MSIEVE_READ_DONE,    /* the command is complete (error may be set) */
	MSIEVE_READ_LITERAL, /* read literal_left octets (maybe 0), then
			      * another line */
	MSIEVE_READ_FATAL,   /* answer BYE and close (error is set) */
};

/* Parse one line (without CRLF) into c, continuing after a literal.  With
 * response true the line is a SASL response: a string, no verb. */
enum msieve_read msieve_read_line(struct msieve_command *c, const char *line, size_t len,
				  bool response);
/* Octets of the literal in progress (at most literal_left). */
void msieve_read_bytes(struct msieve_command *c, const char *data, size_t len);
void msieve_command_reset(struct msieve_command *c);

/* ---- the session ------------------------------------------------------- */

enum msieve_state {
	MSIEVE_STATE_NONAUTH, /* before AUTHENTICATE (and after UNAUTHENTICATE) */
	MSIEVE_STATE_AUTH,    /* authenticated: the script commands */
};

#define MSIEVE_IN_NONAUTH (1u << MSIEVE_STATE_NONAUTH)
#define MSIEVE_IN_AUTH    (1u << MSIEVE_STATE_AUTH)

struct msieve_ctx {
	struct auth *auth;
	struct md_store *store;
};

struct msieve_session;
typedef void msieve_handler_fn(struct msieve_session *s, struct msieve_command *cmd);

struct msieve_verb {
	const char *verb;
	unsigned states;
	unsigned min_args, max_args;
	msieve_handler_fn *handler;
};

struct msieve_session {
	struct msieve_ctx *ctx;
	struct conn *conn;
	enum msieve_state state;
	bool busy;              /* a job or timer is in flight: input paused */
	bool starttls_allowed;  /* plaintext listener with tls = starttls */
	bool closed;
	unsigned errors;        /* NO replies in a row */
	struct msieve_command cmd;

	/* authentication */
	struct sasl_exchange *sasl; /* an AUTHENTICATE waiting for a response */
	struct login login;         /* the password check (login.h) */
	char canonical[256];        /* the verified address */
	struct md_user *md_user;    /* open while authenticated */

	/* the job of the command in flight (msieve_cmd.c) */
	struct msieve_job *job;
};

/* msieve.c */
void msieve_enter_state(struct msieve_session *s, enum msieve_state state);
/* "OK", "NO" or "BYE", an optional response code (without parentheses)
 * and an optional human-readable text, sent as a quoted string. */
void msieve_reply(struct msieve_session *s, const char *status, const char *code,
		  const char *text);
/* text as a quoted string (RFC 5804 §4): '"' and '\\' escaped, control
 * characters sent as spaces, at most MSIEVE_TEXT_MAX octets of it. */
void msieve_quote(struct msieve_session *s, const char *text);
/* The capability lines (RFC 5804 §1.7), without the closing OK. */
void msieve_capability(struct msieve_session *s);
bool msieve_login_allowed(const struct msieve_session *s);
void msieve_begin_async(struct msieve_session *s);
/* A command that went asynchronous is complete: read the next one. */
void msieve_command_done(struct msieve_session *s);

/* msieve_auth.c */
msieve_handler_fn msieve_cmd_authenticate, msieve_cmd_starttls, msieve_cmd_unauthenticate;
/* A complete SASL response line (s->sasl is set). */
void msieve_sasl_response(struct msieve_session *s, struct msieve_command *cmd);
void msieve_auth_cleanup(struct msieve_session *s);
/* Close the user's store handle (idempotent). */
void msieve_release_user(struct msieve_session *s);

/* msieve_cmd.c */
msieve_handler_fn msieve_cmd_havespace, msieve_cmd_putscript, msieve_cmd_checkscript,
	msieve_cmd_listscripts, msieve_cmd_setactive, msieve_cmd_getscript,
	msieve_cmd_deletescript, msieve_cmd_renamescript;
void msieve_job_free(struct msieve_session *s);

#endif
