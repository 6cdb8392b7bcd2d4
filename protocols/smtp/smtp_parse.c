/* SMTP syntax: command lines, envelope paths, ESMTP parameters and the CRLF
 * line splitter.  Pure functions over caller memory: no allocation, no
 * session state, so the unit test drives them directly.
 *
 * Grammar references: RFC 5321 §4.1.2 (Path, Mailbox, Local-part, Domain,
 * address-literal), §4.1.3 (address literals), RFC 6531 §3.3 (UTF-8
 * extensions), RFC 3461 §4 (xtext, NOTIFY, ORCPT, RET, ENVID), RFC 1870
 * (SIZE), RFC 6152 (BODY), RFC 4954 §5 (AUTH=).
 */
#include "smtp_private.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define SMTP_LABEL_MAX 63        /* RFC 1035 §2.3.4 */
#define SMTP_SIZE_DIGITS_MAX 20  /* RFC 1870 §3: size-value = 1*20DIGIT */
#define SMTP_PARAM_KEY_MAX 64

static const struct {
	const char *name;
	enum smtp_verb verb;
} smtp_verbs[] = {
	{ "EHLO", SMTP_VERB_EHLO }, { "HELO", SMTP_VERB_HELO },
	{ "MAIL", SMTP_VERB_MAIL }, { "RCPT", SMTP_VERB_RCPT },
	{ "DATA", SMTP_VERB_DATA }, { "BDAT", SMTP_VERB_BDAT },
	{ "RSET", SMTP_VERB_RSET }, { "NOOP", SMTP_VERB_NOOP },
	{ "QUIT", SMTP_VERB_QUIT }, { "VRFY", SMTP_VERB_VRFY },
	{ "EXPN", SMTP_VERB_EXPN }, { "HELP", SMTP_VERB_HELP },
	{ "STARTTLS", SMTP_VERB_STARTTLS }, { "AUTH", SMTP_VERB_AUTH },
	{ "LHLO", SMTP_VERB_LHLO },
};

int smtp_parse_command(const char *line, size_t len, struct smtp_command *cmd_r)
{
	size_t vlen = 0, a;

	cmd_r->verb = SMTP_VERB_UNKNOWN;
	cmd_r->args = line + len;
	cmd_r->args_len = 0;
	while (vlen < len && line[vlen] != ' ')
		vlen++;
	for (size_t i = 0; i < sizeof(smtp_verbs) / sizeof(smtp_verbs[0]); i++) {
		if (strlen(smtp_verbs[i].name) == vlen &&
		    strncasecmp(line, smtp_verbs[i].name, vlen) == 0) {
			cmd_r->verb = smtp_verbs[i].verb;
			break;
		}
	}
	/* Arguments after one or more spaces; trailing spaces are dropped,
	 * which many clients send after DATA or RSET. */
	a = vlen;
	while (a < len && line[a] == ' ')
		a++;
	while (len > a && line[len - 1] == ' ')
		len--;
	cmd_r->args = line + a;
	cmd_r->args_len = len - a;
	return 0;
}

/* ---- characters and UTF-8 --------------------------------------------------- */

static bool smtp_is_atext(unsigned char c)
{
	return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

bool smtp_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		unsigned c = p[i];
		size_t n;
		unsigned cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		/* overlong forms, surrogates, beyond U+10FFFF */
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return false;
		i += n + 1;
	}
	return true;
}

static bool smtp_has_8bit(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return true;
	return false;
}

/* ---- domains and address literals ---------------------------------------- */

