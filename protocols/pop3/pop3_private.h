/* Shared inside protocols/pop3/ only: the session, the command table, the
 * command parser, the byte-stuffer and the UIDL derivation.
 *
 * Files:
 *   pop3.c          registration, the protocol context (lock table, size
 *                   cache), connection events, dispatch, state machine
 *   pop3_auth.c     USER/PASS, AUTH (SASL), STLS, the login jobs
 *   pop3_cmd.c      TRANSACTION commands, RETR/TOP streaming, QUIT/UPDATE
 *   pop3_parse.c    command line parser, message numbers, stuffer, UIDL
 *
 * Memory: a session owns everything it points to; per-command scratch
 * (the RETR stream) is freed when the command's reply is complete, its
 * output buffers are handed to the connection, and the messages read
 * ahead are freed when a RETR reads anew, at QUIT or with the session.
 */
#ifndef POP3_POP3_PRIVATE_H
#define POP3_POP3_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "login.h"
#include "pop3.h"

struct conn;
struct event;
struct md_mailbox;
struct md_msg;
struct md_user;
struct sasl_exchange;

/* RFC 2449 §4: command lines are at most 255 octets with CRLF; we accept
 * twice that so a generous client is not cut off mid-command. */
#define POP3_LINE_MAX 512
/* RFC 5034 §4: the 255-octet limit does not bind AUTH continuation lines;
 * they carry base64 of at most AUTH_SASL_MAX (4096) octets. */
#define POP3_SASL_LINE_MAX 6000
#define POP3_VERB_MAX 4          /* RFC 1939 §3: keywords are 3 or 4 characters */
#define POP3_ARGS_MAX 2          /* TOP msg n; AUTH mech initial-response */
#define POP3_ARG_MAX 40          /* RFC 1939 §3: arguments up to 40 characters */
#define POP3_UIDL_MAX 70         /* RFC 1939 §7: 1 to 70 characters 0x21..0x7E */
#define POP3_UIDL_HASH_BYTES 16  /* SHA-256 truncated: 32 hex characters */
#define POP3_ERRORS_MAX 10       /* -ERR replies in a row before goodbye */
/* RETR/TOP reading (pop3_cmd.c).  A message up to POP3_WHOLE_MAX is read
 * and stuffed whole by one worker job (most mail: one job, one write); a
 * larger one POP3_CHUNK at a time, each chunk a job whose output is
 * queued before the next is read, so memory stays bounded. */
#define POP3_WHOLE_MAX (256 * 1024)
#define POP3_CHUNK (128 * 1024)
#define POP3_READ_BUF (64 * 1024) /* pread size when the bytes need stuffing */
/* Read-ahead: a RETR's job also reads and stuffs the next messages (up to
 * POP3_AHEAD_MSGS, POP3_AHEAD_BYTES of them in all), because clients
 * download in order; their RETRs are then answered on the loop without a
 * worker round trip.  Per session, freed when the session is. */
#define POP3_AHEAD_MSGS 16
#define POP3_AHEAD_BYTES (64 * 1024)
#define POP3_STATUS_MAX 64       /* "+OK <size> octets\r\n" */
/* Stop queueing output above this; CONN_EV_DRAINED comes at half of
 * CONN_OUTPUT_HIGH, so this keeps the socket busy without growing. */
#define POP3_OUTPUT_HIGH (128 * 1024)

enum pop3_state {
	POP3_STATE_AUTHORIZATION, /* RFC 1939 §4 */
	POP3_STATE_TRANSACTION,   /* RFC 1939 §5 */
	POP3_STATE_UPDATE,        /* RFC 1939 §6: after QUIT, deleting */
};

/* Allowed-states mask of a command. */
#define POP3_IN_AUTH  (1u << POP3_STATE_AUTHORIZATION)
#define POP3_IN_TRANS (1u << POP3_STATE_TRANSACTION)

/* Command flags. */
#define POP3_CMD_REST     0x1 /* one argument: the rest of the line (PASS) */
#define POP3_CMD_LONG_ARG 0x2 /* arguments may exceed POP3_ARG_MAX (AUTH) */

struct pop3_session;
struct pop3_parsed;

typedef void pop3_handler_fn(struct pop3_session *s, const struct pop3_parsed *cmd);

struct pop3_command {
	const char *verb;
	unsigned states;
	unsigned flags;
	unsigned min_args, max_args;
	pop3_handler_fn *handler;
};

struct pop3_parsed {
	const struct pop3_command *cmd;
	char verb[POP3_VERB_MAX + 1]; /* upper case */
	size_t nargs;
	const char *args[POP3_ARGS_MAX]; /* NUL-terminated, into buf */
	size_t arg_len[POP3_ARGS_MAX];
	char buf[POP3_LINE_MAX + 1];
};

