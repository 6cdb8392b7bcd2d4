/* The message as Sieve tests see it: header fields by name, unfolded
 * (RFC 5322 §2.2.3) and with RFC 2047 encoded words of UTF-8, US-ASCII and
 * ISO-8859-1 decoded (RFC 5228 §2.7.2: tests compare decoded text; other
 * charsets are compared as written); the addresses of an address-list
 * field (RFC 5228 §5.1, RFC 5322 §3.4) as local-part and domain.
 *
 * Memory: each value is built in a malloc'd buffer bounded by
 * SIEVE_STRING_MAX (longer fields are cut there) and freed before the
 * next; nothing is kept between calls.
 */
#include "sieve_private.h"

#include "base64.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool sv_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Append an octet as UTF-8 (Latin-1 input). */
static size_t sv_put_latin1(char *out, size_t o, unsigned char c)
{
	if (c < 0x80) {
		out[o++] = (char)c;
	} else {
		out[o++] = (char)(0xc0 | (c >> 6));
		out[o++] = (char)(0x80 | (c & 0x3f));
	}
	return o;
}

int sv_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

size_t sv_decode_b64(const char *p, size_t len, char *out)
{
	unsigned acc = 0;
	int bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < len && p[i] != '='; i++) {
		int v = base64_value((unsigned char)p[i]);
		if (v < 0)
			continue;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	return o;
}


/* Decode one encoded word "=?cs?E?text?=" at p (len octets) into out
 * (room for 2*len octets); returns octets written, or -1 when it is not
 * an encoded word we decode. */
static long sv_decode_word(const char *p, size_t len, char *out)
{
	const char *cs, *enc, *text, *end = p + len;
	bool latin1, b;
	size_t o = 0;

	if (len < 8 || p[0] != '=' || p[1] != '?' || end[-2] != '?' || end[-1] != '=')
		return -1;
	cs = p + 2;
	enc = memchr(cs, '?', (size_t)(end - cs));
	if (enc == NULL || enc + 3 > end - 2 || enc[2] != '?')
		return -1;
	text = enc + 3;
	if (((size_t)(enc - cs) == 5 && strncasecmp(cs, "utf-8", 5) == 0) ||
	    ((size_t)(enc - cs) == 8 && strncasecmp(cs, "us-ascii", 8) == 0))
		latin1 = false;
	else if ((size_t)(enc - cs) == 10 && strncasecmp(cs, "iso-8859-1", 10) == 0)
		latin1 = true;
	else
		return -1;
	b = enc[1] == 'B' || enc[1] == 'b';
	if (!b && enc[1] != 'Q' && enc[1] != 'q')
		return -1;
	if (b) {
		char *raw = malloc(len);
		size_t n;
		if (raw == NULL)
			return -1; /* left as written */
		n = sv_decode_b64(text, (size_t)(end - 2 - text), raw);
		for (size_t i = 0; i < n; i++)
			o = latin1 ? sv_put_latin1(out, o, (unsigned char)raw[i]) :
				     (out[o] = raw[i], o + 1);
		free(raw);
		return (long)o;
	}
	for (const char *q = text; q < end - 2; q++) {
		unsigned char c = (unsigned char)*q;
		if (c == '_') {
			c = ' ';
		} else if (c == '=' && q + 2 < end - 2 && sv_hex(q[1]) >= 0 &&
			   sv_hex(q[2]) >= 0) {
			c = (unsigned char)(sv_hex(q[1]) * 16 + sv_hex(q[2]));
			q += 2;
		}
		o = latin1 ? sv_put_latin1(out, o, c) : (out[o] = (char)c, o + 1);
	}
	return (long)o;
}

/* Decode the encoded words of an unfolded value in place-free fashion:
 * out gets at most 2*len octets.  Whitespace between two adjacent encoded
 * words is dropped (RFC 2047 §6.2). */
