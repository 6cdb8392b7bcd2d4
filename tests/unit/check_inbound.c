/* protocols/smtp inbound checks against a fake DNS answer table: SPF
 * check_host() on the RFC 7208 Appendix A.1 zone and mechanism examples,
 * the §7.4 macro examples, the lookup and void-lookup limits, include /
 * redirect / exp semantics, syntax errors and DNS failures; DMARC
 * organisational domains (Public Suffix List rules) and policy evaluation;
 * Authentication-Results stripping and building.  The same code runs in
 * the daemon with smtp_dns.c's resolver (tests/integration/smtp_inbound.py). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "smtp_inbound.h"

/* ---- the fake DNS -------------------------------------------------------------- */

struct fake_rr {
	const char *name;
	enum smtp_dns_type type;
	const char *value;     /* NULL: the look-up fails (SERVFAIL) */
};

static const struct fake_rr *fake_zone;

static enum smtp_dns_status fake_lookup(struct smtp_dns *dns, const char *name,
					enum smtp_dns_type type, struct smtp_dns_answer *a)
{
	bool exists = false;

	(void)dns;
	for (const struct fake_rr *r = fake_zone; r->name != NULL; r++) {
		if (strcasecmp(r->name, name) != 0)
			continue;
		exists = true;
		if (r->type != type)
			continue;
		if (r->value == NULL)
			return SMTP_DNS_FAIL;
		ck_assert_int_eq(smtp_dns_answer_add(a, r->value), 0);
	}
	if (a->n > 0)
		return SMTP_DNS_OK;
	return exists ? SMTP_DNS_NODATA : SMTP_DNS_NXDOMAIN;
}

static struct smtp_dns fake_dns(const struct fake_rr *zone)
{
	struct smtp_dns d = { .lookup = fake_lookup };

	fake_zone = zone;
	return d;
}

/* RFC 7208 Appendix A: the zone of the examples (checked against the
 * appendix, 10.0.0.4 the rogue reverse entry); example.com's TXT record
 * is what each row of a table replaces ("@" below). */
#define A1_ZONE                                                                  \
	{ "example.com", SMTP_DNS_A, "192.0.2.10" },                              \
	{ "example.com", SMTP_DNS_A, "192.0.2.11" },                              \
	{ "amy.example.com", SMTP_DNS_A, "192.0.2.65" },                          \
	{ "bob.example.com", SMTP_DNS_A, "192.0.2.66" },                          \
	{ "mail-a.example.com", SMTP_DNS_A, "192.0.2.129" },                      \
	{ "mail-b.example.com", SMTP_DNS_A, "192.0.2.130" },                      \
	{ "www.example.com", SMTP_DNS_A, "192.0.2.10" },                          \
	{ "mail-c.example.org", SMTP_DNS_A, "192.0.2.140" },                      \
	{ "example.com", SMTP_DNS_MX, "mail-a.example.com" },                     \
	{ "example.com", SMTP_DNS_MX, "mail-b.example.com" },                     \
	{ "example.org", SMTP_DNS_MX, "mail-c.example.org" },                     \
	{ "10.2.0.192.in-addr.arpa", SMTP_DNS_PTR, "example.com" },               \
	{ "11.2.0.192.in-addr.arpa", SMTP_DNS_PTR, "example.com" },               \
	{ "65.2.0.192.in-addr.arpa", SMTP_DNS_PTR, "amy.example.com" },           \
	{ "66.2.0.192.in-addr.arpa", SMTP_DNS_PTR, "bob.example.com" },           \
	{ "129.2.0.192.in-addr.arpa", SMTP_DNS_PTR, "mail-a.example.com" },       \
	{ "130.2.0.192.in-addr.arpa", SMTP_DNS_PTR, "mail-b.example.com" },       \
	{ "140.2.0.192.in-addr.arpa", SMTP_DNS_PTR, "mail-c.example.org" },       \
	{ "4.0.0.10.in-addr.arpa", SMTP_DNS_PTR, "bob.example.com" }

struct spf_case {
	const char *record;    /* example.com's TXT */
	const char *ip;
	enum spf_result want;
};

