"""POP3 end to end against the real daemon: STLS and implicit TLS, login
policy, USER/PASS and AUTH PLAIN/LOGIN, every TRANSACTION command, sizes
against the bytes sent, byte-stuffing round trips, the snapshot, [IN-USE],
deletions only at QUIT, UIDL across `postern reindex`, pipelining, bad
input, the error limit, the idle timeout and the graceful stop.

Usage: pop3_protocol.py /path/to/postern
"""
import base64
import os
import poplib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postern_test import Daemon, Results  # noqa: E402
from pop3_util import (USER, PASSWORD, USER2, PASSWORD2, Raw, unstuff, deliver,  # noqa: E402
                       make_msg, maildir_files, tls_context)

IDLE_TIMEOUT = 60  # the configuration's minimum


def b64(data):
    return base64.b64encode(data).decode()


def tls_session(d, user=USER, password=PASSWORD):
    c = Raw(d.port("pop3s"), tls=True)
    r = c.login(user, password)
    if not r.startswith(b"+OK"):
        raise AssertionError("login failed: %r" % r)
    return c


def test_policy_and_stls(d, res):
    c = Raw(d.port("pop3"))
    res.check(c.greeting.startswith(b"+OK"), "greeting is +OK")
    st, caps = c.lines("CAPA")
    caps = caps or []
    res.check(st.startswith(b"+OK"), "CAPA answers +OK")
    for want in (b"TOP", b"UIDL", b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING",
                 b"STLS", b"IMPLEMENTATION Postern"):
        res.check(want in caps, "CAPA before TLS lists %s" % want.decode())
    res.check(b"USER" not in caps and not any(x.startswith(b"SASL") for x in caps),
              "CAPA before TLS hides USER and SASL (plaintext login not allowed)")
    r = c.cmd("USER " + USER)
    res.check(r.startswith(b"-ERR [AUTH]"), "USER before STLS refused with [AUTH]: %r" % r)
    r = c.cmd("AUTH PLAIN " + b64(b"\0" + USER.encode() + b"\0" + PASSWORD.encode()))
    res.check(r.startswith(b"-ERR [AUTH]"), "AUTH before STLS refused with [AUTH]: %r" % r)
    r = c.cmd("PASS " + PASSWORD)
    res.check(r.startswith(b"-ERR"), "PASS before STLS refused")
    r = c.cmd("STAT")
    res.check(r.startswith(b"-ERR"), "STAT in AUTHORIZATION state is -ERR")

    # STLS with a command pipelined behind it: the command must be dropped.
    c.send(b"STLS\r\nUSER injected@example.test\r\n")
    r = c.line()
    res.check(r.startswith(b"+OK"), "STLS answers +OK")
    c.starttls()
    st, caps = c.lines("CAPA")
    res.check(st.startswith(b"+OK Capability"),
              "first answer after TLS is CAPA's (pipelined bytes discarded): %r" % st)
    caps = caps or []
    res.check(b"USER" in caps and b"SASL PLAIN LOGIN" in caps, "CAPA after TLS offers USER and SASL")
    res.check(b"STLS" not in caps, "CAPA after TLS no longer offers STLS")
    r = c.cmd("PASS " + PASSWORD)
    res.check(r.startswith(b"-ERR"), "PASS without USER after TLS is refused: %r" % r)
    r = c.cmd("STLS")
    res.check(r.startswith(b"-ERR"), "second STLS refused")
    r = c.login(USER, "wrong-password")
    res.check(r.startswith(b"-ERR [AUTH]"), "wrong password gives -ERR [AUTH]: %r" % r)
    r = c.login()
    res.check(r.startswith(b"+OK"), "USER/PASS after STLS logs in: %r" % r)
    st, caps = c.lines("CAPA")
    res.check(st.startswith(b"+OK") and b"USER" not in (caps or []) and b"STLS" not in (caps or []),
              "CAPA in TRANSACTION lists no login capabilities")
    r = c.cmd("QUIT")
    res.check(r.startswith(b"+OK"), "QUIT answers +OK")
    res.check(c.closed(), "connection closed after QUIT")
    c.close()

    # poplib's own STLS
    p = poplib.POP3("127.0.0.1", d.port("pop3"), timeout=15)
    p.stls(context=tls_context())
    p.user(USER)
    p.pass_(PASSWORD)
    res.check(p.stat()[0] >= 1, "poplib STLS login and STAT")
    p.quit()


