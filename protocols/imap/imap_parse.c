/* The IMAP command reader and argument cursor (RFC 3501 §9 grammar).
 *
 * The reader is fed the connection's events (lines, literal bytes) and
 * resumes wherever input stops; it only decides where a command ends and
 * whether a literal may be read.  The cursor then walks the complete
 * command: handlers take their arguments one at a time, so a syntax error
 * is found before any side effect.
 */
#include "imap_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the reader ----------------------------------------------------------- */

void imap_reader_init(struct imap_reader *r, uint64_t append_max)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->cmd, IMAP_COMMAND_MAX);
	r->literal_max = append_max;
}

void imap_reader_free(struct imap_reader *r)
{
	buf_free(&r->cmd);
}

void imap_reader_reset(struct imap_reader *r)
{
	uint64_t max = r->literal_max;

	if (r->cmd.cap > IMAP_READER_KEEP)
		buf_free(&r->cmd);
	buf_reset(&r->cmd);
	r->literal_len = r->literal_left = 0;
	r->literal_sync = r->in_literal = r->discard = r->is_append = false;
	r->literals = 0;
	r->literal_max = max;
}

/* A line ending in "{n}" or "{n+}": 1 with the size (UINT64_MAX when it
 * does not fit) and kind; 0 when the line ends otherwise. */
int imap_literal_header(const char *line, size_t len, uint64_t *n_r, bool *sync_r)
{
	size_t end, i;
	uint64_t n = 0;

	if (len < 3 || line[len - 1] != '}')
		return 0;
	end = len - 1;
	*sync_r = true;
	if (line[end - 1] == '+') {
		*sync_r = false;
		end--;
	}
	i = end;
	while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9')
		i--;
	if (i == end || i == 0 || line[i - 1] != '{')
		return 0;
	for (size_t k = i; k < end; k++) {
		unsigned d = (unsigned)(line[k] - '0');
		if (n > (UINT64_MAX - d) / 10) {
			n = UINT64_MAX;
			break;
		}
		n = n * 10 + d;
	}
	*n_r = n;
	return 1;
}

/* Is the first line "tag APPEND ..."?  Decides the literal limit. */
static bool imap_reader_sees_append(const char *line, size_t len)
{
	const char *sp = memchr(line, ' ', len);
	size_t rest;

	if (sp == NULL)
		return false;
	rest = len - (size_t)(sp + 1 - line);
	return rest >= 7 && strncasecmp(sp + 1, "APPEND ", 7) == 0;
}

enum imap_read_result imap_reader_line(struct imap_reader *r, const char *line, size_t len)
{
	uint64_t n = 0, limit;
	bool sync = true;
	int lit;

	if (r->discard) {
		/* The rest of a refused command: skip it, literals too. */
		if (imap_literal_header(line, len, &n, &sync) == 1 && !sync) {
			if (n > r->literal_max)
				return IMAP_READ_CLOSE;
			r->in_literal = true;
			r->literal_len = r->literal_left = n;
			r->literal_sync = false;
			return IMAP_READ_LITERAL;
		}
		imap_reader_reset(r);
		return IMAP_READ_MORE;
	}
	if (memchr(line, '\0', len) != NULL)
		return IMAP_READ_BAD;
	if (r->cmd.len == 0)
		r->is_append = imap_reader_sees_append(line, len);
	lit = imap_literal_header(line, len, &n, &sync);
	if (lit == 0) {
		if (buf_append(&r->cmd, line, len) < 0)
			return IMAP_READ_BAD;
		return IMAP_READ_COMMAND;
	}
	limit = r->is_append ? r->literal_max : IMAP_LITERAL_MAX;
	if ((!sync && !r->is_append && n > IMAP_NONSYNC_LITERAL_MAX) || n > limit ||
	    r->literals >= IMAP_LITERALS_MAX ||
	    (!r->is_append && r->cmd.len + len + 2 + n > IMAP_COMMAND_MAX)) {
		if (r->cmd.len == 0)
			buf_append(&r->cmd, line, len); /* for imap_reader_tag() */
		if (sync)
			return IMAP_READ_TOOBIG; /* nothing was sent: no "+" */
		/* RFC 7888 §4: the octets follow anyway; skip them when
		 * that is affordable, else hang up. */
		if (n > r->literal_max && n > IMAP_LITERAL_MAX)
			return IMAP_READ_CLOSE;
		r->discard = true;
		r->in_literal = true;
		r->literal_len = r->literal_left = n;
		r->literal_sync = false;
		return IMAP_READ_TOOBIG;
	}
	if (buf_append(&r->cmd, line, len) < 0 || buf_append(&r->cmd, "\r\n", 2) < 0)
		return IMAP_READ_BAD;
	r->literals++;
	r->in_literal = true;
	r->literal_len = r->literal_left = n;
	r->literal_sync = sync;
	return IMAP_READ_LITERAL;
}

