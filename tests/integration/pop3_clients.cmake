postern_py_test(pop3_clients integration/pop3_clients.py)
