"""Helpers shared by the smtp_*.py integration tests (not a test itself).

A raw SMTP client that sees exact bytes and replies, and a look into the
Maildir on disk.
"""
import time

from postern_test import LineClient, maildir_files, tls_context  # noqa: F401 (re-exported)

USER = "alice@example.test"
PASSWORD = "alice-secret-1"
USER2 = "bob@example.test"
PASSWORD2 = "bob-secret-2"


class Raw(LineClient):
    """Reply-level SMTP client over plain or TLS sockets."""

    def __init__(self, port, tls=False, timeout=20, greet=True, source=None):
        super().__init__(port, tls, timeout, source)
        self.greeting = self.reply() if greet else None

    def line(self):
        return self.raw_line().decode("utf-8", errors="replace")

    def reply(self):
        """One (possibly multi-line) reply: (code, [texts])."""
        texts = []
        while True:
            line = self.line()
            texts.append(line[4:])
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), texts

    def cmd(self, text):
        self.send(text + "\r\n" if isinstance(text, str) else text + b"\r\n")
        return self.reply()

    def starttls(self):
        code, _ = self.cmd("STARTTLS")
        if code != 220:
            raise AssertionError("STARTTLS refused: %d" % code)
        self.sock = tls_context().wrap_socket(self.sock)
        self.buf = b""

def maildir_messages(d, address):
    out = []
    for path in maildir_files(d, address):
        with open(path, "rb") as f:
            out.append(f.read())
    return out


def wait_count(d, address, n, timeout=10.0):
    """Wait until the user has at least n messages; returns the count."""
    deadline = time.time() + timeout
    while True:
        count = len(maildir_files(d, address))
        if count >= n or time.time() > deadline:
            return count
        time.sleep(0.05)


def make_msg(subject, body="Hello.\r\n", sender=USER, to=USER, extra=""):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n%s\r\n%s"
            % (sender, to, subject, extra, body)).encode()


def send_raw(port, sender, rcpts, data_block, ehlo="client.test"):
    """One inbound transaction with DATA already dot-stuffed and ended;
    returns the list of replies after the greeting."""
    c = Raw(port)
    out = [c.cmd("EHLO " + ehlo), c.cmd("MAIL FROM:<%s>" % sender)]
    for r in rcpts:
        out.append(c.cmd("RCPT TO:<%s>" % r))
    out.append(c.cmd("DATA"))
    c.send(data_block)
    out.append(c.reply())
    out.append(c.cmd("QUIT"))
    c.close()
    return out
