#!/usr/bin/python3
"""Benchmark (reported, not asserted): hold many idle connections, plaintext
and then TLS, and report connections accepted per second and the daemon's
memory per idle connection (PSS from /proc/PID/smaps_rollup, before and
after).  Issue target: < 16 KiB per plaintext and < 32 KiB per TLS
connection.  For scale, Dovecot spends about 600 KiB per idle TLS session
(see pop3_bench.py for a side-by-side run).

    /usr/bin/python3 tests/bench/idle_connections.py build/postern [N]

Uses the first protocol the build has (POP3 preferred: its greeting is one
short line).  Everything runs on 127.0.0.1 and stops by itself."""
import os
import resource
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon  # noqa: E402

PAIRS = [("pop3", "pop3s"), ("imap", "imaps"), ("submission", "submissions")]


def pss_kib(pid):
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def open_many(port, n, tls_ctx):
    socks = []
    t0 = time.time()
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        if tls_ctx is not None:
            s = tls_ctx.wrap_socket(s, server_hostname="localhost")
        s.recv(512)  # the greeting: the session exists on the server
        socks.append(s)
    return socks, time.time() - t0


def main():
    postern = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 2 * n + 1000)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < 2 * n + 100:
        n = (want - 200) // 2
        print("file descriptor limit: measuring %d connections" % n)
    out = os.popen(postern + " version").read()
    roles = out.split("protocols:")[-1].split()
    pair = next((p for p in PAIRS if p[0] in roles and p[1] in roles), None)
    if pair is None:
        print("no protocol with plain and TLS listeners in this build:", roles)
        return 0
    d = Daemon(postern, roles=list(pair),
               extra_config="connections_max = %d\nconnections_per_ip_max = %d\n" % (n + 10, n + 10))
    with d:
        pid = d.proc.pid
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        print("postern %s/%s, %d idle connections each" % (pair[0], pair[1], n))
        for label, port, tls in (("plaintext", d.port(pair[0]), None),
                                 ("TLS", d.port(pair[1]), ctx)):
            time.sleep(0.5)
            before = pss_kib(pid)
            socks, secs = open_many(port, n, tls)
            time.sleep(1.0)
            after = pss_kib(pid)
            per = (after - before) * 1024.0 / n
            print("%-9s accepted %6.0f conn/s   PSS %6d -> %6d KiB   %6.1f KiB per idle connection"
                  % (label, n / secs, before, after, per / 1024.0))
            for s in socks:
                s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
