"""IMAP QUOTA (RFC 9208), UNAUTHENTICATE (RFC 8437) and METADATA (RFC 5464)
against the real daemon: imaplib for QUOTA, the raw client of
imap_protocol.py (exact bytes) for the rest.

QUOTA: the administrator's per-user quota (`postern user quota`) as the
quota root "" with STORAGE in KiB, no root for a user without a quota,
SETQUOTA refused, APPEND over quota NO [OVERQUOTA] with nothing stored.
UNAUTHENTICATE: back to NOT-AUTHENTICATED, another user's login on the
same connection (under COMPRESS too), ENABLE forgotten.
METADATA: server and mailbox entries, names case-insensitive, literals,
NIL deletes, DEPTH, MAXSIZE and LONGENTRIES, the MAXSIZE and TOOMANY
limits (all or nothing), bad names, entries following RENAME and DELETE,
and surviving a restart on disk.

Usage: imap_quota.py /path/to/postern
"""
import imaplib
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, Results, maildir_files, tls_context  # noqa: E402
from imap_protocol import MSG1, PASSWORD, PASSWORD2, USER, USER2, raw_imaps as raw  # noqa: E402
from imap_compress import Deflated  # noqa: E402

QUOTA_KIB = 100


def imaps(d, user, password):
    m = imaplib.IMAP4_SSL("127.0.0.1", d.port("imaps"), ssl_context=tls_context())
    m.login(user, password)
    return m


def test_quota(d, r):
    m = imaps(d, USER, PASSWORD)
    caps = m.capability()[1][0].decode()
    r.check("QUOTA" in caps and "QUOTA=RES-STORAGE" in caps,
            "CAPABILITY offers QUOTA QUOTA=RES-STORAGE: %s" % (caps,))
    m.append("INBOX", None, None, MSG1)
    typ, data = m.getquotaroot("INBOX")
    used = (len(MSG1) + 1023) // 1024
    r.check(typ == "OK" and data[0] == [b'"INBOX" ""'] and
            data[1] == [b'"" (STORAGE %d %d)' % (used, QUOTA_KIB)],
            "GETQUOTAROOT INBOX: root \"\", STORAGE %d of %d KiB: %r" % (used, QUOTA_KIB, data))
    typ, data = m.getquota('""')
    r.check(typ == "OK" and data == [b'"" (STORAGE %d %d)' % (used, QUOTA_KIB)],
            "GETQUOTA \"\": %r" % data)
    typ, data = m.getquota("other")
    r.check(typ == "NO" and b"[NONEXISTENT]" in data[0],
            "GETQUOTA of an unknown root is NO: %r" % data)
    typ, data = m.setquota('""', "(STORAGE 1000)")
    r.check(typ == "NO" and b"[NOPERM]" in data[0],
            "SETQUOTA is refused (the administrator's): %r" % data)
    typ, data = m.getquotaroot("nosuch")
    r.check(typ == "NO" and "[NONEXISTENT]" in repr(data),
            "GETQUOTAROOT of a missing mailbox is NO: %r" % data)
    before = maildir_files(d, USER)
    big = MSG1 + b"x" * (QUOTA_KIB * 1024) + b"\r\n"
    typ, data = m.append("INBOX", None, None, big)
    r.check(typ == "NO" and b"[OVERQUOTA]" in data[0],
            "APPEND over quota is NO [OVERQUOTA]: %s %r" % (typ, data))
    r.check(maildir_files(d, USER) == before, "nothing was stored by the refused APPEND")
    m.logout()
    # a user without a quota has no quota root
    c = raw(d, USER2, PASSWORD2)
    lines = c.cmd("GETQUOTAROOT INBOX")
    r.check(lines[0] == b'* QUOTAROOT "INBOX"' and lines[-1].startswith(b"r2 OK"),
            "no quota: GETQUOTAROOT lists no root: %r" % lines)
    res = c.cmd('GETQUOTA ""')[-1]
    r.check(b"NO [NONEXISTENT]" in res, "no quota: GETQUOTA \"\" is NO: %r" % res)
    c.close()