enum imap_read_result imap_reader_bytes(struct imap_reader *r, const char *data, size_t len)
{
	if (!r->in_literal)
		return IMAP_READ_MORE;
	if (len > r->literal_left)
		len = (size_t)r->literal_left;
	r->literal_left -= len;
	if (!r->discard && buf_append(&r->cmd, data, len) < 0)
		return IMAP_READ_BAD; /* cannot happen: checked at the header */
	if (r->literal_left == 0)
		r->in_literal = false;
	return IMAP_READ_MORE;
}

void imap_reader_tag(const struct imap_reader *r, char *out)
{
	struct imap_cursor c;
	char *copy;
	size_t n = r->cmd.len < IMAP_TAG_MAX + 1 ? r->cmd.len : IMAP_TAG_MAX + 1;

	strcpy(out, "*");
	if (n == 0)
		return;
	copy = malloc(n);
	if (copy == NULL)
		return;
	memcpy(copy, r->cmd.data, n);
	imap_cursor_init(&c, copy, n);
	if (!imap_tag(&c, out, IMAP_TAG_MAX + 1))
		strcpy(out, "*");
	free(copy);
}

/* ---- the cursor ----------------------------------------------------------- */

void imap_cursor_init(struct imap_cursor *c, char *data, size_t len)
{
	c->p = data;
	c->end = data + len;
	c->err = NULL;
	c->depth = 0;
}

static bool imap_fail(struct imap_cursor *c, const char *why)
{
	if (c->err == NULL)
		c->err = why;
	return false;
}

bool imap_at_end(const struct imap_cursor *c)
{
	return c->p >= c->end;
}

bool imap_peek(const struct imap_cursor *c, char ch)
{
	return c->p < c->end && *c->p == ch;
}

bool imap_char(struct imap_cursor *c, char ch)
{
	if (!imap_peek(c, ch))
		return false;
	c->p++;
	return true;
}

bool imap_sp(struct imap_cursor *c)
{
	if (imap_char(c, ' '))
		return true;
	return imap_fail(c, "Missing argument");
}

/* RFC 3501 §9: ATOM-CHAR is any CHAR except atom-specials. */
static bool imap_is_atom_char(unsigned char ch)
{
	if (ch <= 0x1f || ch >= 0x7f)
		return false;
	return strchr("(){ %*\"\\]", ch) == NULL;
}

bool imap_atom(struct imap_cursor *c, char *out, size_t outlen, const char *extra)
{
	size_t n = 0;

	while (c->p < c->end) {
		unsigned char ch = (unsigned char)*c->p;
		if (!imap_is_atom_char(ch) && (extra == NULL || ch == '\0' || strchr(extra, ch) == NULL))
			break;
		if (n + 1 >= outlen)
			return imap_fail(c, "Argument too long");
		out[n++] = (char)ch;
		c->p++;
	}
	out[n] = '\0';
	if (n == 0)
		return imap_fail(c, "Invalid argument");
	return true;
}

bool imap_tag(struct imap_cursor *c, char *out, size_t outlen)
{
	size_t n = 0;

	while (c->p < c->end) {
		unsigned char ch = (unsigned char)*c->p;
		if (!(imap_is_atom_char(ch) || ch == ']') || ch == '+')
			break;
		if (n + 1 >= outlen)
			return imap_fail(c, "Tag too long");
		out[n++] = (char)ch;
		c->p++;
	}
	out[n] = '\0';
	if (n == 0)
		return imap_fail(c, "Invalid tag");
	return true;
}

