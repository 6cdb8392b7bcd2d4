postern_py_test(sandbox integration/sandbox.py)