bool smtp_address_literal_valid(const char *s, size_t len)
{
	char tmp[SMTP_DOMAIN_MAX + 1];
	unsigned char addr[16];
	const char *colon;

	if (len < 3 || len > SMTP_DOMAIN_MAX || s[0] != '[' || s[len - 1] != ']')
		return false;
	memcpy(tmp, s + 1, len - 2);
	tmp[len - 2] = '\0';
	if (strchr(tmp, ':') == NULL)
		return inet_pton(AF_INET, tmp, addr) == 1;
	if (strncasecmp(tmp, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, tmp + 5, addr) == 1;
	/* General-address-literal = Standardized-tag ":" 1*dcontent */
	colon = strchr(tmp, ':');
	if (colon == tmp || colon[1] == '\0')
		return false;
	for (const char *p = tmp; p < colon; p++)
		if (!isalnum((unsigned char)*p) && *p != '-')
			return false;
	if (colon[-1] == '-')
		return false;
	for (const char *p = colon + 1; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 33 || c > 126 || c == '[' || c == '\\' || c == ']')
			return false;
	}
	return true;
}

static bool smtp_labels_valid(const char *s, size_t len, bool utf8_ok, bool underscore)
{
	size_t label = 0;

	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			/* Let-dig at both ends of every label */
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (c == '-') {
			if (label == 0)
				return false;
		} else if (c >= 0x80) {
			if (!utf8_ok)
				return false;
		} else if (!isalnum(c) && !(underscore && c == '_')) {
			return false;
		}
		if (++label > SMTP_LABEL_MAX)
			return false;
	}
	if (label == 0 || s[len - 1] == '-')
		return false;
	return !utf8_ok || smtp_utf8_valid(s, len);
}

bool smtp_domain_valid(const char *s, size_t len, bool utf8_ok)
{
	if (len > 0 && s[0] == '[')
		return smtp_address_literal_valid(s, len);
	return smtp_labels_valid(s, len, utf8_ok, false);
}

bool smtp_helo_valid(const char *s, size_t len)
{
	if (len > 0 && s[0] == '[')
		return smtp_address_literal_valid(s, len);
	return smtp_labels_valid(s, len, false, true);
}

/* ---- paths ---------------------------------------------------------------- */

/* A dot-string (RFC 5321 Dot-string; RFC 6531 adds UTF-8). */
static bool smtp_dot_string_valid(const char *s, size_t len, bool utf8_ok)
{
	if (len == 0 || s[0] == '.' || s[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (s[i - 1] == '.')
				return false;
		} else if (c >= 0x80) {
			if (!utf8_ok)
				return false;
		} else if (!smtp_is_atext(c)) {
			return false;
		}
	}
	return !utf8_ok || smtp_utf8_valid(s, len);
}

/* The local part at s; *end_r after it.  Writes its canonical form to out
 * (unquoted when that is a valid dot-string).  0 or -1. */
static int smtp_parse_local(const char *s, bool utf8_ok, char *out, size_t outlen,
			    size_t *outlen_r, const char **end_r)
{
	const char *p = s;

	if (*p == '"') {
		char plain[SMTP_PATH_MAX + 1];
		size_t n = 0;

		for (p++; *p != '"'; p++) {
			unsigned char c = (unsigned char)*p;
			if (c == '\\') {
				c = (unsigned char)*++p;
				if (c < 32 || c > 126)
					return -1;
			} else if (c >= 0x80) {
				if (!utf8_ok)
					return -1;
			} else if (c < 32 || c == 127) {
				return -1; /* qtextSMTP: %d32-33 / %d35-91 / %d93-126 */
			}
			if (n >= sizeof(plain) - 1)
				return -1;
			plain[n++] = (char)c;
		}
		p++;
		if ((size_t)(p - s) > SMTP_LOCAL_MAX + 2 || (utf8_ok && !smtp_utf8_valid(s, (size_t)(p - s))))
			return -1;
		if (smtp_dot_string_valid(plain, n, utf8_ok)) {
			/* "john.doe"@x is john.doe@x */
			if (n >= outlen)
				return -1;
			memcpy(out, plain, n);
			*outlen_r = n;
		} else {
			size_t q = (size_t)(p - s);
			if (q >= outlen)
				return -1;
			memcpy(out, s, q);
			*outlen_r = q;
		}
		*end_r = p;
		return 0;
	}
	while (*p != '\0' && *p != '@' && *p != '>')
		p++;
	if ((size_t)(p - s) > SMTP_LOCAL_MAX || !smtp_dot_string_valid(s, (size_t)(p - s), utf8_ok) ||
	    (size_t)(p - s) >= outlen)
		return -1;
	memcpy(out, s, (size_t)(p - s));
	*outlen_r = (size_t)(p - s);
	*end_r = p;
	return 0;
}

