# FETCH BINARY and SEARCH text (maildir/md_decode.c, maildir/md_text.c):
# decoders on hand-made input and md_msg_binary()/md_msg_text() through a
# temporary store.
postern_check_test(check_text SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_text.c LIBS postern_maildir)
