/* Sieve: the parser and checker (valid scripts from RFC 5228, 5229, 5230,
 * 5232 and 5429, and the error line for invalid ones, also for every
 * prefix of a valid script); the interpreter over small scripts and
 * messages (check_sieve_run.c). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sieve_private.h"
#include "check_sieve.h"

static void assert_compiles(const char *text)
{
	char err[SIEVE_ERROR_MAX];
	struct sieve_script *s = sieve_compile(text, strlen(text), err, sizeof(err));

	ck_assert_msg(s != NULL, "script failed: %s\n%s", err, text);
	sieve_script_free(s);
}

/* The error text for a script that must not compile. */
static const char *compile_error(const char *text)
{
	static char err[SIEVE_ERROR_MAX];
	struct sieve_script *s = sieve_compile(text, strlen(text), err, sizeof(err));

	ck_assert_msg(s == NULL, "script compiled but should not:\n%s", text);
	return err;
}

START_TEST(test_sieve_parse_rfc5228_examples)
{
	/* RFC 5228 §3.1, §4, §5 and §9 shapes */
	assert_compiles("");
	assert_compiles("keep;");
	assert_compiles("# a comment\r\n/* a bracketed\r\n comment */ discard;");
	assert_compiles("require \"fileinto\";\r\n"
			"if header :contains \"from\" \"coyote\" {\r\n"
			"   discard;\r\n"
			"} elsif header :contains [\"subject\"] [\"$$$\"] {\r\n"
			"   discard;\r\n"
			"} else {\r\n"
			"   fileinto \"INBOX\";\r\n"
			"}\r\n");
	assert_compiles("require [\"fileinto\", \"reject\"];\n"
			"if size :over 100K {\n"
			"  reject text:\n"
			"Please do not send me large attachments.\n"
			"..dot-stuffed line\n"
			".\n"
			";\n"
			"}\n"
			"if address :DOMAIN :is [\"From\", \"To\"] \"example.com\" { keep; }\n"
			"if anyof (not exists [\"From\",\"Date\"],\n"
			"          header :contains \"from\" \"fool@example.com\") { discard; }\n"
			"if allof (true, false, size :under 1M) { stop; }\n"
			"if header :matches \"subject\" [\"*money*\", \"*\\\\*?*\"] { discard; }\n"
			"if address :comparator \"i;octet\" :localpart \"from\" \"Coyote\" { keep; }\n");
	assert_compiles("require \"envelope\";\n"
			"if envelope :all :is \"from\" \"tim@example.com\" { discard; }\n");
	assert_compiles("redirect \"bart@example.com\";");
	assert_compiles("require \"comparator-i;octet\"; keep;");
	assert_compiles("if size :over 1G { discard; }");
}
END_TEST

START_TEST(test_sieve_parse_extensions)
{
	/* RFC 5229 variables */
	assert_compiles("require [\"variables\", \"fileinto\"];\n"
			"set \"honorific\" \"Mr\";\n"
			"set :lower :upperfirst \"name\" \"${honorific}\";\n"
			"if header :matches \"List-ID\" \"*<*@*\" {\n"
			"  fileinto \"INBOX.lists.${2}\"; stop;\n"
			"}\n"
			"if string :is \"${name}\" \"\" { keep; }\n");
	/* RFC 5232 imap4flags */
	assert_compiles("require [\"imap4flags\", \"fileinto\", \"variables\"];\n"
			"setflag \"\\\\Seen\";\n"
			"addflag \"myvar\" [\"\\\\Flagged\", \"$Work\"];\n"
			"removeflag \"\\\\Seen\";\n"
			"if hasflag :contains \"myvar\" \"Flagged\" { keep :flags \"\\\\Answered\"; }\n"
			"fileinto :flags [\"\\\\Seen\"] \"Junk\";\n");
	/* RFC 5230 vacation */
	assert_compiles("require \"vacation\";\n"
			"vacation :days 7 :subject \"Away\" :from \"me@example.com\"\n"
			"  :addresses [\"me@example.org\", \"me@example.net\"] :handle \"h1\"\n"
			"  \"I am away until Monday.\";\n");
	assert_compiles("require \"vacation\"; vacation :mime text:\n"
			"Content-Type: text/plain\n"
			"\n"
			"Away.\n"
			".\n;");
	/* RFC 3894 copy, RFC 5429 ereject, RFC 5173 body */
	assert_compiles("require [\"copy\", \"fileinto\"]; fileinto :copy \"Archive\";"
			" redirect :copy \"x@example.com\";");
	assert_compiles("require \"ereject\"; ereject \"no\";");
	assert_compiles("require \"body\";\n"
			"if body :text :contains \"viagra\" { discard; }\n"
			"if body :raw :contains \"MAKE MONEY FAST\" { discard; }\n"
			"if body :content [\"text\", \"\"] :contains \"x\" { discard; }\n");
}
END_TEST

