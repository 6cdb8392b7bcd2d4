/* Sieve: comparators and match types (RFC 5228 §2.7, RFC 5229 §3.2 match
 * variables), and the interpreter over small scripts and messages. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sieve_private.h"
#include "check_sieve.h"

static bool match(enum sv_match m, enum sv_comparator c, const char *v, const char *k)
{
	uint64_t steps = 0;

	return sv_compare(m, c, v, strlen(v), k, strlen(k), &steps, NULL);
}

START_TEST(test_sieve_match_types)
{
	ck_assert(match(SV_MATCH_IS, SV_CMP_CASEMAP, "Hello", "hELLO"));
	ck_assert(!match(SV_MATCH_IS, SV_CMP_OCTET, "Hello", "hELLO"));
	ck_assert(!match(SV_MATCH_IS, SV_CMP_CASEMAP, "Hello", "Hell"));
	ck_assert(match(SV_MATCH_CONTAINS, SV_CMP_CASEMAP, "Make MONEY fast", "money"));
	ck_assert(!match(SV_MATCH_CONTAINS, SV_CMP_OCTET, "Make MONEY fast", "money"));
	ck_assert(match(SV_MATCH_CONTAINS, SV_CMP_OCTET, "abc", ""));
	ck_assert(!match(SV_MATCH_CONTAINS, SV_CMP_OCTET, "", "a"));
	ck_assert(match(SV_MATCH_MATCHES, SV_CMP_CASEMAP, "anything", "*"));
	ck_assert(match(SV_MATCH_MATCHES, SV_CMP_CASEMAP, "", "*"));
	ck_assert(!match(SV_MATCH_MATCHES, SV_CMP_CASEMAP, "", "?"));
	ck_assert(match(SV_MATCH_MATCHES, SV_CMP_CASEMAP, "Make money fast", "*MONEY*"));
	ck_assert(match(SV_MATCH_MATCHES, SV_CMP_CASEMAP, "abcabcabd", "*abd"));
	ck_assert(match(SV_MATCH_MATCHES, SV_CMP_CASEMAP, "a?c", "a\\?c"));
	ck_assert(!match(SV_MATCH_MATCHES, SV_CMP_CASEMAP, "abc", "a\\?c"));
	ck_assert(match(SV_MATCH_MATCHES, SV_CMP_CASEMAP, "a*c", "a\\*c"));
	ck_assert(!match(SV_MATCH_MATCHES, SV_CMP_CASEMAP, "abbc", "a\\*c"));
	ck_assert(match(SV_MATCH_MATCHES, SV_CMP_CASEMAP, "x\xc3\xa9y", "x?y"));
	ck_assert(!match(SV_MATCH_MATCHES, SV_CMP_CASEMAP, "abc", "ab"));
	ck_assert(match(SV_MATCH_MATCHES, SV_CMP_CASEMAP, "abc", "a*b*c*"));
}
END_TEST

START_TEST(test_sieve_match_variables)
{
	/* RFC 5229 §3.2 example shape */
	static const char v[] = "coyote@example.com <coyote@example.com>";
	char *caps[SIEVE_MATCH_VARS] = { 0 };
	uint64_t steps = 0;

	ck_assert(sv_compare(SV_MATCH_MATCHES, SV_CMP_CASEMAP, v, strlen(v), "*<*@*>", 6,
			     &steps, caps));
	ck_assert_str_eq(caps[0], v);
	ck_assert_str_eq(caps[1], "coyote@example.com ");
	ck_assert_str_eq(caps[2], "coyote");
	ck_assert_str_eq(caps[3], "example.com");
	ck_assert_str_eq(caps[4], "");
	for (int i = 0; i < SIEVE_MATCH_VARS; i++)
		free(caps[i]);
	memset(caps, 0, sizeof(caps));
	ck_assert(sv_compare(SV_MATCH_MATCHES, SV_CMP_OCTET, "[list] topic", 12, "[*] ?o*", 7,
			     &steps, caps));
	ck_assert_str_eq(caps[1], "list");
	ck_assert_str_eq(caps[2], "t");
	ck_assert_str_eq(caps[3], "pic");
	for (int i = 0; i < SIEVE_MATCH_VARS; i++)
		free(caps[i]);
}
END_TEST

