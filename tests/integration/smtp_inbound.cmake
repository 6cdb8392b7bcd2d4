# Inbound SPF, DKIM (python3-dkim and Postern's own dkim_sign as signers),
# DMARC and Authentication-Results through the daemon, DNS from dnsmasq.
add_test(NAME smtp_inbound
  COMMAND ${SYSTEM_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/smtp_inbound.py
          $<TARGET_FILE:postern> $<TARGET_FILE:dkim_sign>)
set_tests_properties(smtp_inbound PROPERTIES
  ENVIRONMENT "PYTHONPATH=${CMAKE_SOURCE_DIR}/tests/helpers;PYTHONDONTWRITEBYTECODE=1"
  SKIP_RETURN_CODE 77 TIMEOUT 300)
