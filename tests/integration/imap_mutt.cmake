postern_py_test(imap_mutt integration/imap_mutt.py)
