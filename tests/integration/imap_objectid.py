"""OBJECTID (RFC 8474) against the real daemon, exact bytes with the raw
client of imap_protocol.py: CAPABILITY, MAILBOXID in SELECT / EXAMINE,
STATUS and LIST RETURN (STATUS), unique per mailbox, the same after RENAME
and `postern reindex`, new for a mailbox created again under an old name,
kept on disk in the folder; EMAILID and THREADID (NIL) as FETCH items,
EMAILID the same for a message and its COPY / MOVE copies and after a
reindex, different for different messages; SEARCH EMAILID / THREADID; a
Dovecot Maildir keeps Dovecot's mailbox GUID as MAILBOXID.

Usage: imap_objectid.py /path/to/postern
"""
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, Results  # noqa: E402
from imap_protocol import Raw, USER, PASSWORD, USER2, PASSWORD2, MSG1, MSG2, deliver  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "unit", "fixtures", "dovecot-maildir")
OBJECTID = rb"[A-Za-z0-9_-]{1,255}"


def session(d, user=USER, password=PASSWORD):
    c = Raw(d.port("imaps"), tls=True)
    c.login(user, password)
    return c


def select_id(c, verb, name):
    res = c.cmd("%s %s" % (verb, name))
    ids = [m.group(1) for m in (re.fullmatch(rb"\* OK \[MAILBOXID \((" + OBJECTID + rb")\)\] .*", l)
                                for l in res) if m]
    return ids[0] if len(ids) == 1 and res[-1].split()[1] == b"OK" else None


def status_id(c, name):
    res = c.cmd("STATUS %s (MAILBOXID)" % name)
    m = re.fullmatch(rb'\* STATUS "?[^"]*"? \(MAILBOXID \((' + OBJECTID + rb')\)\)', res[0])
    return m.group(1) if m and res[-1].split()[1] == b"OK" else None


def emailids(c, seqs="1:*"):
    """{uid: emailid} of a FETCH (UID EMAILID THREADID), checking THREADID NIL."""
    out = {}
    for l in c.cmd("FETCH %s (UID EMAILID THREADID)" % seqs):
        m = re.fullmatch(rb"\* \d+ FETCH \(UID (\d+) EMAILID \((" + OBJECTID +
                         rb")\) THREADID NIL\)", l)
        if m:
            out[int(m.group(1))] = m.group(2)
    return out


def test_mailboxid(d, r):
    c = session(d)
    caps = c.cmd("CAPABILITY")[0]
    r.check(b" OBJECTID" in caps, "CAPABILITY offers OBJECTID: %r" % caps)
    inbox = select_id(c, "SELECT", "INBOX")
    r.check(inbox is not None and inbox.startswith(b"F"), "SELECT gives MAILBOXID: %r" % inbox)
    r.check(select_id(c, "EXAMINE", "INBOX") == inbox, "EXAMINE gives the same")
    r.check(status_id(c, "INBOX") == inbox, "STATUS (MAILBOXID) the same")
    res = c.cmd("STATUS INBOX (MESSAGES MAILBOXID UIDNEXT)")
    r.check(re.fullmatch(rb'\* STATUS "INBOX" \(MESSAGES \d+ UIDNEXT \d+ MAILBOXID \(' +
                         re.escape(inbox) + rb"\)\)", res[0]) is not None,
            "STATUS with other items: %r" % res[0])
    c.cmd("CREATE Projects")
    c.cmd("CREATE Projects/Old")
    proj, old = status_id(c, "Projects"), status_id(c, "Projects/Old")
    ids = {inbox, proj, old}
    for name in ("Sent", "Drafts", "Trash"):
        ids.add(status_id(c, name))
    r.check(None not in ids and len(ids) == 6, "one MAILBOXID per mailbox: %r" % ids)
    with open(os.path.join(d.data, "mail", "example.test", "alice", ".Projects",
                           "postern-mailboxid"), "rb") as f:
        r.check(f.read() == proj + b"\n", "kept in the folder's postern-mailboxid")
    res = c.cmd('LIST "" "Projects*" RETURN (STATUS (MAILBOXID))')
    r.check(b'* STATUS "Projects" (MAILBOXID (%s))' % proj in res and
            b'* STATUS "Projects/Old" (MAILBOXID (%s))' % old in res,
            "LIST RETURN (STATUS (MAILBOXID)): %r" % res)
    res = c.cmd("RENAME Projects Archive2")
    r.check(res[-1].startswith(b"r") and b" OK" in res[-1], "RENAME: %r" % res)
    r.check(status_id(c, "Archive2") == proj and status_id(c, "Archive2/Old") == old,
            "RENAME keeps the MAILBOXIDs (children too)")
    c.cmd("CREATE Projects")
    again = status_id(c, "Projects")
    r.check(again is not None and again not in ids,
            "a mailbox created again under the old name gets a new one: %r" % again)
    res = c.cmd("STATUS NoSuchBox (MAILBOXID)")
    r.check(b" NO " in res[-1], "STATUS of no mailbox: NO: %r" % res)
    c.close()
    res = d.cli("reindex", USER, check=False)
    r.check(res.returncode == 0, "reindex")
    c = session(d)
    r.check(select_id(c, "SELECT", "INBOX") == inbox and status_id(c, "Archive2") == proj,
            "a reindex keeps them")
    c.close()


