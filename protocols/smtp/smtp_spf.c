/* SPF (RFC 7208): check_host() over struct smtp_dns.
 *
 * A record is checked for syntax as a whole before anything in it is
 * evaluated (§4.6: any syntax error is permerror).  Then mechanisms left
 * to right (§4.6.2), redirect= when none matched (§6.1), exp= for the
 * explanation of a fail (§6.2).  Terms that query DNS (include, a, mx,
 * ptr, exists, redirect) count towards SPF_LOOKUPS_MAX across the whole
 * evaluation, includes and redirects too; answers that are empty or
 * NXDOMAIN count towards SPF_VOID_MAX (§4.6.4).  Macros are §7, with the
 * exp-only letters c, r, t.  ptr (and %{p}) are evaluated although §5.5
 * discourages publishing them.
 */
#include "smtp_inbound.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SPF_TERMS_MAX 128          /* terms in one record */

struct spf_ip {
	int family;                /* AF_INET or AF_INET6 */
	unsigned char a[16];
};

struct spf_eval {
	struct smtp_dns *dns;
	const struct spf_request *req;
	struct spf_ip ip;
	unsigned lookups;
	unsigned voids;
};

const char *spf_result_name(enum spf_result r)
{
	static const char *const names[] = {
		[SPF_RESULT_NONE] = "none", [SPF_RESULT_NEUTRAL] = "neutral",
		[SPF_RESULT_PASS] = "pass", [SPF_RESULT_FAIL] = "fail",
		[SPF_RESULT_SOFTFAIL] = "softfail", [SPF_RESULT_TEMPERROR] = "temperror",
		[SPF_RESULT_PERMERROR] = "permerror",
	};
	return names[r];
}

static int spf_ip_parse(const char *s, struct spf_ip *ip)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	memset(ip, 0, sizeof(*ip));
	if (inet_pton(AF_INET, s, ip->a) == 1) {
		ip->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, ip->a) != 1)
		return -1;
	ip->family = AF_INET6;
	if (memcmp(ip->a, mapped, 12) == 0) {
		/* an IPv4-mapped client is the IPv4 client (RFC 7208 §5) */
		memmove(ip->a, ip->a + 12, 4);
		memset(ip->a + 4, 0, 12);
		ip->family = AF_INET;
	}
	return 0;
}

static bool spf_ip_match(const struct spf_ip *a, const struct spf_ip *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;

	if (a->family != b->family)
		return false;
	if (memcmp(a->a, b->a, full) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a->a[full] & mask) == (b->a[full] & mask);
}

/* ---- macros (§7) ------------------------------------------------------------ */

static int spf_append(char *out, size_t outlen, size_t *o, const char *s, size_t n)
{
	if (*o + n >= outlen)
		return -1;
	memcpy(out + *o, s, n);
	*o += n;
	out[*o] = '\0';
	return 0;
}

/* §7.3: i as dotted IPv4 or 32 dot-separated IPv6 nibbles. */
static void spf_ip_dotted(const struct spf_ip *ip, char *out, size_t outlen)
{
	size_t o = 0;

	if (ip->family == AF_INET) {
		snprintf(out, outlen, "%u.%u.%u.%u", ip->a[0], ip->a[1], ip->a[2], ip->a[3]);
		return;
	}
	for (size_t i = 0; i < 16 && o + 4 < outlen; i++)
		o += (size_t)snprintf(out + o, outlen - o, "%s%x.%x", i > 0 ? "." : "",
				      ip->a[i] >> 4, ip->a[i] & 0xf);
}

static void spf_validated_name(struct spf_eval *ev, const char *target, char *out, size_t outlen);

