postern_check_test(check_shards SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_shards.c LIBS postern_auth)
