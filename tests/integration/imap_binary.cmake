postern_py_test(imap_binary integration/imap_binary.py)
