postern_check_test(check_auth SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_auth.c LIBS postern_auth)
