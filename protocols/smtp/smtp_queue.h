/* The outbound queue of protocols/smtp: messages accepted for other
 * domains (and bounces for senders elsewhere) wait here until the SMTP
 * client has delivered them to every recipient or they have bounced.
 *
 * Files (the on-disk format is documented at the top of smtp_queue.c):
 *   smtp_queue.c    queue directory, envelope format, durable create and
 *                   update, scan, corrupt files, `postern queue`
 *   smtp_route.c    where a domain's mail goes: MX (RFC 5321 §5.1, RFC
 *                   7505 null MX) through res_nquery, or the relay host;
 *                   runs on a worker
 *   smtp_shard.c    mail for a local mailbox another shard holds: by
 *                   LMTP to that instance (shard_name, shards_file)
 *   smtp_client.c   the SMTP client on the event loop: one connection, one
 *                   transaction for the recipients of one domain; after
 *                   the far side's 250 the connection may be kept idle for
 *                   the next message to the same destination
 *   smtp_outq.c     the scheduler on the loop: scans the queue, delivers
 *                   what is due, applies replies, retries, lifetime, keeps
 *                   connections for reuse (smtp_outq_load.c reads a
 *                   message on a worker; smtp_outq_private.h)
 *   smtp_bounce.c   delivery status notifications (RFC 3464), delivered
 *                   into a local sender's INBOX or queued to a remote one
 *   smtp_mime8.c    8-bit to quoted-printable for servers without 8BITMIME
 *   smtp_sign.c     the DKIM hook (a stub until DKIM signing is merged)
 *
 * Threads: every function here that touches files runs on a worker, but
 * queue_prepare() and queue_cleanup(), which run once at start before the
 * loop does; the scheduler (smtp_outq.c) and the client run on the loop.
 * `postern queue` runs in its own process and only reads envelopes,
 * removes a message (envelope first) or drops the flush marker.
 *
 * Recipes:
 *   submission   smtp_deliver.c: queue_writer_open() at the first chunk,
 *                queue_writer_write() per chunk, queue_writer_commit()
 *                with the envelope before the 250, then smtp_outq_kick()
 *   bounce       bounce_send(): into the store, or a new queue entry
 *   DKIM         replace the body of smtp_sign_message() (smtp_sign.c)
 */
#ifndef PROTOCOLS_SMTP_SMTP_QUEUE_H
#define PROTOCOLS_SMTP_SMTP_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/types.h>

#include "smtp_private.h"

typedef struct ssl_ctx_st SSL_CTX;

#define QUEUE_ID_MAX 40               /* hex id; file names ID.msg, ID.env */
#define QUEUE_RCPTS_MAX SMTP_RCPT_MAX /* RFC 5321 §4.5.3.1.8 */
#define QUEUE_ENV_MAX (256 * 1024)    /* an envelope file larger is corrupt */
/* Envelope lines: "rcpt" with ORCPT (500) and the address (256), or a
 * reply line (512): 2048 is ample. */
#define QUEUE_LINE_MAX 2048
/* "TLSv1.3 TLS_AES_256_GCM_SHA384 verified=no (unable to get local issuer
 * certificate) cn=" and a 64-character CN (RFC 5280 ub-common-name) */
#define QUEUE_TLS_MAX 192
/* The scheduler looks at the queue directory this often (new messages
 * from this process are looked at at once); `postern queue flush` is
 * therefore noticed within QUEUE_FLUSH_NOTICE_S. */
#define QUEUE_SCAN_S 2
#define QUEUE_FLUSH_NOTICE_S QUEUE_SCAN_S

enum queue_rcpt_state {
	QUEUE_RCPT_PENDING, /* not delivered yet (never tried, or deferred) */
	QUEUE_RCPT_SENT,    /* the far side answered 250 */
	QUEUE_RCPT_FAILED,  /* failed for good; the bounce is not sent yet */
	QUEUE_RCPT_BOUNCED, /* failed for good and the bounce is durable */
};

struct queue_rcpt {
	char addr[SMTP_PATH_MAX + 1];
	char orcpt[SMTP_ORCPT_MAX + 1]; /* "rfc822;xtext" or "" */
	unsigned notify;                /* SMTP_NOTIFY_* bits, 0: not given */
	enum queue_rcpt_state state;
	char reply[SMTP_REPLY_MAX];     /* last reply or reason, "" none yet */
	char remote[SMTP_DOMAIN_MAX + 1]; /* host that gave reply, "" local */
	char tls[QUEUE_TLS_MAX];        /* how that session was protected:
					 * client_job.tls, "none", "" no session */
	bool success_due;               /* not stored: sent in this attempt to a
					 * server without DSN, NOTIFY=SUCCESS:
					 * we report "relayed" (RFC 3461 §5.2.2) */
};

