postern_py_test(nginx_shards integration/nginx_shards.py)
