"""Helpers shared by the pop3_*.py integration tests (not a test itself).

A raw POP3 client that sees exact bytes, mail delivery through
`postern deliver`, and a look into the Maildir on disk.
"""
import time

import postern_test
from postern_test import tls_context  # noqa: F401 (re-exported)

USER = "alice@example.test"
PASSWORD = "alice-secret-1"
USER2 = "bob@example.test"
PASSWORD2 = "bob-secret-2"


class Raw(postern_test.LineClient):
    """Line-level POP3 client over plain or TLS sockets."""

    def __init__(self, port, tls=False, timeout=15):
        super().__init__(port, tls, timeout)
        self.greeting = self.line()

    def line(self):
        return self.raw_line()

    def cmd(self, text):
        if isinstance(text, str):
            text = text.encode()
        self.send(text + b"\r\n")
        return self.line()

    def until_dot(self):
        """Raw bytes of a multi-line body up to (not including) CRLF.CRLF;
        the status line must have been read already."""
        while True:
            if self.buf.startswith(b".\r\n"):
                self.buf = self.buf[3:]
                return b""
            i = self.buf.find(b"\r\n.\r\n")
            if i >= 0:
                body = self.buf[:i + 2]
                self.buf = self.buf[i + 5:]
                return body
            self._fill()

    def multi(self, text):
        """Command with a multi-line answer: (status line, raw body)."""
        status = self.cmd(text)
        if not status.startswith(b"+OK"):
            return status, None
        return status, self.until_dot()

    def lines(self, text):
        status, body = self.multi(text)
        if body is None:
            return status, None
        return status, [l for l in body.split(b"\r\n")[:-1]]

    def starttls(self):
        self.sock = tls_context().wrap_socket(self.sock)

    def login(self, user=USER, password=PASSWORD):
        r = self.cmd("USER " + user)
        if not r.startswith(b"+OK"):
            return r
        return self.cmd("PASS " + password)

def unstuff(body):
    """RFC 1939 byte-stuffing undone on a raw multi-line body."""
    out = []
    for line in body.split(b"\r\n")[:-1]:
        out.append(line[1:] if line.startswith(b".") else line)
    return b"".join(l + b"\r\n" for l in out)


def deliver(d, msg, user=USER):
    if isinstance(msg, str):
        msg = msg.encode()
    d.cli("deliver", user, input=msg)


def make_msg(subject, body="Hello.\r\n", extra=""):
    return ("From: sender@example.org\r\nTo: %s\r\nSubject: %s\r\n%s\r\n%s"
            % (USER, subject, extra, body)).encode()


def maildir_files(d, user=USER):
    return postern_test.maildir_files(d, user)


def wait_for(cond, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def allow_plaintext(d):
    """Switch the harness's allow_plaintext_auth_on_loopback to yes."""
    with open(d.conf) as f:
        text = f.read()
    text = text.replace("allow_plaintext_auth_on_loopback = no",
                        "allow_plaintext_auth_on_loopback = yes")
    with open(d.conf, "w") as f:
        f.write(text)