struct queue_env {
	char id[QUEUE_ID_MAX + 1];
	char sender[SMTP_PATH_MAX + 1]; /* "" is the null reverse-path */
	enum smtp_ret ret;
	char envid[SMTP_ENVID_MAX + 1];
	bool body_8bit;                 /* BODY=8BITMIME was given */
	bool smtputf8;
	int64_t created;
	int64_t next;                   /* next attempt, Unix time */
	unsigned attempts;
	bool warned;                    /* the delay notice was sent */
	uint64_t msg_size;              /* not stored: ID.msg's size at scan */
	struct queue_rcpt *rcpts;       /* QUEUE_RCPTS_MAX entries allocated */
	size_t n_rcpts;
};

/* A new envelope with room for QUEUE_RCPTS_MAX recipients; NULL: memory. */
struct queue_env *queue_env_new(void);
void queue_env_free(struct queue_env *env);
/* A recipient added as pending; -1 when full. */
int queue_env_add(struct queue_env *env, const char *addr, unsigned notify, const char *orcpt);

/* data_dir/queue and its tmp/ and corrupt/ folders exist; 0 or -1. */
int queue_prepare(const char *data_dir);

/* Writing a new message: open, write (as often as needed), commit makes
 * message and envelope durable (fsync of both files and the directory)
 * and only then visible to the scheduler; abort removes everything. */
struct queue_writer;
int queue_writer_open(const char *data_dir, const char *id, struct queue_writer **w_r);
int queue_writer_write(struct queue_writer *w, const void *data, size_t len);
/* The rest of fd from its current offset; 0 or -1. */
int queue_writer_copy_fd(struct queue_writer *w, int fd);
int queue_writer_commit(struct queue_writer *w, const struct queue_env *env);
void queue_writer_free(struct queue_writer *w); /* aborts if not committed */
const char *queue_writer_error(const struct queue_writer *w);

/* The envelope text (format at the top of smtp_queue.c); parse modifies
 * text and returns 0 or -1 (corrupt).  Exposed for tests and fuzzing. */
int queue_env_format(const struct queue_env *env, struct buf *b);
int queue_env_parse(struct queue_env *env, char *text);

/* Atomic rewrite of ID.env (tmp, fsync, rename, directory fsync).  When
 * ID.msg is gone (postern queue delete) nothing is written and 1 returned. */
int queue_env_update(const char *data_dir, const struct queue_env *env);
/* Read ID.env; -1 with errno ENOENT when gone, EINVAL when corrupt. */
int queue_env_read(const char *data_dir, const char *id, struct queue_env *env);
/* Remove a finished message: the envelope first, then the message. */
int queue_remove(const char *data_dir, const char *id);
/* Move ID.env and ID.msg into queue/corrupt/ (a file that cannot be read). */
void queue_move_corrupt(const char *data_dir, const char *id);
/* Path of a queue file: kind "msg" or "env". */
int queue_path(const char *data_dir, const char *id, const char *kind, char *out, size_t outlen);

/* At start: remove what tmp/ holds and messages without an envelope (no
 * 250 was given for either). */
void queue_cleanup(const char *data_dir);
/* Ids of every envelope in the queue, at most max; count or -1. */
int queue_scan(const char *data_dir, char (*ids)[QUEUE_ID_MAX + 1], size_t max);
/* True (and the marker removed) when `postern queue flush` asked for a run. */
bool queue_take_flush(const char *data_dir);

/* New random queue id (hex, SMTP_ID_LEN digits, as smtp_make_id()). */
void queue_make_id(char out[QUEUE_ID_MAX + 1]);

/* ---- smtp_route.c (worker) ---------------------------------------------- */

#define ROUTE_HOSTS_MAX 16 /* addresses tried per domain and attempt */

enum route_result {
	ROUTE_OK,        /* hosts[] in order */
	ROUTE_TEMPFAIL,  /* DNS failure: retry later */
	ROUTE_PERMFAIL,  /* no such domain, null MX: bounce */
};

/* A numeric address, or a shard's LMTP unix socket (smtp_shard.c). */
#define ROUTE_ADDR_MAX AUTH_SHARD_PATH_MAX

