# DKIM signatures checked by an independent implementation: keys from
# `postern dkim generate`, messages signed by dkim_sign (a test-only
# program around the signer the outbound queue calls), each signature
# verified by Debian's python3-dkim with the key record `postern dns`
# printed.
add_executable(dkim_sign ${CMAKE_SOURCE_DIR}/tests/helpers/dkim_sign.c)
target_link_libraries(dkim_sign PRIVATE postern_smtp)
add_test(NAME dkim_verify
  COMMAND ${SYSTEM_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/dkim_verify.py
          $<TARGET_FILE:postern> $<TARGET_FILE:dkim_sign>)
set_tests_properties(dkim_verify PROPERTIES
  ENVIRONMENT "PYTHONPATH=${CMAKE_SOURCE_DIR}/tests/helpers;PYTHONDONTWRITEBYTECODE=1"
  SKIP_RETURN_CODE 77 TIMEOUT 300)
