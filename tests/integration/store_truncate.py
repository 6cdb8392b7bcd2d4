"""A Maildir file truncated by another program while Postern serves it
(issue 13): that one client gets an error or a closed connection, never a
short message passed off as whole, and the daemon keeps serving everyone.

- Mid-transfer: a 12 MB message is being sent (IMAP FETCH BODY.PEEK[],
  POP3 RETR) to a slow reader (small receive buffer, small reads) when the
  test truncates its file.  IMAP announced the literal's size, so the
  connection closes inside the literal (fewer octets than announced, never
  padding); POP3 closes before the terminating "." line, so a client never
  takes the message as whole (and never DELEs it).  What did arrive is the
  file's own prefix.
- Before the request: a message whose file is shorter (or longer) than
  indexed gets a tagged NO [CORRUPTION] for FETCH of its text or header
  fields (no literal at all), the other messages of the same FETCH still
  go; POP3 RETR/TOP answer -ERR [SYS/PERM] and the session goes on.
- Afterwards a new IMAP login FETCHes another message whole, POP3 STAT and
  RETR work, and the daemon exits cleanly (ASan-clean in the CI build).

Usage: store_truncate.py /path/to/postern
"""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, Results, maildir_files, tls_context  # noqa: E402

USER = "trunc@example.test"
PASSWORD = "truncate-pass-1"
BIG = 12 * 1024 * 1024  # well over the socket buffers and the daemon's output queue
RCVBUF = 32 * 1024      # the slow reader's receive buffer
READ_BEFORE = 256 * 1024  # octets read before the file is truncated
TRUNCATE_TO = 1000


def make_msg(subject, size=0):
    head = ("From: sender@example.org\r\nTo: %s\r\nSubject: %s\r\n"
            "Message-ID: <%s@example.org>\r\n\r\n" % (USER, subject, subject)).encode()
    body = bytearray()
    i = 0
    while len(head) + len(body) < size:
        body += b"line %08d of the big message, no dot at the start of any line\r\n" % i
        i += 1
    return head + bytes(body) + b"the end\r\n"


def file_of(d, subject):
    """(path, bytes) of the Maildir file of the message with this Subject
    (delivery added a header or two: the file is what IMAP serves)."""
    want = ("Subject: %s\r\n" % subject).encode()
    for path in maildir_files(d, USER):
        with open(path, "rb") as f:
            data = f.read()
        if want in data[:4096]:
            return path, data
    raise AssertionError("no file for " + subject)


class Slow:
    """A TLS client with a small receive buffer that reads what it is told."""

    def __init__(self, port):
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        raw.settimeout(20)
        raw.connect(("127.0.0.1", port))
        self.sock = tls_context().wrap_socket(raw)
        self.buf = b""

    def send(self, line):
        self.sock.sendall(line.encode() + b"\r\n")

    def line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(4096)
            if not data:
                raise EOFError("closed before a line")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def until(self, tag):
        lines = []
        while True:
            lines.append(self.line())
            if lines[-1].startswith(tag.encode() + b" "):
                return lines

    def take(self, n):
        """About n octets, a little at a time (a slow client)."""
        while len(self.buf) < n:
            data = self.sock.recv(4096)
            if not data:
                break
            self.buf += data
            time.sleep(0.0005)
        out, self.buf = self.buf, b""
        return out

    def rest(self, timeout=20):
        """Everything up to the end of the connection; (octets, closed)."""
        out, self.buf = self.buf, b""
        deadline = time.time() + timeout
        self.sock.settimeout(2)
        while time.time() < deadline:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return out, True
            if not data:
                return out, True
            out += data
        return out, False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def imap_login(d):
    c = Slow(d.port("imaps"))
    c.line()
    c.send('a LOGIN "%s" "%s"' % (USER, PASSWORD))
    assert c.until("a")[-1].startswith(b"a OK"), "IMAP login"
    c.send("b SELECT INBOX")
    assert c.until("b")[-1].startswith(b"b OK"), "SELECT"
    return c


def pop3_login(d):
    c = Slow(d.port("pop3s"))
    assert c.line().startswith(b"+OK")
    for cmd in ("USER " + USER, "PASS " + PASSWORD):
        c.send(cmd)
        res = c.line()
        assert res.startswith(b"+OK"), (cmd, res)
    return c


def read_across_truncate(c, path):
    """Read a little of a response, truncate its file, read what else
    comes: (octets, whether the connection closed)."""
    got = c.take(READ_BEFORE)
    os.truncate(path, TRUNCATE_TO)
    more, closed = c.rest()
    c.close()
    return got + more, closed


def test_imap_mid_transfer(d, r, msg, path):
    c = imap_login(d)
    c.send("f1 FETCH 1 BODY.PEEK[]")
    head = c.line()
    r.check(head == b"* 1 FETCH (BODY[] {%d}" % len(msg),
            "IMAP FETCH announces the whole message: %r" % head[:60])
    got, closed = read_across_truncate(c, path)
    r.check(closed, "IMAP: the connection is closed after the file shrank mid-literal")
    r.check(READ_BEFORE <= len(got) < len(msg),
            "IMAP: fewer octets than announced arrived (%d of %d)" % (len(got), len(msg)))
    r.check(got == msg[:len(got)],
            "IMAP: what arrived is the file's own prefix (no padding, nothing else)")
    r.check(b"f1 OK" not in got[-200:], "IMAP: no tagged OK for the broken FETCH")
    r.check("closing this connection" in d.log(), "IMAP: the daemon logs why it closed")


