postern_py_test(imap_preview integration/imap_preview.py)
