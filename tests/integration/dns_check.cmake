postern_py_test(dns_check integration/dns_check.py)