START_TEST(test_sieve_match_work_is_bounded)
{
	size_t n = 200000;
	char *v = malloc(n + 1), key[] = "*a*a*a*a*a*a*a*a*a*a*b";
	uint64_t steps = 0;

	memset(v, 'a', n);
	v[n] = '\0';
	ck_assert(!sv_compare(SV_MATCH_MATCHES, SV_CMP_OCTET, v, n, key, strlen(key), &steps,
			      NULL));
	/* the two-pointer glob: linear here, not exponential */
	ck_assert_uint_gt(steps, n);
	ck_assert_uint_lt(steps, 30 * (uint64_t)n);
	/* a run that has spent its budget matches nothing more */
	steps = SIEVE_STEPS_MAX;
	ck_assert(!sv_compare(SV_MATCH_MATCHES, SV_CMP_OCTET, v, n, "*", 1, &steps, NULL));
	steps = SIEVE_STEPS_MAX;
	ck_assert(!sv_compare(SV_MATCH_CONTAINS, SV_CMP_OCTET, v, n, "ab", 2, &steps, NULL));
	free(v);
}
END_TEST


/* ---- the interpreter ---------------------------------------------------- */

static const char test_header[] =
	"Return-Path: <coyote@desert.example>\r\n"
	"From: \"Wile E. Coyote\" <coyote@desert.example>\r\n"
	"To: Road Runner <runner@example.org>, bugs@example.org\r\n"
	"Cc: undisclosed-recipients:;\r\n"
	"Subject: =?UTF-8?B?RnLDvGhzdMO8Y2s=?= [acme] Order\r\n"
	"  number 42\r\n"
	"Message-ID: <42@desert.example>\r\n"
	"X-Spam: yes\r\n"
	"\r\n";
static const char test_body[] = "Please send MORE rockets.\r\n";

static struct sieve_message test_msg(void)
{
	struct sieve_message m = {
		.header = test_header, .header_len = sizeof(test_header) - 1,
		.body = test_body, .body_len = sizeof(test_body) - 1,
		.size = 1500, .envelope_from = "coyote@desert.example",
		.envelope_to = "runner@example.org",
	};
	return m;
}

/* Run a script on a message; the actions as one line of text, e.g.
 * "keep[\\Seen] fileinto:Lists/acme redirect:a@b", or "error: line N: ...". */
static const char *run_on(const char *text, const struct sieve_message *m)
{
	static char out[2048];
	char err[SIEVE_ERROR_MAX];
	struct sieve_script *s = sieve_compile(text, strlen(text), err, sizeof(err));
	struct sieve_result res;
	size_t o = 0;

	ck_assert_msg(s != NULL, "%s\n%s", err, text);
	if (sieve_run(s, m, &res) < 0) {
		snprintf(out, sizeof(out), "error: line %d: %s", res.error_line, res.error);
		ck_assert_uint_eq(res.n_actions, 0);
	} else {
		out[0] = '\0';
		for (size_t i = 0; i < res.n_actions; i++) {
			const struct sieve_action *a = &res.actions[i];
			static const char *const kinds[] = { "keep", "fileinto", "redirect",
							     "reject", "vacation" };
			o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%s", i ? " " : "",
					      kinds[a->kind]);
			if (a->mailbox != NULL)
				o += (size_t)snprintf(out + o, sizeof(out) - o, ":%s", a->mailbox);
			if (a->address != NULL)
				o += (size_t)snprintf(out + o, sizeof(out) - o, ":%s", a->address);
			if (a->text != NULL)
				o += (size_t)snprintf(out + o, sizeof(out) - o, ":%s", a->text);
			for (size_t k = 0; k < a->n_flags; k++)
				o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%s",
						      k ? "," : "[", a->flags[k]);
			if (a->n_flags > 0)
				o += (size_t)snprintf(out + o, sizeof(out) - o, "]");
		}
	}
	sieve_result_free(&res);
	sieve_script_free(s);
	return out;
}

static const char *compile_error_of(const char *text)
{
	static char err[SIEVE_ERROR_MAX];
	struct sieve_script *s = sieve_compile(text, strlen(text), err, sizeof(err));

	ck_assert_msg(s == NULL, "compiled: %s", text);
	return err;
}

static const char *run(const char *text)
{
	struct sieve_message m = test_msg();

	return run_on(text, &m);
}

