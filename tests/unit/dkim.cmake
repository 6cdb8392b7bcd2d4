# Unit tests of DKIM in protocols/smtp: RFC 6376 §3.4.5 canonicalisation,
# body fed split at every offset, empty-body hashes, keys, the signer.
postern_check_test(check_dkim
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_dkim.c
  LIBS postern_smtp)
