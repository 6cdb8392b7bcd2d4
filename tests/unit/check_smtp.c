/* protocols/smtp: command, path and parameter parsers, the CRLF line
 * splitter, the DATA/BDAT unstuffer (every input also fed split at every
 * offset and one octet at a time), the SMTP smuggling variants, the header
 * block scanner and the From: parser, and the Received: pieces. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "smtp_private.h"

/* ---- commands ----------------------------------------------------------- */

START_TEST(test_smtp_command_split)
{
	struct smtp_command c;

	smtp_parse_command("ehlo client.test", 16, &c);
	ck_assert_int_eq(c.verb, SMTP_VERB_EHLO);
	ck_assert_int_eq((int)c.args_len, 11);
	ck_assert_int_eq(strncmp(c.args, "client.test", 11), 0);

	smtp_parse_command("DATA  ", 6, &c);
	ck_assert_int_eq(c.verb, SMTP_VERB_DATA);
	ck_assert_int_eq((int)c.args_len, 0);

	smtp_parse_command("StartTLS", 8, &c);
	ck_assert_int_eq(c.verb, SMTP_VERB_STARTTLS);

	/* RFC 2033 §4.1: LMTP's greeting verb */
	smtp_parse_command("lhlo mta.example", 16, &c);
	ck_assert_int_eq(c.verb, SMTP_VERB_LHLO);
	ck_assert_int_eq(strncmp(c.args, "mta.example", c.args_len), 0);

	smtp_parse_command("MAILX FROM:<a@b>", 16, &c);
	ck_assert_int_eq(c.verb, SMTP_VERB_UNKNOWN);
	smtp_parse_command("", 0, &c);
	ck_assert_int_eq(c.verb, SMTP_VERB_UNKNOWN);
	smtp_parse_command("MAIL  FROM:<a@b>", 16, &c);
	ck_assert_int_eq(c.verb, SMTP_VERB_MAIL);
	ck_assert_int_eq(strncmp(c.args, "FROM:<a@b>", c.args_len), 0);
}
END_TEST

/* ---- paths -------------------------------------------------------------- */

static int path(const char *s, bool null_ok, bool pm_ok, bool utf8, struct smtp_path *p)
{
	const char *end;
	int rc = smtp_parse_path(s, null_ok, pm_ok, utf8, p, &end);

	if (rc == 0)
		ck_assert_int_eq(*end, '\0');
	return rc;
}

START_TEST(test_smtp_path_valid)
{
	static const struct {
		const char *in, *addr;
	} cases[] = {
		{ "<alice@example.test>", "alice@example.test" },
		{ "<Alice@EXAMPLE.Test>", "Alice@example.test" },
		{ "<a.b-c+tag@sub.example.test>", "a.b-c+tag@sub.example.test" },
		{ "<\"john.doe\"@example.test>", "john.doe@example.test" },
		{ "<\"john doe\"@example.test>", "\"john doe\"@example.test" },
		{ "<\"a\\\"b\"@example.test>", "\"a\\\"b\"@example.test" },
		{ "<@relay.test,@other.test:bob@example.test>", "bob@example.test" },
		{ "<bob@[192.0.2.1]>", "bob@[192.0.2.1]" },
		{ "<bob@[IPv6:2001:db8::1]>", "bob@[ipv6:2001:db8::1]" },
		{ "<bob@[x-tag:some-text]>", "bob@[x-tag:some-text]" },
		{ "<!#$%&'*+-/=?^_`{|}~@example.test>", "!#$%&'*+-/=?^_`{|}~@example.test" },
		{ "<a@localhost>", "a@localhost" },
	};
	struct smtp_path p;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_msg(path(cases[i].in, false, false, false, &p) == 0, "%s", cases[i].in);
		ck_assert_str_eq(p.addr, cases[i].addr);
		ck_assert(!p.null && !p.postmaster && !p.utf8);
		ck_assert_int_eq(p.addr[p.at], '@');
	}
	ck_assert_int_eq(path("<bob@[192.0.2.1]>", false, false, false, &p), 0);
	ck_assert(p.literal);

	ck_assert_int_eq(path("<>", true, false, false, &p), 0);
	ck_assert(p.null);
	ck_assert_int_eq(path("<>", false, false, false, &p), -1);
	ck_assert_int_eq(path("<Postmaster>", false, true, false, &p), 0);
	ck_assert(p.postmaster);
	ck_assert_int_eq(path("<postMASTER>", false, true, false, &p), 0);
	ck_assert_int_eq(path("<Postmaster>", false, false, false, &p), -1);

	/* RFC 6531: UTF-8 local part and domain */
	ck_assert_int_eq(path("<j\xc3\xb6rg@b\xc3\xbc\x63her.example>", false, false, true, &p), 0);
	ck_assert(p.utf8);
	ck_assert_int_eq(path("<j\xc3\xb6rg@example.test>", false, false, false, &p), -1);
	ck_assert_int_eq(path("<j\xc3@example.test>", false, false, true, &p), -1);
}
END_TEST

