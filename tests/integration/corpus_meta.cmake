# The metadata code against the Dovecot-recorded corpus: meta_dump (a
# test-only program) prints what md_meta_compute() finds for one message;
# corpus_meta.py compares it with the golden answers.
add_executable(meta_dump ${CMAKE_SOURCE_DIR}/tests/helpers/meta_dump.c)
target_link_libraries(meta_dump PRIVATE postern_maildir)
add_test(NAME corpus_meta
  COMMAND ${SYSTEM_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/corpus_meta.py $<TARGET_FILE:meta_dump>)
set_tests_properties(corpus_meta PROPERTIES
  ENVIRONMENT "POSTERN_SHARED_DIR=${POSTERN_SHARED_DIR};PYTHONDONTWRITEBYTECODE=1"
  SKIP_RETURN_CODE 77 TIMEOUT 300)
