# Unit tests of the outbound queue's files and bounces (protocols/smtp).
postern_check_test(check_queue
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_queue.c
  LIBS postern_smtp)
