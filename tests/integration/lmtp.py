"""LMTP (RFC 2033) against the real daemon: raw sessions on loopback TCP
and on the unix socket, then Debian's Postfix delivering through both.

Raw sessions: the 220 LMTP greeting, LHLO's capabilities (PIPELINING,
SIZE, 8BITMIME, ENHANCEDSTATUSCODES, CHUNKING; no AUTH, no DSN), EHLO and
HELO refused with 500, MAIL before LHLO 503, an unknown recipient 550 at
RCPT, another domain refused (LMTP never relays), DATA without a valid
recipient 503; after DATA one reply per accepted RCPT in RCPT order: 250
for two mailboxes and 552 5.2.2 for the one whose quota the message
exceeds, with the files in the Maildirs exactly once; BDAT LAST answering
per recipient, pipelined; the Received field; a mailbox that fails
temporarily (451 for it, 250 for the other); a TCP peer outside
trusted_networks greeted with 554 and answered 503 until QUIT; the socket
file's mode, and its removal at stop.

Postfix: a private instance (own config_directory and queue_directory in a
temp dir, never the system's) with virtual_transport =
lmtp:unix:SOCKET for one domain and lmtp:inet:127.0.0.1:PORT for another
(transport_maps), fed by swaks; the mail must land once in each Maildir.
Skipped (that part only) when Postfix or swaks is missing or we are not
root (Postfix's master needs root).

Usage: lmtp.py /path/to/postern
"""
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, Results, free_port, maildir_files, wait_port  # noqa: E402
from smtp_util import Raw  # noqa: E402
from postfix_private import MAIN_CF_HEAD, MASTER_CF, postfix_dirs  # noqa: E402

ALICE = "alice@example.test"
BOB = "bob@example.test"
CAROL = "carol@example.test"      # a quota the test message exceeds
DAVE = "dave@example2.test"       # Postfix routes example2.test over TCP
ERIN = "erin@example.test"        # her Maildir breaks: a temporary failure
CAROL_QUOTA = "1K"
SOCKET_MODE = 0o666               # Postfix's lmtp client runs as postfix

BODY = "".join("line %03d of a message that is larger than one KiB\r\n" % i
               for i in range(40))


def message(subject):
    return ("From: sender@remote.test\r\nTo: alice@example.test\r\n"
            "Subject: %s\r\nMessage-ID: <%s@remote.test>\r\n\r\n" % (subject, subject) + BODY)


class UnixRaw(Raw):
    """The same reply-level client over the unix socket."""

    def __init__(self, path, timeout=20):  # pylint: disable=super-init-not-called
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.greeting = self.reply()


def count(d, address):
    return len(maildir_files(d, address))


def with_subject(d, address, subject):
    """How many files of the user's Maildir carry this Subject."""
    n = 0
    for path in maildir_files(d, address):
        with open(path, "rb") as f:
            if ("Subject: %s\r\n" % subject).encode() in f.read():
                n += 1
    return n


def lhlo(r, c, where):
    code, lines = c.cmd("LHLO mta.example.test")
    caps = [l.split()[0].upper() for l in lines[1:]]
    r.check(code == 250, "%s: LHLO 250: %d %r" % (where, code, lines))
    for cap in ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING"):
        r.check(cap in caps, "%s: LHLO offers %s: %r" % (where, cap, caps))
    for cap in ("AUTH", "DSN", "STARTTLS"):
        r.check(cap not in caps, "%s: LHLO does not offer %s" % (where, cap))


