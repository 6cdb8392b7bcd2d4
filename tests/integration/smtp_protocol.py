"""SMTP protocol behaviour over raw sockets, exact bytes and replies.

Greetings; a whole transaction pipelined in one write
gets its replies in order; every SMTP smuggling variant is one message, not
two (refused with bare LF = reject, one message with normalise); BDAT
chunks, refused chunks consumed; bad input (unknown commands, NUL, long
lines, bad addresses, unknown parameters) gets 5xx with an enhanced code
and the session goes on, 10 in a row close it; DSN parameters accepted;
more than 100 recipients; STARTTLS discards pipelined plaintext; the From:
header must be owned on submission; SMTPUTF8; aliases; quota; graceful
stop.

Usage: smtp_protocol.py /path/to/postern
"""
import base64
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postern_test import Daemon, Results  # noqa: E402
from smtp_util import (USER, PASSWORD, USER2, PASSWORD2, Raw, maildir_messages,  # noqa: E402
                       maildir_files, tls_context)

ROLES = ("smtp", "submission", "submissions")
OUTSIDE = "someone@outside.test"


def enhanced(reply, code, ext):
    c, texts = reply
    return c == code and texts[-1].startswith(ext + " ")


def test_greetings(d, res):
    # The pregreet test itself (delays, memory, trusted networks) is in
    # smtp_pregreet.py; loopback is trusted by default, so both greet at once.
    for role in ("smtp", "submission"):
        t0 = time.time()
        c = Raw(d.port(role))
        res.check(c.greeting[0] == 220 and time.time() - t0 < 0.5,
                  "%s greets a loopback client at once" % role)
        c.close()


def test_pipelining(d, res):
    c = Raw(d.port("smtp"))
    c.cmd("EHLO pipe.test")
    body = b"Subject: pipelined\r\n\r\n..leading dot\r\nline\r\n"
    c.send(b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nRCPT TO:<nobody@example.test>\r\n"
           b"RCPT TO:<%s>\r\nRCPT TO:<x@outside.test>\r\nDATA\r\n" % (
               OUTSIDE.encode(), USER.encode(), USER2.encode())
           + body + b".\r\nRSET\r\nNOOP\r\nMAIL FROM:<>\r\nRCPT TO:<%s>\r\nDATA\r\n"
           b"Subject: second\r\n\r\nx\r\n.\r\nQUIT\r\n" % USER.encode())
    got = [c.reply()[0] for _ in range(14)]
    want = [250, 250, 550, 250, 554, 354, 250, 250, 250, 250, 250, 354, 250, 221]
    res.check(got == want, "pipelining: one write, replies in order %s" % got)
    res.check(c.closed(), "pipelining: closed after QUIT")
    a = [m for m in maildir_messages(d, USER) if b"Subject: pipelined" in m]
    b = [m for m in maildir_messages(d, USER2) if b"Subject: pipelined" in m]
    res.check(len(a) == 1 and len(b) == 1 and a[0].endswith(b"\r\n\r\n.leading dot\r\nline\r\n"),
              "pipelining: delivered once to each, dot unstuffed")
    res.check(b"\tfor <" not in a[0].split(b"\r\n\r\n")[0],
              "two recipients: no 'for' clause in Received:")
    res.check(len([m for m in maildir_messages(d, USER) if b"Subject: second" in m]) == 1,
              "pipelining: the second transaction (null sender) delivered")


SMUGGLE = [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r", b"\n.\r", b"\r.\n",
           b"\r\n\x00.\r\n"]


def smuggle(d, res, mode):
    """Each variant: one reply to the data, then QUIT's; one message or none."""
    for i, v in enumerate(SMUGGLE):
        c = Raw(d.port("smtp"))
        c.cmd("EHLO smuggler.test")
        c.cmd("MAIL FROM:<%s>" % OUTSIDE)
        c.cmd("RCPT TO:<%s>" % USER)
        c.cmd("DATA")
        c.send(b"Subject: outer %s %d\r\n\r\nHi" % (mode.encode(), i) + v +
               b"MAIL FROM:<evil@outside.test>\r\nRCPT TO:<%s>\r\nDATA\r\n"
               b"Subject: smuggled %s %d\r\n\r\nevil\r\n.\r\nQUIT\r\n" % (USER.encode(), mode.encode(), i))
        r1 = c.reply()
        r2 = c.reply()
        c.close()
        msgs = maildir_messages(d, USER)
        inner = [m for m in msgs if m.split(b"\r\n\r\n")[0].find(b"Subject: smuggled %s %d" % (mode.encode(), i)) >= 0]
        outer = [m for m in msgs if b"Subject: outer %s %d\r\n" % (mode.encode(), i) in m]
        if mode == "reject" or v.find(b"\x00") >= 0:
            ok = r1[0] == 554 and r1[1][0].startswith("5.6.0") and r2[0] == 221 and not outer
        else:
            ok = r1[0] == 250 and r2[0] == 221 and len(outer) == 1 and b"MAIL FROM:<evil" in outer[0]
        res.check(ok and not inner, "smuggling %s variant %r: one message, not two (%s / %s)" % (
            mode, v, r1, r2[0]))


