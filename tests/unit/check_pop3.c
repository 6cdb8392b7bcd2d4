/* POP3 pure parts: the command parser and table, message numbers, the
 * byte-stuffer behind RETR/TOP/LIST sizes (also fed in slices split at
 * every offset), and the UIDL derivation. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "pop3_private.h"
#include "store.h"

/* ---- parser --------------------------------------------------------------- */

static enum pop3_parse_result test_parse(const char *line, struct pop3_parsed *p)
{
	return pop3_parse_line(line, strlen(line), p);
}

START_TEST(test_pop3_parse_verbs_case_insensitive)
{
	static const char *verbs[] = { "capa", "Noop", "qUIT", "user x", "pass y", "auth",
				       "stls", "stat", "list", "retr 1", "dele 1", "rset",
				       "top 1 0", "uidl" };
	struct pop3_parsed p;

	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		ck_assert_msg(test_parse(verbs[i], &p) == POP3_PARSE_OK, "%s", verbs[i]);
		ck_assert_ptr_nonnull(p.cmd);
		ck_assert_int_eq(strncasecmp(p.verb, verbs[i], strlen(p.verb)), 0);
		for (const char *c = p.verb; *c != '\0'; c++)
			ck_assert(*c >= 'A' && *c <= 'Z');
	}
	ck_assert_str_eq(pop3_command_find("rEtR")->verb, "RETR");
	ck_assert_ptr_null(pop3_command_find("APOP"));
	ck_assert_ptr_null(pop3_command_find("LAST"));
	ck_assert_ptr_null(pop3_command_find(""));
}
END_TEST

START_TEST(test_pop3_parse_arguments)
{
	struct pop3_parsed p;

	ck_assert_int_eq(test_parse("TOP 12 3", &p), POP3_PARSE_OK);
	ck_assert_uint_eq(p.nargs, 2);
	ck_assert_str_eq(p.args[0], "12");
	ck_assert_str_eq(p.args[1], "3");
	ck_assert_uint_eq(p.arg_len[0], 2);

	/* runs of spaces and trailing spaces are tolerated */
	ck_assert_int_eq(test_parse("  list   7  ", &p), POP3_PARSE_OK);
	ck_assert_str_eq(p.verb, "LIST");
	ck_assert_uint_eq(p.nargs, 1);
	ck_assert_str_eq(p.args[0], "7");

	ck_assert_int_eq(test_parse("LIST", &p), POP3_PARSE_OK);
	ck_assert_uint_eq(p.nargs, 0);

	/* PASS keeps the rest of the line, spaces included */
	ck_assert_int_eq(test_parse("PASS  my secret pw ", &p), POP3_PARSE_OK);
	ck_assert_uint_eq(p.nargs, 1);
	ck_assert_str_eq(p.args[0], " my secret pw ");
	ck_assert_int_eq(test_parse("PASS", &p), POP3_PARSE_ARGS);

	/* AUTH with an initial response longer than 40 characters */
	ck_assert_int_eq(test_parse("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQtcGFzc3dvcmQtMTIzNDU2", &p),
			 POP3_PARSE_OK);
	ck_assert_uint_eq(p.nargs, 2);
	ck_assert_str_eq(p.args[0], "PLAIN");
	ck_assert_int_eq(test_parse("AUTH PLAIN =", &p), POP3_PARSE_OK);
	ck_assert_str_eq(p.args[1], "=");
}
END_TEST