int smtp_parse_path(const char *s, bool allow_null, bool allow_postmaster, bool utf8_ok,
		    struct smtp_path *path_r, const char **end_r)
{
	const char *p = s, *dom;
	size_t llen, dlen;

	memset(path_r, 0, sizeof(*path_r));
	if (*p++ != '<')
		return -1;
	if (*p == '>') {
		if (!allow_null)
			return -1;
		path_r->null = true;
		*end_r = p + 1;
		return 0;
	}
	if (allow_postmaster && strncasecmp(p, "Postmaster>", 11) == 0) {
		/* RFC 5321 §4.5.1: <Postmaster> without a domain */
		str_copy(path_r->addr, "postmaster", sizeof(path_r->addr));
		path_r->postmaster = true;
		*end_r = p + 11;
		return 0;
	}
	/* A-d-l: source routes are parsed and ignored (RFC 5321 §4.1.2,
	 * Appendix C). */
	if (*p == '@') {
		for (;;) {
			const char *d = ++p;
			while (*p != '\0' && *p != ',' && *p != ':' && *p != '>')
				p++;
			if (!smtp_domain_valid(d, (size_t)(p - d), utf8_ok))
				return -1;
			if (*p == ':')
				break;
			if (*p != ',' || p[1] != '@')
				return -1;
			p++;
		}
		p++;
	}
	if (smtp_parse_local(p, utf8_ok, path_r->addr, sizeof(path_r->addr), &llen, &p) < 0)
		return -1;
	if (*p != '@')
		return -1;
	dom = ++p;
	if (*p == '[') {
		while (*p != '\0' && *p != ']')
			p++;
		if (*p == ']')
			p++;
		path_r->literal = true;
	} else {
		while (*p != '\0' && *p != '>')
			p++;
	}
	dlen = (size_t)(p - dom);
	if (*p != '>' || !smtp_domain_valid(dom, dlen, utf8_ok))
		return -1;
	/* RFC 5321 §4.5.3.1.3: the path with its brackets is 256 octets */
	if (llen + 1 + dlen + 2 > SMTP_PATH_MAX)
		return -1;
	path_r->at = llen;
	path_r->addr[llen] = '@';
	memcpy(path_r->addr + llen + 1, dom, dlen);
	path_r->addr[llen + 1 + dlen] = '\0';
	for (char *c = path_r->addr + llen + 1; *c != '\0'; c++)
		if ((unsigned char)*c < 0x80)
			*c = (char)tolower((unsigned char)*c);
	path_r->utf8 = smtp_has_8bit(path_r->addr, strlen(path_r->addr));
	*end_r = p + 1;
	return 0;
}

/* "FROM:" or "TO:", spaces, path, then end or a space before parameters. */
static int smtp_parse_verb_path(const char *args, const char *keyword, bool reverse,
				struct smtp_path *path_r, const char **rest_r,
				char *reply, size_t replylen)
{
	size_t klen = strlen(keyword);
	const char *p = args, *end;

	if (strncasecmp(p, keyword, klen) != 0) {
		snprintf(reply, replylen, "501 5.5.4 Syntax: %s <address>",
			 reverse ? "MAIL FROM:" : "RCPT TO:");
		return -1;
	}
	p += klen;
	while (*p == ' ') /* RFC 5321 forbids the space; common clients send it */
		p++;
	if (*p != '<' || smtp_parse_path(p, reverse, !reverse, true, path_r, &end) < 0) {
		snprintf(reply, replylen, reverse ? "501 5.1.7 Bad sender address syntax" :
			 "501 5.1.3 Bad recipient address syntax");
		return -1;
	}
	if (*end != '\0' && *end != ' ') {
		snprintf(reply, replylen, reverse ? "501 5.1.7 Bad sender address syntax" :
			 "501 5.1.3 Bad recipient address syntax");
		return -1;
	}
	*rest_r = end;
	return 0;
}