def test_unauthenticate(d, r):
    c = raw(d)
    r.check(b"UNAUTHENTICATE" in c.cmd("CAPABILITY")[0], "CAPABILITY offers UNAUTHENTICATE")
    c.cmd("ENABLE IMAP4rev2")
    c.cmd("SELECT INBOX")
    res = c.cmd("UNAUTHENTICATE")[-1]
    r.check(re.match(rb"r\d+ OK", res) is not None, "UNAUTHENTICATE: %r" % res)
    res = c.cmd("SELECT INBOX")[-1]
    r.check(b"BAD" in res and b"before login" in res, "then SELECT is refused: %r" % res)
    caps = c.cmd("CAPABILITY")[0]
    r.check(b"AUTH=PLAIN" in caps, "CAPABILITY is the one before login: %r" % caps)
    res = c.login(USER2, PASSWORD2)
    r.check(b" OK" in res, "another user logs in on the same connection: %r" % res)
    lines = c.cmd("ENABLE IMAP4rev2")
    r.check(lines[0] == b"* ENABLED IMAP4rev2", "ENABLE was forgotten: %r" % lines)
    lines = c.cmd("STATUS INBOX (MESSAGES)")
    r.check(lines[0] == b'* STATUS "INBOX" (MESSAGES 0)', "the new user's INBOX: %r" % lines)
    c.close()
    # under COMPRESS: the layer stays, the session starts again
    c = Deflated(d.port("imaps"), tls=True)
    c.login()
    c.compress()
    res = c.cmd("UNAUTHENTICATE")[-1]
    res2 = c.login(USER2, PASSWORD2)
    r.check(b" OK" in res and b" OK" in res2,
            "UNAUTHENTICATE and LOGIN on a compressed connection: %r %r" % (res, res2))
    c.close()


def meta(c, args):
    return c.cmd("GETMETADATA " + args)


def test_metadata_basic(d, r):
    c = raw(d)
    r.check(b" METADATA" in c.cmd("CAPABILITY")[0], "CAPABILITY offers METADATA")
    res = c.cmd('SETMETADATA INBOX (/private/comment "hello" /shared/comment "team")')[-1]
    r.check(b" OK" in res, "SETMETADATA INBOX: %r" % res)
    lines = meta(c, "INBOX (/private/comment /shared/comment /private/none)")
    r.check(lines[0] == b'* METADATA "INBOX" (/private/comment "hello" /shared/comment "team")',
            "GETMETADATA INBOX lists what exists: %r" % lines)
    lines = meta(c, "INBOX /PRIVATE/Comment")
    r.check(lines[0] == b'* METADATA "INBOX" (/private/comment "hello")',
            "entry names are case-insensitive: %r" % lines)
    res = c.cmd('SETMETADATA "" (/shared/comment "server note")')[-1]
    lines = meta(c, '"" /shared/comment')
    r.check(b" OK" in res and lines[0] == b'* METADATA "" (/shared/comment "server note")',
            "a server entry: %r" % lines)
    c.send(b"l1 SETMETADATA INBOX (/private/multi {11}\r\n")
    r.check(c.raw_line().startswith(b"+"), "a literal value gets its continuation")
    c.send(b"line1\r\nl2\r\n)\r\n")
    res = c.until("l1")[-1]
    lines = meta(c, "INBOX /private/multi")
    r.check(b" OK" in res and lines[:2] == [b'* METADATA "INBOX" (/private/multi {11}',
                                             b"line1\r\nl2\r\n"],
            "a value with CRLF comes back as a literal: %r" % lines)
    res = c.cmd("SETMETADATA INBOX (/private/multi NIL)")[-1]
    lines = meta(c, "INBOX /private/multi")
    r.check(b" OK" in res and len(lines) == 1, "NIL removes an entry: %r" % lines)
    c.cmd('SETMETADATA INBOX (/private/a "1" /private/a/b "2" /private/a/b/c "3")')
    lines = meta(c, "(DEPTH 1) INBOX /private/a")
    r.check(lines[0] == b'* METADATA "INBOX" (/private/a "1" /private/a/b "2")',
            "DEPTH 1: %r" % lines)
    lines = meta(c, "(DEPTH infinity) INBOX /private/a")
    r.check(lines[0] == b'* METADATA "INBOX" (/private/a "1" /private/a/b "2" /private/a/b/c "3")',
            "DEPTH infinity: %r" % lines)
    lines = meta(c, "(MAXSIZE 3) INBOX (/private/comment /private/a)")
    r.check(lines[0] == b'* METADATA "INBOX" (/private/a "1")' and
            b"OK [METADATA LONGENTRIES 5]" in lines[-1],
            "MAXSIZE leaves the long value out, LONGENTRIES says how long: %r" % lines)
    for bad in ("(/foo/bar \"x\")", "(/private/a* \"x\")", "(/private/ \"x\")",
                "(/private//x \"x\")", "(/private/x)"):
        res = c.cmd("SETMETADATA INBOX " + bad)[-1]
        r.check(b"BAD" in res, "SETMETADATA INBOX %s is BAD: %r" % (bad, res))
    res = c.cmd('SETMETADATA nosuch (/private/comment "x")')[-1]
    r.check(b"NO [NONEXISTENT]" in res, "a missing mailbox is NO: %r" % res)
    c.close()


