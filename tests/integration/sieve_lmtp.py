"""Sieve (RFC 5228) on mail handed over by LMTP (RFC 2033) and by
`postern deliver`, end to end: active scripts written straight into the
users' postern-sieve/ directories, raw LMTP sessions on loopback, and the
per-recipient replies and files that come out.

LMTP, one message to five recipients: fileinto :create with an
imap4flags flag plus keep (two files, the folder's with S in its name),
reject (that recipient alone gets "550 5.7.1 <rcpt> reason", the others
250), a script that does not compile (INBOX, logged with the line),
discard (250, nothing stored), vacation (one reply to the local sender,
sent only after the commit).  A reject by the only recipient: 550 with the
multi-line reason folded into one line; no bounce (the MTA in front
reports it).  An alias whose owners are one rejecting and one discarding
user: 250 for the alias, and the sender gets a bounce naming the reason.
A fileinto folder whose directory is broken: that recipient gets 451 even
though its INBOX copy was written, no vacation reply goes out for it, and
the other recipient still gets 250.

`postern deliver`: fileinto (exit 0, the file in the folder), discard
(exit 0, nothing), reject (exit 77, EX_NOPERM, with the reason on stderr, as dovecot-lda -e:
the MTA bounces), a broken script (exit 0, INBOX).

Usage: sieve_lmtp.py /path/to/postern
"""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postern_test import Daemon, Results, maildir_files  # noqa: E402
from smtp_util import Raw, maildir_messages, wait_count  # noqa: E402
from sieve_delivery import subjects, write_script  # noqa: E402

ALICE = "alice@example.test"   # fileinto :create "Lists" with \Seen, keep, vacation
BOB = "bob@example.test"       # reject
CAROL = "carol@example.test"   # a script that does not compile
DAVE = "dave@example.test"     # discard
ERIN = "erin@example.test"     # vacation
FRANK = "frank@example.test"   # the sender (local: replies land in his INBOX)
GRACE = "grace@example.test"   # other local senders
HEIDI = "heidi@example.test"
TEAM = "team@example.test"     # alias: bob and dave
PASSWORD = "sieve-lmtp-secret-1"
EX_NOPERM = 77

SCRIPTS = {
    ALICE: 'require ["fileinto", "imap4flags", "mailbox", "vacation"];\n'
           'if header :contains "Subject" "plain" {\n'
           '  fileinto :create "Plain";\n  keep;\n'
           '  vacation :days 1 :subject "Away" "Alice is away.";\n'
           '} elsif header :contains "Subject" "lmtp" {\n'
           '  fileinto :create :flags "\\\\Seen" "Lists";\n  keep;\n'
           '  vacation :days 1 :subject "Away" "Alice is away.";\n}\n',
    BOB: 'require "reject";\nreject text:\nBob does not\nwant it.\n.\n;\n',
    CAROL: 'require "fileinto";\nif header :frob "a" "b" { discard; }\n',
    DAVE: 'discard;\n',
    ERIN: 'require "vacation";\nvacation :days 1 :subject "Away" "Erin is away.";\n',
}


def message(subject, to=ALICE, sender=FRANK):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@client.test>\r\n\r\n"
            "Hello.\r\n" % (sender, to, subject, subject.replace(" ", "-")))


def lmtp(d, rcpts, subject, to=ALICE, sender=FRANK):
    """One LMTP transaction; the RCPT codes and the replies after DATA."""
    c = Raw(d.port("lmtp"))
    c.cmd("LHLO mta.example.test")
    c.cmd("MAIL FROM:<%s>" % sender)
    codes = [c.cmd("RCPT TO:<%s>" % a)[0] for a in rcpts]
    c.cmd("DATA")
    c.send(message(subject, to, sender) + ".\r\n")
    replies = [c.reply() for a in rcpts]
    c.cmd("QUIT")
    c.close()
    return codes, replies


def vacation_replies(d, to, who):
    """The vacation replies in to's INBOX from who ("Alice", "Erin")."""
    return [m for m in maildir_messages(d, to)
            if b"\r\nSubject: Away\r\n" in m and ("%s is away." % who).encode() in m]