static bool imap_quoted(struct imap_cursor *c, const char **s_r, size_t *len_r)
{
	char *start, *w;

	if (!imap_char(c, '"'))
		return imap_fail(c, "Expected a string");
	start = w = c->p;
	while (c->p < c->end) {
		char ch = *c->p++;
		if (ch == '"') {
			*s_r = start;
			*len_r = (size_t)(w - start);
			return true;
		}
		if (ch == '\\') {
			if (c->p >= c->end || (*c->p != '"' && *c->p != '\\'))
				return imap_fail(c, "Invalid escape in quoted string");
			ch = *c->p++;
		} else if (ch == '\r' || ch == '\n' || ch == '\0') {
			return imap_fail(c, "Invalid character in quoted string");
		}
		*w++ = ch; /* in place: w never passes the read position */
	}
	return imap_fail(c, "Unterminated quoted string");
}

static bool imap_literal(struct imap_cursor *c, const char **s_r, size_t *len_r)
{
	uint64_t n = 0;
	bool digits = false;

	if (!imap_char(c, '{'))
		return imap_fail(c, "Expected a string");
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		n = n * 10 + (uint64_t)(*c->p++ - '0');
		digits = true;
		if (n > IMAP_COMMAND_MAX)
			return imap_fail(c, "Literal too long");
	}
	imap_char(c, '+');
	if (!digits || !imap_char(c, '}') || !imap_char(c, '\r') || !imap_char(c, '\n'))
		return imap_fail(c, "Invalid literal");
	if ((uint64_t)(c->end - c->p) < n)
		return imap_fail(c, "Literal too short");
	*s_r = c->p;
	*len_r = (size_t)n;
	c->p += n;
	return true;
}

bool imap_string(struct imap_cursor *c, const char **s_r, size_t *len_r)
{
	if (imap_peek(c, '{'))
		return imap_literal(c, s_r, len_r);
	return imap_quoted(c, s_r, len_r);
}

bool imap_astring(struct imap_cursor *c, const char **s_r, size_t *len_r)
{
	char *start = c->p;

	if (imap_peek(c, '"') || imap_peek(c, '{'))
		return imap_string(c, s_r, len_r);
	while (c->p < c->end && (imap_is_atom_char((unsigned char)*c->p) || *c->p == ']'))
		c->p++;
	if (c->p == start)
		return imap_fail(c, "Expected a string");
	*s_r = start;
	*len_r = (size_t)(c->p - start);
	return true;
}

bool imap_nstring(struct imap_cursor *c, const char **s_r, size_t *len_r)
{
	if (c->end - c->p >= 3 && strncasecmp(c->p, "NIL", 3) == 0 &&
	    (c->end - c->p == 3 || !imap_is_atom_char((unsigned char)c->p[3]))) {
		c->p += 3;
		*s_r = NULL;
		*len_r = 0;
		return true;
	}
	return imap_string(c, s_r, len_r);
}

bool imap_astring_copy(struct imap_cursor *c, char *out, size_t outlen)
{
	const char *s;
	size_t len;

	if (!imap_astring(c, &s, &len))
		return false;
	if (len >= outlen)
		return imap_fail(c, "Argument too long");
	if (memchr(s, '\0', len) != NULL)
		return imap_fail(c, "NUL in argument");
	memcpy(out, s, len);
	out[len] = '\0';
	return true;
}

bool imap_list_mailbox(struct imap_cursor *c, char *out, size_t outlen)
{
	size_t n = 0;

	if (imap_peek(c, '"') || imap_peek(c, '{'))
		return imap_astring_copy(c, out, outlen);
	while (c->p < c->end) {
		unsigned char ch = (unsigned char)*c->p;
		if (!imap_is_atom_char(ch) && ch != '%' && ch != '*' && ch != ']')
			break;
		if (n + 1 >= outlen)
			return imap_fail(c, "Argument too long");
		out[n++] = (char)ch;
		c->p++;
	}
	out[n] = '\0';
	if (n == 0)
		return imap_fail(c, "Expected a mailbox pattern");
	return true;
}

bool imap_number64(struct imap_cursor *c, uint64_t *n_r)
{
	uint64_t n = 0;
	const char *start = c->p;

	while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		unsigned d = (unsigned)(*c->p - '0');
		if (n > (UINT64_MAX - d) / 10)
			return imap_fail(c, "Number too large");
		n = n * 10 + d;
		c->p++;
	}
	if (c->p == start)
		return imap_fail(c, "Expected a number");
	*n_r = n;
	return true;
}

