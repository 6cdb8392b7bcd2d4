/* Shared inside protocols/imap/ only: the session, the command table, the
 * command reader and argument parser, the worker-job machinery.
 *
 * Files:
 *   imap.c            registration, connection events, state machine,
 *                     command table and dispatch, jobs, replies
 *   imap_parse.c      the command reader (lines + literals, resumable), the
 *                     argument cursor (atoms, strings, lists, sequence sets)
 *   imap_auth.c       CAPABILITY, STARTTLS, LOGIN, AUTHENTICATE, throttling
 *   imap_mailbox.c    LIST, LSUB, CREATE, DELETE, RENAME, (UN)SUBSCRIBE,
 *                     NAMESPACE, STATUS
 *   imap_select.c     SELECT, EXAMINE, CLOSE, UNSELECT, CHECK, EXPUNGE, NOOP
 *                     and the untagged updates of the selected mailbox
 *   imap_fetch.c      FETCH, UID FETCH (streaming)
 *   imap_store.c      STORE, COPY, MOVE and their UID forms
 *   imap_append.c     APPEND / MULTIAPPEND (literal streamed into the store)
 *   imap_search.c     SEARCH, UID SEARCH
 *   imap_idle.c       IDLE / DONE
 *
 * Memory: a session owns everything it points to.  A command's scratch
 * (s->cmd_state) is freed by its cmd_free when the tagged reply is sent;
 * the command buffer is reset at every new command.
 */
#ifndef IMAP_IMAP_PRIVATE_H
#define IMAP_IMAP_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pthread.h>

#include "imap.h"
#include "store.h"
#include "util.h"

struct conn;
struct event;
struct sasl_exchange;

#define IMAP_TAG_MAX 64              /* RFC 3501 §9 sets none; ours, generous */
#define IMAP_VERB_MAX 16             /* longest verb: UNSUBSCRIBE, AUTHENTICATE */
/* RFC 7888 §4 / LITERAL-: non-synchronising literals above 4096 octets
 * are refused outside APPEND. */
#define IMAP_NONSYNC_LITERAL_MAX 4096
/* Literals in commands other than APPEND (passwords, search strings,
 * mailbox names): small. */
#define IMAP_LITERAL_MAX (64 * 1024)
/* A whole command: lines (each up to cfg->line_length_max, RFC 7162 §4
 * recommends at least 8192) plus its small literals. */
#define IMAP_COMMAND_MAX (256 * 1024)
#define IMAP_LITERALS_MAX 64         /* literals in one command */
#define IMAP_SEQ_RANGES_MAX 16384    /* ranges in one sequence set */
#define IMAP_BAD_MAX 10              /* BAD replies in a row before BYE */
/* Commands before a successful login (RFC 3501 sets none; a client needs a
 * handful: CAPABILITY, STARTTLS, ID, a few login attempts). */
#define IMAP_PREAUTH_COMMANDS_MAX 50
#define IMAP_LIST_DEPTH_MAX 8        /* nested parentheses in arguments */
#define IMAP_OUT_SLICE (128 * 1024)  /* output produced by one job, about */
/* Stop producing output above this; CONN_EV_DRAINED comes at half of
 * CONN_OUTPUT_HIGH. */
#define IMAP_OUTPUT_HIGH (128 * 1024)
#define IMAP_SASL_LINE_MAX 6000      /* base64 of AUTH_SASL_MAX */
#define IMAP_APPEND_CHUNK (64 * 1024)/* literal bytes written per worker job */
#define IMAP_APPEND_MSGS_MAX 100     /* messages in one MULTIAPPEND */
#define IMAP_IDLE_POLL_MS 500        /* outside changes seen by IDLE within */
#define IMAP_SEARCH_DEPTH_MAX 32     /* nesting of NOT / OR / ( ) */
#define IMAP_FETCH_BATCH 200         /* messages read from the store at once */

