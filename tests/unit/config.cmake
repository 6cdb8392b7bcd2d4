# Unit tests of core/config.c.  The source directory is compiled in so the
# test can load the shipped example conf/postern.conf.
postern_check_test(check_config
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_config.c
  LIBS postern_core)
target_compile_definitions(check_config PRIVATE POSTERN_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