bool imap_number(struct imap_cursor *c, uint32_t *n_r, bool nonzero)
{
	uint64_t n;

	if (!imap_number64(c, &n))
		return false;
	if (n > UINT32_MAX)
		return imap_fail(c, "Number too large");
	if (nonzero && n == 0)
		return imap_fail(c, "Zero is not a valid number here");
	*n_r = (uint32_t)n;
	return true;
}

static bool imap_seq_number(struct imap_cursor *c, uint32_t *n_r)
{
	if (imap_char(c, '*')) {
		*n_r = UINT32_MAX;
		return true;
	}
	if (!imap_number(c, n_r, true))
		return imap_fail(c, "Invalid sequence set");
	if (*n_r == UINT32_MAX)
		(*n_r)--; /* keep UINT32_MAX for '*' */
	return true;
}

bool imap_seqset(struct imap_cursor *c, struct imap_seqset *set_r)
{
	size_t cap = 0;

	memset(set_r, 0, sizeof(*set_r));
	if (imap_char(c, '$')) {
		set_r->saved = true;
		return true;
	}
	for (;;) {
		struct imap_range r;

		if (!imap_seq_number(c, &r.lo))
			goto fail;
		r.hi = r.lo;
		if (imap_char(c, ':') && !imap_seq_number(c, &r.hi))
			goto fail;
		if (r.lo > r.hi) {
			uint32_t t = r.lo;
			r.lo = r.hi;
			r.hi = t;
		}
		if (set_r->n == cap) {
			struct imap_range *nr;
			if (cap >= IMAP_SEQ_RANGES_MAX) {
				imap_fail(c, "[LIMIT] Too many ranges in the sequence set");
				goto fail;
			}
			cap = cap == 0 ? 16 : cap * 2;
			nr = realloc(set_r->ranges, cap * sizeof(*nr));
			if (nr == NULL) {
				imap_fail(c, "Out of memory");
				goto fail;
			}
			set_r->ranges = nr;
		}
		set_r->ranges[set_r->n++] = r;
		if (!imap_char(c, ','))
			return true;
	}
fail:
	free(set_r->ranges);
	set_r->ranges = NULL;
	set_r->n = 0;
	return false;
}

