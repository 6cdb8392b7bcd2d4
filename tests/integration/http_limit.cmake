postern_py_test(http_limit integration/http_limit.py)
