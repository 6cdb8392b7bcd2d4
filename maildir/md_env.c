/* IMAP strings and the ENVELOPE structure (RFC 3501 §7.4.2, RFC 9051
 * §7.5.2).
 *
 * Strings are sent quoted when they can be and as literals when they hold
 * CR, LF or 8-bit octets: IMAP4rev1 quoted strings are 7-bit TEXT-CHARs
 * only (RFC 3501 §4.3, §9 "QUOTED-CHAR").  A NUL octet cannot be sent at
 * all and becomes 0x80, as Dovecot does.
 *
 * Addresses are parsed with our own RFC 5322 §3.4 parser: ENVELOPE must
 * describe broken headers too, and clients are used to the placeholders
 * Dovecot and UW-IMAP put where a part is missing ("MISSING_MAILBOX",
 * "MISSING_DOMAIN", "SYNTAX_ERROR", "INVALID_ROUTE"); libetpan's
 * mailimf_address_list_parse() rejects such headers outright.  libetpan
 * parses the Date: value for the sent date (mailimf_date_time_parse).
 */
#include "md_meta_int.h"

#include <stdlib.h>
#include <string.h>

#include <libetpan/libetpan.h>

/* ------------------------------------------------------------------ */
/* IMAP strings */

static bool md_env_needs_literal(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r' || c == '\n' || c == '\0' || c >= 0x80)
			return true;
	}
	return false;
}

int md_env_string(struct buf *out, const char *s, size_t len)
{
	size_t i;

	if (md_env_needs_literal(s, len)) {
		/* RFC 3501 §4.3 literal; NUL is not allowed in one */
		if (buf_appendf(out, "{%zu}\r\n", len) < 0)
			return -1;
		for (i = 0; i < len; i++) {
			if (buf_putc(out, s[i] == '\0' ? (char)0x80 : s[i]) < 0)
				return -1;
		}
		return 0;
	}
	if (buf_putc(out, '"') < 0)
		return -1;
	for (i = 0; i < len; i++) {
		if ((s[i] == '"' || s[i] == '\\') && buf_putc(out, '\\') < 0)
			return -1;
		if (buf_putc(out, s[i]) < 0)
			return -1;
	}
	return buf_putc(out, '"');
}

int md_env_nstring(struct buf *out, const char *s, size_t len, bool nil)
{
	if (nil)
		return buf_append(out, "NIL", 3);
	return md_env_string(out, s, len);
}

static bool md_env_is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int md_env_nstring_nolf(struct buf *out, const char *s, size_t len, bool nil)
{
	struct buf tmp;
	size_t i;
	int ret;

	if (nil || (memchr(s, '\n', len) == NULL && memchr(s, '\r', len) == NULL))
		return md_env_nstring(out, s, len, nil);
	/* RFC 5322 §2.2.3 unfolding; a line break not followed by
	 * whitespace still separates words */
	buf_init(&tmp, 0);
	for (i = 0; i < len; i++) {
		if (s[i] != '\r' && s[i] != '\n')
			ret = buf_putc(&tmp, s[i]);
		else if (i + 1 < len && !md_env_is_ws(s[i + 1]))
			ret = buf_putc(&tmp, ' ');
		else
			ret = 0;
		if (ret < 0) {
			buf_free(&tmp);
			return -1;
		}
	}
	ret = md_env_string(out, tmp.data != NULL ? tmp.data : "", tmp.len);
	buf_free(&tmp);
	return ret;
}