START_TEST(test_sieve_run_basic_actions)
{
	ck_assert_str_eq(run(""), "keep");
	ck_assert_str_eq(run("keep;"), "keep");
	ck_assert_str_eq(run("discard;"), "");
	ck_assert_str_eq(run("stop; discard;"), "keep");
	ck_assert_str_eq(run("require \"fileinto\"; fileinto \"Junk\";"), "fileinto:Junk");
	ck_assert_str_eq(run("require \"fileinto\"; fileinto \"A\"; fileinto \"B\"; keep;"),
			 "fileinto:A fileinto:B keep");
	/* duplicates are one action; INBOX is keep */
	ck_assert_str_eq(run("require \"fileinto\"; fileinto \"A\"; fileinto \"A\"; "
			     "fileinto \"inbox\";"), "fileinto:A keep");
	ck_assert_str_eq(run("require [\"fileinto\", \"copy\"]; fileinto :copy \"A\";"),
			 "fileinto:A keep");
	ck_assert_str_eq(run("redirect \"a@example.net\";"), "redirect:a@example.net");
	ck_assert_str_eq(run("require \"copy\"; redirect :copy \"a@example.net\";"),
			 "redirect:a@example.net keep");
	ck_assert_str_eq(run("require \"reject\"; reject \"go away\";"), "reject:go away");
	ck_assert_str_eq(run("require \"ereject\"; ereject \"no\";"), "reject:no");
}
END_TEST

START_TEST(test_sieve_run_tests)
{
	ck_assert_str_eq(run("if header :contains \"subject\" \"ORDER\" { discard; }"), "");
	/* RFC 2047 decoding and unfolding */
	ck_assert_str_eq(run("if header :is \"Subject\" \"Fr\xc3\xbchst\xc3\xbc" "ck [acme] "
			     "Order  number 42\" { discard; }"), "");
	ck_assert_str_eq(run("if header :comparator \"i;octet\" :contains \"subject\" \"order\""
			     " { discard; }"), "keep");
	ck_assert_str_eq(run("if address :is \"from\" \"coyote@desert.example\" { discard; }"), "");
	ck_assert_str_eq(run("if address :localpart :is \"to\" \"bugs\" { discard; }"), "");
	ck_assert_str_eq(run("if address :domain :is \"to\" \"EXAMPLE.ORG\" { discard; }"), "");
	ck_assert_str_eq(run("if address :all :is \"to\" \"Road Runner\" { discard; }"), "keep");
	ck_assert_str_eq(run("require \"envelope\"; if envelope :domain :is \"from\" "
			     "\"desert.example\" { discard; }"), "");
	ck_assert_str_eq(run("require \"envelope\"; if envelope :is \"to\" \"x@y\" "
			     "{ discard; }"), "keep");
	ck_assert_str_eq(run("if exists [\"X-Spam\", \"From\"] { discard; }"), "");
	ck_assert_str_eq(run("if exists [\"X-Spam\", \"X-None\"] { discard; }"), "keep");
	ck_assert_str_eq(run("if size :over 1K { discard; }"), "");
	ck_assert_str_eq(run("if size :under 1K { discard; }"), "keep");
	ck_assert_str_eq(run("if size :over 1500 { discard; }"), "keep");
	ck_assert_str_eq(run("if not size :over 2K { discard; }"), "");
	ck_assert_str_eq(run("if allof (true, header :is \"x-spam\" \"yes\") { discard; }"), "");
	ck_assert_str_eq(run("if anyof (false, header :is \"x-spam\" \"no\") { discard; }"),
			 "keep");
	ck_assert_str_eq(run("require \"body\"; if body :contains \"more ROCKETS\" "
			     "{ discard; }"), "");
	ck_assert_str_eq(run("require \"body\"; if body :raw :matches \"*rockets.*\" "
			     "{ discard; }"), "");
	ck_assert_str_eq(run("require \"body\"; if body :content \"image\" :contains \"rockets\""
			     " { discard; }"), "keep");
	ck_assert_str_eq(run("require \"body\"; if body :content \"text\" :contains \"rockets\""
			     " { discard; }"), "");
	/* if / elsif / else */
	ck_assert_str_eq(run("require \"fileinto\";\n"
			     "if false { fileinto \"1\"; }\n"
			     "elsif header :contains \"from\" \"coyote\" { fileinto \"2\"; }\n"
			     "elsif true { fileinto \"3\"; }\n"
			     "else { fileinto \"4\"; }\n"
			     "fileinto \"5\";"), "fileinto:2 fileinto:5");
	ck_assert_str_eq(run("require \"fileinto\";\n"
			     "if false { fileinto \"1\"; } else { fileinto \"4\"; }"),
			 "fileinto:4");
}
END_TEST

