"""CONDSTORE and QRESYNC (RFC 7162) against the real daemon: MODSEQ in
FETCH, CHANGEDSINCE, UNCHANGEDSINCE with [MODIFIED], SEARCH MODSEQ,
HIGHESTMODSEQ in SELECT and STATUS, ENABLE, SELECT (QRESYNC ...) with
VANISHED (EARLIER) after expunges made by another (imaplib) session,
UID FETCH (VANISHED), untagged VANISHED, and the same after the expunge
log was pruned (imap_expunge_log_max = 2): the answer is bigger, never
wrong.  Exact bytes through the raw client of imap_protocol.py.

Usage: imap_condstore.py /path/to/postern
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, Results  # noqa: E402
from imap_protocol import Raw, USER, PASSWORD, deliver, imaps  # noqa: E402

MSG = (b"From: Bob <bob@example.test>\r\n"
       b"To: Alice <alice@example.test>\r\n"
       b"Subject: %d\r\n"
       b"\r\n"
       b"body\r\n")


def session(d, qresync=False):
    c = Raw(d.port("imaps"), tls=True)
    c.login()
    if qresync:
        c.cmd("ENABLE QRESYNC")
    return c


def code(lines, name):
    """The number of an "[NAME n]" response code among lines."""
    for l in lines:
        m = re.search(rb"\[" + name.encode() + rb" (\d+)\]", l)
        if m:
            return int(m.group(1))
    return None


def uids_of(c):
    lines = c.cmd("UID SEARCH ALL")
    return [int(x) for x in lines[0].split()[2:]]


def fresh_mailbox(d, name, n):
    """A new mailbox holding n messages (APPEND through imaplib)."""
    m = imaps(d)
    m.create(name)
    for i in range(n):
        m.append(name, None, None, MSG % i)
    m.logout()


def test_enable(d, r):
    c = Raw(d.port("imaps"), tls=True)
    c.login()
    caps = b" ".join(c.cmd("CAPABILITY"))
    r.check(b" CONDSTORE" in caps and b" QRESYNC" in caps, "CONDSTORE and QRESYNC offered")
    res = c.cmd("ENABLE CONDSTORE QRESYNC")
    r.check(res[0] == b"* ENABLED CONDSTORE QRESYNC", "ENABLE lists both: %r" % res[0])
    res = c.cmd("ENABLE QRESYNC")
    r.check(res[0] == b"* ENABLED", "enabled once only: %r" % res[0])
    c.close()


def test_condstore(d, r):
    fresh_mailbox(d, "cs", 3)
    c = session(d)
    res = c.cmd("SELECT cs (CONDSTORE)")
    h = code(res, "HIGHESTMODSEQ")
    r.check(h is not None and res[-1].endswith(b"OK [READ-WRITE] SELECT completed"),
            "SELECT (CONDSTORE) gives HIGHESTMODSEQ: %r" % res)
    res = c.cmd("FETCH 1:* (FLAGS MODSEQ)")
    r.check(len(res) == 4 and all(b"MODSEQ (" in l for l in res[:3]),
            "FETCH MODSEQ: %r" % res)
    res = c.cmd("STORE 1 +FLAGS (\\Flagged)")
    m = re.match(rb"\* 1 FETCH \(FLAGS \((?:\\Recent )?\\Flagged\) MODSEQ \((\d+)\)\)$", res[0])
    r.check(m is not None and int(m.group(1)) > h, "STORE answers with the new MODSEQ: %r" % res)
    m1 = int(m.group(1)) if m else 0
    res = c.cmd("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % h)
    r.check(res[:-1] == [b"* 1 FETCH (FLAGS (\\Recent \\Flagged) MODSEQ (%d))" % m1],
            "CHANGEDSINCE gives the changed message only, with MODSEQ: %r" % res)
    res = c.cmd("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % m1)
    r.check(len(res) == 1 and res[0].endswith(b"OK FETCH completed"), "nothing newer: %r" % res)
    uids = uids_of(c)
    res = c.cmd("UID STORE %d,%d (UNCHANGEDSINCE %d) +FLAGS.SILENT (\\Seen)" % (uids[0], uids[1], h))
    r.check(res[-1].endswith(b"OK [MODIFIED %d] Conditional UID STORE failed" % uids[0]),
            "UNCHANGEDSINCE refuses the changed message: %r" % res)
    r.check(any(l.startswith(b"* 2 FETCH (UID %d MODSEQ (" % uids[1]) for l in res),
            ".SILENT still tells the new MODSEQ: %r" % res)
    res = c.cmd("STORE 3 (UNCHANGEDSINCE 0) +FLAGS (\\Seen)")
    r.check(res[-1].endswith(b"OK [MODIFIED 3] Conditional STORE failed"),
            "UNCHANGEDSINCE 0 always fails: %r" % res)
    res = c.cmd("SEARCH MODSEQ %d" % (m1 + 1))
    m = re.match(rb"\* SEARCH 2 \(MODSEQ (\d+)\)$", res[0])
    r.check(m is not None, "SEARCH MODSEQ: %r" % res)
    hms = int(m.group(1)) if m else 0
    res = c.cmd('SEARCH MODSEQ "/flags/\\\\seen" all 1')
    r.check(res[0].startswith(b"* SEARCH 1 2 3 (MODSEQ "), "SEARCH MODSEQ with an entry: %r" % res)
    c.cmd("UNSELECT")
    res = c.cmd("STATUS cs (HIGHESTMODSEQ MESSAGES)")
    r.check(res[0] == b'* STATUS "cs" (MESSAGES 3 HIGHESTMODSEQ %d)' % hms,
            "STATUS HIGHESTMODSEQ: %r" % res)
    c.close()


def test_bad(d, r):
    c = session(d)
    res = c.cmd("SELECT INBOX (QRESYNC (1 1))")
    r.check(b" BAD " in res[-1], "QRESYNC without ENABLE is BAD: %r" % res[-1])
    c.cmd("SELECT INBOX")
    for bad in ("FETCH 1:* (FLAGS) (CHANGEDSINCE 0)", "FETCH 1:* (FLAGS) (CHANGEDSINCE x)",
                "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)",
                "FETCH 1:* (FLAGS) (CHANGEDSINCE 99999999999999999999)",
                "STORE 1 (UNCHANGEDSINCE) +FLAGS (\\Seen)", "SEARCH MODSEQ"):
        res = c.cmd(bad)
        r.check(b" BAD " in res[-1], "%s is BAD: %r" % (bad, res[-1]))
    c.close()


def test_qresync(d, r):
    fresh_mailbox(d, "qr", 5)
    c = session(d, qresync=True)
    res = c.cmd("SELECT qr")
    uv, hms = code(res, "UIDVALIDITY"), code(res, "HIGHESTMODSEQ")
    uids = uids_of(c)
    c.cmd("LOGOUT")
    # another session (imaplib) expunges two and flags one
    m = imaps(d)
    m.select("qr")
    m.uid("STORE", "%d,%d" % (uids[1], uids[3]), "+FLAGS", "(\\Deleted)")
    m.uid("STORE", "%d" % uids[4], "+FLAGS", "(\\Answered)")
    m.expunge()
    m.logout()
    c = session(d, qresync=True)
    res = c.cmd("SELECT qr (QRESYNC (%d %d))" % (uv, hms))
    r.check(b"* VANISHED (EARLIER) %d,%d" % (uids[1], uids[3]) in res,
            "VANISHED (EARLIER) after another session's expunges: %r" % res)
    fetch = [l for l in res if b" FETCH " in l]
    r.check(len(fetch) == 1 and fetch[0].startswith(b"* 3 FETCH (UID %d FLAGS (\\Answered) MODSEQ ("
                                                      % uids[4]),
            "the flag change as FETCH with MODSEQ: %r" % fetch)
    res2 = c.cmd("SELECT qr (QRESYNC (%d %d %d:%d))" % (uv, hms, uids[0], uids[2]))
    r.check(b"* OK [CLOSED] Previous mailbox closed" in res2 and
            b"* VANISHED (EARLIER) %d" % uids[1] in res2 and
            not any(b" FETCH " in l for l in res2),
            "known-uids narrow the answer: %r" % res2)
    res = c.cmd("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % hms)
    r.check(res[0] == b"* VANISHED (EARLIER) %d,%d" % (uids[1], uids[3]) and
            res[1].startswith(b"* 3 FETCH (UID %d FLAGS (\\Answered) MODSEQ (" % uids[4]),
            "UID FETCH (CHANGEDSINCE VANISHED): %r" % res)
    res = c.cmd("SELECT qr (QRESYNC (%d %d))" % (uv + 1, hms))
    r.check(not any(b"VANISHED" in l or b" FETCH " in l for l in res),
            "another UIDVALIDITY: a plain SELECT: %r" % res)
    # untagged VANISHED for an expunge in another session
    m = imaps(d)
    m.select("qr")
    m.uid("STORE", "%d" % uids[0], "+FLAGS", "(\\Deleted)")
    m.expunge()
    m.logout()
    res = c.cmd("NOOP")
    r.check(res[0] == b"* VANISHED %d" % uids[0], "untagged VANISHED, no EXPUNGE: %r" % res)
    c.cmd("STORE 1 +FLAGS (\\Deleted)")
    res = c.cmd("EXPUNGE")
    r.check(res[0] == b"* VANISHED %d" % uids[2], "own EXPUNGE as VANISHED: %r" % res)
    res = c.cmd("UID MOVE %d cs" % uids[4])
    r.check(b"* VANISHED %d" % uids[4] in res and not any(b"EXPUNGE" in l for l in res),
            "MOVE announces VANISHED: %r" % res)
    c.close()


def test_pruned(d, r):
    """imap_expunge_log_max = 2: older expunges are forgotten, answers grow."""
    fresh_mailbox(d, "pr", 8)
    c = session(d, qresync=True)
    res = c.cmd("SELECT pr")
    uv, hms = code(res, "UIDVALIDITY"), code(res, "HIGHESTMODSEQ")
    uids = uids_of(c)
    watcher = session(d, qresync=True)
    watcher.cmd("SELECT pr")
    m = imaps(d)
    m.select("pr")
    for u in (uids[1], uids[2], uids[4], uids[6]):  # four expunges, two kept
        m.uid("STORE", "%d" % u, "+FLAGS", "(\\Deleted)")
        m.expunge()
    res = m.select("pr")
    m.logout()
    gone = b"%d:%d,%d,%d" % (uids[1], uids[2], uids[4], uids[6])
    res = c.cmd("SELECT pr (QRESYNC (%d %d))" % (uv, hms))
    r.check(b"* VANISHED (EARLIER) " + gone in res,
            "pruned log: every gone UID still reported: %r" % res)
    hms2 = code(res, "HIGHESTMODSEQ")
    res = c.cmd("SELECT pr (QRESYNC (%d %d %d:%d))" % (uv, hms, uids[3], uids[7]))
    r.check(b"* VANISHED (EARLIER) %d,%d" % (uids[4], uids[6]) in res,
            "pruned log, known-uids: only those: %r" % res)
    res = c.cmd("SELECT pr (QRESYNC (%d %d))" % (uv, hms2 - 1))
    r.check(b"* VANISHED (EARLIER) %d" % uids[6] in res,
            "after the horizon: the exact answer from the log: %r" % res)
    res = watcher.cmd("NOOP")
    r.check(res[0] == b"* VANISHED " + gone,
            "a session whose view is older than the log learns every expunge: %r" % res)
    res = watcher.cmd("FETCH 1:* (UID)")
    r.check([l for l in res if l.startswith(b"* ")] ==
            [b"* %d FETCH (UID %d)" % (i + 1, u)
             for i, u in enumerate((uids[0], uids[3], uids[5], uids[7]))],
            "its sequence numbers follow: %r" % res)
    c.close()
    watcher.close()


def main():
    postern = sys.argv[1]
    res = Results()
    with Daemon(postern, roles=("smtp", "imaps"),
                extra_config="imap_expunge_log_max = 2\n") as d:
        d.add_user(USER, PASSWORD)
        deliver(d, MSG % 0)
        for name, fn in (("enable", test_enable), ("condstore", test_condstore),
                         ("bad", test_bad), ("qresync", test_qresync),
                         ("pruned", test_pruned)):
            res.run(name, lambda fn=fn: fn(d, res))
        res.check("imap bug:" not in d.log(), "every command ended with its own tagged reply")
    res.finish()


if __name__ == "__main__":
    main()
