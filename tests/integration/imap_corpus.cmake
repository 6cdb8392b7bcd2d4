postern_py_test(imap_corpus integration/imap_corpus.py)
