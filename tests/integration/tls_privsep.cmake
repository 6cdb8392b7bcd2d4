postern_py_test(tls_privsep integration/tls_privsep.py)