static int imap_range_cmp(const void *a, const void *b)
{
	const struct imap_range *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

void imap_seqset_normalise(struct imap_seqset *set, uint32_t star)
{
	size_t w = 0;

	for (size_t i = 0; i < set->n; i++) {
		struct imap_range *r = &set->ranges[i];
		if (r->lo == UINT32_MAX)
			r->lo = star;
		if (r->hi == UINT32_MAX)
			r->hi = star;
		if (r->lo > r->hi) {
			uint32_t t = r->lo;
			r->lo = r->hi;
			r->hi = t;
		}
	}
	if (set->n < 2)
		return;
	qsort(set->ranges, set->n, sizeof(set->ranges[0]), imap_range_cmp);
	for (size_t i = 1; i < set->n; i++) {
		struct imap_range *last = &set->ranges[w];
		if (set->ranges[i].lo <= last->hi || set->ranges[i].lo - 1 == last->hi) {
			if (set->ranges[i].hi > last->hi)
				last->hi = set->ranges[i].hi;
		} else {
			set->ranges[++w] = set->ranges[i];
		}
	}
	set->n = w + 1;
}

bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n)
{
	size_t lo = 0, hi = set->n;

	/* normalised: sorted and disjoint */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (n < set->ranges[mid].lo)
			hi = mid;
		else if (n > set->ranges[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

/* ---- dates ---------------------------------------------------------------- */

static const char *const imap_months[12] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

static bool imap_digits(struct imap_cursor *c, size_t min, size_t max, int *v_r)
{
	size_t n = 0;
	int v = 0;

	while (n < max && c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		v = v * 10 + (*c->p++ - '0');
		n++;
	}
	*v_r = v;
	return n >= min;
}

static bool imap_date_text(struct imap_cursor *c, struct tm *tm, bool fixed_day)
{
	int day, year, mon = -1;

	if (fixed_day && imap_char(c, ' ')) {
		if (!imap_digits(c, 1, 1, &day))
			return false;
	} else if (!imap_digits(c, 1, 2, &day)) {
		return false;
	}
	if (!imap_char(c, '-') || c->end - c->p < 4)
		return false;
	for (int i = 0; i < 12; i++)
		if (strncasecmp(c->p, imap_months[i], 3) == 0)
			mon = i;
	if (mon < 0)
		return false;
	c->p += 3;
	if (!imap_char(c, '-') || !imap_digits(c, 4, 4, &year))
		return false;
	if (day < 1 || day > 31)
		return false;
	memset(tm, 0, sizeof(*tm));
	tm->tm_mday = day;
	tm->tm_mon = mon;
	tm->tm_year = year - 1900;
	return true;
}

bool imap_date(struct imap_cursor *c, int64_t *t_r)
{
	bool quoted = imap_char(c, '"');
	struct tm tm;

	if (!imap_date_text(c, &tm, false) || (quoted && !imap_char(c, '"')))
		return imap_fail(c, "Invalid date");
	*t_r = (int64_t)timegm(&tm);
	return true;
}

bool imap_date_time(struct imap_cursor *c, int64_t *t_r)
{
	struct tm tm;
	int h, m, sec, zone;
	int sign;

	if (!imap_char(c, '"') || !imap_date_text(c, &tm, true) || !imap_char(c, ' ') ||
	    !imap_digits(c, 2, 2, &h) || !imap_char(c, ':') || !imap_digits(c, 2, 2, &m) ||
	    !imap_char(c, ':') || !imap_digits(c, 2, 2, &sec) || !imap_char(c, ' '))
		return imap_fail(c, "Invalid date-time");
	if (imap_char(c, '+'))
		sign = 1;
	else if (imap_char(c, '-'))
		sign = -1;
	else
		return imap_fail(c, "Invalid date-time zone");
	if (!imap_digits(c, 4, 4, &zone) || !imap_char(c, '"') || h > 23 || m > 59 || sec > 60)
		return imap_fail(c, "Invalid date-time");
	tm.tm_hour = h;
	tm.tm_min = m;
	tm.tm_sec = sec;
	*t_r = (int64_t)timegm(&tm) - sign * ((zone / 100) * 3600 + (zone % 100) * 60);
	return true;
}

void imap_format_date_time(int64_t t, char *out, size_t outlen)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	snprintf(out, outlen, "%02d-%s-%04d %02d:%02d:%02d +0000", tm.tm_mday,
		 imap_months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* ---- output ---------------------------------------------------------------- */

/* RFC 3629 §4: no overlong forms, no surrogates, nothing above U+10FFFF. */
bool imap_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;

	while (p < end) {
		unsigned char c = *p++;
		size_t more;
		uint32_t cp;

		if (c < 0x80)
			continue;
		if (c >= 0xc2 && c <= 0xdf) {
			more = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			more = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			more = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if ((size_t)(end - p) < more)
			return false;
		for (size_t i = 0; i < more; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		p += more;
		if ((more == 2 && cp < 0x800) || (more == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
	}
	return true;
}

static int imap_buf_string_any(struct buf *b, const char *s, size_t len, bool utf8)
{
	bool quotable = len <= 1024;

	for (size_t i = 0; quotable && i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '\r' || ch == '\n' || ch == '\0' || (ch >= 0x80 && !utf8))
			quotable = false;
	}
	/* RFC 9051 §9 QUOTED-CHAR: UTF-8 only when it is valid */
	if (quotable && utf8 && !imap_utf8_valid(s, len))
		quotable = false;
	if (!quotable) {
		if (buf_appendf(b, "{%zu}\r\n", len) < 0)
			return -1;
		return buf_append(b, s, len);
	}
	if (buf_putc(b, '"') < 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if ((s[i] == '"' || s[i] == '\\') && buf_putc(b, '\\') < 0)
			return -1;
		if (buf_putc(b, s[i]) < 0)
			return -1;
	}
	return buf_putc(b, '"');
}

int imap_buf_string(struct buf *b, const char *s, size_t len)
{
	return imap_buf_string_any(b, s, len, false);
}

int imap_buf_utf8_string(struct buf *b, const char *s, size_t len)
{
	return imap_buf_string_any(b, s, len, true);
}
