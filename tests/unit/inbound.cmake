# Unit tests of the inbound checks in protocols/smtp against a fake DNS
# table: SPF (RFC 7208 Appendix A, §7.4 macros, limits), DMARC (PSL,
# alignment, p=/sp=/pct=), Authentication-Results stripping and building.
postern_check_test(check_inbound
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/check_inbound.c
  LIBS postern_smtp)