def test_metadata_limits(d, r):
    c = raw(d)
    c.send(b"m1 SETMETADATA INBOX (/private/big {20000}\r\n")
    cont = c.raw_line()
    c.send(b"x" * 20000 + b")\r\n")
    res = c.until("m1")[-1]
    r.check(cont.startswith(b"+") and b"NO [METADATA MAXSIZE 16384]" in res,
            "a value above 16 KiB: %r" % res)
    c.cmd("CREATE Many")
    first = " ".join('/private/e%d "v"' % i for i in range(60))
    res = c.cmd("SETMETADATA Many (%s)" % first)[-1]
    r.check(b" OK" in res, "60 entries: %r" % res)
    second = " ".join('/private/f%d "v"' % i for i in range(50))
    res = c.cmd("SETMETADATA Many (%s)" % second)[-1]
    r.check(b"NO [METADATA TOOMANY]" in res, "110 entries are too many: %r" % res)
    lines = meta(c, "(DEPTH 1) Many /private")
    r.check(lines[0].count(b"/private/") == 60 and b"/private/f" not in lines[0],
            "the refused command stored nothing: %d entries" % lines[0].count(b"/private/"))
    c.close()


def test_metadata_rename(d, r):
    c = raw(d)
    c.cmd("CREATE Proj")
    c.cmd("CREATE Proj/sub")
    c.cmd('SETMETADATA Proj (/private/comment "project")')
    c.cmd('SETMETADATA Proj/sub (/private/comment "child")')
    res = c.cmd("RENAME Proj Work")[-1]
    a = meta(c, "Work /private/comment")[0]
    b = meta(c, "Work/sub /private/comment")[0]
    r.check(b" OK" in res and a == b'* METADATA "Work" (/private/comment "project")' and
            b == b'* METADATA "Work/sub" (/private/comment "child")',
            "entries follow RENAME, children's too: %r %r" % (a, b))
    c.cmd("CREATE Proj")
    lines = meta(c, "Proj /private/comment")
    r.check(len(lines) == 1, "the old name has none: %r" % lines)
    c.cmd("DELETE Work/sub")
    c.cmd("CREATE Work/sub")
    lines = meta(c, "Work/sub /private/comment")
    r.check(len(lines) == 1, "a deleted mailbox's entries are gone with it: %r" % lines)
    c.close()


def test_metadata_durable(d, r):
    local, domain = USER.split("@")
    path = os.path.join(d.data, "mail", domain, local, "postern-metadata")
    with open(path, "rb") as f:
        head = f.read(5)
    r.check(head == b"PMD1\n", "the entries are in %s: %r" % (path, head))
    d.stop()
    d.start()
    c = raw(d)
    lines = meta(c, "INBOX /private/comment")
    r.check(lines[0] == b'* METADATA "INBOX" (/private/comment "hello")',
            "entries survive a restart: %r" % lines)
    c.close()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: imap_quota.py POSTERN")
    r = Results()
    d = Daemon(sys.argv[1], roles=("imaps",))
    with d:
        d.add_user(USER, PASSWORD)
        d.add_user(USER2, PASSWORD2)
        d.cli("user", "quota", USER, "%dK" % QUOTA_KIB)
        r.run("quota", lambda: test_quota(d, r))
        r.run("unauthenticate", lambda: test_unauthenticate(d, r))
        r.run("metadata", lambda: test_metadata_basic(d, r))
        r.run("metadata limits", lambda: test_metadata_limits(d, r))
        r.run("metadata rename", lambda: test_metadata_rename(d, r))
        r.run("metadata durable", lambda: test_metadata_durable(d, r))
    r.finish()


if __name__ == "__main__":
    main()