static enum spf_result spf_run(const struct fake_rr *zone, const char *ip, const char *domain,
			       const char *sender, char *exp, size_t explen)
{
	struct smtp_dns dns = fake_dns(zone);
	struct spf_request req = { ip, sender, "mx.example.net", "mail.example.test" };

	return spf_check_host(&dns, &req, domain, exp, explen);
}

/* RFC 7208 Appendix A.1: each mechanism example, with the hosts it allows
 * and some it does not. */
static const struct spf_case a1_cases[] = {
	{ "v=spf1 +all", "192.0.2.10", SPF_RESULT_PASS },
	{ "v=spf1 +all", "203.0.113.1", SPF_RESULT_PASS },
	{ "v=spf1 a -all", "192.0.2.10", SPF_RESULT_PASS },
	{ "v=spf1 a -all", "192.0.2.11", SPF_RESULT_PASS },
	{ "v=spf1 a -all", "192.0.2.65", SPF_RESULT_FAIL },
	{ "v=spf1 a:example.org -all", "192.0.2.10", SPF_RESULT_FAIL },
	{ "v=spf1 a:example.org -all", "192.0.2.140", SPF_RESULT_FAIL },
	{ "v=spf1 mx -all", "192.0.2.129", SPF_RESULT_PASS },
	{ "v=spf1 mx -all", "192.0.2.130", SPF_RESULT_PASS },
	{ "v=spf1 mx -all", "192.0.2.140", SPF_RESULT_FAIL },
	{ "v=spf1 mx:example.org -all", "192.0.2.140", SPF_RESULT_PASS },
	{ "v=spf1 mx:example.org -all", "192.0.2.129", SPF_RESULT_FAIL },
	{ "v=spf1 mx mx:example.org -all", "192.0.2.129", SPF_RESULT_PASS },
	{ "v=spf1 mx mx:example.org -all", "192.0.2.130", SPF_RESULT_PASS },
	{ "v=spf1 mx mx:example.org -all", "192.0.2.140", SPF_RESULT_PASS },
	{ "v=spf1 mx mx:example.org -all", "192.0.2.10", SPF_RESULT_FAIL },
	{ "v=spf1 mx/30 mx:example.org/30 -all", "192.0.2.128", SPF_RESULT_PASS },
	{ "v=spf1 mx/30 mx:example.org/30 -all", "192.0.2.131", SPF_RESULT_PASS },
	{ "v=spf1 mx/30 mx:example.org/30 -all", "192.0.2.143", SPF_RESULT_PASS },
	{ "v=spf1 mx/30 mx:example.org/30 -all", "192.0.2.132", SPF_RESULT_FAIL },
	{ "v=spf1 ptr -all", "192.0.2.10", SPF_RESULT_PASS },
	{ "v=spf1 ptr -all", "192.0.2.65", SPF_RESULT_PASS },
	{ "v=spf1 ptr -all", "192.0.2.130", SPF_RESULT_PASS },
	{ "v=spf1 ptr -all", "192.0.2.140", SPF_RESULT_FAIL },  /* example.org */
	{ "v=spf1 ptr -all", "10.0.0.4", SPF_RESULT_FAIL },    /* not validated */
	{ "v=spf1 ip4:192.0.2.128/28 -all", "192.0.2.128", SPF_RESULT_PASS },
	{ "v=spf1 ip4:192.0.2.128/28 -all", "192.0.2.143", SPF_RESULT_PASS },
	{ "v=spf1 ip4:192.0.2.128/28 -all", "192.0.2.65", SPF_RESULT_FAIL },
	{ "v=spf1 ip4:192.0.2.128/28 -all", "192.0.2.144", SPF_RESULT_FAIL },
	/* qualifiers and the default result */
	{ "v=spf1 ~all", "192.0.2.1", SPF_RESULT_SOFTFAIL },
	{ "v=spf1 ?all", "192.0.2.1", SPF_RESULT_NEUTRAL },
	{ "v=spf1 ip4:192.0.2.1", "192.0.2.2", SPF_RESULT_NEUTRAL },
	{ "v=spf1 -ip4:192.0.2.1 +all", "192.0.2.1", SPF_RESULT_FAIL },
	{ "v=spf1 ip6:2001:db8::/32 -all", "2001:db8::1", SPF_RESULT_PASS },
	{ "v=spf1 ip6:2001:db8::/32 -all", "2001:db9::1", SPF_RESULT_FAIL },
	{ "v=spf1 ip4:192.0.2.10 -all", "::ffff:192.0.2.10", SPF_RESULT_PASS },
	/* syntax errors anywhere: permerror before any evaluation (§4.6) */
	{ "v=spf1 +all foo", "192.0.2.10", SPF_RESULT_PERMERROR },
	{ "v=spf1 ip4:192.0.2.999 +all", "192.0.2.10", SPF_RESULT_PERMERROR },
	{ "v=spf1 a/33 +all", "192.0.2.10", SPF_RESULT_PERMERROR },
	{ "v=spf1 include: -all", "192.0.2.10", SPF_RESULT_PERMERROR },
	{ "v=spf1 redirect=a.example redirect=b.example", "192.0.2.10", SPF_RESULT_PERMERROR },
	{ "v=spf1 exists:%{z}.example.com -all", "192.0.2.10", SPF_RESULT_PERMERROR },
	{ "v=spf1 all:x", "192.0.2.10", SPF_RESULT_PERMERROR },
	{ "v=spf1 unknown-mod=x +all", "192.0.2.10", SPF_RESULT_PASS },
};

