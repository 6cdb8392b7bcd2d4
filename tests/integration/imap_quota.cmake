postern_py_test(imap_quota integration/imap_quota.py)
