"""HTTP connections count in connections_max like every other listener's
(protocols/http/http_conns.c): with connections_max = 3, three idle HTTP
connections make a fourth get "HTTP/1.1 503" and the close, and an IMAP
client the IMAP busy reply; three IMAP connections make an HTTP client get
the 503; once connections end, their slots come back (a request is
answered again, an IMAP client greeted).

Usage: http_limit.py /path/to/postern
"""
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postern_test import Daemon, Results, free_port, skip, wait_port  # noqa: E402

LIMIT = 3
SLOT_BACK_S = 5  # a freed slot must be usable again within this


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s


def read_all(s, limit=65536):
    """Everything until the server closes (or 10 s pass)."""
    out = b""
    try:
        while len(out) < limit:
            b = s.recv(4096)
            if not b:
                break
            out += b
    except socket.timeout:
        pass
    return out


def open_and_quiet(s):
    """Nothing to read and not closed."""
    s.setblocking(False)
    try:
        s.recv(1)
        ok = False  # data or the close
    except BlockingIOError:
        ok = True
    s.settimeout(10)
    return ok


def get(port, path="/nothing-here"):
    s = connect(port)
    s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
               % path).encode())
    out = read_all(s)
    s.close()
    return out


def wait_for(pred, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    return pred()


def test_http_fills(d, r, http, imap):
    held = [connect(http) for _ in range(LIMIT)]
    time.sleep(0.3)  # accepted and counted
    r.check(all(open_and_quiet(s) for s in held),
            "%d idle HTTP connections are accepted and stay open" % LIMIT)
    out = get(http)
    r.check(out.startswith(b"HTTP/1.1 503 ") and b"Too many connections" in out,
            "the fourth HTTP connection: 503 and the close: %r" % out[:200])
    s = connect(imap)
    greet = read_all(s, 200)
    s.close()
    r.check(greet.startswith(b"* BYE Too many connections"),
            "an IMAP client while HTTP holds every slot: the busy reply: %r" % greet)
    r.check("http connection refused: connections_max reached" in d.log(),
            "the refusal is logged")
    held.pop().close()
    out = wait_for(lambda: (lambda o: o if o.startswith(b"HTTP/1.1 404") else None)(get(http)),
                   SLOT_BACK_S)
    r.check(out is not None and out.startswith(b"HTTP/1.1 404"),
            "one closed: a request is answered again: %r" % (out or b"")[:80])
    for s in held:
        s.close()


def test_imap_fills(d, r, http, imap):
    held = []
    for _ in range(LIMIT):
        s = connect(imap)
        g = s.recv(200)
        held.append(s)
        r.check(g.startswith(b"* OK"), "IMAP connection greeted: %r" % g[:40])
    out = get(http)
    r.check(out.startswith(b"HTTP/1.1 503 "),
            "IMAP holds every slot: an HTTP client gets 503: %r" % out[:80])
    for s in held:
        s.close()
    out = wait_for(lambda: (lambda o: o if o.startswith(b"HTTP/1.1 404") else None)(get(http)),
                   SLOT_BACK_S)
    r.check(out is not None, "all closed: HTTP answered again")
    s = wait_for(lambda: (lambda c: c if c.recv(200).startswith(b"* OK") else c.close())(
        connect(imap)), SLOT_BACK_S)
    r.check(s is not None, "and an IMAP client greeted")
    if s:
        s.close()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: http_limit.py POSTERN")
    postern = os.path.abspath(sys.argv[1])
    if "http" not in subprocess.run([postern, "version"], capture_output=True,
                                    text=True).stdout:
        skip("this build has no protocols/http")
    r = Results()
    http = free_port()
    extra = ("connections_max = %d\nlistener web {\n  role = http\n  address = 127.0.0.1\n"
             "  port = %d\n}\n" % (LIMIT, http))
    with Daemon(postern, roles=("imap",), tls=False, extra_config=extra,
                keep_dir=os.environ.get("KEEP") is not None) as d:
        r.check(wait_port(http), "the HTTP listener is up")
        time.sleep(0.6)  # wait_port's connection is let go (http_conns.c's sweep)
        imap = d.port("imap")
        r.run("http fills", lambda: test_http_fills(d, r, http, imap))
        time.sleep(0.5)
        r.run("imap fills", lambda: test_imap_fills(d, r, http, imap))
    r.finish()


if __name__ == "__main__":
    main()
