postern_py_test(store_unlink_fault integration/store_unlink_fault.py $<TARGET_FILE:postern_unlink_fault>)