int smtp_parse_mail_from(const char *args, struct smtp_path *path_r,
			 const char **rest_r, char *reply, size_t replylen)
{
	return smtp_parse_verb_path(args, "FROM:", true, path_r, rest_r, reply, replylen);
}

int smtp_parse_rcpt_to(const char *args, struct smtp_path *path_r,
		       const char **rest_r, char *reply, size_t replylen)
{
	return smtp_parse_verb_path(args, "TO:", false, path_r, rest_r, reply, replylen);
}

/* ---- parameters ------------------------------------------------------------- */

bool smtp_xtext_valid(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '+') {
			if (len - i < 3 || !isxdigit((unsigned char)s[i + 1]) ||
			    !isxdigit((unsigned char)s[i + 2]) ||
			    islower((unsigned char)s[i + 1]) || islower((unsigned char)s[i + 2]))
				return false;
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			return false;
		}
	}
	return true;
}

struct smtp_param {
	char key[SMTP_PARAM_KEY_MAX + 1];
	const char *value; /* NULL: no '=' */
	size_t value_len;
};

/* Next "keyword[=value]" at *sp; 1 with p filled, 0 at the end, -1 on
 * syntax errors (RFC 5321 §4.1.2 esmtp-param). */
static int smtp_next_param(const char **sp, struct smtp_param *p)
{
	const char *s = *sp, *k;
	size_t klen;

	while (*s == ' ')
		s++;
	if (*s == '\0')
		return 0;
	k = s;
	while (isalnum((unsigned char)*s) || *s == '-')
		s++;
	klen = (size_t)(s - k);
	if (klen == 0 || klen > SMTP_PARAM_KEY_MAX || k[0] == '-')
		return -1;
	memcpy(p->key, k, klen);
	p->key[klen] = '\0';
	for (char *c = p->key; *c != '\0'; c++)
		*c = (char)toupper((unsigned char)*c);
	p->value = NULL;
	p->value_len = 0;
	if (*s == '=') {
		const char *v = ++s;
		/* esmtp-value = 1*(%d33-60 / %d62-126), RFC 6531 §3.3 adds UTF-8 */
		while (*s != '\0' && *s != ' ' && *s != '=' &&
		       ((unsigned char)*s >= 128 || ((unsigned char)*s >= 33 && (unsigned char)*s <= 126)))
			s++;
		if (s == v || (*s != '\0' && *s != ' '))
			return -1;
		p->value = v;
		p->value_len = (size_t)(s - v);
	} else if (*s != '\0' && *s != ' ') {
		return -1;
	}
	*sp = s;
	return 1;
}

static bool smtp_value_is(const struct smtp_param *p, const char *word)
{
	return p->value != NULL && strlen(word) == p->value_len &&
	       strncasecmp(p->value, word, p->value_len) == 0;
}

int smtp_parse_mail_params(const char *s, unsigned ext, uint64_t size_max,
			   struct smtp_mail_params *mp, char *reply, size_t replylen)
{
	struct smtp_param p;
	bool seen_size = false, seen_body = false, seen_utf8 = false, seen_ret = false,
	     seen_envid = false, seen_auth = false;
	int rc;

