postern_check_test(check_pop3 SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_pop3.c LIBS postern_pop3)