/* The value of macro letter c, before transformers; -1 for a bad letter. */
static int spf_macro_value(struct spf_eval *ev, const char *domain, char c, bool exp,
			   char *v, size_t vlen)
{
	const char *sender = ev->req->sender, *at = strrchr(sender, '@');

	switch (tolower((unsigned char)c)) {
	case 's':
		str_copy(v, sender, vlen);
		return 0;
	case 'l':
		if (at == NULL || at == sender)
			str_copy(v, "postmaster", vlen); /* §4.3 */
		else
			snprintf(v, vlen, "%.*s", (int)(at - sender), sender);
		return 0;
	case 'o':
		str_copy(v, at != NULL ? at + 1 : sender, vlen);
		return 0;
	case 'd':
		str_copy(v, domain, vlen);
		return 0;
	case 'i':
		spf_ip_dotted(&ev->ip, v, vlen);
		return 0;
	case 'p':
		spf_validated_name(ev, domain, v, vlen);
		return 0;
	case 'v':
		str_copy(v, ev->ip.family == AF_INET ? "in-addr" : "ip6", vlen);
		return 0;
	case 'h':
		str_copy(v, ev->req->helo, vlen);
		return 0;
	case 'c':
		if (!exp)
			return -1;
		inet_ntop(ev->ip.family, ev->ip.a, v, (socklen_t)vlen);
		return 0;
	case 'r':
		if (!exp)
			return -1;
		str_copy(v, ev->req->receiver, vlen);
		return 0;
	case 't':
		if (!exp)
			return -1;
		snprintf(v, vlen, "%lld", (long long)time(NULL));
		return 0;
	}
	return -1;
}

/* Transformers (§7.3): split on delimiters, reverse, keep the right-most
 * `keep` parts (0: all), join with '.'. */
static void spf_transform(const char *v, unsigned keep, bool reverse, const char *delims,
			  char *out, size_t outlen)
{
	const char *part[SPF_EXPAND_MAX / 2 + 1];
	size_t plen[SPF_EXPAND_MAX / 2 + 1], n = 0, o = 0, first;
	const char *p = v;

	for (;;) {
		size_t len = strcspn(p, delims);
		if (n < sizeof(part) / sizeof(part[0])) {
			part[n] = p;
			plen[n++] = len;
		}
		if (p[len] == '\0')
			break;
		p += len + 1;
	}
	if (reverse)
		for (size_t i = 0; i < n / 2; i++) {
			const char *t = part[i];
			size_t tl = plen[i];
			part[i] = part[n - 1 - i];
			plen[i] = plen[n - 1 - i];
			part[n - 1 - i] = t;
			plen[n - 1 - i] = tl;
		}
	first = keep > 0 && keep < n ? n - keep : 0;
	out[0] = '\0';
	for (size_t i = first; i < n; i++) {
		if (i > first && o + 1 < outlen)
			out[o++] = '.';
		for (size_t k = 0; k < plen[i] && o + 1 < outlen; k++)
			out[o++] = part[i][k];
		out[o] = '\0';
	}
}

/* Upper-case macro letters URL-escape the value (§7.3). */
static void spf_url_escape(const char *v, char *out, size_t outlen)
{
	size_t o = 0;

	for (const char *p = v; *p != '\0' && o + 4 < outlen; p++) {
		unsigned char c = (unsigned char)*p;
		if (isalnum(c) || strchr("-._~", c) != NULL)
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, outlen - o, "%%%02X", c);
	}
	out[o] = '\0';
}