static size_t sv_decode_2047(const char *v, size_t len, char *out)
{
	size_t o = 0, i = 0;
	bool last_word = false;
	size_t pending_ws = 0, ws_start = 0;

	while (i < len) {
		if (v[i] == '=' && i + 1 < len && v[i + 1] == '?') {
			/* find the end "?=" after charset?E? */
			const char *q1 = memchr(v + i + 2, '?', len - i - 2);
			const char *q2 = q1 != NULL && q1 + 2 < v + len ? memchr(q1 + 2, '?', (size_t)(v + len - q1 - 2)) : NULL;
			const char *e = NULL;
			if (q2 != NULL) {
				for (const char *q = q2 + 1; q + 1 < v + len; q++)
					if (q[0] == '?' && q[1] == '=') {
						e = q + 2;
						break;
					}
			}
			if (e != NULL) {
				long n = sv_decode_word(v + i, (size_t)(e - (v + i)),
							out + o + pending_ws);
				if (n >= 0) {
					if (!last_word) {
						memcpy(out + o, v + ws_start, pending_ws);
						o += pending_ws;
					} else if (pending_ws > 0) {
						memmove(out + o, out + o + pending_ws, (size_t)n);
					}
					o += (size_t)n;
					pending_ws = 0;
					last_word = true;
					i = (size_t)(e - v);
					continue;
				}
			}
		}
		if (sv_wsp(v[i])) {
			if (pending_ws == 0)
				ws_start = i;
			pending_ws++;
			i++;
			continue;
		}
		if (pending_ws > 0) {
			memcpy(out + o, v + ws_start, pending_ws);
			o += pending_ws;
			pending_ws = 0;
		}
		last_word = false;
		out[o++] = v[i++];
	}
	if (pending_ws > 0) {
		memcpy(out + o, v + ws_start, pending_ws);
		o += pending_ws;
	}
	return o;
}

/* Call fn on the unfolded, trimmed, decoded value at [p, end). */
static int sv_field_value(const char *p, const char *end, sv_value_fn *fn, void *ctx)
{
	size_t cap = (size_t)(end - p);
	char *raw, *dec;
	size_t n = 0, dn;
	int rc;

	if (cap > SIEVE_STRING_MAX)
		cap = SIEVE_STRING_MAX;
	raw = malloc(cap + 1);
	dec = malloc(2 * cap + 1);
	if (raw == NULL || dec == NULL) {
		free(raw);
		free(dec);
		return -1;
	}
	while (p < end && sv_wsp(*p))
		p++;
	for (; p < end && n < cap; p++)
		if (*p != '\r' && *p != '\n')
			raw[n++] = *p;
	while (n > 0 && sv_wsp(raw[n - 1]))
		n--;
	dn = sv_decode_2047(raw, n, dec);
	dec[dn] = '\0';
	rc = fn(ctx, dec, dn);
	free(raw);
	free(dec);
	return rc;
}

int sv_header_each(const struct sieve_message *msg, const char *name, sv_value_fn *fn, void *ctx)
{
	const char *p = msg->header, *end = msg->header + msg->header_len;
	size_t nlen = strlen(name);

	while (p < end) {
		const char *line_end = memchr(p, '\n', (size_t)(end - p)), *field_end, *colon;
		if (line_end == NULL)
			line_end = end;
		if (line_end == p || (line_end == p + 1 && *p == '\r'))
			break; /* the blank line ends the header */
		/* the field goes on while the next line starts with WSP */
		field_end = line_end;
		while (field_end < end && field_end + 1 < end && sv_wsp(field_end[1])) {
			const char *next = memchr(field_end + 1, '\n', (size_t)(end - field_end - 1));
			field_end = next != NULL ? next : end;
		}
		colon = memchr(p, ':', (size_t)(field_end - p));
		if (colon != NULL && !sv_wsp(*p)) {
			const char *ne = colon;
			while (ne > p && sv_wsp(ne[-1]))
				ne--;
			if ((size_t)(ne - p) == nlen && strncasecmp(p, name, nlen) == 0) {
				int rc = sv_field_value(colon + 1, field_end, fn, ctx);
				if (rc != 0)
					return rc;
			}
		}
		p = field_end < end ? field_end + 1 : end;
	}
	return 0;
}

static int sv_dup_first(void *ctx, const char *v, size_t len)
{
	char **out = ctx;

	*out = strndup(v, len);
	return 1;
}

char *sieve_header_first(const struct sieve_message *msg, const char *name)
{
	char *out = NULL;

	(void)sv_header_each(msg, name, sv_dup_first, &out);
	return out;
}

/* ---- addresses -------------------------------------------------------- */

