/* DKIM verification (RFC 6376 §6, RFC 8463 ed25519-sha256, RFC 8301:
 * rsa-sha1 and RSA keys under 1024 bits are refused).
 *
 * The message arrives in chunks as the signer's does: the header block is
 * kept (at most DKIM_HEADER_BLOCK_MAX), and when the empty line is found
 * every DKIM-Signature field is parsed and gets its own streaming body
 * hash (smtp_dkim_canon.c, with its c= body canonicalisation and l=).  At
 * the end each signature's key record is looked up (SEL._domainkey.DOMAIN
 * TXT, §3.6.2), the body hash compared, the signed header fields hashed
 * bottom-up with the signature field itself last, its b= value emptied
 * (§3.7), and the signature checked with EVP_DigestVerify.
 *
 * Memory: the verifier owns the header block and one small struct per
 * signature; everything is freed by dkim_verifier_free().
 */
#include "dkim.h"
#include "smtp_dkim_private.h"
#include "smtp_dns.h"

#include "base64.h"

#include <ctype.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct dkim_tag {
	const char *name;
	const char *value;
};

struct dkim_vsig {
	size_t field;                 /* index into the split header fields */
	enum dkim_alg alg;
	enum dkim_canon hcanon, bcanon;
	int64_t limit;                /* l=, -1 when absent */
	time_t expires;               /* x=, 0 when absent */
	char *copy;                   /* the field value, cut into tags */
	const char *b, *bh, *h, *i;
	bool body_ok;                 /* the body hash was set up */
	struct dkim_body_hash hash;
	struct dkim_sig_result res;
};

struct dkim_verifier {
	struct buf hdr;
	size_t header_len;
	bool in_body, failed;
	struct dkim_field *fields;
	size_t n_fields;
	struct dkim_vsig sigs[DKIM_VERIFY_SIGS_MAX];
	size_t n_sigs;
};

const char *dkim_result_name(enum dkim_result r)
{
	static const char *const names[] = {
		[DKIM_RESULT_PASS] = "pass", [DKIM_RESULT_FAIL] = "fail",
		[DKIM_RESULT_NEUTRAL] = "neutral", [DKIM_RESULT_POLICY] = "policy",
		[DKIM_RESULT_TEMPERROR] = "temperror", [DKIM_RESULT_PERMERROR] = "permerror",
	};
	return names[r];
}

static void dkim_vsig_set(struct dkim_vsig *g, enum dkim_result r, const char *why)
{
	g->res.result = r;
	str_copy(g->res.reason, why, sizeof(g->res.reason));
}

/* ---- tag lists (RFC 6376 §3.2) ------------------------------------------- */

static bool dkim_fws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static char *dkim_trim(char *s, char *end)
{
	while (s < end && dkim_fws(*s))
		s++;
	while (end > s && dkim_fws(end[-1]))
		end--;
	*end = '\0';
	return s;
}

/* Cut s into tags in place.  0, or -1: syntax, a duplicate tag (§3.2), or
 * more than max. */
static int dkim_tags_parse(char *s, struct dkim_tag *tags, size_t max, size_t *n_r)
{
	size_t n = 0;

	while (*s != '\0') {
		char *semi = strchr(s, ';'), *end = semi != NULL ? semi : s + strlen(s);
		char *eq = memchr(s, '=', (size_t)(end - s)), *next = semi != NULL ? semi + 1 : end;
		const char *name;
		if (eq == NULL) {
			/* only an empty segment (a trailing ';') is allowed */
			if (*dkim_trim(s, end) != '\0')
				return -1;
			s = next;
			continue;
		}
		name = dkim_trim(s, eq);
		if (*name == '\0' || n == max)
			return -1;
		for (const char *p = name; *p != '\0'; p++)
			if (!isalnum((unsigned char)*p) && *p != '_')
				return -1;
		for (size_t k = 0; k < n; k++)
			if (strcmp(tags[k].name, name) == 0)
				return -1;
		tags[n].name = name;
		tags[n].value = dkim_trim(eq + 1, end);
		n++;
		s = next;
	}
	*n_r = n;
	return 0;
}

