"""IMAP NOTIFY (RFC 5465) against the real daemon, with two sessions: A
sets NOTIFY and only reads; B (another connection of the same user) and
`postern deliver` (another process) change the mailboxes.  A must hear,
without sending any command, within a few seconds:

  selected INBOX: EXISTS and the FETCH of MessageNew's attributes, FETCH
  FLAGS for a flag change, EXPUNGE (VANISHED under QRESYNC); with
  selected-delayed no EXPUNGE until NOOP;
  another mailbox: STATUS (MESSAGES UIDNEXT UIDVALIDITY UNSEEN, and
  HIGHESTMODSEQ under CONDSTORE) for new messages, flag changes and
  expunges; LIST for CREATE, RENAME (OLDNAME) and DELETE (\\NonExistent);
  LIST with / without \\Subscribed for (UN)SUBSCRIBE;
  also during IDLE.
Then: NOTIFY NONE stops it; SET STATUS sends STATUS of every watched
mailbox first; bad syntax and the rules between events are BAD; an
unsupported event is NO [BADEVENT (...)]; too many names NO [LIMIT]; more
than 1,000 mailboxes NO [NOTIFICATIONOVERFLOW]; the inotify watches
(counted in /proc/PID/fdinfo) go away with NOTIFY NONE and at logout.

Usage: imap_notify.py /path/to/postern
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, Results  # noqa: E402
from imap_protocol import MSG1, MSG2, Raw, wait_for  # noqa: E402

USER, PW = "nora@example.test", "nora-secret-1"
USER2, PW2 = "otto@example.test", "otto-secret-2"
BADEVENT = b"[BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)]"
WAIT = 3.0  # seconds a notification may take (in-process ones come at once)


def session(d, user=USER, pw=PW):
    c = Raw(d.port("imaps"), tls=True)
    res = c.login(user, pw)
    assert b" OK" in res, res
    return c


def append(c, box, msg, flags=""):
    c.send(("%s APPEND %s %s{%d}\r\n" % ("ap", box, flags, len(msg))).encode())
    line = c.raw_line()
    assert line.startswith(b"+"), line
    c.send(msg + b"\r\n")
    res = c.until("ap")
    assert res[-1].startswith(b"ap OK"), res
    return res


def read_until(c, pred, timeout=WAIT):
    """Lines the server sends unasked within timeout, up to pred(line)."""
    return wait_for(c, pred, timeout)


def b_store(a, b, flags, pred):
    """B adds flags to its message 1; what A hears unasked, up to pred."""
    b.cmd("STORE 1 +FLAGS (%s)" % flags)
    return read_until(a, pred)


def quiet(c, timeout=1.5):
    """What the server sends unasked within timeout (nothing expected)."""
    got, _ = read_until(c, lambda line: False, timeout)
    return got


def watches(d):
    """inotify watches the daemon holds, or None when /proc cannot tell."""
    n = None
    fd_dir = "/proc/%d/fdinfo" % d.proc.pid
    try:
        for fd in os.listdir(fd_dir):
            with open(os.path.join(fd_dir, fd)) as f:
                text = f.read()
            if "inotify wd:" in text:
                n = (n or 0) + text.count("inotify wd:")
            elif n is None and os.readlink("/proc/%d/fd/%s" % (d.proc.pid, fd)) == \
                    "anon_inode:inotify":
                n = 0
    except OSError:
        return None
    return n


def test_events(d, r):
    a, b = session(d), session(d)
    caps = a.cmd("CAPABILITY")[0]
    r.check(b" NOTIFY" in caps, "CAPABILITY offers NOTIFY: %r" % caps)
    a.cmd("SELECT INBOX")
    before = watches(d)
    res = a.cmd("NOTIFY SET (selected (MessageNew (UID FLAGS BODY.PEEK[HEADER.FIELDS (Subject)]) "
                "MessageExpunge FlagChange)) "
                "(personal (MessageNew MessageExpunge FlagChange MailboxName "
                "SubscriptionChange))")
    r.check(res[-1].endswith(b"OK NOTIFY completed") and len(res) == 1,
            "NOTIFY SET without STATUS: just OK: %r" % res)
    after = watches(d)
    if before is not None:
        r.check(after is not None and after > before,
                "NOTIFY SET watches the mailboxes with inotify (%s -> %s)" % (before, after))

    append(b, "INBOX", MSG1)
    got, ok = read_until(a, lambda l: l.startswith(b"* 1 FETCH"))
    hdr = b"Subject: Quarterly report\r\n\r\n"
    if ok:
        got += [a.raw_line() for _ in range(3)]
    r.check(ok and b"* 1 EXISTS" in got and
            got[-4:] == [b"* 1 FETCH (UID 1 FLAGS (\\Recent) BODY[HEADER.FIELDS (Subject)] {%d}"
                         % len(hdr), b"Subject: Quarterly report", b"", b")"],
            "APPEND to the selected INBOX: EXISTS and FETCH (UID FLAGS BODY[HEADER.FIELDS "
            "(Subject)]) unasked: %r" % got)

    b.cmd("CREATE Work")
    got, ok = read_until(a, lambda l: l.startswith(b"* LIST"))
    r.check(ok and got[-1] == b'* LIST () "/" "Work"', "CREATE: LIST unasked: %r" % got)
    append(b, "Work", MSG2)
    got, ok = read_until(a, lambda l: l.startswith(b"* STATUS"))
    r.check(ok and re.match(rb'\* STATUS "Work" \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ UNSEEN 1\)$',
                            got[-1]) is not None,
            "APPEND to another mailbox: STATUS unasked: %r" % got)

    b.cmd("SELECT INBOX")
    got, ok = b_store(a, b, "\\Flagged", lambda l: l.startswith(b"* 1 FETCH"))
    r.check(ok and got[-1] == b"* 1 FETCH (UID 1 FLAGS (\\Recent \\Flagged))",
            "STORE in the selected mailbox: FETCH FLAGS unasked: %r" % got)
    b_store(a, b, "\\Deleted", lambda l: l.startswith(b"* 1 FETCH"))
    b.cmd("EXPUNGE")
    got, ok = read_until(a, lambda l: l == b"* 1 EXPUNGE")
    r.check(ok, "EXPUNGE in the selected mailbox: EXPUNGE unasked: %r" % got)

    b.cmd("SELECT Work")
    got, ok = b_store(a, b, "\\Seen", lambda l: l.startswith(b"* STATUS"))
    r.check(ok and re.match(rb'\* STATUS "Work" \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ UNSEEN 0\)$',
                            got[-1]) is not None,
            "flag change in another mailbox: STATUS with UNSEEN 0: %r" % got)
    b_store(a, b, "\\Deleted", lambda l: l.startswith(b"* STATUS"))
    b.cmd("EXPUNGE")
    got, ok = read_until(a, lambda l: l.startswith(b"* STATUS"))
    r.check(ok and re.match(rb'\* STATUS "Work" \(MESSAGES 0 UIDNEXT 2 ', got[-1]) is not None,
            "expunge in another mailbox: STATUS with MESSAGES 0: %r" % got)
    b.cmd("UNSELECT")

    b.cmd("RENAME Work Play")
    got, ok = read_until(a, lambda l: l.startswith(b"* LIST"))
    r.check(ok and got[-1] == b'* LIST () "/" "Play" ("OLDNAME" ("Work"))',
            "RENAME: LIST with OLDNAME unasked: %r" % got)
    b.cmd("DELETE Play")
    got, ok = read_until(a, lambda l: l.startswith(b"* LIST"))
    r.check(ok and got[-1] == b'* LIST (\\NonExistent) "/" "Play"',
            "DELETE: LIST (\\NonExistent) unasked: %r" % got)
    b.cmd("UNSUBSCRIBE Sent")
    got, ok = read_until(a, lambda l: l.startswith(b"* LIST"))
    r.check(ok and got[-1] == b'* LIST () "/" "Sent"', "UNSUBSCRIBE: LIST unasked: %r" % got)
    b.cmd("SUBSCRIBE Sent")
    got, ok = read_until(a, lambda l: l.startswith(b"* LIST"))
    r.check(ok and got[-1] == b'* LIST (\\Subscribed) "/" "Sent"',
            "SUBSCRIBE: LIST (\\Subscribed) unasked: %r" % got)

    # another process: `postern deliver` (inotify, else the 30 s poll)
    t0 = time.time()
    d.cli("deliver", USER, input=MSG2)
    got, ok = read_until(a, lambda l: l.startswith(b"* 1 FETCH"))
    r.check(ok and b"* 1 EXISTS" in got,
            "`postern deliver` (another process) reaches A unasked within %.0f s (%.2fs): %r"
            % (WAIT, time.time() - t0, got))

    # during IDLE too: STATUS of another mailbox
    b.cmd("CREATE Lists")
    read_until(a, lambda l: l.startswith(b"* LIST"))
    a.send(b"i1 IDLE\r\n")
    r.check(a.raw_line() == b"+ idling", "IDLE with NOTIFY set")
    append(b, "Lists", MSG1)
    got, ok = read_until(a, lambda l: l.startswith(b"* STATUS"))
    r.check(ok and got[-1].startswith(b'* STATUS "Lists" (MESSAGES 1 '),
            "in IDLE, STATUS of another mailbox: %r" % got)
    append(b, "INBOX", MSG1)
    got, ok = read_until(a, lambda l: l.startswith(b"* 2 FETCH"))
    r.check(ok and b"* 2 EXISTS" in got, "in IDLE, the selected mailbox still: %r" % got)
    a.send(b"DONE\r\n")
    res = a.until("i1")
    r.check(res[-1] == b"i1 OK IDLE terminated", "DONE: %r" % res)

    # NOTIFY NONE: silence, the ordinary NOOP report comes back
    res = a.cmd("NOTIFY NONE")
    r.check(res[-1].endswith(b"OK NOTIFY completed"), "NOTIFY NONE: OK: %r" % res)
    if after is not None:
        r.check(watches(d) == before, "NOTIFY NONE drops the watches (%s -> %s, before %s)"
                % (after, watches(d), before))
    append(b, "INBOX", MSG2)
    append(b, "Lists", MSG2)
    got = quiet(a)
    r.check(got == [], "after NOTIFY NONE nothing comes unasked: %r" % got)
    res = a.cmd("NOOP")
    r.check(b"* 3 EXISTS" in res, "NOOP reports the new message as usual: %r" % res)

    # SET STATUS: a STATUS of each watched mailbox but the selected one
    res = a.cmd("NOTIFY SET STATUS (personal (MessageNew MessageExpunge))")
    names = sorted(re.match(rb'\* STATUS "([^"]+)" ', l).group(1) for l in res[:-1])
    r.check(res[-1].endswith(b"OK NOTIFY completed") and
            names == [b"Archive", b"Drafts", b"Junk", b"Lists", b"Sent", b"Trash"],
            "NOTIFY SET STATUS: STATUS of every mailbox but the selected INBOX: %r" % res)
    # no selected filter: INBOX changes come only with a command
    append(b, "INBOX", MSG1)
    got = quiet(a)
    r.check(got == [], "without a selected filter, INBOX changes wait for a command: %r" % got)
    a.cmd("NOTIFY NONE")
    a.cmd("LOGOUT")
    b.cmd("LOGOUT")
    time.sleep(0.3)
    if before is not None:
        r.check(watches(d) == 0, "no watch is left once the sessions are gone (%s)" % watches(d))


def test_delayed_and_qresync(d, r):
    a, b = session(d, USER2, PW2), session(d, USER2, PW2)
    append(b, "INBOX", MSG1)
    append(b, "INBOX", MSG2)
    a.cmd("ENABLE QRESYNC")
    a.cmd("SELECT INBOX")
    res = a.cmd("NOTIFY SET (selected-delayed (MessageNew MessageExpunge FlagChange)) "
                "(personal (MessageNew MessageExpunge FlagChange))")
    r.check(res[-1].endswith(b"OK NOTIFY completed"), "selected-delayed accepted: %r" % res)
    b.cmd("SELECT INBOX")
    got, ok = b_store(a, b, "\\Flagged", lambda l: l.startswith(b"* 1 FETCH"))
    r.check(ok and re.match(rb"\* 1 FETCH \(UID 1 FLAGS \(\\Recent \\Flagged\) MODSEQ \(\d+\)\)$",
                            got[-1]) is not None,
            "CONDSTORE: the unasked FETCH carries MODSEQ: %r" % got)
    b_store(a, b, "\\Deleted", lambda l: l.startswith(b"* 1 FETCH"))
    b.cmd("EXPUNGE")
    got = quiet(a)
    r.check(not any(b"VANISHED" in l or b"EXPUNGE" in l for l in got),
            "selected-delayed: no expunge unasked: %r" % got)
    res = a.cmd("NOOP")
    r.check(b"* VANISHED 1" in res, "NOOP then reports it, as VANISHED under QRESYNC: %r" % res)
    b.cmd("CREATE Box")
    append(b, "Box", MSG1)
    got, ok = read_until(a, lambda l: l.startswith(b"* STATUS"))
    r.check(ok and re.match(rb'\* STATUS "Box" \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+ UNSEEN 1 '
                            rb"HIGHESTMODSEQ \d+\)$", got[-1]) is not None,
            "CONDSTORE: STATUS carries HIGHESTMODSEQ: %r" % got)
    a.cmd("NOTIFY SET (selected (MessageNew MessageExpunge))")
    append(b, "INBOX", MSG1)
    got, ok = read_until(a, lambda l: l.startswith(b"* 2 EXISTS"))
    r.check(ok and not any(b"FETCH" in l for l in got),
            "MessageNew without fetch attributes: EXISTS alone: %r" % got)
    b.cmd("UID STORE 2 +FLAGS (\\Deleted)")
    b.cmd("EXPUNGE")
    got, ok = read_until(a, lambda l: l.startswith(b"* VANISHED"))
    # (the "* 2 RECENT" after the EXISTS above may come first)
    r.check(ok and [l for l in got if not l.endswith(b" RECENT")] == [b"* VANISHED 2"],
            "selected + QRESYNC: VANISHED unasked, no FETCH FLAGS without FlagChange: %r" % got)
    a.cmd("LOGOUT")
    b.cmd("LOGOUT")


def test_errors(d, r):
    a = session(d)
    for args, why in (("", "no arguments"), ("SET", "SET without groups"),
                      ("NONE extra", "NONE with arguments"),
                      ("SET (bogus (MessageNew MessageExpunge))", "an unknown filter"),
                      ("SET (personal (MessageNew))", "MessageNew without MessageExpunge"),
                      ("SET (personal (FlagChange))", "FlagChange alone"),
                      ("SET (selected (MailboxName))", "MailboxName for the selected mailbox"),
                      ("SET (personal (MessageNew (UID) MessageExpunge))",
                       "fetch attributes for a filter other than selected"),
                      ("SET (selected (MessageNew (BODY[]) MessageExpunge))",
                       "a body section to stream"),
                      ("SET (selected NONE) (selected-delayed NONE)", "selected twice"),
                      ("SET (personal (MessageNew MessageExpunge)", "a missing )"),
                      ("SET STATUS", "STATUS without groups")):
        res = a.cmd("NOTIFY " + args if args else "NOTIFY")[-1]
        r.check(b" BAD " in res, "NOTIFY %s (%s): BAD: %r" % (args, why, res))
        a.cmd("NOOP")  # ten BADs in a row end the session
    for args in ("SET (personal (AnnotationChange))",
                 "SET (personal (MessageNew MessageExpunge MailboxMetadataChange))",
                 "SET (inboxes (MessageNew MessageExpunge XNoSuchEvent))"):
        res = a.cmd("NOTIFY " + args)[-1]
        r.check(b" NO " + BADEVENT in res, "NOTIFY %s: NO [BADEVENT (supported)]: %r"
                % (args, res))
    names = " ".join("m%d" % i for i in range(65))
    res = a.cmd("NOTIFY SET (mailboxes (%s) (MessageNew MessageExpunge))" % names)[-1]
    r.check(b" NO [LIMIT]" in res, "65 mailbox names: NO [LIMIT]: %r" % res)
    res = a.cmd("NOTIFY SET (subtree Lists (MessageNew MessageExpunge)) (inboxes NONE)")[-1]
    r.check(res.endswith(b"OK NOTIFY completed"), "subtree and NONE events accepted: %r" % res)
    res = a.cmd("NOOP")[-1]
    r.check(res.endswith(b"OK NOOP completed"), "the session goes on: %r" % res)
    a.cmd("LOGOUT")


def test_overflow(d, r):
    """More mailboxes than a session watches (1,000): made on disk before the
    first login, as a migrated Maildir would be."""
    user, pw = "many@example.test", "many-secret-3"
    d.add_user(user, pw)
    root = os.path.join(d.data, "mail", "example.test", "many")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    for i in range(1001):
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(root, ".f%04d" % i, sub))
    a = session(d, user, pw)
    res = a.cmd("NOTIFY SET (personal (MessageNew MessageExpunge))")[-1]
    r.check(b" NO [NOTIFICATIONOVERFLOW]" in res,
            "more than 1,000 mailboxes: NO [NOTIFICATIONOVERFLOW]: %r" % res)
    res = a.cmd("NOTIFY SET (inboxes (MessageNew MessageExpunge))")[-1]
    r.check(res.endswith(b"OK NOTIFY completed"), "INBOX alone is fine: %r" % res)
    a.cmd("LOGOUT")


def main():
    res = Results()
    with Daemon(sys.argv[1], roles=("imaps",)) as d:
        d.add_user(USER, PW)
        d.add_user(USER2, PW2)
        for name, fn in (("events", test_events), ("delayed_qresync", test_delayed_and_qresync),
                         ("errors", test_errors), ("overflow", test_overflow)):
            res.run(name, lambda fn=fn: fn(d, res))
        log = d.log()
        res.check("imap bug:" not in log, "every command ended with its own tagged reply")
    res.finish()


if __name__ == "__main__":
    main()
