# FETCH BINARY and SEARCH text of the store against the Dovecot-recorded
# corpus: store_query (a test-only program) delivers the corpus into a
# temporary store and answers md_msg_binary() / md_msg_text() questions;
# corpus_store.py compares with the golden answers.
add_executable(store_query ${CMAKE_SOURCE_DIR}/tests/helpers/store_query.c)
target_link_libraries(store_query PRIVATE postern_maildir)
foreach(mode binary search)
  add_test(NAME corpus_${mode}
    COMMAND ${SYSTEM_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/corpus_store.py $<TARGET_FILE:store_query> ${mode})
  set_tests_properties(corpus_${mode} PROPERTIES
    ENVIRONMENT "POSTERN_SHARED_DIR=${POSTERN_SHARED_DIR};PYTHONDONTWRITEBYTECODE=1"
    SKIP_RETURN_CODE 77 TIMEOUT 600)
endforeach()