static const char *dkim_tag(const struct dkim_tag *tags, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(tags[i].name, name) == 0)
			return tags[i].value;
	return NULL;
}

/* base64 with FWS inside (§3.5 b=, bh=, §3.6.1 p=) into out (malloc'ed). */
static long dkim_b64(const char *in, unsigned char **out_r)
{
	size_t len = strlen(in), o = 0;
	char *clean = malloc(len + 1);
	long n;

	*out_r = NULL;
	if (clean == NULL)
		return -1;
	for (size_t i = 0; i < len; i++)
		if (!dkim_fws(in[i]))
			clean[o++] = in[i];
	*out_r = malloc(o / 4 * 3 + 3);
	n = *out_r != NULL ? base64_decode(clean, o, *out_r) : -1;
	free(clean);
	return n;
}

/* ---- the signature field ---------------------------------------------------- */

static int dkim_parse_canon(const char *c, struct dkim_vsig *g)
{
	char head[16] = "", body[16] = "simple";
	const char *slash = c != NULL ? strchr(c, '/') : NULL;

	g->hcanon = g->bcanon = DKIM_CANON_SIMPLE;
	if (c == NULL)
		return 0;
	if (slash != NULL) {
		if ((size_t)(slash - c) >= sizeof(head) || strlen(slash + 1) >= sizeof(body))
			return -1;
		memcpy(head, c, (size_t)(slash - c));
		str_copy(body, slash + 1, sizeof(body));
	} else if (str_copy(head, c, sizeof(head)) >= sizeof(head)) {
		return -1;
	}
	if (strcmp(head, "relaxed") == 0)
		g->hcanon = DKIM_CANON_RELAXED;
	else if (strcmp(head, "simple") != 0)
		return -1;
	if (strcmp(body, "relaxed") == 0)
		g->bcanon = DKIM_CANON_RELAXED;
	else if (strcmp(body, "simple") != 0)
		return -1;
	return 0;
}

/* i= must be d= or a subdomain of it (§3.5). */
static bool dkim_auid_ok(const char *i, const char *d, bool strict)
{
	const char *at = strrchr(i, '@');
	size_t il, dl = strlen(d);

	if (at == NULL)
		return false;
	at++;
	il = strlen(at);
	if (strcasecmp(at, d) == 0)
		return true;
	return !strict && il > dl && at[il - dl - 1] == '.' && strcasecmp(at + il - dl, d) == 0;
}