	memset(mp, 0, sizeof(*mp));
	while ((rc = smtp_next_param(&s, &p)) == 1) {
		bool *seen;

		if (strcmp(p.key, "SIZE") == 0)
			seen = &seen_size;
		else if (strcmp(p.key, "BODY") == 0)
			seen = &seen_body;
		else if (strcmp(p.key, "SMTPUTF8") == 0)
			seen = &seen_utf8;
		else if (strcmp(p.key, "RET") == 0)
			seen = &seen_ret;
		else if (strcmp(p.key, "ENVID") == 0)
			seen = &seen_envid;
		else if (strcmp(p.key, "AUTH") == 0 && (ext & SMTP_EXT_AUTH))
			seen = &seen_auth;
		else {
			snprintf(reply, replylen, "555 5.5.4 Unsupported MAIL parameter %s", p.key);
			return -1;
		}
		if (*seen) {
			snprintf(reply, replylen, "501 5.5.4 Duplicate MAIL parameter %s", p.key);
			return -1;
		}
		*seen = true;
		if (seen == &seen_size) {
			char digits[SMTP_SIZE_DIGITS_MAX + 1];
			if (p.value == NULL || p.value_len > SMTP_SIZE_DIGITS_MAX)
				goto bad_value;
			memcpy(digits, p.value, p.value_len);
			digits[p.value_len] = '\0';
			for (size_t i = 0; i < p.value_len; i++)
				if (!isdigit((unsigned char)digits[i]))
					goto bad_value;
			if (str_to_u64(digits, 0, UINT64_MAX, &mp->size) < 0) {
				/* 20 digits beyond 2^64: certainly too big */
				mp->size = UINT64_MAX;
			}
			mp->has_size = true;
		} else if (seen == &seen_body) {
			if (smtp_value_is(&p, "7BIT"))
				mp->body = SMTP_BODY_7BIT;
			else if (smtp_value_is(&p, "8BITMIME"))
				mp->body = SMTP_BODY_8BITMIME;
			else if (p.value != NULL && p.value_len == 10 &&
				 strncasecmp(p.value, "BINARYMIME", 10) == 0) {
				/* RFC 3030 §3: only with BINARYMIME offered */
				snprintf(reply, replylen, "555 5.5.4 BODY=BINARYMIME is not supported");
				return -1;
			} else
				goto bad_value;
		} else if (seen == &seen_utf8) {
			if (p.value != NULL)
				goto bad_value;
			mp->smtputf8 = true;
		} else if (seen == &seen_ret) {
			if (smtp_value_is(&p, "FULL"))
				mp->ret = SMTP_RET_FULL;
			else if (smtp_value_is(&p, "HDRS"))
				mp->ret = SMTP_RET_HDRS;
			else
				goto bad_value;
		} else if (seen == &seen_envid) {
			if (p.value == NULL || p.value_len > SMTP_ENVID_MAX ||
			    !smtp_xtext_valid(p.value, p.value_len))
				goto bad_value;
			memcpy(mp->envid, p.value, p.value_len);
			mp->envid[p.value_len] = '\0';
		} else {
			/* RFC 4954 §5: AUTH=<> or an xtext mailbox */
			if (p.value == NULL || p.value_len >= sizeof(mp->auth) ||
			    (!smtp_value_is(&p, "<>") && !smtp_xtext_valid(p.value, p.value_len)))
				goto bad_value;
			memcpy(mp->auth, p.value, p.value_len);
			mp->auth[p.value_len] = '\0';
			mp->has_auth = true;
		}
	}
	if (rc < 0) {
		snprintf(reply, replylen, "501 5.5.4 Syntax error in MAIL parameters");
		return -1;
	}
	if (mp->has_size && size_max > 0 && mp->size > size_max) {
		snprintf(reply, replylen, "552 5.3.4 Message size exceeds fixed maximum message size");
		return -1;
	}
	return 0;
bad_value:
	snprintf(reply, replylen, "501 5.5.4 Invalid value for MAIL parameter %s", p.key);
	return -1;
}