START_TEST(test_inbound_spf_rfc7208_a1)
{
	for (size_t i = 0; i < sizeof(a1_cases) / sizeof(a1_cases[0]); i++) {
		const struct spf_case *c = &a1_cases[i];
		const struct fake_rr zone[] = {
			A1_ZONE,
			{ "example.com", SMTP_DNS_TXT, c->record },
			{ NULL, 0, NULL },
		};
		enum spf_result r = spf_run(zone, c->ip, "example.com", "x@example.com", NULL, 0);
		ck_assert_msg(r == c->want, "\"%s\" for %s: %s, want %s", c->record, c->ip,
			      spf_result_name(r), spf_result_name(c->want));
	}
}
END_TEST

/* RFC 7208 §7.4: sender strong-bad@email.example.com, 192.0.2.3 and
 * 2001:db8::cb01. */
START_TEST(test_inbound_spf_macros)
{
	static const struct { const char *spec, *want; bool v6; } cases[] = {
		{ "%{s}", "strong-bad@email.example.com", false },
		{ "%{o}", "email.example.com", false },
		{ "%{d}", "email.example.com", false },
		{ "%{d4}", "email.example.com", false },
		{ "%{d3}", "email.example.com", false },
		{ "%{d2}", "example.com", false },
		{ "%{d1}", "com", false },
		{ "%{dr}", "com.example.email", false },
		{ "%{d2r}", "example.email", false },
		{ "%{l}", "strong-bad", false },
		{ "%{l-}", "strong.bad", false },
		{ "%{lr}", "strong-bad", false },
		{ "%{lr-}", "bad.strong", false },
		{ "%{l1r-}", "strong", false },
		{ "%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com", false },
		{ "%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com", false },
		{ "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}",
		  "bad.strong.lp.3.2.0.192.in-addr._spf.example.com", false },
		{ "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}",
		  "3.2.0.192.in-addr.strong.lp._spf.example.com", false },
		{ "%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net",
		  false },
		{ "%{ir}.%{v}._spf.%{d2}", "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1."
		  "0.0.2.ip6._spf.example.com", true },
		{ "%%%_%-", "% %20", false },
		{ "%{S}", "strong-bad%40email.example.com", false },
	};
	const struct fake_rr zone[] = { { NULL, 0, NULL } };
	struct smtp_dns dns = fake_dns(zone);
	char out[SPF_EXPAND_MAX + 1];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct spf_request req = { cases[i].v6 ? "2001:db8::cb01" : "192.0.2.3",
					   "strong-bad@email.example.com", "mx.example.net",
					   "mail.example.test" };
		ck_assert_int_eq(spf_expand(&dns, &req, "email.example.com", cases[i].spec, false,
					    out, sizeof(out)), 0);
		ck_assert_str_eq(out, cases[i].want);
	}
	{
		struct spf_request req = { "192.0.2.3", "a@b.example", "h", "r" };
		ck_assert_int_eq(spf_expand(&dns, &req, "b.example", "%{c}", false, out,
					    sizeof(out)), -1); /* exp-only letter */
		ck_assert_int_eq(spf_expand(&dns, &req, "b.example", "%{c} %{r}", true, out,
					    sizeof(out)), 0);
		ck_assert_str_eq(out, "192.0.2.3 r");
		ck_assert_int_eq(spf_expand(&dns, &req, "b.example", "%{d0}", false, out,
					    sizeof(out)), -1);
		ck_assert_int_eq(spf_expand(&dns, &req, "b.example", "%x", false, out,
					    sizeof(out)), -1);
	}
}
END_TEST