START_TEST(test_pop3_parse_errors)
{
	struct pop3_parsed p;
	char line[POP3_LINE_MAX + 10];

	ck_assert_int_eq(test_parse("", &p), POP3_PARSE_EMPTY);
	ck_assert_int_eq(test_parse("   ", &p), POP3_PARSE_EMPTY);
	ck_assert_int_eq(test_parse("FOO", &p), POP3_PARSE_UNKNOWN);
	ck_assert_int_eq(test_parse("RETRX 1", &p), POP3_PARSE_UNKNOWN);
	ck_assert_int_eq(test_parse("RE1R 1", &p), POP3_PARSE_UNKNOWN);
	ck_assert_int_eq(test_parse("\xc3\xa9tat", &p), POP3_PARSE_UNKNOWN);
	ck_assert_int_eq(test_parse("STAT 1", &p), POP3_PARSE_ARGS);
	ck_assert_ptr_nonnull(p.cmd);
	ck_assert_int_eq(test_parse("RETR", &p), POP3_PARSE_ARGS);
	ck_assert_int_eq(test_parse("RETR 1 2", &p), POP3_PARSE_ARGS);
	ck_assert_int_eq(test_parse("TOP 1", &p), POP3_PARSE_ARGS);
	ck_assert_int_eq(test_parse("TOP 1 2 3", &p), POP3_PARSE_ARGS);
	ck_assert_int_eq(test_parse("USER a b", &p), POP3_PARSE_ARGS);
	ck_assert_int_eq(test_parse("AUTH PLAIN x y", &p), POP3_PARSE_ARGS);

	/* RFC 1939 §3: arguments up to 40 characters */
	ck_assert_int_eq(test_parse("RETR 1234567890123456789012345678901234567890", &p),
			 POP3_PARSE_OK);
	ck_assert_int_eq(test_parse("RETR 12345678901234567890123456789012345678901", &p),
			 POP3_PARSE_ARG_TOO_LONG);

	ck_assert_int_eq(pop3_parse_line("NOOP\0x", 6, &p), POP3_PARSE_NUL);
	ck_assert_int_eq(pop3_parse_line("PASS a\0b", 8, &p), POP3_PARSE_NUL);

	memset(line, 'a', sizeof(line));
	memcpy(line, "PASS ", 5);
	ck_assert_int_eq(pop3_parse_line(line, POP3_LINE_MAX, &p), POP3_PARSE_OK);
	ck_assert_uint_eq(p.arg_len[0], POP3_LINE_MAX - 5);
	ck_assert_int_eq(pop3_parse_line(line, POP3_LINE_MAX + 1, &p), POP3_PARSE_TOO_LONG);
	for (int r = POP3_PARSE_OK; r <= POP3_PARSE_ARG_TOO_LONG; r++)
		ck_assert(strlen(pop3_parse_error_text((enum pop3_parse_result)r)) > 0);
}
END_TEST

START_TEST(test_pop3_table_states)
{
	static const struct {
		const char *verb;
		unsigned states;
	} want[] = {
		{ "CAPA", POP3_IN_AUTH | POP3_IN_TRANS }, { "QUIT", POP3_IN_AUTH | POP3_IN_TRANS },
		{ "NOOP", POP3_IN_AUTH | POP3_IN_TRANS }, { "USER", POP3_IN_AUTH },
		{ "PASS", POP3_IN_AUTH }, { "AUTH", POP3_IN_AUTH }, { "STLS", POP3_IN_AUTH },
		{ "STAT", POP3_IN_TRANS }, { "LIST", POP3_IN_TRANS }, { "RETR", POP3_IN_TRANS },
		{ "DELE", POP3_IN_TRANS }, { "RSET", POP3_IN_TRANS }, { "TOP", POP3_IN_TRANS },
		{ "UIDL", POP3_IN_TRANS },
	};

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct pop3_command *c = pop3_command_find(want[i].verb);
		ck_assert_ptr_nonnull(c);
		ck_assert_msg(c->states == want[i].states, "%s", want[i].verb);
		ck_assert(!(c->states & (1u << POP3_STATE_UPDATE)));
		ck_assert_ptr_nonnull(c->handler);
	}
}
END_TEST

