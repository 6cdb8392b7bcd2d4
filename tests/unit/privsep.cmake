# Unit tests of core/privsep.c (the privileged file reader): a real
# privilege drop in a forked child when run as root.
postern_check_test(check_privsep SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_privsep.c LIBS postern_core)