int md_env_string_human(struct buf *out, const char *s, size_t len)
{
	struct buf tmp;
	bool last_ws = true;
	size_t i;
	int ret = 0;

	buf_init(&tmp, 0);
	for (i = 0; i < len && ret == 0; i++) {
		if (md_env_is_ws(s[i])) {
			if (!last_ws)
				ret = buf_putc(&tmp, ' ');
			last_ws = true;
		} else {
			ret = buf_putc(&tmp, s[i]);
			last_ws = false;
		}
	}
	if (ret == 0 && tmp.len > 0 && tmp.data[tmp.len - 1] == ' ')
		tmp.len--;
	if (ret == 0)
		ret = md_env_string(out, tmp.data != NULL ? tmp.data : "",
				    tmp.len);
	buf_free(&tmp);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Address lists (RFC 5322 §3.4) */

#define MD_ENV_NONE SIZE_MAX

struct md_addr {
	size_t name, route, mailbox, domain; /* pool offsets or NONE */
	bool invalid;
};

struct md_env_ap {
	struct md_rfc822 r;
	struct buf pool;    /* NUL-terminated strings */
	struct buf str;     /* scratch */
	struct buf comment; /* text of the last comment */
	struct md_addr *list;
	size_t n, cap;
	struct md_addr cur;
	bool oom;
};

static void md_env_addr_clear(struct md_addr *a)
{
	a->name = a->route = a->mailbox = a->domain = MD_ENV_NONE;
	a->invalid = false;
}

static size_t md_env_pool(struct md_env_ap *ap, const char *s, size_t n)
{
	size_t off = ap->pool.len;

	if (buf_append(&ap->pool, s, n) < 0 || buf_putc(&ap->pool, '\0') < 0) {
		ap->oom = true;
		return MD_ENV_NONE;
	}
	return off;
}

static size_t md_env_pool_str(struct md_env_ap *ap)
{
	return md_env_pool(ap, ap->str.data != NULL ? ap->str.data : "",
			   ap->str.len);
}

static void md_env_add(struct md_env_ap *ap)
{
	if (ap->n == ap->cap) {
		size_t cap = ap->cap == 0 ? 4 : ap->cap * 2;
		struct md_addr *nl = realloc(ap->list, cap * sizeof(*nl));

		if (nl == NULL) {
			ap->oom = true;
			md_env_addr_clear(&ap->cur);
			return;
		}
		ap->list = nl;
		ap->cap = cap;
	}
	ap->list[ap->n++] = ap->cur;
	md_env_addr_clear(&ap->cur);
}

static void md_env_add_fixed(struct md_env_ap *ap)
{
	if (ap->cur.mailbox == MD_ENV_NONE) {
		ap->cur.mailbox = md_env_pool(ap, "MISSING_MAILBOX", 15);
		ap->cur.invalid = true;
	}
	if (ap->cur.domain == MD_ENV_NONE ||
	    ap->pool.data[ap->cur.domain] == '\0') {
		ap->cur.domain = md_env_pool(ap, "MISSING_DOMAIN", 14);
		ap->cur.invalid = true;
	}
	md_env_add(ap);
}

static int md_env_local_part(struct md_env_ap *ap)
{
	int ret;

	buf_reset(&ap->str);
	if (*ap->r.p == '"')
		ret = md_rfc822_quoted_string(&ap->r, &ap->str);
	else
		ret = md_rfc822_dot_atom(&ap->r, &ap->str);
	if (ret < 0)
		return -1;
	ap->cur.mailbox = md_env_pool_str(ap);
	return ret;
}

static int md_env_domain(struct md_env_ap *ap)
{
	int ret;

	buf_reset(&ap->str);
	if ((ret = md_rfc822_domain(&ap->r, &ap->str)) < 0)
		return -1;
	ap->cur.domain = md_env_pool_str(ap);
	return ret;
}

/* RFC 5322 §4.4 obs-route: "@a,@b:" */
static int md_env_domain_list(struct md_env_ap *ap)
{
	int ret;

	buf_reset(&ap->str);
	for (;;) {
		if (ap->r.p >= ap->r.end)
			return 0;
		if (*ap->r.p != '@')
			break;
		if (ap->str.len > 0 && buf_putc(&ap->str, ',') < 0)
			ap->oom = true;
		if (buf_putc(&ap->str, '@') < 0)
			ap->oom = true;
		if ((ret = md_rfc822_domain(&ap->r, &ap->str)) <= 0)
			return ret;
		while (md_rfc822_skip_lwsp(&ap->r) > 0 && *ap->r.p == ',')
			ap->r.p++;
	}
	ap->cur.route = md_env_pool_str(ap);
	return 1;
}

static int md_env_angle_addr(struct md_env_ap *ap)
{
	struct md_rfc822 *r = &ap->r;

	r->p++; /* '<' */
	if (md_rfc822_skip_lwsp(r) <= 0)
		return -1;
	if (*r->p == '@') {
		if (md_env_domain_list(ap) > 0 && *r->p == ':') {
			r->p++;
		} else {
			ap->cur.route = md_env_pool(ap, "INVALID_ROUTE", 13);
			if (r->p >= r->end)
				return -1;
			/* try to go on */
		}
		if (md_rfc822_skip_lwsp(r) <= 0)
			return -1;
	}
	if (*r->p != '>') {
		if (md_env_local_part(ap) <= 0)
			return -1;
		if (*r->p == '@' && md_env_domain(ap) <= 0)
			return -1;
	}
	if (*r->p != '>')
		return -1;
	r->p++;
	return md_rfc822_skip_lwsp(r);
}

static int md_env_name_addr(struct md_env_ap *ap)
{
	buf_reset(&ap->str);
	if (md_rfc822_phrase(&ap->r, &ap->str) <= 0 || *ap->r.p != '<')
		return -1;
	ap->cur.name = ap->str.len == 0 ? MD_ENV_NONE : md_env_pool_str(ap);
	if (md_env_angle_addr(ap) < 0) {
		ap->cur.domain = md_env_pool(ap, "SYNTAX_ERROR", 12);
		ap->cur.invalid = true;
	}
	return ap->r.p < ap->r.end ? 1 : 0;
}

static int md_env_addr_spec(struct md_env_ap *ap)
{
	bool quoted = *ap->r.p == '"';
	int ret, ret2 = -2;

	buf_reset(&ap->comment);
	ret = md_env_local_part(ap);
	if (ret <= 0)
		ap->cur.invalid = true;
	if (ret != 0 && ap->r.p < ap->r.end && *ap->r.p == '@') {
		ret2 = md_env_domain(ap);
		if (ret2 <= 0)
			ret = ret2;
	}
	if (ap->comment.len > 0) {
		/* "user@host (Name)": the old way to give a name */
		ap->cur.name = md_env_pool(ap, ap->comment.data,
					   ap->comment.len);
	} else if (ret2 == -2) {
		/* "user" alone, or words without '@': a name if more words
		 * follow, otherwise a mailbox without domain */
		size_t orig;

		if (buf_putc(&ap->str, ' ') < 0)
			ap->oom = true;
		orig = ap->str.len;
		(void)md_rfc822_phrase(&ap->r, &ap->str);
		if (ap->str.len != orig) {
			ap->cur.mailbox = MD_ENV_NONE;
			ap->cur.name = md_env_pool_str(ap);
		} else if (!quoted) {
			ap->cur.domain = md_env_pool(ap, "", 0);
		}
		ap->cur.invalid = true;
		ret = -1;
	}
	return ret;
}

static int md_env_mailbox(struct md_env_ap *ap)
{
	const unsigned char *start = ap->r.p;
	int ret;

	if ((ret = md_env_name_addr(ap)) < 0) {
		ap->r.p = start;
		ret = md_env_addr_spec(ap);
		if (ap->cur.invalid && ap->cur.name == MD_ENV_NONE &&
		    ap->cur.mailbox != MD_ENV_NONE &&
		    ap->cur.domain == MD_ENV_NONE) {
			ap->cur.name = ap->cur.mailbox;
			ap->cur.mailbox = MD_ENV_NONE;
		}
	}
	if (ret < 0)
		ap->cur.invalid = true;
	md_env_add_fixed(ap);
	return ret;
}

/* RFC 5322 §3.4 group: written as (NIL NIL "name" NIL) ... (NIL NIL NIL
 * NIL), RFC 3501 §7.4.2 */
static int md_env_group(struct md_env_ap *ap)
{
	struct md_rfc822 *r = &ap->r;
	int ret;

	buf_reset(&ap->str);
	if (md_rfc822_phrase(r, &ap->str) <= 0 || *r->p != ':')
		return -1;
	r->p++;
	if ((ret = md_rfc822_skip_lwsp(r)) <= 0)
		ap->cur.invalid = true;
	ap->cur.mailbox = md_env_pool_str(ap);
	md_env_add(ap);
	if (ret > 0 && *r->p != ';') {
		for (;;) {
			(void)md_env_mailbox(ap);
			if (r->p >= r->end || *r->p != ',')
				break;
			r->p++;
			if (md_rfc822_skip_lwsp(r) <= 0) {
				ret = -1;
				break;
			}
		}
	}
	if (ret >= 0) {
		if (r->p >= r->end || *r->p != ';') {
			ret = -1;
		} else {
			r->p++;
			ret = md_rfc822_skip_lwsp(r);
		}
	}
	if (ret < 0)
		ap->cur.invalid = true;
	md_env_add(ap);
	return ret == 0 ? 0 : 1;
}

static int md_env_address(struct md_env_ap *ap)
{
	const unsigned char *start = ap->r.p;
	int ret;

	if ((ret = md_env_group(ap)) < 0) {
		ap->r.p = start;
		ret = md_env_mailbox(ap);
	}
	return ret;
}

static void md_env_address_list(struct md_env_ap *ap)
{
	int ret;

	for (;;) {
		if (md_env_address(ap) == 0 || ap->oom)
			break;
		if (ap->r.p >= ap->r.end || *ap->r.p != ',')
			break;
		ap->r.p++;
		if ((ret = md_rfc822_skip_lwsp(&ap->r)) <= 0) {
			if (ret < 0)
				md_env_add_fixed(ap); /* ends in garbage */
			break;
		}
	}
}

static const char *md_env_s(const struct md_env_ap *ap, size_t off)
{
	return ap->pool.data + off;
}

static int md_env_write_nstring_off(struct buf *out,
				    const struct md_env_ap *ap, size_t off)
{
	if (off == MD_ENV_NONE)
		return buf_append(out, "NIL", 3);
	return md_env_string(out, md_env_s(ap, off), strlen(md_env_s(ap, off)));
}

/* Parse an address header value and write its ENVELOPE address list. */
static int md_env_write_addresses(struct buf *out, const char *value,
				  size_t len)
{
	struct md_env_ap ap;
	size_t i;
	int ret = 0;

	memset(&ap, 0, sizeof(ap));
	buf_init(&ap.pool, 0);
	buf_init(&ap.str, 0);
	buf_init(&ap.comment, 0);
	md_env_addr_clear(&ap.cur);
	md_rfc822_init(&ap.r, value, len, &ap.comment);
	if (md_rfc822_skip_lwsp(&ap.r) > 0)
		md_env_address_list(&ap);
	if (ap.oom || ap.r.oom) {
		ret = -1;
	} else if (ap.n == 0) {
		ret = buf_append(out, "NIL", 3);
	} else {
		ret = buf_putc(out, '(');
		for (i = 0; i < ap.n && ret == 0; i++) {
			const struct md_addr *a = &ap.list[i];

			ret = buf_putc(out, '(');
			if (ret == 0 && a->name == MD_ENV_NONE)
				ret = buf_append(out, "NIL", 3);
			else if (ret == 0)
				ret = md_env_string_human(out,
					md_env_s(&ap, a->name),
					strlen(md_env_s(&ap, a->name)));
			if (ret == 0)
				ret = buf_putc(out, ' ');
			if (ret == 0)
				ret = md_env_write_nstring_off(out, &ap, a->route);
			if (ret == 0)
				ret = buf_putc(out, ' ');
			if (ret == 0)
				ret = md_env_write_nstring_off(out, &ap,
							       a->mailbox);
			if (ret == 0)
				ret = buf_putc(out, ' ');
			if (ret == 0)
				ret = md_env_write_nstring_off(out, &ap,
							       a->domain);
			if (ret == 0)
				ret = buf_putc(out, ')');
		}
		if (ret == 0)
			ret = buf_putc(out, ')');
	}
	free(ap.list);
	buf_free(&ap.pool);
	buf_free(&ap.str);
	buf_free(&ap.comment);
	return ret;
}

/* ------------------------------------------------------------------ */
/* ENVELOPE */

enum md_env_field {
	MD_ENV_DATE,
	MD_ENV_SUBJECT,
	MD_ENV_FROM,
	MD_ENV_SENDER,
	MD_ENV_REPLY_TO,
	MD_ENV_TO,
	MD_ENV_CC,
	MD_ENV_BCC,
	MD_ENV_IN_REPLY_TO,
	MD_ENV_MESSAGE_ID,
	MD_ENV_COUNT
};

static const char *const md_env_names[MD_ENV_COUNT] = {
	"Date", "Subject", "From", "Sender", "Reply-To", "To", "Cc", "Bcc",
	"In-Reply-To", "Message-ID",
};

/* Whether an address list has at least one address, as NIL vs list. */
static int md_env_has_addresses(const char *value, size_t len)
{
	struct buf tmp;
	int ret;

	buf_init(&tmp, 0);
	ret = md_env_write_addresses(&tmp, value, len);
	if (ret == 0)
		ret = !(tmp.len == 3 && memcmp(tmp.data, "NIL", 3) == 0);
	buf_free(&tmp);
	return ret;
}

int md_env_write(struct buf *out, const char *msg, size_t hdr_off,
		 size_t hdr_len)
{
	struct md_field fields[MD_ENV_COUNT];
	bool seen[MD_ENV_COUNT] = { false };
	struct buf vals[MD_ENV_COUNT];
	struct md_hdr_iter it;
	struct md_field f;
	int i, ret = 0;

	md_mime_hdr_init(&it, msg, hdr_off, hdr_len);
	while (md_mime_hdr_next(&it, &f) > 0) {
		for (i = 0; i < MD_ENV_COUNT; i++) {
			/* a repeated field: the last one counts, as in
			 * Dovecot (RFC 5322 §3.6 allows only one) */
			if (md_mime_field_is(msg, &f, md_env_names[i])) {
				fields[i] = f;
				seen[i] = true;
				break;
			}
		}
	}
	for (i = 0; i < MD_ENV_COUNT; i++) {
		buf_init(&vals[i], 0);
		if (seen[i] && md_mime_field_value(msg, &fields[i], &vals[i]) < 0)
			ret = -1;
	}
#define MD_ENV_V(i) (vals[i].data != NULL ? vals[i].data : "")
	if (ret == 0)
		ret = buf_putc(out, '(');
	if (ret == 0)
		ret = md_env_nstring_nolf(out, MD_ENV_V(MD_ENV_DATE),
					  vals[MD_ENV_DATE].len,
					  !seen[MD_ENV_DATE]);
	if (ret == 0)
		ret = buf_putc(out, ' ');
	if (ret == 0) {
		if (!seen[MD_ENV_SUBJECT])
			ret = buf_append(out, "NIL", 3);
		else
			ret = md_env_string_human(out, MD_ENV_V(MD_ENV_SUBJECT),
						  vals[MD_ENV_SUBJECT].len);
	}
	for (i = MD_ENV_FROM; i <= MD_ENV_BCC && ret == 0; i++) {
		int src = i;

		/* RFC 3501 §7.4.2: sender and reply-to default to from */
		if ((i == MD_ENV_SENDER || i == MD_ENV_REPLY_TO) &&
		    (!seen[i] || md_env_has_addresses(MD_ENV_V(i),
						      vals[i].len) == 0))
			src = MD_ENV_FROM;
		ret = buf_putc(out, ' ');
		if (ret == 0 && !seen[src])
			ret = buf_append(out, "NIL", 3);
		else if (ret == 0)
			ret = md_env_write_addresses(out, MD_ENV_V(src),
						     vals[src].len);
	}
	for (i = MD_ENV_IN_REPLY_TO; i <= MD_ENV_MESSAGE_ID && ret == 0; i++) {
		ret = buf_putc(out, ' ');
		if (ret == 0)
			ret = md_env_nstring_nolf(out, MD_ENV_V(i), vals[i].len,
						  !seen[i]);
	}
#undef MD_ENV_V
	if (ret == 0)
		ret = buf_putc(out, ')');
	for (i = 0; i < MD_ENV_COUNT; i++)
		buf_free(&vals[i]);
	return ret;
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t md_env_days(int64_t y, int64_t m, int64_t d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int64_t md_env_sent_date(const char *msg, size_t hdr_off, size_t hdr_len)
{
	struct mailimf_date_time *dt = NULL;
	struct md_hdr_iter it;
	struct md_field f;
	struct buf v;
	size_t idx = 0;
	int64_t t = 0;
	int zone;

	bool found = false;

	md_mime_hdr_init(&it, msg, hdr_off, hdr_len);
	while (!found && md_mime_hdr_next(&it, &f) > 0)
		found = md_mime_field_is(msg, &f, "Date");
	if (!found)
		return 0;
	buf_init(&v, 0);
	if (md_mime_field_value(msg, &f, &v) < 0 || v.len == 0) {
		buf_free(&v);
		return 0;
	}
	/* libetpan's single-value date parser on the bounded, unfolded
	 * value (LIBRARIES.md §1) */
	if (mailimf_date_time_parse(v.data, v.len, &idx, &dt) ==
	    MAILIMF_NO_ERROR && dt != NULL) {
		if (dt->dt_month >= 1 && dt->dt_month <= 12 &&
		    dt->dt_day >= 1 && dt->dt_day <= 31 &&
		    dt->dt_hour >= 0 && dt->dt_hour <= 23 &&
		    dt->dt_min >= 0 && dt->dt_min <= 59 &&
		    dt->dt_sec >= 0 && dt->dt_sec <= 60 &&
		    dt->dt_zone >= -9959 && dt->dt_zone <= 9959) {
			/* RFC 5322 §4.3 obs-year: two digits are 1950-2049,
			 * three digits count from 1900 */
			if (dt->dt_year >= 0 && dt->dt_year < 50)
				dt->dt_year += 2000;
			else if (dt->dt_year >= 50 && dt->dt_year < 1000)
				dt->dt_year += 1900;
			zone = dt->dt_zone < 0 ? -dt->dt_zone : dt->dt_zone;
			t = md_env_days(dt->dt_year, dt->dt_month,
					dt->dt_day) * 86400 +
				dt->dt_hour * 3600 + dt->dt_min * 60 +
				dt->dt_sec;
			/* RFC 5322 §3.3: the zone is the local offset */
			t -= (dt->dt_zone < 0 ? -1 : 1) *
				((zone / 100) * 3600 + (zone % 100) * 60);
		}
		mailimf_date_time_free(dt);
	}
	buf_free(&v);
	return t;
}

int md_env_references(const char *msg, size_t hdr_off, size_t hdr_len,
		      struct buf *out)
{
	struct md_field last, f;
	struct md_hdr_iter it;
	struct buf v;
	bool found = false;
	size_t i, from = 0;
	int ret = 0;

	/* a repeated field: the last one counts, as for ENVELOPE */
	md_mime_hdr_init(&it, msg, hdr_off, hdr_len);
	while (md_mime_hdr_next(&it, &f) > 0) {
		if (md_mime_field_is(msg, &f, "References")) {
			last = f;
			found = true;
		}
	}
	if (!found)
		return 0;
	buf_init(&v, 0);
	if (md_mime_field_value(msg, &last, &v) < 0) {
		buf_free(&v);
		return -1;
	}
	/* the tail when too long: the nearest ancestors come last */
	if (v.len > MD_META_REFERENCES_MAX) {
		from = v.len - MD_META_REFERENCES_MAX;
		while (from < v.len && v.data[from] != '<')
			from++;
	}
	for (i = from; i < v.len && ret == 0; i++) {
		if (v.data[i] == '\r')
			continue;
		ret = buf_putc(out, v.data[i] == '\n' ? ' ' : v.data[i]);
	}
	buf_free(&v);
	return ret;
}
