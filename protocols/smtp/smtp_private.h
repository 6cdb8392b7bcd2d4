/* Shared between the files of protocols/smtp only (and its unit test).
 *
 *   smtp_session.c  connection events, input loop, state machine, command
 *                   table, replies, pregreet, timeouts, graceful stop
 *   smtp_cmd.c      EHLO HELO MAIL RCPT RSET NOOP QUIT VRFY EXPN HELP
 *                   STARTTLS AUTH
 *   smtp_lmtp.c     LMTP (RFC 2033) as a mode of the same session: LHLO,
 *                   the trusted-peer greeting, the Received field and the
 *                   one reply per recipient after the message
 *   smtp_parse.c    command lines, paths, ESMTP parameters, line splitter
 *   smtp_data.c     DATA and BDAT: the incremental dot-unstuffer, the
 *                   message sink (size limit, header block), end replies
 *   smtp_header.c   header block scan, From: address list parser
 *   smtp_pregreet.c the pregreet test's memory of clients that passed
 *   smtp_deliver.c  Return-Path/Received/Message-ID/Date, worker jobs that
 *                   stream into the store (and the queue) and commit
 *   smtp_inbound.h  checks of mail from the world: SPF, DKIM, DMARC,
 *                   Authentication-Results (files listed there)
 *   smtp_queue.h    the outbound side: queue, routing, client, scheduler,
 *                   bounces, 8-bit conversion, DKIM hook (files listed there)
 *
 * Memory: a session owns everything it points to; the transaction (struct
 * smtp_tx) and its message are freed by smtp_tx_reset() after the reply
 * that ends them, or when the connection closes.  Worker jobs only touch
 * the message while the session is busy (input paused), so the loop thread
 * and a worker never use it at the same time.
 */
#ifndef PROTOCOLS_SMTP_SMTP_PRIVATE_H
#define PROTOCOLS_SMTP_SMTP_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "auth.h"
#include "config.h"
#include "conn.h"
#include "server.h"
#include "store.h"
#include "util.h"

struct dmarc_psl;
struct event;
struct smtp_dns_cache;
struct smtp_inbound;
struct smtp_outq;
struct queue_writer;

/* ---- limits ------------------------------------------------------------ */

/* RFC 5321 §4.5.3.1.4 allows 512 octets per command line; RFC 1869 §4.1.2
 * lets each extension's parameters add to it (SIZE, BODY, SMTPUTF8, RET,
 * ENVID, AUTH on MAIL; NOTIFY, ORCPT on RCPT easily pass 512), so we accept
 * up to 2048 like Postfix's line_length_limit. */
#define SMTP_LINE_MAX 2048
/* RFC 4954 §4: an AUTH command line (with its initial response) and each
 * SASL response line may be up to 12288 octets. */
#define SMTP_AUTH_LINE_MAX 12288
#define SMTP_RCPT_MAX 100            /* RFC 5321 §4.5.3.1.8 */
#define SMTP_OWNERS_MAX 1000         /* distinct local mailboxes per message */
#define SMTP_BAD_COMMANDS_MAX 10     /* 5xx replies in a row before 421 */
#define SMTP_AUTH_FAILURES_MAX 3     /* failed AUTH per session before 421 */
/* The pregreet test (Postfix postscreen style) is configured by
 * smtp_pregreet_delay / _ttl / _cache_size: on port 25 the greeting waits,
 * and a client that speaks first is a spambot (RFC 5321 §4.3.1: the client
 * waits for the greeting).  Submission ports greet at once. */
/* Header block kept in memory for inspection (From: ownership, Message-ID,
 * Date, Received count); LIBRARIES.md suggests 256 KB for header blocks. */
#define SMTP_HEADER_MAX (256 * 1024)
#define SMTP_HOPS_MAX 100            /* RFC 5321 §6.3: Received count, loop */
/* Message bytes collected before they are handed to a worker to write to
 * the store's spool file; the message is never whole in memory. */