enum pop3_parse_result {
	POP3_PARSE_OK,
	POP3_PARSE_EMPTY,        /* nothing on the line */
	POP3_PARSE_NUL,          /* a NUL byte */
	POP3_PARSE_TOO_LONG,     /* longer than POP3_LINE_MAX */
	POP3_PARSE_UNKNOWN,      /* no such command */
	POP3_PARSE_ARGS,         /* wrong number of arguments */
	POP3_PARSE_ARG_TOO_LONG, /* an argument over POP3_ARG_MAX */
};

/* The command table (pop3.c). NULL when verb (any case) is unknown. */
const struct pop3_command *pop3_command_find(const char *verb);

/* Split one command line (without CRLF) into verb and arguments and check
 * them against the command table.  cmd_r->cmd is set for every result
 * from POP3_PARSE_ARGS on, so the caller can name the command. */
enum pop3_parse_result pop3_parse_line(const char *line, size_t len,
				       struct pop3_parsed *cmd_r);
const char *pop3_parse_error_text(enum pop3_parse_result r);
/* A decimal number without sign or spaces in [min,max]; 0 or -1. */
int pop3_parse_number(const char *s, uint64_t min, uint64_t max, uint64_t *value_r);

/* ---- byte-stuffing (RFC 1939 §3) ---------------------------------------
 * Turns stored message bytes into what a multi-line RETR/TOP response
 * carries, incrementally (the input may be split anywhere):
 *   - a line starting with '.' gets one more '.';
 *   - a bare LF is sent as CRLF (a lone CR is data);
 *   - TOP: after the header block and its empty line, only top_lines lines
 *     of body, then done is set and further input is ignored;
 *   - pop3_stuff_finish() ends an unterminated last line with CRLF.
 * The terminating ".\r\n" is the caller's.  out must hold 2 * len bytes
 * (every input byte gives at most two); out NULL only counts.  The sum of
 * the returned lengths is what LIST reports. */
#define POP3_TOP_ALL UINT64_MAX

struct pop3_stuffer {
	uint64_t top_lines;  /* body lines to send; POP3_TOP_ALL for RETR */
	uint64_t body_lines; /* body lines sent so far */
	size_t line_bytes;   /* bytes of the current line so far */
	bool bol;            /* at the start of a line */
	bool prev_cr;        /* the last byte of the current line was CR */
	bool in_body;        /* past the empty line after the header */
	bool done;           /* TOP: enough lines; ignore the rest */
};

void pop3_stuff_init(struct pop3_stuffer *st, uint64_t top_lines);
size_t pop3_stuff(struct pop3_stuffer *st, const char *in, size_t len, char *out);
/* Writes at most 2 bytes (CRLF) to out (NULL: count only). */
size_t pop3_stuff_finish(struct pop3_stuffer *st, char *out);

/* RFC 1939 §7 unique-id from a Maildir base name: the part before ":2,"
 * when it is 1..70 characters of 0x21..0x7E, else the hex of the first
 * POP3_UIDL_HASH_BYTES of its SHA-256.  Stable forever: it depends on
 * nothing but the file's unique name.  out holds POP3_UIDL_MAX + 1. */
void pop3_uidl_from_basename(const char *basename, char *out);

/* ---- the session -------------------------------------------------------- */

struct pop3_ctx;

struct pop3_msg {
	uint64_t size;  /* octets RETR sends, without the final ".\r\n" */
	bool deleted;   /* DELE: removed at QUIT */
};

enum pop3_job {
	POP3_JOB_NONE,
	POP3_JOB_SNAPSHOT, /* open INBOX, list, sizes */
	POP3_JOB_READ,     /* one chunk of RETR/TOP */
	POP3_JOB_EXPUNGE,  /* QUIT in TRANSACTION */
};

/* A RETR or TOP in progress.  The worker job reads and stuffs into out;
 * done() on the loop hands out to the connection (conn_write_owned). */
struct pop3_stream {
	size_t index;          /* into msgs */
	int fd;                /* -1 until the job opened it; closed by the
				* job that reads the end */
	uint64_t offset;       /* next file offset to read */
	uint64_t file_size;    /* from fstat when opened */
	struct pop3_stuffer st;
	bool verbatim;         /* RETR of a file whose POP3 size is its size:
				* nothing to stuff, the bytes go out as read */
	bool ahead;            /* RETR: read the following messages too */
	char *out;             /* this job's output (status line first) */
	size_t out_len;
	uint64_t sent;         /* message octets sent, to compare with LIST */
	bool started;          /* the status line went into an output */
	bool waiting;          /* for CONN_EV_DRAINED before the next read */
	bool last;             /* out ends the response (".\r\n") */
	int result;            /* enum md_result of the last job */
};