struct route_host {
	char name[SMTP_DOMAIN_MAX + 1]; /* MX name, for logs and TLS names */
	char addr[ROUTE_ADDR_MAX + 1];  /* numeric address; AF_UNIX: a path */
	int family;                     /* AF_INET, AF_INET6 or AF_UNIX */
	unsigned port;                  /* 0 for AF_UNIX */
};

struct route {
	enum route_result result;
	char reason[SMTP_REPLY_MAX];     /* for deferrals and bounces */
	struct route_host hosts[ROUTE_HOSTS_MAX];
	size_t n_hosts;
};

/* Route mail for domain through the relay host or its MX; blocking. */
void route_lookup(const struct config *cfg, const char *domain, struct route *r);

/* ---- smtp_shard.c: the relay to the shard that holds a mailbox ----------- */

/* With shard_name, every queued recipient in a local domain goes by LMTP
 * to the shard that holds its mailbox (another instance; DKIM is not
 * applied on this internal hop), never by MX or the relay host. */
bool smtp_shard_routed(const struct config *cfg, const char *addr);
/* The shard holding addr's mailbox; false (out cleared) when the shards
 * file names none. */
bool smtp_shard_find(struct smtp_ctx *ctx, const char *addr, struct auth_shard *out);
/* The route to that shard's LMTP (lmtp= in the shards file): one host, or
 * ROUTE_TEMPFAIL when the file names no shard or it has no lmtp=. */
void smtp_shard_route(const struct auth_shard *sh, struct route *r);

/* ---- smtp_client.c (loop) -------------------------------------------------- */

/* RFC 5321 §4.5.3.2 timeouts, seconds. */
#define CLIENT_TIMEOUT_CONNECT 30   /* not in the RFC; Postfix uses 30 s */
#define CLIENT_TIMEOUT_GREETING 300 /* §4.5.3.2.1 initial 220 */
#define CLIENT_TIMEOUT_MAIL 300     /* §4.5.3.2.2 */
#define CLIENT_TIMEOUT_RCPT 300     /* §4.5.3.2.3 */
#define CLIENT_TIMEOUT_DATA 120     /* §4.5.3.2.4 DATA initiation */
#define CLIENT_TIMEOUT_BLOCK 180    /* §4.5.3.2.5 data block (each write) */
#define CLIENT_TIMEOUT_DOT 600      /* §4.5.3.2.6 DATA termination */
#define CLIENT_TIMEOUT_OTHER 300    /* EHLO, STARTTLS, AUTH, QUIT */
#define CLIENT_REPLY_LINE_MAX 4096  /* longer reply lines end the session */
#define CLIENT_REPLY_LINES_MAX 200  /* lines of one multi-line reply */
/* Connection reuse (RFC 5321 §3.3: a new MAIL after a completed
 * transaction starts the next one, no RSET needed).  An idle connection
 * waits this long for the next message to its destination, then QUITs;
 * Postfix's smtp_connection_cache_time_limit is 2 s, a little more costs
 * the far side nothing (its own timeout is 5 minutes, §4.5.3.2.7). */
#define CLIENT_IDLE_S 5
/* Messages sent over one connection before it is closed, so that one
 * session does not live for ever (Postfix limits by time instead:
 * smtp_connection_reuse_time_limit, 300 s). */
#define CLIENT_MESSAGES_MAX 100
/* QUIT of an idle connection: its reply is awaited this long (RFC 5321
 * §4.1.1.10), nobody waits on it. */
#define CLIENT_TIMEOUT_QUIT_IDLE 30

struct smtp_client;

/* One delivery attempt to one host: the recipients of one domain. */
struct client_rcpt {
	const struct queue_rcpt *rcpt;  /* address, NOTIFY, ORCPT */
	int code;                       /* reply code; 0: no answer */
	char reply[SMTP_REPLY_MAX];
	bool final;                     /* LMTP: its reply after the message */
};

