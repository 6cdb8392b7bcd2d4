"""Sieve (RFC 5228) at delivery, end to end: active scripts written straight
into the users' postern-sieve/ directories (the layout of maildir/store.h),
mail delivered by SMTP on port 25, and the files, flags and replies that
come out.

Cases: fileinto :create and mailboxexists (RFC 5490); fileinto a folder with imap4flags flags and a keyword (seen by
IMAP FETCH FLAGS), a folder name from a :matches variable; two copies
(fileinto + keep) are two files; discard stores nothing; fileinto a
missing folder lands in INBOX; reject of a single-recipient message is
the 550 5.7.1 reply with the reason and nothing is stored; reject by one of
two recipients gives 250, the other gets it, the sender a bounce with the
reason; vacation replies once per sender within :days (the local sender
gets exactly one reply in its INBOX, with Auto-Submitted and In-Reply-To),
never to the null sender nor to a Precedence: bulk or List-Id message, and
a remote sender's reply waits in the outbound queue (`postern queue list`);
a script that does not compile still delivers to INBOX and the log names
the script and line; no active script (dangling link) delivers to INBOX;
redirect to a local user (its INBOX, the original Return-Path) and to a
remote one (queued from the original sender), with and without :copy.

Usage: sieve_delivery.py /path/to/postern
"""
import imaplib
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postern_test import Daemon, Results, free_port, maildir_files, tls_context  # noqa: E402
from smtp_util import Raw, maildir_messages, wait_count  # noqa: E402

ALICE = "alice@example.test"
BOB = "bob@example.test"
CAROL = "carol@example.test"
DAVE = "dave@example.test"
PASSWORD = "sieve-test-secret-1"

ALICE_SCRIPT = r'''require ["fileinto", "imap4flags", "reject", "vacation", "variables", "mailbox"];
# RFC 5228 §2.3 comments
if header :contains "Subject" "discard me" { discard; stop; }
if header :contains "Subject" "reject me" {
  reject text:
No thanks,
not here.
.
;
  stop;
}
if header :matches "Subject" "[*] *" {
  fileinto :flags ["\\Seen", "$Tagged"] "${1}";
  stop;
}
if header :contains "Subject" "missing folder" { fileinto "Nowhere"; stop; }
if header :contains "Subject" "create me" { fileinto :create "Projects/New"; stop; }
if allof (header :contains "Subject" "if exists", mailboxexists "Lists") {
  fileinto "Lists"; stop;
}
if header :contains "Subject" "two copies" { fileinto "Lists"; keep; stop; }
vacation :days 1 :subject "Away" "I am away until Monday.";
'''


def write_script(d, address, name, text, activate=True):
    local, domain = address.split("@")
    sdir = os.path.join(d.data, "mail", domain, local, "postern-sieve")
    os.makedirs(sdir, exist_ok=True)
    with open(os.path.join(sdir, name + ".sieve"), "w") as f:
        f.write(text)
    link = os.path.join(sdir, ".active")
    if os.path.lexists(link):
        os.unlink(link)
    if activate:
        os.symlink(name + ".sieve", link)


def send(d, sender, rcpts, subject, extra="", body="Hello.\r\n"):
    """One transaction on port 25; returns the reply to the DATA."""
    c = Raw(d.port("smtp"))
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<%s>" % sender)
    for r in rcpts:
        code, text = c.cmd("RCPT TO:<%s>" % r)
        assert code == 250, (r, code, text)
    c.cmd("DATA")
    msg = ("From: <%s>\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@client.test>\r\n%s\r\n%s"
           % (sender or "daemon@client.test", ", ".join("<%s>" % r for r in rcpts), subject,
              re.sub(r"\W", "", subject), extra, body))
    c.send(msg.encode() + b".\r\n")
    reply = c.reply()
    c.cmd("QUIT")
    c.close()
    return reply


def flags_of(d, folder):
    m = imaplib.IMAP4_SSL("127.0.0.1", d.port("imaps"), ssl_context=tls_context())
    m.login(ALICE, PASSWORD)
    m.select(folder)
    typ, data = m.fetch("1:*", "(FLAGS)")
    m.logout()
    return [x.decode() if isinstance(x, bytes) else repr(x) for x in data]


def create_folder(d, name):
    m = imaplib.IMAP4_SSL("127.0.0.1", d.port("imaps"), ssl_context=tls_context())
    m.login(ALICE, PASSWORD)
    typ, _ = m.create(name)
    m.logout()
    return typ


def subjects(d, address, folder=""):
    out = []
    for path in maildir_files(d, address, folder):
        with open(path, "rb") as f:
            head = f.read().split(b"\r\n\r\n")[0]
        for line in head.split(b"\r\n"):
            if line.startswith(b"Subject: "):
                out.append(line[9:].decode())
    return out