enum imap_state {
	IMAP_STATE_NOT_AUTH, /* RFC 3501 §3.1 */
	IMAP_STATE_AUTH,     /* §3.2 */
	IMAP_STATE_SELECTED, /* §3.3 */
	IMAP_STATE_LOGOUT,   /* §3.4 */
};

#define IMAP_IN_NOAUTH (1u << IMAP_STATE_NOT_AUTH)
#define IMAP_IN_AUTH   (1u << IMAP_STATE_AUTH)
#define IMAP_IN_SEL    (1u << IMAP_STATE_SELECTED)
#define IMAP_IN_ANY    (IMAP_IN_NOAUTH | IMAP_IN_AUTH | IMAP_IN_SEL)
#define IMAP_IN_LOGGED (IMAP_IN_AUTH | IMAP_IN_SEL)

/* Command flags */
#define IMAP_CMD_UID 0x1 /* has a UID form (UID FETCH ...) */

enum imap_cmd_status {
	CMD_DONE, /* the tagged reply is in the output */
	CMD_MORE, /* call the work function again once the output drained */
};

/* ---- the command reader ------------------------------------------------- */

/* Collects one command from the connection's line and byte events: lines
 * are joined with CRLF and literal bytes kept inline, so the argument
 * cursor sees exactly what the client sent ("{5}\r\nhello").  APPEND
 * literals are not kept (imap_append.c streams them to the store). */
struct imap_reader {
	struct buf cmd;          /* the command so far */
	uint64_t literal_len;    /* announced size of the literal to read */
	uint64_t literal_left;   /* its bytes still to come */
	bool literal_sync;       /* {n}: the client waits for "+" */
	bool in_literal;
	bool discard;            /* skipping a refused command's rest */
	bool is_append;          /* the command is APPEND */
	unsigned literals;
	uint64_t literal_max;    /* APPEND: message_size_max */
};

enum imap_read_result {
	IMAP_READ_MORE,     /* need more input */
	IMAP_READ_LITERAL,  /* a literal follows: literal_len bytes, "+" first
			     * when literal_sync; bytes mode */
	IMAP_READ_COMMAND,  /* a whole command is in cmd */
	IMAP_READ_TOOBIG,   /* literal over the limit: tagged NO [TOOBIG] (sync:
			     * the client sends nothing more) */
	IMAP_READ_BAD,      /* malformed or too long: tagged BAD */
	IMAP_READ_CLOSE,    /* a non-synchronising literal too big to skip */
};

void imap_reader_init(struct imap_reader *r, uint64_t append_max);
void imap_reader_free(struct imap_reader *r);
void imap_reader_reset(struct imap_reader *r);
/* One line without CRLF. */
enum imap_read_result imap_reader_line(struct imap_reader *r, const char *line, size_t len);
/* Literal bytes (at most literal_left).  MORE until the literal is
 * complete; then MORE as well (the command goes on with a line). */
enum imap_read_result imap_reader_bytes(struct imap_reader *r, const char *data, size_t len);
/* The tag of the command so far ("*" when there is none yet), for the BAD
 * reply to a refused command.  out holds IMAP_TAG_MAX + 1. */
void imap_reader_tag(const struct imap_reader *r, char *out);
/* A line ending in "{n}" or "{n+}": 1 with the size (UINT64_MAX when it
 * overflows) and whether it is synchronising; else 0. */
int imap_literal_header(const char *line, size_t len, uint64_t *n_r, bool *sync_r);

/* ---- the argument cursor ------------------------------------------------ */

struct imap_cursor {
	char *p, *end;
	const char *err;   /* why parsing failed (text of the BAD) */
	unsigned depth;
};

struct imap_range {
	uint32_t lo, hi; /* lo <= hi; UINT32_MAX stands for '*' */
};

struct imap_seqset {
	struct imap_range *ranges;
	size_t n;
	bool saved; /* "$" (RFC 5182 SEARCHRES) */
};