def test_bdat(d, res):
    c = Raw(d.port("smtp"))
    c.cmd("EHLO chunky.test")
    c.cmd("MAIL FROM:<%s>" % OUTSIDE)
    c.cmd("RCPT TO:<%s>" % USER)
    part1 = b"Subject: bdat\r\n\r\n.dot stays\r\n"
    part2 = b"last line\r\n"
    c.send(b"BDAT %d\r\n" % len(part1) + part1)
    r1 = c.reply()
    c.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
    r2 = c.reply()
    res.check(r1[0] == 250 and r2[0] == 250 and r2[1][0].startswith("2.0.0"), "BDAT: two chunks accepted")
    m = [x for x in maildir_messages(d, USER) if b"Subject: bdat\r\n" in x]
    res.check(len(m) == 1 and m[0].endswith(part1[15:] + part2), "BDAT: content stored exactly")
    # a refused chunk is read, not executed
    evil = b"QUIT\r\nNOOP\r\n"
    c.send(b"BDAT %d\r\n" % len(evil) + evil)
    r = c.reply()
    res.check(r[0] == 503 and c.cmd("NOOP")[0] == 250, "BDAT without a transaction: 503, chunk skipped")
    c.send(b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nBDAT 0 LAST\r\n" % (OUTSIDE.encode(), USER.encode()))
    got = [c.reply()[0] for _ in range(3)]
    res.check(got == [250, 250, 250], "BDAT 0 LAST pipelined after MAIL and RCPT: %s" % got)
    c.send(b"MAIL FROM:<%s>\r\nRCPT TO:<nobody@example.test>\r\nBDAT 4 LAST\r\nabcd" % OUTSIDE.encode())
    got = [c.reply()[0] for _ in range(3)]
    res.check(got == [250, 550, 554], "BDAT with no valid recipient: 554 after the chunk: %s" % got)
    c.cmd("RSET")
    c.send(b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nBDAT 3\r\nab\nBDAT 2 LAST\r\nxy" % (
        OUTSIDE.encode(), USER.encode()))
    got = [c.reply() for _ in range(4)]
    res.check([g[0] for g in got] == [250, 250, 554, 503] and got[2][1][0].startswith("5.6.0"),
              "BDAT: a chunk with a bare LF fails the transaction, the next chunk is 503: %s" % got)
    code, _ = c.cmd("DATA")
    res.check(code == 503, "DATA after a finished BDAT transaction: 503")
    c.send(b"BDAT ten\r\n")
    r = c.reply()
    res.check(r[0] == 501 and c.reply()[0] == 421 and c.closed(), "BDAT with a bad size: 501 and close")


