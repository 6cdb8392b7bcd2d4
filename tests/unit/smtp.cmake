# Unit tests of protocols/smtp: parsers, line splitter, DATA/BDAT unstuffer
# (split at every offset), smuggling variants, header scan, From: parser.
postern_check_test(check_smtp
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_smtp.c
  LIBS postern_smtp)