START_TEST(test_smtp_path_invalid)
{
	static const char *const bad[] = {
		"alice@example.test", "<alice@example.test", "<alice>", "<@example.test>",
		"<alice@>", "<.alice@example.test>", "<alice.@example.test>",
		"<al..ice@example.test>", "<alice@example..test>", "<alice@-example.test>",
		"<alice@example-.test>", "<alice@example.test.>", "<al ice@example.test>",
		"<alice@exa mple.test>", "<alice@exam_ple.test>", "<\"unterminated@example.test>",
		"<\"a\x01\"@example.test>", "<a\tb@example.test>", "<alice@[300.1.1.1]>",
		"<alice@[IPv6:zz::1]>", "<alice@[192.0.2.1>", "<@relay.test:>",
		"<@relay.test,bob@example.test>", "<alice@example.test>>", "<a@b@example.test>",
		"<a(comment)@example.test>",
	};
	char local65[100], longdom[400], ok64[100];
	struct smtp_path p;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *end;
		int rc = smtp_parse_path(bad[i], true, true, true, &p, &end);
		ck_assert_msg(rc == -1 || *end != '\0', "accepted %s", bad[i]);
	}
	/* RFC 5321 §4.5.3.1: 64-octet local part, 256-octet path */
	memset(ok64, 'a', 64);
	strcpy(ok64 + 64, "@example.test>");
	memmove(ok64 + 1, ok64, strlen(ok64) + 1);
	ok64[0] = '<';
	ck_assert_int_eq(path(ok64, false, false, false, &p), 0);
	memset(local65, 'a', 65);
	strcpy(local65 + 65, "@example.test>");
	memmove(local65 + 1, local65, strlen(local65) + 1);
	local65[0] = '<';
	ck_assert_int_eq(path(local65, false, false, false, &p), -1);
	strcpy(longdom, "<a@");
	for (int i = 0; i < 4; i++)
		strcat(longdom, "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij.");
	strcat(longdom, "test>"); /* 248-octet domain, 252-octet path: fine */
	ck_assert_int_eq(path(longdom, false, false, false, &p), 0);
	strcpy(longdom + strlen(longdom) - 5, "abcdefghij.test>"); /* 259 */
	ck_assert_int_eq(path(longdom, false, false, false, &p), -1);
}
END_TEST

START_TEST(test_smtp_mail_rcpt_keyword)
{
	struct smtp_path p;
	char reply[SMTP_REPLY_MAX];
	const char *rest;

	ck_assert_int_eq(smtp_parse_mail_from("FROM:<a@b.test> SIZE=10", &p, &rest, reply,
					      sizeof(reply)), 0);
	ck_assert_str_eq(p.addr, "a@b.test");
	ck_assert_str_eq(rest, " SIZE=10");
	ck_assert_int_eq(smtp_parse_mail_from("from: <a@b.test>", &p, &rest, reply, sizeof(reply)), 0);
	ck_assert_int_eq(smtp_parse_mail_from("FROM:<>", &p, &rest, reply, sizeof(reply)), 0);
	ck_assert(p.null);
	ck_assert_int_eq(smtp_parse_mail_from("FROM a@b.test", &p, &rest, reply, sizeof(reply)), -1);
	ck_assert_str_eq(reply, "501 5.5.4 Syntax: MAIL FROM: <address>");
	ck_assert_int_eq(smtp_parse_mail_from("FROM:a@b.test", &p, &rest, reply, sizeof(reply)), -1);
	ck_assert_str_eq(reply, "501 5.1.7 Bad sender address syntax");
	ck_assert_int_eq(smtp_parse_mail_from("FROM:<a@b.test>SIZE=1", &p, &rest, reply,
					      sizeof(reply)), -1);
	ck_assert_int_eq(smtp_parse_rcpt_to("TO:<Postmaster>", &p, &rest, reply, sizeof(reply)), 0);
	ck_assert(p.postmaster);
	ck_assert_int_eq(smtp_parse_rcpt_to("TO:<>", &p, &rest, reply, sizeof(reply)), -1);
	ck_assert_str_eq(reply, "501 5.1.3 Bad recipient address syntax");
}
END_TEST

/* ---- parameters -------------------------------------------------------- */

static int mailp(const char *s, unsigned ext, struct smtp_mail_params *mp, char *reply)
{
	return smtp_parse_mail_params(s, ext, 1000000, mp, reply, SMTP_REPLY_MAX);
}

