/* Checks of mail arriving from the world on port 25, shared by the files of
 * protocols/smtp only (and their unit tests):
 *
 *   smtp_inbound.c  the per-message flow: the message is spooled to a
 *                   temporary file while the DKIM verifier reads it; at
 *                   the end of DATA (on a worker) SPF, DKIM and DMARC run,
 *                   the verdict becomes an Authentication-Results field,
 *                   and the message goes into the store below it
 *   smtp_authres.c  Authentication-Results (RFC 8601): building ours,
 *                   removing forged ones that claim our authserv-id
 *   smtp_spf.c      SPF check_host() (RFC 7208)
 *   smtp_dmarc.c    DMARC policy and alignment (RFC 7489), the Public
 *                   Suffix List for organisational domains
 *   smtp_dkim_verify.c, smtp_dns.c  (dkim.h, smtp_dns.h)
 *
 * Which mail is checked: port 25, not authenticated, from an address
 * outside trusted_networks.  Submission and trusted relays are ours.
 * The checks run on the DNS worker pool (WORKER_DNS, so a slow name server
 * never holds the IO pool's threads) with a deadline
 * (SMTP_INBOUND_DEADLINE_S), the delivery afterwards on the IO pool; DNS
 * failures give temperror and the message is delivered all the same,
 * never lost.
 */
#ifndef PROTOCOLS_SMTP_SMTP_INBOUND_H
#define PROTOCOLS_SMTP_SMTP_INBOUND_H

#include <stdbool.h>
#include <stddef.h>

#include "dkim.h"
#include "smtp_dns.h"
#include "store.h"
#include "util.h"

struct smtp_session;
struct smtp_msg;

/* DMARC p=quarantine delivers here (RFC 6154 \Junk, created if missing). */
#define SMTP_INBOUND_JUNK "Junk"

/* All DNS work of one message's checks ends within this many seconds. */
#define SMTP_INBOUND_DEADLINE_S 20

/* ---- SPF (smtp_spf.c) ------------------------------------------------------ */

#define SPF_LOOKUPS_MAX 10        /* RFC 7208 §4.6.4: DNS-querying terms */
#define SPF_VOID_MAX 2            /* RFC 7208 §4.6.4: void look-ups */
#define SPF_MX_NAMES_MAX 10       /* RFC 7208 §4.6.4: names of one mx */
#define SPF_PTR_NAMES_MAX 10      /* RFC 7208 §4.6.4: names of one ptr */
#define SPF_RECORD_MAX 4096       /* one joined TXT record */
#define SPF_EXPAND_MAX 1024       /* a macro-expanded domain-spec or exp */
#define SPF_DOMAIN_MAX 253        /* RFC 7208 §4.3 */

enum spf_result {
	SPF_RESULT_NONE,          /* RFC 7208 §2.6 */
	SPF_RESULT_NEUTRAL,
	SPF_RESULT_PASS,
	SPF_RESULT_FAIL,
	SPF_RESULT_SOFTFAIL,
	SPF_RESULT_TEMPERROR,
	SPF_RESULT_PERMERROR,
};

const char *spf_result_name(enum spf_result r);

struct spf_request {
	const char *ip;           /* the client, numeric IPv4 or IPv6 */
	const char *sender;       /* MAIL FROM, or postmaster@HELO (§2.4) */
	const char *helo;         /* the EHLO/HELO name */
	const char *receiver;     /* our host name (%{r}) */
};

/* check_host() (RFC 7208 §4) for domain.  exp (may be NULL) receives the
 * explanation of a fail (§6.2), "" when none. */
enum spf_result spf_check_host(struct smtp_dns *dns, const struct spf_request *req,
			       const char *domain, char *exp, size_t explen);

/* Macro expansion (§7) of spec for domain, exp: the exp= letters c r t
 * allowed.  0, or -1 (syntax, too long).  For the unit tests. */
int spf_expand(struct smtp_dns *dns, const struct spf_request *req, const char *domain,
	       const char *spec, bool exp, char *out, size_t outlen);

/* ---- DMARC (smtp_dmarc.c) ---------------------------------------------------- */

#define DMARC_PSL_PATH "/usr/share/publicsuffix/public_suffix_list.dat"
#define DMARC_PSL_FILE_MAX (16 * 1024 * 1024)

enum dmarc_result {
	DMARC_RESULT_NONE,        /* RFC 7489 §11.2 (RFC 8601 result names) */
	DMARC_RESULT_PASS,
	DMARC_RESULT_FAIL,
	DMARC_RESULT_TEMPERROR,
	DMARC_RESULT_PERMERROR,
};