def test_bad_input(d, res):
    c = Raw(d.port("smtp"))
    res.check(enhanced(c.cmd("MAIL FROM:<a@b.test>"), 503, "5.5.1"), "MAIL before EHLO: 503 5.5.1")
    c.cmd("EHLO bad.test")
    checks = [
        (b"FOO bar", 500, "5.5.2", "unknown command"),
        (b"NOOP \x00 x", 500, "5.5.2", "NUL in a command"),
        (b"NOOP " + b"x" * 3000, 500, "5.5.2", "over-long line"),
        (b"MAIL FROM:<a b@c.test>", 501, "5.1.7", "malformed sender"),
        (b"MAIL FROM:<a@b.test> FOO=1", 555, "5.5.4", "unknown MAIL parameter"),
        (b"MAIL FROM:<a@b.test> SIZE=x", 501, "5.5.4", "bad SIZE"),
        (b"MAIL FROM:<j\xc3\xb6rg@b.test>", 553, "5.6.7", "UTF-8 sender without SMTPUTF8"),
        (b"RCPT TO:<%s>" % USER.encode(), 503, "5.5.1", "RCPT before MAIL"),
        (b"DATA", 503, "5.5.1", "DATA before MAIL"),
        (b"VRFY", 501, "5.5.4", "VRFY without argument"),
        (b"EXPN list", 502, "5.5.1", "EXPN"),
    ]
    for line, code, ext, what in checks:
        res.check(enhanced(c.cmd(line), code, ext), "bad input: %s -> %d %s" % (what, code, ext))
        c.cmd("NOOP")  # a good command resets the count of bad ones
    res.check(enhanced(c.cmd("VRFY alice"), 252, "2.5.0"), "VRFY: 252 2.5.0, nothing disclosed")
    res.check(enhanced(c.cmd("HELP"), 214, "2.0.0"), "HELP: 214")
    res.check(enhanced(c.cmd("MAIL FROM:<%s> RET=HDRS ENVID=QQ314159 BODY=8BITMIME" % OUTSIDE), 250,
                       "2.1.0"), "DSN RET/ENVID and BODY accepted on MAIL")
    res.check(enhanced(c.cmd("RCPT TO:<%s> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;%s" % (USER, USER)),
                       250, "2.1.5"), "DSN NOTIFY/ORCPT accepted on RCPT")
    res.check(enhanced(c.cmd("RCPT TO:<%s> NOTIFY=NEVER,DELAY" % USER), 501, "5.5.4"),
              "bad NOTIFY: 501 5.5.4")
    res.check(enhanced(c.cmd("RCPT TO:<Postmaster>"), 250, "2.1.5"), "RCPT TO:<Postmaster> accepted")
    res.check(enhanced(c.cmd("MAIL FROM:<%s>" % OUTSIDE), 503, "5.5.1"), "nested MAIL: 503 5.5.1")
    c.send(b"DATA\r\nSubject: bare\r\n\r\nbare\nLF\r\n.\r\n")
    res.check(c.reply()[0] == 354 and enhanced(c.reply(), 554, "5.6.0"), "bare LF in data: 554 5.6.0")
    res.check(enhanced(c.cmd("NOOP"), 250, "2.0.0"), "session goes on after errors")
    res.check(not [m for m in maildir_messages(d, USER) if b"Subject: bare" in m],
              "the bare-LF message is not stored")
    for i in range(9):
        c.cmd("BOGUS %d" % i)
    code, _ = c.cmd("BOGUS 9")
    res.check(code == 500 and c.reply()[0] == 421 and c.closed(),
              "10 bad commands in a row: 421 4.7.0 and close")

    c = Raw(d.port("smtp"))
    c.cmd("EHLO many.test")
    c.cmd("MAIL FROM:<%s>" % OUTSIDE)
    c.send(b"".join(b"RCPT TO:<%s>\r\n" % USER.encode() for _ in range(101)))
    got = [c.reply() for _ in range(101)]
    res.check(all(g[0] == 250 for g in got[:100]) and enhanced(got[100], 452, "4.5.3"),
              "101st recipient: 452 4.5.3")
    c.close()


def auth_plain(c, user, password):
    return c.cmd("AUTH PLAIN " + base64.b64encode(b"\0" + user.encode() + b"\0" +
                                                  password.encode()).decode())


def test_starttls_and_submission(d, res):
    c = Raw(d.port("submission"))
    c.cmd("EHLO sub.test")
    c.send(b"STARTTLS\r\nMAIL FROM:<injected@outside.test>\r\n")
    code, _ = c.reply()
    if code == 220:
        c.sock = tls_context().wrap_socket(c.sock)
        c.buf = b""
    c.cmd("EHLO sub.test")
    res.check(enhanced(auth_plain(c, USER, PASSWORD), 235, "2.7.0"), "AUTH PLAIN after STARTTLS: 235")
    res.check(enhanced(c.cmd("RCPT TO:<%s>" % USER), 503, "5.5.1"),
              "STARTTLS: the pipelined plaintext MAIL was discarded")
    res.check(enhanced(auth_plain(c, USER, PASSWORD), 503, "5.5.1"), "second AUTH: 503")
    res.check(enhanced(c.cmd("MAIL FROM:<%s>" % USER2), 553, "5.7.1"),
              "MAIL FROM another user's address: 553 5.7.1")
    c.cmd("MAIL FROM:<%s>" % USER)
    c.cmd("RCPT TO:<%s>" % USER2)
    c.cmd("DATA")
    c.send(b"From: Bob <%s>\r\nSubject: forged from\r\n\r\nx\r\n.\r\n" % USER2.encode())
    res.check(enhanced(c.reply(), 553, "5.7.1"), "From: header not owned: 553 5.7.1 after DATA")
    c.cmd("MAIL FROM:<%s>" % USER)
    c.cmd("RCPT TO:<%s>" % USER2)
    c.cmd("DATA")
    c.send(b"Subject: no from\r\n\r\nx\r\n.\r\n")
    res.check(enhanced(c.reply(), 550, "5.6.0"), "no From: header on submission: 550 5.6.0")
    c.cmd("MAIL FROM:<%s>" % USER)
    c.cmd("RCPT TO:<%s>" % USER2)
    c.cmd("DATA")
    c.send(b"From: \"Alice A.\" <%s>\r\nSubject: own from\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
           b"Message-ID: <fixed@client>\r\n\r\nx\r\n.\r\n" % USER.upper().encode())
    res.check(enhanced(c.reply(), 250, "2.0.0"), "own From: (any case, display name) accepted")
    m = [x for x in maildir_messages(d, USER2) if b"Subject: own from" in x]
    res.check(len(m) == 1 and m[0].count(b"Message-ID:") == 1 and m[0].count(b"\r\nDate:") == 1,
              "Date and Message-ID present are not added again")
    c.close()
    forged = [x for x in maildir_messages(d, USER2) if b"Subject: forged from" in x]
    res.check(not forged, "the forged From: message is not stored")