START_TEST(test_pop3_parse_number)
{
	uint64_t v = 99;

	ck_assert_int_eq(pop3_parse_number("1", 1, 10, &v), 0);
	ck_assert_uint_eq(v, 1);
	ck_assert_int_eq(pop3_parse_number("0", 0, 10, &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(pop3_parse_number("0", 1, 10, &v), -1);
	ck_assert_int_eq(pop3_parse_number("11", 1, 10, &v), -1);
	ck_assert_int_eq(pop3_parse_number("+1", 1, 10, &v), -1);
	ck_assert_int_eq(pop3_parse_number("-1", 0, 10, &v), -1);
	ck_assert_int_eq(pop3_parse_number("1a", 1, 10, &v), -1);
	ck_assert_int_eq(pop3_parse_number("0x1", 0, 10, &v), -1);
	ck_assert_int_eq(pop3_parse_number("", 0, 10, &v), -1);
	ck_assert_int_eq(pop3_parse_number("99999999999999999999999", 0, UINT64_MAX, &v), -1);
	ck_assert_int_eq(pop3_parse_number("18446744073709551615", 0, UINT64_MAX, &v), 0);
	ck_assert_uint_eq(v, UINT64_MAX);
	ck_assert_int_eq(pop3_parse_number("18446744073709551616", 0, UINT64_MAX, &v), -1);
}
END_TEST

/* ---- byte-stuffing -------------------------------------------------------- */

/* Stuff in one go (plus finish); returns a heap string, *len_r its length. */
static char *test_stuff_all(const char *in, size_t len, uint64_t top, size_t *len_r)
{
	struct pop3_stuffer st;
	char *out = malloc(2 * len + 3);
	size_t n;

	pop3_stuff_init(&st, top);
	n = pop3_stuff(&st, in, len, out);
	n += pop3_stuff_finish(&st, out + n);
	out[n] = '\0';
	*len_r = n;
	return out;
}

static void test_stuff_case(const char *in, uint64_t top, const char *want)
{
	size_t n;
	char *out = test_stuff_all(in, strlen(in), top, &n);

	ck_assert_msg(n == strlen(want) && memcmp(out, want, n) == 0,
		      "input [%s] top %llu: got [%s] want [%s]", in, (unsigned long long)top, out,
		      want);
	/* The size the store computes at delivery is what RETR sends. */
	if (top == POP3_TOP_ALL)
		ck_assert_uint_eq(md_pop3_size(in, strlen(in)), n);
	free(out);
}

/* md_pop3_size() (the store's count at delivery) against the stuffer, on
 * every short string over the bytes that matter. */
START_TEST(test_pop3_size_matches_stuffer)
{
	static const char alphabet[] = ".\r\na";
	char in[8];

	for (size_t len = 0; len <= 7; len++) {
		size_t combos = 1;

		for (size_t i = 0; i < len; i++)
			combos *= 4;
		for (size_t c = 0; c < combos; c++) {
			size_t v = c, n;
			char *out;

			for (size_t i = 0; i < len; i++, v /= 4)
				in[i] = alphabet[v % 4];
			out = test_stuff_all(in, len, POP3_TOP_ALL, &n);
			ck_assert_msg(md_pop3_size(in, len) == n, "length %zu case %zu", len, c);
			free(out);
		}
	}
}
END_TEST

START_TEST(test_pop3_stuff_cases)
{
	test_stuff_case("", POP3_TOP_ALL, "");
	test_stuff_case("a\r\nb\r\n", POP3_TOP_ALL, "a\r\nb\r\n");
	test_stuff_case(".x\r\n", POP3_TOP_ALL, "..x\r\n");
	test_stuff_case(".\r\n", POP3_TOP_ALL, "..\r\n");
	test_stuff_case("..\r\n", POP3_TOP_ALL, "...\r\n");
	test_stuff_case("a.b\r\n .\r\n", POP3_TOP_ALL, "a.b\r\n .\r\n");
	test_stuff_case("a\nb", POP3_TOP_ALL, "a\r\nb\r\n");
	test_stuff_case("\n.\n", POP3_TOP_ALL, "\r\n..\r\n");
	test_stuff_case("abc", POP3_TOP_ALL, "abc\r\n");
	test_stuff_case(".", POP3_TOP_ALL, "..\r\n");
	test_stuff_case("a\r", POP3_TOP_ALL, "a\r\r\n");
	test_stuff_case("a\rb\r\n", POP3_TOP_ALL, "a\rb\r\n");
	test_stuff_case("\r\n.\r\n..", POP3_TOP_ALL, "\r\n..\r\n...\r\n");
	test_stuff_case("x\r\n\r\n.\r\n", POP3_TOP_ALL, "x\r\n\r\n..\r\n");

	/* TOP: the header, the empty line, then n body lines */
	test_stuff_case("A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n", 0, "A: 1\r\nB: 2\r\n\r\n");
	test_stuff_case("A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n", 2,
			"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n");
	test_stuff_case("A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n", 3,
			"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n");
	test_stuff_case("A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n", 100,
			"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n");
	test_stuff_case("A: 1\n\n.l1\nl2", 1, "A: 1\r\n\r\n..l1\r\n");
	test_stuff_case("A: 1\n\nl1\nl2", 5, "A: 1\r\n\r\nl1\r\nl2\r\n");
	test_stuff_case("A: 1\r\nB: 2", 0, "A: 1\r\nB: 2\r\n");   /* no body */
	test_stuff_case("A: 1\r\n\r\n\r\n\r\nx\r\n", 2, "A: 1\r\n\r\n\r\n\r\n");
	test_stuff_case("\r\nbody\r\n", 0, "\r\n");               /* empty header */
}
END_TEST

/* The stuffer must give the same bytes whatever the slicing, and the
 * count-only mode (LIST) the same total. */
static void test_stuff_slices(const char *in, size_t len, uint64_t top)
{
	size_t want_len;
	char *want = test_stuff_all(in, len, top, &want_len);
	char *out = malloc(2 * len + 3);

	for (size_t cut = 0; cut <= len; cut++) {
		struct pop3_stuffer st;
		size_t n;

		pop3_stuff_init(&st, top);
		n = pop3_stuff(&st, in, cut, out);
		n += pop3_stuff(&st, in + cut, len - cut, out + n);
		n += pop3_stuff_finish(&st, out + n);
		ck_assert_msg(n == want_len && memcmp(out, want, n) == 0, "cut at %zu", cut);

		pop3_stuff_init(&st, top);
		n = pop3_stuff(&st, in, cut, NULL);
		n += pop3_stuff(&st, in + cut, len - cut, NULL);
		n += pop3_stuff_finish(&st, NULL);
		ck_assert_msg(n == want_len, "count, cut at %zu", cut);
	}
	/* one byte at a time */
	{
		struct pop3_stuffer st;
		size_t n = 0;

		pop3_stuff_init(&st, top);
		for (size_t i = 0; i < len; i++)
			n += pop3_stuff(&st, in + i, 1, out + n);
		n += pop3_stuff_finish(&st, out + n);
		ck_assert(n == want_len && memcmp(out, want, n) == 0);
	}
	free(out);
	free(want);
}

START_TEST(test_pop3_stuff_every_split)
{
	static const char msg[] =
		"Received: from x\r\n\tby y\n"
		"Subject: .dots\r\n"
		"\r\n"
		".\r\n"
		"..two\r\n"
		"bare\nlf\n"
		".\n"
		"cr\ronly\r\n"
		"\r\n"
		".last";

	test_stuff_slices(msg, sizeof(msg) - 1, POP3_TOP_ALL);
	for (uint64_t top = 0; top < 10; top++)
		test_stuff_slices(msg, sizeof(msg) - 1, top);
	test_stuff_slices("a\r", 2, POP3_TOP_ALL);
	test_stuff_slices("\r\n\r\n", 4, 0);
}
END_TEST

START_TEST(test_pop3_stuff_expected_bytes)
{
	static const char msg[] = "S: x\n\n.\r\nend";
	size_t n;
	char *out = test_stuff_all(msg, sizeof(msg) - 1, POP3_TOP_ALL, &n);

	/* bare LFs become CRLF (+2), the dot line is doubled (+1), the
	 * missing final line end is added (+2): 13 + 5 */
	ck_assert_str_eq(out, "S: x\r\n\r\n..\r\nend\r\n");
	ck_assert_uint_eq(n, sizeof(msg) - 1 + 5);
	free(out);
}
END_TEST

/* ---- UIDL ----------------------------------------------------------------- */

static void test_sha_hex(const char *data, size_t len, char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen;

	ck_assert_int_eq(EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL), 1);
	for (int i = 0; i < POP3_UIDL_HASH_BYTES; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

START_TEST(test_pop3_uidl_derivation)
{
	char out[POP3_UIDL_MAX + 1], want[2 * POP3_UIDL_HASH_BYTES + 1], name[200];

	pop3_uidl_from_basename("1700000000.M1P2Q3.mail.example.test", out);
	ck_assert_str_eq(out, "1700000000.M1P2Q3.mail.example.test");
	/* flags never change it */
	pop3_uidl_from_basename("1700000000.M1P2Q3.mail.example.test:2,S", out);
	ck_assert_str_eq(out, "1700000000.M1P2Q3.mail.example.test");
	pop3_uidl_from_basename("1700000000.M1P2Q3.mail.example.test:2,FRST", out);
	ck_assert_str_eq(out, "1700000000.M1P2Q3.mail.example.test");

	/* exactly 70 characters: as is; 71: hashed */
	memset(name, 'a', 70);
	name[70] = '\0';
	pop3_uidl_from_basename(name, out);
	ck_assert_str_eq(out, name);
	memset(name, 'b', 71);
	strcpy(name + 71, ":2,S");
	pop3_uidl_from_basename(name, out);
	test_sha_hex(name, 71, want);
	ck_assert_str_eq(out, want);
	ck_assert_uint_eq(strlen(out), 2 * POP3_UIDL_HASH_BYTES);

	/* characters outside 0x21..0x7E: hashed */
	pop3_uidl_from_basename("with space", out);
	test_sha_hex("with space", 10, want);
	ck_assert_str_eq(out, want);
	pop3_uidl_from_basename("caf\xc3\xa9:2,", out);
	test_sha_hex("caf\xc3\xa9", 5, want);
	ck_assert_str_eq(out, want);
	pop3_uidl_from_basename("", out);
	test_sha_hex("", 0, want);
	ck_assert_str_eq(out, want);

	for (const char *c = out; *c != '\0'; c++)
		ck_assert(*c >= 0x21 && *c <= 0x7e);
}
END_TEST

static Suite *pop3_suite(void)
{
	Suite *s = suite_create("pop3");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_pop3_parse_verbs_case_insensitive);
	tcase_add_test(tc, test_pop3_parse_arguments);
	tcase_add_test(tc, test_pop3_parse_errors);
	tcase_add_test(tc, test_pop3_table_states);
	tcase_add_test(tc, test_pop3_parse_number);
	tcase_add_test(tc, test_pop3_stuff_cases);
	tcase_add_test(tc, test_pop3_size_matches_stuffer);
	tcase_add_test(tc, test_pop3_stuff_every_split);
	tcase_add_test(tc, test_pop3_stuff_expected_bytes);
	tcase_add_test(tc, test_pop3_uidl_derivation);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pop3_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
