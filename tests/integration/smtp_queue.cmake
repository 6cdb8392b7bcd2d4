postern_py_test(smtp_queue integration/smtp_queue.py)
