/* auth: users and aliases, password verification, SASL PLAIN/LOGIN,
 * failed-login throttling, and the `postern user` / `postern alias` CLI.
 *
 * Plain C, no libevent.  Every function here is thread-safe: protocols call
 * the blocking ones (auth_verify_password: one yescrypt verify, ~20 ms) on
 * worker threads and the cheap ones (throttle, SASL) on the loop thread.
 *
 * Addresses are compared case-insensitively in both parts, like Dovecot's
 * default auth_username_format %Lu: the canonical form of an address is its
 * ASCII lower case.  Only ASCII addresses are accepted (no SMTPUTF8 yet).
 *
 * Every lookup (auth_verify_password, auth_resolve_recipient,
 * auth_user_owns_address, auth_user_exists, auth_user_quota) first calls
 * auth_refresh(), so a change made with `postern user` takes effect in the
 * running daemon at once, with no signal.
 */
#ifndef AUTH_AUTH_H
#define AUTH_AUTH_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct config;

#define AUTH_ADDRESS_MAX 254    /* RFC 5321 §4.5.3.1.3: 256-octet path minus <> */
#define AUTH_LOCAL_PART_MAX 64  /* RFC 5321 §4.5.3.1.1 */
#define AUTH_DOMAIN_MAX 253     /* RFC 1035 §2.3.4, presentation form */
#define AUTH_PASSWORD_MAX 511   /* libxcrypt CRYPT_MAX_PASSPHRASE_SIZE - 1 */
#define AUTH_ALIAS_DEPTH_MAX 8  /* alias expansions on one path */
#define AUTH_RESOLVE_MAX 100    /* RFC 5321 §4.5.3.1.8: 100 recipients */
/* The largest message-count quota accepted (RFC 9208 MESSAGE sets no
 * bound; ours: the index counts a mailbox's messages in 32 bits). */
#define AUTH_QUOTA_MESSAGES_MAX 4294967295u

struct auth;

/* Load DATA_DIR/users and DATA_DIR/aliases (a missing file is empty).  NULL
 * with err "FILE:LINE: message" when a file is malformed or unreadable.
 * Keeps a copy of cfg->data_dir and cfg->domains. */
struct auth *auth_open(const struct config *cfg, char *err, size_t errlen);
/* The same for the daemon: a file that run_as_user may not open (a users
 * file kept root-only) is read by ps, the privileged helper (privsep.h),
 * which must outlive auth.  ps NULL: auth_open(). */
struct privsep;
struct auth *auth_open_privsep(const struct config *cfg, struct privsep *ps,
			       char *err, size_t errlen);
/* DATA_DIR/users and DATA_DIR/aliases, the files auth reads (the helper's
 * list).  0, or -1 when a path is too long. */
int auth_file_paths(const struct config *cfg, char users_r[PATH_MAX], char aliases_r[PATH_MAX]);
/* Only when no other thread uses auth any more. */
void auth_close(struct auth *auth);

/* stat() both files; reload them when their inode, size, mtime or ctime
 * changed.  0 when the data in use is current; -1 when a changed file does
 * not load: the previous good data stays in use and the error is logged
 * once per change.  Cheap: two stat() calls and a mutex per lookup. */
int auth_refresh(struct auth *auth);

/* 0 when password is right for user_address (any case), with the
 * canonical address copied to canonical_r; -1 otherwise.  Unknown users
 * cost the same time (verified against a dummy hash).  A password verified
 * less than auth_cache_ttl ago for the same stored hash is accepted
 * without a new verify (auth_cache.c); failures are never cached.
 * Blocking: call it on a worker thread. */
int auth_verify_password(struct auth *auth, const char *user_address,
			 const char *password, char *canonical_r,
			 size_t canonical_size);

enum auth_rcpt {
	AUTH_RCPT_LOCAL,            /* a local address; targets filled */
	AUTH_RCPT_UNKNOWN,          /* local domain, no such user or alias */
	AUTH_RCPT_NOT_LOCAL_DOMAIN, /* not one of our domains */
	AUTH_RCPT_ERROR,            /* aliases expand to more than max targets */
};

struct auth_target {
	char address[AUTH_ADDRESS_MAX + 1];
	bool local; /* a user of ours (canonical); false: an outside address */
};

/* Resolve a recipient through users and aliases (see auth.c for the rules:
 * exact user, alias, user+tag, postmaster default, catch-all).  targets_r
 * holds max entries (at most AUTH_RESOLVE_MAX are ever needed); duplicates
 * are removed.  An alias target outside the local domains is returned with
 * local = false: the caller decides whether to forward. */
enum auth_rcpt auth_resolve_recipient(struct auth *auth, const char *address,
				      struct auth_target *targets_r,
				      size_t max, size_t *n_r);