def bounces(d):
    return [m for m in maildir_messages(d, FRANK) if b"multipart/report" in m]


def test_lmtp(d, r):
    # To: names alice and erin (vacation answers only mail addressed to
    # the user, RFC 5230 §4.5)
    codes, replies = lmtp(d, [ALICE, BOB, CAROL, DAVE, ERIN], "lmtp one",
                          to="%s>, <%s" % (ALICE, ERIN))
    r.check(codes == [250] * 5, "five RCPTs accepted: %r" % codes)
    got = [x[0] for x in replies]
    r.check(got == [250, 550, 250, 250, 250],
            "one reply each: 250, 550 for the reject, 250 250 250: %r" % replies)
    r.check(replies[1][1][0] == "5.7.1 <%s> Bob does not want it." % BOB,
            "the reject's reply names the recipient and the reason: %r" % (replies[1],))
    r.check(subjects(d, ALICE) == ["lmtp one"] and subjects(d, ALICE, "Lists") == ["lmtp one"],
            "alice: keep in INBOX and fileinto :create Lists, one file each")
    lists = maildir_files(d, ALICE, "Lists")
    r.check(len(lists) == 1 and ":2," in lists[0] and "S" in lists[0].split(":2,")[1],
            "the Lists copy has \\Seen in its file name: %r" % lists)
    inbox = maildir_files(d, ALICE)
    r.check(len(inbox) == 1 and "S" not in inbox[0].split(":2,")[-1] if ":2," in inbox[0]
            else True, "the INBOX copy is not \\Seen: %r" % inbox)
    r.check(maildir_files(d, BOB) == [], "bob (reject): nothing stored")
    r.check(subjects(d, CAROL) == ["lmtp one"], "carol (broken script): in INBOX")
    r.check("sieve user=carol@example.test script=main error: line 2:" in d.log(),
            "carol's script error is logged with its line")
    r.check(maildir_files(d, DAVE) == [], "dave (discard): nothing stored")
    r.check(subjects(d, ERIN) == ["lmtp one"], "erin (vacation): the implicit keep")
    wait_count(d, FRANK, 2)
    time.sleep(0.5)
    v = vacation_replies(d, FRANK, "Erin")
    r.check(len(v) == 1 and b"Return-Path: <>\r\n" in v[0],
            "erin's vacation reply reached the sender once: %d" % len(v))
    r.check(len(vacation_replies(d, FRANK, "Alice")) == 1,
            "and alice's, after her two copies were stored")
    r.check(bounces(d) == [], "no bounce for bob: his 550 told the MTA")


def test_reject_alone(d, r):
    codes, replies = lmtp(d, [BOB], "lmtp reject alone", to=BOB)
    r.check(codes == [250] and replies[0][0] == 550 and
            replies[0][1][0] == "5.7.1 <%s> Bob does not want it." % BOB,
            "reject, the only recipient: 550 5.7.1 with the folded reason: %r" % (replies,))
    r.check(maildir_files(d, BOB) == [], "and nothing stored")


def test_alias(d, r):
    before = len(bounces(d))
    codes, replies = lmtp(d, [TEAM], "lmtp to the team", to=TEAM)
    r.check(codes == [250] and replies[0][0] == 250,
            "an alias of a rejecting and a discarding owner: 250 (%r)" % (replies,))
    deadline = time.time() + 10
    while time.time() < deadline and len(bounces(d)) == before:
        time.sleep(0.1)
    b = bounces(d)
    r.check(len(b) == before + 1 and b"550 5.7.1 Bob does not" in b[-1] and
            BOB.encode() in b[-1],
            "the sender got a bounce for the owner no reply refused")