#define SMTP_SPOOL_FLUSH (128 * 1024)
#define SMTP_PATH_MAX 256            /* RFC 5321 §4.5.3.1.3, with <> */
#define SMTP_LOCAL_MAX 64            /* RFC 5321 §4.5.3.1.1 */
#define SMTP_DOMAIN_MAX 255          /* RFC 5321 §4.5.3.1.2 */
#define SMTP_ENVID_MAX 100           /* RFC 3461 §4.4 */
#define SMTP_ORCPT_MAX 500           /* RFC 3461 §4.2 */
#define SMTP_REPLY_MAX 512           /* one reply line we build */
#define SMTP_FROM_MAX 16             /* mailboxes in one From: (RFC 5322 §3.6.2) */
#define SMTP_ID_LEN 16               /* hex digits of a message id */

/* ---- protocol context and session ---------------------------------------- */

struct smtp_ctx {
	struct server *srv;
	struct auth *auth;
	struct md_store *store;
	const struct config *cfg;
	struct smtp_pregreet *pregreet; /* clients that passed; NULL: test off */
	struct smtp_outq *outq;         /* outbound queue; NULL: outbound off */
	struct smtp_dns_cache *dns;     /* inbound checks' DNS answers */
	struct dmarc_psl *psl;          /* NULL: "last two labels" */
};

/* smtp_pregreet.c */
struct smtp_pregreet;
struct smtp_pregreet *smtp_pregreet_new(size_t max, unsigned ttl);
/* true when addr passed the test within the TTL (and marks it as seen). */
bool smtp_pregreet_passed(struct smtp_pregreet *pg, const char *addr, time_t now);
void smtp_pregreet_remember(struct smtp_pregreet *pg, const char *addr, time_t now);
size_t smtp_pregreet_count(const struct smtp_pregreet *pg);
void smtp_pregreet_free(struct smtp_pregreet *pg);

enum smtp_state {
	SMTP_STATE_PREGREET, /* port 25, greeting not sent yet */
	SMTP_STATE_INIT,     /* greeted; waiting for EHLO/HELO */
	SMTP_STATE_READY,    /* EHLO done, no transaction */
	SMTP_STATE_MAIL,     /* MAIL accepted */
	SMTP_STATE_RCPT,     /* at least one RCPT accepted */
	SMTP_STATE_DATA,     /* receiving DATA text */
	SMTP_STATE_BDAT,     /* receiving the bytes of one BDAT chunk */
	SMTP_STATE_CHUNKING, /* between BDAT chunks of one message */
	SMTP_STATE_AUTH,     /* SASL exchange: lines are responses */
	SMTP_STATE_TLS,      /* STARTTLS handshake running */
	SMTP_STATE_QUIT,     /* closing */
};

#define SMTP_BIT(state) (1u << (state))

/* MAIL parameters (RFC 1870, 6152, 6531, 3461, 4954). */
enum smtp_body { SMTP_BODY_NONE, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };
enum smtp_ret { SMTP_RET_NONE, SMTP_RET_FULL, SMTP_RET_HDRS };

struct smtp_mail_params {
	bool has_size;
	uint64_t size;
	enum smtp_body body;
	bool smtputf8;
	enum smtp_ret ret;
	char envid[SMTP_ENVID_MAX + 1]; /* xtext as received, "" when absent */
	bool has_auth;
	char auth[SMTP_PATH_MAX * 3 + 1]; /* AUTH= xtext, accepted and ignored */
};

/* RCPT parameters (RFC 3461 §4.1, §4.2). */
#define SMTP_NOTIFY_NEVER   0x1
#define SMTP_NOTIFY_SUCCESS 0x2
#define SMTP_NOTIFY_FAILURE 0x4
#define SMTP_NOTIFY_DELAY   0x8

struct smtp_rcpt_params {
	unsigned notify;                 /* 0: not given */
	char orcpt[SMTP_ORCPT_MAX + 1];  /* "addr-type;xtext", "" when absent */
};

/* An envelope address: <>, <Postmaster>, or local@domain. */
struct smtp_path {
	char addr[SMTP_PATH_MAX + 1]; /* quotes removed when the local part is a
				       * dot-string; domain lower-cased */
	size_t at;                    /* index of the '@' in addr */
	bool null;                    /* <> */
	bool postmaster;              /* <Postmaster> without a domain */
	bool utf8;                    /* non-ASCII octets */
	bool literal;                 /* the domain is an address literal */
};