START_TEST(test_smtp_mail_params)
{
	struct smtp_mail_params mp;
	char reply[SMTP_REPLY_MAX];

	ck_assert_int_eq(mailp("", 0, &mp, reply), 0);
	ck_assert(!mp.has_size && mp.body == SMTP_BODY_NONE);
	ck_assert_int_eq(mailp(" SIZE=1000 body=8bitmime SMTPUTF8 RET=HDRS ENVID=QQ+2B314", 0, &mp,
			       reply), 0);
	ck_assert(mp.has_size && mp.size == 1000 && mp.body == SMTP_BODY_8BITMIME && mp.smtputf8 &&
		  mp.ret == SMTP_RET_HDRS);
	ck_assert_str_eq(mp.envid, "QQ+2B314");
	ck_assert_int_eq(mailp(" BODY=7BIT RET=full", 0, &mp, reply), 0);
	ck_assert(mp.body == SMTP_BODY_7BIT && mp.ret == SMTP_RET_FULL);

	ck_assert_int_eq(mailp(" SIZE=1000001", 0, &mp, reply), -1);
	ck_assert_str_eq(reply, "552 5.3.4 Message size exceeds fixed maximum message size");
	ck_assert_int_eq(mailp(" SIZE=99999999999999999999", 0, &mp, reply), -1);
	ck_assert_str_eq(reply, "552 5.3.4 Message size exceeds fixed maximum message size");
	ck_assert_int_eq(mailp(" SIZE=123456789012345678901", 0, &mp, reply), -1);
	ck_assert_str_eq(reply, "501 5.5.4 Invalid value for MAIL parameter SIZE");
	ck_assert_int_eq(mailp(" SIZE=-1", 0, &mp, reply), -1);
	ck_assert_int_eq(mailp(" SIZE", 0, &mp, reply), -1);
	ck_assert_int_eq(mailp(" SIZE=1 SIZE=2", 0, &mp, reply), -1);
	ck_assert_str_eq(reply, "501 5.5.4 Duplicate MAIL parameter SIZE");
	ck_assert_int_eq(mailp(" FOO=bar", 0, &mp, reply), -1);
	ck_assert_str_eq(reply, "555 5.5.4 Unsupported MAIL parameter FOO");
	ck_assert_int_eq(mailp(" BODY=BINARYMIME", 0, &mp, reply), -1);
	ck_assert_str_eq(reply, "555 5.5.4 BODY=BINARYMIME is not supported");
	ck_assert_int_eq(mailp(" BODY=9BIT", 0, &mp, reply), -1);
	ck_assert_int_eq(mailp(" SMTPUTF8=yes", 0, &mp, reply), -1);
	ck_assert_int_eq(mailp(" RET=ALL", 0, &mp, reply), -1);
	ck_assert_int_eq(mailp(" ENVID=a=b", 0, &mp, reply), -1);
	ck_assert_str_eq(reply, "501 5.5.4 Syntax error in MAIL parameters");
	ck_assert_int_eq(mailp(" ENVID=a+zz", 0, &mp, reply), -1);
	ck_assert_int_eq(mailp(" ENVID=a+2b", 0, &mp, reply), -1); /* hexchar is upper case */
	ck_assert_int_eq(mailp(" =x", 0, &mp, reply), -1);
	ck_assert_int_eq(mailp(" SIZE=1=2", 0, &mp, reply), -1);
	/* AUTH= only where AUTH is offered (RFC 4954 §5) */
	ck_assert_int_eq(mailp(" AUTH=<>", 0, &mp, reply), -1);
	ck_assert_str_eq(reply, "555 5.5.4 Unsupported MAIL parameter AUTH");
	ck_assert_int_eq(mailp(" AUTH=<>", SMTP_EXT_AUTH, &mp, reply), 0);
	ck_assert_int_eq(mailp(" AUTH=alice+40example.test", SMTP_EXT_AUTH, &mp, reply), 0);
	ck_assert(mp.has_auth);
	{
		char envid[200] = " ENVID=";
		memset(envid + 7, 'x', 101);
		envid[108] = '\0';
		ck_assert_int_eq(mailp(envid, 0, &mp, reply), -1);
		envid[107] = '\0';
		ck_assert_int_eq(mailp(envid, 0, &mp, reply), 0);
	}
}
END_TEST