def test_sasl(d, res):
    c = Raw(d.port("pop3s"), tls=True)
    st, mechs = c.lines("AUTH")
    res.check(st.startswith(b"+OK") and mechs == [b"PLAIN", b"LOGIN"], "AUTH alone lists PLAIN LOGIN")
    r = c.cmd("AUTH XOAUTH2")
    res.check(r.startswith(b"-ERR"), "unknown mechanism refused")
    r = c.cmd("AUTH PLAIN")
    res.check(r == b"+ ", "AUTH PLAIN without initial response sends an empty challenge: %r" % r)
    r = c.cmd("*")
    res.check(r.startswith(b"-ERR"), "'*' cancels the exchange with -ERR")
    r = c.cmd("AUTH PLAIN")
    r = c.cmd("!!!notbase64")
    res.check(r.startswith(b"-ERR") and b"base64" in r, "bad base64 gets -ERR: %r" % r)
    r = c.cmd("AUTH PLAIN =")
    res.check(r.startswith(b"-ERR"), "AUTH PLAIN = (empty response) fails: %r" % r)
    r = c.cmd("NOOP")
    res.check(r.startswith(b"+OK"), "session goes on after failed AUTH")
    r = c.cmd("AUTH PLAIN " + b64(b"\0" + USER.encode() + b"\0" + PASSWORD.encode()))
    res.check(r.startswith(b"+OK"), "AUTH PLAIN with initial response logs in: %r" % r)
    c.cmd("QUIT")
    c.close()

    c = Raw(d.port("pop3s"), tls=True)
    r = c.cmd("AUTH PLAIN")
    r = c.cmd(b64(b"\0" + USER.upper().encode() + b"\0" + PASSWORD.encode()))
    res.check(r.startswith(b"+OK"), "AUTH PLAIN with continuation (upper-case user) logs in: %r" % r)
    c.cmd("QUIT")
    c.close()

    c = Raw(d.port("pop3s"), tls=True)
    r1 = c.cmd("AUTH LOGIN")
    r2 = c.cmd(b64(USER.encode()))
    r3 = c.cmd(b64(PASSWORD.encode()))
    res.check(r1 == b"+ VXNlcm5hbWU6" and r2 == b"+ UGFzc3dvcmQ6" and r3.startswith(b"+OK"),
              "AUTH LOGIN exchange: %r %r %r" % (r1, r2, r3))
    c.cmd("QUIT")
    c.close()

    c = Raw(d.port("pop3s"), tls=True)
    r1 = c.cmd("AUTH LOGIN " + b64(USER.encode()))
    r2 = c.cmd(b64(PASSWORD.encode()))
    res.check(r1 == b"+ UGFzc3dvcmQ6" and r2.startswith(b"+OK"),
              "AUTH LOGIN with initial response: %r %r" % (r1, r2))
    c.cmd("QUIT")
    c.close()