struct smtp_rcpt {
	struct smtp_path path;
	struct smtp_rcpt_params params;
	bool remote;             /* another domain: goes through the queue */
};

/* One local mailbox a message goes to (aliases expanded, deduplicated). */
struct smtp_owner {
	char address[AUTH_ADDRESS_MAX + 1];
	uint64_t quota; /* 0: unlimited */
	uint64_t quota_messages; /* RFC 9208 MESSAGE; 0: unlimited */
	bool forward;   /* pending only: an alias target in another domain,
			 * added to the transaction as a remote recipient */
	size_t target;  /* its first slot in msg->targets once they are built */
	size_t n_targets; /* its slots from target on: 1, or what its Sieve
			   * script chose (0 for discard or reject) */
	const char *sieve_reject; /* its script rejects the message: the
				   * reason (lives with msg->sieve), or NULL */
};

/* LMTP: RCPT number rcpt (index in tx->rcpts) delivers to owner (index in
 * tx->owners); an alias gives several, a repeated RCPT shares its owner. */
struct smtp_link {
	uint16_t rcpt;
	uint16_t owner;
};

/* The DATA/BDAT dot-unstuffer and line-end checker (smtp_data.c). */
enum smtp_us_state {
	SMTP_US_BOL,    /* at the start of a line (after CRLF) */
	SMTP_US_MID,    /* inside a line */
	SMTP_US_CR,     /* a CR was seen, not yet written */
	SMTP_US_DOT,    /* a '.' at the start of a line, not written */
	SMTP_US_DOT_CR, /* ".", CR at the start of a line */
	SMTP_US_END,    /* CRLF.CRLF seen */
};

struct smtp_unstuff {
	enum smtp_us_state state;
	bool dots;      /* DATA: unstuff and find the end; BDAT: neither */
	bool normalise; /* bare CR or LF become CRLF (smtp_bare_lf = normalise) */
	bool bare;      /* a bare CR or LF was seen */
	bool nul;       /* a NUL octet was seen */
};

/* Why a message is refused; the first problem found wins. */
enum smtp_verdict {
	SMTP_VERDICT_OK,
	SMTP_VERDICT_TOO_BIG,
	SMTP_VERDICT_BARE_LF,
	SMTP_VERDICT_NUL,
	SMTP_VERDICT_HEADER_TOO_BIG,
	SMTP_VERDICT_HOPS,
	SMTP_VERDICT_NO_FROM,
	SMTP_VERDICT_BAD_FROM,
	SMTP_VERDICT_FROM_NOT_OWNED,
	SMTP_VERDICT_NO_RECIPIENTS,
	SMTP_VERDICT_STORE,       /* the store failed (reply from store_result) */
	SMTP_VERDICT_QUOTA,
	SMTP_VERDICT_MEMORY,
	SMTP_VERDICT_DMARC,       /* p=reject (detail: the From: domain) */
};

struct smtp_msg {
	struct smtp_unstuff us;
	struct buf spool;        /* bytes not yet handed to the store */
	size_t hdr_scan;         /* where the header-end search resumes */
	bool hdr_done;           /* the header block was inspected */
	struct buf prefix;       /* Return-Path, Received, added headers */
	uint64_t size;           /* octets of the message as received */
	enum smtp_verdict verdict;
	char verdict_detail[AUTH_ADDRESS_MAX + 1];
	/* worker side */
	struct md_delivery *d;
	bool prefix_written;
	enum md_result store_result;
	char store_error[256];
	struct md_target *targets;
	size_t n_targets;
	size_t n_delivered;      /* targets with MD_OK after commit */
	bool quota_exceeded;     /* found by the commit job's usage check */
	struct buf headers;      /* the header block as received, for bounces */
	struct queue_writer *qw; /* remote recipients: the queue file */
	bool queued;             /* the queue entry is durable */
	bool local_temp;         /* a local target failed temporarily: 451 */
	bool kick;               /* something was queued: wake the scheduler */
	struct smtp_inbound *inbound; /* port 25 checks (smtp_inbound.h); NULL:
				       * not checked */
	int action;              /* enum smtp_inbound_action */
	struct smtp_sieve *sieve;/* the Sieve plan (smtp_sieve.c), or NULL */
	bool sieve_handled;      /* a script took care of the message for an
				  * owner: no store target is no failure */
	bool sieve_reject;       /* the only owner's script rejects it: 550 */
};

