/* IMAP pure parts: the command reader (fed through a model of core/conn's
 * line and bytes modes, with the input split at every offset), literal
 * limits, the argument cursor, sequence sets, dates, string quoting and
 * the command table, NOTIFY's arguments. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_private.h"

#define TEST_LINE_MAX 8192
#define TEST_APPEND_MAX (1024 * 1024)

/* ---- a model of core/conn feeding the reader ------------------------------ */

struct feed {
	struct imap_reader r;
	char pending[65536];
	size_t n_pending;
	bool bytes_mode;
	uint64_t bytes_left;
	/* what came out */
	char cmds[8][4096];
	size_t cmd_len[8];
	size_t n_cmds;
	unsigned continuations; /* "+" the server would send */
	unsigned toobig, bad, closes;
};

static void feed_init(struct feed *f)
{
	memset(f, 0, sizeof(*f));
	imap_reader_init(&f->r, TEST_APPEND_MAX);
}

static void feed_result(struct feed *f, enum imap_read_result res)
{
	switch (res) {
	case IMAP_READ_MORE:
		break;
	case IMAP_READ_COMMAND:
		ck_assert_uint_lt(f->n_cmds, 8);
		ck_assert_uint_lt(f->r.cmd.len, sizeof(f->cmds[0]));
		memcpy(f->cmds[f->n_cmds], f->r.cmd.data, f->r.cmd.len);
		f->cmd_len[f->n_cmds++] = f->r.cmd.len;
		imap_reader_reset(&f->r);
		break;
	case IMAP_READ_LITERAL:
		if (f->r.literal_sync && !f->r.discard)
			f->continuations++;
		f->bytes_mode = f->r.literal_left > 0;
		f->bytes_left = f->r.literal_left;
		break;
	case IMAP_READ_TOOBIG:
		f->toobig++;
		if (f->r.discard && f->r.literal_left > 0) {
			f->bytes_mode = true;
			f->bytes_left = f->r.literal_left;
		} else {
			imap_reader_reset(&f->r);
		}
		break;
	case IMAP_READ_BAD:
		f->bad++;
		imap_reader_reset(&f->r);
		break;
	case IMAP_READ_CLOSE:
		f->closes++;
		break;
	}
}

/* Process what is pending the way conn_process_input does. */
static void feed_process(struct feed *f)
{
	for (;;) {
		if (f->bytes_mode) {
			size_t n = f->n_pending < f->bytes_left ? f->n_pending : (size_t)f->bytes_left;
			if (n == 0)
				return;
			f->bytes_left -= n;
			if (f->bytes_left == 0)
				f->bytes_mode = false;
			imap_reader_bytes(&f->r, f->pending, n);
			memmove(f->pending, f->pending + n, f->n_pending - n);
			f->n_pending -= n;
		} else {
			char *eol = memchr(f->pending, '\n', f->n_pending);
			size_t len, take;
			if (eol == NULL)
				return;
			take = (size_t)(eol - f->pending) + 1;
			len = take - 1;
			if (len > 0 && f->pending[len - 1] == '\r')
				len--;
			{
				char line[65536];
				memcpy(line, f->pending, len);
				memmove(f->pending, f->pending + take, f->n_pending - take);
				f->n_pending -= take;
				feed_result(f, imap_reader_line(&f->r, line, len));
			}
		}
	}
}

static void feed_bytes(struct feed *f, const char *data, size_t len)
{
	ck_assert_uint_le(f->n_pending + len, sizeof(f->pending));
	memcpy(f->pending + f->n_pending, data, len);
	f->n_pending += len;
	feed_process(f);
}

static void feed_split(struct feed *f, const char *input, size_t len, size_t at)
{
	feed_init(f);
	feed_bytes(f, input, at);
	feed_bytes(f, input + at, len - at);
}

START_TEST(test_imap_reader_every_split)
{
	static const char input[] =
		"a1 LOGIN {5}\r\nalice {7+}\r\nsec\"ret\r\n"
		"a2 SELECT \"INBOX\"\r\n"
		"a3 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)])\r\n"
		"a4 SEARCH TEXT {0}\r\n\r\n";
	static const char want1[] = "a1 LOGIN {5}\r\nalice {7+}\r\nsec\"ret";
	size_t len = sizeof(input) - 1;

	for (size_t at = 0; at <= len; at++) {
		struct feed f;

		feed_split(&f, input, len, at);
		ck_assert_uint_eq(f.n_cmds, 4);
		ck_assert_uint_eq(f.cmd_len[0], strlen(want1));
		ck_assert(memcmp(f.cmds[0], want1, strlen(want1)) == 0);
		ck_assert(memcmp(f.cmds[1], "a2 SELECT \"INBOX\"", f.cmd_len[1]) == 0);
		ck_assert_uint_eq(f.cmd_len[3], strlen("a4 SEARCH TEXT {0}\r\n"));
		ck_assert_uint_eq(f.continuations, 2); /* {5} and {0}, not {7+} */
		ck_assert_uint_eq(f.toobig + f.bad + f.closes, 0);
		imap_reader_free(&f.r);
	}
}
END_TEST