/* h= must sign From (§5.4); the other checks of §6.1.1. */
static int dkim_sig_check_tags(struct dkim_vsig *g, const struct dkim_tag *t, size_t n,
			       time_t now)
{
	const char *v = dkim_tag(t, n, "v"), *a = dkim_tag(t, n, "a"), *d = dkim_tag(t, n, "d");
	const char *s = dkim_tag(t, n, "s"), *l = dkim_tag(t, n, "l"), *x = dkim_tag(t, n, "x");
	const char *q = dkim_tag(t, n, "q"), *ts = dkim_tag(t, n, "t");
	uint64_t num;
	bool from = false;

	g->b = dkim_tag(t, n, "b");
	g->bh = dkim_tag(t, n, "bh");
	g->h = dkim_tag(t, n, "h");
	g->i = dkim_tag(t, n, "i");
	if (d != NULL)
		str_copy(g->res.domain, d, sizeof(g->res.domain));
	if (s != NULL)
		str_copy(g->res.selector, s, sizeof(g->res.selector));
	if (a != NULL)
		str_copy(g->res.alg, a, sizeof(g->res.alg));
	if (g->b != NULL) {
		size_t o = 0;
		for (const char *p = g->b; *p != '\0' && o < 8; p++)
			if (!dkim_fws(*p))
				g->res.b_prefix[o++] = *p;
	}
	if (v == NULL || strcmp(v, "1") != 0 || a == NULL || g->b == NULL || g->bh == NULL ||
	    d == NULL || g->h == NULL || s == NULL)
		return dkim_vsig_set(g, DKIM_RESULT_PERMERROR, "missing or bad required tag"), -1;
	if (strlen(d) > DKIM_DOMAIN_MAX || strlen(s) > DKIM_SELECTOR_MAX || *d == '\0')
		return dkim_vsig_set(g, DKIM_RESULT_PERMERROR, "bad d= or s="), -1;
	if (strcmp(a, "rsa-sha256") == 0)
		g->alg = DKIM_ALG_RSA_SHA256;
	else if (strcmp(a, "ed25519-sha256") == 0)
		g->alg = DKIM_ALG_ED25519_SHA256;
	else
		return dkim_vsig_set(g, DKIM_RESULT_PERMERROR, "unsupported algorithm"), -1;
	if (dkim_parse_canon(dkim_tag(t, n, "c"), g) < 0)
		return dkim_vsig_set(g, DKIM_RESULT_PERMERROR, "bad c="), -1;
	if (q != NULL && strstr(q, "dns/txt") == NULL)
		return dkim_vsig_set(g, DKIM_RESULT_PERMERROR, "unsupported q="), -1;
	g->limit = -1;
	if (l != NULL) {
		if (str_to_u64(l, 0, INT64_MAX, &num) < 0)
			return dkim_vsig_set(g, DKIM_RESULT_PERMERROR, "bad l="), -1;
		g->limit = (int64_t)num;
	}
	if (x != NULL) {
		if (str_to_u64(x, 0, INT64_MAX, &num) < 0)
			return dkim_vsig_set(g, DKIM_RESULT_PERMERROR, "bad x="), -1;
		if ((time_t)num < now)
			return dkim_vsig_set(g, DKIM_RESULT_PERMERROR, "signature expired"), -1;
		g->expires = (time_t)num;
	}
	if (ts != NULL && str_to_u64(ts, 0, INT64_MAX, &num) < 0)
		return dkim_vsig_set(g, DKIM_RESULT_PERMERROR, "bad t="), -1;
	if (g->i != NULL && !dkim_auid_ok(g->i, d, false))
		return dkim_vsig_set(g, DKIM_RESULT_PERMERROR, "i= not within d="), -1;
	for (const char *p = g->h; *p != '\0';) {
		const char *c = strchr(p, ':');
		size_t len = c != NULL ? (size_t)(c - p) : strlen(p);
		while (len > 0 && dkim_fws(*p)) {
			p++;
			len--;
		}
		while (len > 0 && dkim_fws(p[len - 1]))
			len--;
		if (len == 4 && strncasecmp(p, "from", 4) == 0)
			from = true;
		p = c != NULL ? c + 1 : p + strlen(p);
	}
	if (!from)
		return dkim_vsig_set(g, DKIM_RESULT_PERMERROR, "From not signed"), -1;
	return 0;
}

static void dkim_sig_setup(struct dkim_verifier *v, size_t field, time_t now)
{
	struct dkim_vsig *g = &v->sigs[v->n_sigs++];
	const struct dkim_field *f = &v->fields[field];
	const char *val = v->hdr.data + f->off + f->name_len;
	size_t vlen = f->len - f->name_len, n;
	struct dkim_tag tags[DKIM_VERIFY_TAGS_MAX];

	memset(g, 0, sizeof(*g));
	g->field = field;
	g->res.result = DKIM_RESULT_NEUTRAL;
	/* skip the WSP before ':' and the ':' itself */
	while (vlen > 0 && *val != ':') {
		val++;
		vlen--;
	}
	if (vlen == 0 || f->len > DKIM_SIG_FIELD_MAX) {
		dkim_vsig_set(g, DKIM_RESULT_PERMERROR, "unparsable signature field");
		return;
	}
	g->copy = strndup(val + 1, vlen - 1);
	if (g->copy == NULL) {
		dkim_vsig_set(g, DKIM_RESULT_TEMPERROR, "out of memory");
		return;
	}
	if (dkim_tags_parse(g->copy, tags, DKIM_VERIFY_TAGS_MAX, &n) < 0) {
		dkim_vsig_set(g, DKIM_RESULT_PERMERROR, "bad tag-list");
		return;
	}
	if (dkim_sig_check_tags(g, tags, n, now) < 0)
		return;
	if (dkim_body_hash_init(&g->hash, g->bcanon, g->limit) < 0) {
		dkim_vsig_set(g, DKIM_RESULT_TEMPERROR, "cannot set up SHA-256");
		return;
	}
	g->body_ok = true;
}