/* true when user may use address as its envelope sender (submission):
 * its own address, a user+tag form of it, or an address that resolves to
 * it (an alias, a list alias that includes it, a catch-all, the postmaster
 * default). */
bool auth_user_owns_address(struct auth *auth, const char *user,
			    const char *address);

bool auth_user_exists(struct auth *auth, const char *user);
/* 0 with the user's limits, each 0 = unlimited: *bytes_r octets (RFC
 * 9208 STORAGE), *messages_r messages (MESSAGE; may be NULL); -1 when
 * there is no such user. */
int auth_user_quota(struct auth *auth, const char *user, uint64_t *bytes_r,
		    uint64_t *messages_r);

/* --- Shards (auth_shards.c: the file's format) ---------------------------
 * With config shards_file, several instances share the mailboxes: the
 * file names each instance (a shard) and who lives on which. */
#define AUTH_SHARDS_MAX 64
#define AUTH_SHARD_ENTRIES_MAX 100000 /* user and domain lines */
#define AUTH_SHARD_NAME_MAX 31
#define AUTH_SHARD_PATH_MAX 107       /* sizeof(sun_path) - 1 on Linux */

struct auth_shard {
	char name[AUTH_SHARD_NAME_MAX + 1];
	char address[64];                 /* an IP literal */
	uint16_t imap_port, pop3_port, smtp_port; /* 0: not served there */
	uint16_t lmtp_port;               /* LMTP at address; 0: none */
	char lmtp_path[AUTH_SHARD_PATH_MAX + 1]; /* or a unix socket; "": none */
};

/* The shard holding address's mailbox (the address, else its domain, else
 * "*") copied into out; false without shards_file, or when the file names
 * none or cannot be read.  One stat() per call; a changed file is read
 * again (a few ms for a large one), like the users file. */
bool auth_shard_of(struct auth *auth, const char *address, struct auth_shard *out);
/* The shard line of that name; false when there is none (or no file). */
bool auth_shard_named(struct auth *auth, const char *name, struct auth_shard *out);

/* local@domain, ASCII, no spaces, control characters, quotes, colons or
 * brackets, at most AUTH_ADDRESS_MAX octets. */
bool auth_address_valid(const char *address);

/* --- Failed-login throttling ------------------------------------------
 * Per client address and per account, in one bounded table:
 *   - failures are counted in a window of AUTH_THROTTLE_WINDOW seconds
 *     that starts at the first failure;
 *   - after AUTH_THROTTLE_FREE failures each further attempt is delayed
 *     1 s, 2 s, 4 s ... up to AUTH_THROTTLE_DELAY_MAX_MS;
 *   - after AUTH_THROTTLE_REFUSE_AFTER failures attempts are refused for
 *     AUTH_THROTTLE_REFUSE_SECONDS (the protocol answers "failed" without
 *     verifying the password);
 *   - a success clears the account's count, and the address's count too
 *     when every failure from that address was for that same account (a
 *     user who mistyped).  An address that failed on several accounts
 *     keeps its count: otherwise an attacker holding one valid account
 *     could log in to it between guesses to wipe the counter;
 *   - the account's count does not apply, and does not grow, where the
 *     account logged in with its right password in the last
 *     AUTH_THROTTLE_KNOWN_SECONDS: the same IPv4 address, or the same
 *     IPv6 /64.  So an attack on an account slows down and then refuses
 *     new places, never the owner's own devices (the address's own count
 *     still applies there).  Up to AUTH_THROTTLE_ENTRIES_MAX such places
 *     are remembered, in memory: a restart forgets them.
 * Protocols: check before verifying; on DELAY wait delay_ms before
 * verifying (on a timer, not a sleep); on REFUSE fail at once; report every
 * failed attempt (refused ones included) with auth_throttle_failure. */
#define AUTH_THROTTLE_WINDOW 600          /* seconds */
#define AUTH_THROTTLE_FREE 5              /* failures before delays start */
#define AUTH_THROTTLE_DELAY_MAX_MS 16000
#define AUTH_THROTTLE_REFUSE_AFTER 20     /* failures */
#define AUTH_THROTTLE_REFUSE_SECONDS 900
#define AUTH_THROTTLE_ENTRIES_MAX 16384   /* oldest entry evicted beyond */
#define AUTH_THROTTLE_KNOWN_SECONDS (30 * 86400)

enum auth_throttle {
	AUTH_THROTTLE_ALLOW,
	AUTH_THROTTLE_DELAY,  /* *delay_ms_r set */
	AUTH_THROTTLE_REFUSE,
};

/* ip and user may be NULL (unknown yet). */
enum auth_throttle auth_throttle_check(struct auth *auth, const char *ip,
				       const char *user, time_t now,
				       unsigned *delay_ms_r);
/* Counts a failure and logs, at WARN, the one line fail2ban matches:
 *   auth failed: proto=imap rip=192.0.2.1 user=alice@example.org
 * (user=- when unknown; spaces and control bytes in user become '?'). */