def test_transaction(d, res, dotmsg, bigmsg):
    # poplib over implicit TLS (995 role)
    p = poplib.POP3_SSL("127.0.0.1", d.port("pop3s"), context=tls_context(), timeout=30)
    p.user(USER)
    p.pass_(PASSWORD)
    count, octets = p.stat()
    res.check(count == 4, "STAT counts 4 messages (%d)" % count)
    resp, listing, _ = p.list()
    sizes = [int(x.split()[1]) for x in listing]
    res.check(len(sizes) == 4 and sum(sizes) == octets, "LIST sizes add up to STAT")
    resp, uidls, _ = p.uidl()
    res.check(len(uidls) == 4, "UIDL lists 4 messages")
    resp, lines, _ = p.top(1, 0)
    res.check(b"" in lines and lines[-1] == b"" and any(l.startswith(b"Subject:") for l in lines),
              "TOP 1 0 gives the header and the empty line")
    p.quit()

    c = tls_session(d)
    st, listing = c.lines("LIST")
    sizes = {int(a): int(b) for a, b in (x.split() for x in listing)}
    files = maildir_files(d)
    for n in sorted(sizes):
        st, body = c.multi("RETR %d" % n)
        res.check(st == b"+OK %d octets" % sizes[n], "RETR %d status gives the LIST size" % n)
        res.check(len(body) == sizes[n], "RETR %d sends exactly the LIST size (%d vs %d)"
                  % (n, len(body), sizes[n]))
    # message 3: dot lines round trip byte for byte against the stored file
    st, body = c.multi("RETR 3")
    stored = None
    for f in files:
        with open(f, "rb") as fh:
            data = fh.read()
        if b"dot-lines" in data:
            stored = data
    if stored is not None and not stored.endswith(b"\r\n"):
        stored += b"\r\n"  # RETR ends the last line
    res.check(stored is not None and unstuff(body) == stored,
              "a message with '.' lines round-trips byte for byte")
    res.check(b"\r\n..\r\n" in body and b"\r\n....hidden\r\n" in body, "dot lines are stuffed on the wire")
    # message 4: 6 MB streamed
    st, body = c.multi("RETR 4")
    big_stored = [f for f in files if os.path.getsize(f) > 1000000]
    ok = False
    if big_stored:
        with open(big_stored[0], "rb") as fh:
            ok = unstuff(body) == fh.read()
    res.check(ok and len(body) == sizes[4], "a 6 MB message streams intact with its LIST size")
    st, body = c.multi("TOP 3 2")
    hdr, _, rest = body.partition(b"\r\n\r\n")
    res.check(st.startswith(b"+OK") and rest == b"first\r\n..\r\n", "TOP 3 2: header + 2 stuffed body lines: %r" % rest)
    st, body = c.multi("TOP 3 0")
    res.check(body.endswith(b"\r\n\r\n") and body.count(b"\r\n\r\n") == 1, "TOP 3 0: header and empty line only")
    r = c.cmd("UIDL 2")
    st, uids = c.lines("UIDL")
    uidmap = dict(x.split() for x in uids)
    base = {os.path.basename(f).split(":2,")[0] for f in files}
    res.check(set(x.decode() for x in uidmap.values()) == base,
              "UIDL values are the Maildir base names")
    res.check(r == b"+OK 2 " + uidmap[b"2"], "UIDL 2 matches the listing")
    r = c.cmd("DELE 2")
    res.check(r.startswith(b"+OK"), "DELE 2")
    r = c.cmd("DELE 2")
    res.check(r.startswith(b"-ERR"), "DELE of a deleted message is -ERR")
    for bad in ("RETR 2", "LIST 2", "UIDL 2", "TOP 2 1"):
        r = c.cmd(bad)
        res.check(r.startswith(b"-ERR"), "%s of a deleted message is -ERR" % bad)
    st, listing = c.lines("LIST")
    res.check([x.split()[0] for x in listing] == [b"1", b"3", b"4"], "LIST skips the deleted message")
    r = c.cmd("STAT")
    res.check(r.startswith(b"+OK 3 "), "STAT leaves the deleted message out: %r" % r)
    r = c.cmd("RSET")
    res.check(r.startswith(b"+OK"), "RSET")
    r = c.cmd("STAT")
    res.check(r.startswith(b"+OK 4 "), "RSET unmarks: %r" % r)
    # dropped connection: nothing deleted
    c.cmd("DELE 1")
    c.cmd("DELE 2")
    c.close()
    time.sleep(0.5)
    res.check(len(maildir_files(d)) == 4, "a dropped connection deletes nothing")
    c = tls_session(d)
    r = c.cmd("STAT")
    res.check(r.startswith(b"+OK 4 "), "all 4 messages still there after the drop: %r" % r)
    c.send(b"RETR 4\r\n")
    c._fill()
    c.close()  # mid-stream
    c = tls_session(d)
    r = c.cmd("NOOP")
    res.check(r.startswith(b"+OK"), "a session dropped in the middle of RETR frees its lock")
    c.cmd("QUIT")
    c.close()


def test_snapshot_inuse_uidl(d, res):
    c = tls_session(d)
    st0 = c.cmd("STAT")
    deliver(d, make_msg("arrived during the session"))
    r = c.cmd("STAT")
    res.check(r == st0, "mail arriving during a session is not in it")
    st, listing = c.lines("LIST")
    res.check(len(listing) == int(st0.split()[1]), "LIST shows the login snapshot only")

    # a second session for the same user
    c2 = Raw(d.port("pop3s"), tls=True)
    r = c2.login()
    res.check(r.startswith(b"-ERR [IN-USE]"), "second session gets -ERR [IN-USE]: %r" % r)
    r = c2.cmd("NOOP")
    res.check(r.startswith(b"+OK"), "the refused session stays in AUTHORIZATION")
    # another user is not locked out
    c3 = Raw(d.port("pop3s"), tls=True)
    r = c3.login(USER2, PASSWORD2)
    res.check(r.startswith(b"+OK"), "another user logs in meanwhile")
    c3.cmd("QUIT")
    c3.close()
    c.cmd("QUIT")
    c.close()
    r = c2.login()
    res.check(r.startswith(b"+OK"), "after QUIT the lock is free")
    r = c2.cmd("STAT")
    res.check(r.split()[1] == str(int(st0.split()[1]) + 1).encode(), "the next session sees the new mail")
    st, before = c2.lines("UIDL")
    c2.cmd("QUIT")
    c2.close()

    d.cli("reindex", USER)
    c = tls_session(d)
    st, after = c.lines("UIDL")
    res.check(before == after and len(after) >= 5, "UIDL identical before and after postern reindex")
    c.cmd("QUIT")
    c.close()


