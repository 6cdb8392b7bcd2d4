postern_py_test(imap_rev2 integration/imap_rev2.py)
