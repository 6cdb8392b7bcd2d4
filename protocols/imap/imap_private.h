/* Shared inside protocols/imap/ only: the session, the command table, the
 * command reader and argument parser, the worker-job machinery.
 *
 * Files (the reader and cursor have their own header, imap_parse.h):
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
 *   imap_fetch_body.c a FETCH item's bytes: sections, HEADER.FIELDS,
 *                     BINARY, the file checked against its index entry
 *                     (shared with imap_fetch.c through imap_fetch_private.h)
 *   imap_store.c      STORE, COPY, MOVE and their UID forms
 *   imap_append.c     APPEND / MULTIAPPEND (literal streamed into the store)
 *   imap_search.c     SEARCH, UID SEARCH; the search program SORT and
 *                     THREAD share
 *   imap_sort.c       SORT, UID SORT (ESORT)
 *   imap_sort_keys.c  the sort keys SORT and THREAD share, their collection
 *   imap_sort_cache.c the process's sort-key cache (one entry per mailbox)
 *   imap_context.c    CONTEXT=SEARCH / CONTEXT=SORT updates, CANCELUPDATE
 *   imap_thread.c     THREAD, UID THREAD (ORDEREDSUBJECT, REFERENCES)
 *   imap_subject.c    RFC 5256 base subject, the i;unicode-casemap form
 *   imap_idle.c       IDLE / DONE
 *   imap_recent.c     \Recent: which session is told about a message first
 *   imap_objectid.c   OBJECTID (RFC 8474): MAILBOXID, EMAILID, THREADID
 *   imap_preview.c    PREVIEW (RFC 8970): the FETCH item, LAZY
 *   imap_compress.c   COMPRESS=DEFLATE (the layer is core/conn's)
 *   imap_quota.c      GETQUOTA, GETQUOTAROOT, SETQUOTA (RFC 9208)
 *   imap_metadata.c   GETMETADATA, SETMETADATA (RFC 5464)
 *   imap_quirks.c     ID (RFC 2971): the client's name kept, logged, and
 *                     looked up in the client quirks table
 *   imap_notify_parse.c  NOTIFY's arguments (RFC 5465 §3, §8)
 *   imap_notify.c     NOTIFY: the watched mailboxes and the unsolicited
 *                     responses sent between commands
 *
 * Memory: a session owns everything it points to.  A command's scratch
 * (s->cmd_state) is freed by its cmd_free when the tagged reply is sent;
 * the command buffer is reset at every new command.
 */
#ifndef IMAP_IMAP_PRIVATE_H
#define IMAP_IMAP_PRIVATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pthread.h>

#include "imap.h"
#include "imap_parse.h"
#include "login.h"
#include "store.h"
#include "util.h"

struct conn;
struct event;
struct sasl_exchange;

#define IMAP_VERB_MAX 16             /* longest verb: UNSUBSCRIBE, AUTHENTICATE */
#define IMAP_BAD_MAX 10              /* BAD replies in a row before BYE (ours) */
/* Commands before a successful login (RFC 3501 sets none; a client needs a
 * handful: CAPABILITY, STARTTLS, ID, a few login attempts). */
#define IMAP_PREAUTH_COMMANDS_MAX 50
#define IMAP_OUT_SLICE (128 * 1024)  /* output produced by one job, about */
/* An output buffer larger than this is freed when a command ends (a FETCH
 * grew it to a slice; an idle session should not keep that). */
#define IMAP_OUT_KEEP 4096
/* Stop producing output above this; CONN_EV_DRAINED comes at half of
 * CONN_OUTPUT_HIGH. */
#define IMAP_OUTPUT_HIGH (128 * 1024)
#define IMAP_SASL_LINE_MAX 6000      /* base64 of AUTH_SASL_MAX */
#define IMAP_APPEND_CHUNK (64 * 1024)/* literal bytes written per worker job */
#define IMAP_APPEND_MSGS_MAX 100     /* messages in one MULTIAPPEND (RFC 3502 sets none) */
/* Changes by other processes reach IDLE within this (RFC 2177 sets no
 * bound; the issue asks for one second), for a mailbox inotify cannot
 * watch. */
#define IMAP_IDLE_POLL_MS 500
/* A watched mailbox is still polled this rarely: inotify does not see
 * changes made on another machine (a Maildir on NFS). */