void imap_cursor_init(struct imap_cursor *c, char *data, size_t len);
bool imap_at_end(const struct imap_cursor *c);
/* Exactly one space. */
bool imap_sp(struct imap_cursor *c);
bool imap_peek(const struct imap_cursor *c, char ch);
bool imap_char(struct imap_cursor *c, char ch);
/* An atom (RFC 3501 §9 ATOM-CHAR), copied NUL-terminated into out.
 * extra: more characters allowed ("[]" for fetch items, "\\" for flags). */
bool imap_atom(struct imap_cursor *c, char *out, size_t outlen, const char *extra);
/* A tag: ASTRING-CHAR except '+'. */
bool imap_tag(struct imap_cursor *c, char *out, size_t outlen);
/* string = quoted / literal; points into the command buffer (quoted
 * strings unescaped in place); not NUL-terminated. */
bool imap_string(struct imap_cursor *c, const char **s_r, size_t *len_r);
/* astring = atom / string; nstring = string / NIL (*s_r NULL for NIL). */
bool imap_astring(struct imap_cursor *c, const char **s_r, size_t *len_r);
bool imap_nstring(struct imap_cursor *c, const char **s_r, size_t *len_r);
/* An astring copied NUL-terminated (no NUL inside, fits). */
bool imap_astring_copy(struct imap_cursor *c, char *out, size_t outlen);
/* A list-mailbox (RFC 3501 §9: atom with % and *, or string). */
bool imap_list_mailbox(struct imap_cursor *c, char *out, size_t outlen);
/* number / nz-number (RFC 3501 §9) */
bool imap_number(struct imap_cursor *c, uint32_t *n_r, bool nonzero);
bool imap_number64(struct imap_cursor *c, uint64_t *n_r);
/* sequence-set (RFC 3501 §9, '$' of RFC 5182).  set_r->ranges is
 * malloc'ed: free() it. */
bool imap_seqset(struct imap_cursor *c, struct imap_seqset *set_r);
/* Replace '*' by star and sort/merge the ranges; ranges that collapse
 * outside [1, star] stay as given. */
void imap_seqset_normalise(struct imap_seqset *set, uint32_t star);
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n);
/* date (RFC 3501 §9 "d-MMM-yyyy", quoted or not) as Unix time at 00:00 UTC. */
bool imap_date(struct imap_cursor *c, int64_t *t_r);
/* date-time "dd-MMM-yyyy hh:mm:ss +zzzz" */
bool imap_date_time(struct imap_cursor *c, int64_t *t_r);
/* Append an IMAP string to b: quoted when possible, else a literal. */
int imap_buf_string(struct buf *b, const char *s, size_t len);
/* "dd-Mon-yyyy hh:mm:ss +0000" of t (INTERNALDATE, in UTC). */
void imap_format_date_time(int64_t t, char *out, size_t outlen);

/* ---- the session -------------------------------------------------------- */

struct imap_session;

#define IMAP_WAKE_QUEUE 256 /* change notifications buffered for IDLE */

struct imap_wake {
	uint32_t user_id, mailbox_id;
};

struct imap_ctx {
	struct auth *auth;
	struct md_store *store;
	struct server *srv;
	struct imap_session *idlers;   /* sessions in IDLE (loop thread) */
	struct event *wake_ev;         /* made active by the store's hook */
	pthread_mutex_t wake_lock;     /* guards the queue below */
	struct imap_wake wake[IMAP_WAKE_QUEUE];
	size_t n_wake;
	bool wake_all;                 /* the queue overflowed */
};

typedef void imap_handler_fn(struct imap_session *s, struct imap_cursor *args);
typedef enum imap_cmd_status imap_work_fn(struct imap_session *s);
typedef void imap_after_fn(struct imap_session *s);

struct imap_command {
	const char *verb;
	unsigned states;
	unsigned flags;
	imap_handler_fn *handler;
};