/* NOTIFY=NEVER / NOTIFY=SUCCESS,FAILURE,DELAY (RFC 3461 §4.1) */
static int smtp_parse_notify(const char *v, size_t len, unsigned *notify_r)
{
	unsigned notify = 0;
	size_t i = 0;

	while (i < len) {
		size_t j = i;
		unsigned bit;

		while (j < len && v[j] != ',')
			j++;
		if (j - i == 5 && strncasecmp(v + i, "NEVER", 5) == 0)
			bit = SMTP_NOTIFY_NEVER;
		else if (j - i == 7 && strncasecmp(v + i, "SUCCESS", 7) == 0)
			bit = SMTP_NOTIFY_SUCCESS;
		else if (j - i == 7 && strncasecmp(v + i, "FAILURE", 7) == 0)
			bit = SMTP_NOTIFY_FAILURE;
		else if (j - i == 5 && strncasecmp(v + i, "DELAY", 5) == 0)
			bit = SMTP_NOTIFY_DELAY;
		else
			return -1;
		if (notify & bit)
			return -1;
		notify |= bit;
		if (j == len)
			break;
		i = j + 1;
		if (i == len)
			return -1; /* trailing comma */
	}
	if (notify == 0 || ((notify & SMTP_NOTIFY_NEVER) && notify != SMTP_NOTIFY_NEVER))
		return -1;
	*notify_r = notify;
	return 0;
}

/* ORCPT=addr-type;xtext (RFC 3461 §4.2; "utf-8" type: RFC 6533 §3). */
static bool smtp_orcpt_valid(const char *v, size_t len, bool utf8_ok)
{
	const char *semi = memchr(v, ';', len);
	size_t tlen;

	if (semi == NULL || semi == v || len > SMTP_ORCPT_MAX)
		return false;
	tlen = (size_t)(semi - v);
	for (size_t i = 0; i < tlen; i++)
		if (!smtp_is_atext((unsigned char)v[i]))
			return false;
	if (semi + 1 == v + len)
		return false;
	if (tlen == 5 && strncasecmp(v, "utf-8", 5) == 0) {
		/* utf-8-addr-xtext / utf-8-addr-unitext: QCHAR is printable
		 * ASCII but '+' and '=', "\\x{HEX}" embeds a code point, and
		 * unitext allows UTF-8 itself. */
		const char *a = semi + 1;
		size_t alen = len - tlen - 1;
		if (!smtp_utf8_valid(a, alen) || (smtp_has_8bit(a, alen) && !utf8_ok))
			return false;
		for (size_t i = 0; i < alen; i++) {
			unsigned char c = (unsigned char)a[i];
			if (c < 128 && (c < 33 || c > 126 || c == '+' || c == '='))
				return false;
		}
		return true;
	}
	return smtp_xtext_valid(semi + 1, len - tlen - 1);
}

int smtp_parse_rcpt_params(const char *s, bool utf8_ok, struct smtp_rcpt_params *rp,
			   char *reply, size_t replylen)
{
	struct smtp_param p;
	bool seen_notify = false, seen_orcpt = false;
	int rc;

	memset(rp, 0, sizeof(*rp));
	while ((rc = smtp_next_param(&s, &p)) == 1) {
		if (strcmp(p.key, "NOTIFY") == 0) {
			if (seen_notify)
				goto dup;
			seen_notify = true;
			if (p.value == NULL || smtp_parse_notify(p.value, p.value_len, &rp->notify) < 0)
				goto bad_value;
		} else if (strcmp(p.key, "ORCPT") == 0) {
			if (seen_orcpt)
				goto dup;
			seen_orcpt = true;
			if (p.value == NULL || !smtp_orcpt_valid(p.value, p.value_len, utf8_ok))
				goto bad_value;
			memcpy(rp->orcpt, p.value, p.value_len);
			rp->orcpt[p.value_len] = '\0';
		} else {
			snprintf(reply, replylen, "555 5.5.4 Unsupported RCPT parameter %s", p.key);
			return -1;
		}
	}
	if (rc < 0) {
		snprintf(reply, replylen, "501 5.5.4 Syntax error in RCPT parameters");
		return -1;
	}
	return 0;
dup:
	snprintf(reply, replylen, "501 5.5.4 Duplicate RCPT parameter %s", p.key);
	return -1;
bad_value:
	snprintf(reply, replylen, "501 5.5.4 Invalid value for RCPT parameter %s", p.key);
	return -1;
}

