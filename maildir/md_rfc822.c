/* A small lexer for RFC 5322 structured header values and MIME parameters
 * (RFC 2045 §5.1, RFC 2231), applied to one already unfolded header value.
 *
 * It is lenient the way deployed IMAP servers are: 8-bit octets count as
 * atom text (RFC 6532 allows UTF-8 there), whitespace around '.' in
 * dot-atoms is accepted (RFC 5322 §4.4 obs-local-part) and a parameter
 * list goes on after a broken parameter.  Results mirror Dovecot 2.3's
 * rfc822-parser, whose output our conformance corpus records.
 *
 * libetpan's mailmime_content_parse() would also do, but it decodes and
 * normalises differently (case, RFC 2231 merging), and BODYSTRUCTURE must
 * keep the parameters as the sender wrote them.
 */
#include "md_meta_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RFC 5322 §3.2.3 atext, plus 8-bit octets */
bool md_rfc822_is_atext(unsigned char c)
{
	if (c >= 0x80)
		return true;
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* RFC 2045 §5.1 token characters: atext without the tspecials '/', '='
 * and '?', plus '.' */
static bool md_rfc822_is_token(unsigned char c)
{
	return (md_rfc822_is_atext(c) && c != '/' && c != '=' && c != '?') ||
		c == '.';
}

void md_rfc822_init(struct md_rfc822 *r, const void *data, size_t len,
		    struct buf *last_comment)
{
	r->p = data != NULL ? data : (const void *)"";
	r->end = r->p + (data != NULL ? len : 0);
	r->last_comment = last_comment;
	r->oom = false;
}

static void md_rfc822_put(struct md_rfc822 *r, struct buf *out,
			  const unsigned char *p, size_t n)
{
	if (out != NULL && buf_append(out, p, n) < 0)
		r->oom = true;
}

static int md_rfc822_more(const struct md_rfc822 *r)
{
	return r->p < r->end ? 1 : 0;
}

/* RFC 5322 §3.2.2 comment, nested; the text of the last comment is kept
 * when asked (a display name may hide in it). */
static int md_rfc822_skip_comment(struct md_rfc822 *r)
{
	const unsigned char *start;
	int level = 1;

	if (r->last_comment != NULL)
		buf_reset(r->last_comment);
	start = ++r->p;
	for (; r->p < r->end; r->p++) {
		switch (*r->p) {
		case '(':
			level++;
			break;
		case ')':
			if (--level == 0) {
				md_rfc822_put(r, r->last_comment, start,
					      (size_t)(r->p - start));
				r->p++;
				return md_rfc822_more(r);
			}
			break;
		case '\\':
			md_rfc822_put(r, r->last_comment, start,
				      (size_t)(r->p - start));
			start = r->p + 1;
			r->p++;
			if (r->p >= r->end)
				return -1;
			break;
		default:
			break;
		}
	}
	return -1;
}

int md_rfc822_skip_lwsp(struct md_rfc822 *r)
{
	while (r->p < r->end) {
		if (*r->p == ' ' || *r->p == '\t' || *r->p == '\r' ||
		    *r->p == '\n') {
			r->p++;
			continue;
		}
		if (*r->p != '(')
			break;
		if (md_rfc822_skip_comment(r) < 0)
			return -1;
	}
	return md_rfc822_more(r);
}

int md_rfc822_atom(struct md_rfc822 *r, struct buf *out)
{
	const unsigned char *start;

	if (r->p >= r->end || !md_rfc822_is_atext(*r->p))
		return -1;
	for (start = r->p++; r->p < r->end; r->p++) {
		if (md_rfc822_is_atext(*r->p))
			continue;
		md_rfc822_put(r, out, start, (size_t)(r->p - start));
		return md_rfc822_skip_lwsp(r);
	}
	md_rfc822_put(r, out, start, (size_t)(r->p - start));
	return 0;
}

int md_rfc822_dot_atom(struct md_rfc822 *r, struct buf *out)
{
	const unsigned char *start;
	int ret;

	if (r->p >= r->end || !md_rfc822_is_atext(*r->p))
		return -1;
	for (start = r->p++; r->p < r->end;) {
		if (md_rfc822_is_atext(*r->p)) {
			r->p++;
			continue;
		}
		md_rfc822_put(r, out, start, (size_t)(r->p - start));
		if ((ret = md_rfc822_skip_lwsp(r)) <= 0)
			return ret;
		if (*r->p != '.')
			return 1;
		r->p++;
		md_rfc822_put(r, out, (const unsigned char *)".", 1);
		if ((ret = md_rfc822_skip_lwsp(r)) <= 0)
			return ret;
		start = r->p;
	}
	md_rfc822_put(r, out, start, (size_t)(r->p - start));
	return 0;
}

int md_rfc822_mime_token(struct md_rfc822 *r, struct buf *out)
{
	const unsigned char *start;

	for (start = r->p; r->p < r->end; r->p++) {
		if (md_rfc822_is_token(*r->p))
			continue;
		md_rfc822_put(r, out, start, (size_t)(r->p - start));
		return md_rfc822_skip_lwsp(r);
	}
	md_rfc822_put(r, out, start, (size_t)(r->p - start));
	return 0;
}

/* RFC 5322 §3.2.4; folding inside is removed, quoted-pairs unescaped */
int md_rfc822_quoted_string(struct md_rfc822 *r, struct buf *out)
{
	const unsigned char *start;
	size_t n;

	r->p++;
	for (start = r->p; r->p < r->end; r->p++) {
		switch (*r->p) {
		case '"':
			md_rfc822_put(r, out, start, (size_t)(r->p - start));
			r->p++;
			return md_rfc822_skip_lwsp(r);
		case '\n':
			n = (size_t)(r->p - start);
			if (n > 0 && start[n - 1] == '\r')
				n--;
			md_rfc822_put(r, out, start, n);
			start = r->p + 1;
			break;
		case '\\':
			r->p++;
			if (r->p >= r->end)
				return -1;
			md_rfc822_put(r, out, start, (size_t)(r->p - start - 1));
			start = r->p;
			break;
		default:
			break;
		}
	}
	return -1;
}

static int md_rfc822_atom_or_dot(struct md_rfc822 *r, struct buf *out)
{
	const unsigned char *start;

	for (start = r->p; r->p < r->end; r->p++) {
		if (md_rfc822_is_atext(*r->p) || *r->p == '.')
			continue;
		md_rfc822_put(r, out, start, (size_t)(r->p - start));
		return md_rfc822_skip_lwsp(r);
	}
	md_rfc822_put(r, out, start, (size_t)(r->p - start));
	return 0;
}

/* RFC 5322 §3.2.5 phrase and obs-phrase: words joined by one space */
int md_rfc822_phrase(struct md_rfc822 *r, struct buf *out)
{
	int ret;

	if (r->p >= r->end)
		return 0;
	if (*r->p == '.')
		return -1;
	for (;;) {
		if (*r->p == '"')
			ret = md_rfc822_quoted_string(r, out);
		else
			ret = md_rfc822_atom_or_dot(r, out);
		if (ret <= 0)
			return ret;
		if (!md_rfc822_is_atext(*r->p) && *r->p != '"' && *r->p != '.')
			break;
		md_rfc822_put(r, out, (const unsigned char *)" ", 1);
	}
	return md_rfc822_skip_lwsp(r);
}

static int md_rfc822_domain_literal(struct md_rfc822 *r, struct buf *out)
{
	const unsigned char *start;

	for (start = r->p; r->p < r->end; r->p++) {
		if (*r->p == '\\') {
			r->p++;
			if (r->p >= r->end)
				break;
		} else if (*r->p == ']') {
			r->p++;
			md_rfc822_put(r, out, start, (size_t)(r->p - start));
			return md_rfc822_skip_lwsp(r);
		}
	}
	return -1;
}

/* at '@': RFC 5322 §3.4.1 domain */
int md_rfc822_domain(struct md_rfc822 *r, struct buf *out)
{
	r->p++;
	if (md_rfc822_skip_lwsp(r) <= 0)
		return -1;
	if (*r->p == '[')
		return md_rfc822_domain_literal(r, out);
	return md_rfc822_dot_atom(r, out);
}

/* RFC 2045 §5.1 type "/" subtype.  A value that is not type/subtype
 * followed by ';' or the end gives -1 and nothing in out, except that a
 * lone type is kept (mail saying just "text" is read as text/...). */
int md_rfc822_content_type(struct md_rfc822 *r, struct buf *out)
{
	size_t start = out->len, sub;
	int ret;

	if (md_rfc822_skip_lwsp(r) <= 0)
		return -1;
	if (md_rfc822_mime_token(r, out) <= 0 || out->len == start)
		return -1;
	if (*r->p != '/') {
		out->len = start;
		return -1;
	}
	r->p++;
	if (md_rfc822_skip_lwsp(r) <= 0) {
		out->len = start;
		return -1;
	}
	md_rfc822_put(r, out, (const unsigned char *)"/", 1);
	sub = out->len;
	ret = md_rfc822_mime_token(r, out);
	if (ret < 0 || out->len == sub || (r->p < r->end && *r->p != ';')) {
		out->len = start;
		return -1;
	}
	return ret;
}

/* ------------------------------------------------------------------ */
/* Parameters */

void md_params_init(struct md_params *ps)
{
	ps->v = NULL;
	ps->n = ps->cap = 0;
	buf_init(&ps->pool, 0);
}

void md_params_free(struct md_params *ps)
{
	free(ps->v);
	buf_free(&ps->pool);
	ps->v = NULL;
	ps->n = ps->cap = 0;
}

const char *md_params_name(const struct md_params *ps, size_t i)
{
	return ps->pool.data + ps->v[i].name;
}

const char *md_params_value(const struct md_params *ps, size_t i)
{
	return ps->pool.data + ps->v[i].value;
}

static int md_params_str(struct md_params *ps, const char *s, size_t n,
			 size_t *off_r)
{
	*off_r = ps->pool.len;
	if (buf_append(&ps->pool, s, n) < 0 || buf_putc(&ps->pool, '\0') < 0)
		return -1;
	return 0;
}

static int md_params_add(struct md_params *ps, const char *name,
			 size_t name_len, const char *value, size_t value_len)
{
	struct md_param p;

	if (ps->n == ps->cap) {
		size_t cap = ps->cap == 0 ? 8 : ps->cap * 2;
		struct md_param *nv = realloc(ps->v, cap * sizeof(*nv));

		if (nv == NULL)
			return -1;
		ps->v = nv;
		ps->cap = cap;
	}
	if (md_params_str(ps, name, name_len, &p.name) < 0 ||
	    md_params_str(ps, value, value_len, &p.value) < 0)
		return -1;
	ps->v[ps->n++] = p;
	return 0;
}

/* ";" attribute "=" value; 1 with key and value, 0 at the end, -1 when
 * broken */
static int md_rfc822_param(struct md_rfc822 *r, struct buf *key,
			   struct buf *value)
{
	int ret;

	buf_reset(key);
	buf_reset(value);
	if (r->p >= r->end)
		return 0;
	if (*r->p != ';')
		return -1;
	r->p++;
	if (md_rfc822_skip_lwsp(r) <= 0)
		return -1;
	if (md_rfc822_mime_token(r, key) <= 0)
		return -1;
	if (*r->p != '=')
		return -1;
	r->p++;
	if ((ret = md_rfc822_skip_lwsp(r)) <= 0) {
		/* no value */
	} else if (*r->p == '"') {
		ret = md_rfc822_quoted_string(r, value);
	} else if (*r->p == '=') {
		/* name==?utf-8?b?...?= : RFC 2047 words where they are
		 * not allowed (RFC 2047 §5), common enough to keep */
		while (r->p < r->end && *r->p != ';' && *r->p != ' ' &&
		       *r->p != '\t' && *r->p != '\r' && *r->p != '\n') {
			md_rfc822_put(r, value, r->p, 1);
			r->p++;
		}
	} else {
		ret = md_rfc822_mime_token(r, value);
	}
	return ret < 0 ? -1 : 1;
}

struct md_rfc2231 {
	size_t key;       /* name without "*..." in the params pool */
	size_t key_len;
	size_t value;     /* offset of the value in the params pool */
	unsigned int idx; /* section number */
	bool extended;    /* value has charset'lang'%XX encoding */
	size_t order;
	const char *pool; /* for sorting */
};

static int md_rfc2231_cmp(const void *a, const void *b)
{
	const struct md_rfc2231 *x = a, *y = b;
	int c = strcmp(x->pool + x->key, y->pool + y->key);

	if (c != 0)
		return c;
	if (x->idx != y->idx)
		return x->idx < y->idx ? -1 : 1;
	return x->order < y->order ? -1 : (x->order > y->order ? 1 : 0);
}

/* RFC 2231 §3: name*0=, name*1= ... are merged into one parameter, name*
 * when any section is extended ("charset'lang'" stays in the value, as
 * BODYSTRUCTURE sends it; RFC 2231 §7 leaves decoding to the client).
 * Sections that are not numbered 0..n without gaps are kept apart. */
static int md_rfc2231_merge(struct md_params *ps, struct md_rfc2231 *v,
			    size_t n, struct buf *tmp)
{
	size_t i, j, next;

	for (i = 0; i < n; i++)
		v[i].pool = ps->pool.data;
	qsort(v, n, sizeof(*v), md_rfc2231_cmp);
	for (i = 0; i < n; i = next) {
		bool ok = true, have_ext = false;
		unsigned int next_idx = 0;

		for (j = i; j < n; j++) {
			if (v[j].key_len != v[i].key_len ||
			    strncasecmp(ps->pool.data + v[i].key,
					ps->pool.data + v[j].key,
					v[i].key_len) != 0)
				break;
			if (v[j].idx != next_idx)
				ok = false;
			if (v[j].extended)
				have_ext = true;
			next_idx++;
		}
		next = j;
		buf_reset(tmp);
		if (!ok) {
			for (j = i; j < next; j++) {
				const char *val = ps->pool.data + v[j].value;
				size_t klen;

				/* both copied out first: adding may move
				 * the pool */
				buf_reset(tmp);
				if (buf_append(tmp, ps->pool.data + v[j].key,
					       v[j].key_len) < 0 ||
				    buf_appendf(tmp, v[j].extended ? "*%u*" :
						"*%u", v[j].idx) < 0)
					return -1;
				klen = tmp->len;
				if (buf_append(tmp, val, strlen(val)) < 0)
					return -1;
				if (md_params_add(ps, tmp->data, klen,
						  tmp->data + klen,
						  tmp->len - klen) < 0)
					return -1;
			}
			continue;
		}
		buf_reset(tmp);
		if (!v[i].extended && have_ext && buf_append(tmp, "''", 2) < 0)
			return -1;
		for (j = i; j < next; j++) {
			const char *s = ps->pool.data + v[j].value;

			if (!v[j].extended && have_ext) {
				/* a plain section inside an encoded value */
				for (; *s != '\0'; s++) {
					if ((*s == '%' ?
					     buf_append(tmp, "%25", 3) :
					     buf_putc(tmp, *s)) < 0)
						return -1;
				}
			} else if (buf_append(tmp, s, strlen(s)) < 0) {
				return -1;
			}
		}
		{
			size_t vlen = tmp->len;
			size_t klen = v[i].key_len + (have_ext ? 1 : 0);
			char *key;
			int ret;

			key = malloc(klen + 1);
			if (key == NULL)
				return -1;
			memcpy(key, ps->pool.data + v[i].key, v[i].key_len);
			if (have_ext)
				key[v[i].key_len] = '*';
			key[klen] = '\0';
			ret = md_params_add(ps, key, klen, tmp->data, vlen);
			free(key);
			if (ret < 0)
				return -1;
		}
	}
	return 0;
}

int md_rfc822_params(struct md_rfc822 *r, struct md_params *ps)
{
	struct buf key, value, tmp;
	struct md_rfc2231 *v = NULL;
	size_t nv = 0, capv = 0;
	unsigned int idx = 0;
	int ret, result = 0;

	buf_init(&key, 0);
	buf_init(&value, 0);
	buf_init(&tmp, 0);
	while ((ret = md_rfc822_param(r, &key, &value)) != 0) {
		const char *k, *star, *p;
		bool extended;

		if (r->oom || buf_cstr(&key) < 0 || buf_cstr(&value) < 0) {
			result = -1;
			break;
		}
		if (ret < 0) {
			/* broken: skip one octet and look for the next ';' */
			if (r->p >= r->end)
				break;
			r->p++;
			continue;
		}
		k = key.data;
		star = strchr(k, '*');
		p = star;
		if (star != NULL) {
			/* the section number is kept from the previous
			 * section when this one has none, as Dovecot does */
			if (p[1] != '\0') {
				p++;
				idx = 0;
				for (; *p >= '0' && *p <= '9'; p++)
					idx = idx * 10 + (unsigned int)(*p - '0');
			}
			extended = *p == '*';
			if (extended)
				p++;
			if (*p != '\0')
				star = NULL;
		}
		if (star == NULL) {
			if (md_params_add(ps, key.data, key.len, value.data,
					  value.len) < 0) {
				result = -1;
				break;
			}
			continue;
		}
		if (nv == capv) {
			size_t cap = capv == 0 ? 8 : capv * 2;
			struct md_rfc2231 *n2 = realloc(v, cap * sizeof(*v));

			if (n2 == NULL) {
				result = -1;
				break;
			}
			v = n2;
			capv = cap;
		}
		/* key and value are kept in the pool as a hidden entry */
		v[nv].key_len = (size_t)(star - k);
		v[nv].idx = idx;
		v[nv].extended = extended;
		v[nv].order = nv;
		if (md_params_str(ps, k, v[nv].key_len, &v[nv].key) < 0 ||
		    md_params_str(ps, value.data, value.len, &v[nv].value) < 0) {
			result = -1;
			break;
		}
		nv++;
	}
	if (result == 0 && nv > 0 && md_rfc2231_merge(ps, v, nv, &tmp) < 0)
		result = -1;
	free(v);
	buf_free(&key);
	buf_free(&value);
	buf_free(&tmp);
	if (r->oom)
		result = -1;
	return result;
}
