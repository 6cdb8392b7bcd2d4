postern_check_test(check_imap SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_imap.c LIBS postern_imap)
# The command reader's fuzz harness, replayed over its corpus like the
# others in fuzz_regress.cmake (kept here so modules do not edit one list).
add_executable(fuzz_imap ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_imap.c)
target_link_libraries(fuzz_imap PRIVATE postern_imap)
add_test(NAME fuzz_regress_imap COMMAND fuzz_imap ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/imap)
set_tests_properties(fuzz_regress_imap PROPERTIES TIMEOUT 60)