def test_folders(d, r):
    r.check(create_folder(d, "Lists") == "OK", "IMAP CREATE Lists")
    reply = send(d, "sender@outside.test", [ALICE], "[Lists] weekly digest")
    r.check(reply[0] == 250, "fileinto: 250 (%r)" % (reply,))
    r.check(subjects(d, ALICE, "Lists") == ["[Lists] weekly digest"],
            "fileinto \"${1}\" from :matches put it in Lists: %r" % subjects(d, ALICE, "Lists"))
    r.check(subjects(d, ALICE) == [], "and not in INBOX")
    files = maildir_files(d, ALICE, "Lists")
    r.check(len(files) == 1 and re.search(r":2,[a-z]*S", files[0]) is not None,
            "\\Seen is in the file name: %r" % files)
    flags = flags_of(d, "Lists")
    r.check(len(flags) == 1 and "\\Seen" in flags[0] and "$Tagged" in flags[0],
            "IMAP FETCH FLAGS shows \\Seen and $Tagged: %r" % flags)

    reply = send(d, "sender@outside.test", [ALICE], "two copies")
    r.check(reply[0] == 250 and subjects(d, ALICE) == ["two copies"] and
            subjects(d, ALICE, "Lists").count("two copies") == 1,
            "fileinto + keep: one copy in Lists, one in INBOX")

    reply = send(d, "sender@outside.test", [ALICE], "please discard me")
    r.check(reply[0] == 250 and "please discard me" not in
            subjects(d, ALICE) + subjects(d, ALICE, "Lists"),
            "discard: 250 and nothing stored (%r)" % (reply,))

    reply = send(d, "sender@outside.test", [ALICE], "missing folder")
    r.check(reply[0] == 250 and "missing folder" in subjects(d, ALICE),
            "fileinto a folder that does not exist: delivered to INBOX")
    r.check("fileinto \"Nowhere\": no such folder; delivered to INBOX" in d.log(),
            "and the log says why")

    reply = send(d, "sender@outside.test", [ALICE], "create me")
    r.check(reply[0] == 250 and subjects(d, ALICE, "Projects.New") == ["create me"],
            "fileinto :create made the folder Projects/New: %r"
            % subjects(d, ALICE, "Projects.New"))
    reply = send(d, "sender@outside.test", [ALICE], "if exists")
    r.check(reply[0] == 250 and "if exists" in subjects(d, ALICE, "Lists"),
            "mailboxexists \"Lists\" is true")


def test_reject(d, r):
    before = len(maildir_files(d, ALICE))
    reply = send(d, "sender@outside.test", [ALICE], "reject me")
    r.check(reply[0] == 550 and reply[1][0] == "5.7.1 No thanks, not here.",
            "reject, one recipient: 550 5.7.1 with the reason: %r" % (reply,))
    r.check(len(maildir_files(d, ALICE)) == before, "and nothing was stored")

    carol_before = len(maildir_files(d, CAROL))
    reply = send(d, CAROL, [ALICE, BOB], "reject me too")
    r.check(reply[0] == 250, "reject by one of two recipients: 250 (%r)" % (reply,))
    r.check("reject me too" in subjects(d, BOB) and
            "reject me too" not in subjects(d, ALICE),
            "the other recipient has it, the rejecting one not")
    wait_count(d, CAROL, carol_before + 1)
    bounces = [m for m in maildir_messages(d, CAROL) if b"multipart/report" in m]
    r.check(len(bounces) == 1 and b"550 5.7.1 No thanks," in bounces[0] and
            ALICE.encode() in bounces[0],
            "the sender got a bounce naming the recipient and the reason")


def vacation_replies(d, address):
    return [m for m in maildir_messages(d, address)
            if b"Auto-Submitted: auto-replied" in m and b"\r\nSubject: Away\r\n" in m]


def test_vacation(d, r):
    for i in range(3):
        reply = send(d, DAVE, [ALICE], "question %d" % i)
        r.check(reply[0] == 250, "message %d from a local sender: 250" % i)
    wait_count(d, DAVE, 1)
    time.sleep(0.5)
    replies = vacation_replies(d, DAVE)
    r.check(len(replies) == 1, "exactly one vacation reply for three messages: %d"
            % len(replies))
    if replies:
        v = replies[0]
        r.check(b"\r\nSubject: Away\r\n" in v and b"\r\nTo: <dave@example.test>\r\n" in v and
                b"\r\nIn-Reply-To: <question0@client.test>\r\n" in v and
                b"Return-Path: <>\r\n" in v and b"I am away until Monday." in v,
                "the reply: Subject, To, In-Reply-To, null Return-Path, the reason: %r"
                % v[:600])

    send(d, CAROL, [ALICE], "bulk news", extra="Precedence: bulk\r\n")
    send(d, CAROL, [ALICE], "list news", extra="List-Id: <news.lists.example>\r\n")
    send(d, CAROL, [ALICE], "auto", extra="Auto-Submitted: auto-generated\r\n")
    reply = send(d, "", [ALICE], "from the null sender")
    time.sleep(0.5)
    r.check(reply[0] == 250 and vacation_replies(d, CAROL) == [],
            "no vacation reply to Precedence: bulk, List-Id or Auto-Submitted mail")
    log = d.log()
    r.check("no vacation reply: null sender" in log and
            "no vacation reply: bulk message" in log and
            "no vacation reply: mailing list message" in log,
            "the log says why no reply went out")
    send(d, CAROL, [ALICE], "cc only", extra="Cc: other@outside.test\r\n")
    # To: names alice, so this one gets a reply
    r.check(len(vacation_replies(d, CAROL)) == 1, "a normal message from carol gets one")

    reply = send(d, "someone@remote.test", [ALICE], "from afar")
    deadline = time.time() + 10
    listing = ""
    while time.time() < deadline:
        listing = d.cli("queue", "list").stdout.decode()
        if "<someone@remote.test>" in listing:
            break
        time.sleep(0.1)
    r.check(reply[0] == 250 and "from <>" in listing and "<someone@remote.test>" in listing,
            "a remote sender's vacation reply is in the outbound queue: %r" % listing)
    send(d, "someone@remote.test", [ALICE], "from afar again")
    time.sleep(0.5)
    listing = d.cli("queue", "list").stdout.decode()
    r.check(listing.count("<someone@remote.test>") == 1,
            "and only one for two messages: %r" % listing)


