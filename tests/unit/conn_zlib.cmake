# Unit tests of core/conn_zlib.c (COMPRESS=DEFLATE's filter): every split
# point, the inflate bound against a deflate bomb, corrupt streams.
postern_check_test(check_conn_zlib SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_conn_zlib.c LIBS postern_core)