def test_emailid(d, r):
    deliver(d, MSG1)
    deliver(d, MSG2)
    c = session(d)
    c.cmd("SELECT INBOX")
    ids = emailids(c)
    r.check(len(ids) == 2 and len(set(ids.values())) == 2 and
            all(v.startswith(b"M") for v in ids.values()),
            "FETCH EMAILID: two messages, two ids, THREADID NIL: %r" % ids)
    again = emailids(c)
    r.check(again == ids, "stable from one FETCH to the next")
    res = c.cmd("FETCH 1 (emailid)")
    r.check(re.fullmatch(rb"\* 1 FETCH \(EMAILID \(" + OBJECTID + rb"\)\)", res[0]) is not None,
            "item names are case-insensitive, answered upper-case: %r" % res[0])
    uids = sorted(ids)
    c.cmd("CREATE Copies")
    c.cmd("UID COPY %d Copies" % uids[0])
    c.cmd("UID MOVE %d Copies" % uids[1])
    c.cmd("SELECT Copies")
    copies = emailids(c)
    r.check(sorted(copies.values()) == sorted(ids.values()),
            "COPY and MOVE keep the EMAILID: %r %r" % (copies, ids))
    c.cmd("COPY 1 Copies")   # a copy of a copy too
    r.check(sorted(emailids(c).values()) == sorted(list(ids.values()) + [copies[min(copies)]]),
            "a copy of a copy too: %r" % emailids(c))
    want = ids[uids[0]]
    res = c.cmd("UID SEARCH EMAILID %s" % want.decode())
    hits = [int(x) for x in res[0].split()[2:]]
    r.check(len(hits) == 2 and all(copies.get(h, want) == want for h in hits),
            "SEARCH EMAILID finds the message and its copy: %r" % res)
    res = c.cmd("SEARCH EMAILID %s" % want.decode().lower())
    r.check(res[0] == b"* SEARCH", "ids are case-sensitive: %r" % res)
    res = c.cmd("SEARCH THREADID T1234")
    r.check(res[0] == b"* SEARCH" and b" OK" in res[-1], "SEARCH THREADID: nothing: %r" % res)
    res = c.cmd("SEARCH OR EMAILID %s THREADID x" % want.decode())
    r.check(len(res[0].split()) == 4, "EMAILID inside OR: %r" % res)
    res = c.cmd("SEARCH EMAILID a.b")
    r.check(b" BAD " in res[-1], "an invalid object id is BAD: %r" % res)
    res = c.cmd("SEARCH EMAILID")
    r.check(b" BAD " in res[-1], "a missing one too: %r" % res)
    before = emailids(c)
    c.close()
    d.cli("reindex", USER)
    c = session(d)
    c.cmd("SELECT Copies")
    r.check(sorted(emailids(c).values()) == sorted(before.values()),
            "a reindex keeps the EMAILIDs")
    c.close()


def test_dovecot(d, r):
    """A folder Dovecot had keeps its mailbox GUID (dovecot-uidlist G)."""
    d.add_user(USER2, PASSWORD2)
    bob = os.path.join(d.data, "mail", "example.test", "bob")
    shutil.copytree(FIXTURE, bob)
    c = session(d, USER2, PASSWORD2)
    r.check(select_id(c, "SELECT", "INBOX") == b"3f1c2a0b9d8e7f6a5b4c3d2e1f0a9b8c",
            "INBOX: Dovecot's GUID")
    dev = status_id(c, "Lists/Dev")
    r.check(dev is not None and dev.startswith(b"F"),
            "an all-zero GUID is none: a new id: %r" % dev)
    c.close()


def main():
    postern = sys.argv[1]
    res = Results()
    with Daemon(postern, roles=("imaps",)) as d:
        d.add_user(USER, PASSWORD)
        for name, fn in (("mailboxid", test_mailboxid), ("emailid", test_emailid),
                         ("dovecot", test_dovecot)):
            res.run(name, lambda fn=fn: fn(d, res))
    res.finish()


if __name__ == "__main__":
    main()