START_TEST(test_sieve_run_variables)
{
	/* RFC 5229 §3.2, §4 */
	ck_assert_str_eq(run("require [\"fileinto\", \"variables\"];\n"
			     "if header :matches \"Subject\" \"* [*] *\" {\n"
			     "  fileinto \"Lists/${2}\";\n"
			     "}"), "fileinto:Lists/acme");
	ck_assert_str_eq(run("require [\"fileinto\", \"variables\"];\n"
			     "if address :matches :localpart \"from\" \"*\" { set \"who\" \"${1}\"; }\n"
			     "set :upperfirst \"box\" \"${who}\";\n"
			     "fileinto \"People/${box}\";"), "fileinto:People/Coyote");
	ck_assert_str_eq(run("require [\"fileinto\", \"variables\"];\n"
			     "set :upper \"a\" \"abc\"; set :length \"n\" \"${a}\";\n"
			     "set :quotewildcard \"q\" \"a*b?\";\n"
			     "fileinto \"${a}-${n}-${q}-${unknown}-${bad name}\";"),
			 "fileinto:ABC-3-a\\*b\\?--${bad name}");
	ck_assert_str_eq(run("require [\"variables\"];\n"
			     "set \"x\" \"yes\";\n"
			     "if string :is \"${x}\" \"yes\" { discard; }"), "");
	/* no "variables": ${} is plain text */
	ck_assert_str_eq(run("require \"fileinto\"; fileinto \"${x}\";"), "fileinto:${x}");
}
END_TEST

START_TEST(test_sieve_run_imap4flags)
{
	/* RFC 5232 */
	ck_assert_str_eq(run("require \"imap4flags\"; setflag \"\\\\Seen\";"), "keep[\\Seen]");
	ck_assert_str_eq(run("require [\"imap4flags\", \"fileinto\"];\n"
			     "addflag [\"\\\\Flagged\", \"$Work \\\\Seen\"];\n"
			     "addflag \"\\\\seen\";\n"
			     "removeflag \"$work\";\n"
			     "fileinto \"A\";\n"
			     "fileinto :flags \"\\\\Answered\" \"B\";\n"),
			 "fileinto:A[\\Flagged,\\Seen] fileinto:B[\\Answered]");
	ck_assert_str_eq(run("require [\"imap4flags\", \"variables\"];\n"
			     "addflag \"v\" \"\\\\Draft\";\n"
			     "if hasflag \"v\" \"\\\\draft\" { addflag \"\\\\Seen\"; }\n"
			     "if hasflag :contains \"Se\" { keep :flags \"$x\"; }"), "keep[$x]");
}
END_TEST

START_TEST(test_sieve_run_vacation_and_errors)
{
	char err[SIEVE_ERROR_MAX];
	struct sieve_message m = test_msg();
	struct sieve_result res;
	struct sieve_script *s;
	static const char script[] =
		"require \"vacation\";\n"
		"vacation :days 0 :subject \"Away\" :addresses [\"bugs@example.org\"] \"Gone.\";";

	ck_assert_str_eq(run("require \"vacation\"; vacation \"Away\";"), "vacation:Away keep");
	ck_assert_str_eq(run("require \"vacation\"; vacation \"a\"; vacation \"b\";"),
			 "error: line 1: vacation taken twice");
	ck_assert_str_eq(run("require [\"reject\", \"fileinto\"]; fileinto \"x\"; reject \"r\";"),
			 "error: line 1: reject cannot follow keep, fileinto, redirect or vacation");
	ck_assert_str_eq(run("require \"reject\";\nreject \"r\";\nkeep;"),
			 "error: line 3: reject cannot be combined with keep, fileinto, "
			 "redirect or vacation");
	ck_assert_str_eq(run("redirect \"a@b.example\"; redirect \"c@b.example\";\n"
			     "redirect \"d@b.example\"; redirect \"e@b.example\";\n"
			     "redirect \"f@b.example\";"),
			 "error: line 3: too many redirects (at most 4)");
	ck_assert_str_eq(run("redirect \"not an address\";"),
			 "error: line 1: redirect to an invalid address \"not an address\"");
	s = sieve_compile(script, strlen(script), err, sizeof(err));
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(sieve_run(s, &m, &res), 0);
	ck_assert_uint_eq(res.n_actions, 2);
	ck_assert_int_eq(res.actions[0].kind, SIEVE_ACTION_VACATION);
	ck_assert_uint_eq(res.actions[0].days, 1); /* RFC 5230 §4.1: the minimum */
	ck_assert_str_eq(res.actions[0].subject, "Away");
	ck_assert_uint_eq(res.actions[0].n_addresses, 1);
	sieve_result_free(&res);
	sieve_script_free(s);
}
END_TEST

