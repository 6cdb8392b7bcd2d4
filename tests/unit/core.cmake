postern_check_test(check_core SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_core.c LIBS postern_core)
