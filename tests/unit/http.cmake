postern_check_test(check_http SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_http.c LIBS postern_http)
