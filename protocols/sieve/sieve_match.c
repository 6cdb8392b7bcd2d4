/* Comparators and match types (RFC 5228 §2.7): i;octet and
 * i;ascii-casemap (RFC 4790 §9.2, §9.3), :is, :contains and :matches with
 * the "*" / "?" wildcards and "\" quoting, and the match variables of
 * RFC 5229 §3.2 (${0} the whole value, ${1}.. each wildcard in order).
 *
 * :matches uses the two-pointer glob algorithm: wildcards take as little
 * as they can, and only the last "*" passed is widened on a mismatch,
 * which finds a match whenever one exists in O(value x key) steps; every
 * step is counted so one run stays under SIEVE_STEPS_MAX.  "?" takes one
 * UTF-8 character (RFC 5228 §2.7.1 speaks of characters).
 */
#include "sieve_private.h"

#include <stdlib.h>
#include <string.h>

static unsigned char sv_fold(unsigned char c, enum sv_comparator cmp)
{
	if (cmp == SV_CMP_CASEMAP && c >= 'A' && c <= 'Z')
		return (unsigned char)(c - 'A' + 'a');
	return c;
}

/* Octets of the UTF-8 character at p (1 for a stray byte). */
static size_t sv_utf8_len(const char *p, size_t left)
{
	unsigned char c = (unsigned char)*p;
	size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;

	if (n > left)
		return 1;
	for (size_t i = 1; i < n; i++)
		if (((unsigned char)p[i] & 0xc0) != 0x80)
			return 1;
	return n;
}

static bool sv_is_equal(const char *v, size_t vlen, const char *k, size_t klen,
			enum sv_comparator cmp)
{
	if (vlen != klen)
		return false;
	for (size_t i = 0; i < vlen; i++)
		if (sv_fold((unsigned char)v[i], cmp) != sv_fold((unsigned char)k[i], cmp))
			return false;
	return true;
}

static bool sv_contains(const char *v, size_t vlen, const char *k, size_t klen,
			enum sv_comparator cmp, uint64_t *steps)
{
	if (klen == 0)
		return true;
	for (size_t i = 0; i + klen <= vlen; i++) {
		*steps += klen;
		if (*steps > SIEVE_STEPS_MAX)
			return false;
		if (sv_is_equal(v + i, klen, k, klen, cmp))
			return true;
	}
	return false;
}

enum sv_glob_kind { SV_GLOB_LIT, SV_GLOB_ONE, SV_GLOB_STAR };

struct sv_glob_tok {
	unsigned char kind; /* enum sv_glob_kind */
	unsigned char c;    /* SV_GLOB_LIT */
	unsigned short wc;  /* wildcard number (ONE, STAR), from 1 */
};

/* The key as tokens; "\x" is the literal x.  NULL when out of memory. */
static struct sv_glob_tok *sv_glob_compile(const char *k, size_t klen, size_t *n_r)
{
	struct sv_glob_tok *t = malloc((klen + 1) * sizeof(*t));
	size_t n = 0;
	unsigned wc = 0;

	if (t == NULL)
		return NULL;
	for (size_t i = 0; i < klen; i++) {
		struct sv_glob_tok *g = &t[n++];
		g->wc = 0;
		if (k[i] == '\\' && i + 1 < klen) {
			g->kind = SV_GLOB_LIT;
			g->c = (unsigned char)k[++i];
		} else if (k[i] == '*' || k[i] == '?') {
			g->kind = k[i] == '*' ? SV_GLOB_STAR : SV_GLOB_ONE;
			g->wc = (unsigned short)(++wc < 0xffff ? wc : 0xffff);
		} else {
			g->kind = SV_GLOB_LIT;
			g->c = (unsigned char)k[i];
		}
	}
	*n_r = n;
	return t;
}

struct sv_span {
	size_t start, len;
};

static void sv_span_set(struct sv_span *spans, unsigned wc, size_t start, size_t len)
{
	if (spans != NULL && wc > 0 && wc < SIEVE_MATCH_VARS) {
		spans[wc].start = start;
		spans[wc].len = len;
	}
}