/* One %{...} at *pp (after the '{'); appends to out.  -1: syntax. */
static int spf_macro(struct spf_eval *ev, const char *domain, const char **pp, bool exp,
		     char *out, size_t outlen, size_t *o)
{
	const char *p = *pp;
	char letter = *p++, v[SPF_EXPAND_MAX + 1], t[SPF_EXPAND_MAX + 1], delims[8] = "";
	unsigned keep = 0;
	bool reverse = false, digits = false;
	size_t nd = 0;

	if (letter == '\0')
		return -1;
	while (isdigit((unsigned char)*p)) {
		digits = true;
		if (keep < 1000)
			keep = keep * 10 + (unsigned)(*p - '0');
		p++;
	}
	if (digits && keep == 0)
		return -1; /* §7.1: the digit count is nonzero */
	if (*p == 'r' || *p == 'R') {
		reverse = true;
		p++;
	}
	while (*p != '}' && *p != '\0') {
		if (strchr(".-+,/_=", *p) == NULL || nd + 1 >= sizeof(delims))
			return -1;
		delims[nd++] = *p++;
	}
	if (*p != '}')
		return -1;
	*pp = p + 1;
	if (ev == NULL)
		return 0; /* syntax check only */
	if (spf_macro_value(ev, domain, letter, exp, v, sizeof(v)) < 0)
		return -1;
	spf_transform(v, keep, reverse, nd > 0 ? delims : ".", t, sizeof(t));
	if (isupper((unsigned char)letter)) {
		spf_url_escape(t, v, sizeof(v));
		return spf_append(out, outlen, o, v, strlen(v));
	}
	return spf_append(out, outlen, o, t, strlen(t));
}

/* Expand spec (n octets) into out.  ev NULL: check the syntax only.
 * 0 or -1 (syntax, or too long). */
static int spf_expand_n(struct spf_eval *ev, const char *domain, const char *spec, size_t n,
			bool exp, char *out, size_t outlen)
{
	const char *p = spec, *end = spec + n;
	size_t o = 0;

	out[0] = '\0';
	while (p < end) {
		if (*p != '%') {
			if (spf_append(out, outlen, &o, p, 1) < 0)
				return -1;
			p++;
			continue;
		}
		p++;
		if (p >= end)
			return -1;
		if (*p == '%' || *p == '_' || *p == '-') {
			const char *lit = *p == '%' ? "%" : *p == '_' ? " " : "%20";
			if (spf_append(out, outlen, &o, lit, strlen(lit)) < 0)
				return -1;
			p++;
		} else if (*p == '{') {
			p++;
			if (memchr(p, '}', (size_t)(end - p)) == NULL ||
			    spf_macro(ev, domain, &p, exp, out, outlen, &o) < 0)
				return -1;
		} else {
			return -1;
		}
	}
	return 0;
}

int spf_expand(struct smtp_dns *dns, const struct spf_request *req, const char *domain,
	       const char *spec, bool exp, char *out, size_t outlen)
{
	struct spf_eval ev = { .dns = dns, .req = req };

	if (spf_ip_parse(req->ip, &ev.ip) < 0)
		return -1;
	return spf_expand_n(&ev, domain, spec, strlen(spec), exp, out, outlen);
}

/* A domain-spec expanded, shortened from the left to SPF_DOMAIN_MAX (§7.3),
 * without a final dot. */
static int spf_target(struct spf_eval *ev, const char *domain, const char *spec, size_t n,
		      char *out, size_t outlen)
{
	char *p;
	size_t len;

	if (spf_expand_n(ev, domain, spec, n, false, out, outlen) < 0)
		return -1;
	p = out;
	while (strlen(p) > SPF_DOMAIN_MAX && strchr(p, '.') != NULL)
		p = strchr(p, '.') + 1;
	memmove(out, p, strlen(p) + 1);
	len = strlen(out);
	if (len > 0 && out[len - 1] == '.')
		out[len - 1] = '\0';
	return out[0] != '\0' ? 0 : -1;
}

/* ---- DNS with the limits ------------------------------------------------------ */

/* A look-up made by a term: SPF_DNS_OK..., with void answers counted;
 * -2 when the void limit is passed. */
static int spf_query(struct spf_eval *ev, const char *name, enum smtp_dns_type type,
		     struct smtp_dns_answer *a)
{
	enum smtp_dns_status st = smtp_dns_query(ev->dns, name, type, a);

	if (st == SMTP_DNS_NXDOMAIN || st == SMTP_DNS_NODATA || (st == SMTP_DNS_OK && a->n == 0)) {
		if (++ev->voids > SPF_VOID_MAX)
			return -2;
	}
	return (int)st;
}

