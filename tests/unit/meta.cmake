postern_check_test(check_meta SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_meta.c LIBS postern_maildir)
