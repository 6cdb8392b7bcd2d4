/* DMARC (RFC 7489): the policy record, identifier alignment, and the
 * Public Suffix List that gives organisational domains.
 *
 * The policy is looked up at _dmarc.FROM-DOMAIN, then at
 * _dmarc.ORGANISATIONAL-DOMAIN (§6.6.3).  DMARC passes when SPF passed for
 * an aligned MAIL FROM (or HELO for <>) domain, or a DKIM signature passed
 * for an aligned d= (§4.2; relaxed: same organisational domain, strict:
 * the same name, per aspf= / adkim=).  DKIM passes that leave body content
 * unsigned (l=) or come from a key in test mode (t=y) do not count.  On a
 * fail, p= (or sp= for a subdomain found through the organisational
 * record) applies to pct= percent of the messages, the rest get the next
 * milder policy (§6.6.4).  No aggregate or failure reports are sent
 * (rua=, ruf= are read over).
 *
 * PSL: public_suffix_list.dat of Debian's publicsuffix package, read once
 * at start-up into a sorted array of rules (normal, "*." wildcard, "!"
 * exception); the longest matching rule wins, exceptions first, and the
 * implicit rule "*" makes the last label a public suffix.
 */
#include "smtp_inbound.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DMARC_PSL_RULES_MAX 100000     /* the list has ~10,000 */
#define DMARC_DOMAIN_MAX 253           /* RFC 1035 §2.3.4 */

struct dmarc_psl {
	char *data;                    /* the file, rules cut in place */
	const char **rules;            /* sorted */
	size_t n;
};

const char *dmarc_result_name(enum dmarc_result r)
{
	static const char *const names[] = {
		[DMARC_RESULT_NONE] = "none", [DMARC_RESULT_PASS] = "pass",
		[DMARC_RESULT_FAIL] = "fail", [DMARC_RESULT_TEMPERROR] = "temperror",
		[DMARC_RESULT_PERMERROR] = "permerror",
	};
	return names[r];
}

const char *dmarc_policy_name(enum dmarc_policy p)
{
	static const char *const names[] = {
		[DMARC_POLICY_NONE] = "none", [DMARC_POLICY_QUARANTINE] = "quarantine",
		[DMARC_POLICY_REJECT] = "reject",
	};
	return names[p];
}

/* ---- the Public Suffix List ---------------------------------------------------- */

static int dmarc_rule_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

struct dmarc_psl *dmarc_psl_load(const char *path)
{
	struct dmarc_psl *psl = calloc(1, sizeof(*psl));
	size_t len, cap = 0;

	if (psl == NULL)
		return NULL;
	if (read_small_file(path, DMARC_PSL_FILE_MAX, &psl->data, &len) < 0) {
		free(psl);
		return NULL;
	}
	for (char *line = psl->data, *next; line != NULL && *line != '\0'; line = next) {
		char *end;
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		end = line + strcspn(line, " \t\r");
		*end = '\0';
		if (*line == '\0' || strncmp(line, "//", 2) == 0)
			continue;
		if (psl->n == cap) {
			const char **r;
			if (cap >= DMARC_PSL_RULES_MAX)
				break;
			cap = cap ? cap * 2 : 1024;
			r = realloc(psl->rules, cap * sizeof(*r));
			if (r == NULL) {
				dmarc_psl_free(psl);
				return NULL;
			}
			psl->rules = r;
		}
		str_lower(line);
		psl->rules[psl->n++] = line;
	}
	qsort(psl->rules, psl->n, sizeof(*psl->rules), dmarc_rule_cmp);
	return psl;
}

void dmarc_psl_free(struct dmarc_psl *psl)
{
	if (psl == NULL)
		return;
	free(psl->rules);
	free(psl->data);
	free(psl);
}

static bool dmarc_psl_has(const struct dmarc_psl *psl, const char *prefix, const char *name)
{
	char key[DMARC_DOMAIN_MAX + 4];
	const char *k = key;

	snprintf(key, sizeof(key), "%s%s", prefix, name);
	return bsearch(&k, psl->rules, psl->n, sizeof(*psl->rules), dmarc_rule_cmp) != NULL;
}

