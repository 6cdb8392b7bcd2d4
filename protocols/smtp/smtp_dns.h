/* DNS look-ups for the inbound checks (SPF, DKIM keys, DMARC), shared by
 * protocols/smtp only.
 *
 * The checks ask through struct smtp_dns, so the real resolver (res_nquery
 * with a bounded TTL cache, smtp_dns.c) and a unit test's fake answer table
 * plug in the same way.  Every call blocks: it runs on a worker thread,
 * never on the event loop.  A look-up never waits past the deadline of the
 * check it belongs to (struct smtp_dns.deadline): then it fails with
 * SMTP_DNS_FAIL, which the checks report as temperror.
 *
 * Answers come back as text, one string per record: TXT records with their
 * character-strings joined (RFC 7208 §3.3, RFC 6376 §3.6.2.2), A and AAAA
 * as numeric addresses, MX and PTR as host names without the final dot.
 */
#ifndef PROTOCOLS_SMTP_SMTP_DNS_H
#define PROTOCOLS_SMTP_SMTP_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct config;

#define SMTP_DNS_RR_MAX 64             /* records kept from one answer */
#define SMTP_DNS_TEXT_MAX 4096         /* one joined TXT record we keep */
#define SMTP_DNS_CACHE_SLOTS 1024      /* cached answers (name, type) */
#define SMTP_DNS_TTL_MAX 3600          /* cache an answer at most an hour */
#define SMTP_DNS_NEG_TTL 300           /* NXDOMAIN / no data (RFC 2308 §5) */
#define SMTP_DNS_TIMEOUT_S 2           /* per try (resolv.conf(5)) */
#define SMTP_DNS_TRIES 2

enum smtp_dns_type {
	SMTP_DNS_A,
	SMTP_DNS_AAAA,
	SMTP_DNS_MX,
	SMTP_DNS_TXT,
	SMTP_DNS_PTR,
	SMTP_DNS_SRV,  /* "priority weight port target" (`postern dns --check`) */
};

enum smtp_dns_status {
	SMTP_DNS_OK,        /* n >= 0 records (n may be 0: data of other types) */
	SMTP_DNS_NODATA,    /* the name exists, no record of this type */
	SMTP_DNS_NXDOMAIN,  /* the name does not exist */
	SMTP_DNS_FAIL,      /* server failure, timeout, malformed answer */
};

struct smtp_dns_answer {
	enum smtp_dns_status status;
	size_t n;
	char *rr[SMTP_DNS_RR_MAX];  /* malloc'ed, NUL-terminated */
};

struct smtp_dns;
typedef enum smtp_dns_status smtp_dns_lookup_fn(struct smtp_dns *dns, const char *name,
						enum smtp_dns_type type,
						struct smtp_dns_answer *a);

struct smtp_dns {
	smtp_dns_lookup_fn *lookup;
	void *ctx;
	time_t deadline;   /* 0: none; else look-ups after it fail */
	unsigned queries;  /* look-ups made through smtp_dns_query */
};

/* One look-up through dns (answer a is cleared first; free it with
 * smtp_dns_answer_free).  Returns a->status. */
enum smtp_dns_status smtp_dns_query(struct smtp_dns *dns, const char *name,
				    enum smtp_dns_type type, struct smtp_dns_answer *a);
void smtp_dns_answer_free(struct smtp_dns_answer *a);
/* Keep string s (copied) as the next record of a; 0 or -1 (full, memory). */
int smtp_dns_answer_add(struct smtp_dns_answer *a, const char *s);

/* A resolver state for one thread's queries: the system's servers, or
 * cfg's dns_resolver (ADDRESS:PORT, for tests), with timeout_s per try and
 * tries tries.  0, or -1 (then nothing to close).  res_nclose() it. */
struct __res_state;
int smtp_dns_res_init(const struct config *cfg, struct __res_state *st, int timeout_s, int tries);

/* The real resolver: res_nquery against the system's servers, or the
 * configuration's dns_resolver, with a cache shared by every thread. */
struct smtp_dns_cache;
struct smtp_dns_cache *smtp_dns_cache_new(const struct config *cfg);
void smtp_dns_cache_free(struct smtp_dns_cache *c);
/* A struct smtp_dns over the cache, with the deadline now + seconds. */
void smtp_dns_real(struct smtp_dns *dns, struct smtp_dns_cache *c, unsigned seconds);

/* `postern dns --check DOMAIN` (smtp_dns_check.c): the live records
 * against what `postern dns` prints, in words on stdout; 0 when none is
 * wrong, 1 when one is (or could not be looked up). */
struct dkim_keys;
int smtp_dns_check(const struct config *cfg, const char *domain, const struct dkim_keys *keys);

#endif
