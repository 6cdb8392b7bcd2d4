/* `postern dns --check DOMAIN`: ask the live DNS for the records `postern
 * dns DOMAIN` prints and say, in words, what is missing or wrong.  One
 * line per check, "ok", "warn" or "FAIL", then a summary; exit 0 when
 * nothing failed, 1 when something did (a record that could not be looked
 * up counts as failed: the check could not be made).
 *
 * Checked: MX (one of them names this server's hostname), the hostname's
 * addresses and their PTR records (RFC 5321 §4.1.4: many receivers want
 * the reverse name to match), SPF (exactly one v=spf1 record, RFC 7208
 * §4.5; not "+all"), each DKIM key's TXT record holds our public key,
 * DMARC (exactly one, with a policy), the RFC 6186 SRV records against
 * the listeners, and with a listener of role http the autoconfig and
 * MTA-STS names (RFC 8461 §3.1: the id must be the current policy's).
 * The look-ups go through smtp_dns (cfg's dns_resolver when set).
 */
#include "dkim.h"
#include "smtp_dkim_private.h"
#include "smtp_dns.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"

#define DNS_CHECK_SECONDS 60   /* every look-up of one run */
#define DNS_CHECK_NAME_MAX (DKIM_DOMAIN_MAX + 96)

struct dns_check {
	struct smtp_dns dns;
	const struct config *cfg;
	const char *domain;
	unsigned failed, warned;
};