#define IMAP_IDLE_POLL_WATCHED_MS (30 * 1000)
#define IMAP_SEARCH_DEPTH_MAX 32     /* nesting of NOT / OR / ( ) (RFC 3501 §6.4.4: none) */
#define IMAP_FETCH_BATCH 200         /* messages read from the store at once (store.h) */

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

/* ---- the session -------------------------------------------------------- */

struct imap_session;

#define IMAP_WAKE_QUEUE 256 /* change notifications buffered for IDLE */
#define IMAP_RECENT_SLOTS 4096 /* mailboxes whose \Recent claims are kept */

/* imap_recent.c: the highest UID a session was told about, per mailbox */
struct imap_recent {
	uint32_t user_id, mailbox_id, uidvalidity;
	uint32_t claimed;
	bool used;
};

struct imap_wake {
	uint32_t user_id, mailbox_id;
};

struct imap_ctx {
	struct auth *auth;
	struct md_store *store;
	struct server *srv;
	struct imap_session *idlers;   /* sessions in IDLE (loop thread) */
	struct imap_session *notifiers;/* sessions with NOTIFY SET (loop thread) */
	struct event *wake_ev;         /* made active by the store's hook */
	pthread_mutex_t wake_lock;     /* guards the queue below */
	struct imap_wake wake[IMAP_WAKE_QUEUE];
	size_t n_wake;
	bool wake_all;                 /* the queue overflowed */
	struct md_watch *watch;        /* inotify on IDLE sessions' mailboxes;
					* NULL: poll them (no inotify) */
	struct event *watch_ev;        /* its descriptor is readable */
	struct imap_recent *recent;    /* IMAP_RECENT_SLOTS entries */
	struct imap_sort_cache *sort_cache; /* SORT/THREAD keys (workers) */
	pthread_mutex_t recent_lock;   /* guards recent (worker threads) */
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
	size_t n_keywords;   /* keywords announced in FLAGS */
	uint32_t *recent;    /* UIDs that are \Recent in this session, ascending */
	size_t n_recent, cap_recent;
};

/* imap_context.c (below) */
#define IMAP_CONTEXTS_MAX 5 /* updating searches per session (RFC 5267 §4.3.1: NOUPDATE beyond) */

/* The state of the view a result was computed on. */
struct imap_context_mark {
	uint64_t modseq, xmodseq;
	uint32_t uidnext;
	size_t n;
};

struct imap_context {
	char tag[IMAP_TAG_MAX + 1];
	void *query;                  /* SEARCH's program or SORT's command */
	bool sorted;                  /* SORT: positions count */
	uint32_t *uids;               /* the result the client has, in its order */
	size_t n;
	struct imap_context_mark mark; /* the view it was computed on */
};

/* imap_quirks.c: workarounds a client named in ID gets (the table there
 * says which client, why, and the source) */
#define IMAP_QUIRK_CHANGEDSINCE_ZERO 0x1 /* FETCH CHANGEDSINCE 0 is accepted */
#define IMAP_QUIRK_RFC822_PEEK       0x2 /* FETCH RFC822.PEEK is BODY.PEEK[] */
#define IMAP_QUIRK_TRAILING_SEP      0x4 /* "Box/" names the mailbox "Box" */
#define IMAP_ID_VALUE_MAX 64             /* octets kept of name, version, os */

/* What the client said in its first ID (RFC 2971), truncated copies */
struct imap_client_id {
	char name[IMAP_ID_VALUE_MAX + 1];
	char version[IMAP_ID_VALUE_MAX + 1];
	char os[IMAP_ID_VALUE_MAX + 1];
	unsigned quirks;     /* IMAP_QUIRK_* from the table */
	bool seen;           /* an ID was received */
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
	bool rev2;              /* ENABLE IMAP4rev2 (RFC 9051 §6.3.1) */
	const char **sort_err_r; /* imap_sort_gather: NO texts kept, not replied */
	bool utf8_accept;       /* ENABLE UTF8=ACCEPT (RFC 6855 §3) */
	bool has_selected;      /* a SELECT / EXAMINE was issued (RFC 5161 §3.1) */
	bool condstore;         /* CONDSTORE enabled (RFC 7162 §3.1): MODSEQ in
				 * every FETCH response about flags */
	bool qresync;           /* ENABLE QRESYNC (RFC 7162 §3.2.3): VANISHED
				 * instead of EXPUNGE */
	struct imap_reader reader;
	struct imap_client_id client; /* from ID; kept across UNAUTHENTICATE */

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
	struct login login;     /* throttle, delay, password check (login.h) */
	char canonical[256];
	bool verified;
	int job_result;         /* enum md_result of the last job */