START_TEST(test_imap_reader_literal_limits)
{
	struct feed f;
	static const char huge[] = "t1 LOGIN {4294967295}\r\nt2 NOOP\r\n";
	static const char nonsync[] = "t1 LOGIN a {5000+}\r\n";
	char *big;
	size_t blen;

	/* a huge synchronising literal: refused before any "+", nothing kept */
	feed_init(&f);
	feed_bytes(&f, huge, sizeof(huge) - 1);
	ck_assert_uint_eq(f.toobig, 1);
	ck_assert_uint_eq(f.continuations, 0);
	ck_assert_uint_eq(f.n_cmds, 1);
	ck_assert(memcmp(f.cmds[0], "t2 NOOP", 7) == 0);
	imap_reader_free(&f.r);

	/* {18446744073709551616} overflows: refused too */
	feed_init(&f);
	feed_bytes(&f, "t1 X {99999999999999999999999}\r\n", 32);
	ck_assert_uint_eq(f.toobig, 1);
	imap_reader_free(&f.r);

	/* RFC 7888: a non-synchronising literal over 4096 outside APPEND is
	 * refused, its octets skipped and the command's rest ignored */
	blen = strlen(nonsync) + 5000 + strlen(" x\r\nt3 NOOP\r\n");
	big = malloc(blen + 1);
	ck_assert_ptr_nonnull(big);
	strcpy(big, nonsync);
	memset(big + strlen(nonsync), 'p', 5000);
	strcpy(big + strlen(nonsync) + 5000, " x\r\nt3 NOOP\r\n");
	for (size_t at = 0; at <= blen; at += 97) {
		feed_split(&f, big, blen, at);
		ck_assert_uint_eq(f.toobig, 1);
		ck_assert_uint_eq(f.n_cmds, 1);
		ck_assert(memcmp(f.cmds[0], "t3 NOOP", 7) == 0);
		imap_reader_free(&f.r);
	}
	free(big);

	/* the same size is fine for APPEND, and APPEND literals stay out of
	 * the command buffer */
	feed_init(&f);
	ck_assert_int_eq(imap_reader_line(&f.r, "t4 APPEND INBOX {5000+}", 23), IMAP_READ_LITERAL);
	ck_assert(f.r.is_append);
	ck_assert_uint_eq(f.r.literal_left, 5000);
	imap_reader_free(&f.r);

	/* over the APPEND limit: TOOBIG */
	feed_init(&f);
	ck_assert_int_eq(imap_reader_line(&f.r, "t5 APPEND INBOX {2000000}", 25), IMAP_READ_TOOBIG);
	imap_reader_free(&f.r);

	/* a non-synchronising literal too large to skip: hang up */
	feed_init(&f);
	ck_assert_int_eq(imap_reader_line(&f.r, "t6 LOGIN {999999999+}", 21), IMAP_READ_CLOSE);
	imap_reader_free(&f.r);

	/* a NUL in a command line */
	feed_init(&f);
	ck_assert_int_eq(imap_reader_line(&f.r, "t7 NOOP\0", 8), IMAP_READ_BAD);
	imap_reader_free(&f.r);

	/* more literals than IMAP_LITERALS_MAX in one command */
	feed_init(&f);
	for (unsigned i = 0; i < IMAP_LITERALS_MAX; i++) {
		ck_assert_int_eq(imap_reader_line(&f.r, "{1}", 3), IMAP_READ_LITERAL);
		imap_reader_bytes(&f.r, "x", 1);
	}
	ck_assert_int_eq(imap_reader_line(&f.r, "{1}", 3), IMAP_READ_TOOBIG);
	imap_reader_free(&f.r);
}
END_TEST

START_TEST(test_imap_reader_tag)
{
	struct imap_reader r;
	char tag[IMAP_TAG_MAX + 1];

	imap_reader_init(&r, 100);
	imap_reader_tag(&r, tag);
	ck_assert_str_eq(tag, "*");
	ck_assert_int_eq(imap_reader_line(&r, "abc.1 LOGIN {3}", 15), IMAP_READ_LITERAL);
	imap_reader_tag(&r, tag);
	ck_assert_str_eq(tag, "abc.1");
	imap_reader_free(&r);
}
END_TEST

/* ---- the cursor ------------------------------------------------------------ */

static struct imap_cursor cur(char *s)
{
	struct imap_cursor c;

	imap_cursor_init(&c, s, strlen(s));
	return c;
}

START_TEST(test_imap_cursor_strings)
{
	char in[] = "atom \"q\\\"uo\\\\ted\" {3}\r\nl t NIL \"x";
	char out[32];
	const char *s;
	size_t len;
	struct imap_cursor c = cur(in);

	ck_assert(imap_atom(&c, out, sizeof(out), NULL));
	ck_assert_str_eq(out, "atom");
	ck_assert(imap_sp(&c));
	ck_assert(imap_astring(&c, &s, &len));
	ck_assert_uint_eq(len, 8);
	ck_assert(memcmp(s, "q\"uo\\ted", 8) == 0);
	ck_assert(imap_sp(&c));
	ck_assert(imap_astring(&c, &s, &len));
	ck_assert_uint_eq(len, 3);
	ck_assert(memcmp(s, "l t", 3) == 0);
	ck_assert(imap_sp(&c));
	ck_assert(imap_nstring(&c, &s, &len));
	ck_assert_ptr_null(s);
	ck_assert(imap_sp(&c));
	ck_assert(!imap_astring(&c, &s, &len)); /* unterminated */
	ck_assert_ptr_nonnull(c.err);

	{
		char bad[] = "\"a\\nb\"";
		struct imap_cursor c2 = cur(bad);
		ck_assert(!imap_string(&c2, &s, &len)); /* only \" and \\ escape */
	}
	{
		char bad[] = "{10}\r\nshort";
		struct imap_cursor c2 = cur(bad);
		ck_assert(!imap_string(&c2, &s, &len));
	}
	{
		char longer[] = "abcdefghijklmnopqrstuvwxyz0123456789";
		struct imap_cursor c2 = cur(longer);
		ck_assert(!imap_atom(&c2, out, sizeof(out), NULL));
	}
	{
		char t[] = "a+b ";
		struct imap_cursor c2 = cur(t);
		ck_assert(imap_tag(&c2, out, sizeof(out)));
		ck_assert_str_eq(out, "a"); /* '+' ends a tag */
	}
	{
		char pat[] = "INBOX/%* rest";
		struct imap_cursor c2 = cur(pat);
		ck_assert(imap_list_mailbox(&c2, out, sizeof(out)));
		ck_assert_str_eq(out, "INBOX/%*");
	}
}
END_TEST