def test_redirect(d, r):
    write_script(d, BOB, "forward", 'require "copy";\n'
                 'if header :contains "Subject" "forward me" {\n'
                 '  redirect :copy "dave@example.test";\n'
                 '  redirect "friend@remote.test";\n'
                 '}\n')
    before = len(maildir_files(d, BOB))
    reply = send(d, "sender@outside.test", [BOB], "please forward me")
    r.check(reply[0] == 250 and len(maildir_files(d, BOB)) == before,
            "redirect (without :copy) keeps no copy: %r" % (reply,))
    got = [m for m in maildir_messages(d, DAVE) if b"Subject: please forward me" in m]
    r.check(len(got) == 1 and got[0].startswith(b"Return-Path: <sender@outside.test>\r\n") and
            got[0].count(b"Return-Path:") == 1,
            "redirect to a local user: in its INBOX, from the original sender: %r"
            % (got[:1],))
    deadline = time.time() + 10
    listing = ""
    while time.time() < deadline and "<friend@remote.test>" not in listing:
        listing = d.cli("queue", "list").stdout.decode()
        time.sleep(0.1)
    r.check("from <sender@outside.test>" in listing and "<friend@remote.test>" in listing,
            "redirect to a remote address: queued from the original sender: %r" % listing)
    reply = send(d, "sender@outside.test", [BOB], "not for forwarding")
    r.check(reply[0] == 250 and "not for forwarding" in subjects(d, BOB),
            "the implicit keep when nothing matches")


def test_errors(d, r):
    write_script(d, BOB, "broken", 'require "fileinto";\nif header :frob "a" "b" { discard; }\n')
    before = len(maildir_files(d, BOB))
    reply = send(d, "sender@outside.test", [BOB], "to a broken script")
    r.check(reply[0] == 250 and len(maildir_files(d, BOB)) == before + 1 and
            "to a broken script" in subjects(d, BOB),
            "a script that does not compile: delivered to INBOX")
    r.check(re.search(r"sieve user=bob@example.test script=broken error: line 2: "
                      r"unknown tag :frob for header; delivered to INBOX", d.log()) is not None,
            "the log names the script and the line")
    write_script(d, BOB, "loop", 'require "variables";\nset "a" "0123456789abcdefg";\n' +
                 'set "a" "${a}${a}${a}${a}${a}${a}${a}${a}";\n' * 5 + "discard;\n")
    reply = send(d, "sender@outside.test", [BOB], "runtime error")
    r.check(reply[0] == 250 and "runtime error" in subjects(d, BOB),
            "a runtime error (a string past its limit): delivered to INBOX")
    r.check("script=loop runtime error: line 6: string too long after expansion" in d.log(),
            "and logged with the line")
    local, domain = BOB.split("@")
    sdir = os.path.join(d.data, "mail", domain, local, "postern-sieve")
    os.unlink(os.path.join(sdir, ".active"))
    os.symlink("gone.sieve", os.path.join(sdir, ".active"))
    reply = send(d, "sender@outside.test", [BOB], "dangling link")
    r.check(reply[0] == 250 and "dangling link" in subjects(d, BOB),
            "an .active link to a missing script: INBOX")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: sieve_delivery.py POSTERN")
    r = Results()
    # the outbound queue relays through a port where nothing listens, so a
    # queued reply stays there (deferred) for `postern queue list`
    closed = free_port()
    extra = "relay_host = 127.0.0.1:%d\nrelay_tls = starttls\n" % closed
    with Daemon(sys.argv[1], roles=("smtp", "imaps"), extra_config=extra) as d:
        for u in (ALICE, BOB, CAROL, DAVE):
            d.add_user(u, PASSWORD)
        write_script(d, ALICE, "main", ALICE_SCRIPT)
        r.run("folders", lambda: test_folders(d, r))
        r.run("reject", lambda: test_reject(d, r))
        r.run("vacation", lambda: test_vacation(d, r))
        r.run("redirect", lambda: test_redirect(d, r))
        r.run("errors", lambda: test_errors(d, r))
    r.finish()


if __name__ == "__main__":
    main()