static bool spf_count(struct spf_eval *ev)
{
	return ++ev->lookups <= SPF_LOOKUPS_MAX;
}

/* Does name have an address of the client's family matching within bits?
 * 1 yes, 0 no, -1 temperror, -2 permerror (void limit).  Only the term's
 * own query counts as void (the a mechanism's); the addresses of mx and
 * ptr names do not, or an IPv6 client would fail every domain whose mail
 * servers have no AAAA record. */
static int spf_addr_match(struct spf_eval *ev, const char *name, unsigned bits4, unsigned bits6,
			  bool term)
{
	enum smtp_dns_type type = ev->ip.family == AF_INET ? SMTP_DNS_A : SMTP_DNS_AAAA;
	struct smtp_dns_answer a;
	int st = term ? spf_query(ev, name, type, &a) : (int)smtp_dns_query(ev->dns, name, type, &a);
	int found = 0;

	if (st == -2)
		return -2;
	if (st == SMTP_DNS_FAIL)
		return -1;
	for (size_t i = 0; i < a.n && !found; i++) {
		struct spf_ip x;
		if (spf_ip_parse(a.rr[i], &x) == 0 &&
		    spf_ip_match(&x, &ev->ip, ev->ip.family == AF_INET ? bits4 : bits6))
			found = 1;
	}
	smtp_dns_answer_free(&a);
	return found;
}

/* §5.5: the client's names whose addresses include the client; the first
 * that is target or ends in .target, else any, else "unknown". */
static void spf_validated_name(struct spf_eval *ev, const char *target, char *out, size_t outlen)
{
	char rev[160], any[SPF_DOMAIN_MAX + 1] = "";
	struct smtp_dns_answer a;
	size_t tl = strlen(target);

	str_copy(out, "unknown", outlen);
	spf_ip_dotted(&ev->ip, rev, sizeof(rev));
	{
		char t[80]; /* 32 nibbles and their dots */
		spf_transform(rev, 0, true, ".", t, sizeof(t));
		snprintf(rev, sizeof(rev), "%s.%s", t,
			 ev->ip.family == AF_INET ? "in-addr.arpa" : "ip6.arpa");
	}
	if (smtp_dns_query(ev->dns, rev, SMTP_DNS_PTR, &a) != SMTP_DNS_OK)
		return;
	for (size_t i = 0; i < a.n && i < SPF_PTR_NAMES_MAX; i++) {
		const char *nm = a.rr[i];
		size_t nl = strlen(nm);
		if (spf_addr_match(ev, nm, 32, 128, false) != 1)
			continue;
		if (strcasecmp(nm, target) == 0 ||
		    (nl > tl && nm[nl - tl - 1] == '.' && strcasecmp(nm + nl - tl, target) == 0)) {
			str_copy(out, nm, outlen);
			break;
		}
		if (any[0] == '\0')
			str_copy(any, nm, sizeof(any));
	}
	if (strcmp(out, "unknown") == 0 && any[0] != '\0')
		str_copy(out, any, outlen);
	smtp_dns_answer_free(&a);
}

/* ---- terms ---------------------------------------------------------------------- */

enum spf_mech { SPF_ALL, SPF_INCLUDE, SPF_A, SPF_MX, SPF_PTR, SPF_IP4, SPF_IP6, SPF_EXISTS };

struct spf_term {
	char qualifier;            /* + - ~ ? */
	enum spf_mech mech;
	const char *arg;           /* after ':' (domain-spec or address), may be "" */
	size_t arg_len;
	unsigned bits4, bits6;     /* CIDR lengths */
};

struct spf_record {
	struct spf_term terms[SPF_TERMS_MAX];
	size_t n;
	const char *redirect, *exp;
	size_t redirect_len, exp_len;
};