struct smtp_tx {
	char id[SMTP_ID_LEN + 1];
	struct smtp_path from;
	struct smtp_mail_params mail;
	struct smtp_rcpt *rcpts;  /* SMTP_RCPT_MAX entries once allocated */
	size_t n_rcpts;
	size_t n_remote;          /* rcpts with remote set */
	struct smtp_owner *owners;
	size_t n_owners, owners_cap;
	struct smtp_link *links;  /* LMTP only (smtp_lmtp.c) */
	size_t n_links, links_cap;
	struct smtp_msg *msg;     /* during DATA/BDAT until the reply */
	/* RCPT waiting for its quota check on a worker */
	struct smtp_rcpt pending_rcpt;
	struct smtp_owner *pending_owners;
	size_t n_pending;
	bool pending_over_quota;
};

struct smtp_session {
	struct smtp_ctx *ctx;
	struct conn *conn;
	enum listener_role role;
	enum smtp_state state;
	enum tls_mode tls_mode;   /* of the listener */

	bool reading_text;        /* conn is in raw mode (DATA/BDAT, pregreet) */
	bool busy;                /* waiting for a worker or timer: paused */
	struct event *timer;      /* pregreet and AUTH throttle delays */
	bool pregreet_waited;     /* greeted after the full delay: remember
				   * the client at its first EHLO/HELO */

	bool esmtp;               /* EHLO (not HELO) */
	char helo[SMTP_DOMAIN_MAX + 1];
	bool authenticated;
	char user[AUTH_ADDRESS_MAX + 1];
	struct sasl_exchange *sasl;  /* AUTH exchange; the verify job reads it */
	unsigned auth_failures;
	char auth_name[AUTH_ADDRESS_MAX + 1]; /* canonical name from the job */
	bool auth_ok;

	/* BDAT chunk being read; a refused chunk is read and dropped, then
	 * bdat_reply is sent (RFC 3030 §2: the client sends it anyway). */
	uint64_t bdat_size;
	uint64_t bdat_left;
	bool bdat_last;
	char bdat_reply[SMTP_REPLY_MAX];
	enum smtp_state bdat_return; /* state after a refused chunk */
	bool refused;             /* LMTP from an untrusted peer: 554 greeting,
				   * then 503 to all but QUIT (RFC 5321 §3.1) */

	unsigned bad_commands;
	unsigned long messages;
	struct smtp_tx tx;
};

/* ---- smtp_session.c ------------------------------------------------------ */

/* What a client must send first, for "503 Send ... first". */
static inline const char *smtp_hello_verb(const struct smtp_session *s)
{
	return s->role == ROLE_LMTP ? "LHLO" : "EHLO or HELO";
}

/* RFC 2033 §4.2: DATA without an accepted recipient is 503 in LMTP, 554
 * in SMTP (RFC 5321 §3.3). */
static inline const char *smtp_no_rcpt_code(const struct smtp_session *s)
{
	return s->role == ROLE_LMTP ? "503" : "554";
}

/* The roles where a client must log in: RFC 6409 submission (587, 465). */
static inline bool smtp_is_submission(const struct smtp_session *s)
{
	return s->role == ROLE_SUBMISSION || s->role == ROLE_SUBMISSIONS;
}

void smtp_enter_state(struct smtp_session *s, enum smtp_state state);
/* One reply line: "CODE TEXT"; a 5xx counts towards SMTP_BAD_COMMANDS_MAX,
 * a 2xx or 3xx resets the count. */
