# Unit tests of core/tls_ticket.c: session resumption across a rebuilt
# tls_server (SIGHUP) and across key rotations, over memory BIOs.
postern_check_test(check_tls_ticket SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_tls_ticket.c LIBS postern_core)