/* "/n" and/or "//m" at the end of arg: cut them off into bits. */
static int spf_cidr(struct spf_term *t, bool v4, bool v6)
{
	const char *a = t->arg, *slash = memchr(a, '/', t->arg_len);
	size_t len;

	t->bits4 = 32;
	t->bits6 = 128;
	if (slash == NULL)
		return 0;
	len = (size_t)(slash - a);
	const char *p = slash, *end = a + t->arg_len;
	if (p + 1 < end && p[1] != '/') {
		unsigned v = 0;
		p++;
		if (!v4 || !isdigit((unsigned char)*p))
			return -1;
		while (p < end && isdigit((unsigned char)*p))
			v = v * 10 + (unsigned)(*p++ - '0');
		if (v > 32)
			return -1;
		t->bits4 = v;
	}
	if (p < end) {
		unsigned v = 0;
		if (end - p < 3 || p[0] != '/' || p[1] != '/' || !v6)
			return -1;
		p += 2;
		while (p < end && isdigit((unsigned char)*p))
			v = v * 10 + (unsigned)(*p++ - '0');
		if (p != end || v > 128)
			return -1;
		t->bits6 = v;
	}
	t->arg_len = len;
	return 0;
}

static int spf_parse_mech(const char *tok, size_t n, struct spf_term *t)
{
	static const struct { const char *name; enum spf_mech mech; } mechs[] = {
		{ "all", SPF_ALL }, { "include", SPF_INCLUDE }, { "a", SPF_A }, { "mx", SPF_MX },
		{ "ptr", SPF_PTR }, { "ip4", SPF_IP4 }, { "ip6", SPF_IP6 }, { "exists", SPF_EXISTS },
	};
	size_t nl = 0;
	bool found = false;
	char buf[SPF_EXPAND_MAX + 1];

	t->qualifier = '+';
	if (n > 0 && strchr("+-~?", tok[0]) != NULL) {
		t->qualifier = tok[0];
		tok++;
		n--;
	}
	while (nl < n && tok[nl] != ':' && tok[nl] != '/')
		nl++;
	for (size_t i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++)
		if (strlen(mechs[i].name) == nl && strncasecmp(tok, mechs[i].name, nl) == 0) {
			t->mech = mechs[i].mech;
			found = true;
		}
	if (!found)
		return -1;
	t->arg = tok + nl + (nl < n && tok[nl] == ':' ? 1 : 0);
	t->arg_len = n - (size_t)(t->arg - tok);
	if (nl < n && tok[nl] == ':' && t->arg_len == 0)
		return -1;
	switch (t->mech) {
	case SPF_ALL:
		return t->arg_len == 0 ? 0 : -1;
	case SPF_INCLUDE:
	case SPF_EXISTS:
		if (t->arg_len == 0 || tok[nl] != ':')
			return -1;
		return spf_expand_n(NULL, "", t->arg, t->arg_len, false, buf, sizeof(buf));
	case SPF_PTR:
		if (t->arg_len > 0 && tok[nl] != ':')
			return -1;
		return spf_expand_n(NULL, "", t->arg, t->arg_len, false, buf, sizeof(buf));
	case SPF_A:
	case SPF_MX:
		if (spf_cidr(t, true, true) < 0)
			return -1;
		return spf_expand_n(NULL, "", t->arg, t->arg_len, false, buf, sizeof(buf));
	case SPF_IP4:
	case SPF_IP6: {
		struct spf_ip ip;
		if (tok[nl] != ':' || (t->mech == SPF_IP4 && spf_cidr(t, true, false) < 0))
			return -1;
		if (t->mech == SPF_IP6) {
			/* ip6 takes "/n" for its own length */
			const char *slash = memchr(t->arg, '/', t->arg_len);
			t->bits6 = 128;
			if (slash != NULL) {
				unsigned v = 0;
				const char *p = slash + 1, *end = t->arg + t->arg_len;
				if (p == end)
					return -1;
				while (p < end && isdigit((unsigned char)*p))
					v = v * 10 + (unsigned)(*p++ - '0');
				if (p != end || v > 128)
					return -1;
				t->bits6 = v;
				t->arg_len = (size_t)(slash - t->arg);
			}
		}
		if (t->arg_len >= sizeof(buf))
			return -1;
		memcpy(buf, t->arg, t->arg_len);
		buf[t->arg_len] = '\0';
		if (spf_ip_parse(buf, &ip) < 0)
			return -1;
		if (t->mech == SPF_IP4 && (ip.family != AF_INET || strchr(buf, ':') != NULL))
			return -1;
		if (t->mech == SPF_IP6 && strchr(buf, ':') == NULL)
			return -1;
		return 0;
	}
	}
	return -1;
}