	/* logged in */
	struct md_user *md_user;

	/* selected */
	struct imap_view view;
	struct imap_seqset searchres; /* RFC 5182 saved result (UIDs) */
	struct imap_context contexts[IMAP_CONTEXTS_MAX]; /* RFC 5267 updating searches */
	size_t n_contexts;

	/* IDLE */
	bool idle;
	struct event *idle_ev;
	bool idle_watched;        /* md_watch_add() held for view.mb */
	bool idle_slow;           /* the poll timer runs at the watched pace */
	struct imap_session *idle_next, *idle_prev;

	/* NOTIFY (imap_notify.c); NULL: NOTIFY NONE */
	struct imap_notify *notify;
	struct imap_session *notify_next, *notify_prev;
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
/* A zeroed scratch state of size octets for the running command, freed
 * with free_fn when its reply is sent; NULL after replying NO. */
void *imap_cmd_state_new(struct imap_session *s, size_t size, void (*free_fn)(void *));
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
/* A change the store's hook does not report (a subscription): wakes IDLE
 * and NOTIFY sessions as the hook would.  Any thread; mailbox_id 0: the
 * user's mailbox list. */
void imap_ctx_changed(struct imap_ctx *ctx, uint32_t user_id, uint32_t mailbox_id);

/* imap_auth.c */
imap_handler_fn imap_cmd_capability, imap_cmd_starttls, imap_cmd_login,
	imap_cmd_authenticate, imap_cmd_unauthenticate;
void imap_sasl_line(struct imap_session *s, const char *line, size_t len);
void imap_auth_cleanup(struct imap_session *s);

/* imap_mailbox.c */
/* STATUS items */
#define IMAP_STATUS_MESSAGES    0x01
#define IMAP_STATUS_RECENT      0x02
#define IMAP_STATUS_UIDNEXT     0x04
#define IMAP_STATUS_UIDVALIDITY 0x08
#define IMAP_STATUS_UNSEEN      0x10
#define IMAP_STATUS_SIZE        0x20
#define IMAP_STATUS_DELETED     0x40
#define IMAP_STATUS_DELETED_STORAGE 0x100 /* RFC 9208 §4.2 */
#define IMAP_STATUS_MAILBOXID   0x4000 /* RFC 8474 §4.2 (imap_objectid.c) */
#define IMAP_STATUS_HIGHESTMODSEQ 0x80 /* RFC 7162 §3.1.10 */
/* "* STATUS name (items)" into s->out (worker); deleted_bytes: the
 * octets of the \Deleted messages, used when items has
 * IMAP_STATUS_DELETED_STORAGE (md_mailbox_deleted_size()). */
void imap_status_line(struct imap_session *s, const char *name, unsigned items,
		      const struct md_status *st, uint64_t deleted_bytes);
imap_handler_fn imap_cmd_list, imap_cmd_lsub, imap_cmd_create, imap_cmd_delete,
	imap_cmd_rename, imap_cmd_subscribe, imap_cmd_unsubscribe, imap_cmd_namespace,
	imap_cmd_status;
/* Mailbox names and quoted strings are UTF-8 on the wire: IMAP4rev2
 * (RFC 9051 §5.1) or UTF8=ACCEPT (RFC 6855 §3) enabled. */
bool imap_utf8_names(const struct imap_session *s);
/* A mailbox argument: astring, INBOX in any case made "INBOX", checked
 * with md_mailbox_name_check.  false with c->err set. */
bool imap_mailbox_arg(const struct imap_session *s, struct imap_cursor *c, char *out,
		      size_t outlen);
/* A store (modified UTF-7) mailbox name as this session writes it: UTF-8
 * under IMAP4rev2 or UTF8=ACCEPT (imap_utf8_names()), else unchanged.  Returns name or buf. */
const char *imap_mailbox_wire(const struct imap_session *s, const char *name, char *buf,
			      size_t buflen);
/* That name as an IMAP string into b. */
void imap_buf_mailbox(const struct imap_session *s, struct buf *b, const char *name);
/* "NO [TRYCREATE] ..." etc. for a failed store call (worker). */
void imap_reply_md(struct imap_session *s, enum md_result r, const char *what);

/* imap_select.c */
imap_handler_fn imap_cmd_select, imap_cmd_examine, imap_cmd_close, imap_cmd_unselect,
	imap_cmd_check, imap_cmd_expunge, imap_cmd_noop;
/* Untagged EXISTS / EXPUNGE / FETCH FLAGS for changes since the view
 * (worker).  allow_expunge false during FETCH/STORE/SEARCH with sequence
 * numbers (RFC 3501 §7.4.1). */
enum md_result imap_view_update(struct imap_session *s, bool allow_expunge);
/* The same; without allow_flags the flag changes wait for the next
 * update (NOTIFY without FlagChange, RFC 5465 §5.4). */
enum md_result imap_view_update_some(struct imap_session *s, bool allow_expunge, bool allow_flags);
/* FLAGS and PERMANENTFLAGS of the view; unless always, only when the
 * mailbox has keywords the session has not been told about. */
void imap_view_flag_lists(struct imap_session *s, char **names, size_t n_names, bool always);
/* "(\Seen \Flagged kw)" of a message's flags into b. */
void imap_buf_flags(struct buf *b, unsigned flags, const uint64_t *keywords,
		    char **names, size_t n_names, bool recent);
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

/* imap_recent.c.  Messages of mb above the returned UID are \Recent for
 * the caller; with claim, the caller takes every message up to upto (no
 * other session sees them as recent).  Worker threads. */
uint32_t imap_recent_claim(struct imap_ctx *ctx, struct md_mailbox *mb, uint32_t uidvalidity,
			   uint32_t upto, bool claim);
bool imap_view_is_recent(const struct imap_view *v, uint32_t uid);
/* \Recent as this session shows it: never under IMAP4rev2 (RFC 9051
 * removed the flag). */
bool imap_is_recent(const struct imap_session *s, uint32_t uid);
/* Add the UIDs above `above` (ascending) to the view's recent set. */
int imap_view_add_recent(struct imap_view *v, const uint32_t *uids, size_t n, uint32_t above);
void imap_view_drop_recent(struct imap_view *v, uint32_t uid);

/* imap_condstore.c (RFC 7162) */
struct imap_qresync {
	bool condstore, qresync;  /* the SELECT parameters given */
	uint32_t uidvalidity;
	uint64_t modseq;
	bool has_known;
	struct imap_seqset known; /* known-uids (free its ranges) */
};
/* mod-sequence-value (zero_ok: mod-sequence-valzer); false with c->err */
bool imap_modseq_arg(struct imap_cursor *c, uint64_t *modseq_r, bool zero_ok);
/* "1:3,7" of ascending UIDs */
void imap_buf_uidset(struct buf *b, const uint32_t *uids, size_t n);
/* EXPUNGE / VANISHED for the UIDs (ascending) the view loses (worker). */
void imap_view_expunged(struct imap_session *s, const uint32_t *uids, size_t n);
/* "* VANISHED (EARLIER) ..." for the UIDs of set (normalised here, '*'
 * = uidnext - 1) expunged after modseq (worker).  -1 on a store failure. */
int imap_vanished_earlier(struct imap_session *s, struct imap_seqset *set, uint64_t modseq,
			  uint32_t uidnext);
/* The parenthesised select-params after the mailbox name; false with c->err. */
bool imap_select_params(struct imap_session *s, struct imap_cursor *c, struct imap_qresync *q);
/* VANISHED (EARLIER) and FETCH for a SELECT with QRESYNC (worker). */
void imap_qresync_answer(struct imap_session *s, struct imap_qresync *q, char **names,
			 size_t n_names, uint32_t uidnext);

/* imap_fetch.c */
imap_handler_fn imap_cmd_fetch;
/* NOTIFY's MessageNew fetch attributes (RFC 5465 §5.2): "(" fetch-att
 * *(SP fetch-att) ")"; items answered from the index, and headers
 * (BODY.PEEK[...HEADER...], [...MIME], RFC822.HEADER: written whole, the
 * store bounds them), but no message text or BINARY[...] (that would
 * stream files between commands) and nothing that sets \Seen.  NULL with
 * c->err set. */
struct imap_fetch_cmd;
struct imap_fetch_cmd *imap_fetch_notify_parse(struct imap_cursor *c);
void imap_fetch_notify_free(struct imap_fetch_cmd *f);
/* "* n FETCH (...)" of those items for the view's messages with a UID of
 * at least from_uid (worker). */
void imap_fetch_notify_write(struct imap_session *s, struct imap_fetch_cmd *f, uint32_t from_uid);

/* imap_store.c */
imap_handler_fn imap_cmd_store, imap_cmd_copy, imap_cmd_move;

/* A flag of a STORE or APPEND flag list (system flag bit or keyword,
 * strdup'ed into keywords). */
bool imap_flag_arg(struct imap_cursor *c, unsigned *flags, char **keywords,
		   size_t *n_keywords, size_t max_keywords);

/* imap_append.c */
imap_handler_fn imap_cmd_append;
void imap_append_bytes(struct imap_session *s, const char *data, size_t len);
/* A line that continues a running APPEND (after a message literal). */
void imap_append_line(struct imap_session *s, const char *line, size_t len);

/* imap_idle.c */
imap_handler_fn imap_cmd_idle;
void imap_idle_line(struct imap_session *s, const char *line, size_t len);
void imap_idle_stop(struct imap_session *s);
void imap_idle_wake(struct imap_ctx *ctx, uint32_t user_id, uint32_t mailbox_id);

/* imap_search.c */
imap_handler_fn imap_cmd_search;

/* The search program alone, shared with SORT and THREAD (RFC 5256 §3:
 * their searching criteria are SEARCH's).  imap_search_parse() reads
 * search-key *(SP search-key) to the end of args; NULL when it failed:
 * *replied_r when a reply is out already (a refused sequence set), else
 * args->err says why (BAD).  On a worker: imap_search_prepare() once,
 * then imap_search_match() per message read with imap_search_needs()
 * (MD_READ_* flags).  imap_search_free() is a cmd_free. */
struct imap_search_cmd;
struct imap_search_cmd *imap_search_parse(struct imap_session *s, struct imap_cursor *args,
					  bool *replied_r);
unsigned imap_search_needs(const struct imap_search_cmd *c);
/* The program is ALL (every message matches, nothing need be read). */
bool imap_search_matches_all(const struct imap_search_cmd *c);
void imap_search_prepare(struct imap_session *s, struct imap_search_cmd *c);
bool imap_search_match(struct imap_session *s, struct imap_search_cmd *c, struct md_msg *m);
void imap_search_free(void *c);

/* RETURN options of SEARCH (RFC 4731 §3.1) and SORT (RFC 5267 §3.1),
 * with CONTEXT, UPDATE and PARTIAL (RFC 5267 §4). */
struct imap_return {
	bool min, max, count, all, save;
	bool context, update;
	uint32_t partial_lo, partial_hi; /* 1-based positions; 0: no PARTIAL */
};
/* "(" [option *(SP option)] ")" after "RETURN SP"; SAVE (RFC 5182) only
 * when allow_save; RETURN () means ALL.  false with c->err. */
bool imap_search_return(struct imap_cursor *c, struct imap_return *r, bool allow_save);
/* "* ESEARCH (TAG ...) [UID] MIN MAX COUNT ALL" of v (n numbers in the
 * order reported: MIN is v[0], MAX v[n - 1], ALL a sequence-set in that
 * order, ascending consecutive runs as ranges), into s->out; nothing when
 * only SAVE was asked. */
void imap_search_esearch(struct imap_session *s, const struct imap_return *r, const uint32_t *v,
			 size_t n, uint64_t modseq);

/* imap_context.c: CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4.3): a
 * UID SEARCH or UID SORT with RETURN (UPDATE) keeps its program as a
 * context of the selected mailbox; whenever the session sends untagged
 * updates where EXPUNGE is allowed (imap_view_update) and the view
 * changed, each context is
 * evaluated again and the difference goes out as ESEARCH ADDTO /
 * REMOVEFROM.  Worker threads (the session's one job), and CANCELUPDATE
 * on the loop. */
/* A context's result as it is now (UIDs in result order, malloc'ed),
 * from its query, its result and the view it was computed on.  NULL, or
 * why it failed. */
typedef const char *imap_context_run_fn(struct imap_session *s, const struct imap_context *x,
					uint32_t **uids_r, size_t *n_r);

void imap_context_mark(const struct imap_session *s, struct imap_context_mark *m);
/* After the answer of a command with RETURN (UPDATE): keep query (its
 * result uids, computed on the view at mark) as the context of s->tag.
 * true when kept (query is the context's now); false after "* NO
 * [NOUPDATE ...]" (not a UID command, with PARTIAL (partial), or
 * IMAP_CONTEXTS_MAX live already). */
bool imap_context_start(struct imap_session *s, bool partial, const struct imap_context_mark *mark,
			void *query, bool sorted, const uint32_t *uids, size_t n);
/* ADDTO / REMOVEFROM for every context whose view changed (worker). */
void imap_context_update(struct imap_session *s);
/* The mailbox is left: every context ends. */
void imap_context_drop_all(struct imap_session *s);
imap_handler_fn imap_cmd_cancelupdate;

/* imap_search.c, imap_sort.c: a context's program run again, and freed */
imap_context_run_fn imap_search_context_run, imap_sort_context_run;
void imap_sort_query_free(void *query);

/* imap_subject.c: RFC 5256 §2.1 base subject of a subject already
 * decoded to UTF-8 (step 1's RFC 2047 decoding: md_header_utf8()),
 * appended to out; *reply_r (may be NULL) tells whether a reply or
 * forward marker was removed (RFC 5256 §2.2 REFERENCES step 5).  -1 on
 * memory. */
int imap_subject_base(const char *s, size_t len, struct buf *out, bool *reply_r);
/* The RFC 5051 i;unicode-casemap form of UTF-8 text (titlecase, then
 * NFKD: the store's md_text_casefold() with the ASCII letters in upper
 * case), appended to out (what exceeds out's cap is dropped): SORT's
 * string keys and THREAD's base subjects in this form compare as octets
 * (RFC 5256 §5, I18NLEVEL=1).  -1 on memory. */
int imap_subject_casemap(const char *s, size_t len, struct buf *out);

/* imap_sort.c: SORT, UID SORT (RFC 5256 §3) with ESORT (RFC 5267 §3.2),
 * and what THREAD shares with it */
imap_handler_fn imap_cmd_sort;

/* Per matching message, the keys both need, read from the index alone
 * (ENVELOPE, sent date, References: store.h), never from the file. */
struct imap_sort_msg {
	uint32_t seq, uid;
	int64_t date;          /* sent date, INTERNALDATE without one (§2.2) */
	int64_t arrival;       /* INTERNALDATE */
	uint64_t size;
	/* the string keys in their i;unicode-casemap form (RFC 5256 §5:
	 * compared as octets, strcmp), NUL-terminated: */
	char *subject;         /* base subject (§2.1) */
	bool reply;            /* the subject had a reply/forward marker */
	/* IMAP_SORT_NEED_ADDRS: */
	char *from, *to, *cc;  /* addr-mailbox of the first address, or "" */
	char *dfrom, *dto;     /* RFC 5957 display name, else addr-spec */
	/* IMAP_SORT_NEED_IDS: */
	char *message_id;      /* ENVELOPE message-id, or NULL */
	char *in_reply_to;     /* ENVELOPE in-reply-to, or NULL */
	char *references;      /* References: value (its last 4 KiB), or NULL */
};

/* The keys of one mailbox's messages, shared through the sort-key cache
 * (imap_sort_cache.c): immutable once made, freed with the last
 * reference.  msgs[i] holds the keys of uids[i] with seq 0, or uid 0 when
 * the index no longer had the message ("gone"); their strings point into
 * arena. */
struct imap_sort_keys {
	uint32_t user_id, mailbox_id, uidvalidity;
	unsigned need;                /* IMAP_SORT_NEED_* the keys hold */
	size_t n;
	uint32_t *uids;               /* ascending */
	struct imap_sort_msg *msgs;
	char *arena;
	size_t arena_len;
	atomic_uint refs;
	struct imap_sort_keys *next;  /* in the cache's list */
};

/* The cache: at most IMAP_SORT_CACHE_MAILBOXES entries of at most
 * IMAP_SORT_CACHE_MAX octets in all (imap_sort_keys_bytes()), least
 * recently used out first. */
#define IMAP_SORT_CACHE_MAX (128 * 1024 * 1024)
#define IMAP_SORT_CACHE_MAILBOXES 64
struct imap_sort_cache;
struct imap_sort_cache *imap_sort_cache_new(size_t max_bytes, size_t max_entries);
void imap_sort_cache_free(struct imap_sort_cache *c);
/* The mailbox's entry if it has one of this UIDVALIDITY, with a reference
 * for the caller; NULL otherwise. */
struct imap_sort_keys *imap_sort_cache_get(struct imap_sort_cache *c, uint32_t user_id,
					   uint32_t mailbox_id, uint32_t uidvalidity);
/* k becomes the mailbox's entry (the caller keeps its own reference),
 * unless it alone exceeds the cache's octets. */
void imap_sort_cache_put(struct imap_sort_cache *c, struct imap_sort_keys *k);
size_t imap_sort_keys_bytes(const struct imap_sort_keys *k);
/* Drops one reference (NULL: nothing). */
void imap_sort_keys_unref(struct imap_sort_keys *k);

/* A SORT's or THREAD's program and the keys of the messages it matched */
#define IMAP_SORT_NEED_ADDRS 0x1 /* from, to, cc, dfrom, dto */
#define IMAP_SORT_NEED_IDS   0x2 /* message_id, in_reply_to, references */
struct imap_sort_set {
	struct imap_search_cmd *prog;
	unsigned need;         /* IMAP_SORT_NEED_*: keys other than the base
				* subject, dates and size */
	struct imap_sort_msg *msgs; /* strings point into keys' arena */
	size_t n;
	struct imap_sort_keys *keys; /* a reference to the cache entry */
};

/* "charset SP search-criteria" of SORT and THREAD (RFC 5256 §3) into
 * set->prog: only UTF-8 and US-ASCII (NO [BADCHARSET] otherwise).  false
 * after a reply (BAD, NO) to the command. */
bool imap_sort_criteria(struct imap_session *s, struct imap_cursor *args,
			struct imap_sort_set *set);
/* Worker: the keys of the messages of the view set->prog matches,
 * ascending by sequence number, from the mailbox's entry in the sort-key
 * cache (made or completed here; set->keys holds a reference to it).
 * 0, or -1 after a NO reply. */
int imap_sort_collect(struct imap_session *s, struct imap_sort_set *set);
/* The keys, the reference to the entry and the program. */
void imap_sort_set_free(struct imap_sort_set *set);
/* Sent date, then sequence number (RFC 5256 §2.2): qsort comparator of
 * struct imap_sort_msg pointers. */
int imap_sort_cmp_date_ptr(const void *a, const void *b);

/* imap_thread.c: THREAD, UID THREAD (RFC 5256 §3) */
imap_handler_fn imap_cmd_thread;

/* imap_preview.c (RFC 8970; worker threads) */
/* After "PREVIEW": an optional " (LAZY)"; false when the list is bad. */
bool imap_preview_mods(struct imap_cursor *c, bool *lazy_r);
/* "PREVIEW " and the preview (computed from the file for a message
 * indexed before it was kept; NIL then under LAZY). */
void imap_preview_fetch(struct imap_session *s, struct md_msg *msg, bool lazy);

/* imap_objectid.c (RFC 8474; worker threads) */
/* "* OK [MAILBOXID (id)]" of the view's mailbox (SELECT / EXAMINE). */
void imap_objectid_select(struct imap_session *s);
/* " MAILBOXID (id)" of a STATUS answer, after sep. */
void imap_objectid_status(struct imap_session *s, const char *name, const char *sep);
/* FETCH "EMAILID (id)", or with thread "THREADID NIL". */
void imap_objectid_fetch(struct buf *b, const struct md_msg *msg, bool thread);
/* SP objectid (SEARCH EMAILID / THREADID), strdup'ed; false with c->err. */
bool imap_objectid_arg(struct imap_cursor *c, char **id_r);
/* Whether msg (read with MD_READ_PATH) has EMAILID id. */
bool imap_objectid_emailid_is(const struct md_msg *msg, const char *id);
/* imap_compress.c */
imap_handler_fn imap_cmd_compress;

/* imap_quota.c */
imap_handler_fn imap_cmd_getquota, imap_cmd_getquotaroot, imap_cmd_setquota;

/* imap_metadata.c */
imap_handler_fn imap_cmd_getmetadata, imap_cmd_setmetadata;

/* imap_quirks.c */
imap_handler_fn imap_cmd_id;
/* IMAP_QUIRK_* of a client name (0: none) */
unsigned imap_quirks_for(const char *name);
/* Whether the session's client gets that workaround */
bool imap_quirk(const struct imap_session *s, unsigned quirk);
/* imap_notify_parse.c: NOTIFY SET / NONE (RFC 5465 §3.1, §8) */
#define IMAP_NOTIFY_EV_NEW     0x01 /* MessageNew (RFC 5465 §5.2) */
#define IMAP_NOTIFY_EV_EXPUNGE 0x02 /* MessageExpunge (§5.3) */
#define IMAP_NOTIFY_EV_FLAGS   0x04 /* FlagChange (§5.4) */
#define IMAP_NOTIFY_EV_NAME    0x08 /* MailboxName (§5.5) */
#define IMAP_NOTIFY_EV_SUBS    0x10 /* SubscriptionChange (§5.6) */
#define IMAP_NOTIFY_EV_MESSAGE (IMAP_NOTIFY_EV_NEW | IMAP_NOTIFY_EV_EXPUNGE | IMAP_NOTIFY_EV_FLAGS)
/* What [BADEVENT (...)] lists: the events we support (§3.1) */
#define IMAP_NOTIFY_SUPPORTED "MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange"
#define IMAP_NOTIFY_GROUPS_MAX 16 /* event groups in one NOTIFY SET (RFC 5465: none) */
#define IMAP_NOTIFY_NAMES_MAX 64  /* mailbox names of subtree / mailboxes filters */

enum imap_notify_filter {
	IMAP_NOTIFY_SELECTED,         /* §6.1 */
	IMAP_NOTIFY_SELECTED_DELAYED, /* §6.2: expunges wait for a command */
	IMAP_NOTIFY_INBOXES,          /* §6.3: here INBOX (the MDA's target) */
	IMAP_NOTIFY_PERSONAL,         /* §6.4: every mailbox of the user */
	IMAP_NOTIFY_SUBSCRIBED,       /* §6.5 */
	IMAP_NOTIFY_SUBTREE,          /* §6.6: the names and their children */
	IMAP_NOTIFY_MAILBOXES,        /* §6.7: the names only */
};

struct imap_notify_group {
	enum imap_notify_filter filter;
	unsigned events;              /* IMAP_NOTIFY_EV_* */
	size_t first_name, n_names;   /* subtree / mailboxes: into names */
};

struct imap_notify_spec {
	bool status;                  /* SET STATUS (§3.1) */
	struct imap_notify_group groups[IMAP_NOTIFY_GROUPS_MAX];
	size_t n_groups;
	char names[IMAP_NOTIFY_NAMES_MAX][MD_MAILBOX_NAME_MAX + 1];
	size_t n_names;
	unsigned selected_events;     /* of the selected filter, 0 without one */
	bool selected_delayed;
	struct imap_fetch_cmd *fetch; /* MessageNew's fetch-att there, or NULL */
};

enum imap_notify_parse_result {
	IMAP_NOTIFY_PARSE_SET,        /* spec filled */
	IMAP_NOTIFY_PARSE_NONE,       /* NOTIFY NONE */
	IMAP_NOTIFY_PARSE_BAD,        /* syntax or a rule of §3.1 / §5: BAD */
	IMAP_NOTIFY_PARSE_BADEVENT,   /* an event we do not support: NO [BADEVENT] */
	IMAP_NOTIFY_PARSE_LIMIT,      /* IMAP_NOTIFY_*_MAX: NO [LIMIT] */
};

/* The arguments after "NOTIFY" into spec (zeroed first); c->err says
 * why for BAD.  imap_notify_spec_clear() frees what it holds. */
enum imap_notify_parse_result imap_notify_parse(const struct imap_session *s,
						struct imap_cursor *c,
						struct imap_notify_spec *spec);
void imap_notify_spec_clear(struct imap_notify_spec *spec);
/* The events the filters other than selected give a mailbox. */
unsigned imap_notify_events_for(const struct imap_notify_spec *spec, const char *name,
				bool subscribed);

/* imap_notify.c */
imap_handler_fn imap_cmd_notify;
/* A mailbox changed (loop thread; 0, 0: maybe any of them): sessions of
 * that user with NOTIFY SET report it once they are between commands. */
void imap_notify_wake(struct imap_ctx *ctx, uint32_t user_id, uint32_t mailbox_id);
/* Send what is pending now if the session is between commands. */
void imap_notify_kick(struct imap_session *s);
/* imap_view_update() between commands (IDLE's and NOTIFY's, worker):
 * flag changes only when IDLE or NOTIFY's FlagChange asks. */
enum md_result imap_notify_view_update(struct imap_session *s, bool allow_expunge);
/* After an EXISTS for the messages from from_uid on (worker): with
 * MessageNew's fetch attributes for the selected mailbox (RFC 5465
 * §5.2), their FETCH, whichever update announced them. */
void imap_notify_new_messages(struct imap_session *s, uint32_t from_uid);
/* NOTIFY SET (selected (... MessageExpunge ...)), not selected-delayed:
 * the client takes EXPUNGE at any time, so it loses RFC 3501 §7.4.1's
 * protection during FETCH, STORE and SEARCH with sequence numbers
 * (RFC 5465 §6.1, §6.2). */
bool imap_notify_expunges_any_time(const struct imap_session *s);
/* NOTIFY NONE, and at the end of the session: drop watches and timer. */
void imap_notify_stop(struct imap_session *s);

#endif