def test_utf8_alias_quota(d, res):
    d.cli("alias", "add", "team@example.test", USER, USER2)
    d.cli("alias", "add", "fwd@example.test", USER, "friend@outside.test")
    c = Raw(d.port("smtp"))
    c.cmd("EHLO utf8.test")
    res.check(enhanced(c.cmd("MAIL FROM:<j\u00f6rg@outside.test> SMTPUTF8"), 250, "2.1.0"),
              "SMTPUTF8 sender accepted with the parameter")
    res.check(enhanced(c.cmd("RCPT TO:<team@example.test>"), 250, "2.1.5"), "alias to local users")
    c.cmd("DATA")
    c.send("Subject: utf8 \u00e4\r\n\r\nk\u00f6rper\r\n.\r\n".encode())
    res.check(enhanced(c.reply(), 250, "2.0.0"), "SMTPUTF8 message delivered")
    a = [m for m in maildir_messages(d, USER) if "Subject: utf8 \u00e4".encode() in m]
    b = [m for m in maildir_messages(d, USER2) if "Subject: utf8 \u00e4".encode() in m]
    res.check(len(a) == 1 and len(b) == 1 and b" with UTF8SMTP id " in a[0],
              "alias expands to both users, Received: says UTF8SMTP")
    # forwarded through the outbound queue (smtp_queue.py delivers one);
    # no DATA here, so nothing is queued
    res.check(enhanced(c.cmd("MAIL FROM:<%s>" % OUTSIDE), 250, "2.1.0") and
              enhanced(c.cmd("RCPT TO:<fwd@example.test>"), 250, "2.1.5"),
              "alias with an outside target: accepted for forwarding")
    c.close()
    r = d.cli("user", "quota", USER2, "10K", check=False)
    if r.returncode == 0:
        c = Raw(d.port("smtp"))
        c.cmd("EHLO quota.test")
        c.cmd("MAIL FROM:<%s> SIZE=50000" % OUTSIDE)
        res.check(enhanced(c.cmd("RCPT TO:<%s>" % USER2), 452, "4.2.2"),
                  "RCPT over the user's quota with SIZE: 452 4.2.2")
        c.cmd("RSET")
        c.cmd("MAIL FROM:<%s>" % OUTSIDE)
        c.cmd("RCPT TO:<%s>" % USER2)
        c.cmd("DATA")
        c.send(b"Subject: big\r\n\r\n" + b"x" * 70 + b"\r\n" + (b"y" * 998 + b"\r\n") * 20 + b".\r\n")
        res.check(enhanced(c.reply(), 452, "4.2.2"), "message over the quota at the end: 452 4.2.2")
        c.close()
        d.cli("user", "quota", USER2, "0")
    else:
        res.check(False, "postern user quota works: %s" % r.stderr.decode(errors="replace"))


