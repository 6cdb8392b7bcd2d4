"""SMTP with real clients.

swaks: inbound mail to a local user on port 25; relaying to an outside
domain refused; submission on 587 with STARTTLS + AUTH PLAIN; AUTH LOGIN on
465 (implicit TLS); AUTH without TLS not offered and refused; a wrong
password (535 5.7.8); MAIL FROM another user's address (553 5.7.1); an
8-bit body; a 5 MB message; a message over message_size_max (552 5.3.4).
python3 smtplib (STARTTLS, login, send; SMTP_SSL on 465) and
curl smtp:// --ssl-reqd.

Usage: smtp_clients.py /path/to/postern
"""
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postern_test import Daemon, Results, free_port, skip  # noqa: E402
from smtp_util import (USER, PASSWORD, USER2, PASSWORD2, Raw, maildir_messages,  # noqa: E402
                       tls_context, wait_count)

SIZE_MAX = 6 * 1024 * 1024


def swaks(*args, timeout=120):
    p = subprocess.run(["swaks", "--hide-informational"] + list(args),
                       capture_output=True, timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


def find(msgs, needle):
    """The stored message containing needle, or None."""
    for m in msgs:
        if needle in m:
            return m
    return None


def header_block(msg):
    return msg.split(b"\r\n\r\n", 1)[0]


def test_swaks(d, res, tmp):
    smtp, sub, subs = d.port("smtp"), d.port("submission"), d.port("submissions")

    rc, out = swaks("--server", "127.0.0.1:%d" % smtp, "--to", USER, "--from",
                    "someone@outside.test", "--h-Subject", "swaks inbound", "--ehlo", "mx.outside.test")
    res.check(rc == 0 and "250 2.0.0 Ok: delivered as" in out, "swaks: inbound to a local user")
    m = find(maildir_messages(d, USER), b"Subject: swaks inbound")
    res.check(m is not None, "swaks: inbound message is in the Maildir")
    if m is not None:
        h = header_block(m)
        res.check(h.startswith(b"Return-Path: <someone@outside.test>\r\nReceived: from mx.outside.test "
                               b"([127.0.0.1])\r\n\tby mail.example.test (Postern) with ESMTP id "),
                  "swaks: Return-Path and Received: header as specified")
        res.check(b"\tfor <%s>;" % USER.encode() in h, "swaks: Received: names the single recipient")
        res.check(b"\n" not in m.replace(b"\r\n", b""), "swaks: stored with CRLF line ends only")

    rc, out = swaks("--server", "127.0.0.1:%d" % smtp, "--to", "victim@outside.test", "--from",
                    "spammer@outside.test")
    res.check(rc != 0 and "554 5.7.1 <victim@outside.test>: Relay access denied" in out,
              "swaks: relaying to an outside domain refused (554 5.7.1)")

    rc, out = swaks("--server", "127.0.0.1:%d" % smtp, "--to", "nobody@example.test")
    res.check(rc != 0 and "550 5.1.1" in out, "swaks: unknown local user refused (550 5.1.1)")

    rc, out = swaks("--server", "127.0.0.1:%d" % sub, "--tls", "--auth", "PLAIN",
                    "--auth-user", USER, "--auth-password", PASSWORD, "--to", USER2,
                    "--from", USER, "--h-Subject", "swaks plain starttls")
    res.check(rc == 0 and "235 2.7.0" in out, "swaks: submission 587 with STARTTLS + AUTH PLAIN")
    m = find(maildir_messages(d, USER2), b"Subject: swaks plain starttls")
    res.check(m is not None and b" with ESMTPSA id " in header_block(m) and
              b"(using TLSv1.3 with cipher " in header_block(m),
              "swaks: Received: says ESMTPSA and the TLS version and cipher")
    res.check(m is not None and
              (b"\t(Authenticated sender: %s)\r\n" % USER.encode()) in header_block(m),
              "swaks: Received: names the authenticated user")

    rc, out = swaks("--server", "127.0.0.1:%d" % subs, "--tls-on-connect", "--auth", "LOGIN",
                    "--auth-user", USER, "--auth-password", PASSWORD, "--to", USER,
                    "--from", USER, "--h-Subject", "swaks login 465")
    res.check(rc == 0 and "235 2.7.0" in out, "swaks: AUTH LOGIN over 465 (implicit TLS)")
    res.check(find(maildir_messages(d, USER), b"Subject: swaks login 465") is not None,
              "swaks: the 465 message is in the Maildir")

    rc, out = swaks("--server", "127.0.0.1:%d" % sub, "--auth", "PLAIN", "--auth-user", USER,
                    "--auth-password", PASSWORD, "--to", USER, "--from", USER)
    res.check(rc != 0 and "250-AUTH" not in out, "swaks: no AUTH offered on 587 without TLS")
    c = Raw(sub)
    c.cmd("EHLO client.test")
    code, text = c.cmd("AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABhbGljZS1zZWNyZXQtMQ==")
    res.check(code == 538 and text[0].startswith("5.7.11"),
              "AUTH without TLS refused with 538 5.7.11 (got %d %s)" % (code, text))
    code, text = c.cmd("MAIL FROM:<%s>" % USER)
    res.check(code == 530 and text[0].startswith("5.7.0"), "MAIL before AUTH on submission: 530 5.7.0")
    c.close()

    rc, out = swaks("--server", "127.0.0.1:%d" % sub, "--tls", "--auth", "PLAIN",
                    "--auth-user", USER, "--auth-password", "wrong-password", "--to", USER,
                    "--from", USER)
    res.check(rc != 0 and "535 5.7.8" in out, "swaks: wrong password gets 535 5.7.8")

    rc, out = swaks("--server", "127.0.0.1:%d" % sub, "--tls", "--auth", "PLAIN",
                    "--auth-user", USER, "--auth-password", PASSWORD, "--to", USER,
                    "--from", USER2)
    res.check(rc != 0 and "553 5.7.1" in out, "swaks: MAIL FROM another user's address: 553 5.7.1")

    body8 = os.path.join(tmp, "body8")
    with open(body8, "wb") as f:
        f.write("Grüße aus Köln – 8-bit body ✓\r\n".encode("utf-8"))
    rc, out = swaks("--server", "127.0.0.1:%d" % smtp, "--to", USER, "--from", "x@outside.test",
                    "--h-Subject", "eight bit", "--add-header", "Content-Type: text/plain; charset=utf-8",
                    "--body", "@" + body8)
    m = find(maildir_messages(d, USER), b"Subject: eight bit")
    res.check(rc == 0 and m is not None and "Grüße aus Köln – 8-bit body ✓".encode() in m,
              "swaks: an 8-bit body is stored byte for byte")

    big = os.path.join(tmp, "big")
    line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n"
    with open(big, "wb") as f:
        f.write(b".leading dot line\r\n" + line * (5 * 1024 * 1024 // len(line)) + b"THE END\r\n")
    rc, out = swaks("--server", "127.0.0.1:%d" % smtp, "--to", USER, "--from", "x@outside.test",
                    "--h-Subject", "five megabytes", "--body", "@" + big, "--suppress-data")
    m = find(maildir_messages(d, USER), b"Subject: five megabytes")
    res.check(rc == 0 and m is not None and len(m) > 5 * 1024 * 1024 and b"THE END\r\n" in m[-40:]
              and b"\r\n.leading dot line\r\n" in m, "swaks: a 5 MB message arrives whole")

    huge = os.path.join(tmp, "huge")
    with open(huge, "wb") as f:
        f.write(line * (SIZE_MAX // len(line) + 1000))
    before = len(maildir_messages(d, USER))
    rc, out = swaks("--server", "127.0.0.1:%d" % smtp, "--to", USER, "--from", "x@outside.test",
                    "--h-Subject", "too big", "--body", "@" + huge, "--suppress-data")
    res.check(rc != 0 and "552 5.3.4" in out, "swaks: a message over message_size_max gets 552 5.3.4")
    res.check(len(maildir_messages(d, USER)) == before, "swaks: the oversized message is not stored")
    c = Raw(smtp)
    c.cmd("EHLO client.test")
    code, text = c.cmd("MAIL FROM:<x@outside.test> SIZE=%d" % (SIZE_MAX + 1))
    res.check(code == 552 and text[0].startswith("5.3.4"), "declared SIZE over the limit: 552 at MAIL")
    c.close()


def test_smtplib(d, res):
    msg = ("From: %s\r\nTo: %s\r\nSubject: smtplib starttls\r\n\r\nvia smtplib\r\n" % (USER, USER2))
    try:
        with smtplib.SMTP("127.0.0.1", d.port("submission"), timeout=30) as s:
            s.starttls(context=tls_context())
            s.login(USER, PASSWORD)
            refused = s.sendmail(USER, [USER2], msg)
        ok = refused == {}
    except smtplib.SMTPException as e:
        print("smtplib:", e)
        ok = False
    m = find(maildir_messages(d, USER2), b"Subject: smtplib starttls")
    res.check(ok and m is not None, "smtplib: starttls, login, sendmail on 587")
    if m is not None:
        h = header_block(m)
        res.check(b"\r\nMessage-ID: <" in h and b"\r\nDate: " in h,
                  "submission adds Message-ID: and Date: when missing (RFC 6409 8)")
    try:
        with smtplib.SMTP_SSL("127.0.0.1", d.port("submissions"), timeout=30,
                              context=tls_context()) as s:
            s.login(USER2, PASSWORD2)
            s.sendmail(USER2, [USER], "From: %s\r\nSubject: smtplib 465\r\n\r\nx\r\n" % USER2)
        ok = True
    except smtplib.SMTPException as e:
        print("smtplib 465:", e)
        ok = False
    res.check(ok and find(maildir_messages(d, USER), b"Subject: smtplib 465") is not None,
              "smtplib: SMTP_SSL login and send on 465")
    try:
        with smtplib.SMTP("127.0.0.1", d.port("submission"), timeout=30) as s:
            s.starttls(context=tls_context())
            s.login(USER, PASSWORD)
            s.sendmail(USER, ["friend@outside.test"], "From: %s\r\n\r\nx\r\n" % USER)
        code = 250
    except smtplib.SMTPRecipientsRefused as e:
        code, text = list(e.recipients.values())[0]
        print("refused:", code, text)
    res.check(code == 250, "smtplib: authenticated mail to another domain is accepted (queued)")
    res.check("friend@outside.test" in d.cli("queue", "list").stdout.decode(),
              "smtplib: the outside recipient is in the outbound queue")


def test_curl(d, res, tmp):
    if shutil.which("curl") is None:
        res.check(False, "curl is installed")
        return
    path = os.path.join(tmp, "curlmsg")
    with open(path, "wb") as f:
        f.write(("From: %s\r\nTo: %s\r\nSubject: curl smtp\r\n\r\nsent by curl\r\n"
                 % (USER, USER2)).encode())
    p = subprocess.run(["curl", "-sS", "--ssl-reqd", "-k",
                        "smtp://127.0.0.1:%d" % d.port("submission"),
                        "--mail-from", USER, "--mail-rcpt", USER2,
                        "--user", "%s:%s" % (USER, PASSWORD), "-T", path],
                       capture_output=True, timeout=60)
    print(p.stderr.decode(errors="replace"))
    res.check(p.returncode == 0, "curl smtp:// --ssl-reqd: exit 0")
    res.check(find(maildir_messages(d, USER2), b"Subject: curl smtp") is not None,
              "curl: the message is in the Maildir")


def main():
    if len(sys.argv) < 2:
        print("usage: smtp_clients.py POSTERN")
        return 2
    if shutil.which("swaks") is None:
        skip("swaks is not installed (apt-get install swaks)")
    res = Results()
    tmp = tempfile.mkdtemp(prefix="postern-smtp-clients-")
    try:
        with Daemon(sys.argv[1], roles=("smtp", "submission", "submissions"),
                    extra_config="message_size_max = %d\n"
                                 # no DNS server there: outside.test stays queued
                                 "dns_resolver = 127.0.0.1:%d\n" % (SIZE_MAX, free_port())) as d:
            d.add_user(USER, PASSWORD)
            d.add_user(USER2, PASSWORD2)
            test_swaks(d, res, tmp)
            test_smtplib(d, res)
            test_curl(d, res, tmp)
            res.check(wait_count(d, USER, 1) >= 1, "Maildir readable")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res.finish()


if __name__ == "__main__":
    sys.exit(main())
