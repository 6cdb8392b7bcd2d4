postern_py_test(imap_context integration/imap_context.py)