def test_tcp(d, r):
    c = Raw(d.port("lmtp"))
    r.check(c.greeting[0] == 220 and "LMTP" in c.greeting[1][0],
            "greeting 220 ... LMTP: %r" % (c.greeting,))
    code, _ = c.cmd("MAIL FROM:<sender@remote.test>")
    r.check(code == 503, "MAIL before LHLO: 503 (%d)" % code)
    for verb in ("EHLO", "HELO"):
        code, lines = c.cmd(verb + " mta.example.test")
        r.check(code == 500, "%s refused in LMTP with 500: %d %r" % (verb, code, lines))
    lhlo(r, c, "tcp")

    # DATA without an accepted recipient: 503 (RFC 2033 §4.2)
    c.cmd("MAIL FROM:<sender@remote.test>")
    code, _ = c.cmd("RCPT TO:<nobody@example.test>")
    r.check(code == 550, "unknown recipient: 550 at RCPT (%d)" % code)
    code, _ = c.cmd("DATA")
    r.check(code == 503, "DATA with no accepted recipient: 503 (%d)" % code)
    c.cmd("RSET")

    code, _ = c.cmd("MAIL FROM:<sender@remote.test>")
    r.check(code == 250, "MAIL 250 (%d)" % code)
    results = [c.cmd("RCPT TO:<%s>" % a)[0] for a in
               (ALICE, "nobody@example.test", BOB, CAROL, "someone@elsewhere.test")]
    r.check(results == [250, 550, 250, 250, 554],
            "RCPT: alice 250, unknown 550, bob 250, carol 250, other domain 554: %r" % results)
    code, _ = c.cmd("DATA")
    r.check(code == 354, "DATA 354 (%d)" % code)
    c.send(message("tcp-data") + ".\r\n")
    replies = [c.reply() for _ in range(3)]
    codes = [x[0] for x in replies]
    texts = [x[1][0] for x in replies]
    r.check(codes == [250, 250, 552], "one reply per RCPT in order: 250 250 552: %r" % replies)
    r.check("<%s>" % ALICE in texts[0] and "<%s>" % BOB in texts[1] and
            "<%s>" % CAROL in texts[2], "each reply names its recipient: %r" % texts)
    r.check(texts[2].startswith("5.2.2"), "over quota: 552 5.2.2 (%r)" % texts[2])
    r.check(with_subject(d, ALICE, "tcp-data") == 1 and with_subject(d, BOB, "tcp-data") == 1,
            "alice and bob have the message exactly once")
    r.check(count(d, CAROL) == 0, "carol (over quota) has nothing")
    with open(maildir_files(d, ALICE)[0], "rb") as f:
        head = f.read(2000).decode(errors="replace")
    r.check(head.startswith("Return-Path: <sender@remote.test>\r\nReceived: from "
                            "mta.example.test ([127.0.0.1])\r\n"),
            "Return-Path, then Received from the LHLO name: %r" % head[:160])
    r.check("with LMTP\r\n" in head and "(envelope-from <sender@remote.test>)" in head,
            "Received: with LMTP, envelope-from: %r" % head[:400])
    r.check("Authentication-Results" not in head and "Received-SPF" not in head,
            "no SPF/DKIM/DMARC results added on LMTP")

    # pipelined, BDAT LAST: one reply per recipient too
    msg = message("tcp-bdat").encode()
    c.send(b"MAIL FROM:<>\r\nRCPT TO:<%s>\r\nRCPT TO:<%s>\r\nBDAT %d LAST\r\n" %
           (ALICE.encode(), BOB.encode(), len(msg)) + msg)
    replies = [c.reply() for _ in range(5)]
    r.check([x[0] for x in replies] == [250] * 5,
            "pipelined MAIL, 2 RCPT, BDAT LAST: 250 x 3 then one 250 per recipient: %r"
            % replies)
    r.check("<%s>" % ALICE in replies[3][1][0] and "<%s>" % BOB in replies[4][1][0],
            "BDAT LAST replies in RCPT order: %r" % replies[3:])
    r.check(with_subject(d, ALICE, "tcp-bdat") == 1 and with_subject(d, BOB, "tcp-bdat") == 1,
            "BDAT message in both Maildirs exactly once")
    code, _ = c.cmd("QUIT")
    r.check(code == 221, "QUIT 221")
    c.close()


def test_tempfail(d, r):
    """One mailbox fails temporarily (its new/ is made a file): that
    recipient gets 451, the other 250 and its copy once."""
    c = Raw(d.port("lmtp"))
    c.cmd("LHLO mta.example.test")
    c.cmd("MAIL FROM:<sender@remote.test>")
    c.cmd("RCPT TO:<%s>" % ERIN)
    c.cmd("DATA")
    c.send(message("erin-first") + ".\r\n")
    code, _ = c.reply()
    r.check(code == 250 and count(d, ERIN) == 1, "erin's first message stored (%d)" % code)
    new = os.path.join(d.data, "mail", "example.test", "erin", "new")
    shutil.rmtree(new)
    with open(new, "w"):
        pass
    c.cmd("MAIL FROM:<sender@remote.test>")
    c.cmd("RCPT TO:<%s>" % ERIN)
    c.cmd("RCPT TO:<%s>" % ALICE)
    c.cmd("DATA")
    c.send(message("tempfail") + ".\r\n")
    replies = [c.reply() for _ in range(2)]
    r.check([x[0] for x in replies] == [451, 250] and "<%s>" % ERIN in replies[0][1][0],
            "broken mailbox: 451 for erin, 250 for alice: %r" % replies)
    r.check(with_subject(d, ALICE, "tempfail") == 1, "alice has it exactly once")
    c.cmd("QUIT")
    c.close()