static bool vacation_ok(const char *header, const char *from, const char **why)
{
	struct sieve_message m = test_msg();
	char *addrs[] = { (char *)"alias@example.org" };
	struct sieve_action act = { .kind = SIEVE_ACTION_VACATION, .text = (char *)"x",
				    .addresses = addrs, .n_addresses = 1 };

	m.header = header;
	m.header_len = strlen(header);
	m.envelope_from = from;
	return sieve_vacation_allowed(&m, &act, why);
}

START_TEST(test_sieve_vacation_rules)
{
	const char *why;

	ck_assert(vacation_ok("To: runner@example.org\r\n\r\n", "a@b.example", &why));
	ck_assert(vacation_ok("To: x@y\r\nCc: <Alias@Example.org>\r\n\r\n", "a@b.example", &why));
	ck_assert(vacation_ok("To: x@y\r\nAuto-Submitted: no\r\nBcc: runner@example.org\r\n",
			      "a@b.example", &why));
	ck_assert(!vacation_ok("To: runner@example.org\r\n\r\n", "", &why));
	ck_assert_str_eq(why, "null sender");
	ck_assert(!vacation_ok("To: someone@else.example\r\n\r\n", "a@b.example", &why));
	ck_assert_str_eq(why, "recipient not in To, Cc or Bcc");
	ck_assert(!vacation_ok("List-Id: <l.example>\r\nTo: runner@example.org\r\n",
			       "a@b.example", &why));
	ck_assert_str_eq(why, "mailing list message");
	ck_assert(!vacation_ok("To: runner@example.org\r\nlist-unsubscribe: <mailto:x@y>\r\n",
			       "a@b.example", &why));
	ck_assert(!vacation_ok("To: runner@example.org\r\nPrecedence: Bulk\r\n", "a@b.example",
			       &why));
	ck_assert_str_eq(why, "bulk message");
	ck_assert(!vacation_ok("To: runner@example.org\r\nPrecedence: junk\r\n", "a@b.example",
			       &why));
	ck_assert(!vacation_ok("To: runner@example.org\r\nAuto-Submitted: auto-replied\r\n",
			       "a@b.example", &why));
	ck_assert_str_eq(why, "automatic message");
	ck_assert(!vacation_ok("To: runner@example.org\r\n", "owner-list@b.example", &why));
	ck_assert(!vacation_ok("To: runner@example.org\r\n", "list-request@b.example", &why));
	ck_assert(!vacation_ok("To: runner@example.org\r\n", "MAILER-DAEMON@b.example", &why));
	ck_assert(!vacation_ok("To: runner@example.org\r\n", "runner@example.org", &why));
	ck_assert_str_eq(why, "sender is the recipient");
}
END_TEST