/* The public suffix of d (a pointer into d). */
static const char *dmarc_public_suffix(const struct dmarc_psl *psl, const char *d)
{
	const char *last = strrchr(d, '.');

	for (const char *c = d; c != NULL; c = strchr(c, '.') ? strchr(c, '.') + 1 : NULL) {
		const char *parent = strchr(c, '.');
		if (dmarc_psl_has(psl, "!", c))
			return parent != NULL ? parent + 1 : c;
		if (dmarc_psl_has(psl, "", c) ||
		    (parent != NULL && dmarc_psl_has(psl, "*.", parent + 1)))
			return c;
	}
	return last != NULL ? last + 1 : d; /* the implicit "*" rule */
}

void dmarc_org_domain(const struct dmarc_psl *psl, const char *domain, char *out, size_t outlen)
{
	char d[DMARC_DOMAIN_MAX + 2];
	const char *suffix, *org;
	size_t len;

	str_copy(d, domain, sizeof(d));
	str_lower(d);
	len = strlen(d);
	if (len > 0 && d[len - 1] == '.')
		d[len - 1] = '\0';
	if (psl != NULL) {
		suffix = dmarc_public_suffix(psl, d);
	} else {
		/* no list: the last two labels (logged at start-up) */
		suffix = strrchr(d, '.');
		suffix = suffix != NULL ? suffix + 1 : d;
	}
	org = suffix;
	if (suffix > d) {
		/* one label more than the public suffix (§3.2) */
		org = suffix - 1;
		while (org > d && org[-1] != '.')
			org--;
	}
	str_copy(out, org, outlen);
}

/* ---- the policy record (§6.3) ------------------------------------------------- */

struct dmarc_record {
	enum dmarc_policy p, sp;
	bool has_sp;
	unsigned pct;
	bool strict_dkim, strict_spf;
};

static int dmarc_policy_parse(const char *v, enum dmarc_policy *p)
{
	if (strcasecmp(v, "none") == 0)
		*p = DMARC_POLICY_NONE;
	else if (strcasecmp(v, "quarantine") == 0)
		*p = DMARC_POLICY_QUARANTINE;
	else if (strcasecmp(v, "reject") == 0)
		*p = DMARC_POLICY_REJECT;
	else
		return -1;
	return 0;
}

static char *dmarc_trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	return s;
}

/* 0, or -1 when the record is unusable (no valid p=). */
static int dmarc_record_parse(char *rec, struct dmarc_record *r)
{
	bool has_p = false, first = true;
	char *save = NULL;

	memset(r, 0, sizeof(*r));
	r->pct = 100;
	for (char *t = strtok_r(rec, ";", &save); t != NULL; t = strtok_r(NULL, ";", &save)) {
		char *eq = strchr(t, '='), *name, *val;
		uint64_t n;
		if (eq == NULL) {
			if (*dmarc_trim(t) != '\0')
				return -1;
			continue;
		}
		*eq = '\0';
		name = dmarc_trim(t);
		val = dmarc_trim(eq + 1);
		if (first && (strcmp(name, "v") != 0 || strcmp(val, "DMARC1") != 0))
			return -1; /* §6.4: v=DMARC1 first */
		first = false;
		if (strcmp(name, "p") == 0) {
			if (dmarc_policy_parse(val, &r->p) < 0)
				return -1;
			has_p = true;
		} else if (strcmp(name, "sp") == 0) {
			r->has_sp = dmarc_policy_parse(val, &r->sp) == 0;
		} else if (strcmp(name, "pct") == 0) {
			if (str_to_u64(val, 0, 100, &n) == 0)
				r->pct = (unsigned)n;
		} else if (strcmp(name, "adkim") == 0) {
			r->strict_dkim = strcasecmp(val, "s") == 0;
		} else if (strcmp(name, "aspf") == 0) {
			r->strict_spf = strcasecmp(val, "s") == 0;
		}
	}
	return has_p ? 0 : -1;
}

/* The record at _dmarc.domain: 1 found (rec_r malloc'ed), 0 none, -1 DNS
 * failure. */