/* §4.6.1 syntax of the whole record (after "v=spf1"). */
static int spf_parse(const char *rec, struct spf_record *r)
{
	const char *p = rec;
	char buf[SPF_EXPAND_MAX + 1];

	memset(r, 0, sizeof(*r));
	for (;;) {
		size_t n;
		const char *eq;
		while (*p == ' ')
			p++;
		if (*p == '\0')
			return 0;
		n = strcspn(p, " ");
		eq = memchr(p, '=', n);
		if (eq != NULL && (size_t)(eq - p) < strcspn(p, ":/")) {
			/* a modifier: name "=" macro-string (§4.6.1) */
			size_t nl = (size_t)(eq - p);
			const char *v = eq + 1;
			size_t vl = n - nl - 1;
			if (nl == 0 || !isalpha((unsigned char)p[0]))
				return -1;
			for (size_t i = 0; i < nl; i++)
				if (!isalnum((unsigned char)p[i]) && strchr("-_.", p[i]) == NULL)
					return -1;
			if (spf_expand_n(NULL, "", v, vl, true, buf, sizeof(buf)) < 0)
				return -1;
			if (nl == 8 && strncasecmp(p, "redirect", 8) == 0) {
				if (r->redirect != NULL || vl == 0)
					return -1; /* §6: at most once */
				r->redirect = v;
				r->redirect_len = vl;
			} else if (nl == 3 && strncasecmp(p, "exp", 3) == 0) {
				if (r->exp != NULL || vl == 0)
					return -1;
				r->exp = v;
				r->exp_len = vl;
			}
			/* unknown modifiers are ignored (§6) */
		} else {
			if (r->n == SPF_TERMS_MAX || spf_parse_mech(p, n, &r->terms[r->n]) < 0)
				return -1;
			r->n++;
		}
		p += n;
	}
}

/* The one "v=spf1" TXT record of domain (§4.5). */
static enum spf_result spf_record_of(struct spf_eval *ev, const char *domain, char **rec_r)
{
	struct smtp_dns_answer a;
	enum smtp_dns_status st = smtp_dns_query(ev->dns, domain, SMTP_DNS_TXT, &a);
	size_t found = 0;

	*rec_r = NULL;
	if (st == SMTP_DNS_FAIL)
		return SPF_RESULT_TEMPERROR;
	if (st != SMTP_DNS_OK)
		return SPF_RESULT_NONE;
	for (size_t i = 0; i < a.n; i++) {
		const char *t = a.rr[i];
		if (strncasecmp(t, "v=spf1", 6) != 0 || (t[6] != '\0' && t[6] != ' '))
			continue;
		if (found++ == 0)
			*rec_r = strdup(t + 6);
	}
	smtp_dns_answer_free(&a);
	if (found > 1) {
		free(*rec_r);
		*rec_r = NULL;
		return SPF_RESULT_PERMERROR;
	}
	if (found == 0)
		return SPF_RESULT_NONE;
	return *rec_r != NULL ? SPF_RESULT_PASS : SPF_RESULT_TEMPERROR;
}

static enum spf_result spf_check(struct spf_eval *ev, const char *domain, char *exp,
				 size_t explen);

/* 1 match, 0 none, or -(1 + result) for an error result. */
#define SPF_ERR(r) (-1 - (int)(r))

