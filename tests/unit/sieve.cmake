postern_check_test(check_sieve SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_sieve.c
                   ${CMAKE_CURRENT_LIST_DIR}/check_sieve_run.c LIBS postern_sieve)
# Sieve's active script and vacation record in the store (maildir/md_sieve_active.c).
postern_check_test(check_store_sieve SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_store_sieve.c
                   LIBS postern_maildir)
