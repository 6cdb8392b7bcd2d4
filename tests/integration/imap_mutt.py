"""IMAP with mutt: opens the INBOX over IMAPS in batch mode (keys pushed in
a pseudo-terminal made by script(1)) and pipes the newest message to a
file, which must hold that message's Subject and body (mutt writes LF line
ends).  Skipped, saying why, when mutt is not installed.

Usage: imap_mutt.py /path/to/postern
"""
import imaplib
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, Results, skip, tls_context  # noqa: E402

USER = "alice@example.test"
PASSWORD = "alice-secret-1"


def message(n, subject):
    return ("From: Sender %d <s%d@outside.test>\r\nTo: %s\r\nSubject: %s\r\n"
            "Date: Mon, 7 Dec 2026 10:%02d:00 +0000\r\nMessage-ID: <c%d@outside.test>\r\n\r\n"
            "Body of message %d.\r\n" % (n, n, USER, subject, n, n, n)).encode()


def imap(d):
    c = imaplib.IMAP4_SSL("127.0.0.1", d.port("imaps"), ssl_context=tls_context())
    c.login(USER, PASSWORD)
    return c


MUTTRC = """\
set folder = "imaps://{user}@127.0.0.1:{port}/"
set imap_user = "{user}"
set imap_pass = "{password}"
set spoolfile = "+INBOX"
set ssl_verify_host = no
set certificate_file = "{certs}"
set ssl_starttls = no
set mail_check = 0
set timeout = 5
set sort = date
set confirmappend = no
set wait_key = no
set header_cache = ""
set message_cachedir = ""
"""


def test_mutt(d, res, tmp):
    c = imap(d)
    c.append("INBOX", None, None, message(30, "read with mutt"))
    c.logout()
    # mutt asks to accept an unknown certificate: trust the test's own.
    certs = os.path.join(tmp, "mutt-certs")
    shutil.copy(d.cert, certs)
    rc = os.path.join(tmp, "muttrc")
    out = os.path.join(tmp, "mutt-out.txt")
    with open(rc, "w") as f:
        f.write(MUTTRC.format(user=USER, port=d.port("imaps"), password=PASSWORD, certs=certs))
    # last message of the INBOX sorted by date: the one appended above
    keys = "<last-entry><pipe-message>cat > %s<enter><exit><quit>" % out
    cmd = "mutt -n -F %s -e 'push \"%s\"'" % (rc, keys)
    env = dict(os.environ, TERM="xterm", HOME=tmp)
    p = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True,
                       timeout=60, env=env, stdin=subprocess.DEVNULL)
    try:
        with open(out, "rb") as f:
            got = f.read()
    except OSError:
        got = b""
    res.check(b"Subject: read with mutt" in got and b"Body of message 30." in got,
              "mutt: reads a message over IMAPS in batch mode (exit %d, %r)" % (
                  p.returncode, got[:100] or p.stdout[-300:]))


def main():
    if len(sys.argv) < 2:
        print("usage: imap_mutt.py POSTERN")
        return 2
    if shutil.which("mutt") is None or shutil.which("script") is None:
        skip("mutt or script(1) is not installed (apt-get install mutt)")
    res = Results()
    tmp = tempfile.mkdtemp(prefix="postern-imap-mutt-")
    try:
        with Daemon(sys.argv[1], roles=("imap", "imaps")) as d:
            d.add_user(USER, PASSWORD)
            res.run("mutt", lambda: test_mutt(d, res, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res.finish()


if __name__ == "__main__":
    sys.exit(main())