/* The header block is whole: find the signatures. */
static void dkim_verifier_header_done(struct dkim_verifier *v)
{
	v->fields = calloc(DKIM_HEADERS_MAX, sizeof(*v->fields));
	if (v->fields == NULL ||
	    dkim_header_split(v->hdr.data, v->header_len, v->fields, DKIM_HEADERS_MAX,
			      &v->n_fields) < 0) {
		v->failed = true;
		return;
	}
	for (size_t i = 0; i < v->n_fields && v->n_sigs < DKIM_VERIFY_SIGS_MAX; i++)
		if (dkim_field_is(v->hdr.data, &v->fields[i], "DKIM-Signature"))
			dkim_sig_setup(v, i, time(NULL));
}

struct dkim_verifier *dkim_verifier_new(void)
{
	struct dkim_verifier *v = calloc(1, sizeof(*v));

	if (v != NULL)
		buf_init(&v->hdr, DKIM_HEADER_BLOCK_MAX + 2 + 1);
	return v;
}

static void dkim_verifier_body(struct dkim_verifier *v, const char *p, size_t len)
{
	for (size_t i = 0; i < v->n_sigs; i++)
		if (v->sigs[i].body_ok)
			dkim_body_hash_update(&v->sigs[i].hash, p, len);
}

void dkim_verifier_update(struct dkim_verifier *v, const void *data, size_t len)
{
	const char *p = data;

	while (!v->in_body && !v->failed && len > 0) {
		size_t room = DKIM_HEADER_BLOCK_MAX + 2 - v->hdr.len;
		size_t take = len < room ? len : room, old = v->hdr.len, body;

		if (take == 0 || buf_append(&v->hdr, p, take) < 0) {
			v->failed = true;
			return;
		}
		p += take;
		len -= take;
		body = dkim_find_body(&v->hdr, old);
		if (body > 0) {
			v->header_len = body - 2;
			v->in_body = true;
			dkim_verifier_header_done(v);
			dkim_verifier_body(v, v->hdr.data + body, v->hdr.len - body);
			v->hdr.len = v->header_len;
		}
	}
	if (v->in_body && !v->failed && len > 0)
		dkim_verifier_body(v, p, len);
}

/* ---- keys ---------------------------------------------------------------- */

static EVP_PKEY *dkim_key_decode(struct dkim_vsig *g, const char *p, const char *k)
{
	unsigned char *der = NULL;
	long n = dkim_b64(p, &der);
	const unsigned char *q = der;
	EVP_PKEY *key = NULL;

	if (n <= 0) {
		free(der);
		dkim_vsig_set(g, DKIM_RESULT_PERMERROR, "bad p= in key record");
		return NULL;
	}
	if (g->alg == DKIM_ALG_ED25519_SHA256) {
		if (strcmp(k, "ed25519") == 0 && n == 32)
			key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, der, 32);
	} else if (strcmp(k, "rsa") == 0) {
		key = d2i_PUBKEY(NULL, &q, n);
		if (key == NULL) {
			q = der; /* some publish the bare RSAPublicKey */
			key = d2i_PublicKey(EVP_PKEY_RSA, NULL, &q, n);
		}
		if (key != NULL && (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA ||
				    EVP_PKEY_get_bits(key) < DKIM_RSA_BITS_MIN)) {
			EVP_PKEY_free(key);
			key = NULL;
		}
	}
	free(der);
	if (key == NULL)
		dkim_vsig_set(g, DKIM_RESULT_PERMERROR, "unusable key (type, size)");
	return key;
}