START_TEST(test_imap_seqset)
{
	char in[] = "5:3,1,*,10:*,2";
	struct imap_cursor c = cur(in);
	struct imap_seqset set;

	ck_assert(imap_seqset(&c, &set));
	ck_assert(imap_at_end(&c));
	ck_assert_uint_eq(set.n, 5);
	ck_assert_uint_eq(set.ranges[0].lo, 3);
	ck_assert_uint_eq(set.ranges[0].hi, 5);
	imap_seqset_normalise(&set, 7);
	/* 1:5 merged, 7:10 ('*' = 7 swapped with 10) */
	ck_assert_uint_eq(set.n, 2);
	ck_assert_uint_eq(set.ranges[0].lo, 1);
	ck_assert_uint_eq(set.ranges[0].hi, 5);
	ck_assert_uint_eq(set.ranges[1].lo, 7);
	ck_assert_uint_eq(set.ranges[1].hi, 10);
	ck_assert(imap_seqset_contains(&set, 4));
	ck_assert(!imap_seqset_contains(&set, 6));
	ck_assert(imap_seqset_contains(&set, 10));
	ck_assert(!imap_seqset_contains(&set, 11));
	free(set.ranges);

	{
		char d[] = "$";
		struct imap_cursor c2 = cur(d);
		ck_assert(imap_seqset(&c2, &set));
		ck_assert(set.saved);
	}
	{
		char z[] = "0:4";
		struct imap_cursor c2 = cur(z);
		ck_assert(!imap_seqset(&c2, &set));
	}
	{
		char z[] = "1,";
		struct imap_cursor c2 = cur(z);
		ck_assert(!imap_seqset(&c2, &set));
	}
	{
		char z[] = "4294967296";
		struct imap_cursor c2 = cur(z);
		ck_assert(!imap_seqset(&c2, &set));
	}
	{
		/* more ranges than IMAP_SEQ_RANGES_MAX: [LIMIT] */
		size_t n = (IMAP_SEQ_RANGES_MAX + 1) * 2;
		char *many = malloc(n + 1);
		struct imap_cursor c2;
		ck_assert_ptr_nonnull(many);
		for (size_t i = 0; i < n; i += 2) {
			many[i] = '1';
			many[i + 1] = ',';
		}
		many[n - 1] = '\0';
		imap_cursor_init(&c2, many, n - 1);
		ck_assert(!imap_seqset(&c2, &set));
		ck_assert_ptr_nonnull(strstr(c2.err, "LIMIT"));
		free(many);
	}
}
END_TEST

START_TEST(test_imap_dates)
{
	int64_t t;
	char out[64];

	{
		char d[] = "1-Feb-1994";
		struct imap_cursor c = cur(d);
		ck_assert(imap_date(&c, &t));
		ck_assert_int_eq(t, 760060800);
	}
	{
		char d[] = "\"01-feb-1994\"";
		struct imap_cursor c = cur(d);
		ck_assert(imap_date(&c, &t));
		ck_assert_int_eq(t, 760060800);
	}
	{
		char d[] = "1-Fex-1994";
		struct imap_cursor c = cur(d);
		ck_assert(!imap_date(&c, &t));
	}
	{
		char d[] = "\" 1-Feb-1994 10:00:00 +0100\"";
		struct imap_cursor c = cur(d);
		ck_assert(imap_date_time(&c, &t));
		ck_assert_int_eq(t, 760060800 + 9 * 3600);
	}
	{
		char d[] = "\"17-Jul-1996 02:44:25 -0700\"";
		struct imap_cursor c = cur(d);
		ck_assert(imap_date_time(&c, &t));
		imap_format_date_time(t, out, sizeof(out));
		ck_assert_str_eq(out, "17-Jul-1996 09:44:25 +0000");
	}
	{
		char d[] = "\"17-Jul-1996 25:44:25 -0700\"";
		struct imap_cursor c = cur(d);
		ck_assert(!imap_date_time(&c, &t));
	}
}
END_TEST