int sv_address_part(const char *addr, size_t len, enum sv_addrpart part, sv_value_fn *fn,
		    void *ctx)
{
	const char *at = NULL;

	for (size_t i = len; i > 0; i--)
		if (addr[i - 1] == '@') {
			at = addr + i - 1;
			break;
		}
	switch (part) {
	case SV_PART_ALL:
		return fn(ctx, addr, len);
	case SV_PART_LOCAL:
		return fn(ctx, addr, at != NULL ? (size_t)(at - addr) : len);
	case SV_PART_DOMAIN:
		return at != NULL ? fn(ctx, at + 1, len - (size_t)(at + 1 - addr)) : fn(ctx, "", 0);
	}
	return 0;
}

/* RFC 5322 §3.2: quoted strings and (nested) comments in an address
 * list.  sv_lex_step() classifies the octet at *i (advancing past a
 * quoted-pair): PLAIN outside both, QUOTED inside a quoted string (*c_r
 * is the character meant), SKIP for comments and the delimiters. */
enum sv_lex_class { SV_LEX_PLAIN, SV_LEX_QUOTED, SV_LEX_SKIP };

struct sv_lex5322 {
	int depth;     /* comment nesting */
	bool quoted;
};

static enum sv_lex_class sv_lex_step(struct sv_lex5322 *st, const char *p, size_t len,
				     size_t *i, char *c_r)
{
	char c = p[*i];

	*c_r = c;
	if (st->quoted) {
		if (c == '\\' && *i + 1 < len) {
			*c_r = p[++*i];
			return SV_LEX_QUOTED;
		}
		if (c == '"') {
			st->quoted = false;
			return SV_LEX_SKIP;
		}
		return SV_LEX_QUOTED;
	}
	if (st->depth > 0) {
		if (c == '\\' && *i + 1 < len)
			++*i;
		else if (c == '(')
			st->depth++;
		else if (c == ')')
			st->depth--;
		return SV_LEX_SKIP;
	}
	if (c == '(') {
		st->depth = 1;
		return SV_LEX_SKIP;
	}
	if (c == '"') {
		st->quoted = true;
		return SV_LEX_SKIP;
	}
	return SV_LEX_PLAIN;
}

/* One element of an address list (between top-level commas): the address
 * in <...> if there is one (a source route "@a,@b:" dropped), else the
 * text without comments, quotes and whitespace. */
static int sv_address_one(const char *p, size_t len, enum sv_addrpart part, sv_value_fn *fn,
			  void *ctx)
{
	char *out = malloc(len + 1);
	size_t o = 0;
	int rc;
	bool angle = false, have_angle = false;
	struct sv_lex5322 st = { 0, false };

	if (out == NULL)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c;
		enum sv_lex_class k = sv_lex_step(&st, p, len, &i, &c);
		bool wanted = !have_angle || angle;
		if (k == SV_LEX_QUOTED && wanted) {
			out[o++] = c;
		} else if (k != SV_LEX_PLAIN) {
			continue;
		} else if (c == '<' && !angle) {
			angle = have_angle = true;
			o = 0; /* the display name before it is not the address */
		} else if (c == '>' && angle) {
			angle = false;
		} else if (c == ':' && angle) {
			o = 0; /* end of an obsolete source route */
		} else if (!sv_wsp(c) && c != '\r' && c != '\n' && wanted) {
			out[o++] = c;
		}
	}
	out[o] = '\0';
	rc = o > 0 ? sv_address_part(out, o, part, fn, ctx) : 0;
	free(out);
	return rc;
}

int sv_address_each(const char *value, size_t len, enum sv_addrpart part, sv_value_fn *fn,
		    void *ctx)
{
	size_t start = 0;
	bool angle = false;
	struct sv_lex5322 st = { 0, false };

	for (size_t i = 0; i <= len; i++) {
		char c = ',';
		/* the end of the value ends the last element, whatever is open */
		if (i < len && sv_lex_step(&st, value, len, &i, &c) != SV_LEX_PLAIN)
			continue;
		if (c == '<') {
			angle = true;
		} else if (c == '>') {
			angle = false;
		} else if (c == ':' && !angle) {
			start = i + 1; /* "group name:" (RFC 5322 §3.4) */
		} else if ((c == ',' || c == ';') && (!angle || i == len)) {
			int rc = sv_address_one(value + start, (i < len ? i : len) - start, part,
						fn, ctx);
			if (rc != 0)
				return rc;
			start = i + 1;
		}
	}
	return 0;
}