/* RFC 7208 Appendix A.4's pattern: "-include" of records that pass when a
 * requirement does not hold, so both must hold (the ptr record names its
 * domain: inside the include, %{d} is ptr._spf.example.com). */
START_TEST(test_inbound_spf_a4_multiple_requirements)
{
	const struct fake_rr zone[] = {
		A1_ZONE,
		{ "example.com", SMTP_DNS_TXT,
		  "v=spf1 -include:ip4._spf.%{d} -include:ptr._spf.%{d} +all" },
		{ "ip4._spf.example.com", SMTP_DNS_TXT, "v=spf1 -ip4:192.0.2.0/24 +all" },
		{ "ptr._spf.example.com", SMTP_DNS_TXT, "v=spf1 -ptr:example.com +all" },
		{ NULL, 0, NULL },
	};

	/* in 192.0.2.0/24 and a validated example.com name */
	ck_assert_int_eq(spf_run(zone, "192.0.2.65", "example.com", "a@example.com", NULL, 0),
			 SPF_RESULT_PASS);
	/* in the block, name under example.org */
	ck_assert_int_eq(spf_run(zone, "192.0.2.140", "example.com", "a@example.com", NULL, 0),
			 SPF_RESULT_FAIL);
	/* outside the block */
	ck_assert_int_eq(spf_run(zone, "10.0.0.4", "example.com", "a@example.com", NULL, 0),
			 SPF_RESULT_FAIL);
}
END_TEST

START_TEST(test_inbound_spf_include_redirect_exp)
{
	const struct fake_rr zone[] = {
		A1_ZONE,
		{ "inc.test", SMTP_DNS_TXT, "v=spf1 include:example.com -all" },
		{ "example.com", SMTP_DNS_TXT, "v=spf1 a -all" },
		{ "red.test", SMTP_DNS_TXT, "v=spf1 redirect=example.com" },
		{ "rednone.test", SMTP_DNS_TXT, "v=spf1 redirect=nothing.test" },
		{ "incnone.test", SMTP_DNS_TXT, "v=spf1 include:nothing.test -all" },
		{ "inctemp.test", SMTP_DNS_TXT, "v=spf1 include:broken.test -all" },
		{ "broken.test", SMTP_DNS_TXT, NULL },
		{ "two.test", SMTP_DNS_TXT, "v=spf1 +all" },
		{ "two.test", SMTP_DNS_TXT, "v=spf1 -all" },
		{ "other.test", SMTP_DNS_TXT, "google-site-verification=x" },
		{ "exp.test", SMTP_DNS_TXT, "v=spf1 -all exp=why.exp.test" },
		{ "why.exp.test", SMTP_DNS_TXT, "%{i} may not send for %{d} (%{l})" },
		{ NULL, 0, NULL },
	};
	char exp[SPF_EXPAND_MAX + 1];

	ck_assert_int_eq(spf_run(zone, "192.0.2.10", "inc.test", "a@inc.test", NULL, 0),
			 SPF_RESULT_PASS);
	/* a fail inside an include is "no match" (§5.2) */
	ck_assert_int_eq(spf_run(zone, "192.0.2.99", "inc.test", "a@inc.test", NULL, 0),
			 SPF_RESULT_FAIL);
	ck_assert_int_eq(spf_run(zone, "192.0.2.10", "red.test", "a@red.test", NULL, 0),
			 SPF_RESULT_PASS);
	ck_assert_int_eq(spf_run(zone, "192.0.2.99", "red.test", "a@red.test", NULL, 0),
			 SPF_RESULT_FAIL);
	ck_assert_int_eq(spf_run(zone, "192.0.2.10", "rednone.test", "a@x", NULL, 0),
			 SPF_RESULT_PERMERROR);
	ck_assert_int_eq(spf_run(zone, "192.0.2.10", "incnone.test", "a@x", NULL, 0),
			 SPF_RESULT_PERMERROR);
	ck_assert_int_eq(spf_run(zone, "192.0.2.10", "inctemp.test", "a@x", NULL, 0),
			 SPF_RESULT_TEMPERROR);
	ck_assert_int_eq(spf_run(zone, "192.0.2.10", "broken.test", "a@x", NULL, 0),
			 SPF_RESULT_TEMPERROR);
	ck_assert_int_eq(spf_run(zone, "192.0.2.10", "two.test", "a@x", NULL, 0),
			 SPF_RESULT_PERMERROR);
	ck_assert_int_eq(spf_run(zone, "192.0.2.10", "other.test", "a@x", NULL, 0),
			 SPF_RESULT_NONE);
	ck_assert_int_eq(spf_run(zone, "192.0.2.10", "absent.test", "a@x", NULL, 0),
			 SPF_RESULT_NONE);
	ck_assert_int_eq(spf_run(zone, "192.0.2.10", "nodots", "a@x", NULL, 0),
			 SPF_RESULT_NONE);
	ck_assert_int_eq(spf_run(zone, "192.0.2.10", "exp.test", "joe@exp.test", exp,
				 sizeof(exp)), SPF_RESULT_FAIL);
	ck_assert_str_eq(exp, "192.0.2.10 may not send for exp.test (joe)");
}
END_TEST