static bool sv_glob(const char *v, size_t vlen, const struct sv_glob_tok *t, size_t nt,
		    enum sv_comparator cmp, uint64_t *steps, struct sv_span *spans)
{
	size_t vi = 0, ti = 0, star_ti = 0, star_vi = 0;
	bool have_star = false;

	while (vi < vlen) {
		if (++*steps > SIEVE_STEPS_MAX)
			return false;
		if (ti < nt && t[ti].kind == SV_GLOB_STAR) {
			have_star = true;
			star_ti = ti++;
			star_vi = vi;
			sv_span_set(spans, t[star_ti].wc, vi, 0);
		} else if (ti < nt && t[ti].kind == SV_GLOB_ONE) {
			size_t n = sv_utf8_len(v + vi, vlen - vi);
			sv_span_set(spans, t[ti].wc, vi, n);
			vi += n;
			ti++;
		} else if (ti < nt && sv_fold((unsigned char)v[vi], cmp) == sv_fold(t[ti].c, cmp)) {
			vi++;
			ti++;
		} else if (have_star) {
			/* widen the last "*" by one character and retry after it */
			star_vi += sv_utf8_len(v + star_vi, vlen - star_vi);
			vi = star_vi;
			ti = star_ti + 1;
			if (spans != NULL && t[star_ti].wc > 0 && t[star_ti].wc < SIEVE_MATCH_VARS)
				spans[t[star_ti].wc].len = star_vi - spans[t[star_ti].wc].start;
		} else {
			return false;
		}
	}
	while (ti < nt && t[ti].kind == SV_GLOB_STAR) {
		sv_span_set(spans, t[ti].wc, vlen, 0);
		ti++;
	}
	return ti == nt;
}

static bool sv_matches(const char *v, size_t vlen, const char *k, size_t klen,
		       enum sv_comparator cmp, uint64_t *steps, char **caps)
{
	struct sv_span spans[SIEVE_MATCH_VARS] = { { 0, 0 } };
	struct sv_glob_tok *t;
	size_t nt;
	bool ok;

	t = sv_glob_compile(k, klen, &nt);
	if (t == NULL) {
		*steps = SIEVE_STEPS_MAX + 1; /* out of memory: a runtime error */
		return false;
	}
	ok = sv_glob(v, vlen, t, nt, cmp, steps, caps != NULL ? spans : NULL);
	free(t);
	if (!ok || caps == NULL)
		return ok;
	spans[0].start = 0;
	spans[0].len = vlen;
	for (size_t i = 0; i < SIEVE_MATCH_VARS; i++) {
		char *c = malloc(spans[i].len + 1);
		if (c == NULL) {
			*steps = SIEVE_STEPS_MAX + 1;
			return false;
		}
		memcpy(c, v + spans[i].start, spans[i].len);
		c[spans[i].len] = '\0';
		free(caps[i]);
		caps[i] = c;
	}
	return true;
}

bool sv_compare(enum sv_match match, enum sv_comparator cmp, const char *value, size_t vlen,
		const char *key, size_t klen, uint64_t *steps, char **caps)
{
	switch (match) {
	case SV_MATCH_IS:
		*steps += vlen < klen ? vlen : klen;
		return sv_is_equal(value, vlen, key, klen, cmp);
	case SV_MATCH_CONTAINS:
		return sv_contains(value, vlen, key, klen, cmp, steps);
	case SV_MATCH_MATCHES:
		return sv_matches(value, vlen, key, klen, cmp, steps, caps);
	}
	return false;
}

/* RFC 5229 §3: identifier, or a number (match variable) */
bool sv_valid_variable_name(const char *name, size_t len)
{
	if (len == 0 || len > SIEVE_IDENT_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
		bool digit = c >= '0' && c <= '9';
		if (!alpha && !(digit && i > 0))
			return false;
	}
	return true;
}