static int dmarc_fetch(struct smtp_dns *dns, const char *domain, char **rec_r)
{
	char name[DMARC_DOMAIN_MAX + 16];
	struct smtp_dns_answer a;
	enum smtp_dns_status st;
	size_t found = 0;

	*rec_r = NULL;
	snprintf(name, sizeof(name), "_dmarc.%s", domain);
	st = smtp_dns_query(dns, name, SMTP_DNS_TXT, &a);
	if (st == SMTP_DNS_FAIL)
		return -1;
	if (st != SMTP_DNS_OK)
		return 0;
	for (size_t i = 0; i < a.n; i++) {
		if (strncmp(a.rr[i], "v=DMARC1", 8) != 0)
			continue;
		if (found++ == 0)
			*rec_r = strdup(a.rr[i]);
	}
	smtp_dns_answer_free(&a);
	if (found != 1) {
		/* §6.6.3: more than one record is no policy */
		free(*rec_r);
		*rec_r = NULL;
		return 0;
	}
	return *rec_r != NULL ? 1 : -1;
}

/* ---- evaluation (§6.6) ------------------------------------------------------ */

static bool dmarc_aligned(const struct dmarc_psl *psl, const char *from, const char *id,
			  bool strict)
{
	char a[DMARC_DOMAIN_MAX + 2], b[DMARC_DOMAIN_MAX + 2];

	if (id == NULL || *id == '\0')
		return false;
	if (strcasecmp(from, id) == 0)
		return true;
	if (strict)
		return false;
	dmarc_org_domain(psl, from, a, sizeof(a));
	dmarc_org_domain(psl, id, b, sizeof(b));
	return strcmp(a, b) == 0;
}

static enum dmarc_policy dmarc_milder(enum dmarc_policy p)
{
	return p == DMARC_POLICY_REJECT ? DMARC_POLICY_QUARANTINE : DMARC_POLICY_NONE;
}

void dmarc_check(struct smtp_dns *dns, const struct dmarc_psl *psl,
		 const struct dmarc_input *in, unsigned rnd, struct dmarc_outcome *out)
{
	char org[DMARC_DOMAIN_MAX + 2], *rec = NULL;
	struct dmarc_record r;
	bool at_org = false, pass = false;
	int found;

	memset(out, 0, sizeof(*out));
	if (in->from_domain == NULL || in->from_domain[0] == '\0') {
		str_copy(out->reason, "no single From: domain", sizeof(out->reason));
		return;
	}
	found = dmarc_fetch(dns, in->from_domain, &rec);
	if (found == 0) {
		dmarc_org_domain(psl, in->from_domain, org, sizeof(org));
		if (strcasecmp(org, in->from_domain) != 0) {
			found = dmarc_fetch(dns, org, &rec);
			at_org = true;
		}
	}
	if (found < 0) {
		out->result = DMARC_RESULT_TEMPERROR;
		str_copy(out->reason, "policy look-up failed", sizeof(out->reason));
		return;
	}
	if (found == 0) {
		str_copy(out->reason, "no policy published", sizeof(out->reason));
		return;
	}
	if (dmarc_record_parse(rec, &r) < 0) {
		free(rec);
		out->result = DMARC_RESULT_PERMERROR;
		str_copy(out->reason, "unusable policy record", sizeof(out->reason));
		return;
	}
	free(rec);
	out->policy = at_org && r.has_sp ? r.sp : r.p;
	if (in->spf == SPF_RESULT_PASS &&
	    dmarc_aligned(psl, in->from_domain, in->spf_domain, r.strict_spf)) {
		pass = true;
		str_copy(out->reason, "aligned SPF", sizeof(out->reason));
	}
	for (size_t i = 0; i < in->n_dkim && !pass; i++) {
		const struct dkim_sig_result *d = &in->dkim[i];
		if (d->result == DKIM_RESULT_PASS && !d->partial && !d->testing &&
		    dmarc_aligned(psl, in->from_domain, d->domain, r.strict_dkim)) {
			pass = true;
			str_copy(out->reason, "aligned DKIM", sizeof(out->reason));
		}
	}
	out->result = pass ? DMARC_RESULT_PASS : DMARC_RESULT_FAIL;
	out->disposition = DMARC_POLICY_NONE;
	if (!pass) {
		out->disposition = rnd % 100 < r.pct ? out->policy : dmarc_milder(out->policy);
		if (out->disposition != out->policy)
			str_copy(out->reason, "not sampled by pct=", sizeof(out->reason));
	}
}