def test_untrusted(d, r):
    # trusted_networks = 127.0.0.1/32: a client from 127.0.0.2 is outside
    c = Raw(d.port("lmtp"), source="127.0.0.2")
    r.check(c.greeting[0] == 554, "untrusted TCP peer: 554 greeting: %r" % (c.greeting,))
    code, _ = c.cmd("LHLO mta.example.test")
    r.check(code == 503, "after 554 every command but QUIT is 503 (%d)" % code)
    code, _ = c.cmd("MAIL FROM:<x@remote.test>")
    r.check(code == 503, "MAIL refused too (%d)" % code)
    code, _ = c.cmd("QUIT")
    r.check(code == 221, "QUIT 221 (%d)" % code)
    c.close()


def test_unix(d, r, path):
    mode = stat.S_IMODE(os.stat(path).st_mode)
    r.check(stat.S_ISSOCK(os.stat(path).st_mode) and mode == SOCKET_MODE,
            "socket file made with mode %o (%o)" % (SOCKET_MODE, mode))
    c = UnixRaw(path)
    r.check(c.greeting[0] == 220 and "LMTP" in c.greeting[1][0],
            "unix socket: 220 LMTP greeting: %r" % (c.greeting,))
    code, _ = c.cmd("HELO mta.example.test")
    r.check(code == 500, "unix socket: HELO 500 (%d)" % code)
    lhlo(r, c, "unix")
    c.cmd("MAIL FROM:<sender@remote.test>")
    results = [c.cmd("RCPT TO:<%s>" % a)[0] for a in (ALICE, "nobody@example.test", BOB, CAROL)]
    r.check(results == [250, 550, 250, 250], "unix RCPT: 250 550 250 250: %r" % results)
    c.cmd("DATA")
    c.send(message("unix-data") + ".\r\n")
    codes = [c.reply()[0] for _ in range(3)]
    r.check(codes == [250, 250, 552], "unix: after DATA 250 250 552: %r" % codes)
    r.check(with_subject(d, ALICE, "unix-data") == 1 and with_subject(d, BOB, "unix-data") == 1,
            "unix: alice and bob have it exactly once")
    c.cmd("QUIT")
    c.close()


# ---- Postfix in front ----------------------------------------------------------


# What the README's "Behind Postfix (LMTP)" says, plus a private instance.
MAIN_CF = MAIN_CF_HEAD + """\
myhostname = mx.lmtp-test.example
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = example.test, example2.test
virtual_transport = lmtp:unix:{socket}
transport_maps = inline:{{ example2.test=lmtp:inet:127.0.0.1:{lmtp_port} }}
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
alias_maps =
alias_database =
local_recipient_maps =
biff = no
maillog_file = {log}
maillog_file_prefixes = {base}
"""


def postfix_missing():
    for exe in ("/usr/sbin/postfix", "/usr/lib/postfix/sbin/master", "/usr/bin/swaks"):
        if not os.path.exists(exe):
            return exe + " is not installed"
    if os.geteuid() != 0:
        return "Postfix's master must start as root"
    try:
        import pwd
        pwd.getpwnam("postfix")
    except KeyError:
        return "no postfix user"
    return None


def tail(path, n=3000):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")[-n:]
    except OSError:
        return ""


