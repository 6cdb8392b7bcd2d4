# The store's unit tests (maildir/store.h).  They include md_private.h for
# writer-thread internals and read the hand-written Dovecot fixture.
postern_check_test(check_store SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_store.c LIBS postern_maildir)
target_compile_definitions(check_store PRIVATE FIXTURE_DIR="${CMAKE_CURRENT_LIST_DIR}")
# what the Maildir keeps for a rebuilt index: keywords beyond z, RFC 8474 ids
postern_check_test(check_store_kept SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_store_kept.c LIBS postern_maildir)
postern_check_test(check_store_faults SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_store_faults.c LIBS postern_maildir)
# I/O errors injected (and calls counted): the store's calls of these go
# through wrappers in the test, which also count file calls made inside the
# index's write transaction; mdb_txn_commit is wrapped to see what was
# fsynced before each index commit (and to fail one)
postern_check_test(check_store_io SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_store_io.c LIBS postern_maildir)
target_link_options(check_store_io PRIVATE
  "LINKER:--wrap=write,--wrap=fsync,--wrap=link,--wrap=rename,--wrap=strdup,--wrap=unlink,--wrap=mkdir,--wrap=opendir,--wrap=mdb_txn_commit")
# CONDSTORE/QRESYNC side: the pruned expunge log, md_mailbox_changes()
postern_check_test(check_store_modseq SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_store_modseq.c LIBS postern_maildir)