enum dmarc_policy { DMARC_POLICY_NONE, DMARC_POLICY_QUARANTINE, DMARC_POLICY_REJECT };

const char *dmarc_result_name(enum dmarc_result r);
const char *dmarc_policy_name(enum dmarc_policy p);

/* The Public Suffix List, read once at start-up; read-only afterwards. */
struct dmarc_psl;
/* NULL when the file cannot be read (the caller logs it: then the
 * organisational domain is the last two labels). */
struct dmarc_psl *dmarc_psl_load(const char *path);
void dmarc_psl_free(struct dmarc_psl *psl);
/* The organisational domain of domain (RFC 7489 §3.2) into out. */
void dmarc_org_domain(const struct dmarc_psl *psl, const char *domain, char *out, size_t outlen);

struct dmarc_input {
	const char *from_domain;                 /* RFC5322.From domain */
	enum spf_result spf;
	const char *spf_domain;                  /* MAIL FROM (or HELO) domain */
	const struct dkim_sig_result *dkim;      /* verifier results */
	size_t n_dkim;
};

struct dmarc_outcome {
	enum dmarc_result result;
	enum dmarc_policy policy;                /* p= or sp= that applies */
	enum dmarc_policy disposition;           /* after pct= */
	char reason[128];
};

/* Look up the policy and evaluate (RFC 7489 §6.6).  rnd: a random number
 * for pct= sampling. */
void dmarc_check(struct smtp_dns *dns, const struct dmarc_psl *psl,
		 const struct dmarc_input *in, unsigned rnd, struct dmarc_outcome *out);

/* ---- Authentication-Results (smtp_authres.c) ---------------------------------- */

#define AUTHRES_FIELDS_MAX 1000   /* fields looked at while stripping */

/* Remove every Authentication-Results field of the header block
 * (hdr[0..*hlen), its last field's CRLF included) whose authserv-id is
 * authserv_id (RFC 8601 §5: forged claims of ours).  b holds the header
 * block at its start; the bytes after it move down.  Returns how many. */
size_t authres_strip(struct buf *b, size_t *hlen, const char *authserv_id);

struct authres_input {
	const char *authserv_id;
	const struct dkim_sig_result *dkim;
	size_t n_dkim;
	enum spf_result spf_mailfrom;            /* SPF_RESULT_NONE with no
						  * identity: not reported */
	const char *mailfrom;                    /* smtp.mailfrom, "" for <> */
	enum spf_result spf_helo;
	const char *helo;                        /* smtp.helo, "" not checked */
	const char *spf_exp;                     /* explanation of a fail */
	const struct dmarc_outcome *dmarc;       /* NULL: not evaluated */
	const char *from_domain;
};

/* The whole field, folded, with its CRLF, appended to out. */
int authres_build(const struct authres_input *in, struct buf *out);

/* ---- the flow (smtp_inbound.c) ---------------------------------------------- */

enum smtp_inbound_action {
	SMTP_INBOUND_ACCEPT,
	SMTP_INBOUND_QUARANTINE,  /* DMARC p=quarantine: the Junk folder */
	SMTP_INBOUND_REJECT,      /* DMARC p=reject: 550 5.7.1 */
};

struct smtp_inbound;

/* On the loop: is this session's mail checked, and its per-message state.
 * NULL from new: out of memory. */
bool smtp_inbound_wanted(const struct smtp_session *s);
struct smtp_inbound *smtp_inbound_new(struct smtp_session *s);
void smtp_inbound_free(struct smtp_inbound *in);
/* On a worker: the next bytes of the message (after the header block was
 * stripped); 0 or -1 (the temporary file failed: a temporary error). */
int smtp_inbound_write(struct smtp_inbound *in, const void *data, size_t len);
/* On a DNS worker at the end of the data: run the checks. */
enum smtp_inbound_action smtp_inbound_check(struct smtp_session *s, struct smtp_msg *m);
/* On a worker: open the store delivery and write Return-Path, our
 * Authentication-Results, the rest of the trace, then the message; for a
 * quarantined message, make sure every owner has SMTP_INBOUND_JUNK. */
enum md_result smtp_inbound_store(struct smtp_session *s, struct smtp_msg *m);
/* On a worker, for the remote recipients (alias forwards, users of other
 * shards): the queue file m->qw gets our Authentication-Results, the trace
 * without Return-Path, then the message, so the owner's instance sees
 * this one's verdict.  0, or -1 with m->store_result set. */
int smtp_inbound_queue(struct smtp_session *s, struct smtp_msg *m);
const char *smtp_inbound_error(const struct smtp_inbound *in);

#endif