def test_postfix(d, r, sock_path):
    reason = postfix_missing()
    if reason:
        print("SKIPPED (Postfix part): " + reason)
        return
    base = tempfile.mkdtemp(prefix="postern-lmtp-postfix-")
    etc, spool, data = postfix_dirs(base)
    log = os.path.join(base, "postfix.log")
    port = free_port()
    with open(os.path.join(etc, "main.cf"), "w") as f:
        f.write(MAIN_CF.format(etc=etc, spool=spool, data=data, socket=sock_path,
                               lmtp_port=d.port("lmtp"), log=log, base=base))
    with open(os.path.join(etc, "master.cf"), "w") as f:
        f.write(MASTER_CF.format(port=port))
    started = False
    try:
        p = subprocess.run(["/usr/sbin/postfix", "-c", etc, "start"], capture_output=True,
                           timeout=60)
        started = p.returncode == 0
        if not r.check(started and wait_port(port),
                       "private Postfix started: %s" % p.stderr.decode(errors="replace")[-600:]):
            return
        sw = subprocess.run(["/usr/bin/swaks", "--server", "127.0.0.1:%d" % port,
                             "--from", "sender@remote.test", "--to",
                             ",".join((ALICE, BOB, DAVE)), "--header", "Subject: via-postfix",
                             "--body", "Handed over by Postfix through LMTP."],
                            capture_output=True, timeout=60)
        r.check(sw.returncode == 0, "swaks into Postfix: exit %d %s" % (
            sw.returncode, sw.stdout.decode(errors="replace")[-400:]))
        deadline = time.time() + 30
        want = ((ALICE, 1), (BOB, 1), (DAVE, 1))
        while time.time() < deadline and any(with_subject(d, a, "via-postfix") < n
                                             for a, n in want):
            time.sleep(0.2)
        time.sleep(0.5)  # a second copy would arrive now
        got = {a: with_subject(d, a, "via-postfix") for a, _ in want}
        r.check(got == {ALICE: 1, BOB: 1, DAVE: 1},
                "Postfix delivered once to each Maildir (unix socket for example.test, TCP "
                "for example2.test): %r\n%s" % (got, tail(log)))
        plog = tail(log, 20000)
        r.check(plog.count("status=sent") >= 3, "Postfix logged status=sent for each")
        r.check("relay=%s" % os.path.basename(sock_path) in plog or sock_path in plog,
                "Postfix used the unix socket: %s" % plog[-1200:])
        r.check("relay=127.0.0.1[127.0.0.1]:%d" % d.port("lmtp") in plog,
                "Postfix used LMTP over TCP for example2.test")
        with open(maildir_files(d, DAVE)[-1], "rb") as f:
            head = f.read(3000).decode(errors="replace")
        r.check("Received: from mx.lmtp-test.example ([127.0.0.1])" in head and
                "with LMTP" in head, "Received names Postfix's LHLO: %r" % head[:500])
    finally:
        if started:
            subprocess.run(["/usr/sbin/postfix", "-c", etc, "stop"], capture_output=True,
                           timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: lmtp.py POSTERN")
    r = Results()
    run = tempfile.mkdtemp(prefix="postern-lmtp-run-")
    os.chmod(run, 0o755)  # Postfix's lmtp client (user postfix) reaches the socket
    sock_path = os.path.join(run, "lmtp.sock")
    extra = ("quota_error = permanent\n"
             "trusted_networks = 127.0.0.1/32\n"
             "listener lmtp-socket {\n  role = lmtp\n  address = unix:%s\n  mode = %o\n}\n"
             % (sock_path, SOCKET_MODE))
    d = Daemon(sys.argv[1], roles=("lmtp",), domains=("example.test", "example2.test"),
               extra_config=extra, tls=False)
    try:
        for user in (ALICE, BOB, CAROL, DAVE, ERIN):
            d.add_user(user, "secret-password-1")
        d.cli("user", "quota", CAROL, CAROL_QUOTA)
        with d:
            r.run("tcp", lambda: test_tcp(d, r))
            r.run("untrusted", lambda: test_untrusted(d, r))
            r.run("tempfail", lambda: test_tempfail(d, r))
            r.run("unix", lambda: test_unix(d, r, sock_path))
            r.run("postfix", lambda: test_postfix(d, r, sock_path))
            r.check(os.path.exists(sock_path), "socket file present while running")
        r.check(not os.path.exists(sock_path), "socket file removed at stop")
    finally:
        shutil.rmtree(run, ignore_errors=True)
    r.finish()


if __name__ == "__main__":
    main()