START_TEST(test_sieve_parse_errors_have_lines)
{
	ck_assert_str_eq(compile_error("keep;\nfileinto \"x\";"),
			 "line 2: fileinto needs require \"fileinto\"");
	ck_assert_str_eq(compile_error("require \"nosuchthing\";"),
			 "line 1: unsupported extension \"nosuchthing\"");
	ck_assert_str_eq(compile_error("keep\n\n;\nkeep"),
			 "line 4: expected \";\" or a block after keep");
	ck_assert_str_eq(compile_error("if true {\n keep;\n"), "line 3: missing \"}\"");
	ck_assert_str_eq(compile_error("\n\"str\";"), "line 2: expected a command");
	ck_assert_str_eq(compile_error("frobnicate;"), "line 1: unknown command \"frobnicate\"");
	ck_assert_str_eq(compile_error("if frob { keep; }"), "line 1: unknown test \"frob\"");
	ck_assert_str_eq(compile_error("if keep { keep; }"), "line 1: keep is a command, not a test");
	ck_assert_str_eq(compile_error("else { keep; }"), "line 1: else without if");
	ck_assert_str_eq(compile_error("keep;\nrequire \"fileinto\";"),
			 "line 2: require must come before other commands");
	ck_assert_str_eq(compile_error("if header :is :contains \"a\" \"b\" { keep; }"),
			 "line 1: more than one :contains-kind tag for header");
	ck_assert_str_eq(compile_error("if header :comparator \"i;unknown\" \"a\" \"b\" {keep;}"),
			 "line 1: unsupported comparator \"i;unknown\"");
	ck_assert_str_eq(compile_error("if size 10 { keep; }"),
			 "line 1: size takes 0 arguments, not 1");
	ck_assert_str_eq(compile_error("if size { keep; }"), "line 1: size needs :over or :under");
	ck_assert_str_eq(compile_error("redirect [\"a@b\", \"c@d\"];"),
			 "line 1: redirect expects a single string here, not a list");
	ck_assert_str_eq(compile_error("if header \"a\" :is \"b\" { keep; }"),
			 "line 1: tag :is after positional arguments");
	ck_assert_str_eq(compile_error("keep :copy;"), "line 1: unknown tag :copy for keep");
	ck_assert_str_eq(compile_error("require \"copy\"; keep :copy;"),
			 "line 1: unknown tag :copy for keep");
	ck_assert_str_eq(compile_error("redirect :copy \"a@b\";"),
			 "line 1: :copy needs require \"copy\"");
	ck_assert_str_eq(compile_error("if \"a\" { keep; }"),
			 "line 1: if takes 0 arguments, not 1");
	ck_assert_str_eq(compile_error("if { keep; }"), "line 1: if needs one test");
	ck_assert_str_eq(compile_error("if anyof true { keep; }"),
			 "line 1: anyof needs a test list in ( )");
	ck_assert_str_eq(compile_error("keep { }"), "line 1: keep takes no block");
	ck_assert_str_eq(compile_error("if true;"), "line 1: if needs a block");
	ck_assert_str_eq(compile_error("reject \"x\";"), "line 1: reject needs require \"reject\"");
	ck_assert_str_eq(compile_error("require \"variables\"; set \"1a\" \"x\";"),
			 "line 1: invalid variable name \"1a\"");
	ck_assert_str_eq(compile_error("require \"variables\"; set :lower :upper \"a\" \"x\";"),
			 "line 1: modifier :upper clashes with another");
	ck_assert_str_eq(compile_error("require \"imap4flags\"; setflag \"v\" \"\\\\Seen\";"),
			 "line 1: a variable name for setflag needs require \"variables\"");
	ck_assert_str_eq(compile_error("keep; /* never closed"), "line 1: unterminated comment");
	ck_assert_str_eq(compile_error("\n\nredirect \"abc"), "line 3: unterminated string");
	ck_assert_str_eq(compile_error("require \"reject\"; reject text:\nno end\n"),
			 "line 1: text: not ended by a line with a single \".\"");
	ck_assert_str_eq(compile_error("if size :over 99999999999 { keep; }"),
			 "line 1: number too large");
	ck_assert_str_eq(compile_error("keep; @"), "line 1: unexpected character '@'");
	ck_assert_str_eq(compile_error("redirect [\"a\" \"b\"];"),
			 "line 1: expected \",\" or \"]\" in a string list");
	ck_assert_str_eq(compile_error("if anyof (true ] { keep; }"),
			 "line 1: expected \",\" or \")\" in a test list");
	ck_assert_str_eq(compile_error("if anyof (true, \"x\" ) { keep; }"),
			 "line 1: expected a test");
}
END_TEST

