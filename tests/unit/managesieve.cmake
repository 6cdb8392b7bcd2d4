# ManageSieve's command reader (private header) and the Sieve script store.
postern_check_test(check_managesieve SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_managesieve.c
  LIBS postern_managesieve postern_maildir)
target_include_directories(check_managesieve PRIVATE ${CMAKE_SOURCE_DIR}/protocols/managesieve)
