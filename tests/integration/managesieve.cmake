postern_py_test(managesieve integration/managesieve.py)