/* The selected mailbox as this session has announced it (RFC 3501 §7.4.1:
 * the sequence-number map only changes by announced EXISTS / EXPUNGE). */
struct imap_view {
	struct md_mailbox *mb;
	char name[MD_MAILBOX_NAME_MAX + 1];
	bool readonly;
	uint32_t *uids;      /* sequence number i+1 -> UID */
	size_t n, cap;
	uint32_t uidvalidity;
	uint32_t uidnext;    /* the next UID not yet announced */
	uint64_t modseq;     /* flag changes announced up to this mod-sequence */
	uint64_t xmodseq;    /* expunges announced up to this mod-sequence */
	uint64_t own_modseq; /* of this session's last STORE, already reported */
	uint32_t user_id, mailbox_id;
};

struct imap_session {
	struct imap_ctx *ctx;
	struct conn *conn;
	enum imap_state state;
	bool starttls_allowed;  /* plaintext listener with tls = starttls */
	bool busy;              /* a command is running (job, timer, stream) */
	bool wait_drain;        /* CMD_MORE: continue at CONN_EV_DRAINED */
	bool closed;
	bool close_after;       /* say BYE: close once the output is queued */
	bool appending;         /* APPEND owns the input (literal, next line) */
	unsigned bad_count;     /* BAD replies in a row */
	unsigned preauth_count; /* commands in NOT-AUTHENTICATED */
	struct imap_reader reader;

	/* the command running */
	char tag[IMAP_TAG_MAX + 1];
	const struct imap_command *cmd;
	bool uid;               /* the UID form */
	bool replied;           /* its tagged reply is in the output */
	const char *status;     /* "OK", "NO", "BAD" of that reply (for the log) */
	uint64_t started_ms;    /* monotonic, when the command was dispatched */
	struct buf out;         /* what the job wants written */
	imap_work_fn *work;
	imap_after_fn *after;   /* on the loop after the last job (may be NULL) */
	enum imap_cmd_status work_status;
	void *cmd_state;
	void (*cmd_free)(void *);

	/* login */
	struct sasl_exchange *sasl;
	struct event *delay_ev;
	char *password;
	char user[256];
	char canonical[256];
	bool verified;
	int job_result;         /* enum md_result of the last job */
	char job_error[160];

	/* logged in */
	struct md_user *md_user;
	bool enabled_utf8;      /* ENABLE UTF8=ACCEPT (unused: not offered) */

	/* selected */
	struct imap_view view;
	struct imap_seqset searchres; /* RFC 5182 saved result (UIDs) */

	/* IDLE */
	bool idle;
	struct event *idle_ev;
	bool idle_syncing;
	struct imap_session *idle_next, *idle_prev;
};

/* imap.c */
const struct imap_command *imap_command_find(const char *verb);
void imap_enter_state(struct imap_session *s, enum imap_state state);
/* Tagged reply of the running command: status "OK"/"NO"/"BAD", text may
 * begin with a "[CODE]".  Into the output buffer (worker) or the conn. */
