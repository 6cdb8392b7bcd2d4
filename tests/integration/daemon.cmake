postern_py_test(daemon integration/daemon.py)