START_TEST(test_sieve_vacation_reply_and_handle)
{
	struct sieve_message m = test_msg();
	struct sieve_action act = { .kind = SIEVE_ACTION_VACATION, .text = (char *)"I am away.\n" };
	char h1[17], h2[17], *out;
	size_t len;

	ck_assert_int_eq(sieve_vacation_reply(&m, &act, "Mon, 7 Dec 2026 01:00:00 +0000",
					      "<r1@host>", &out, &len), 0);
	ck_assert_uint_eq(strlen(out), len);
	ck_assert_msg(strstr(out, "From: runner@example.org\r\n") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "To: <coyote@desert.example>\r\n") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "Subject: Auto: =?UTF-8?B?") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "In-Reply-To: <42@desert.example>\r\n") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "References: <42@desert.example>\r\n") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "Auto-Submitted: auto-replied") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "\r\n\r\nI am away.\r\n") != NULL, "%s", out);
	free(out);
	act.subject = (char *)"Out\r\nBcc: injected";
	ck_assert_int_eq(sieve_vacation_reply(&m, &act, "d", "<r2@host>", &out, &len), 0);
	ck_assert_msg(strstr(out, "Subject: Out  Bcc: injected\r\n") != NULL, "%s", out);
	free(out);
	sieve_vacation_handle(&act, h1, sizeof(h1));
	act.text = (char *)"Other reason";
	sieve_vacation_handle(&act, h2, sizeof(h2));
	ck_assert_str_ne(h1, h2);
	act.handle = (char *)"same";
	sieve_vacation_handle(&act, h1, sizeof(h1));
	act.text = (char *)"I am away.\n";
	sieve_vacation_handle(&act, h2, sizeof(h2));
	ck_assert_str_eq(h1, h2);
	ck_assert_uint_eq(strlen(h1), 16);
}
END_TEST

START_TEST(test_sieve_run_limits)
{
	/* SIEVE_ACTIONS_MAX */
	size_t cap = 64 * (SIEVE_ACTIONS_MAX + 2), o = 0;
	char *text = malloc(cap);

	o += (size_t)snprintf(text + o, cap - o, "require \"fileinto\";\n");
	for (int i = 0; i <= SIEVE_ACTIONS_MAX; i++)
		o += (size_t)snprintf(text + o, cap - o, "fileinto \"f%d\";\n", i);
	ck_assert_str_eq(run(text), "error: line 34: too many actions (at most 32)");
	free(text);
	/* SIEVE_VARIABLES_MAX */
	cap = 64 * (SIEVE_VARIABLES_MAX + 2);
	text = malloc(cap);
	o = (size_t)snprintf(text, cap, "require \"variables\";\n");
	for (int i = 0; i <= SIEVE_VARIABLES_MAX; i++)
		o += (size_t)snprintf(text + o, cap - o, "set \"v%d\" \"x\";\n", i);
	ck_assert_str_eq(run(text), "error: line 130: too many variables (at most 128)");
	free(text);
	/* SIEVE_STRING_MAX after expansion */
	ck_assert_str_eq(run("require \"variables\"; set \"a\" \"0123456789abcdefg\";\n"
			     "set \"a\" \"${a}${a}${a}${a}${a}${a}${a}${a}\";\n"
			     "set \"a\" \"${a}${a}${a}${a}${a}${a}${a}${a}\";\n"
			     "set \"a\" \"${a}${a}${a}${a}${a}${a}${a}${a}\";\n"
			     "set \"a\" \"${a}${a}${a}${a}${a}${a}${a}${a}\";\n"),
			 "error: line 5: string too long after expansion");
}
END_TEST

START_TEST(test_sieve_run_address_forms)
{
	static const char header[] =
		"From: (comment, with comma) \"Doe, John\" <john.doe@Example.COM> (x)\r\n"
		"To: team: ann@a.example, \"b,c\"@b.example;, dan@d.example\r\n"
		"Cc: <@route.example:eve@e.example>\r\n"
		"Subject: =?ISO-8859-1?Q?caf=E9_au_lait?= =?UTF-8?Q?_ok?=\r\n"
		"\r\n";
	struct sieve_message m = test_msg();

	m.header = header;
	m.header_len = sizeof(header) - 1;
	ck_assert_str_eq(run_on("if address :is \"from\" \"john.doe@example.com\" { discard; }",
				&m), "");
	ck_assert_str_eq(run_on("if address :domain :is \"to\" \"a.example\" { discard; }", &m),
			 "");
	ck_assert_str_eq(run_on("if address :localpart :is \"to\" \"b,c\" { discard; }", &m), "");
	ck_assert_str_eq(run_on("if address :all :is \"to\" \"dan@d.example\" { discard; }", &m),
			 "");
	ck_assert_str_eq(run_on("if address :is \"to\" \"team\" { discard; }", &m), "keep");
	ck_assert_str_eq(run_on("if address :is \"cc\" \"eve@e.example\" { discard; }", &m), "");
	/* ISO-8859-1 to UTF-8, adjacent encoded words joined (RFC 2047 §6.2) */
	ck_assert_str_eq(run_on("if header :is \"subject\" \"caf\xc3\xa9 au lait ok\" "
				"{ discard; }", &m), "");
	/* a header without the blank line, and LF line ends */
	m.header = "Subject: plain\nX-A: 1\n";
	m.header_len = strlen(m.header);
	ck_assert_str_eq(run_on("if allof (header :is \"x-a\" \"1\", header :is \"subject\" "
				"\"plain\") { discard; }", &m), "");
	/* envelope from the null sender is "" (RFC 5228 §5.4) */
	m.envelope_from = "";
	ck_assert_str_eq(run_on("require \"envelope\"; if envelope :is \"from\" \"\" "
				"{ discard; }", &m), "");
}
END_TEST