def test_quit_deletes(d, res):
    c = tls_session(d)
    n = int(c.cmd("STAT").split()[1])
    before = maildir_files(d)
    r1 = c.cmd("DELE 1")
    r2 = c.cmd("DELE %d" % n)
    r = c.cmd("QUIT")
    res.check(r1.startswith(b"+OK") and r2.startswith(b"+OK") and r.startswith(b"+OK"),
              "DELE, DELE, QUIT: %r" % r)
    res.check(c.closed(), "closed after QUIT")
    c.close()
    after = maildir_files(d)
    res.check(len(after) == len(before) - 2, "QUIT removed exactly the 2 marked files (%d -> %d)"
              % (len(before), len(after)))
    c = tls_session(d)
    r = c.cmd("STAT")
    res.check(r.split()[1] == str(n - 2).encode(), "the next session has 2 fewer messages")
    c.cmd("QUIT")
    c.close()
    res.check("deleted=2" in d.log(), "the deletion is logged")


def test_retr_order(d, res):
    """RETR answers from the read-ahead, out of order, after DELE, and for
    a large message without lines to stuff (sent as stored, in chunks),
    always the stored bytes with the LIST size."""
    c = tls_session(d, USER2, PASSWORD2)
    st, listing = c.lines("LIST")
    sizes = {int(a): int(b) for a, b in (x.split() for x in listing)}
    files = {}
    for f in maildir_files(d, USER2):
        with open(f, "rb") as fh:
            data = fh.read()
        files[data.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0]] = data
    res.check(len(sizes) == 6, "bob has 6 messages (%d)" % len(sizes))

    def retr(n, subject, what):
        st, body = c.multi("RETR %d" % n)
        want = files.get(subject, b"")
        if not want.endswith(b"\r\n"):
            want += b"\r\n"
        res.check(st == b"+OK %d octets" % sizes[n] and len(body) == sizes[n]
                  and unstuff(body) == want, "RETR %d (%s) sends the stored bytes" % (n, what))

    retr(1, b"r1", "reads ahead")
    res.check(c.cmd("DELE 2").startswith(b"+OK"), "DELE 2 of a message read ahead")
    res.check(c.cmd("RETR 2").startswith(b"-ERR"), "RETR of it is -ERR")
    retr(3, b"r3", "read ahead, after a deleted one")
    retr(4, b"r4 big", "400 KB, nothing to stuff")
    retr(6, b"r6", "skipping one")
    retr(5, b"r5", "going back")
    retr(3, b"r3", "again")
    st, body = c.multi("TOP 5 1")
    res.check(body.endswith(b"\r\n\r\n..a\r\n"), "TOP after RETRs: %r" % body[-20:])
    c.cmd("RSET")
    c.cmd("QUIT")
    c.close()


def test_pipelining(d, res):
    c = Raw(d.port("pop3s"), tls=True)
    c.send(("USER %s\r\nPASS %s\r\nSTAT\r\nLIST\r\nUIDL 1\r\nRETR 1\r\nNOOP\r\nBOGUS\r\nQUIT\r\n"
            % (USER, PASSWORD)).encode())
    ok = [c.line(), c.line()]
    stat = c.line()
    lst = c.line()
    body = c.until_dot()
    uidl = c.line()
    retr = c.line()
    msg = c.until_dot()
    noop = c.line()
    bogus = c.line()
    quit_ = c.line()
    res.check(all(x.startswith(b"+OK") for x in ok + [stat, lst, uidl, retr, noop, quit_]),
              "pipelined commands in one write are answered in order")
    res.check(len(msg) > 0 and bogus.startswith(b"-ERR"), "pipelined RETR body and error in place")
    res.check(c.closed(), "closed after pipelined QUIT")
    c.close()


