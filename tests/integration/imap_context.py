"""CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4) against the real daemon,
exact bytes on the wire (the raw client of imap_protocol.py).

PARTIAL (positions of the result, in its order, NIL past the end; with
COUNT; BAD with ALL or a 0), CONTEXT (a hint), and UPDATE: a UID SEARCH
or UID SORT kept as a context that hears of new messages, flag changes
and expunges (made by this session or another) as ESEARCH ADDTO /
REMOVEFROM at NOOP, after a command and in IDLE; positions follow the
sort; NOUPDATE for SEARCH with sequence numbers, for PARTIAL and beyond
the limit of 5 contexts; CANCELUPDATE; contexts end with the mailbox.

Usage: imap_context.py /path/to/postern
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, Results  # noqa: E402
from imap_protocol import PASSWORD, USER, raw_imaps  # noqa: E402

CONTEXTS_MAX = 5


def msg(subject):
    return ("From: a@example.test\r\nTo: alice@example.test\r\nSubject: %s\r\n"
            "Date: Mon, 02 Feb 2026 10:00:00 +0000\r\n\r\nbody %s\r\n" % (subject, subject)).encode()


def raw(d):
    return raw_imaps(d, USER, PASSWORD)


def append(c, mailbox, subject, flags=""):
    m = msg(subject)
    c.send(b"ap APPEND %s (%s) {%d}\r\n" % (mailbox.encode(), flags.encode(), len(m)))
    cont = c.raw_line()
    assert cont.startswith(b"+"), cont
    c.send(m + b"\r\n")
    res = c.until("ap")[-1]
    assert b"ap OK" in res, res
    return int(re.search(rb"APPENDUID \d+ (\d+)", res).group(1))


def esearch(lines, tag):
    """The ESEARCH lines about tag."""
    head = b'* ESEARCH (TAG "%s")' % tag.encode()
    return [x for x in lines if x.startswith(head)]


def test_partial(d, r):
    c = raw(d)
    caps = c.cmd("CAPABILITY")[0]
    r.check(b" CONTEXT=SEARCH" in caps and b" CONTEXT=SORT" in caps and b" ESORT" in caps,
            "CAPABILITY offers CONTEXT=SEARCH CONTEXT=SORT: %r" % caps)
    c.cmd("CREATE Part")
    for s in ("delta", "alpha", "echo", "bravo", "foxtrot", "charlie"):
        append(c, "Part", s)
    c.cmd("SELECT Part")
    cases = [
        ("UID SEARCH RETURN (PARTIAL 2:4) ALL", b'* ESEARCH (TAG "{t}") UID PARTIAL (2:4 2:4)'),
        ("SEARCH RETURN (PARTIAL 5:10) ALL", b'* ESEARCH (TAG "{t}") PARTIAL (5:10 5:6)'),
        ("SEARCH RETURN (PARTIAL 7:9) ALL", b'* ESEARCH (TAG "{t}") PARTIAL (7:9 NIL)'),
        ("SEARCH RETURN (PARTIAL 4:2) ALL", b'* ESEARCH (TAG "{t}") PARTIAL (2:4 2:4)'),
        ("SEARCH RETURN (COUNT PARTIAL 1:2) UID 2:6",
         b'* ESEARCH (TAG "{t}") COUNT 5 PARTIAL (1:2 2:3)'),
        ("SEARCH RETURN (CONTEXT COUNT) ALL", b'* ESEARCH (TAG "{t}") COUNT 6'),
        ("UID SORT RETURN (PARTIAL 1:3) (SUBJECT) UTF-8 ALL",
         b'* ESEARCH (TAG "{t}") UID PARTIAL (1:3 2,4,6)'),
        ("SORT RETURN (PARTIAL 2:2 MIN) (REVERSE SUBJECT) UTF-8 ALL",
         b'* ESEARCH (TAG "{t}") MIN 5 PARTIAL (2:2 3)'),
        ("UID SORT RETURN (PARTIAL 6:9) (SUBJECT) UTF-8 ALL",
         b'* ESEARCH (TAG "{t}") UID PARTIAL (6:9 5)'),
    ]
    for i, (command, want) in enumerate(cases):
        tag = "p%d" % i
        lines = c.cmd(command, tag=tag)
        want = want.replace(b"{t}", tag.encode())
        r.check(lines[0] == want and lines[-1].startswith(tag.encode() + b" OK"),
                "%s: %r" % (command, lines))
    for command in ("SEARCH RETURN (PARTIAL 1:2 ALL) ALL", "SEARCH RETURN (PARTIAL 0:2) ALL",
                    "SEARCH RETURN (PARTIAL 1) ALL", "SORT RETURN (PARTIAL x:2) (SUBJECT) UTF-8 ALL"):
        res = c.cmd(command)[-1]
        r.check(b" BAD " in res, "%s is BAD: %r" % (command, res))
    c.close()


def test_update_search(d, r):
    c = raw(d)
    other = raw(d)
    c.cmd("CREATE Upd")
    for s in ("one", "two", "three", "four"):
        append(c, "Upd", s)
    c.cmd("SELECT Upd")
    other.cmd("SELECT Upd")
    lines = c.cmd("UID SEARCH RETURN (UPDATE) UNSEEN", tag="c1")
    r.check(lines[0] == b'* ESEARCH (TAG "c1") UID ALL 1:4' and lines[-1].startswith(b"c1 OK"),
            "UPDATE alone answers ALL: %r" % lines)
    lines = c.cmd("NOOP")
    r.check(esearch(lines, "c1") == [], "nothing changed, nothing said: %r" % lines)
    # another session marks 2 seen and a message arrives
    other.cmd("UID STORE 2 +FLAGS (\\Seen)")
    new = append(other, "Upd", "five")
    lines = c.cmd("NOOP")
    r.check(esearch(lines, "c1") == [b'* ESEARCH (TAG "c1") UID REMOVEFROM (0 2)',
                                     b'* ESEARCH (TAG "c1") UID ADDTO (0 %d)' % new] and
            b"* 5 EXISTS" in lines,
            "NOOP: REMOVEFROM (0 2) and ADDTO (0 %d): %r" % (new, lines))
    # this session's own STORE: the update comes with its answer
    lines = c.cmd("UID STORE 3 +FLAGS.SILENT (\\Seen)")
    r.check(esearch(lines, "c1") == [b'* ESEARCH (TAG "c1") UID REMOVEFROM (0 3)'] and
            b" OK " in lines[-1],
            "own STORE: REMOVEFROM (0 3) before the tagged OK: %r" % lines)
    lines = c.cmd("UID STORE 2 -FLAGS.SILENT (\\Seen)")
    r.check(esearch(lines, "c1") == [b'* ESEARCH (TAG "c1") UID ADDTO (0 2)'],
            "unseen again: ADDTO (0 2): %r" % lines)
    # an expunge elsewhere
    other.cmd("UID STORE 1 +FLAGS.SILENT (\\Deleted)")
    other.cmd("EXPUNGE")
    lines = c.cmd("NOOP")
    r.check(esearch(lines, "c1") == [b'* ESEARCH (TAG "c1") UID REMOVEFROM (0 1)'] and
            b"* 1 EXPUNGE" in lines,
            "expunged elsewhere: REMOVEFROM (0 1) with the EXPUNGE: %r" % lines)
    # IDLE hears of it too
    c.send(b"i1 IDLE\r\n")
    cont = c.raw_line()
    append(other, "Upd", "six")
    got = []
    while len(esearch(got, "c1")) == 0:
        got.append(c.raw_line())
    c.send(b"DONE\r\n")
    got += c.until("i1")
    r.check(cont.startswith(b"+") and esearch(got, "c1") ==
            [b'* ESEARCH (TAG "c1") UID ADDTO (0 %d)' % (new + 1)],
            "IDLE: ADDTO for the new message: %r" % got)
    # not during a command with sequence numbers (no EXPUNGE there either,
    # RFC 3501 §7.4.1), but at the next point that allows it
    other.cmd("UID STORE 4 +FLAGS.SILENT (\\Seen)")
    during = c.cmd("FETCH 1 (UID)")
    after = c.cmd("NOOP")
    r.check(esearch(during, "c1") == [] and
            esearch(after, "c1") == [b'* ESEARCH (TAG "c1") UID REMOVEFROM (0 4)'],
            "FETCH with sequence numbers holds the update back, NOOP sends it: %r %r"
            % (during, after))
    # sequence numbers, PARTIAL: no updates, the search still answers
    lines = c.cmd("SEARCH RETURN (UPDATE COUNT) ALL", tag="n1")
    r.check(lines[0] == b'* ESEARCH (TAG "n1") COUNT 5' and
            lines[1].startswith(b'* NO [NOUPDATE "n1"]') and lines[-1].startswith(b"n1 OK"),
            "SEARCH (not UID) with UPDATE: NOUPDATE, answered: %r" % lines)
    lines = c.cmd("UID SEARCH RETURN (UPDATE PARTIAL 1:2) ALL", tag="n2")
    r.check(lines[1].startswith(b'* NO [NOUPDATE "n2"]') and lines[-1].startswith(b"n2 OK"),
            "UPDATE with PARTIAL: NOUPDATE: %r" % lines)
    # CANCELUPDATE
    res = c.cmd('CANCELUPDATE "nosuch"')[-1]
    r.check(b" BAD " in res, "CANCELUPDATE of an unknown tag is BAD: %r" % res)
    res = c.cmd('CANCELUPDATE "c1"')[-1]
    other.cmd("UID STORE %d +FLAGS (\\Seen)" % new)
    lines = c.cmd("NOOP")
    r.check(b" OK CANCELUPDATE" in res and esearch(lines, "c1") == [],
            "after CANCELUPDATE nothing more is said: %r %r" % (res, lines))
    other.close()
    c.close()


def test_update_sort(d, r):
    c = raw(d)
    other = raw(d)
    c.cmd("CREATE Srt")
    uids = {s: append(c, "Srt", s) for s in ("bravo", "delta", "alpha", "foxtrot")}
    c.cmd("SELECT Srt")
    other.cmd("SELECT Srt")
    lines = c.cmd("UID SORT RETURN (UPDATE ALL) (SUBJECT) UTF-8 UNDELETED", tag="s1")
    # in sort order: alpha 3, bravo 1, delta 2, foxtrot 4 (runs as ranges)
    r.check(uids == {"bravo": 1, "delta": 2, "alpha": 3, "foxtrot": 4} and
            lines[0] == b'* ESEARCH (TAG "s1") UID ALL 3,1:2,4',
            "UID SORT with UPDATE: %r" % lines)
    charlie = append(other, "Srt", "charlie")
    echo = append(other, "Srt", "echo")
    lines = c.cmd("NOOP")
    r.check(esearch(lines, "s1") == [b'* ESEARCH (TAG "s1") UID ADDTO (3 %d 5 %d)' %
                                     (charlie, echo)],
            "new messages go in at their sorted positions: %r" % lines)
    other.cmd("UID STORE %d,%d +FLAGS (\\Deleted)" % (uids["bravo"], echo))
    lines = c.cmd("NOOP")
    r.check(esearch(lines, "s1") == [b'* ESEARCH (TAG "s1") UID REMOVEFROM (2 %d 4 %d)' %
                                     (uids["bravo"], echo)],
            "deleted ones leave: positions as they stand: %r" % lines)
    # the limit: 4 more fit, the 6th is refused
    tags = []
    for i in range(CONTEXTS_MAX):
        tag = "x%d" % i
        lines = c.cmd("UID SEARCH RETURN (UPDATE COUNT) ALL", tag=tag)
        tags.append((tag, lines))
    refused = [t for t, lines in tags if any(b"NOUPDATE" in x for x in lines)]
    r.check(refused == ["x%d" % (CONTEXTS_MAX - 1)] and
            all(lines[-1].startswith(t.encode() + b" OK") for t, lines in tags),
            "contexts beyond %d get NOUPDATE, the search still answers: %r" %
            (CONTEXTS_MAX, refused))
    res = c.cmd('CANCELUPDATE "x0" "x1"')[-1]
    lines = c.cmd("UID SEARCH RETURN (UPDATE COUNT) ALL", tag="x9")
    r.check(b" OK " in res and not any(b"NOUPDATE" in x for x in lines),
            "CANCELUPDATE of two makes room: %r %r" % (res, lines))
    # a new SELECT ends every context
    c.cmd("SELECT Srt")
    res = c.cmd('CANCELUPDATE "s1"')[-1]
    other.cmd("UID STORE %d -FLAGS (\\Deleted)" % uids["bravo"])
    lines = c.cmd("NOOP")
    r.check(b" BAD " in res and esearch(lines, "s1") == [],
            "SELECT ends the contexts: %r %r" % (res, lines))
    other.close()
    c.close()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: imap_context.py POSTERN")
    r = Results()
    d = Daemon(sys.argv[1], roles=("imaps",))
    with d:
        d.add_user(USER, PASSWORD)
        r.run("partial", lambda: test_partial(d, r))
        r.run("update search", lambda: test_update_search(d, r))
        r.run("update sort", lambda: test_update_sort(d, r))
    r.finish()


if __name__ == "__main__":
    main()
