/* Sieve (RFC 5228): the mail filtering language run at local delivery, and
 * the checker ManageSieve (RFC 5804) runs on PUTSCRIPT and CHECKSCRIPT.
 *
 * Extensions: fileinto, reject and ereject (RFC 5429), envelope, copy (RFC
 * 3894), imap4flags (RFC 5232), vacation (RFC 5230), body (RFC 5173),
 * variables (RFC 5229), mailbox (RFC 5490: mailboxexists, :create); comparators i;octet and i;ascii-casemap; match
 * types :is :contains :matches.
 *
 * This library does no I/O: sieve_compile() turns a script into a tree,
 * sieve_run() evaluates it against one message for one recipient and
 * returns the actions (store in these folders with these flags, redirect,
 * reject, vacation); the caller (SMTP's local delivery) performs them.
 * Nothing here blocks; a script and a result belong to one thread at a
 * time, a compiled script may be run any number of times.
 *
 * Limits (named below) bound the memory and CPU one script takes: its
 * size, nesting, strings, actions, variables, and the work spent matching
 * (sieve_run fails with a runtime error past them, and the caller keeps
 * the message in INBOX).
 *
 * Typical use at delivery:
 *   s = sieve_compile(text, len, err, sizeof(err));  NULL: log err, INBOX
 *   sieve_run(s, &msg, &result);  -1: log result.error, INBOX
 *   for each result.actions[i]: keep / fileinto / redirect / reject /
 *   vacation (sieve_vacation_allowed() first; its reply: the caller).
 *   sieve_result_free(&result); sieve_script_free(s);
 */
#ifndef SIEVE_SIEVE_H
#define SIEVE_SIEVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIEVE_SCRIPT_MAX (1024 * 1024) /* octets of a script (ManageSieve
					* and delivery refuse larger ones) */
#define SIEVE_ERROR_MAX 256            /* octets of an error text */
#define SIEVE_ACTIONS_MAX 32           /* actions one run may take */
#define SIEVE_REDIRECTS_MAX 4          /* redirects one run may take */
#define SIEVE_VACATION_DAYS_DEFAULT 7  /* RFC 5230 §4.1 suggests 7 */
#define SIEVE_VACATION_DAYS_MIN 1      /* RFC 5230 §4.1: at least 1 day */
#define SIEVE_VACATION_DAYS_MAX 365

struct sieve_script;

/* Parse and check a script (RFC 5228 §8 grammar, §3.2 require, the
 * arguments of every command and test).  NULL, with "line N: what is
 * wrong" in err, when the script is not valid; a NUL in text is an
 * error. */
struct sieve_script *sieve_compile(const char *text, size_t len, char *err, size_t err_len);
void sieve_script_free(struct sieve_script *s);

/* The extensions supported, space-separated: ManageSieve's "SIEVE"
 * capability (RFC 5804 §1.7). */
const char *sieve_extensions(void);

/* The message as the script sees it. */
struct sieve_message {
	const char *header;       /* the header block, CRLF or LF lines (the
				   * blank line may be left out) */
	size_t header_len;
	const char *body;         /* the body after the blank line; NULL (and
				   * body_len 0) when not available: "body"
				   * tests then see an empty body */
	size_t body_len;
	uint64_t size;            /* RFC 5228 §5.9: the message's size */
	const char *envelope_from;/* the reverse-path, "" for the null sender */
	const char *envelope_to;  /* this recipient, "local@domain" */
	/* RFC 5490 mailboxexists: does the folder (UTF-8, as in the script)
	 * exist and take deliveries?  NULL: only INBOX exists */
	bool (*mailbox_exists)(void *ctx, const char *name);
	void *mailbox_ctx;
};

