postern_py_test(smtp_crash integration/smtp_crash.py)