START_TEST(test_sieve_run_body_mime)
{
	/* RFC 5173 §5: :raw, :text and :content over a MIME structure */
	static const char header[] =
		"Subject: parts\r\n"
		"Content-Type: multipart/mixed; boundary=\"XYZ\"\r\n"
		"\r\n";
	static const char body[] =
		"preamble\r\n"
		"--XYZ\r\n"
		"Content-Type: multipart/alternative; boundary=inner\r\n"
		"\r\n"
		"--inner\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n"
		"Content-Transfer-Encoding: quoted-printable\r\n"
		"\r\n"
		"Caf=C3=A9 au =\r\n"
		"lait\r\n"
		"--inner\r\n"
		"Content-Type: text/html\r\n"
		"\r\n"
		"<p>Hidden html</p>\r\n"
		"--inner--\r\n"
		"--XYZ\r\n"
		"Content-Type: application/octet-stream\r\n"
		"Content-Transfer-Encoding: base64\r\n"
		"\r\n"
		"U2VjcmV0IHBh\r\n"
		"eWxvYWQ=\r\n"
		"--XYZ--\r\n"
		"epilogue\r\n";
	struct sieve_message m = test_msg();

	m.header = header;
	m.header_len = sizeof(header) - 1;
	m.body = body;
	m.body_len = sizeof(body) - 1;
	ck_assert_str_eq(run_on("require \"body\"; if body :text :contains \"caf\xc3\xa9 au lait\""
				" { discard; }", &m), "");
	ck_assert_str_eq(run_on("require \"body\"; if body :contains \"Secret\" { discard; }", &m),
			 "keep");
	ck_assert_str_eq(run_on("require \"body\"; if body :content \"application\" "
				":contains \"Secret payload\" { discard; }", &m), "");
	ck_assert_str_eq(run_on("require \"body\"; if body :content \"text/html\" "
				":contains \"Hidden\" { discard; }", &m), "");
	ck_assert_str_eq(run_on("require \"body\"; if body :content \"text/plain\" "
				":contains \"Hidden\" { discard; }", &m), "keep");
	ck_assert_str_eq(run_on("require \"body\"; if body :raw :contains \"U2VjcmV0\" "
				"{ discard; }", &m), "");
	ck_assert_str_eq(run_on("require \"body\"; if body :text :contains \"preamble\" "
				"{ discard; }", &m), "keep");
	/* a single-part message without Content-Type is text/plain */
	m = test_msg();
	ck_assert_str_eq(run_on("require \"body\"; if body :content \"text\" :is "
				"\"Please send MORE rockets.\r\n\" { discard; }", &m), "");
	ck_assert_str_eq(run_on("require \"body\"; if body :content \"text\" :matches "
				"\"*MORE rockets.*\" { discard; }", &m), "");
}
END_TEST

/* Every one-byte change of a script that uses most of the language either
 * fails to compile with a "line N:" error or compiles and runs to a result
 * or a runtime error; nothing crashes or leaks (ASan). */
