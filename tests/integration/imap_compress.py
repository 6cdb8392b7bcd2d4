"""IMAP COMPRESS=DEFLATE (RFC 4978) against the real daemon.  imaplib has no
COMPRESS, so the client here speaks raw DEFLATE (zlib, wbits -15) over a
plain socket, implicit TLS (993) and STARTTLS: a whole session after
COMPRESS (LOGIN/SELECT, FETCH of a large body, APPEND with a literal,
IDLE/DONE seeing another session's APPEND), COMPRESS twice, a client that
sends garbage after COMPRESS (closed, the daemon lives on) and a deflate
bomb (the daemon's memory stays bounded and it answers [TOOBIG]).

Usage: imap_compress.py /path/to/postern
"""
import imaplib
import os
import random
import re
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, Results, tls_context  # noqa: E402
from imap_protocol import MSG1, PASSWORD, USER, Raw  # noqa: E402
from pop3_util import allow_plaintext  # noqa: E402

BOMB_SIZE = 256 * 1024 * 1024  # plaintext octets of the deflate bomb
BOMB_RSS_GROWTH_MAX = 32 * 1024 * 1024  # what the daemon may grow by meanwhile


class Deflated(Raw):
    """Raw's tagged client; after compress() every octet both ways is one
    raw DEFLATE stream, each command flushed with Z_SYNC_FLUSH."""

    def compress(self):
        res = self.cmd("COMPRESS DEFLATE")[-1]
        if b" OK" in res:
            self.zout = zlib.compressobj(6, zlib.DEFLATED, -15)
            self.zin = zlib.decompressobj(-15)
            # what arrived after the OK is compressed already
            pending, self.buf = self.buf, b""
            self.buf = self.zin.decompress(pending)
        return res

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        if getattr(self, "zout", None) is not None:
            data = self.zout.compress(data) + self.zout.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def send_raw(self, data):
        self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        if getattr(self, "zin", None) is not None:
            data = self.zin.decompress(data)
        self.buf += data


def starttls_client(d):
    c = Deflated(d.port("imap"))
    res = c.cmd("STARTTLS")[-1]
    assert b" OK" in res, res
    c.sock = tls_context().wrap_socket(c.sock)
    return c


def big_message():
    rnd = random.Random(4978)
    lines = [b"From: bob@example.test", b"To: alice@example.test",
             b"Subject: big one", b"Date: Mon, 02 Feb 2026 10:00:00 +0000", b""]
    for i in range(30000):
        # half text that compresses, half that does not
        noise = bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(30))
        lines.append(b"line %06d of the big message " % i + noise)
    return b"\r\n".join(lines) + b"\r\n"


def fetch_body(lines):
    """The literal of a FETCH BODY[] answer in Raw.until()'s lines."""
    for i, line in enumerate(lines):
        if re.search(rb"BODY\[\] \{\d+\}$", line):
            return lines[i + 1]
    return None


def session(d, r, c, label):
    """A whole session on a compressed connection c (logged in already)."""
    big = big_message()
    res = c.cmd("SELECT INBOX")[-1]
    r.check(res.startswith(b"r") and b"OK [READ-WRITE]" in res, "%s: SELECT: %r" % (label, res))
    # APPEND with a synchronising literal: "+" comes compressed too
    c.send(b"a1 APPEND INBOX {%d}\r\n" % len(big))
    cont = c.raw_line()
    r.check(cont.startswith(b"+"), "%s: APPEND continuation: %r" % (label, cont))
    c.send(big + b"\r\n")
    res = c.until("a1")[-1]
    m = re.search(rb"APPENDUID \d+ (\d+)", res)
    r.check(m is not None, "%s: APPEND of %d octets: %r" % (label, len(big), res))
    uid = int(m.group(1)) if m else 0
    lines = c.cmd("UID FETCH %d BODY.PEEK[]" % uid)
    r.check(fetch_body(lines) == big and lines[-1].split(b" ")[1] == b"OK",
            "%s: FETCH BODY[] gives the %d octets back" % (label, len(big)))
    # IDLE: another session's APPEND arrives as EXISTS
    c.send(b"i1 IDLE\r\n")
    cont = c.raw_line()
    r.check(cont.startswith(b"+ "), "%s: IDLE continuation: %r" % (label, cont))
    other = imaplib.IMAP4_SSL("127.0.0.1", d.port("imaps"), ssl_context=tls_context())
    other.login(USER, PASSWORD)
    other.append("INBOX", None, None, MSG1)
    other.logout()
    line = c.raw_line()
    r.check(re.match(rb"\* \d+ EXISTS$", line) is not None,
            "%s: IDLE hears the other session's APPEND: %r" % (label, line))
    c.send(b"DONE\r\n")
    res = c.until("i1")[-1]
    r.check(res.startswith(b"i1 OK"), "%s: DONE ends IDLE: %r" % (label, res))
    res = c.cmd("COMPRESS DEFLATE")[-1]
    r.check(b"NO [COMPRESSIONACTIVE]" in res, "%s: COMPRESS twice: %r" % (label, res))
    caps = c.cmd("CAPABILITY")[0]
    r.check(b"COMPRESS=DEFLATE" not in caps and b"IMAP4rev1" in caps,
            "%s: CAPABILITY no longer offers COMPRESS: %r" % (label, caps))
    c.send(b"l1 LOGOUT\r\n")
    res = c.until("l1")[-1]
    r.check(res.startswith(b"l1 OK") and c.closed(), "%s: LOGOUT closes: %r" % (label, res))
    c.close()