/* §4.6.4: more than 10 DNS-querying terms, or more than 2 void look-ups,
 * are permerror; 10 are fine. */
START_TEST(test_inbound_spf_limits)
{
	const struct fake_rr zone[] = {
		{ "ten.test", SMTP_DNS_TXT, "v=spf1 a:h1.test a:h2.test a:h3.test a:h4.test "
		  "a:h5.test a:h6.test a:h7.test a:h8.test a:h9.test a:h10.test -all" },
		{ "eleven.test", SMTP_DNS_TXT, "v=spf1 a:h1.test a:h2.test a:h3.test a:h4.test "
		  "a:h5.test a:h6.test a:h7.test a:h8.test a:h9.test a:h1.test a:h11.test -all" },
		{ "loop.test", SMTP_DNS_TXT, "v=spf1 include:loop.test -all" },
		{ "void2.test", SMTP_DNS_TXT, "v=spf1 a:v1.test a:v2.test ip4:192.0.2.1 -all" },
		{ "void3.test", SMTP_DNS_TXT,
		  "v=spf1 a:v1.test a:v2.test a:v3.test ip4:192.0.2.1 -all" },
		{ "h1.test", SMTP_DNS_A, "198.51.100.1" }, { "h2.test", SMTP_DNS_A, "198.51.100.2" },
		{ "h3.test", SMTP_DNS_A, "198.51.100.3" }, { "h4.test", SMTP_DNS_A, "198.51.100.4" },
		{ "h5.test", SMTP_DNS_A, "198.51.100.5" }, { "h6.test", SMTP_DNS_A, "198.51.100.6" },
		{ "h7.test", SMTP_DNS_A, "198.51.100.7" }, { "h8.test", SMTP_DNS_A, "198.51.100.8" },
		{ "h9.test", SMTP_DNS_A, "198.51.100.9" },
		{ "h10.test", SMTP_DNS_A, "192.0.2.1" }, { "h11.test", SMTP_DNS_A, "192.0.2.1" },
		/* an IPv6 client: the mail servers' missing AAAA records are not
		 * void look-ups of a term */
		{ "mx3.test", SMTP_DNS_TXT, "v=spf1 mx ip6:2001:db8::1 -all" },
		{ "mx3.test", SMTP_DNS_MX, "m1.mx3.test" }, { "mx3.test", SMTP_DNS_MX, "m2.mx3.test" },
		{ "mx3.test", SMTP_DNS_MX, "m3.mx3.test" },
		{ "m1.mx3.test", SMTP_DNS_A, "192.0.2.7" }, { "m2.mx3.test", SMTP_DNS_A, "192.0.2.8" },
		{ "m3.mx3.test", SMTP_DNS_A, "192.0.2.9" },
		{ "mx11.test", SMTP_DNS_TXT, "v=spf1 mx -all" },
		{ "mx11.test", SMTP_DNS_MX, "a1.test" }, { "mx11.test", SMTP_DNS_MX, "a2.test" },
		{ "mx11.test", SMTP_DNS_MX, "a3.test" }, { "mx11.test", SMTP_DNS_MX, "a4.test" },
		{ "mx11.test", SMTP_DNS_MX, "a5.test" }, { "mx11.test", SMTP_DNS_MX, "a6.test" },
		{ "mx11.test", SMTP_DNS_MX, "a7.test" }, { "mx11.test", SMTP_DNS_MX, "a8.test" },
		{ "mx11.test", SMTP_DNS_MX, "a9.test" }, { "mx11.test", SMTP_DNS_MX, "a10.test" },
		{ "mx11.test", SMTP_DNS_MX, "a11.test" },
		{ NULL, 0, NULL },
	};

	ck_assert_int_eq(spf_run(zone, "192.0.2.1", "ten.test", "a@x", NULL, 0), SPF_RESULT_PASS);
	ck_assert_int_eq(spf_run(zone, "192.0.2.1", "eleven.test", "a@x", NULL, 0),
			 SPF_RESULT_PERMERROR);
	ck_assert_int_eq(spf_run(zone, "192.0.2.1", "loop.test", "a@x", NULL, 0),
			 SPF_RESULT_PERMERROR);
	ck_assert_int_eq(spf_run(zone, "192.0.2.1", "void2.test", "a@x", NULL, 0),
			 SPF_RESULT_PASS);
	ck_assert_int_eq(spf_run(zone, "192.0.2.1", "void3.test", "a@x", NULL, 0),
			 SPF_RESULT_PERMERROR);
	ck_assert_int_eq(spf_run(zone, "2001:db8::1", "mx3.test", "a@x", NULL, 0),
			 SPF_RESULT_PASS);
	ck_assert_int_eq(spf_run(zone, "192.0.2.9", "mx3.test", "a@x", NULL, 0),
			 SPF_RESULT_PASS);
	/* more than 10 MX names (§4.6.4) */
	ck_assert_int_eq(spf_run(zone, "192.0.2.9", "mx11.test", "a@x", NULL, 0),
			 SPF_RESULT_PERMERROR);
}
END_TEST