static int spf_mech_mx(struct spf_eval *ev, const char *target, const struct spf_term *t)
{
	struct smtp_dns_answer a;
	int st = spf_query(ev, target, SMTP_DNS_MX, &a), m = 0;

	if (st == -2)
		return SPF_ERR(SPF_RESULT_PERMERROR);
	if (st == SMTP_DNS_FAIL)
		return SPF_ERR(SPF_RESULT_TEMPERROR);
	if (a.n > SPF_MX_NAMES_MAX) {
		smtp_dns_answer_free(&a);
		return SPF_ERR(SPF_RESULT_PERMERROR); /* §4.6.4 */
	}
	for (size_t i = 0; i < a.n && m == 0; i++) {
		int r = spf_addr_match(ev, a.rr[i], t->bits4, t->bits6, false);
		if (r == -1)
			m = SPF_ERR(SPF_RESULT_TEMPERROR);
		else if (r == -2)
			m = SPF_ERR(SPF_RESULT_PERMERROR);
		else
			m = r;
	}
	smtp_dns_answer_free(&a);
	return m;
}

static int spf_mech_include(struct spf_eval *ev, const char *target)
{
	switch (spf_check(ev, target, NULL, 0)) {
	case SPF_RESULT_PASS:
		return 1;
	case SPF_RESULT_FAIL:
	case SPF_RESULT_SOFTFAIL:
	case SPF_RESULT_NEUTRAL:
		return 0;
	case SPF_RESULT_TEMPERROR:
		return SPF_ERR(SPF_RESULT_TEMPERROR);
	default: /* §5.2: none and permerror are permerror */
		return SPF_ERR(SPF_RESULT_PERMERROR);
	}
}

static int spf_mech(struct spf_eval *ev, const char *domain, const struct spf_term *t)
{
	char target[SPF_EXPAND_MAX + 1], addr[INET6_ADDRSTRLEN + 1];
	struct spf_ip ip;
	int r;

	if (t->mech == SPF_ALL)
		return 1;
	if (t->mech == SPF_IP4 || t->mech == SPF_IP6) {
		memcpy(addr, t->arg, t->arg_len);
		addr[t->arg_len] = '\0';
		if (spf_ip_parse(addr, &ip) < 0)
			return 0;
		return spf_ip_match(&ip, &ev->ip, ip.family == AF_INET ? t->bits4 : t->bits6);
	}
	if (!spf_count(ev))
		return SPF_ERR(SPF_RESULT_PERMERROR); /* §4.6.4 */
	if (t->arg_len == 0)
		str_copy(target, domain, sizeof(target));
	else if (spf_target(ev, domain, t->arg, t->arg_len, target, sizeof(target)) < 0)
		return SPF_ERR(SPF_RESULT_PERMERROR);
	switch (t->mech) {
	case SPF_INCLUDE:
		return spf_mech_include(ev, target);
	case SPF_A:
		r = spf_addr_match(ev, target, t->bits4, t->bits6, true);
		break;
	case SPF_MX:
		return spf_mech_mx(ev, target, t);
	case SPF_PTR: {
		char name[SPF_DOMAIN_MAX + 1];
		size_t nl, tl = strlen(target);
		spf_validated_name(ev, target, name, sizeof(name));
		nl = strlen(name);
		return strcasecmp(name, target) == 0 ||
		       (nl > tl && name[nl - tl - 1] == '.' &&
			strcasecmp(name + nl - tl, target) == 0);
	}
	case SPF_EXISTS: {
		struct smtp_dns_answer a;
		int st = spf_query(ev, target, SMTP_DNS_A, &a); /* §5.7: always A */
		if (st == -2)
			return SPF_ERR(SPF_RESULT_PERMERROR);
		if (st == SMTP_DNS_FAIL)
			return SPF_ERR(SPF_RESULT_TEMPERROR);
		r = a.n > 0;
		smtp_dns_answer_free(&a);
		return r;
	}
	default:
		return 0;
	}
	if (r == -1)
		return SPF_ERR(SPF_RESULT_TEMPERROR);
	if (r == -2)
		return SPF_ERR(SPF_RESULT_PERMERROR);
	return r;
}