START_TEST(test_smtp_rcpt_params)
{
	struct smtp_rcpt_params rp;
	char reply[SMTP_REPLY_MAX];

	ck_assert_int_eq(smtp_parse_rcpt_params("", false, &rp, reply, sizeof(reply)), 0);
	ck_assert_int_eq(rp.notify, 0);
	ck_assert_int_eq(smtp_parse_rcpt_params(" NOTIFY=SUCCESS,failure ORCPT=rfc822;a+40b.test",
						false, &rp, reply, sizeof(reply)), 0);
	ck_assert_int_eq(rp.notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE);
	ck_assert_str_eq(rp.orcpt, "rfc822;a+40b.test");
	ck_assert_int_eq(smtp_parse_rcpt_params(" NOTIFY=NEVER", false, &rp, reply, sizeof(reply)), 0);
	ck_assert_int_eq(rp.notify, SMTP_NOTIFY_NEVER);
	ck_assert_int_eq(smtp_parse_rcpt_params(" NOTIFY=NEVER,DELAY", false, &rp, reply,
						sizeof(reply)), -1);
	ck_assert_str_eq(reply, "501 5.5.4 Invalid value for RCPT parameter NOTIFY");
	ck_assert_int_eq(smtp_parse_rcpt_params(" NOTIFY=DELAY,DELAY", false, &rp, reply,
						sizeof(reply)), -1);
	ck_assert_int_eq(smtp_parse_rcpt_params(" NOTIFY=SUCCESS,", false, &rp, reply,
						sizeof(reply)), -1);
	ck_assert_int_eq(smtp_parse_rcpt_params(" NOTIFY=SOMETIMES", false, &rp, reply,
						sizeof(reply)), -1);
	ck_assert_int_eq(smtp_parse_rcpt_params(" ORCPT=rfc822", false, &rp, reply, sizeof(reply)), -1);
	ck_assert_int_eq(smtp_parse_rcpt_params(" ORCPT=;a@b", false, &rp, reply, sizeof(reply)), -1);
	ck_assert_int_eq(smtp_parse_rcpt_params(" ORCPT=utf-8;j\xc3\xb6rg@b.test", true, &rp, reply,
						sizeof(reply)), 0);
	ck_assert_int_eq(smtp_parse_rcpt_params(" ORCPT=utf-8;j\xc3\xb6rg@b.test", false, &rp, reply,
						sizeof(reply)), -1);
	ck_assert_int_eq(smtp_parse_rcpt_params(" NOTIFY=NEVER NOTIFY=NEVER", false, &rp, reply,
						sizeof(reply)), -1);
	ck_assert_str_eq(reply, "501 5.5.4 Duplicate RCPT parameter NOTIFY");
	ck_assert_int_eq(smtp_parse_rcpt_params(" SIZE=1", false, &rp, reply, sizeof(reply)), -1);
	ck_assert_str_eq(reply, "555 5.5.4 Unsupported RCPT parameter SIZE");
}
END_TEST

START_TEST(test_smtp_syntax_helpers)
{
	ck_assert(smtp_xtext_valid("abc+2B+3D", 9));
	ck_assert(!smtp_xtext_valid("a+2", 3));
	ck_assert(!smtp_xtext_valid("a b", 3));
	ck_assert(!smtp_xtext_valid("a=b", 3));
	ck_assert(smtp_xtext_valid("", 0));

	ck_assert(smtp_helo_valid("mail.example.test", 17));
	ck_assert(smtp_helo_valid("my_pc", 5));
	ck_assert(smtp_helo_valid("[192.0.2.1]", 11));
	ck_assert(smtp_helo_valid("[IPv6:::1]", 10));
	ck_assert(!smtp_helo_valid("", 0));
	ck_assert(!smtp_helo_valid("a b", 3));
	ck_assert(!smtp_helo_valid("a(b)", 4));
	ck_assert(!smtp_helo_valid("[1.2.3]", 7));
	ck_assert(!smtp_helo_valid("a;b", 3));

	ck_assert(smtp_domain_valid("a-b.c", 5, false));
	ck_assert(!smtp_domain_valid("a_b.c", 5, false));
	ck_assert(!smtp_domain_valid("b\xc3\xbc.c", 5, false));
	ck_assert(smtp_domain_valid("b\xc3\xbc.c", 5, true));
	ck_assert(smtp_address_literal_valid("[tag:x]", 7));
	ck_assert(!smtp_address_literal_valid("[tag-:x]", 8));
	ck_assert(!smtp_address_literal_valid("[tag:]", 6));

	ck_assert(smtp_utf8_valid("\xe2\x82\xac", 3));
	ck_assert(smtp_utf8_valid("\xf0\x9f\x98\x80", 4));
	ck_assert(!smtp_utf8_valid("\xc0\xaf", 2));          /* overlong */
	ck_assert(!smtp_utf8_valid("\xed\xa0\x80", 3));      /* surrogate */
	ck_assert(!smtp_utf8_valid("\xf4\x90\x80\x80", 4));  /* > U+10FFFF */
	ck_assert(!smtp_utf8_valid("\xe2\x82", 2));          /* truncated */
	ck_assert(!smtp_utf8_valid("\x80", 1));
}
END_TEST

/* The command line splitter is core/conn's line reader (check_core:
 * test_core_lines_split, test_core_unread). */

/* ---- the unstuffer ----------------------------------------------------- */

struct us_result {
	char out[4096];
	size_t out_len;
	size_t consumed;
	int end;
	bool bare, nul;
};

/* Feed in[0..len) cut at the given offsets; stop at the end like the
 * session does. */
