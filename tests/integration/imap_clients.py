"""IMAP with real clients from Debian: curl imaps:// (LIST, UID SEARCH,
FETCH of a message by UID and by section) and mbsync (isync: full sync
into a local Maildir, flag changes on both sides, a second sync after
which both agree, a deletion on one side); and plaintext login on
loopback when allow_plaintext_auth_on_loopback = yes.

Usage: imap_clients.py /path/to/postern
"""
import imaplib
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, Results, tls_context  # noqa: E402

USER = "alice@example.test"
PASSWORD = "alice-secret-1"


def msg(n):
    return (b"From: sender%d@example.test\r\nTo: alice@example.test\r\n"
            b"Subject: message number %d\r\nMessage-ID: <n%d@example.test>\r\n\r\n"
            b"body of message %d\r\n" % (n, n, n, n))


def curl(d, path, *extra):
    p = subprocess.run(["curl", "-sS", "--cacert", d.cert, "--max-time", "60",
                        "-u", "%s:%s" % (USER, PASSWORD),
                        "imaps://127.0.0.1:%d/%s" % (d.port("imaps"), path)] + list(extra),
                       capture_output=True, timeout=90)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def test_curl(d, r):
    for n in (1, 2, 3):
        d.cli("deliver", USER, input=msg(n))
    rc, out, err = curl(d, "")
    r.check(rc == 0 and b'"INBOX"' in out and b'"Sent"' in out, "curl lists mailboxes: %r %s" % (out, err))
    rc, out, err = curl(d, "INBOX?SUBJECT%20%22number%202%22")
    r.check(rc == 0 and out.strip() == b"* SEARCH 2", "curl SEARCH: %r %s" % (out, err))
    rc, out, err = curl(d, "INBOX", "-X", "UID SEARCH ALL")
    r.check(rc == 0 and out.strip() == b"* SEARCH 1 2 3", "curl UID SEARCH ALL: %r %s" % (out, err))
    rc, out, err = curl(d, "INBOX;UID=3")
    r.check(rc == 0 and out.endswith(msg(3)), "curl fetches message UID 3 whole: %r %s" % (out[-80:], err))
    rc, out, err = curl(d, "INBOX;UID=2;SECTION=TEXT")
    r.check(rc == 0 and out == b"body of message 2\r\n", "curl fetches a section: %r %s" % (out, err))
    rc, out, err = curl(d, "INBOX;UID=99")
    r.check(rc != 0, "curl: a missing UID is an error (rc %d)" % rc)


def mbsync(d, tmp):
    conf = os.path.join(tmp, "mbsyncrc")
    local = os.path.join(tmp, "mail")
    os.makedirs(local, exist_ok=True)
    with open(conf, "w") as f:
        f.write("IMAPAccount t\nHost localhost\nPort %d\nUser %s\nPass %s\nSSLType IMAPS\n"
                "CertificateFile %s\n\n"
                "IMAPStore remote\nAccount t\n\n"
                "MaildirStore local\nPath %s/\nInbox %s/INBOX\nSubFolders Verbatim\n\n"
                "Channel c\nFar :remote:\nNear :local:\nPatterns INBOX Archive\n"
                "Create Both\nExpunge Both\nSyncState *\n"
                % (d.port("imaps"), USER, PASSWORD, d.cert, local, local))
    p = subprocess.run(["mbsync", "-c", conf, "-a"], capture_output=True, timeout=120,
                       env=dict(os.environ, HOME=tmp))
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace"), local


def local_msgs(local, box):
    out = {}
    for sub in ("cur", "new"):
        dd = os.path.join(local, box, sub)
        for name in os.listdir(dd) if os.path.isdir(dd) else []:
            with open(os.path.join(dd, name), "rb") as f:
                body = f.read()
            m = re.search(rb"Subject: message number (\d+)", body)
            flags = name.split(":2,")[1] if ":2," in name else ""
            if m:
                out[int(m.group(1))] = (os.path.join(dd, name), flags)
    return out


