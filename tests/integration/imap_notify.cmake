postern_py_test(imap_notify integration/imap_notify.py)