void auth_throttle_failure(struct auth *auth, const char *proto,
			   const char *ip, const char *user, time_t now);
void auth_throttle_success(struct auth *auth, const char *ip, const char *user);
/* The same at a given time (tests). */
void auth_throttle_success_at(struct auth *auth, const char *ip, const char *user,
			      time_t now);

/* --- SASL server mechanisms PLAIN (RFC 4616) and LOGIN
 * (draft-murchison-sasl-login-00), shared by SMTP (RFC 4954), IMAP
 * (RFC 9051 §6.2.2) and POP3 (RFC 5034).
 *
 * The protocol passes the client's base64 text (without CRLF) and sends
 * back the base64 challenge it gets.  "=" stands for an empty response
 * (RFC 4954 §4, RFC 4959), as initial response and, leniently, as a
 * continuation line.  The protocol handles the "*" cancel itself
 * (sasl_is_cancel).  After SASL_DONE, authcid and password are available
 * for auth_verify_password; sasl_free() wipes the password. */
#define SASL_MECHANISMS "PLAIN LOGIN"
/* Decoded bytes of one client message.  RFC 4616 §2 requires accepting 255
 * octets per field; we accept up to this many for the whole message (long
 * generated passwords), and refuse more without decoding. */
#define AUTH_SASL_MAX 4096

enum sasl_result {
	SASL_CONTINUE, /* send *challenge_r (base64, may be "") and wait */
	SASL_DONE,     /* sasl_authcid() and sasl_password() are set */
	SASL_FAIL,     /* see sasl_error() */
};

enum sasl_error {
	SASL_ERR_NONE,
	SASL_ERR_MECH,    /* unknown mechanism: SMTP 504 5.5.4 */
	SASL_ERR_BASE64,  /* malformed base64: SMTP 501 5.5.2 */
	SASL_ERR_SYNTAX,  /* wrong NUL count, empty field, bad UTF-8 */
	SASL_ERR_AUTHZID, /* authzid other than authcid: no proxy login */
	SASL_ERR_TOO_LONG,/* more than AUTH_SASL_MAX decoded bytes */
	SASL_ERR_STATE,   /* step after done or failure */
};

struct sasl_exchange;

struct sasl_exchange *sasl_new(void);
/* Wipes the password and frees; NULL is fine. */
void sasl_free(struct sasl_exchange *x);

bool sasl_mech_supported(const char *mech); /* case-insensitive */
/* mech case-insensitive; initial_response NULL when the client sent none. */
enum sasl_result sasl_start(struct sasl_exchange *x, const char *mech,
			    const char *initial_response, size_t ir_len,
			    const char **challenge_r);
/* One client continuation line (base64, CRLF removed). */
enum sasl_result sasl_step(struct sasl_exchange *x, const char *line,
			   size_t len, const char **challenge_r);
/* The client's "*": cancel the exchange (RFC 4954 §4, RFC 9051 §6.2.2). */
bool sasl_is_cancel(const char *line, size_t len);

const char *sasl_authcid(const struct sasl_exchange *x);
const char *sasl_password(const struct sasl_exchange *x);
enum sasl_error sasl_error(const struct sasl_exchange *x);
const char *sasl_error_text(enum sasl_error error);

/* --- CLI pieces, called by core/main.c; argv[0] is the verb.  They return
 * sysexits(3) codes:  0, 64 usage, 65 bad address or data, 67 no such
 * user/alias, 73 already exists / cannot create, 74 I/O, 78 bad users or
 * aliases file or configuration.
 *   postern user add ADDRESS [--password-stdin] [--quota SIZE]
 *   postern user passwd ADDRESS [--password-stdin]
 *   postern user quota ADDRESS SIZE [MESSAGES]
 *                                           (SIZE: bytes, or 10K/5M/1G/2T;
 *                                            MESSAGES: a count, kept when
 *                                            not given; 0 = unlimited)
 *   postern user del ADDRESS
 *   postern user list
 *   postern alias add ALIAS TARGET...       (ALIAS: a@domain or @domain;
 *                                            adds to an existing alias)
 *   postern alias del ALIAS [TARGET...]
 *   postern alias list
 * They create DATA_DIR (0700) when missing.  Run as root, they create it
 * owned by run_as_user and write the files as the owner of DATA_DIR, so the
 * unprivileged daemon can read them.
 */
int auth_cli_user(const struct config *cfg, int argc, char **argv);
int auth_cli_alias(const struct config *cfg, int argc, char **argv);

/* For `postern demo`: create the user with that password (its domain must
 * be in cfg->domains).  0, or -1 with err set (errno EEXIST when the user
 * already exists). */
int auth_user_add_with_password(const struct config *cfg, const char *address,
				const char *password, char *err, size_t errlen);

#endif
