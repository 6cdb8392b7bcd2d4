postern_py_test(lmtp integration/lmtp.py)
