postern_py_test(imap_sort integration/imap_sort.py)
