/* The second half of check_sieve: matching and the interpreter. */
#ifndef TESTS_UNIT_CHECK_SIEVE_H
#define TESTS_UNIT_CHECK_SIEVE_H

#include <check.h>

void sieve_run_add_tests(SRunner *sr);

#endif
