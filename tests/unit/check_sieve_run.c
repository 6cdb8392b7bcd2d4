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

void sieve_run_add_tests(SRunner *sr)
{
	Suite *s = suite_create("sieve_run");
	TCase *tc = tcase_create("match");

	tcase_add_test(tc, test_sieve_match_types);
	tcase_add_test(tc, test_sieve_match_variables);
	tcase_add_test(tc, test_sieve_match_work_is_bounded);
	suite_add_tcase(s, tc);
	srunner_add_suite(sr, s);
}
