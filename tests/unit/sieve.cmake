postern_check_test(check_sieve SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_sieve.c
                   ${CMAKE_CURRENT_LIST_DIR}/check_sieve_run.c LIBS postern_sieve)
