postern_py_test(sieve_lmtp integration/sieve_lmtp.py)