/* The key record of §3.6.1; NULL with the result set. */
static EVP_PKEY *dkim_key_parse(struct dkim_vsig *g, char *rec)
{
	struct dkim_tag t[DKIM_VERIFY_TAGS_MAX];
	const char *v, *h, *k, *p, *s, *flags;
	size_t n;

	if (dkim_tags_parse(rec, t, DKIM_VERIFY_TAGS_MAX, &n) < 0)
		return dkim_vsig_set(g, DKIM_RESULT_PERMERROR, "bad key record"), NULL;
	v = dkim_tag(t, n, "v");
	h = dkim_tag(t, n, "h");
	k = dkim_tag(t, n, "k");
	p = dkim_tag(t, n, "p");
	s = dkim_tag(t, n, "s");
	flags = dkim_tag(t, n, "t");
	if (v != NULL && strcmp(v, "DKIM1") != 0)
		return dkim_vsig_set(g, DKIM_RESULT_PERMERROR, "key record v= not DKIM1"), NULL;
	if (h != NULL && strstr(h, "sha256") == NULL)
		return dkim_vsig_set(g, DKIM_RESULT_PERMERROR, "key excludes sha256"), NULL;
	if (s != NULL && strchr(s, '*') == NULL && strstr(s, "email") == NULL)
		return dkim_vsig_set(g, DKIM_RESULT_PERMERROR, "key not for email"), NULL;
	if (p == NULL)
		return dkim_vsig_set(g, DKIM_RESULT_PERMERROR, "key record without p="), NULL;
	if (*p == '\0')
		return dkim_vsig_set(g, DKIM_RESULT_PERMERROR, "key revoked"), NULL;
	for (const char *f = flags; f != NULL && *f != '\0';) {
		const char *c = strchr(f, ':');
		size_t len = c != NULL ? (size_t)(c - f) : strlen(f);
		while (len > 0 && dkim_fws(*f)) {
			f++;
			len--;
		}
		while (len > 0 && dkim_fws(f[len - 1]))
			len--;
		if (len == 1 && *f == 'y')
			g->res.testing = true;
		if (len == 1 && *f == 's' && g->i != NULL &&
		    !dkim_auid_ok(g->i, g->res.domain, true))
			return dkim_vsig_set(g, DKIM_RESULT_PERMERROR,
					     "t=s key, i= is a subdomain"), NULL;
		f = c != NULL ? c + 1 : f + strlen(f);
	}
	return dkim_key_decode(g, p, k != NULL ? k : "rsa");
}

static EVP_PKEY *dkim_key_fetch(struct dkim_vsig *g, struct smtp_dns *dns)
{
	char name[DKIM_SELECTOR_MAX + DKIM_DOMAIN_MAX + 16];
	struct smtp_dns_answer a;
	EVP_PKEY *key = NULL;

	snprintf(name, sizeof(name), "%s._domainkey.%s", g->res.selector, g->res.domain);
	switch (smtp_dns_query(dns, name, SMTP_DNS_TXT, &a)) {
	case SMTP_DNS_OK:
		break;
	case SMTP_DNS_FAIL:
		dkim_vsig_set(g, DKIM_RESULT_TEMPERROR, "key look-up failed");
		return NULL;
	default:
		dkim_vsig_set(g, DKIM_RESULT_PERMERROR, "no key record");
		return NULL;
	}
	if (a.n == 0)
		dkim_vsig_set(g, DKIM_RESULT_PERMERROR, "no key record");
	else
		key = dkim_key_parse(g, a.rr[0]); /* §3.6.2.2: the first */
	smtp_dns_answer_free(&a);
	return key;
}

