# Inbound SPF, DKIM (python3-dkim and Postern's own dkim_sign as signers),
# DMARC and Authentication-Results through the daemon, DNS from dnsmasq.
postern_py_test(smtp_inbound integration/smtp_inbound.py $<TARGET_FILE:dkim_sign>)