START_TEST(test_imap_buf_string)
{
	struct buf b;

	buf_init(&b, 0);
	imap_buf_string(&b, "a \"b\" \\c", 8);
	buf_cstr(&b);
	ck_assert_str_eq(b.data, "\"a \\\"b\\\" \\\\c\"");
	buf_reset(&b);
	imap_buf_string(&b, "l1\r\nl2", 6);
	buf_cstr(&b);
	ck_assert_str_eq(b.data, "{6}\r\nl1\r\nl2");
	buf_reset(&b);
	imap_buf_string(&b, "", 0);
	buf_cstr(&b);
	ck_assert_str_eq(b.data, "\"\"");
	buf_free(&b);
}
END_TEST

/* RFC 3629 validity as IMAP4rev2 mailbox names need it (RFC 9051 §5.1) */
START_TEST(test_imap_utf8_valid)
{
	static const char *const good[] = {
		"", "INBOX", "Entw\xc3\xbcrfe", "\xe6\x97\xa5\xe6\x9c\xac", "\xf0\x9f\x93\xa7 & co",
		"\xef\xbf\xbf", "\xf4\x8f\xbf\xbf", "\xc2\x80",
	};
	static const char *const bad[] = {
		"\xff", "\x80", "a\xc3", "\xc3(", "\xc0\xaf", "\xc1\xbf", /* overlong */
		"\xe0\x80\xaf", "\xf0\x80\x80\xaf",                  /* overlong */
		"\xed\xa0\x80", "\xed\xbf\xbf",                      /* surrogates */
		"\xf4\x90\x80\x80", "\xf5\x80\x80\x80",              /* above U+10FFFF */
		"\xe6\x97", "\xf0\x9f\x93",                          /* cut short */
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(imap_utf8_valid(good[i], strlen(good[i])), "good %zu", i);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!imap_utf8_valid(bad[i], strlen(bad[i])), "bad %zu", i);
	/* the length counts, not a NUL */
	ck_assert(!imap_utf8_valid("\xc3\xbc", 1));
	ck_assert(imap_utf8_valid("a\0b", 3));
}
END_TEST

START_TEST(test_imap_buf_utf8_string)
{
	struct buf b;

	buf_init(&b, 0);
	imap_buf_utf8_string(&b, "Entw\xc3\xbcrfe \"x\"", 13);
	buf_cstr(&b);
	ck_assert_str_eq(b.data, "\"Entw\xc3\xbcrfe \\\"x\\\"\"");
	buf_reset(&b);
	/* rev1 form: 8-bit is a literal */
	imap_buf_string(&b, "Entw\xc3\xbcrfe", 9);
	buf_cstr(&b);
	ck_assert_str_eq(b.data, "{9}\r\nEntw\xc3\xbcrfe");
	buf_reset(&b);
	/* not UTF-8, or a line break: a literal */
	imap_buf_utf8_string(&b, "a\xff", 2);
	buf_cstr(&b);
	ck_assert_str_eq(b.data, "{2}\r\na\xff");
	buf_reset(&b);
	imap_buf_utf8_string(&b, "\xc3\xbc\n", 3);
	buf_cstr(&b);
	ck_assert_str_eq(b.data, "{3}\r\n\xc3\xbc\n");
	buf_free(&b);
}
END_TEST

START_TEST(test_imap_table_states)
{
	ck_assert_ptr_nonnull(imap_command_find("capability"));
	ck_assert_ptr_null(imap_command_find("XYZZY"));
	ck_assert(imap_command_find("LOGIN")->states == IMAP_IN_NOAUTH);
	ck_assert(imap_command_find("FETCH")->states == IMAP_IN_SEL);
	ck_assert(imap_command_find("FETCH")->flags & IMAP_CMD_UID);
	ck_assert(!(imap_command_find("SELECT")->flags & IMAP_CMD_UID));
	ck_assert(imap_command_find("SELECT")->states == IMAP_IN_LOGGED);
	ck_assert(imap_command_find("NOOP")->states == IMAP_IN_ANY);
	ck_assert(imap_command_find("SORT")->flags & IMAP_CMD_UID);
	ck_assert(imap_command_find("THREAD")->states == IMAP_IN_SEL);
	ck_assert(imap_command_find("notify")->states == IMAP_IN_LOGGED);
}
END_TEST

/* ---- NOTIFY arguments (RFC 5465 §3.1, §8) --------------------------------- */

/* text is what follows "NOTIFY" (leading SP included) */
static enum imap_notify_parse_result notify_parse(const char *text, size_t len,
						  struct imap_notify_spec *spec)
{
	static struct imap_session s; /* rev1 names; the parser reads no more */
	char *copy = malloc(len + 1);
	struct imap_cursor c;
	enum imap_notify_parse_result r;

	ck_assert_ptr_nonnull(copy);
	memcpy(copy, text, len);
	copy[len] = '\0';
	imap_cursor_init(&c, copy, len);
	r = imap_notify_parse(&s, &c, spec);
	free(copy);
	return r;
}

static enum imap_notify_parse_result notify_try(const char *text)
{
	struct imap_notify_spec *spec = malloc(sizeof(*spec));
	enum imap_notify_parse_result r;

	ck_assert_ptr_nonnull(spec);
	r = notify_parse(text, strlen(text), spec);
	imap_notify_spec_clear(spec);
	free(spec);
	return r;
}