def test_plain(d, r):
    c = Deflated(d.port("imap"))
    res = c.cmd("COMPRESS DEFLATE")[-1]
    r.check(b"BAD" in res, "COMPRESS before login is refused: %r" % res)
    c.login()
    caps = c.cmd("CAPABILITY")[0]
    r.check(b" COMPRESS=DEFLATE" in caps, "CAPABILITY after login offers COMPRESS: %r" % caps)
    res = c.cmd("COMPRESS GZIP")[-1]
    r.check(b"BAD" in res, "an unknown mechanism is BAD: %r" % res)
    res = c.compress()
    r.check(re.match(rb"r\d+ OK", res) is not None, "plain: COMPRESS DEFLATE: %r" % res)
    session(d, r, c, "plain")


def test_imaps(d, r):
    c = Deflated(d.port("imaps"), tls=True)
    c.login()
    res = c.compress()
    r.check(b" OK" in res, "993: COMPRESS over TLS: %r" % res)
    session(d, r, c, "993")


def test_starttls(d, r):
    c = starttls_client(d)
    c.login()
    res = c.compress()
    r.check(b" OK" in res, "STARTTLS: COMPRESS over TLS: %r" % res)
    session(d, r, c, "starttls")


def alive(d):
    m = imaplib.IMAP4_SSL("127.0.0.1", d.port("imaps"), ssl_context=tls_context())
    m.login(USER, PASSWORD)
    typ, _ = m.noop()
    m.logout()
    return typ == "OK" and d.proc.poll() is None


def test_garbage(d, r):
    for tls in (False, True):
        c = Deflated(d.port("imaps") if tls else d.port("imap"), tls=tls)
        c.login()
        c.compress()
        # 0xff: a final block of the reserved type 11 (RFC 1951 §3.2.3)
        c.send_raw(b"\xff" * 64 + b"g1 NOOP\r\n")
        t0 = time.time()
        r.check(c.closed(timeout=10), "garbage after COMPRESS (tls=%s) closes the connection "
                "(%.2fs)" % (tls, time.time() - t0))
        c.close()
        # a valid command, then the stream ended: closed too
        c = Deflated(d.port("imap"))
        c.login()
        c.compress()
        z = zlib.compressobj(6, zlib.DEFLATED, -15)
        c.send_raw(z.compress(b"e1 NOOP\r\n") + z.flush(zlib.Z_FINISH) + b"junk")
        r.check(c.closed(timeout=10), "a client that ends its DEFLATE stream is closed")
        c.close()
    r.check(alive(d) and "compressed input is corrupt" in d.log(),
            "the daemon lives on and logs the corrupt stream")


def rss_peak(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def test_bomb(d, r):
    c = Deflated(d.port("imap"))
    c.login()
    c.compress()
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = b"A" * (1024 * 1024)
    bomb = b"".join(z.compress(block) for _ in range(BOMB_SIZE // len(block)))
    bomb += z.compress(b"\r\nb2 NOOP\r\n") + z.flush(zlib.Z_SYNC_FLUSH)
    before = rss_peak(d.proc.pid)
    t0 = time.time()
    c.sock.sendall(bomb)
    c.zout = z  # the stream goes on from here
    lines = c.until("b2")
    took = time.time() - t0
    after = rss_peak(d.proc.pid)
    r.check(any(b"BAD [TOOBIG]" in line for line in lines) and lines[-1].startswith(b"b2 OK"),
            "a %d-octet deflate bomb (%d MiB inflated) is one over-long line, then the "
            "session goes on (%.1fs): %r" % (len(bomb), BOMB_SIZE >> 20, took, lines))
    r.check(after - before < BOMB_RSS_GROWTH_MAX,
            "the daemon's peak memory grew by %d KiB only" % ((after - before) // 1024))
    res = c.cmd("NOOP")[-1]
    r.check(b" OK" in res, "the stream stays in step after the bomb: %r" % res)
    c.close()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: imap_compress.py POSTERN")
    r = Results()
    d = Daemon(sys.argv[1], roles=("imap", "imaps"))
    allow_plaintext(d)
    with d:
        d.add_user(USER, PASSWORD)
        r.run("plain", lambda: test_plain(d, r))
        r.run("imaps", lambda: test_imaps(d, r))
        r.run("starttls", lambda: test_starttls(d, r))
        r.run("garbage", lambda: test_garbage(d, r))
    # ASan keeps freed memory in quarantine (256 MiB): without one the
    # daemon's peak RSS shows what it really holds.
    asan = os.environ.get("ASAN_OPTIONS", "")
    os.environ["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "quarantine_size_mb=0"
    d = Daemon(sys.argv[1], roles=("imap",))
    allow_plaintext(d)
    with d:
        d.add_user(USER, PASSWORD)
        r.run("bomb", lambda: test_bomb(d, r))
    r.finish()


if __name__ == "__main__":
    main()
