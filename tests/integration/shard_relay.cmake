postern_py_test(shard_relay integration/shard_relay.py)
