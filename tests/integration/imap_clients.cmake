postern_py_test(imap_clients integration/imap_clients.py)