/* ---- header hash and signature ----------------------------------------------- */

/* The signature field with the value of b= removed (§3.7), canonical,
 * without its final CRLF. */
static int dkim_canon_self(const struct dkim_verifier *v, const struct dkim_vsig *g,
			   struct buf *out)
{
	const struct dkim_field *f = &v->fields[g->field];
	const char *h = v->hdr.data + f->off, *p = memchr(h, ':', f->len), *end = h + f->len;
	struct buf field;
	int rc;

	buf_init(&field, 0);
	if (p == NULL || buf_append(&field, h, (size_t)(p + 1 - h)) < 0)
		return -1;
	for (p++; p < end;) {
		const char *semi = memchr(p, ';', (size_t)(end - p)), *seg_end = semi ? semi : end;
		const char *eq = memchr(p, '=', (size_t)(seg_end - p)), *n = p;
		size_t keep = (size_t)(seg_end - p);
		while (n < seg_end && dkim_fws(*n))
			n++;
		if (eq != NULL) {
			const char *ne = eq;
			while (ne > n && dkim_fws(ne[-1]))
				ne--;
			if (ne - n == 1 && *n == 'b')
				keep = (size_t)(eq + 1 - p);
		}
		if (buf_append(&field, p, keep) < 0 || (semi && buf_putc(&field, ';') < 0)) {
			buf_free(&field);
			return -1;
		}
		p = semi ? semi + 1 : end;
	}
	rc = dkim_canon_header(g->hcanon, field.data, field.len, out);
	buf_free(&field);
	if (rc == 0 && out->len >= 2)
		out->len -= 2;
	return rc;
}

/* The fields h= names, bottom-up per name (§5.4.2), then the signature. */
static int dkim_header_data(const struct dkim_verifier *v, const struct dkim_vsig *g,
			    struct buf *out)
{
	char name[256];
	size_t used[DKIM_VERIFY_H_MAX] = { 0 }, n_names = 0;
	char names[DKIM_VERIFY_H_MAX][64];

	for (const char *p = g->h; *p != '\0';) {
		const char *c = strchr(p, ':'), *st = p;
		size_t len = c != NULL ? (size_t)(c - p) : strlen(p), k;
		p = c != NULL ? c + 1 : p + len;
		while (len > 0 && dkim_fws(*st)) {
			st++;
			len--;
		}
		while (len > 0 && dkim_fws(st[len - 1]))
			len--;
		if (len == 0 || len >= sizeof(names[0]))
			continue;
		memcpy(name, st, len);
		name[len] = '\0';
		/* count this name's listings so far */
		for (k = 0; k < n_names && strcasecmp(names[k], name) != 0; k++)
			;
		if (k == n_names) {
			if (n_names == DKIM_VERIFY_H_MAX)
				return -1;
			str_copy(names[n_names++], name, sizeof(names[0]));
		}
		size_t skip = used[k]++;
		for (size_t i = v->n_fields; i > 0; i--) {
			if (!dkim_field_is(v->hdr.data, &v->fields[i - 1], name))
				continue;
			if (skip-- > 0)
				continue;
			if (dkim_canon_header(g->hcanon, v->hdr.data + v->fields[i - 1].off,
					      v->fields[i - 1].len, out) < 0)
				return -1;
			break;
		}
	}
	return dkim_canon_self(v, g, out);
}