/* ---- DMARC ---------------------------------------------------------------------- */

static struct dmarc_psl *psl_fixture(void)
{
	char path[] = "/tmp/check_inbound_pslXXXXXX";
	int fd = mkstemp(path);
	static const char list[] = "// comment\n\ncom\norg\nuk\nco.uk\n*.ck\n!www.ck\n"
		"example.test\n";
	struct dmarc_psl *psl;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, list, sizeof(list) - 1), (ssize_t)sizeof(list) - 1);
	close(fd);
	psl = dmarc_psl_load(path);
	unlink(path);
	ck_assert_ptr_nonnull(psl);
	return psl;
}

START_TEST(test_inbound_dmarc_org_domain)
{
	static const struct { const char *in, *want; } cases[] = {
		{ "example.com", "example.com" },
		{ "mail.example.com", "example.com" },
		{ "a.b.example.co.uk", "example.co.uk" },
		{ "example.co.uk", "example.co.uk" },
		{ "x.y.foo.ck", "y.foo.ck" },       /* *.ck: foo.ck is a suffix */
		{ "a.www.ck", "www.ck" },           /* !www.ck */
		{ "Mail.EXAMPLE.org.", "example.org" },
		{ "a.b.unlisted", "b.unlisted" },   /* the implicit "*" */
		{ "com", "com" },
	};
	struct dmarc_psl *psl = psl_fixture();
	char out[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dmarc_org_domain(psl, cases[i].in, out, sizeof(out));
		ck_assert_msg(strcmp(out, cases[i].want) == 0, "%s: %s", cases[i].in, out);
	}
	/* without the list: the last two labels */
	dmarc_org_domain(NULL, "a.b.example.co.uk", out, sizeof(out));
	ck_assert_str_eq(out, "co.uk");
	dmarc_psl_free(psl);
	/* the real list, when installed */
	psl = dmarc_psl_load(DMARC_PSL_PATH);
	if (psl != NULL) {
		dmarc_org_domain(psl, "www.bbc.co.uk", out, sizeof(out));
		ck_assert_str_eq(out, "bbc.co.uk");
		dmarc_psl_free(psl);
	}
}
END_TEST

