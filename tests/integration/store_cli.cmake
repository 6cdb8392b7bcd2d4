postern_py_test(store_cli integration/store_cli.py)