struct client_job {
	/* in */
	const struct config *cfg;
	const struct queue_env *env;
	struct route_host host;
	bool relay;                     /* relay_host: TLS required, AUTH */
	bool lmtp;                      /* RFC 2033 to another shard: LHLO, no
					 * STARTTLS, one reply per recipient */
	const char *password;           /* relay_password_file's content */
	bool no_starttls;               /* retry of a host whose TLS failed */
	const char *data;               /* message, dot-stuffed, ends CRLF.CRLF */
	size_t data_len;
	uint64_t size;                  /* message size for SIZE= */
	bool eightbit;                  /* data has 8-bit octets */
	const char *data7;              /* converted to 7 bit (RFC 6152 §3) for a
					 * server without 8BITMIME; NULL: cannot */
	size_t data7_len;
	struct client_rcpt *rcpts;
	size_t n_rcpts;
	bool keep;                      /* keep the connection after a 250 */
	/* out */
	bool connected;                 /* a session was held (else: next host) */
	bool dsn;                       /* the far side offered DSN */
	bool reused;                    /* ran on a kept connection */
	bool reuse_failed;              /* ...which failed before the message
					 * was sent: try again on a new one */
	struct smtp_client *kept;       /* idle connection now owned by the
					 * caller: smtp_client_reuse/park/cancel */
	bool next_host;                 /* try the next host for everything */
	bool tls_failed;                /* the STARTTLS handshake failed */
	char reply[SMTP_REPLY_MAX];     /* the session's failure, if any */
	char tls[QUEUE_TLS_MAX];        /* "TLSv1.3 CIPHER verified=yes|no
					 * (why) cn=NAME", or "" without TLS */
	struct smtp_client *client;     /* while running */
};

typedef void client_done_fn(struct client_job *job, void *arg);
/* Start the attempt; done() runs on the loop when it ended (every
 * recipient with code != 2xx is not delivered).  -1 when it cannot start
 * (then done() is not called). */
int smtp_client_start(struct event_base *base, SSL_CTX *tls, struct client_job *job,
		      client_done_fn *done, void *arg);
/* Stop a running attempt without calling done() (daemon shutdown), or
 * close a kept connection at once. */
void smtp_client_cancel(struct smtp_client *c);
/* A kept connection (job->kept) waits CLIENT_IDLE_S for reuse.  When the
 * time is up it sends QUIT and closed(gone false) runs: no longer usable,
 * but still open until the reply (smtp_client_cancel still works); when
 * the connection is freed (the far side closed it or said something, or
 * QUIT was answered) closed(gone true) runs: forget it.  -1 when it is
 * unusable already (the caller cancels it). */
typedef void client_closed_fn(void *arg, bool gone);
int smtp_client_park(struct smtp_client *c, client_closed_fn *closed, void *arg);
/* The next transaction on a kept connection (parked or just kept): as
 * smtp_client_start but without connect, greeting and EHLO. */
void smtp_client_reuse(struct smtp_client *c, struct client_job *job, client_done_fn *done,
		       void *arg);

/* ---- smtp_mime8.c (worker) ------------------------------------------------ */

/* The message converted to 7 bit for a server without 8BITMIME: 1 with
 * out filled, 0 when it is 7-bit already (out untouched), -1 when it
 * cannot be converted (it then bounces with 5.6.3). */
int mime8_downgrade(const char *msg, size_t len, struct buf *out);

/* ---- smtp_sign.c (worker): the DKIM hook ---------------------------------- */

/* Called once per delivery attempt, on a worker, with the whole message as
 * it will be sent (before dot-stuffing).  It appends the header fields to
 * prepend (a DKIM-Signature, CRLF-terminated) to out and returns 0; -1 is a
 * temporary failure (the delivery is deferred).  Appending nothing means
 * "no signature": that is what the stub in smtp_sign.c does until DKIM
 * signing is merged. */
int smtp_sign_message(const struct config *cfg, const char *sender,
		      const char *msg, size_t len, struct buf *out);

/* ---- smtp_bounce.c (worker) ------------------------------------------------ */

enum bounce_kind {
	BOUNCE_FAILED,  /* recipients in state FAILED whose NOTIFY allows it */
	BOUNCE_DELAYED, /* PENDING recipients that asked for NOTIFY=DELAY */
	BOUNCE_RELAYED, /* SENT recipients with NOTIFY=SUCCESS (success_due) */
	BOUNCE_DELIVERED, /* the same, for local mailboxes (smtp_deliver.c) */
};

/* RFC 3461 §4.3 RET=FULL returns the whole message, up to this size
 * (Postfix's bounce_size_limit is 50,000 bytes); a larger one, or RET=HDRS
 * or no RET, returns the header block only. */
#define BOUNCE_FULL_MAX 50000

/* The message a report is about: its header block, and the whole message
 * when RET=FULL asked for it (msg NULL otherwise). */
struct bounce_orig {
	const char *headers;
	size_t hdr_len;
	const char *msg;
	size_t msg_len;
};

/* Build an RFC 3464 report for the recipients of env that want one of this
 * kind into out; 0 or -1. */
int bounce_build(const struct config *cfg, const struct queue_env *env, enum bounce_kind kind,
		 const struct bounce_orig *orig, struct buf *out);