def test_pop3_mid_transfer(d, r, msg, path):
    c = pop3_login(d)
    c.send("RETR 2")
    status = c.line()
    r.check(status == b"+OK %d octets" % len(msg), "POP3 RETR starts: %r" % status)
    got, closed = read_across_truncate(c, path)
    r.check(closed, "POP3: the connection is closed after the file shrank mid-message")
    r.check(not got.endswith(b"\r\n.\r\n"),
            "POP3: no terminating '.' line: the client cannot take it as whole")
    r.check(READ_BEFORE <= len(got) < len(msg) and got == msg[:len(got)],
            "POP3: what arrived (%d of %d) is the file's own prefix" % (len(got), len(msg)))
    r.check("closing mid-message" in d.log(), "POP3: the daemon logs why it closed")


def test_truncated_before(d, r, small, path, control, grown_path):
    os.truncate(path, 10)
    c = imap_login(d)
    c.send("g1 FETCH 3 BODY.PEEK[]")
    lines = c.until("g1")
    r.check(len(lines) == 1 and lines[0].startswith(b"g1 NO [CORRUPTION]"),
            "IMAP FETCH of a file shorter than indexed: tagged NO, no literal: %r" % lines)
    c.send("g2 FETCH 3:4 BODY.PEEK[]")
    head = c.line()
    r.check(head == b"* 4 FETCH (BODY[] {%d}" % len(control),
            "IMAP FETCH 3:4 still sends message 4: %r" % head)
    body = c.take(len(control))
    r.check(body[:len(control)] == control, "message 4 arrives whole")
    c.buf = body[len(control):]
    lines = c.until("g2")
    r.check(lines[0] == b")" and lines[-1].startswith(b"g2 NO [CORRUPTION]"),
            "and the FETCH ends NO [CORRUPTION]: %r" % lines)
    c.send("g5 FETCH 3 BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
    lines = c.until("g5")
    r.check(len(lines) == 1 and lines[0].startswith(b"g5 NO [CORRUPTION]"),
            "so is its HEADER.FIELDS (offsets from the index): %r" % lines)
    with open(grown_path, "ab") as f:
        f.write(b"appended by another program\r\n")
    c.send("g6 FETCH 5 BODY.PEEK[]")
    lines = c.until("g6")
    r.check(len(lines) == 1 and lines[0].startswith(b"g6 NO [CORRUPTION]"),
            "a file that grew since indexed: tagged NO too: %r" % lines)
    c.send("g7 FETCH 3 BODY[]")
    lines = c.until("g7")
    r.check(len(lines) == 1 and lines[0].startswith(b"g7 NO [CORRUPTION]"),
            "FETCH BODY[] (not PEEK) of it: tagged NO too: %r" % lines)
    c.send("g3 FETCH 3 (FLAGS RFC822.SIZE)")
    lines = c.until("g3")
    r.check(lines[-1].startswith(b"g3 OK") and b"RFC822.SIZE %d" % len(small) in lines[0],
            "items from the index alone still work: %r" % lines)
    r.check(b"\\Seen" not in lines[0],
            "the message refused to BODY[] was not marked \\Seen: %r" % lines[0])
    c.send("g4 LOGOUT")
    c.until("g4")
    c.close()

    p = pop3_login(d)
    p.send("RETR 3")
    res = p.line()
    r.check(res.startswith(b"-ERR [SYS/PERM]"), "POP3 RETR of the shortened file: %r" % res)
    p.send("TOP 3 0")
    res = p.line()
    r.check(res.startswith(b"-ERR [SYS/PERM]"), "POP3 TOP of it: %r" % res)
    p.send("RETR 5")
    res = p.line()
    r.check(res.startswith(b"-ERR [SYS/PERM]"), "POP3 RETR of the grown file: %r" % res)
    p.send("RETR 4")
    res = p.line()
    data = p.take(len(control) + 3)
    r.check(res == b"+OK %d octets" % len(control) and data == control + b".\r\n",
            "the same POP3 session then RETRs message 4 whole")
    p.send("QUIT")
    r.check(p.line().startswith(b"+OK"), "POP3 QUIT (nothing deleted)")
    p.close()


def test_still_serving(d, r, control):
    r.check(d.proc.poll() is None, "the daemon is still running")
    c = imap_login(d)
    c.send("h1 FETCH 4 BODY.PEEK[]")
    head = c.line()
    body = c.take(len(control))
    c.buf = body[len(control):]
    lines = c.until("h1")
    r.check(head == b"* 4 FETCH (BODY[] {%d}" % len(control) and body[:len(control)] == control
            and lines[-1].startswith(b"h1 OK"),
            "a new IMAP login FETCHes another message whole")
    c.close()
    p = pop3_login(d)
    p.send("STAT")
    res = p.line()
    r.check(res.startswith(b"+OK 5 "), "POP3 STAT still answers: %r" % res)
    p.close()


def main():
    postern = sys.argv[1]
    r = Results()
    with Daemon(postern, roles=("imaps", "pop3s")) as d:
        d.add_user(USER, PASSWORD)
        for subject, size in (("big-imap", BIG), ("big-pop3", BIG), ("small-victim", 0),
                              ("control", 0), ("small-grown", 0)):
            d.cli("deliver", USER, input=make_msg(subject, size))
        big_imap, big_pop3, small, control, grown = (file_of(d, s) for s in (
            "big-imap", "big-pop3", "small-victim", "control", "small-grown"))
        r.run("imap mid-transfer", lambda: test_imap_mid_transfer(d, r, big_imap[1], big_imap[0]))
        r.run("pop3 mid-transfer", lambda: test_pop3_mid_transfer(d, r, big_pop3[1], big_pop3[0]))
        r.run("truncated before the request",
              lambda: test_truncated_before(d, r, small[1], small[0], control[1], grown[0]))
        r.run("still serving", lambda: test_still_serving(d, r, control[1]))
    r.finish()


if __name__ == "__main__":
    main()
