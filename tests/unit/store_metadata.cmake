# METADATA entries of the store (maildir/md_metadata.c): limits, RENAME and
# DELETE, every truncation of the file.
postern_check_test(check_store_metadata SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_store_metadata.c LIBS postern_maildir)
