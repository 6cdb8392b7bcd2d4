# The store's unit tests (maildir/store.h).  They include md_private.h for
# writer-thread internals and read the hand-written Dovecot fixture.
postern_check_test(check_store SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_store.c LIBS postern_maildir)
target_compile_definitions(check_store PRIVATE FIXTURE_DIR="${CMAKE_CURRENT_LIST_DIR}")
postern_check_test(check_store_faults SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_store_faults.c LIBS postern_maildir)
