postern_py_test(imap_quirks integration/imap_quirks.py)
