postern_check_test(check_imap SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_imap.c LIBS postern_imap)