START_TEST(test_inbound_dmarc_policy)
{
	const struct fake_rr zone[] = {
		{ "_dmarc.rej.com", SMTP_DNS_TXT, "v=DMARC1; p=reject; sp=quarantine; pct=100" },
		{ "_dmarc.q.com", SMTP_DNS_TXT, "v=DMARC1; p=quarantine; pct=50" },
		{ "_dmarc.strict.com", SMTP_DNS_TXT, "v=DMARC1; p=reject; adkim=s; aspf=s" },
		{ "_dmarc.bad.com", SMTP_DNS_TXT, "v=DMARC1; p=maybe" },
		{ "_dmarc.temp.com", SMTP_DNS_TXT, NULL },
		{ NULL, 0, NULL },
	};
	struct smtp_dns dns = fake_dns(zone);
	struct dmarc_psl *psl = psl_fixture();
	struct dkim_sig_result sig = { .result = DKIM_RESULT_PASS, .domain = "mail.rej.com" };
	struct dmarc_input in = { .from_domain = "rej.com", .spf = SPF_RESULT_FAIL,
				  .spf_domain = "rej.com" };
	struct dmarc_outcome out;

	dmarc_check(&dns, psl, &in, 0, &out);
	ck_assert_int_eq(out.result, DMARC_RESULT_FAIL);
	ck_assert_int_eq(out.disposition, DMARC_POLICY_REJECT);
	/* relaxed DKIM alignment: mail.rej.com signs for rej.com */
	in.dkim = &sig;
	in.n_dkim = 1;
	dmarc_check(&dns, psl, &in, 0, &out);
	ck_assert_int_eq(out.result, DMARC_RESULT_PASS);
	/* l= with unsigned content, or a test key, does not count */
	sig.partial = true;
	dmarc_check(&dns, psl, &in, 0, &out);
	ck_assert_int_eq(out.result, DMARC_RESULT_FAIL);
	sig.partial = false;
	sig.testing = true;
	dmarc_check(&dns, psl, &in, 0, &out);
	ck_assert_int_eq(out.result, DMARC_RESULT_FAIL);
	sig.testing = false;
	/* relaxed SPF alignment */
	in.n_dkim = 0;
	in.spf = SPF_RESULT_PASS;
	in.spf_domain = "bounce.rej.com";
	dmarc_check(&dns, psl, &in, 0, &out);
	ck_assert_int_eq(out.result, DMARC_RESULT_PASS);
	/* sp= for a subdomain found through the organisational record */
	in.from_domain = "sub.rej.com";
	in.spf = SPF_RESULT_FAIL;
	dmarc_check(&dns, psl, &in, 0, &out);
	ck_assert_int_eq(out.result, DMARC_RESULT_FAIL);
	ck_assert_int_eq(out.policy, DMARC_POLICY_QUARANTINE);
	/* strict alignment */
	in.from_domain = "strict.com";
	in.spf = SPF_RESULT_PASS;
	in.spf_domain = "bounce.strict.com";
	dmarc_check(&dns, psl, &in, 0, &out);
	ck_assert_int_eq(out.result, DMARC_RESULT_FAIL);
	in.spf_domain = "strict.com";
	dmarc_check(&dns, psl, &in, 0, &out);
	ck_assert_int_eq(out.result, DMARC_RESULT_PASS);
	/* pct=50: sampled in or the next milder policy */
	in.from_domain = "q.com";
	in.spf = SPF_RESULT_NONE;
	dmarc_check(&dns, psl, &in, 10, &out);
	ck_assert_int_eq(out.disposition, DMARC_POLICY_QUARANTINE);
	dmarc_check(&dns, psl, &in, 60, &out);
	ck_assert_int_eq(out.disposition, DMARC_POLICY_NONE);
	/* none, permerror, temperror */
	in.from_domain = "nopolicy.com";
	dmarc_check(&dns, psl, &in, 0, &out);
	ck_assert_int_eq(out.result, DMARC_RESULT_NONE);
	in.from_domain = "bad.com";
	dmarc_check(&dns, psl, &in, 0, &out);
	ck_assert_int_eq(out.result, DMARC_RESULT_PERMERROR);
	in.from_domain = "temp.com";
	dmarc_check(&dns, psl, &in, 0, &out);
	ck_assert_int_eq(out.result, DMARC_RESULT_TEMPERROR);
	dmarc_psl_free(psl);
}
END_TEST