START_TEST(test_sieve_run_mutations)
{
	static const char script[] =
		"require [\"fileinto\", \"variables\", \"imap4flags\", \"vacation\", \"body\","
		" \"envelope\", \"copy\", \"reject\"];\n"
		"if header :matches \"Subject\" \"* [*] *\" { set :upper \"l\" \"${2}\"; }\n"
		"if anyof (address :domain :is \"from\" \"desert.example\", body :text :contains "
		"\"rockets\") {\n"
		"  addflag [\"\\\\Seen\", \"$x\"]; fileinto :copy \"L/${l}\";\n"
		"} elsif envelope :localpart :matches \"to\" \"r*\" { redirect \"a@b.example\"; }\n"
		"else { vacation :days 2 :subject \"${l}\" \"away\"; }\n"
		"if size :over 1K { keep :flags \"\\\\Flagged\"; } if false { reject \"x\"; }\n";
	static const char repl[] = "\"{}[];\\\n:(*$";
	struct sieve_message m = test_msg();
	char text[sizeof(script)], err[SIEVE_ERROR_MAX];
	unsigned compiled = 0;

	for (size_t i = 0; i < sizeof(script) - 1; i++) {
		for (size_t k = 0; k < sizeof(repl) - 1; k++) {
			struct sieve_script *s;
			struct sieve_result res;
			memcpy(text, script, sizeof(script));
			text[i] = repl[k];
			s = sieve_compile(text, sizeof(script) - 1, err, sizeof(err));
			if (s == NULL) {
				ck_assert_msg(strncmp(err, "line ", 5) == 0, "%s", err);
				continue;
			}
			compiled++;
			if (sieve_run(s, &m, &res) < 0)
				ck_assert_uint_eq(res.n_actions, 0);
			sieve_result_free(&res);
			sieve_script_free(s);
		}
	}
	ck_assert_uint_gt(compiled, 100);
}
END_TEST

static bool only_work_exists(void *ctx, const char *name)
{
	(*(int *)ctx)++;
	return strcmp(name, "Work") == 0;
}

START_TEST(test_sieve_run_mailbox)
{
	/* RFC 5490: mailboxexists and fileinto :create */
	struct sieve_message m = test_msg();
	int calls = 0;

	ck_assert_str_eq(run("require [\"fileinto\", \"mailbox\"]; fileinto :create \"New\";"),
			 "fileinto:New");
	ck_assert_str_eq(run("require [\"mailbox\"]; if mailboxexists \"INBOX\" { discard; }"),
			 "");
	/* without a callback only INBOX exists */
	ck_assert_str_eq(run("require [\"mailbox\"]; if mailboxexists \"Work\" { discard; }"),
			 "keep");
	m.mailbox_exists = only_work_exists;
	m.mailbox_ctx = &calls;
	ck_assert_str_eq(run_on("require [\"mailbox\"]; if mailboxexists [\"Work\", \"inbox\"] "
				"{ discard; }", &m), "");
	ck_assert_str_eq(run_on("require [\"mailbox\"]; if mailboxexists [\"Work\", \"Play\"] "
				"{ discard; }", &m), "keep");
	ck_assert_int_eq(calls, 3);
	ck_assert_str_eq(compile_error_of("require \"fileinto\"; fileinto :create \"x\";"),
			 "line 1: :create needs require \"mailbox\"");
	ck_assert_str_eq(compile_error_of("if mailboxexists \"x\" { keep; }"),
			 "line 1: mailboxexists needs require \"mailbox\"");
}
END_TEST

void sieve_run_add_tests(SRunner *sr)
{
	Suite *s = suite_create("sieve_run");
	TCase *tc = tcase_create("match");

	tcase_add_test(tc, test_sieve_match_types);
	tcase_add_test(tc, test_sieve_match_variables);
	tcase_add_test(tc, test_sieve_match_work_is_bounded);
	suite_add_tcase(s, tc);
	tc = tcase_create("run");
	tcase_add_test(tc, test_sieve_run_basic_actions);
	tcase_add_test(tc, test_sieve_run_tests);
	tcase_add_test(tc, test_sieve_run_variables);
	tcase_add_test(tc, test_sieve_run_imap4flags);
	tcase_add_test(tc, test_sieve_run_vacation_and_errors);
	tcase_add_test(tc, test_sieve_vacation_rules);
	tcase_add_test(tc, test_sieve_vacation_reply_and_handle);
	tcase_add_test(tc, test_sieve_run_limits);
	tcase_add_test(tc, test_sieve_run_address_forms);
	tcase_add_test(tc, test_sieve_run_body_mime);
	tcase_add_test(tc, test_sieve_run_mutations);
	tcase_add_test(tc, test_sieve_run_mailbox);
	suite_add_tcase(s, tc);
	srunner_add_suite(sr, s);
}