def server_flags(m):
    typ, data = m.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (Subject)])")
    out = {}
    for item in data:
        if isinstance(item, tuple):
            n = int(re.search(rb"number (\d+)", item[1]).group(1))
            out[n] = item[0]
    return out


def test_mbsync(d, r):
    tmp = tempfile.mkdtemp(prefix="postern-mbsync-")
    try:
        rc, out, local = mbsync(d, tmp)
        r.check(rc == 0, "mbsync first sync exits 0: %s" % out[-2000:])
        msgs = local_msgs(local, "INBOX")
        r.check(sorted(msgs) == [1, 2, 3], "all three messages are local: %s" % sorted(msgs))
        # flags on both sides
        m = imaplib.IMAP4_SSL("127.0.0.1", d.port("imaps"), ssl_context=tls_context())
        m.login(USER, PASSWORD)
        m.select("INBOX")
        m.store("1", "+FLAGS", "(\\Flagged)")
        path, flags = msgs[2]
        os.rename(path, path.split(":2,")[0] + ":2," + "".join(sorted(flags + "S")))
        path, flags = msgs[3]
        os.unlink(path)  # deleted locally
        m.logout()
        rc, out, local = mbsync(d, tmp)
        r.check(rc == 0, "mbsync second sync exits 0: %s" % out[-2000:])
        msgs = local_msgs(local, "INBOX")
        m = imaplib.IMAP4_SSL("127.0.0.1", d.port("imaps"), ssl_context=tls_context())
        m.login(USER, PASSWORD)
        m.select("INBOX")
        srv = server_flags(m)
        r.check("F" in msgs.get(1, ("", ""))[1], "server's \\Flagged reached the local copy: %s" % msgs)
        r.check(b"\\Seen" in srv.get(2, b""), "local S flag reached the server: %s" % srv)
        r.check(3 not in srv and 3 not in msgs, "local deletion removed the message on the server: %s" % srv)
        # both sides agree on every flag
        agree = all(("F" in msgs[n][1]) == (b"\\Flagged" in srv[n]) and
                    ("S" in msgs[n][1]) == (b"\\Seen" in srv[n]) for n in srv if n in msgs)
        r.check(sorted(srv) == sorted(msgs) and agree, "both sides agree: %s / %s" % (srv, msgs))
        m.logout()
        rc, out, local = mbsync(d, tmp)
        r.check(rc == 0 and sorted(local_msgs(local, "INBOX")) == [1, 2],
                "a third sync changes nothing: %s" % out[-500:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_plaintext_loopback(postern, r):
    # allow_plaintext_auth_on_loopback = yes: login without TLS from 127.0.0.1
    d = Daemon(postern, roles=("imap",))
    with open(d.conf) as f:
        text = f.read()
    with open(d.conf, "w") as f:
        f.write(text.replace("allow_plaintext_auth_on_loopback = no",
                             "allow_plaintext_auth_on_loopback = yes"))
    with d:
        d.add_user(USER, PASSWORD)
        m = imaplib.IMAP4("127.0.0.1", d.port("imap"))
        caps = m.capabilities
        r.check("AUTH=PLAIN" in caps and "LOGINDISABLED" not in caps and "STARTTLS" in caps,
                "plaintext on loopback allowed: AUTH=PLAIN offered next to STARTTLS: %s" % (caps,))
        typ, _ = m.login(USER, PASSWORD)
        r.check(typ == "OK", "LOGIN without TLS on loopback")
        m.logout()


def main():
    postern = sys.argv[1]
    for tool in ("curl", "mbsync"):
        if shutil.which(tool) is None:
            print("skipped: %s is not installed (Debian package %s)" %
                  (tool, "isync" if tool == "mbsync" else tool))
            sys.exit(77)
    res = Results()
    with Daemon(postern, roles=("imaps",)) as d:
        d.add_user(USER, PASSWORD)
        res.run("curl", lambda: test_curl(d, res))
        res.run("mbsync", lambda: test_mbsync(d, res))
    res.run("plaintext_loopback", lambda: test_plaintext_loopback(postern, res))
    res.finish()


if __name__ == "__main__":
    main()
