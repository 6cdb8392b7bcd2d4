postern_py_test(smtp_clients integration/smtp_clients.py)
