"""Port 25 on any instance relays by LMTP to the mailbox's owner (issue
14): two Postern instances on loopback, each with its own data_dir, one
shards file (shard_name = a / b).  A's LMTP listens on TCP, B's on a unix
socket, so both ways of the shards file's lmtp= are used.

Users: alice lives on A, bob and carol on B; A's users file has all three,
B's lacks carol (the files are meant to be equal, this one is stale).

Checked, on disk:
  - mail from an untrusted client (127.0.0.2) to bob gets A's SPF/DKIM/
    DMARC verdict: B's copy has A's Authentication-Results above A's
    Received field;
  - mail to bob sent to A's port 25 lands in B's Maildir, not in A's; it
    carries A's Received field and B's, and no DKIM-Signature although A
    signs mail from alice's domain (it has a key): the internal hop is
    unsigned;
  - mail to alice sent to A stays on A; sent to B, it reaches A (TCP);
  - carol is accepted by A (its users file knows her) and refused by B's
    LMTP with 550: the DSN goes to the sender bob, who lives on B, so A
    queues the report to B: it lands in bob's Maildir on B, not on A;
  - shard c is a fake LMTP server (dave, erin): both recipients go in one
    transaction after LHLO; its replies after DATA are applied one per
    recipient (250 for dave, 452 for erin: only erin is retried), a
    malformed reply defers erin again, a 550 bounces her to the sender
    alice on A, and the queue empties;
  - B stopped: mail to bob is answered 250 by A and waits in A's queue;
    once B is back it arrives (queue_retry = 1s) and A's queue empties;
  - shard_name without shards_file is refused by `postern check`, and one
    the shards file does not define is logged at start.
Run by ctest with the postern binary as argv[1]."""
import glob
import os
import shutil
import smtplib
import sys
import socket
import tempfile
import threading
import time

from postern_test import Daemon, Results, free_port, maildir_files

ALICE, BOB, CAROL = "alice@example.test", "bob@example.test", "carol@example.test"
UNTRUSTED = "127.0.0.2"  # outside A's trusted_networks: its mail is checked
DAVE, ERIN = "dave@example.test", "erin@example.test"  # on shard c: a fake LMTP
# What the fake LMTP server says after each message, one line per accepted
# RCPT (RFC 2033 4.2): a 250 and a 452, then a malformed reply, then a 550.
FAKE_SCRIPT = [["250 2.0.0 <dave> ok", "452 4.2.2 <erin> mailbox busy"],
               ["this is not a reply"],
               ["550 5.7.1 <erin> does not want it"]]


