/* The header block of a message being received: where it ends, which
 * fields it has, and the addresses in its From: field (RFC 5322 §3.4,
 * §3.6.2).  Our own small parser works on the bounded header block only
 * (libetpan stays in maildir/, DESIGN.md).  It takes display names,
 * comments, quoted strings, folding and obsolete dotted phrases; it
 * refuses groups, which a From: may not hold (RFC 5322 §3.6.2).
 */
#include "smtp_private.h"

#include <ctype.h>
#include <string.h>

long smtp_header_end(const char *data, size_t len, size_t *scan)
{
	size_t i = *scan;

	/* A message that starts with an empty line has no header fields. */
	if (i == 0 && len >= 2 && data[0] == '\r' && data[1] == '\n')
		return 0;
	for (; i + 4 <= len; i++) {
		if (data[i] == '\r' && memcmp(data + i, "\r\n\r\n", 4) == 0)
			return (long)i + 2;
	}
	*scan = i;
	return -1;
}

static bool smtp_field_is(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

void smtp_header_scan(const char *hdr, size_t len, struct smtp_header_info *info)
{
	size_t i = 0;
	bool in_from = false;

	memset(info, 0, sizeof(*info));
	while (i < len) {
		const char *line = hdr + i, *eol = memchr(line, '\n', len - i);
		size_t llen = eol != NULL ? (size_t)(eol - line) + 1 : len - i, nlen = 0;

		i += llen;
		if (line[0] == ' ' || line[0] == '\t') {
			/* a folded continuation of the field before */
			if (in_from)
				info->from_len = (size_t)(line + llen - info->from);
			continue;
		}
		in_from = false;
		/* field-name = 1*ftext (%d33-57 / %d59-126); obsolete syntax
		 * allows white space before the colon (RFC 5322 §4.5). */
		while (nlen < llen && line[nlen] > 32 && line[nlen] < 127 && line[nlen] != ':')
			nlen++;
		size_t c = nlen;
		while (c < llen && (line[c] == ' ' || line[c] == '\t'))
			c++;
		if (nlen == 0 || c >= llen || line[c] != ':')
			continue; /* not a field: ignored */
		if (smtp_field_is(line, nlen, "Received")) {
			info->received++;
		} else if (smtp_field_is(line, nlen, "Date")) {
			info->has_date = true;
		} else if (smtp_field_is(line, nlen, "Message-ID")) {
			info->has_message_id = true;
		} else if (smtp_field_is(line, nlen, "From")) {
			if (info->from_fields++ == 0) {
				info->from = line + c + 1;
				info->from_len = (size_t)(line + llen - info->from);
				in_from = true;
			}
		}
	}
}

/* ---- From: address list -------------------------------------------------- */

enum smtp_tok_type {
	SMTP_TOK_END,
	SMTP_TOK_ATOM,
	SMTP_TOK_QSTR,    /* s/len: inside the quotes, escapes not removed */
	SMTP_TOK_DLIT,    /* "[...]" */
	SMTP_TOK_SPECIAL, /* one of < > @ , ; : . */
	SMTP_TOK_ERROR,
};

struct smtp_tok {
	enum smtp_tok_type type;
	const char *s;
	size_t len;
};

struct smtp_lexer {
	const char *p, *end;
};

static bool smtp_is_atext_octet(unsigned char c)
{
	return isalnum(c) || c >= 0x80 || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Skip white space, folding and (nested) comments; -1 when unbalanced. */
static int smtp_skip_cfws(struct smtp_lexer *lx)
{
	while (lx->p < lx->end) {
		char c = *lx->p;
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			lx->p++;
		} else if (c == '(') {
			unsigned depth = 0;
			do {
				if (lx->p >= lx->end)
					return -1;
				c = *lx->p++;
				if (c == '\\') {
					if (lx->p >= lx->end)
						return -1;
					lx->p++;
				} else if (c == '(') {
					depth++;
				} else if (c == ')') {
					depth--;
				}
			} while (depth > 0);
		} else {
			break;
		}
	}
	return 0;
}

static void smtp_next_tok(struct smtp_lexer *lx, struct smtp_tok *t)
{
	const char *start;

	t->s = lx->p;
	t->len = 0;
	if (smtp_skip_cfws(lx) < 0) {
		t->type = SMTP_TOK_ERROR;
		return;
	}
	if (lx->p >= lx->end) {
		t->type = SMTP_TOK_END;
		return;
	}
	start = lx->p;
	switch (*lx->p) {
	case '"':
		/* A NUL (RFC 5322 §3.2.4: in neither qtext nor quoted-pair)
		 * would end the canonical address early, after the '"': the
		 * caller compares C strings.  Refused like an open quote. */
		for (lx->p++; lx->p < lx->end && *lx->p != '"' && *lx->p != '\0'; lx->p++)
			if (*lx->p == '\\' && (++lx->p >= lx->end || *lx->p == '\0'))
				break;
		if (lx->p >= lx->end || *lx->p == '\0') {
			t->type = SMTP_TOK_ERROR;
			return;
		}
		t->type = SMTP_TOK_QSTR;
		t->s = start + 1;
		t->len = (size_t)(lx->p - start - 1);
		lx->p++;
		return;
	case '[':
		for (lx->p++; lx->p < lx->end && *lx->p != ']'; lx->p++) {
			/* RFC 5322 §3.4.1 dtext: no NUL either (see above) */
			if (*lx->p == '[' || *lx->p == '\\' || *lx->p == '\0') {
				t->type = SMTP_TOK_ERROR;
				return;
			}
		}
		if (lx->p >= lx->end) {
			t->type = SMTP_TOK_ERROR;
			return;
		}
		lx->p++;
		t->type = SMTP_TOK_DLIT;
		t->s = start;
		t->len = (size_t)(lx->p - start);
		return;
	case '<': case '>': case '@': case ',': case ';': case ':': case '.':
		t->type = SMTP_TOK_SPECIAL;
		t->s = lx->p++;
		t->len = 1;
		return;
	}
	while (lx->p < lx->end && smtp_is_atext_octet((unsigned char)*lx->p))
		lx->p++;
	if (lx->p == start) {
		t->type = SMTP_TOK_ERROR;
		return;
	}
	t->type = SMTP_TOK_ATOM;
	t->s = start;
	t->len = (size_t)(lx->p - start);
}

static bool smtp_tok_is(const struct smtp_tok *t, char c)
{
	return t->type == SMTP_TOK_SPECIAL && t->s[0] == c;
}

/* local-part "@" domain at the lexer; writes the canonical address. */
static int smtp_parse_addr_spec(struct smtp_lexer *lx, char *out, size_t outlen)
{
	char local[SMTP_PATH_MAX + 1];
	size_t ll = 0, o = 0;
	bool dot_string = true;
	struct smtp_tok t;

	/* local-part = word *("." word)  (obs-local-part covers dot-atom) */
	for (;;) {
		smtp_next_tok(lx, &t);
		if (t.type == SMTP_TOK_ATOM) {
			if (ll + t.len >= sizeof(local))
				return -1;
			memcpy(local + ll, t.s, t.len);
			ll += t.len;
		} else if (t.type == SMTP_TOK_QSTR) {
			for (size_t i = 0; i < t.len; i++) {
				char c = t.s[i];
				if (c == '\\')
					c = t.s[++i];
				if (!smtp_is_atext_octet((unsigned char)c))
					dot_string = false;
				if (ll + 1 >= sizeof(local))
					return -1;
				local[ll++] = c;
			}
			if (t.len == 0)
				dot_string = false;
		} else {
			return -1;
		}
		smtp_next_tok(lx, &t);
		if (smtp_tok_is(&t, '@'))
			break;
		if (!smtp_tok_is(&t, '.') || ll + 1 >= sizeof(local))
			return -1;
		local[ll++] = '.';
	}
	if (ll == 0 || local[0] == '.' || local[ll - 1] == '.' || memmem(local, ll, "..", 2) != NULL)
		dot_string = false;
	if (dot_string) {
		if (ll >= outlen)
			return -1;
		memcpy(out, local, ll);
		o = ll;
	} else {
		/* keep it quoted, escaping '"' and '\' */
		if (o + 1 >= outlen)
			return -1;
		out[o++] = '"';
		for (size_t i = 0; i < ll; i++) {
			if (o + 3 >= outlen)
				return -1;
			if (local[i] == '"' || local[i] == '\\')
				out[o++] = '\\';
			out[o++] = local[i];
		}
		out[o++] = '"';
	}
	if (o + 1 >= outlen)
		return -1;
	out[o++] = '@';
	/* domain = dot-atom / domain-literal */
	smtp_next_tok(lx, &t);
	if (t.type == SMTP_TOK_DLIT) {
		if (o + t.len >= outlen)
			return -1;
		memcpy(out + o, t.s, t.len);
		o += t.len;
	} else {
		for (;;) {
			struct smtp_lexer save;
			if (t.type != SMTP_TOK_ATOM || o + t.len >= outlen)
				return -1;
			for (size_t i = 0; i < t.len; i++)
				out[o++] = (char)tolower((unsigned char)t.s[i]);
			save = *lx;
			smtp_next_tok(lx, &t);
			if (!smtp_tok_is(&t, '.')) {
				*lx = save;
				break;
			}
			if (o + 1 >= outlen)
				return -1;
			out[o++] = '.';
			smtp_next_tok(lx, &t);
		}
	}
	out[o] = '\0';
	return 0;
}

int smtp_parse_from(const char *value, size_t len, char (*addrs)[SMTP_PATH_MAX + 1], size_t max)
{
	struct smtp_lexer lx = { value, value + len };
	size_t n = 0;

	for (;;) {
		struct smtp_lexer ahead = lx;
		struct smtp_tok t;
		bool angle = false;

		smtp_next_tok(&ahead, &t);
		if (t.type == SMTP_TOK_END)
			break;
		if (smtp_tok_is(&t, ',')) { /* obs-mbox-list: empty elements */
			lx = ahead;
			continue;
		}
		/* name-addr when a '<' comes before the next ',' */
		ahead = lx;
		for (;;) {
			smtp_next_tok(&ahead, &t);
			if (t.type == SMTP_TOK_ERROR)
				return -1;
			if (t.type == SMTP_TOK_END || smtp_tok_is(&t, ','))
				break;
			if (smtp_tok_is(&t, ':') || smtp_tok_is(&t, ';'))
				return -1; /* a group */
			if (smtp_tok_is(&t, '<')) {
				angle = true;
				break;
			}
		}
		if (n >= max)
			return -1;
		if (angle) {
			lx = ahead; /* the display name is skipped */
			if (smtp_parse_addr_spec(&lx, addrs[n], sizeof(addrs[n])) < 0)
				return -1;
			smtp_next_tok(&lx, &t);
			if (!smtp_tok_is(&t, '>'))
				return -1;
		} else if (smtp_parse_addr_spec(&lx, addrs[n], sizeof(addrs[n])) < 0) {
			return -1;
		}
		n++;
		smtp_next_tok(&lx, &t);
		if (t.type == SMTP_TOK_END)
			break;
		if (!smtp_tok_is(&t, ','))
			return -1;
	}
	return n == 0 ? -1 : (int)n;
}