static void us_run(const char *in, size_t len, bool dots, bool normalise, const size_t *cuts,
		   size_t ncuts, struct us_result *r)
{
	struct smtp_unstuff u;
	size_t fed = 0;

	memset(r, 0, sizeof(*r));
	smtp_unstuff_init(&u, dots, normalise);
	for (size_t c = 0; c <= ncuts && !r->end; c++) {
		size_t upto = c < ncuts ? cuts[c] : len, olen, used;
		char out[2 * 1024 + 2];

		if (upto < fed)
			continue;
		ck_assert_uint_le(upto - fed, 1024);
		r->end = smtp_unstuff_feed(&u, in + fed, upto - fed, out, &olen, &used);
		ck_assert_uint_le(olen, 2 * (upto - fed) + 2);
		ck_assert_uint_le(r->out_len + olen, sizeof(r->out));
		memcpy(r->out + r->out_len, out, olen);
		r->out_len += olen;
		r->consumed += used;
		if (!r->end)
			ck_assert_uint_eq(used, upto - fed);
		fed = upto;
	}
	if (!dots) {
		char out[2];
		size_t olen;
		smtp_unstuff_finish(&u, out, &olen);
		memcpy(r->out + r->out_len, out, olen);
		r->out_len += olen;
	}
	r->bare = u.bare;
	r->nul = u.nul;
}

/* The result must not depend on how the input is cut. */
static void us_check_splits(const char *in, size_t len, bool dots, bool normalise)
{
	struct us_result whole, part;
	size_t cuts[2048];

	ck_assert_uint_le(len, sizeof(cuts));
	us_run(in, len, dots, normalise, NULL, 0, &whole);
	for (size_t i = 0; i <= len; i++) {
		for (size_t j = i; j <= len; j++) {
			size_t two[2] = { i, j };
			us_run(in, len, dots, normalise, two, 2, &part);
			ck_assert_msg(part.end == whole.end && part.consumed == whole.consumed &&
				      part.out_len == whole.out_len &&
				      memcmp(part.out, whole.out, whole.out_len) == 0 &&
				      part.bare == whole.bare && part.nul == whole.nul,
				      "cuts %zu,%zu differ", i, j);
		}
	}
	for (size_t i = 0; i < len; i++)
		cuts[i] = i;
	us_run(in, len, dots, normalise, cuts, len, &part);
	ck_assert(part.end == whole.end && part.consumed == whole.consumed &&
		  part.out_len == whole.out_len && memcmp(part.out, whole.out, whole.out_len) == 0);
}

static void us_expect(const char *in, bool normalise, const char *out, long end_at, bool bare)
{
	struct us_result r;
	size_t len = strlen(in);

	us_run(in, len, true, normalise, NULL, 0, &r);
	ck_assert_msg(r.end == (end_at >= 0), "end for %s", in);
	ck_assert_uint_eq(r.consumed, end_at >= 0 ? (size_t)end_at : len);
	ck_assert_msg(r.out_len == strlen(out) && memcmp(r.out, out, r.out_len) == 0,
		      "output for %s: %.*s", in, (int)r.out_len, r.out);
	ck_assert_int_eq(r.bare, bare);
	us_check_splits(in, len, true, normalise);
}

START_TEST(test_smtp_unstuff_basic)
{
	us_expect("Hello\r\n.\r\n", false, "Hello\r\n", 10, false);
	us_expect(".\r\n", false, "", 3, false); /* empty message */
	us_expect("..dot\r\n.\r\n", false, ".dot\r\n", 10, false);
	us_expect("a\r\n..\r\n.\r\n", false, "a\r\n.\r\n", 10, false);
	us_expect("a\r\n...\r\n.\r\n", false, "a\r\n..\r\n", 11, false);
	us_expect("a\r\n.b\r\n.\r\n", false, "a\r\nb\r\n", 10, false);
	/* the terminator ends at its LF: what follows is the next command */
	us_expect("x\r\n.\r\nQUIT\r\n", false, "x\r\n", 6, false);
	us_expect("x\r\n.\r\n.\r\n", false, "x\r\n", 6, false);
	us_expect("no end yet\r\n", false, "no end yet\r\n", -1, false);
	us_expect("no end yet\r\n.", false, "no end yet\r\n", -1, false);
	us_expect("no end yet\r\n.\r", false, "no end yet\r\n", -1, false);
	us_expect("8bit \xc3\xa4\xff\r\n.\r\n", false, "8bit \xc3\xa4\xff\r\n", 13, false);
	us_expect("a\r\n\r\n.\r\n", false, "a\r\n\r\n", 8, false);
}
END_TEST

/* SMTP smuggling: none of these ends the message; only the final CRLF.CRLF
 * does, so the hidden "MAIL FROM" stays text inside one message. */
