postern_py_test(store_full integration/store_full.py)