class FakeLmtp:
    """Shard c: a line-by-line LMTP server that records every transaction
    (the commands of its session and its recipients) and answers after
    DATA from FAKE_SCRIPT."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.transactions = []  # (first command of the session, [rcpt, ...], data)
        self.stop = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    def session(self, conn):
        f = conn.makefile("rb")
        conn.sendall(b"220 fake LMTP\r\n")
        first, rcpts = None, []
        try:
            for line in f:
                cmd = line.rstrip(b"\r\n").decode()
                first = first or cmd.split(" ")[0].upper()
                verb = cmd[:4].upper()
                if verb == "LHLO":
                    conn.sendall(b"250-fake\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                                 b"250 ENHANCEDSTATUSCODES\r\n")
                elif verb == "MAIL":
                    rcpts = []
                    conn.sendall(b"250 2.1.0 ok\r\n")
                elif verb == "RCPT":
                    rcpts.append(cmd.split("<", 1)[1].split(">", 1)[0])
                    conn.sendall(b"250 2.1.5 ok\r\n")
                elif verb == "DATA":
                    conn.sendall(b"354 go on\r\n")
                    data = b""
                    for l in f:
                        if l == b".\r\n":
                            break
                        data += l
                    n = len(self.transactions)
                    self.transactions.append((first, list(rcpts), data))
                    replies = FAKE_SCRIPT[n] if n < len(FAKE_SCRIPT) else ["250 2.0.0 ok"] * len(rcpts)
                    conn.sendall("".join(r + "\r\n" for r in replies).encode())
                elif verb == "QUIT":
                    conn.sendall(b"221 bye\r\n")
                    break
                else:
                    conn.sendall(b"250 2.0.0 ok\r\n")
        except OSError:
            pass
        conn.close()

    def close(self):
        self.stop = True
        self.sock.close()

PW = "shard-relay-pass"
WAIT_S = 15


def instance(postern, name, shards, roles, extra=""):
    conf = ("shards_file = %s\nshard_name = %s\nqueue_retry = 1s\n" % (shards, name)) + extra
    d = Daemon(postern, roles=roles, tls=False, extra_config=conf)
    return d


def send(port, sender, rcpt, subject, headers="", source="127.0.0.1"):
    msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@example.test>\r\n%s"
           "\r\nbody of %s\r\n" % (sender, rcpt, subject, subject.replace(" ", "."), headers,
                                   subject))
    with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(source, 0)) as c:
        c.ehlo("client.example.net")
        code, _ = c.docmd("MAIL FROM:<%s>" % sender)
        rcode, rtext = c.docmd("RCPT TO:<%s>" % rcpt)
        if rcode != 250:
            c.rset()
            return rcode, rtext
        code, text = c.data(msg.encode())
        return code, text


def with_subject(d, address, subject):
    out = []
    for path in maildir_files(d, address):
        with open(path, "rb") as f:
            data = f.read()
        if ("Subject: %s" % subject).encode() in data:
            out.append(data)
    return out


def wait_for(d, address, subject, timeout=WAIT_S):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = with_subject(d, address, subject)
        if found:
            return found
        time.sleep(0.1)
    return []


def dsn_for(d, address, needle, timeout=WAIT_S):
    """A delivery status notification in the user's Maildir naming needle."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for path in maildir_files(d, address):
            with open(path, "rb") as f:
                data = f.read()
            if b"multipart/report" in data and needle.encode() in data:
                return data
        time.sleep(0.1)
    return None


def queued(d):
    return glob.glob(os.path.join(d.data, "queue", "*.env"))