/* A message read ahead of its RETR: the whole response, ready to send. */
struct pop3_ahead {
	size_t index;          /* into msgs */
	char *data;            /* "+OK ... octets", stuffed message, ".\r\n" */
	size_t len;
	uint64_t sent;         /* message octets in data */
};

/* Multi-line listing in progress (LIST, UIDL): resumes on DRAINED. */
typedef void pop3_cont_fn(struct pop3_session *s);

struct pop3_session {
	struct pop3_ctx *ctx;
	struct conn *conn;
	enum pop3_state state;
	bool busy;               /* a job, timer or stream is in flight */
	bool stls_allowed;       /* plaintext listener with tls = starttls */
	bool locked;             /* holds user's entry in the lock table */
	bool closed;             /* CONN_EV_CLOSED seen */
	unsigned errors;         /* -ERR replies in a row */

	/* AUTHORIZATION */
	char user[256];          /* USER argument (or SASL authcid) */
	bool have_user;
	struct sasl_exchange *sasl;   /* AUTH continuation in progress */
	bool sasl_limit;              /* lines read with POP3_SASL_LINE_MAX */
	struct login login;           /* the password check (login.h) */
	char canonical[256];          /* the verified address */

	/* TRANSACTION */
	struct md_user *md_user;
	struct md_mailbox *mb;
	struct md_msg *md_msgs;       /* the snapshot (paths, base names, UIDs) */
	size_t n_md_msgs;             /* md_msgs entries (to free) */
	struct pop3_msg *msgs;
	size_t n_msgs;                /* messages in the session */
	int job_result;               /* enum md_result of the last job */
	char job_error[160];          /* md_user_error() of a failed job */
	unsigned retr_count, dele_count;

	enum pop3_job job;
	struct pop3_stream *stream;
	struct pop3_ahead ahead[POP3_AHEAD_MSGS]; /* written by a RETR job */
	size_t n_ahead;
	pop3_cont_fn *cont;
	size_t cont_pos;
	uint64_t cont_arg;
	uint32_t *expunge_uids;
	size_t n_expunge, n_expunged;
	size_t n_kept;                /* marked, but their unlink failed */
};

/* pop3.c */
void pop3_enter_state(struct pop3_session *s, enum pop3_state state);
void pop3_ok(struct pop3_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void pop3_err(struct pop3_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A command that went asynchronous is complete: read the next one. */
void pop3_command_done(struct pop3_session *s);
void pop3_begin_async(struct pop3_session *s);
/* Submit a job for the session on the WORKER_IO pool.  -1 when it cannot
 * be queued. */
int pop3_submit(struct pop3_session *s, enum pop3_job job,
		void (*work)(void *), void (*done)(void *));
/* The lock table: one POP3 session per user (RFC 1939 §8, [IN-USE]). */
bool pop3_lock_take(struct pop3_ctx *ctx, const char *user);
void pop3_lock_release(struct pop3_ctx *ctx, const char *user);
/* Cache of POP3 sizes by base name and file size (thread-safe). */
bool pop3_size_cache_get(struct pop3_ctx *ctx, const char *basename,
			 uint64_t file_size, uint64_t *size_r);
void pop3_size_cache_put(struct pop3_ctx *ctx, const char *basename,
			 uint64_t file_size, uint64_t size);
struct auth *pop3_ctx_auth(struct pop3_ctx *ctx);
struct md_store *pop3_ctx_store(struct pop3_ctx *ctx);
bool pop3_login_allowed(const struct pop3_session *s);
void pop3_close(struct pop3_session *s);
/* Close the snapshot, INBOX and user handles (idempotent). */
void pop3_release_store(struct pop3_session *s);

/* pop3_auth.c */
pop3_handler_fn pop3_cmd_user, pop3_cmd_pass, pop3_cmd_auth, pop3_cmd_stls;
void pop3_sasl_line(struct pop3_session *s, const char *line, size_t len);
void pop3_sasl_abort(struct pop3_session *s, const char *why);
/* At a line boundary, after an aborted exchange: normal line limit. */
void pop3_sasl_restore_limit(struct pop3_session *s);
void pop3_auth_cleanup(struct pop3_session *s);

/* pop3_cmd.c */
pop3_handler_fn pop3_cmd_stat, pop3_cmd_list, pop3_cmd_retr, pop3_cmd_top,
	pop3_cmd_dele, pop3_cmd_rset, pop3_cmd_uidl, pop3_cmd_quit_trans;
/* Compute the POP3 size of every snapshot message (worker thread). */
int pop3_snapshot_sizes(struct pop3_session *s);
/* Output drained: continue a listing or a stream. */
void pop3_cmd_drained(struct pop3_session *s);
void pop3_stream_free(struct pop3_stream *st);
/* Drop the messages read ahead (idempotent). */
void pop3_ahead_free(struct pop3_session *s);

#endif