def test_bad_input(d, res):
    c = tls_session(d)
    n = int(c.cmd("STAT").split()[1])
    cases = [
        (b"FOO", "unknown command"),
        (b"USER x", "USER in TRANSACTION"),
        (b"STLS", "STLS in TRANSACTION"),
        (b"RETR 0", "message number 0"),
        (("RETR %d" % (n + 1)).encode(), "message number past the end"),
        (b"RETR abc", "non-numeric message number"),
        (b"RETR -1", "negative message number"),
        (b"RETR", "missing argument"),
        (b"RETR 1 2", "extra argument"),
        (b"TOP 1", "TOP without line count"),
        (b"TOP 1 x", "TOP with a bad line count"),
        (b"LIST 99999999999999999999999", "huge number"),
        (b"NOOP\x00", "NUL byte"),
        (b"X" * 2000, "over-long line"),
        (b"", "empty line"),
    ]
    for line, what in cases:
        r = c.cmd(line)
        res.check(r.startswith(b"-ERR"), "%s: -ERR (%r)" % (what, r[:60]))
        r = c.cmd("NOOP")
        res.check(r.startswith(b"+OK"), "session goes on after %s" % what)
    c.cmd("QUIT")
    c.close()

    # ten errors in a row end the session
    c = Raw(d.port("pop3s"), tls=True)
    answers = [c.cmd("BOGUS%d" % i) for i in range(10)]
    last = c.line()
    res.check(all(a.startswith(b"-ERR") for a in answers) and last == b"-ERR Too many errors",
              "after 10 errors: -ERR Too many errors (%r)" % last)
    res.check(c.closed(), "and the connection closes")
    c.close()
    # nine errors and a good command reset the count
    c = Raw(d.port("pop3s"), tls=True)
    for i in range(9):
        c.cmd("BOGUS")
    c.cmd("NOOP")
    for i in range(9):
        c.cmd("BOGUS")
    r = c.cmd("NOOP")
    res.check(r.startswith(b"+OK"), "errors separated by a good command do not close")
    c.cmd("QUIT")
    c.close()


def main():
    if len(sys.argv) != 2:
        print("usage: pop3_protocol.py POSTERN")
        sys.exit(2)
    res = Results()
    d = Daemon(sys.argv[1], roles=("pop3", "pop3s"),
               extra_config="pop3_idle_timeout = %d\n" % IDLE_TIMEOUT)
    d.add_user(USER, PASSWORD)
    d.add_user(USER2, PASSWORD2)
    with d:
        idle = Raw(d.port("pop3"))  # stays silent until the idle timeout
        idle_since = time.time()
        deliver(d, make_msg("first"))
        deliver(d, make_msg("second", body="Line\r\n"))
        dotmsg = make_msg("dot-lines", body="first\r\n.\r\n...hidden\r\n. space\r\nlast line no newline")
        deliver(d, dotmsg)
        line = b"." + b"x" * 98 + b"\r\n"
        bigmsg = make_msg("big", body=(line * 60000).decode())
        deliver(d, bigmsg)

        for k, body in ((1, "one\r\n"), (2, "two\r\n"), (3, ".dot\r\n..\r\nend"),
                        (4, ("y" * 98 + "\r\n") * 4000), (5, ".a\r\nb\r\n"), (6, "six\r\n")):
            deliver(d, make_msg("r%d%s" % (k, " big" if k == 4 else ""), body=body), user=USER2)
        for name, fn in (("policy_and_stls", lambda: test_policy_and_stls(d, res)),
                         ("sasl", lambda: test_sasl(d, res)),
                         ("transaction", lambda: test_transaction(d, res, dotmsg, bigmsg)),
                         ("snapshot_inuse_uidl", lambda: test_snapshot_inuse_uidl(d, res)),
                         ("quit_deletes", lambda: test_quit_deletes(d, res)),
                         ("retr_order", lambda: test_retr_order(d, res)),
                         ("pipelining", lambda: test_pipelining(d, res)),
                         ("bad_input", lambda: test_bad_input(d, res))):
            res.run(name, fn)

        # idle timeout
        left = IDLE_TIMEOUT + 5 - (time.time() - idle_since)
        if left > 0:
            time.sleep(left)
        try:
            r = idle.line()
        except (EOFError, OSError):
            r = b""
        res.check(r == b"-ERR Autologout; idle for too long", "idle timeout says goodbye: %r" % r)
        res.check(idle.closed(), "and closes")
        idle.close()

        # graceful stop: an idle session is told
        c = Raw(d.port("pop3s"), tls=True)
        c.cmd("NOOP")
        rc = d.stop()
        try:
            r = c.line()
        except (EOFError, OSError):
            r = b""
        res.check(r.startswith(b"-ERR [SYS/TEMP]"), "graceful stop says goodbye: %r" % r)
        res.check(rc == 0, "daemon exits 0 on SIGTERM (%s)" % rc)
        c.close()
        log = d.log()
        res.check("pop3 login user=alice@example.test" in log, "logins are logged")
        res.check("auth failed: proto=pop3 rip=127.0.0.1" in log, "failed logins are logged for fail2ban")
    res.finish()


if __name__ == "__main__":
    main()