START_TEST(test_imap_notify_parse)
{
	struct imap_notify_spec *spec = malloc(sizeof(*spec));
	const unsigned msg = IMAP_NOTIFY_EV_NEW | IMAP_NOTIFY_EV_EXPUNGE;
	const char *full = " SET STATUS (selected (MessageNew (UID FLAGS ENVELOPE) MessageExpunge "
			   "FlagChange)) (personal (MessageNew MessageExpunge MailboxName))";

	ck_assert_ptr_nonnull(spec);
	ck_assert_int_eq(notify_parse(full, strlen(full), spec), IMAP_NOTIFY_PARSE_SET);
	ck_assert(spec->status);
	ck_assert_uint_eq(spec->n_groups, 2);
	ck_assert_uint_eq(spec->selected_events, msg | IMAP_NOTIFY_EV_FLAGS);
	ck_assert(!spec->selected_delayed);
	ck_assert_ptr_nonnull(spec->fetch);
	ck_assert_uint_eq(imap_notify_events_for(spec, "INBOX", false), msg | IMAP_NOTIFY_EV_NAME);
	ck_assert_uint_eq(imap_notify_events_for(spec, "a/b", true), msg | IMAP_NOTIFY_EV_NAME);
	imap_notify_spec_clear(spec);

	/* every cut of it is refused (but the one after the first group,
	 * a command of its own), never read past its end (ASan) */
	for (size_t cut = 0, one = (size_t)(strstr(full, "Change))") + 8 - full);
	     cut < strlen(full); cut++) {
		ck_assert_msg((notify_parse(full, cut, spec) == IMAP_NOTIFY_PARSE_SET) == (cut == one),
			      "cut at %zu", cut);
		imap_notify_spec_clear(spec);
	}

	full = " set (SUBTREE (Lists \"a b\") (messagenew MESSAGEEXPUNGE)) (inboxes NONE) "
	       "(selected-delayed (MessageNew MessageExpunge)) (subscribed (SubscriptionChange))";
	ck_assert_int_eq(notify_parse(full, strlen(full), spec), IMAP_NOTIFY_PARSE_SET);
	ck_assert(!spec->status && spec->selected_delayed && spec->fetch == NULL);
	ck_assert_uint_eq(spec->selected_events, msg);
	ck_assert_uint_eq(imap_notify_events_for(spec, "Lists", false), msg);
	ck_assert_uint_eq(imap_notify_events_for(spec, "Lists/x/y", false), msg);
	ck_assert_uint_eq(imap_notify_events_for(spec, "a b", false), msg);
	ck_assert_uint_eq(imap_notify_events_for(spec, "Listsx", false), 0);
	ck_assert_uint_eq(imap_notify_events_for(spec, "INBOX", false), 0);
	ck_assert_uint_eq(imap_notify_events_for(spec, "Other", true), IMAP_NOTIFY_EV_SUBS);
	imap_notify_spec_clear(spec);

	ck_assert_int_eq(notify_try(" NONE"), IMAP_NOTIFY_PARSE_NONE);
	ck_assert_int_eq(notify_try(" none"), IMAP_NOTIFY_PARSE_NONE);
	ck_assert_int_eq(notify_try(" SET (mailboxes inbox (MessageNew MessageExpunge))"),
			 IMAP_NOTIFY_PARSE_SET);
	/* header sections only, and only with PEEK (RFC 5465 §3.1's example) */
	ck_assert_int_eq(notify_try(" SET (selected (MessageNew (uid body.peek[header.fields "
				    "(from to subject)] BODY.PEEK[1.MIME] RFC822.HEADER "
				    "BODY.PEEK[HEADER]) MessageExpunge))"), IMAP_NOTIFY_PARSE_SET);

	static const char *const bad[] = {
		"", " ", " NONE x", " SET", " SET ", " SET STATUS", " SET STATUS ", " SETX (personal NONE)",
		" SET (personal)", " SET (personal ())", " SET (personal NONE", " SET (personal NONE))",
		" SET (nosuch NONE)", " SET (subtree (MessageNew MessageExpunge))",
		" SET (mailboxes () (MessageNew MessageExpunge))",
		" SET (personal (MessageNew))", " SET (personal (MessageExpunge))",
		" SET (personal (FlagChange))", " SET (personal (MessageNew FlagChange))",
		" SET (selected (MailboxName))", " SET (selected-delayed (SubscriptionChange))",
		" SET (personal (MessageNew (UID) MessageExpunge))",
		" SET (selected (MessageNew (BODY[]) MessageExpunge))",
		" SET (selected (MessageNew (BODY[HEADER]) MessageExpunge))",
		" SET (selected (MessageNew (BODY.PEEK[TEXT]) MessageExpunge))",
		" SET (selected (MessageNew (RFC822.TEXT) MessageExpunge))",
		" SET (selected (MessageNew (BINARY.PEEK[1]) MessageExpunge))",
		" SET (selected (MessageNew (NOSUCH) MessageExpunge))",
		" SET (selected (MessageNew () MessageExpunge))",
		" SET (selected NONE) (selected-delayed NONE)",
		" SET (personal NONE)(inboxes NONE)", " SET  (personal NONE)",
		" SET (personal NONE) extra",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(notify_try(bad[i]) == IMAP_NOTIFY_PARSE_BAD, "BAD: \"%s\"", bad[i]);

	/* known but unsupported, or unknown (event-ext): NO [BADEVENT] */
	ck_assert_int_eq(notify_try(" SET (personal (AnnotationChange))"), IMAP_NOTIFY_PARSE_BADEVENT);
	ck_assert_int_eq(notify_try(" SET (personal (MessageNew MessageExpunge "
				    "MailboxMetadataChange))"), IMAP_NOTIFY_PARSE_BADEVENT);
	ck_assert_int_eq(notify_try(" SET (inboxes (ServerMetadataChange XFoo))"),
			 IMAP_NOTIFY_PARSE_BADEVENT);
	/* a syntax error wins over an unsupported event */
	ck_assert_int_eq(notify_try(" SET (personal (XFoo)"), IMAP_NOTIFY_PARSE_BAD);

	/* limits: names, groups */
	{
		char text[2048] = " SET (mailboxes (";
		for (int i = 0; i <= IMAP_NOTIFY_NAMES_MAX; i++)
			snprintf(text + strlen(text), sizeof(text) - strlen(text), "%sm%d",
				 i > 0 ? " " : "", i);
		strcat(text, ") (MessageNew MessageExpunge))");
		ck_assert_int_eq(notify_try(text), IMAP_NOTIFY_PARSE_LIMIT);
		strcpy(text, " SET");
		for (int i = 0; i <= IMAP_NOTIFY_GROUPS_MAX; i++)
			strcat(text, " (inboxes NONE)");
		ck_assert_int_eq(notify_try(text), IMAP_NOTIFY_PARSE_LIMIT);
	}
	free(spec);
}
END_TEST

/* RFC 5256 §2.1 base subjects (input already RFC 2047-decoded; the
 * decoding itself is the store's md_header_utf8(), checked below too). */
START_TEST(test_imap_subject_base)
{
	static const struct {
		const char *in, *base;
		bool reply;
	} cases[] = {
		{ "Hello", "Hello", false },
		{ "", "", false },
		{ "   ", "", false },
		{ "Re: Hello", "Hello", true },
		{ "RE:Hello", "Hello", true },
		{ "re :  Hello  ", "Hello", true },
		{ "Fwd: Hello", "Hello", true },
		{ "FW: Hello", "Hello", true },
		{ "Re: Re: Fwd: re: Hello", "Hello", true },
		{ "Re[2]: Hello", "Hello", true },
		{ "Re [2]: Hello", "Hello", true },
		{ "[list] Re: Hello", "Hello", true },
		{ "[list] [x] Re: [y] Hello", "Hello", true },
		{ "[list] Hello", "Hello", false },
		{ "[list]", "[list]", false },          /* nothing would be left */
		{ "[a][b]", "[b]", false },             /* one blob stays */
		{ "Hello (fwd)", "Hello", true },
		{ "Hello (FWD) (fwd)  ", "Hello", true },
		{ "[Fwd: Hello]", "Hello", true },
		{ "[fwd: Re: [list] Hello (fwd)]", "Hello", true },
		{ "[fwd: [fwd: Hello]]", "Hello", true },
		{ "Re: [fwd: Hello]", "Hello", true },
		{ "[fwd: Hello", "[fwd: Hello", false },
		{ "Hello\t\tworld", "Hello world", false },
		{ "Hello \r\n world", "Hello world", false },
		{ "Read: this", "Read: this", false },
		{ "Rex: this", "Rex: this", false },
		{ "Re", "Re", false },
		{ "Re:", "", true },
		{ "[] Re: x", "x", true },
		{ "Re: \xc3\xa9t\xc3\xa9", "\xc3\xa9t\xc3\xa9", true },
	};
	struct buf b;
	bool reply;

	buf_init(&b, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		buf_reset(&b);
		ck_assert_int_eq(imap_subject_base(cases[i].in, strlen(cases[i].in), &b, &reply), 0);
		ck_assert_msg(b.len == strlen(cases[i].base) &&
			      memcmp(b.data, cases[i].base, b.len) == 0,
			      "base of \"%s\": \"%.*s\", want \"%s\"", cases[i].in, (int)b.len,
			      b.data, cases[i].base);
		ck_assert_msg(reply == cases[i].reply, "reply of \"%s\"", cases[i].in);
	}
	buf_free(&b);
}
END_TEST

/* RFC 5051 i;unicode-casemap form (RFC 5256 §5: SORT and THREAD with
 * I18NLEVEL=1): titlecase, then NFKD; ASCII letters in upper case. */
START_TEST(test_imap_subject_casemap)
{
	static const struct {
		const char *in, *form;
	} cases[] = {
		{ "abc", "ABC" },
		{ "aBc_", "ABC_" },
		{ "\xc3\xa9mile", "E\xcc\x81MILE" }, /* émile: E + U+0301 */
		{ "\xc3\x89" "clair", "E\xcc\x81" "CLAIR" }, /* Éclair */
		{ "\xc3\xbc" "ber", "U\xcc\x88" "BER" }, /* über */
		{ "\xc3\x9c" "ber", "U\xcc\x88" "BER" }, /* Über */
		{ "\xce\xb1\xce\xb2", "\xce\x91\xce\x92" }, /* αβ: ΑΒ */
		{ "stra\xc3\x9f" "e", "STRA\xc3\x9f" "E" }, /* ß has no one-character titlecase */
		{ "\xef\xac\x81", "FI" }, /* U+FB01 ligature */
		{ "\xff", "\xff" }, /* not UTF-8: kept */
		{ "", "" },
	};
	struct buf b;

	buf_init(&b, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		buf_reset(&b);
		ck_assert_int_eq(imap_subject_casemap(cases[i].in, strlen(cases[i].in), &b), 0);
		ck_assert_msg(b.len == strlen(cases[i].form) &&
			      memcmp(b.data, cases[i].form, b.len) == 0,
			      "case %zu: \"%.*s\"", i, (int)b.len, b.data);
	}
	/* appends, and a cap drops what exceeds it */
	buf_free(&b);
	buf_init(&b, 4);
	ck_assert_int_eq(buf_append(&b, "x", 1), 0);
	ck_assert_int_eq(imap_subject_casemap("\xc3\xa9t\xc3\xa9", 6, &b), 0);
	ck_assert(b.len == 4 && memcmp(b.data, "xE\xcc\x81", 4) == 0);
	buf_free(&b);
}
END_TEST

/* Step 1's RFC 2047 decoding (the store's), then the base subject. */
START_TEST(test_imap_subject_base_encoded)
{
	static const struct {
		const char *in, *base;
	} cases[] = {
		{ "=?utf-8?q?Re=3A_Hello?=", "Hello" },
		{ "=?ISO-8859-1?Q?Re:_=E9t=E9?=", "\xc3\xa9t\xc3\xa9" },
		{ "Re: =?utf-8?b?W2Z3ZDogw6l0w6ld?=", "\xc3\xa9t\xc3\xa9" },
		{ "=?utf-8?q?a?= =?utf-8?q?b?=", "ab" },
		{ "=?utf-8?q?a?= b", "a b" },
		{ "Fwd: =?bogus-charset?q?x?=", "x" },
	};
	struct buf b;

	buf_init(&b, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *dec;
		size_t len;

		ck_assert_int_eq(md_header_utf8(cases[i].in, strlen(cases[i].in), &dec, &len), 0);
		buf_reset(&b);
		ck_assert_int_eq(imap_subject_base(dec, len, &b, NULL), 0);
		ck_assert_msg(b.len == strlen(cases[i].base) &&
			      memcmp(b.data, cases[i].base, b.len) == 0,
			      "base of \"%s\": \"%.*s\"", cases[i].in, (int)b.len, b.data);
		free(dec);
	}
	buf_free(&b);
}
END_TEST

/* The quirks table: exact names and prefixes, ASCII case-insensitive;
 * near misses get nothing. */
START_TEST(test_imap_quirks_table)
{
	ck_assert_uint_eq(imap_quirks_for("iPhone Mail"), IMAP_QUIRK_CHANGEDSINCE_ZERO);
	ck_assert_uint_eq(imap_quirks_for("iphone mail"), IMAP_QUIRK_CHANGEDSINCE_ZERO);
	ck_assert_uint_eq(imap_quirks_for("Mac OS X Mail"), IMAP_QUIRK_CHANGEDSINCE_ZERO);
	ck_assert_uint_eq(imap_quirks_for("com.apple.email.maild"), IMAP_QUIRK_CHANGEDSINCE_ZERO);
	ck_assert_uint_eq(imap_quirks_for("Microsoft Outlook"), IMAP_QUIRK_RFC822_PEEK);
	ck_assert_uint_eq(imap_quirks_for("Thunderbird"), IMAP_QUIRK_TRAILING_SEP);
	ck_assert_uint_eq(imap_quirks_for("Thunderbirds"), 0);
	ck_assert_uint_eq(imap_quirks_for("iPhone Mail 2"), 0);
	ck_assert_uint_eq(imap_quirks_for("Outlook"), 0);
	ck_assert_uint_eq(imap_quirks_for(""), 0);
	ck_assert_uint_eq(imap_quirks_for("Mutt"), 0);
}
END_TEST

/* ---- the sort-key cache ------------------------------------------------------ */

/* An entry of n messages (UIDs 1..n) of mailbox (user, mbox, uv), with
 * arena octets of strings, one reference for the caller. */
static struct imap_sort_keys *sort_keys_new(uint32_t user, uint32_t mbox, uint32_t uv, size_t n,
					    size_t arena)
{
	struct imap_sort_keys *k = calloc(1, sizeof(*k));

	ck_assert_ptr_nonnull(k);
	k->user_id = user;
	k->mailbox_id = mbox;
	k->uidvalidity = uv;
	k->n = n;
	k->uids = calloc(n + 1, sizeof(*k->uids));
	k->msgs = calloc(n + 1, sizeof(*k->msgs));
	k->arena = calloc(arena + 1, 1);
	k->arena_len = arena;
	ck_assert(k->uids != NULL && k->msgs != NULL && k->arena != NULL);
	for (size_t i = 0; i < n; i++)
		k->uids[i] = k->msgs[i].uid = (uint32_t)i + 1;
	atomic_init(&k->refs, 1);
	return k;
}

/* Found by user, mailbox and UIDVALIDITY; another UIDVALIDITY (a rebuilt
 * mailbox) drops the old entry; a second put of a mailbox replaces the
 * first; references keep an entry alive after the cache let it go. */
START_TEST(test_imap_sort_cache_lookup)
{
	struct imap_sort_cache *c = imap_sort_cache_new(1 << 20, 4);
	struct imap_sort_keys *a = sort_keys_new(1, 2, 100, 3, 10), *b, *got;

	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_null(imap_sort_cache_get(c, 1, 2, 100));
	imap_sort_cache_put(c, a);
	got = imap_sort_cache_get(c, 1, 2, 100);
	ck_assert_ptr_eq(got, a);
	ck_assert_uint_eq(atomic_load(&a->refs), 3); /* ours, the cache's, got */
	imap_sort_keys_unref(got);
	ck_assert_ptr_null(imap_sort_cache_get(c, 1, 3, 100));
	ck_assert_ptr_null(imap_sort_cache_get(c, 2, 2, 100));
	/* a new UIDVALIDITY: the old keys are dropped, not returned */
	ck_assert_ptr_null(imap_sort_cache_get(c, 1, 2, 101));
	ck_assert_uint_eq(atomic_load(&a->refs), 1);
	ck_assert_ptr_null(imap_sort_cache_get(c, 1, 2, 100));
	/* a newer entry of the mailbox replaces the older */
	imap_sort_cache_put(c, a);
	b = sort_keys_new(1, 2, 100, 5, 20);
	imap_sort_cache_put(c, b);
	ck_assert_uint_eq(atomic_load(&a->refs), 1);
	got = imap_sort_cache_get(c, 1, 2, 100);
	ck_assert_ptr_eq(got, b);
	ck_assert_uint_eq(got->uids[4], 5);
	imap_sort_keys_unref(got);
	imap_sort_keys_unref(a); /* freed here: the cache let it go */
	imap_sort_cache_free(c);
	ck_assert_uint_eq(atomic_load(&b->refs), 1); /* still ours */
	ck_assert_uint_eq(b->msgs[2].uid, 3);
	imap_sort_keys_unref(b);
}
END_TEST

/* The bounds: at most max_entries mailboxes and max_bytes octets, the
 * least recently used out first; an entry larger than the whole budget
 * is not kept. */
START_TEST(test_imap_sort_cache_bounds)
{
	struct imap_sort_keys *k[4], *big, *got;
	size_t one, budget;
	struct imap_sort_cache *c;

	for (uint32_t i = 0; i < 4; i++)
		k[i] = sort_keys_new(1, i + 1, 7, 10, 100);
	one = imap_sort_keys_bytes(k[0]);
	budget = 3 * one;
	c = imap_sort_cache_new(budget, 8);
	for (int i = 0; i < 3; i++)
		imap_sort_cache_put(c, k[i]);
	/* mailbox 1 used again: mailbox 2 is now the least recently used */
	got = imap_sort_cache_get(c, 1, 1, 7);
	ck_assert_ptr_eq(got, k[0]);
	imap_sort_keys_unref(got);
	imap_sort_cache_put(c, k[3]); /* over the octets: one must go */
	ck_assert_ptr_null(imap_sort_cache_get(c, 1, 2, 7));
	ck_assert_uint_eq(atomic_load(&k[1]->refs), 1);
	for (uint32_t m = 1; m <= 4; m++) {
		if (m == 2)
			continue;
		got = imap_sort_cache_get(c, 1, m, 7);
		ck_assert_ptr_eq(got, k[m - 1]);
		imap_sort_keys_unref(got);
	}
	/* larger than the whole cache: not kept, nothing evicted */
	big = sort_keys_new(1, 9, 7, 10, budget);
	imap_sort_cache_put(c, big);
	ck_assert_ptr_null(imap_sort_cache_get(c, 1, 9, 7));
	ck_assert_uint_eq(atomic_load(&big->refs), 1);
	got = imap_sort_cache_get(c, 1, 1, 7);
	ck_assert_ptr_eq(got, k[0]);
	imap_sort_keys_unref(got);
	imap_sort_keys_unref(big);
	imap_sort_cache_free(c);
	/* by count: two mailboxes at most */
	c = imap_sort_cache_new(budget * 10, 2);
	imap_sort_cache_put(c, k[0]);
	imap_sort_cache_put(c, k[1]);
	imap_sort_cache_put(c, k[2]);
	ck_assert_ptr_null(imap_sort_cache_get(c, 1, 1, 7));
	got = imap_sort_cache_get(c, 1, 3, 7);
	ck_assert_ptr_eq(got, k[2]);
	imap_sort_keys_unref(got);
	imap_sort_cache_free(c);
	for (int i = 0; i < 4; i++) {
		ck_assert_uint_eq(atomic_load(&k[i]->refs), 1);
		imap_sort_keys_unref(k[i]);
	}
}
END_TEST

static Suite *imap_suite(void)
{
	Suite *s = suite_create("imap");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_imap_reader_every_split);
	tcase_add_test(tc, test_imap_reader_literal_limits);
	tcase_add_test(tc, test_imap_reader_tag);
	tcase_add_test(tc, test_imap_cursor_strings);
	tcase_add_test(tc, test_imap_seqset);
	tcase_add_test(tc, test_imap_dates);
	tcase_add_test(tc, test_imap_buf_string);
	tcase_add_test(tc, test_imap_utf8_valid);
	tcase_add_test(tc, test_imap_buf_utf8_string);
	tcase_add_test(tc, test_imap_table_states);
	tcase_add_test(tc, test_imap_notify_parse);
	tcase_add_test(tc, test_imap_subject_base);
	tcase_add_test(tc, test_imap_subject_casemap);
	tcase_add_test(tc, test_imap_subject_base_encoded);
	tcase_add_test(tc, test_imap_quirks_table);
	tcase_add_test(tc, test_imap_sort_cache_lookup);
	tcase_add_test(tc, test_imap_sort_cache_bounds);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(imap_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