def wait_socket(path, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline and not os.path.exists(path):
        time.sleep(0.05)
    return os.path.exists(path)


def test_owned_elsewhere(a, b, r):
    code, text = send(a.port("smtp"), ALICE, BOB, "for bob via a")
    r.check(code == 250, "A answers 250 for bob, whom B holds: %d %r" % (code, text))
    got = wait_for(b, BOB, "for bob via a")
    r.check(len(got) == 1, "the message is in bob's Maildir on B (%d)" % len(got))
    r.check(not with_subject(a, BOB, "for bob via a"), "and not in bob's Maildir on A")
    if got:
        m = got[0]
        head = m.split(b"\r\n\r\n", 1)[0]
        r.check(head.count(b"Received:") == 2 and b"with ESMTP" in head and b"LMTP" in head,
                "A's Received (ESMTP) and B's (LMTP) are both there: %r" % head[:600])
        r.check(b"DKIM-Signature" not in head,
                "no DKIM-Signature on the internal hop (A has a key for example.test)")
        r.check(head.startswith(b"Return-Path: <%s>" % ALICE.encode()),
                "B writes Return-Path from the envelope: %r" % head[:80])


def test_checked(a, b, r):
    """Mail from the world (127.0.0.2 is outside A's trusted_networks) is
    checked on A; B's copy carries A's verdict above A's Received field."""
    code, text = send(a.port("smtp"), "someone@elsewhere.test", BOB, "checked for bob",
                      source=UNTRUSTED)
    r.check(code == 250, "A answers 250 for bob from an untrusted client: %d %r" % (code, text))
    got = wait_for(b, BOB, "checked for bob")
    r.check(len(got) == 1, "the checked message is in bob's Maildir on B (%d)" % len(got))
    if got:
        head = got[0].split(b"\r\n\r\n", 1)[0]
        ar = head.find(b"Authentication-Results: mail.example.test")
        esmtp = head.find(b"with ESMTP")
        r.check(head.count(b"Authentication-Results:") == 1 and 0 < ar < esmtp and
                b"spf=" in head,
                "A's Authentication-Results (with SPF) sits above A's Received: %r" % head[:700])


def test_owned_here(a, b, r):
    code, _ = send(a.port("smtp"), BOB, ALICE, "for alice via a")
    r.check(code == 250, "A answers 250 for alice (its own user): %d" % code)
    r.check(len(wait_for(a, ALICE, "for alice via a")) == 1, "alice's copy is stored on A")
    r.check(not with_subject(b, ALICE, "for alice via a"), "and not on B")
    code, _ = send(b.port("smtp"), BOB, ALICE, "for alice via b")
    r.check(code == 250, "B answers 250 for alice, whom A holds: %d" % code)
    r.check(len(wait_for(a, ALICE, "for alice via b")) == 1,
            "B relays it to A's LMTP over TCP: in alice's Maildir on A")
    r.check(not with_subject(b, ALICE, "for alice via b"), "and not in alice's Maildir on B")


def test_refused_by_owner(a, b, r):
    code, text = send(a.port("smtp"), BOB, CAROL, "for carol via a")
    r.check(code == 250, "A accepts carol (in its users file): %d %r" % (code, text))
    dsn = dsn_for(b, BOB, CAROL)
    r.check(dsn is not None, "B refused carol at LMTP RCPT: the DSN reaches the sender "
            "bob on B through the queue")
    if dsn is not None:
        r.check(b"Action: failed" in dsn and b"5.1.1" in dsn,
                "the DSN says failed with B's 5.1.1")
    r.check(dsn_for(a, BOB, CAROL, timeout=0.5) is None, "no DSN stored for bob on A")
    r.check(not with_subject(a, CAROL, "for carol via a"),
            "carol's message is stored nowhere on A")


def test_lmtp_replies(a, fake, r):
    """Per-recipient replies after DATA, a malformed one, a 550."""
    with smtplib.SMTP("127.0.0.1", a.port("smtp"), timeout=30) as c:
        c.ehlo("client.example.net")
        c.mail(ALICE)
        r.check(c.rcpt(DAVE)[0] == 250 and c.rcpt(ERIN)[0] == 250,
                "A accepts dave and erin, both on shard c")
        code, _ = c.data(b"From: <alice@example.test>\r\nSubject: to shard c\r\n\r\nhi\r\n")
        r.check(code == 250, "250 once queued: %d" % code)
    deadline = time.time() + 25
    while time.time() < deadline and (len(fake.transactions) < 3 or queued(a)):
        time.sleep(0.1)
    t = fake.transactions
    r.check(len(t) == 3, "shard c saw three transactions (%d)" % len(t))
    if len(t) >= 1:
        r.check(t[0][0] == "LHLO" and t[0][1] == [DAVE, ERIN] and b"Subject: to shard c" in t[0][2],
                "the first: LHLO, then both recipients in one transaction: %r" % (t[0][:2],))
    if len(t) == 3:
        r.check(t[1][1] == [ERIN] and t[2][1] == [ERIN],
                "dave's 250 after DATA counted for dave only: the retries are for erin "
                "alone, after her 452 and after the malformed reply: %r" % ([x[1] for x in t],))
    r.check("Malformed reply" in a.log(), "the malformed reply is logged as such")
    dsn = dsn_for(a, ALICE, ERIN)
    r.check(dsn is not None and b"5.7.1" in dsn and b"Action: failed" in dsn and
            b"Final-Recipient: rfc822; " + ERIN.encode() in dsn and
            b"Final-Recipient: rfc822; " + DAVE.encode() not in dsn,
            "erin's 550 from shard c bounces to alice on A; dave is not in the report")
    r.check(not queued(a), "A's queue is empty at the end")


def test_owner_down(a, b, r):
    b.stop()
    code, text = send(a.port("smtp"), ALICE, BOB, "while b is down")
    r.check(code == 250, "B stopped: A still answers 250 for bob: %d %r" % (code, text))
    time.sleep(2.5)  # a first attempt or two fail
    r.check(len(queued(a)) == 1, "the message waits in A's queue (%d)" % len(queued(a)))
    r.check(not with_subject(b, BOB, "while b is down"), "not delivered while B is down")
    r.check("Cannot connect" in a.log(), "A logs the failed connection to B's LMTP")
    b.start()
    r.check(wait_socket(b.lmtp_socket), "B's LMTP socket is back")
    got = wait_for(b, BOB, "while b is down", timeout=20)
    r.check(len(got) == 1, "after B starts the queued message arrives (%d)" % len(got))
    deadline = time.time() + 5
    while queued(a) and time.time() < deadline:
        time.sleep(0.1)
    r.check(not queued(a), "and A's queue is empty")


def test_check(postern, r, shards):
    d = Daemon(postern, roles=("smtp",), tls=False, extra_config="shard_name = a\n")
    try:
        res = d.cli("check", check=False)
        r.check(res.returncode != 0 and b"shards_file" in res.stderr,
                "shard_name without shards_file is refused: %r" % res.stderr)
    finally:
        shutil.rmtree(d.dir, ignore_errors=True)
    with Daemon(postern, roles=("smtp",), tls=False,
                extra_config="shards_file = %s\nshard_name = zzz\n" % shards) as d:
        r.check("shard_name = zzz: %s has no such shard line" % shards in d.log(),
                "a shard_name the shards file does not define is logged at start")


def main():
    postern = sys.argv[1]
    r = Results()
    top = tempfile.mkdtemp(prefix="postern-shards-")
    shards = os.path.join(top, "shards")
    sock = os.path.join(top, "b-lmtp.sock")
    # A checks mail from 127.0.0.2; its name server is a closed port, so
    # SPF and DKIM end in temperror at once
    a = instance(postern, "a", shards, ("smtp", "lmtp"),
                 "trusted_networks = 127.0.0.1/32\nsmtp_pregreet_delay = 0\n"
                 "dns_resolver = 127.0.0.1:%d\n" % free_port())
    b = instance(postern, "b", shards, ("smtp",),
                 "listener lmtp-socket {\n  role = lmtp\n  address = unix:%s\n}\n" % sock)
    b.lmtp_socket = sock
    fake = FakeLmtp()
    with open(shards, "w") as f:
        f.write("# who lives where; lmtp= is where the others deliver\n"
                "shard a 127.0.0.1 lmtp=%d\n"
                "shard b 127.0.0.1 lmtp=%s\n"
                "shard c 127.0.0.1 lmtp=%d\n"
                "%s b\n%s b\n%s c\n%s c\n* a\n" % (a.port("lmtp"), sock, fake.port, BOB, CAROL,
                                                   DAVE, ERIN))
    for d in (a, b):
        d.add_user(ALICE, PW)
        d.add_user(BOB, PW)
    for u in (CAROL, DAVE, ERIN):
        a.add_user(u, PW)
    res = a.cli("dkim", "generate", "example.test", check=False)
    r.check(res.returncode == 0, "A has a DKIM key for example.test")
    try:
        with a, b:
            r.check(wait_socket(sock), "B's LMTP socket exists")
            r.check("shard a: mail for users of other shards is relayed to them by LMTP"
                    in a.log(), "A logs at start that it relays for shard a")
            r.run("owned elsewhere", lambda: test_owned_elsewhere(a, b, r))
            r.run("checked", lambda: test_checked(a, b, r))
            r.run("owned here", lambda: test_owned_here(a, b, r))
            r.run("refused by the owner", lambda: test_refused_by_owner(a, b, r))
            r.run("lmtp replies", lambda: test_lmtp_replies(a, fake, r))
            r.run("owner down", lambda: test_owner_down(a, b, r))
        r.run("check", lambda: test_check(postern, r, shards))
    finally:
        fake.close()
        shutil.rmtree(top, ignore_errors=True)
    r.finish()


if __name__ == "__main__":
    main()
