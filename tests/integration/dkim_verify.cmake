# DKIM signatures checked by an independent implementation: keys from
# `postern dkim generate`, messages signed by dkim_sign (a test-only
# program around the signer the outbound queue calls), each signature
# verified by Debian's python3-dkim with the key record `postern dns`
# printed.
add_executable(dkim_sign ${CMAKE_SOURCE_DIR}/tests/helpers/dkim_sign.c)
target_link_libraries(dkim_sign PRIVATE postern_smtp)
postern_py_test(dkim_verify integration/dkim_verify.py $<TARGET_FILE:dkim_sign>)