def test_broken_folder(d, r):
    codes, replies = lmtp(d, [ALICE], "plain first", sender=GRACE)
    r.check(replies[0][0] == 250 and subjects(d, ALICE, "Plain") == ["plain first"],
            "fileinto :create Plain: 250 (%r)" % (replies,))
    wait_count(d, GRACE, 1)
    grace = len(vacation_replies(d, GRACE, "Alice"))
    new = os.path.join(d.data, "mail", "example.test", "alice", ".Plain", "new")
    shutil.rmtree(new)
    with open(new, "w"):
        pass
    inbox = len(maildir_files(d, ALICE))
    codes, replies = lmtp(d, [ALICE, CAROL], "plain broken folder", sender=HEIDI)
    got = [x[0] for x in replies]
    r.check(got == [451, 250] and "<%s>" % ALICE in replies[0][1][0],
            "a fileinto copy that cannot be stored: 451 for alice, 250 for carol: %r" % replies)
    r.check(len(maildir_files(d, ALICE)) == inbox + 1,
            "(alice's INBOX copy was written: the 451 waits for every copy)")
    r.check("plain broken folder" in subjects(d, CAROL), "carol has it")
    time.sleep(0.5)
    r.check(vacation_replies(d, HEIDI, "Alice") == [],
            "no vacation reply for a recipient answered 451")
    os.unlink(new)
    os.mkdir(new)
    codes, replies = lmtp(d, [ALICE], "plain broken folder", sender=HEIDI)
    r.check(replies[0][0] == 250 and "plain broken folder" in subjects(d, ALICE, "Plain"),
            "the MTA's retry: 250, the copy in Plain")
    wait_count(d, HEIDI, 1)
    r.check(len(vacation_replies(d, HEIDI, "Alice")) == 1 and
            len(vacation_replies(d, GRACE, "Alice")) == grace,
            "and now the vacation reply, once")


def deliver(d, address, subject, sender=FRANK):
    return subprocess.run([d.postern, "-c", d.conf, "deliver", "-f", sender, address],
                          input=message(subject, address).encode(), capture_output=True,
                          timeout=60)


def test_deliver(d, r):
    res = deliver(d, ALICE, "deliver lmtp")
    r.check(res.returncode == 0, "deliver, fileinto + keep: exit 0 (%d %r)"
            % (res.returncode, res.stderr))
    r.check(subjects(d, ALICE, "Lists").count("deliver lmtp") == 1 and
            subjects(d, ALICE).count("deliver lmtp") == 1,
            "deliver: the Lists copy and the INBOX copy")
    res = deliver(d, DAVE, "deliver discard")
    r.check(res.returncode == 0 and maildir_files(d, DAVE) == [],
            "deliver, discard: exit 0, nothing stored (%d)" % res.returncode)
    res = deliver(d, BOB, "deliver reject")
    r.check(res.returncode == EX_NOPERM and b"Bob does not want it." in res.stderr,
            "deliver, reject: exit 77 (EX_NOPERM) with the reason on stderr (%d %r)"
            % (res.returncode, res.stderr))
    r.check(maildir_files(d, BOB) == [], "deliver, reject: nothing stored")
    res = deliver(d, CAROL, "deliver broken")
    r.check(res.returncode == 0 and "deliver broken" in subjects(d, CAROL),
            "deliver, broken script: exit 0, INBOX (%d)" % res.returncode)
    r.check(b"script=main error: line 2:" in res.stderr,
            "deliver, broken script: the error on stderr: %r" % res.stderr)
    res = deliver(d, ERIN, "deliver vacation", sender=GRACE)
    grace = vacation_replies(d, GRACE, "Erin")
    r.check(res.returncode == 0 and len(grace) == 1,
            "deliver, vacation: the reply is in the sender's INBOX (%d, %d)"
            % (res.returncode, len(grace)))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: sieve_lmtp.py POSTERN")
    r = Results()
    with Daemon(sys.argv[1], roles=("lmtp",), tls=False,
                keep_dir=os.environ.get("KEEP") is not None) as d:
        for u in (ALICE, BOB, CAROL, DAVE, ERIN, FRANK, GRACE, HEIDI):
            d.add_user(u, PASSWORD)
        d.cli("alias", "add", TEAM, BOB, DAVE)
        for u, text in SCRIPTS.items():
            write_script(d, u, "main", text)
        r.run("lmtp", lambda: test_lmtp(d, r))
        r.run("reject alone", lambda: test_reject_alone(d, r))
        r.run("alias", lambda: test_alias(d, r))
        r.run("broken folder", lambda: test_broken_folder(d, r))
        r.run("deliver", lambda: test_deliver(d, r))
    r.finish()


if __name__ == "__main__":
    main()