void imap_reply(struct imap_session *s, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void imap_out(struct imap_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Run work on a worker thread (again while it returns CMD_MORE), write its
 * output, then after() on the loop and read the next command. */
void imap_job_start(struct imap_session *s, imap_work_fn *work, imap_after_fn *after);
/* The command is complete (output already queued): read the next one. */
void imap_command_done(struct imap_session *s);
/* Write s->out to the connection. */
void imap_flush(struct imap_session *s);
struct auth *imap_ctx_auth(struct imap_ctx *ctx);
struct md_store *imap_ctx_store(struct imap_ctx *ctx);
bool imap_login_allowed(const struct imap_session *s);
/* The CAPABILITY list for this session's state (no leading "CAPABILITY"). */
void imap_capability(const struct imap_session *s, char *out, size_t outlen);
void imap_close_mailbox(struct imap_session *s);
void imap_idle_link(struct imap_session *s, bool on);

/* imap_auth.c */
imap_handler_fn imap_cmd_capability, imap_cmd_starttls, imap_cmd_login,
	imap_cmd_authenticate;
void imap_sasl_line(struct imap_session *s, const char *line, size_t len);
void imap_auth_cleanup(struct imap_session *s);

/* imap_mailbox.c */
imap_handler_fn imap_cmd_list, imap_cmd_lsub, imap_cmd_create, imap_cmd_delete,
	imap_cmd_rename, imap_cmd_subscribe, imap_cmd_unsubscribe, imap_cmd_namespace,
	imap_cmd_status;
/* A mailbox argument: astring, INBOX in any case made "INBOX", checked
 * with md_mailbox_name_check.  false with c->err set. */
bool imap_mailbox_arg(struct imap_cursor *c, char *out, size_t outlen);
/* "NO [TRYCREATE] ..." etc. for a failed store call (worker). */
void imap_reply_md(struct imap_session *s, enum md_result r, const char *what);

/* imap_select.c */
imap_handler_fn imap_cmd_select, imap_cmd_examine, imap_cmd_close, imap_cmd_unselect,
	imap_cmd_check, imap_cmd_expunge, imap_cmd_noop;
/* Untagged EXISTS / EXPUNGE / FETCH FLAGS for changes since the view
 * (worker).  allow_expunge false during FETCH/STORE/SEARCH with sequence
 * numbers (RFC 3501 §7.4.1). */
enum md_result imap_view_update(struct imap_session *s, bool allow_expunge);
/* "(\Seen \Flagged kw)" of a message's flags into b. */
void imap_buf_flags(struct buf *b, unsigned flags, const uint64_t *keywords,
		    char **names, size_t n_names);
/* Sequence number of uid in the view, 0 when absent. */
uint32_t imap_view_seq(const struct imap_view *v, uint32_t uid);
/* UIDs of the view a set names (sequence numbers or UIDs).  malloc'ed
 * ascending; *n_r may be 0.  -1 when out of memory. */
int imap_view_resolve(const struct imap_view *v, struct imap_seqset *set, bool uid,
		      uint32_t **uids_r, size_t *n_r);

/* A sequence-set argument ("$" too) resolved to the view's UIDs; false
 * after replying BAD / NO. */
bool imap_set_arg(struct imap_session *s, struct imap_cursor *args, bool uid,
		  uint32_t **uids_r, size_t *n_r);

/* imap_fetch.c */
imap_handler_fn imap_cmd_fetch;

/* imap_store.c */
imap_handler_fn imap_cmd_store, imap_cmd_copy, imap_cmd_move;

/* A flag of a STORE or APPEND flag list (system flag bit or keyword,
 * strdup'ed into keywords). */
bool imap_flag_arg(struct imap_cursor *c, unsigned *flags, char **keywords,
		   size_t *n_keywords, size_t max_keywords);

/* imap_append.c */
imap_handler_fn imap_cmd_append;
/* The reader announced a literal of an APPEND; streams it. */
void imap_append_literal(struct imap_session *s);
void imap_append_bytes(struct imap_session *s, const char *data, size_t len);
/* A line that continues a running APPEND (after a message literal). */
void imap_append_line(struct imap_session *s, const char *line, size_t len);

/* imap_search.c */
imap_handler_fn imap_cmd_search;
/* Case-insensitive ASCII substring match over raw header or body bytes. */
bool imap_search_text_match(struct md_mailbox *mb, struct md_msg *msg, int where,
			    const char *field, const char *needle, size_t needle_len);

/* imap_idle.c */
imap_handler_fn imap_cmd_idle;
void imap_idle_line(struct imap_session *s, const char *line, size_t len);
void imap_idle_stop(struct imap_session *s);
void imap_idle_wake(struct imap_ctx *ctx, uint32_t user_id, uint32_t mailbox_id);

#endif