static bool dkim_sig_verify(EVP_PKEY *key, enum dkim_alg alg, const struct buf *data,
			    const unsigned char *sig, size_t siglen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char digest[DKIM_HASH_LEN];
	const unsigned char *in;
	const EVP_MD *md;
	size_t inlen;
	bool ok;

	if (ctx == NULL)
		return false;
	ok = dkim_alg_input(alg, data, digest, &in, &inlen, &md) == 0 &&
	     EVP_DigestVerifyInit(ctx, NULL, md, NULL, key) == 1 &&
	     EVP_DigestVerify(ctx, sig, siglen, in, inlen) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

/* Body hash against bh=; false with the result set. */
static bool dkim_body_check(struct dkim_vsig *g)
{
	unsigned char hash[DKIM_HASH_LEN], *want = NULL;
	long n;
	bool ok;

	if (dkim_body_hash_final(&g->hash, hash) < 0) {
		dkim_vsig_set(g, DKIM_RESULT_TEMPERROR, "SHA-256 failed");
		return false;
	}
	if (g->limit >= 0 && (uint64_t)g->limit > g->hash.canonical_len) {
		dkim_vsig_set(g, DKIM_RESULT_FAIL, "l= longer than the body");
		return false;
	}
	n = dkim_b64(g->bh, &want);
	ok = n == DKIM_HASH_LEN && memcmp(want, hash, DKIM_HASH_LEN) == 0;
	free(want);
	if (!ok)
		dkim_vsig_set(g, DKIM_RESULT_FAIL, "body hash did not verify");
	if (g->limit >= 0 && g->hash.canonical_len > (uint64_t)g->limit) {
		g->res.partial = true;
		g->res.unsigned_octets = g->hash.canonical_len - (uint64_t)g->limit;
	}
	return ok;
}

static void dkim_sig_finish(struct dkim_verifier *v, struct dkim_vsig *g, struct smtp_dns *dns)
{
	unsigned char *sig = NULL;
	struct buf data;
	EVP_PKEY *key;
	long siglen;

	if (!g->body_ok || !dkim_body_check(g))
		return;
	key = dkim_key_fetch(g, dns);
	if (key == NULL)
		return;
	buf_init(&data, 0);
	siglen = dkim_b64(g->b, &sig);
	if (siglen <= 0)
		dkim_vsig_set(g, DKIM_RESULT_PERMERROR, "bad b=");
	else if (dkim_header_data(v, g, &data) < 0)
		dkim_vsig_set(g, DKIM_RESULT_TEMPERROR, "out of memory");
	else if (!dkim_sig_verify(key, g->alg, &data, sig, (size_t)siglen))
		dkim_vsig_set(g, DKIM_RESULT_FAIL, "signature did not verify");
	else if (g->res.partial)
		dkim_vsig_set(g, DKIM_RESULT_PASS, "l= leaves content unsigned");
	else
		dkim_vsig_set(g, DKIM_RESULT_PASS, "");
	free(sig);
	buf_free(&data);
	EVP_PKEY_free(key);
}

size_t dkim_verifier_finish(struct dkim_verifier *v, struct smtp_dns *dns, time_t now,
			    struct dkim_sig_result *res, size_t max)
{
	size_t n = 0;

	if (!v->in_body && !v->failed) {
		/* a message that is all header: the body is empty */
		v->header_len = v->hdr.len;
		if (v->header_len >= 2 && memcmp(v->hdr.data + v->header_len - 2, "\r\n", 2) != 0)
			v->failed = true;
		else
			dkim_verifier_header_done(v);
		v->in_body = true;
	}
	if (v->failed)
		return 0;
	for (size_t i = 0; i < v->n_sigs && n < max; i++) {
		struct dkim_vsig *g = &v->sigs[i];
		if (g->body_ok && g->expires != 0 && g->expires < now)
			dkim_vsig_set(g, DKIM_RESULT_PERMERROR, "signature expired");
		else
			dkim_sig_finish(v, g, dns);
		res[n++] = v->sigs[i].res;
	}
	return n;
}

void dkim_verifier_free(struct dkim_verifier *v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < v->n_sigs; i++) {
		if (v->sigs[i].body_ok)
			dkim_body_hash_free(&v->sigs[i].hash);
		free(v->sigs[i].copy);
	}
	free(v->fields);
	buf_free(&v->hdr);
	free(v);
}