START_TEST(test_smtp_unstuff_smuggling)
{
	static const char *const variants[] = {
		"\n.\n",      /* LF.LF */
		"\n.\r\n",    /* LF.CRLF */
		"\r\n.\n",    /* CRLF.LF */
		"\r.\r",      /* CR.CR */
		"\r.\r\n",    /* CR.CRLF */
		"\r\n.\r",    /* CRLF.CR */
		"\n.\r",      /* LF.CR */
		"\r.\n",      /* CR.LF */
		"\r\n\x00.\r\n",
		"\r\n .\r\n",
		"\r\n.\r\r\n",
	};
	static const char evil[] = "MAIL FROM:<evil@attacker.test>\r\nRCPT TO:<x@example.test>\r\n"
				   "DATA\r\nSpoofed\r\n";
	char in[512];

	for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		size_t vlen = i == 8 ? 6 : strlen(variants[i]), len;
		struct us_result r;

		for (int norm = 0; norm <= 1; norm++) {
			len = 0;
			memcpy(in, "Hi", 2);
			len += 2;
			memcpy(in + len, variants[i], vlen);
			len += vlen;
			memcpy(in + len, evil, sizeof(evil) - 1);
			len += sizeof(evil) - 1;
			memcpy(in + len, ".\r\n", 3);
			len += 3;
			us_run(in, len, true, norm, NULL, 0, &r);
			/* ends exactly at the real terminator, once */
			ck_assert_msg(r.end == 1 && r.consumed == len, "variant %zu ended early at %zu",
				      i, r.consumed);
			ck_assert_ptr_nonnull(memmem(r.out, r.out_len, "MAIL FROM:<evil", 15));
			if (i < 8)
				ck_assert_msg(r.bare, "variant %zu: bare CR/LF not flagged", i);
			if (norm && i < 8) {
				/* normalised: no bare CR or LF left */
				for (size_t k = 0; k < r.out_len; k++) {
					if (r.out[k] == '\n')
						ck_assert_int_eq(r.out[k - 1], '\r');
					if (r.out[k] == '\r')
						ck_assert_int_eq(r.out[k + 1], '\n');
				}
			}
			us_check_splits(in, len, true, norm);
		}
	}
	/* the NUL variant is flagged */
	{
		struct us_result r;
		us_run("a\r\n\0.\r\n.\r\n", 10, true, false, NULL, 0, &r);
		ck_assert(r.nul && r.end && r.consumed == 10);
	}
}
END_TEST

START_TEST(test_smtp_unstuff_bare)
{
	/* reject mode keeps the octets (the message is refused later) */
	us_expect("a\nb\r\n.\r\n", false, "a\nb\r\n", 8, true);
	us_expect("a\rb\r\n.\r\n", false, "a\rb\r\n", 8, true);
	/* normalise mode turns them into CRLF; a dot after them is text */
	us_expect("a\nb\r\n.\r\n", true, "a\r\nb\r\n", 8, true);
	us_expect("a\rb\r\n.\r\n", true, "a\r\nb\r\n", 8, true);
	us_expect("a\n..\r\n.\r\n", true, "a\r\n..\r\n", 9, true);
	us_expect("a\r\r\n.\r\n", true, "a\r\n\r\n", 7, true);
	us_expect("\r\r\r\n.\r\n", true, "\r\n\r\n\r\n", 7, true);
	us_expect(".\rx\r\n.\r\n", true, "\r\nx\r\n", 8, true);
	us_expect(".\nx\r\n.\r\n", true, "\r\nx\r\n", 8, true);
}
END_TEST

START_TEST(test_smtp_unstuff_bdat)
{
	struct us_result r;
	static const char chunk[] = ".\r\n..\r\nline\r\n.\r\n";

	/* BDAT: no unstuffing, no end */
	us_run(chunk, sizeof(chunk) - 1, false, false, NULL, 0, &r);
	ck_assert_int_eq(r.end, 0);
	ck_assert_uint_eq(r.out_len, sizeof(chunk) - 1);
	ck_assert_int_eq(memcmp(r.out, chunk, r.out_len), 0);
	ck_assert(!r.bare);
	us_check_splits(chunk, sizeof(chunk) - 1, false, false);
	/* a trailing CR at the end of the last chunk is a bare CR */
	us_run("abc\r", 4, false, true, NULL, 0, &r);
	ck_assert(r.bare);
	ck_assert_uint_eq(r.out_len, 5);
	ck_assert_int_eq(memcmp(r.out, "abc\r\n", 5), 0);
	us_run("a\nb", 3, false, false, NULL, 0, &r);
	ck_assert(r.bare);
}
END_TEST