def test_helo_and_auth_edges(d, res):
    c = Raw(d.port("smtp"))
    code, texts = c.cmd("HELO old.test")
    res.check(code == 250 and not texts[0][:1].isdigit(), "HELO: 250 without an enhanced code")
    res.check(enhanced(c.cmd("MAIL FROM:<%s> SIZE=10" % OUTSIDE), 555, "5.5.4"),
              "MAIL parameters after HELO: 555 5.5.4")
    c.cmd("MAIL FROM:<%s>" % OUTSIDE)
    c.cmd("RCPT TO:<%s>" % USER)
    c.cmd("DATA")
    c.send(b"Subject: via helo\r\n\r\nx\r\n.\r\n")
    c.reply()
    m = [x for x in maildir_messages(d, USER) if b"Subject: via helo" in x]
    res.check(len(m) == 1 and b" with SMTP id " in m[0], "HELO session: Received: says SMTP")
    res.check(enhanced(c.cmd("AUTH PLAIN"), 502, "5.5.1"), "AUTH on port 25: 502 5.5.1")
    c.close()
    c = Raw(d.port("submissions"), tls=True)
    c.cmd("EHLO edge.test")
    code, _ = c.cmd("AUTH PLAIN")
    res.check(code == 334 and enhanced(c.cmd("*"), 501, "5.7.0"), "AUTH cancelled with '*': 501")
    res.check(enhanced(c.cmd("AUTH CRAM-MD5"), 504, "5.5.4"), "unknown mechanism: 504 5.5.4")
    res.check(enhanced(c.cmd("AUTH PLAIN !!!"), 501, "5.5.2"), "bad base64: 501 5.5.2")
    c.close()


def test_throttle(d, res):
    """Failed logins are counted per address and account: after 5 the
    next ones are delayed (1 s, 2 s ...), after 3 in a session it closes."""
    c = Raw(d.port("submissions"), tls=True)
    c.cmd("EHLO guess.test")
    got = [auth_plain(c, USER, "wrong-%d" % i)[0] for i in range(3)]
    res.check(got == [535, 535, 421] and c.closed(),
              "3 failed AUTH in a session: 535, 535, then 421 and close (%s)" % got)
    c = Raw(d.port("submissions"), tls=True)
    c.cmd("EHLO guess.test")
    auth_plain(c, USER, "wrong-4")
    auth_plain(c, USER, "wrong-5")
    t0 = time.time()
    code, _ = auth_plain(c, USER, "wrong-6")
    res.check(code == 421 and time.time() - t0 >= 0.9,
              "the 6th failure in a row was delayed by the throttle (%.2f s)" % (time.time() - t0))
    c.close()
    c = Raw(d.port("submissions"), tls=True)
    c.cmd("EHLO guess.test")
    res.check(enhanced(auth_plain(c, USER, PASSWORD), 235, "2.7.0"),
              "the right password still works after a delay")
    c.close()


def test_stop(d, res):
    c = Raw(d.port("smtp"))
    c.cmd("EHLO stop.test")
    d.proc.send_signal(signal.SIGTERM)
    code, texts = c.reply()
    res.check(code == 421 and texts[0].startswith("4.3.2"), "SIGTERM: idle session gets 421 4.3.2")
    res.check(c.closed(), "SIGTERM: the session is closed")
    d.proc.wait(timeout=15)
    res.check(d.proc.returncode == 0, "daemon exits 0 after SIGTERM")


def main():
    if len(sys.argv) < 2:
        print("usage: smtp_protocol.py POSTERN")
        return 2
    res = Results()
    with Daemon(sys.argv[1], roles=ROLES) as d:
        d.add_user(USER, PASSWORD)
        d.add_user(USER2, PASSWORD2)
        test_greetings(d, res)
        test_pipelining(d, res)
        smuggle(d, res, "reject")
        test_bdat(d, res)
        test_bad_input(d, res)
        test_starttls_and_submission(d, res)
        test_utf8_alias_quota(d, res)
        test_helo_and_auth_edges(d, res)
        test_throttle(d, res)
        test_stop(d, res)
    d = Daemon(sys.argv[1], roles=("smtp", "submission"), extra_config="smtp_bare_lf = normalise\n")
    with open(d.conf) as f:
        text = f.read()
    with open(d.conf, "w") as f:
        f.write(text.replace("allow_plaintext_auth_on_loopback = no",
                             "allow_plaintext_auth_on_loopback = yes"))
    with d:
        d.add_user(USER, PASSWORD)
        smuggle(d, res, "normalise")
        c = Raw(d.port("submission"))
        code, texts = c.cmd("EHLO plain.test")
        res.check("AUTH PLAIN LOGIN" in texts and "STARTTLS" in texts,
                  "plaintext AUTH on loopback offered when allowed")
        res.check(enhanced(auth_plain(c, USER, PASSWORD), 235, "2.7.0") and
                  enhanced(c.cmd("MAIL FROM:<%s>" % USER), 250, "2.1.0"),
                  "plaintext AUTH on loopback works when allowed")
        c.close()
        n = len(maildir_files(d, USER))
        res.check(n == len(SMUGGLE) - 1, "normalise: %d messages for %d variants (NUL refused)" % (
            n, len(SMUGGLE)))
    res.finish()


if __name__ == "__main__":
    sys.exit(main())