/* §6.2: the explanation; errors leave it empty. */
static void spf_explain(struct spf_eval *ev, const char *domain, const struct spf_record *r,
			char *exp, size_t explen)
{
	char target[SPF_EXPAND_MAX + 1];
	struct smtp_dns_answer a;

	if (exp == NULL || r->exp == NULL ||
	    spf_target(ev, domain, r->exp, r->exp_len, target, sizeof(target)) < 0)
		return;
	if (smtp_dns_query(ev->dns, target, SMTP_DNS_TXT, &a) != SMTP_DNS_OK)
		return;
	if (a.n == 1 && spf_expand_n(ev, domain, a.rr[0], strlen(a.rr[0]), true, exp, explen) < 0)
		exp[0] = '\0';
	smtp_dns_answer_free(&a);
}

static bool spf_domain_ok(const char *d)
{
	size_t len = strlen(d), label = 0;

	if (len == 0 || len > SPF_DOMAIN_MAX || strchr(d, '.') == NULL)
		return false;
	for (const char *p = d; *p != '\0'; p++) {
		if (*p == '.') {
			if (label == 0 && p[1] != '\0')
				return false;
			label = 0;
		} else if (++label > 63) {
			return false;
		}
	}
	return true;
}

static enum spf_result spf_check(struct spf_eval *ev, const char *domain, char *exp,
				 size_t explen)
{
	static const enum spf_result by_qualifier[] = {
		['+'] = SPF_RESULT_PASS, ['-'] = SPF_RESULT_FAIL,
		['~'] = SPF_RESULT_SOFTFAIL, ['?'] = SPF_RESULT_NEUTRAL,
	};
	struct spf_record *r;
	enum spf_result res;
	char *rec;

	if (!spf_domain_ok(domain))
		return SPF_RESULT_NONE; /* §4.3 */
	res = spf_record_of(ev, domain, &rec);
	if (res != SPF_RESULT_PASS)
		return res;
	r = malloc(sizeof(*r));
	if (r == NULL) {
		free(rec);
		return SPF_RESULT_TEMPERROR;
	}
	if (spf_parse(rec, r) < 0) {
		res = SPF_RESULT_PERMERROR;
		goto out;
	}
	for (size_t i = 0; i < r->n; i++) {
		int m = spf_mech(ev, domain, &r->terms[i]);
		if (m < 0) {
			res = (enum spf_result)(-1 - m);
			goto out;
		}
		if (m == 1) {
			res = by_qualifier[(unsigned char)r->terms[i].qualifier];
			if (res == SPF_RESULT_FAIL)
				spf_explain(ev, domain, r, exp, explen);
			goto out;
		}
	}
	if (r->redirect != NULL) {
		char target[SPF_EXPAND_MAX + 1];
		if (!spf_count(ev) ||
		    spf_target(ev, domain, r->redirect, r->redirect_len, target, sizeof(target)) < 0) {
			res = SPF_RESULT_PERMERROR;
			goto out;
		}
		res = spf_check(ev, target, exp, explen);
		if (res == SPF_RESULT_NONE)
			res = SPF_RESULT_PERMERROR; /* §6.1 */
		goto out;
	}
	res = SPF_RESULT_NEUTRAL; /* §4.7: no match, no redirect */
out:
	free(rec);
	free(r);
	return res;
}

enum spf_result spf_check_host(struct smtp_dns *dns, const struct spf_request *req,
			       const char *domain, char *exp, size_t explen)
{
	struct spf_eval ev = { .dns = dns, .req = req };

	if (exp != NULL && explen > 0)
		exp[0] = '\0';
	if (spf_ip_parse(req->ip, &ev.ip) < 0)
		return SPF_RESULT_NONE;
	return spf_check(&ev, domain, exp, explen);
}