void smtp_reply(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A reply line that does not count towards SMTP_BAD_COMMANDS_MAX: one of
 * the several that answer a single command (LMTP after DATA). */
void smtp_reply_line(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The reply that ends a message (after DATA or BDAT LAST): once in SMTP,
 * once per accepted recipient in LMTP (RFC 2033 §4.2). */
void smtp_end_reply(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The client must reply with 421 and be closed. */
void smtp_close(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Input stops until smtp_unbusy(); used around worker jobs and timers. */
void smtp_busy(struct smtp_session *s);
void smtp_unbusy(struct smtp_session *s);
/* Set conn's reading mode for the state: raw for message text, else lines. */
void smtp_input_mode(struct smtp_session *s);
/* Run work on a worker, then done on the loop, with the session busy.
 * -1 when the job cannot be queued (not busy then; the caller replies). */
int smtp_submit(struct smtp_session *s, worker_work_fn *work, worker_done_fn *done);
/* The same on the pool of that kind (WORKER_AUTH: password checks). */
int smtp_submit_kind(struct smtp_session *s, enum worker_kind kind, worker_work_fn *work,
		     worker_done_fn *done);
/* Arm the session timer (AUTH throttle delay); 0 or -1. */
int smtp_timer_start(struct smtp_session *s, unsigned ms);
void smtp_tx_reset(struct smtp_session *s);
/* Random lower-case hex id of SMTP_ID_LEN digits. */
void smtp_make_id(char out[SMTP_ID_LEN + 1]);
bool smtp_auth_allowed(const struct smtp_session *s);
bool smtp_starttls_allowed(const struct smtp_session *s);

/* ---- smtp_shard.c ---------------------------------------------------------- */

/* True when shard_name is set and the shards file puts address's mailbox
 * on another shard: mail for it is relayed there (smtp_queue.h). */
bool smtp_shard_elsewhere(struct smtp_ctx *ctx, const char *address);
/* At start: log what a self-hoster got wrong (shard_name not in the file,
 * no lmtp= for this shard, so the others cannot reach it). */
void smtp_shard_check(struct smtp_ctx *ctx);

/* ---- smtp_cmd.c ---------------------------------------------------------- */

enum smtp_verb {
	SMTP_VERB_UNKNOWN,
	SMTP_VERB_EHLO, SMTP_VERB_HELO, SMTP_VERB_MAIL, SMTP_VERB_RCPT,
	SMTP_VERB_DATA, SMTP_VERB_BDAT, SMTP_VERB_RSET, SMTP_VERB_NOOP,
	SMTP_VERB_QUIT, SMTP_VERB_VRFY, SMTP_VERB_EXPN, SMTP_VERB_HELP,
	SMTP_VERB_STARTTLS, SMTP_VERB_AUTH, SMTP_VERB_LHLO,
	SMTP_VERB_COUNT
};

/* Handle one complete command line (without CRLF, NUL-terminated). */
void smtp_command(struct smtp_session *s, const char *line, size_t len);
/* RCPT whose owners were found (and quota-checked): add it, reply 250. */
void smtp_rcpt_accept(struct smtp_session *s);
/* EHLO, HELO and LHLO: the greeting exchange and the capabilities. */
void smtp_hello(struct smtp_session *s, const char *args, bool esmtp);

/* ---- smtp_lmtp.c --------------------------------------------------------- */

void smtp_cmd_lhlo(struct smtp_session *s, const char *args);
/* The 220 greeting, or 554 for a TCP peer outside trusted_networks. */
void smtp_lmtp_greet(struct smtp_session *s);
/* Room for n more links; 0, or -1 out of memory. */
int smtp_lmtp_reserve(struct smtp_tx *tx, size_t n);
/* Remember that RCPT rcpt goes to owner (room reserved before). */
void smtp_lmtp_link(struct smtp_tx *tx, size_t rcpt, size_t owner);
/* RCPTs that got 250 (the remote entries of alias forwards are not). */
size_t smtp_lmtp_accepted(const struct smtp_session *s);
/* Return-Path and a Received field in Dovecot's LMTP layout. */
int smtp_lmtp_trace(struct smtp_session *s, struct smtp_msg *msg);
/* After the commit: one reply per accepted RCPT, in RCPT order, from the
 * results of its mailboxes. */
void smtp_lmtp_replies(struct smtp_session *s, const struct smtp_msg *msg);
/* Does a reply refuse the message for owner (an address of tx->owners):
 * some RCPT it belongs to has only owners whose Sieve script rejects? */
bool smtp_lmtp_refused(const struct smtp_tx *tx, const char *owner);

/* ---- smtp_auth.c --------------------------------------------------------- */

void smtp_cmd_auth(struct smtp_session *s, const char *args);
/* One SASL response line in SMTP_STATE_AUTH (NUL-terminated). */
void smtp_auth_response(struct smtp_session *s, const char *line, size_t len);
/* Cancel an exchange (over-long line, NUL, connection closing). */
void smtp_auth_abort(struct smtp_session *s);
/* The session timer fired while an AUTH verify was delayed (throttle). */
void smtp_auth_timer(struct smtp_session *s);

/* ---- smtp_parse.c -------------------------------------------------------- */

struct smtp_command {
	enum smtp_verb verb;
	const char *args; /* after the verb and one space; "" when none */
	size_t args_len;
};

/* Split a command line into verb and arguments.  The verb is matched
 * without case.  Returns 0 (unknown verbs give SMTP_VERB_UNKNOWN). */
int smtp_parse_command(const char *line, size_t len, struct smtp_command *cmd_r);

/* "FROM:" / "TO:" keyword, optional spaces (tolerated, as by Postfix), then
 * the path.  *rest_r points after '>'.  Non-ASCII is parsed (path_r->utf8)
 * and the caller checks it against SMTPUTF8.  On error -1 with reply set
 * to a full reply line (no CRLF). */
int smtp_parse_mail_from(const char *args, struct smtp_path *path_r,
			 const char **rest_r, char *reply, size_t replylen);
int smtp_parse_rcpt_to(const char *args, struct smtp_path *path_r,
		       const char **rest_r, char *reply, size_t replylen);
/* A path "<...>" at s (RFC 5321 §4.1.2, RFC 6531 §3.3): source routes
 * skipped, quoted local parts, address literals; *end_r after '>'.
 * allow_null for the reverse-path; "<Postmaster>" is accepted only when
 * allow_postmaster.  0 or -1 (syntax). */
int smtp_parse_path(const char *s, bool allow_null, bool allow_postmaster, bool utf8_ok,
		    struct smtp_path *path_r, const char **end_r);

#define SMTP_EXT_AUTH 0x1 /* AUTH= allowed on MAIL (offered on this port) */

/* Parameters after the path.  0, or -1 with reply set. */
int smtp_parse_mail_params(const char *s, unsigned ext, uint64_t size_max,
			   struct smtp_mail_params *p, char *reply, size_t replylen);
int smtp_parse_rcpt_params(const char *s, bool utf8_ok, struct smtp_rcpt_params *p,
			   char *reply, size_t replylen);

/* RFC 3461 §4: xtext (hexchar "+XX" or printable ASCII but '+' and '='). */
bool smtp_xtext_valid(const char *s, size_t len);
/* A domain (RFC 5321 §4.1.2 Domain, with U-labels when utf8_ok) or an
 * address literal ("[192.0.2.1]", "[IPv6:...]", "[tag:text]"). */
bool smtp_domain_valid(const char *s, size_t len, bool utf8_ok);
bool smtp_address_literal_valid(const char *s, size_t len);
/* Well-formed UTF-8 (RFC 3629), no overlongs or surrogates. */
bool smtp_utf8_valid(const char *s, size_t len);
/* The EHLO/HELO argument: a domain or address literal; like Postfix we also
 * take '_' in labels (Windows host names). */
bool smtp_helo_valid(const char *s, size_t len);

/* ---- smtp_data.c --------------------------------------------------------- */

void smtp_unstuff_init(struct smtp_unstuff *u, bool dots, bool normalise);
/* Feed input; writes at most 2 * len + 2 octets to out.  Returns 1 when the
 * terminating CRLF.CRLF was consumed (*consumed_r counts it; the octets
 * after it are not consumed), else 0 with everything consumed. */
int smtp_unstuff_feed(struct smtp_unstuff *u, const char *in, size_t len,
		      char *out, size_t *out_len_r, size_t *consumed_r);
/* BDAT LAST: a CR still held at the end is a bare CR; writes at most 2. */
void smtp_unstuff_finish(struct smtp_unstuff *u, char *out, size_t *out_len_r);

void smtp_cmd_data(struct smtp_session *s, const char *args);
void smtp_cmd_bdat(struct smtp_session *s, const char *args);
/* SMTP_STATE_DATA / SMTP_STATE_BDAT: consume input; returns octets used. */
size_t smtp_data_input(struct smtp_session *s, const char *data, size_t len);
/* Free a message; an open store delivery is discarded on a worker. */
void smtp_msg_free(struct smtp_session *s, struct smtp_msg *msg);
/* Checked inbound mail (msg->inbound): remove the Authentication-Results
 * fields that claim our authserv-id (RFC 8601 §5: forged) from the header
 * block at the start of msg->spool, *hlen octets long. */
void smtp_strip_authres(struct smtp_session *s, struct smtp_msg *msg, size_t *hlen);
/* The reply line for a refused message (msg->verdict != OK). */
void smtp_verdict_text(const struct smtp_session *s, const struct smtp_msg *msg,
		       char *out, size_t outlen);
/* The code ("552 5.2.2") and text ("Mailbox full") for a store result that
 * is not MD_OK; perm_quota: quota_error = permanent. */
void smtp_store_result_reply(enum md_result r, bool perm_quota, const char **code_r,
			     const char **text_r);

/* ---- smtp_header.c ------------------------------------------------------- */

struct smtp_header_info {
	unsigned received;
	unsigned from_fields;
	bool has_date;
	bool has_message_id;
	const char *from;   /* value of the (first) From: field, unfolded not */
	size_t from_len;
};

/* Scan a header block (CRLF lines, up to the empty line or the end). */
void smtp_header_scan(const char *hdr, size_t len, struct smtp_header_info *info);
/* The addr-specs of an RFC 5322 mailbox-list (display names, comments,
 * quoted strings, folding; no groups).  Local parts that are quoted but
 * need no quotes are unquoted.  Returns the count (<= max), or -1 when the
 * value does not parse or has more than max mailboxes. */
int smtp_parse_from(const char *value, size_t len,
		    char (*addrs)[SMTP_PATH_MAX + 1], size_t max);
/* Find the end of the header block in msg->spool (resumable).  Returns the
 * header block's length (through the CRLF of its last field), or -1 when
 * the empty line was not seen yet. */
long smtp_header_end(const char *data, size_t len, size_t *scan);

/* ---- smtp_deliver.c ------------------------------------------------------ */

/* RFC 5322 §3.3 date-time of t in local time. */
void smtp_rfc5322_date(time_t t, char *out, size_t outlen);
/* Return-Path and Received (RFC 5321 §4.4, RFC 3848) into msg->prefix. */
int smtp_build_trace(struct smtp_session *s, struct smtp_msg *msg);
/* The protocol keyword for Received "with": SMTP ESMTP ESMTPS ESMTPA
 * ESMTPSA, and the UTF8SMTP forms of RFC 6531 §3.7.3. */
const char *smtp_with_keyword(bool esmtp, bool tls, bool auth, bool utf8);
/* Inspect the finished header block: hop count; on submission the From:
 * owner check, Message-ID and Date added when missing (RFC 6409 §8). */
void smtp_inspect_header(struct smtp_session *s, struct smtp_msg *msg,
			 const char *hdr, size_t len);
/* Hand msg->spool to a worker that writes it to the store (busy). */
void smtp_flush(struct smtp_session *s);
/* End of message: commit to every owner on a worker, then reply; checked
 * inbound mail gets its checks on a DNS worker first (smtp_inbound.h). */
void smtp_finish(struct smtp_session *s);
/* RCPT to a user with a quota: check its usage on a worker, then reply. */
void smtp_check_quota(struct smtp_session *s);

#endif