enum sieve_action_kind {
	SIEVE_ACTION_KEEP,        /* into INBOX (explicit or implicit keep) */
	SIEVE_ACTION_FILEINTO,    /* into the folder "mailbox" (UTF-8, '/'
				   * separated as given in the script) */
	SIEVE_ACTION_REDIRECT,    /* to the address "address" */
	SIEVE_ACTION_REJECT,      /* refuse with "text" (RFC 5429: reject may
				   * bounce, ereject prefers the SMTP reply) */
	SIEVE_ACTION_VACATION,    /* reply with "text" (RFC 5230) */
};

#define SIEVE_FLAGS_MAX 64 /* distinct flags in one imap4flags variable */

struct sieve_action {
	enum sieve_action_kind kind;
	int line;                 /* of the command (implicit keep: 0) */
	char *mailbox;            /* FILEINTO */
	char *address;            /* REDIRECT */
	char *text;               /* REJECT reason, VACATION reason */
	bool ereject;             /* REJECT came from "ereject" */
	bool create;              /* FILEINTO :create (RFC 5490 §3.2): make
				   * the folder when it is missing */
	/* KEEP, FILEINTO: the IMAP flags to set (RFC 5232 §3), e.g. "\\Seen"
	 * or "$label", each once */
	char **flags;
	size_t n_flags;
	/* VACATION (RFC 5230 §4) */
	unsigned days;            /* clamped to [DAYS_MIN, DAYS_MAX] */
	char *subject;            /* NULL: "Auto: " + the original's */
	char *from;               /* NULL: the recipient */
	char *handle;             /* NULL: derived from the arguments */
	char **addresses;         /* the user's other addresses */
	size_t n_addresses;
	bool mime;                /* text is a MIME entity (headers + body) */
};

struct sieve_result {
	struct sieve_action *actions; /* in the order the script took them;
				       * the implicit keep comes last */
	size_t n_actions;
	int error_line;               /* a runtime error: its line */
	char error[SIEVE_ERROR_MAX];  /* a runtime error: what */
};

/* Run the script.  0 with the actions in result, or -1 with result->error
 * (a limit passed, an invalid mailbox name ...): then take no action of
 * it but keep the message in INBOX (issue 14: a script error never loses
 * mail).  Free result with sieve_result_free() in both cases. */
int sieve_run(const struct sieve_script *s, const struct sieve_message *msg,
	      struct sieve_result *result);
void sieve_result_free(struct sieve_result *result);

/* RFC 5230 §4.5-§4.6 and §5: may a vacation reply go out for this message?
 * Not to the null sender, nor to mailing lists (List-Id and the other
 * List-* fields, Precedence: bulk, list or junk), nor to automatic mail
 * (Auto-Submitted other than "no"), nor unless one of the recipient's
 * addresses (envelope_to, then act->addresses) is in To, Cc, Bcc,
 * Resent-To, Resent-Cc or Resent-Bcc.  false with why (a static text). */
bool sieve_vacation_allowed(const struct sieve_message *msg, const struct sieve_action *act,
			    const char **why_r);

/* The value of the first header field "name" of msg, unfolded, in a
 * malloc'd string; NULL when absent or out of memory.  For building
 * replies (Subject, Message-ID, References). */
char *sieve_header_first(const struct sieve_message *msg, const char *name);

/* The handle to remember a vacation response under (RFC 5230 §4.2): the
 * :handle, else a hash of reason, subject, from and mime, as 16 hex digits
 * in out (at least 17 octets). */
void sieve_vacation_handle(const struct sieve_action *act, char *out, size_t outlen);

/* The vacation reply to msg as a whole message with CRLF lines (RFC 5230
 * §5): From (act->from, else the recipient), To the envelope sender,
 * Subject (act->subject, else "Auto: " and the original's), Date (date, an
 * RFC 5322 date), Message-ID (message_id, "<...>"), In-Reply-To and
 * References, Auto-Submitted: auto-replied, then the reason (as a MIME
 * entity with :mime, else text/plain UTF-8).  Malloc'd in *out_r; -1
 * when out of memory. */
int sieve_vacation_reply(const struct sieve_message *msg, const struct sieve_action *act,
			 const char *date, const char *message_id, char **out_r, size_t *len_r);

#endif