/* ---- Authentication-Results ---------------------------------------------------- */

START_TEST(test_inbound_authres_strip)
{
	static const char in[] =
		"Authentication-Results: mail.example.test; dkim=pass\r\n"
		"Subject: x\r\n"
		"Authentication-Results: other.example; spf=pass\r\n"
		"Authentication-Results: (comment) MAIL.example.test 1;\r\n"
		"\tdmarc=pass\r\n"
		"Authentication-Results: mail.example.test.evil; spf=pass\r\n"
		"From: a@b.example\r\n"
		"\r\nbody\r\n";
	static const char want[] =
		"Subject: x\r\n"
		"Authentication-Results: other.example; spf=pass\r\n"
		"Authentication-Results: mail.example.test.evil; spf=pass\r\n"
		"From: a@b.example\r\n"
		"\r\nbody\r\n";
	struct buf b;
	size_t hlen = strstr(in, "\r\n\r\n") + 2 - in;

	buf_init(&b, 0);
	ck_assert_int_eq(buf_append(&b, in, sizeof(in) - 1), 0);
	ck_assert_uint_eq(authres_strip(&b, &hlen, "mail.example.test"), 2);
	ck_assert_uint_eq(b.len, sizeof(want) - 1);
	ck_assert(memcmp(b.data, want, b.len) == 0);
	ck_assert_uint_eq(hlen, (size_t)(strstr(want, "\r\n\r\n") + 2 - want));
	buf_free(&b);
}
END_TEST

START_TEST(test_inbound_authres_build)
{
	struct dkim_sig_result sig = { .result = DKIM_RESULT_PASS, .domain = "example.com",
				       .selector = "sel", .b_prefix = "AbCd+/12",
				       .alg = "rsa-sha256", .partial = true,
				       .unsigned_octets = 17 };
	struct dmarc_outcome dm = { .result = DMARC_RESULT_FAIL, .policy = DMARC_POLICY_REJECT };
	struct authres_input in = { .authserv_id = "mail.example.test", .dkim = &sig,
				    .n_dkim = 1, .spf_mailfrom = SPF_RESULT_FAIL,
				    .mailfrom = "a@example.com", .spf_helo = SPF_RESULT_NONE,
				    .helo = "mx.example.com", .spf_exp = "not (ours)",
				    .dmarc = &dm, .from_domain = "example.com" };
	struct buf b;

	buf_init(&b, 0);
	ck_assert_int_eq(authres_build(&in, &b), 0);
	ck_assert_int_eq(buf_cstr(&b), 0);
	ck_assert_str_eq(b.data,
		"Authentication-Results: mail.example.test;\r\n"
		"\tdkim=pass (l= left 17 body octets unsigned)\r\n"
		"\theader.d=example.com header.s=sel header.a=rsa-sha256 header.b=AbCd+/12;\r\n"
		"\tspf=fail (not ours) smtp.mailfrom=a@example.com;\r\n"
		"\tspf=none smtp.helo=mx.example.com;\r\n"
		"\tdmarc=fail (p=reject) header.from=example.com\r\n");
	buf_free(&b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("inbound");
	TCase *tc = tcase_create("inbound");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_inbound_spf_rfc7208_a1);
	tcase_add_test(tc, test_inbound_spf_macros);
	tcase_add_test(tc, test_inbound_spf_a4_multiple_requirements);
	tcase_add_test(tc, test_inbound_spf_include_redirect_exp);
	tcase_add_test(tc, test_inbound_spf_limits);
	tcase_add_test(tc, test_inbound_dmarc_org_domain);
	tcase_add_test(tc, test_inbound_dmarc_policy);
	tcase_add_test(tc, test_inbound_authres_strip);
	tcase_add_test(tc, test_inbound_authres_build);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