START_TEST(test_sieve_parse_nul_and_limits)
{
	static const char nul[] = "keep;\0discard;";
	char err[SIEVE_ERROR_MAX];
	struct sieve_script *s = sieve_compile(nul, sizeof(nul) - 1, err, sizeof(err));
	size_t deep = SIEVE_NESTING_MAX + 2, len = 0;
	char *text = malloc(deep * 12 + 16);

	ck_assert_ptr_null(s);
	ck_assert_str_eq(err, "line 1: NUL character in the script");
	/* in a comment too (RFC 5228 §8.1 octet-not-crlf) */
	s = sieve_compile("keep;\n# a\0b\n", 11, err, sizeof(err));
	ck_assert_ptr_null(s);
	ck_assert_str_eq(err, "line 2: NUL character in the script");
	/* "if true {" nested past the limit */
	for (size_t i = 0; i < deep; i++)
		len += (size_t)sprintf(text + len, "if true {\n");
	for (size_t i = 0; i < deep; i++)
		len += (size_t)sprintf(text + len, "}");
	s = sieve_compile(text, len, err, sizeof(err));
	ck_assert_ptr_null(s);
	ck_assert_msg(strstr(err, "nested too deeply") != NULL, "%s", err);
	free(text);
	/* not (not (...)) past the limit */
	text = malloc(deep * 4 + 32);
	len = (size_t)sprintf(text, "if ");
	for (size_t i = 0; i < deep; i++)
		len += (size_t)sprintf(text + len, "not ");
	len += (size_t)sprintf(text + len, "true { keep; }");
	s = sieve_compile(text, len, err, sizeof(err));
	ck_assert_ptr_null(s);
	ck_assert_msg(strstr(err, "nested too deeply") != NULL, "%s", err);
	free(text);
	s = sieve_compile("keep;", SIEVE_SCRIPT_MAX + 1, err, sizeof(err));
	ck_assert_ptr_null(s);
	ck_assert_str_eq(err, "line 1: script too large (at most 1048576 octets)");
}
END_TEST

/* Every prefix of a valid script either compiles or fails with an error
 * text; none crashes or leaks (ASan). */
START_TEST(test_sieve_parse_every_prefix)
{
	static const char script[] =
		"require [\"fileinto\", \"variables\", \"vacation\"];\r\n"
		"# comment\r\n"
		"if header :matches \"Subject\" \"*[list]*\" { fileinto \"L/${2}\"; }\r\n"
		"elsif not address :domain :is \"from\" [\"a.example\", \"b.example\"] {\r\n"
		"  vacation :days 3 text:\r\n"
		"away\r\n"
		".\r\n"
		";\r\n"
		"} /* end */ else { set :upper \"v\" \"x\"; stop; }\r\n";
	char err[SIEVE_ERROR_MAX];

	for (size_t n = 0; n <= sizeof(script) - 1; n++) {
		struct sieve_script *s = sieve_compile(script, n, err, sizeof(err));
		if (s == NULL)
			ck_assert_msg(strncmp(err, "line ", 5) == 0, "prefix %zu: %s", n, err);
		sieve_script_free(s);
	}
	assert_compiles(script);
}
END_TEST

START_TEST(test_sieve_extensions_list)
{
	const char *ext = sieve_extensions();
	char req[512];

	ck_assert_ptr_nonnull(strstr(ext, "fileinto"));
	ck_assert_ptr_nonnull(strstr(ext, "vacation"));
	ck_assert_ptr_nonnull(strstr(ext, "imap4flags"));
	/* everything announced can be required */
	size_t o = (size_t)snprintf(req, sizeof(req), "require [\"");
	for (const char *p = ext; *p != '\0' && o + 8 < sizeof(req); p++) {
		if (*p == ' ')
			o += (size_t)snprintf(req + o, sizeof(req) - o, "\", \"");
		else
			req[o++] = *p;
	}
	snprintf(req + o, sizeof(req) - o, "\"];");
	assert_compiles(req);
}
END_TEST

static Suite *sieve_parse_suite(void)
{
	Suite *s = suite_create("sieve");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, test_sieve_parse_rfc5228_examples);
	tcase_add_test(tc, test_sieve_parse_extensions);
	tcase_add_test(tc, test_sieve_parse_errors_have_lines);
	tcase_add_test(tc, test_sieve_parse_nul_and_limits);
	tcase_add_test(tc, test_sieve_parse_every_prefix);
	tcase_add_test(tc, test_sieve_extensions_list);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sieve_parse_suite());
	int failed;

	sieve_run_add_tests(sr);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