bool bounce_wanted(const struct queue_rcpt *r, enum bounce_kind kind);
/* Build and deliver the report of this kind: into the
 * local sender's INBOX (durable on return), or queued to a remote sender
 * (*queued_r: kick the scheduler).  0 done; 1 nobody can receive it
 * (logged by the caller, counts as done); -1 temporary, err set. */
int bounce_send(struct smtp_ctx *ctx, const struct queue_env *env, enum bounce_kind kind,
		const struct bounce_orig *orig, bool *queued_r, char *err, size_t errlen);

/* A message we make ourselves (a report, a Sieve redirect or vacation
 * reply, smtp_sieve.c): text, then (fd >= 0) the file fd from fd_offset. */
struct smtp_generated {
	const char *sender;   /* the envelope sender, "" the null one */
	const char *text;
	size_t text_len;
	int fd;
	off_t fd_offset;
	bool body_8bit;       /* queued with BODY=8BITMIME */
	const char *what;     /* for the log: "bounce", "redirect" ... */
};
/* Deliver it to one address: into the INBOX of the local mailboxes the
 * address resolves to when its domain is local (durable on return;
 * Return-Path: <sender> added; those another shard holds are queued to
 * it, smtp_shard.c), else queued (*queued_r: kick the
 * scheduler).  0 done; 1 a local domain without that mailbox; -1
 * temporary, err set. */
int smtp_send_generated(struct smtp_ctx *ctx, const struct smtp_generated *g, const char *to,
			bool *queued_r, char *err, size_t errlen);

/* An envelope for a report on this transaction (bounce_send) from its
 * sender, recipients still to add; NULL: out of memory (smtp_deliver.c). */
struct queue_env *smtp_report_env(const struct smtp_tx *tx);

/* ---- smtp_sieve.c: Sieve at local delivery (the rules at its top) -------- */

/* Run each live owner's script and make m->targets[0..*live) the store
 * targets it chose (dead owners after them), and tx->owners[].target /
 * .n_targets / .sieve_reject say which are whose; sets m->sieve_handled
 * and (not on LMTP) m->sieve_reject.  -1: out of memory (the message gets
 * a 451). */
int smtp_sieve_plan(struct smtp_session *s, struct smtp_msg *m, size_t *live);
/* After the commit: redirects, vacation replies, reject bounces (on LMTP
 * per owner, once its copies are stored). */
void smtp_sieve_after(struct smtp_session *s, struct smtp_msg *m);
/* The reason for the 550 when m->sieve_reject. */
const char *smtp_sieve_reject_reason(const struct smtp_sieve *sv);
/* A reject reason as the text of one reply line (controls and line ends
 * folded into spaces, "Rejected" when nothing is left). */
void smtp_sieve_reply_text(const char *reason, char *out, size_t outlen);
void smtp_sieve_free(struct smtp_sieve *sv);

/* The pieces of the plan, shared with `postern deliver` (smtp_sieve_cli.c):
 * a plan for transaction id (for the log) on ctx (store, cfg, auth). */
struct smtp_sieve *smtp_sieve_new(struct smtp_ctx *ctx, const char *id);
/* Run the active script of the owner of each of the live targets in
 * (INBOX targets, one per owner) on the message d holds, from sender ("":
 * the null one).  *out_r: the targets the scripts chose, with room for
 * extra more after them, *n_r of them; NULL when no owner has a script
 * (nothing to change).  0, or -1 out of memory. */
int smtp_sieve_choose(struct smtp_sieve *sv, struct md_delivery *d, const char *sender,
		      const struct md_target *in, size_t live, size_t extra,
		      struct md_target **out_r, size_t *n_r);
/* Owners in the plan; whether owner i's chosen targets all have MD_OK;
 * its redirects and vacation replies (*kick: something was queued). */
size_t smtp_sieve_owners(const struct smtp_sieve *sv);
/* Every owner's script rejects the message (the reason:
 * smtp_sieve_reject_reason). */
bool smtp_sieve_rejected_all(const struct smtp_sieve *sv);
bool smtp_sieve_owner_stored(const struct smtp_sieve *sv, size_t i,
			     const struct md_target *targets);
void smtp_sieve_send(struct smtp_sieve *sv, size_t i, bool *kick);

/* ---- smtp_outq.c (loop) ---------------------------------------------------- */

struct smtp_outq;
struct smtp_outq *smtp_outq_new(struct smtp_ctx *ctx);
void smtp_outq_free(struct smtp_outq *q);
/* A new message was queued: look at the queue soon. */
void smtp_outq_kick(struct smtp_outq *q);

#endif