static void dns_check_say(struct dns_check *c, const char *level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void dns_check_say(struct dns_check *c, const char *level, const char *fmt, ...)
{
	va_list ap;

	if (strcmp(level, "FAIL") == 0)
		c->failed++;
	else if (strcmp(level, "warn") == 0)
		c->warned++;
	printf("%-4s  ", level);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* Host names compare without case and without a final dot. */
static bool dns_check_same_host(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

/* Look up; a failure is reported here and gives false. */
static bool dns_check_query(struct dns_check *c, const char *what, const char *name,
			    enum smtp_dns_type type, struct smtp_dns_answer *a)
{
	smtp_dns_query(&c->dns, name, type, a);
	if (a->status != SMTP_DNS_FAIL)
		return true;
	smtp_dns_answer_free(a);
	dns_check_say(c, "FAIL", "%s: %s could not be looked up (no answer from the DNS)", what,
		      name);
	return false;
}

/* The records of a that begin with prefix (case-insensitive), counted;
 * the first in *first_r. */
static size_t dns_check_txt_with(const struct smtp_dns_answer *a, const char *prefix,
				 const char **first_r)
{
	size_t n = 0, lp = strlen(prefix);

	*first_r = NULL;
	for (size_t i = 0; i < a->n; i++)
		if (strncasecmp(a->rr[i], prefix, lp) == 0 &&
		    (a->rr[i][lp] == '\0' || a->rr[i][lp] == ' ' || a->rr[i][lp] == ';')) {
			if (n++ == 0)
				*first_r = a->rr[i];
		}
	return n;
}

static void dns_check_mx(struct dns_check *c)
{
	struct smtp_dns_answer a;
	bool ours = false;

	if (!dns_check_query(c, "MX", c->domain, SMTP_DNS_MX, &a))
		return;
	for (size_t i = 0; i < a.n; i++)
		ours = ours || dns_check_same_host(a.rr[i], c->cfg->hostname);
	if (a.n == 0)
		dns_check_say(c, "FAIL", "MX: %s has no MX record; publish \"%s. IN MX 10 %s.\"",
			      c->domain, c->domain, c->cfg->hostname);
	else if (!ours)
		dns_check_say(c, "FAIL", "MX: %s's mail goes to %s%s, not to this server (%s)",
			      c->domain, a.rr[0], a.n > 1 ? " and others" : "", c->cfg->hostname);
	else
		dns_check_say(c, "ok", "MX: %s's mail comes to %s", c->domain, c->cfg->hostname);
	smtp_dns_answer_free(&a);
}

/* The in-addr.arpa / ip6.arpa name of a numeric address. */
static bool dns_check_reverse_name(const char *addr, char *out, size_t outlen)
{
	unsigned char b[16];
	size_t o = 0;

	if (inet_pton(AF_INET, addr, b) == 1)
		return (size_t)snprintf(out, outlen, "%u.%u.%u.%u.in-addr.arpa", b[3], b[2], b[1],
					b[0]) < outlen;
	if (inet_pton(AF_INET6, addr, b) != 1 || outlen < 64 + sizeof("ip6.arpa"))
		return false;
	for (int i = 15; i >= 0; i--) {
		out[o++] = "0123456789abcdef"[b[i] & 15];
		out[o++] = '.';
		out[o++] = "0123456789abcdef"[b[i] >> 4];
		out[o++] = '.';
	}
	memcpy(out + o, "ip6.arpa", sizeof("ip6.arpa"));
	return true;
}

static void dns_check_ptr(struct dns_check *c, const char *addr)
{
	struct smtp_dns_answer a;
	char rev[DNS_CHECK_NAME_MAX];
	bool match = false;

	if (!dns_check_reverse_name(addr, rev, sizeof(rev)) ||
	    !dns_check_query(c, "PTR", rev, SMTP_DNS_PTR, &a))
		return;
	for (size_t i = 0; i < a.n; i++)
		match = match || dns_check_same_host(a.rr[i], c->cfg->hostname);
	if (match)
		dns_check_say(c, "ok", "PTR: %s is %s", addr, c->cfg->hostname);
	else
		dns_check_say(c, "FAIL", "PTR: %s %s%s, not %s: many receivers refuse or "
			      "distrust mail from it; ask your hosting provider to set it",
			      addr, a.n > 0 ? "is named " : "has no reverse name",
			      a.n > 0 ? a.rr[0] : "", c->cfg->hostname);
	smtp_dns_answer_free(&a);
}

static void dns_check_host(struct dns_check *c)
{
	static const enum smtp_dns_type types[2] = { SMTP_DNS_A, SMTP_DNS_AAAA };
	size_t found = 0;

	for (int t = 0; t < 2; t++) {
		struct smtp_dns_answer a;

		if (!dns_check_query(c, "address", c->cfg->hostname, types[t], &a))
			continue;
		for (size_t i = 0; i < a.n; i++)
			dns_check_ptr(c, a.rr[i]);
		found += a.n;
		smtp_dns_answer_free(&a);
	}
	if (found == 0)
		dns_check_say(c, "FAIL", "address: %s (hostname) has no A or AAAA record",
			      c->cfg->hostname);
}

static void dns_check_spf(struct dns_check *c)
{
	struct smtp_dns_answer a;
	const char *spf;
	size_t n;

	if (!dns_check_query(c, "SPF", c->domain, SMTP_DNS_TXT, &a))
		return;
	n = dns_check_txt_with(&a, "v=spf1", &spf);
	if (n == 0)
		dns_check_say(c, "FAIL", "SPF: %s has no \"v=spf1\" TXT record; receivers cannot "
			      "tell forged mail from yours; publish \"v=spf1 mx -all\"", c->domain);
	else if (n > 1)
		dns_check_say(c, "FAIL", "SPF: %s has %zu \"v=spf1\" records; RFC 7208 makes that a "
			      "permanent error: merge them into one", c->domain, n);
	else if (strstr(spf, "+all") != NULL || (strstr(spf, " all") != NULL &&
						 strstr(spf, "-all") == NULL &&
						 strstr(spf, "~all") == NULL &&
						 strstr(spf, "?all") == NULL))
		dns_check_say(c, "FAIL", "SPF: \"%s\" allows every server in the world to send as %s",
			      spf, c->domain);
	else if (strstr(spf, "-all") == NULL && strstr(spf, "~all") == NULL)
		dns_check_say(c, "warn", "SPF: \"%s\" ends without -all or ~all: it says nothing "
			      "of other servers", spf);
	else
		dns_check_say(c, "ok", "SPF: \"%s\"", spf);
	smtp_dns_answer_free(&a);
}

/* The value of tag name in a "tag=value; ..." record, whitespace removed,
 * into out; false when absent. */
static bool dns_check_tag(const char *rec, const char *name, char *out, size_t outlen)
{
	size_t ln = strlen(name);

	for (const char *p = rec; *p != '\0';) {
		size_t o = 0;

		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		if (strncasecmp(p, name, ln) == 0) {
			const char *q = p + ln;

			while (*q == ' ' || *q == '\t')
				q++;
			if (*q == '=') {
				for (q++; *q != '\0' && *q != ';'; q++)
					if (*q != ' ' && *q != '\t' && o + 1 < outlen)
						out[o++] = *q;
				out[o] = '\0';
				return true;
			}
		}
		p = strchr(p, ';');
		if (p == NULL)
			break;
	}
	return false;
}

static void dns_check_dkim(struct dns_check *c, const struct dkim_keys *keys)
{
	if (dkim_keys_count(keys) == 0)
		dns_check_say(c, "FAIL", "DKIM: no key for %s: run `postern dkim generate %s`, then "
			      "publish what `postern dns %s` prints", c->domain, c->domain, c->domain);
	for (size_t i = 0; i < dkim_keys_count(keys); i++) {
		char name[DNS_CHECK_NAME_MAX], *ours = dkim_keys_public(keys, i), *theirs;
		const char *sel = dkim_keys_selector(keys, i), *rec;
		struct smtp_dns_answer a;

		snprintf(name, sizeof(name), "%s._domainkey.%s", sel, c->domain);
		if (ours == NULL || !dns_check_query(c, "DKIM", name, SMTP_DNS_TXT, &a)) {
			free(ours);
			continue;
		}
		theirs = malloc(SMTP_DNS_TEXT_MAX + 1);
		rec = a.n > 0 ? a.rr[0] : NULL;
		if (rec == NULL)
			dns_check_say(c, "FAIL", "DKIM: %s has no TXT record: receivers cannot verify "
				      "the signatures made with key %s", name, sel);
		else if (theirs == NULL || !dns_check_tag(rec, "p", theirs, SMTP_DNS_TEXT_MAX + 1))
			dns_check_say(c, "FAIL", "DKIM: %s has no p= key", name);
		else if (strcmp(theirs, ours) != 0)
			dns_check_say(c, "FAIL", "DKIM: %s publishes another key than this server's "
				      "%s key: signatures fail; publish the record `postern dns` prints",
				      name, sel);
		else
			dns_check_say(c, "ok", "DKIM: %s holds this server's key", name);
		free(theirs);
		free(ours);
		smtp_dns_answer_free(&a);
	}
}

static void dns_check_dmarc(struct dns_check *c)
{
	struct smtp_dns_answer a;
	char name[DNS_CHECK_NAME_MAX], p[32];
	const char *rec;
	size_t n;

	snprintf(name, sizeof(name), "_dmarc.%s", c->domain);
	if (!dns_check_query(c, "DMARC", name, SMTP_DNS_TXT, &a))
		return;
	n = dns_check_txt_with(&a, "v=DMARC1", &rec);
	if (n == 0)
		dns_check_say(c, "FAIL", "DMARC: %s has no \"v=DMARC1\" record: big receivers "
			      "(Gmail, Yahoo) want one from senders", name);
	else if (n > 1)
		dns_check_say(c, "FAIL", "DMARC: %s has %zu records; RFC 7489 §6.6.3 ignores them "
			      "all: keep one", name, n);
	else if (!dns_check_tag(rec, "p", p, sizeof(p)))
		dns_check_say(c, "FAIL", "DMARC: \"%s\" has no p= policy", rec);
	else if (strcasecmp(p, "none") == 0)
		dns_check_say(c, "warn", "DMARC: p=none: forged mail claiming %s is still delivered",
			      c->domain);
	else
		dns_check_say(c, "ok", "DMARC: p=%s", p);
	smtp_dns_answer_free(&a);
}

static void dns_check_srv(struct dns_check *c, const char *service, enum listener_role role)
{
	const struct config_listener *l = dkim_listener(c->cfg, role);
	struct smtp_dns_answer a;
	char name[DNS_CHECK_NAME_MAX], target[1025]; /* NS_MAXDNAME, the %1024s below */
	unsigned prio, weight, port;

	snprintf(name, sizeof(name), "_%s._tcp.%s", service, c->domain);
	if (!dns_check_query(c, "SRV", name, SMTP_DNS_SRV, &a))
		return;
	if (a.n == 0) {
		dns_check_say(c, l != NULL ? "warn" : "ok", "SRV: %s: none%s", name,
			      l != NULL ? "; clients that look it up (RFC 6186) will not find "
			      "this service" : "");
	} else if (sscanf(a.rr[0], "%u %u %u %1024s", &prio, &weight, &port, target) != 4) {
		dns_check_say(c, "FAIL", "SRV: %s: unreadable answer", name);
	} else if (l == NULL && strcmp(target, ".") != 0) {
		dns_check_say(c, "FAIL", "SRV: %s points to %s:%u, but this server has no %s "
			      "listener; publish \"0 0 0 .\"", name, target, port, service);
	} else if (l != NULL && (!dns_check_same_host(target, c->cfg->hostname) ||
				 port != l->port)) {
		dns_check_say(c, "FAIL", "SRV: %s points to %s:%u, but the %s listener is %s:%u",
			      name, target, port, service, c->cfg->hostname, (unsigned)l->port);
	} else {
		dns_check_say(c, "ok", "SRV: %s: %s", name, l != NULL ? a.rr[0] : "not offered");
	}
	smtp_dns_answer_free(&a);
}

/* A name that must reach the HTTP endpoint: it needs an address. */
static void dns_check_http_name(struct dns_check *c, const char *label, const char *why)
{
	struct smtp_dns_answer a;
	char name[DNS_CHECK_NAME_MAX];
	size_t n;

	snprintf(name, sizeof(name), "%s.%s", label, c->domain);
	if (!dns_check_query(c, why, name, SMTP_DNS_A, &a))
		return;
	n = a.n;
	smtp_dns_answer_free(&a);
	if (n == 0) {
		if (!dns_check_query(c, why, name, SMTP_DNS_AAAA, &a))
			return;
		n = a.n;
		smtp_dns_answer_free(&a);
	}
	if (n == 0)
		dns_check_say(c, "FAIL", "%s: %s has no address; publish \"%s. IN CNAME %s.\"",
			      why, name, name, config_http_client_hostname(c->cfg));
	else
		dns_check_say(c, "ok", "%s: %s has an address", why, name);
}

static void dns_check_mta_sts(struct dns_check *c)
{
	struct smtp_dns_answer a;
	char name[DNS_CHECK_NAME_MAX], id[21], theirs[40];
	const char *rec;

	if (c->cfg->mta_sts_mode == MTA_STS_NONE || config_mta_sts_id(c->cfg, id) < 0) {
		dns_check_say(c, "ok", "MTA-STS: not published (mta_sts_mode = none)");
		return;
	}
	dns_check_http_name(c, "mta-sts", "MTA-STS");
	snprintf(name, sizeof(name), "_mta-sts.%s", c->domain);
	if (!dns_check_query(c, "MTA-STS", name, SMTP_DNS_TXT, &a))
		return;
	if (dns_check_txt_with(&a, "v=STSv1", &rec) != 1)
		dns_check_say(c, "FAIL", "MTA-STS: %s needs one \"v=STSv1; id=%s\" record", name, id);
	else if (!dns_check_tag(rec, "id", theirs, sizeof(theirs)) || strcmp(theirs, id) != 0)
		dns_check_say(c, "FAIL", "MTA-STS: %s has id=%s, but the policy now served is "
			      "id=%s: senders keep the old policy until it changes", name,
			      dns_check_tag(rec, "id", theirs, sizeof(theirs)) ? theirs : "(none)", id);
	else
		dns_check_say(c, "ok", "MTA-STS: %s has the current id %s", name, id);
	smtp_dns_answer_free(&a);
}

int smtp_dns_check(const struct config *cfg, const char *domain, const struct dkim_keys *keys)
{
	struct smtp_dns_cache *cache = smtp_dns_cache_new(cfg);
	struct dns_check c = { .cfg = cfg, .domain = domain };

	if (cache == NULL) {
		fprintf(stderr, "postern: out of memory\n");
		return 71; /* EX_OSERR */
	}
	smtp_dns_real(&c.dns, cache, DNS_CHECK_SECONDS);
	printf("Checking the DNS records of %s for this server (%s):\n", domain, cfg->hostname);
	dns_check_mx(&c);
	dns_check_host(&c);
	dns_check_spf(&c);
	dns_check_dkim(&c, keys);
	dns_check_dmarc(&c);
	dns_check_srv(&c, "submissions", ROLE_SUBMISSIONS);
	dns_check_srv(&c, "submission", ROLE_SUBMISSION);
	dns_check_srv(&c, "imaps", ROLE_IMAPS);
	dns_check_srv(&c, "imap", ROLE_IMAP);
	dns_check_srv(&c, "pop3s", ROLE_POP3S);
	dns_check_srv(&c, "pop3", ROLE_POP3);
	if (dkim_listener(cfg, ROLE_HTTP) != NULL) {
		dns_check_http_name(&c, "autoconfig", "autoconfig");
		dns_check_mta_sts(&c);
	}
	printf("%u problem%s, %u warning%s\n", c.failed, c.failed == 1 ? "" : "s", c.warned,
	       c.warned == 1 ? "" : "s");
	smtp_dns_cache_free(cache);
	return c.failed > 0 ? 1 : 0;
}
