postern_py_test(imap_i18n integration/imap_i18n.py)