/* A long random-ish stream, every two-cut split. */
START_TEST(test_smtp_unstuff_random_splits)
{
	static const char alphabet[] = "\r\n.\r\n.a\0";
	char in[300];
	unsigned seed = 12345;

	for (int round = 0; round < 6; round++) {
		size_t len = 60 + (size_t)round * 10;
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			in[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		us_check_splits(in, len, true, false);
		us_check_splits(in, len, true, true);
		us_check_splits(in, len, false, true);
	}
}
END_TEST

/* ---- headers --------------------------------------------------------------- */

START_TEST(test_smtp_header_end)
{
	static const char msg[] = "From: a@b\r\nSubject: x\r\n y\r\n\r\nbody\r\n\r\nmore";
	size_t scan = 0;

	ck_assert_int_eq(smtp_header_end(msg, sizeof(msg) - 1, &scan), 27);
	scan = 0;
	ck_assert_int_eq(smtp_header_end("\r\nbody", 6, &scan), 0);
	scan = 0;
	ck_assert_int_eq(smtp_header_end("A: b\r\nC: d\r\n", 12, &scan), -1);
	/* resumable: feed growing prefixes */
	scan = 0;
	for (size_t n = 0; n <= sizeof(msg) - 1; n++) {
		long h = smtp_header_end(msg, n, &scan);
		if (n < 29)
			ck_assert_int_eq(h, -1);
		else
			ck_assert_int_eq(h, 27);
		if (h >= 0)
			break;
	}
}
END_TEST

START_TEST(test_smtp_header_scan)
{
	static const char hdr[] =
		"Received: from a\r\n\tby b\r\n"
		"received : from c\r\n"
		"From: Alice\r\n <alice@example.test>\r\n"
		"Subject: hi\r\n"
		"not a header line\r\n"
		"DATE: Mon, 1 Jan 2024 00:00:00 +0000\r\n";
	struct smtp_header_info info;

	smtp_header_scan(hdr, sizeof(hdr) - 1, &info);
	ck_assert_uint_eq(info.received, 2);
	ck_assert_uint_eq(info.from_fields, 1);
	ck_assert(info.has_date);
	ck_assert(!info.has_message_id);
	ck_assert_int_eq(strncmp(info.from, " Alice\r\n <alice@example.test>\r\n", info.from_len), 0);
	ck_assert_uint_eq(info.from_len, strlen(" Alice\r\n <alice@example.test>\r\n"));

	smtp_header_scan("Message-Id: <x@y>\r\nFrom: a@b\r\nFrom: c@d\r\n", 41, &info);
	ck_assert(info.has_message_id);
	ck_assert_uint_eq(info.from_fields, 2);
}
END_TEST

static void from_ok(const char *value, int n, const char *a0, const char *a1)
{
	char addrs[4][SMTP_PATH_MAX + 1];

	ck_assert_msg(smtp_parse_from(value, strlen(value), addrs, 4) == n, "%s", value);
	ck_assert_str_eq(addrs[0], a0);
	if (a1 != NULL)
		ck_assert_str_eq(addrs[1], a1);
}

START_TEST(test_smtp_parse_from)
{
	char addrs[4][SMTP_PATH_MAX + 1];
	static const char *const bad[] = {
		"", "   ", "<>", "alice", "alice@", "@example.test", "Alice <alice@example.test",
		"undisclosed-recipients:;", "group: a@b.test;", "a@b.test c@d.test",
		"(unclosed a@b.test", "\"unclosed <a@b.test>", "a@[1.2.3.4", "a@b..test",
		"<a@b.test> junk", "a@b.test, e@f.test, g@h.test, i@j.test, k@l.test",
	};

	from_ok(" alice@example.test\r\n", 1, "alice@example.test", NULL);
	from_ok("Alice <alice@Example.TEST>", 1, "alice@example.test", NULL);
	from_ok("\"Doe, John\" <JD@example.test>", 1, "JD@example.test", NULL);
	from_ok("a@x.test, B <b@y.test>", 2, "a@x.test", "b@y.test");
	from_ok("(comment (nested)) alice@x.test (trailing)", 1, "alice@x.test", NULL);
	from_ok("\"alice\"@x.test", 1, "alice@x.test", NULL);
	from_ok("\"a b\"@x.test", 1, "\"a b\"@x.test", NULL);
	from_ok("=?utf-8?q?J=C3=B6rg?= <j@x.test>", 1, "j@x.test", NULL);
	from_ok("Alice\r\n <alice@x.test>", 1, "alice@x.test", NULL);
	from_ok("John Q. Public <jqp@x.test>", 1, "jqp@x.test", NULL);
	from_ok("x@[192.0.2.1]", 1, "x@[192.0.2.1]", NULL);
	from_ok("a . b @ x . test", 1, "a.b@x.test", NULL);
	from_ok("john@x.test <john@y.test>", 1, "john@y.test", NULL);
	from_ok(",a@x.test,,", 1, "a@x.test", NULL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(smtp_parse_from(bad[i], strlen(bad[i]), addrs, 4) == -1, "accepted '%s'",
			      bad[i]);
}
END_TEST

START_TEST(test_smtp_trace_pieces)
{
	char date[64];
	int d, y, h, m, sec;
	char wd[4], mon[4], sign;
	unsigned off;

	ck_assert_str_eq(smtp_with_keyword(false, true, true, false), "SMTP");
	ck_assert_str_eq(smtp_with_keyword(true, false, false, false), "ESMTP");
	ck_assert_str_eq(smtp_with_keyword(true, true, false, false), "ESMTPS");
	ck_assert_str_eq(smtp_with_keyword(true, false, true, false), "ESMTPA");
	ck_assert_str_eq(smtp_with_keyword(true, true, true, false), "ESMTPSA");
	ck_assert_str_eq(smtp_with_keyword(true, true, true, true), "UTF8SMTPSA");
	ck_assert_str_eq(smtp_with_keyword(true, false, false, true), "UTF8SMTP");

	setenv("TZ", "UTC", 1);
	tzset();
	smtp_rfc5322_date(0, date, sizeof(date));
	ck_assert_str_eq(date, "Thu, 1 Jan 1970 00:00:00 +0000");
	smtp_rfc5322_date(1700000000, date, sizeof(date));
	ck_assert_int_eq(sscanf(date, "%3s, %d %3s %d %d:%d:%d %c%4u", wd, &d, mon, &y, &h, &m, &sec,
				&sign, &off), 9);
	ck_assert_str_eq(date, "Tue, 14 Nov 2023 22:13:20 +0000");
}
END_TEST


START_TEST(test_smtp_pregreet_cache)
{
	struct smtp_pregreet *pg = smtp_pregreet_new(3, 100);
	char addr[64];

	ck_assert_ptr_nonnull(pg);
	ck_assert(!smtp_pregreet_passed(pg, "192.0.2.1", 1000));
	smtp_pregreet_remember(pg, "192.0.2.1", 1000);
	ck_assert(smtp_pregreet_passed(pg, "192.0.2.1", 1099));
	ck_assert(!smtp_pregreet_passed(pg, "192.0.2.2", 1000));
	/* the TTL runs from the pass: expired entries are dropped */
	ck_assert(!smtp_pregreet_passed(pg, "192.0.2.1", 1100));
	ck_assert_uint_eq(smtp_pregreet_count(pg), 0);

	/* IPv6 is remembered by its /64 */
	smtp_pregreet_remember(pg, "2001:db8:1:2::5", 1000);
	ck_assert(smtp_pregreet_passed(pg, "2001:db8:1:2:ffff::9", 1001));
	ck_assert(!smtp_pregreet_passed(pg, "2001:db8:1:3::5", 1001));
	/* garbage is never remembered */
	smtp_pregreet_remember(pg, "not-an-address", 1000);
	ck_assert(!smtp_pregreet_passed(pg, "not-an-address", 1001));
	ck_assert_uint_eq(smtp_pregreet_count(pg), 1);

	/* bounded: the least recently seen goes first */
	smtp_pregreet_remember(pg, "198.51.100.1", 1000);
	smtp_pregreet_remember(pg, "198.51.100.2", 1000);
	ck_assert(smtp_pregreet_passed(pg, "2001:db8:1:2::1", 1002)); /* now the newest */
	smtp_pregreet_remember(pg, "198.51.100.3", 1003);
	ck_assert_uint_eq(smtp_pregreet_count(pg), 3);
	ck_assert(!smtp_pregreet_passed(pg, "198.51.100.1", 1004));
	ck_assert(smtp_pregreet_passed(pg, "198.51.100.2", 1004));
	ck_assert(smtp_pregreet_passed(pg, "2001:db8:1:2::1", 1004));
	ck_assert(smtp_pregreet_passed(pg, "198.51.100.3", 1004));
	/* remembering again refreshes, never duplicates */
	smtp_pregreet_remember(pg, "198.51.100.3", 1050);
	ck_assert_uint_eq(smtp_pregreet_count(pg), 3);
	ck_assert(smtp_pregreet_passed(pg, "198.51.100.3", 1149));
	smtp_pregreet_free(pg);

	/* many more than fit: the count stays at the bound */
	pg = smtp_pregreet_new(50, 100);
	for (unsigned i = 0; i < 5000; i++) {
		snprintf(addr, sizeof(addr), "10.%u.%u.%u", i >> 16, (i >> 8) & 255, i & 255);
		smtp_pregreet_remember(pg, addr, 1000);
	}
	ck_assert_uint_eq(smtp_pregreet_count(pg), 50);
	ck_assert(smtp_pregreet_passed(pg, "10.0.19.135", 1001)); /* i = 4999 */
	ck_assert(!smtp_pregreet_passed(pg, "10.0.0.0", 1001));
	smtp_pregreet_free(pg);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("smtp");
	TCase *tc = tcase_create("parse");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_smtp_command_split);
	tcase_add_test(tc, test_smtp_path_valid);
	tcase_add_test(tc, test_smtp_path_invalid);
	tcase_add_test(tc, test_smtp_mail_rcpt_keyword);
	tcase_add_test(tc, test_smtp_mail_params);
	tcase_add_test(tc, test_smtp_rcpt_params);
	tcase_add_test(tc, test_smtp_syntax_helpers);
	tcase_add_test(tc, test_smtp_unstuff_basic);
	tcase_add_test(tc, test_smtp_unstuff_smuggling);
	tcase_add_test(tc, test_smtp_unstuff_bare);
	tcase_add_test(tc, test_smtp_unstuff_bdat);
	tcase_add_test(tc, test_smtp_unstuff_random_splits);
	tcase_add_test(tc, test_smtp_header_end);
	tcase_add_test(tc, test_smtp_header_scan);
	tcase_add_test(tc, test_smtp_parse_from);
	tcase_add_test(tc, test_smtp_trace_pieces);
	tcase_add_test(tc, test_smtp_pregreet_cache);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
