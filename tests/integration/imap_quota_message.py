"""QUOTA=RES-MESSAGE (RFC 9208 §5.2) and STATUS DELETED / DELETED-STORAGE
(RFC 9051 §6.3.11, RFC 9208 §4.2) / SIZE (RFC 8438) against the real
daemon, with exact bytes on the wire (the raw client of imap_protocol.py).

The message limit `postern user quota ADDRESS SIZE MESSAGES` sets (the
users file's quota_messages=): GETQUOTA / GETQUOTAROOT report MESSAGE (and
STORAGE only when a storage limit is set too); APPEND and COPY past it are
NO [OVERQUOTA] with nothing stored; SMTP RCPT gets 452 4.2.2 (552 5.2.2
with quota_error = permanent is the storage path's, not repeated here);
`postern deliver` exits 75; `postern user list` shows the limit; a bad
count in the users file is refused.  STATUS: DELETED counts \\Deleted
messages, DELETED-STORAGE their octets in KiB rounded up, SIZE the
octets of all; in LIST-STATUS too.

Usage: imap_quota_message.py /path/to/postern
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, Results, maildir_files  # noqa: E402
from imap_protocol import MSG1, MSG2, PASSWORD, PASSWORD2, USER, USER2  # noqa: E402
from imap_protocol import raw_imaps as raw  # noqa: E402
import smtp_util  # noqa: E402

LIMIT = 3


def append(c, msg):
    c.send(b"a1 APPEND INBOX {%d}\r\n" % len(msg))
    cont = c.raw_line()
    assert cont.startswith(b"+"), cont
    c.send(msg + b"\r\n")
    return c.until("a1")[-1]


def test_message_quota(d, r):
    c = raw(d)
    caps = c.cmd("CAPABILITY")[0]
    r.check(b" QUOTA=RES-MESSAGE" in caps and b" QUOTA=RES-STORAGE" in caps,
            "CAPABILITY offers QUOTA=RES-MESSAGE: %r" % caps)
    for msg in (MSG1, MSG2):
        res = append(c, msg)
        r.check(b"a1 OK" in res, "APPEND under the limit: %r" % res)
    lines = c.cmd("GETQUOTAROOT INBOX")
    r.check(lines[:2] == [b'* QUOTAROOT "INBOX" ""', b'* QUOTA "" (MESSAGE 2 3)'] and
            b" OK GETQUOTAROOT" in lines[-1],
            "GETQUOTAROOT: a message limit alone is MESSAGE 2 3: %r" % lines)
    d.cli("user", "quota", USER, "100K", str(LIMIT))
    used = (len(MSG1) + len(MSG2) + 1023) // 1024
    lines = c.cmd('GETQUOTA ""')
    r.check(lines[0] == b'* QUOTA "" (STORAGE %d 100 MESSAGE 2 3)' % used,
            "GETQUOTA: both resources: %r" % lines)
    res = append(c, MSG1)
    r.check(b"a1 OK" in res, "the third message fits: %r" % res)
    before = maildir_files(d, USER)
    res = append(c, MSG2)
    r.check(res.startswith(b"a1 NO [OVERQUOTA]"), "the fourth APPEND: NO [OVERQUOTA]: %r" % res)
    c.cmd("CREATE Keep")
    c.cmd("SELECT INBOX")
    res = c.cmd("COPY 1 Keep")[-1]
    r.check(b" NO [OVERQUOTA]" in res, "COPY past the limit: NO [OVERQUOTA]: %r" % res)
    r.check(maildir_files(d, USER) == before and maildir_files(d, USER, ".Keep") == [],
            "nothing was stored by the refused APPEND and COPY")
    res = c.cmd("MOVE 1 Keep")[-1]
    r.check(b" OK" in res, "MOVE adds nothing to the count: allowed: %r" % res)
    lines = c.cmd('GETQUOTA ""')
    r.check(lines[0] == b'* QUOTA "" (STORAGE %d 100 MESSAGE 3 3)' %
            ((len(MSG1) * 2 + len(MSG2) + 1023) // 1024),
            "GETQUOTA after the refusals and the MOVE: %r" % lines)
    c.close()
    # SMTP: the RCPT of a full account is refused, temporarily
    s = smtp_util.Raw(d.port("smtp"))
    s.cmd("EHLO quota.test")
    s.cmd("MAIL FROM:<someone@outside.test>")
    code, text = s.cmd("RCPT TO:<%s>" % USER)
    r.check(code == 452 and text[0].startswith("4.2.2"),
            "SMTP RCPT to a user at the message limit: 452 4.2.2: %d %r" % (code, text))
    s.close()
    inbox = maildir_files(d, USER)
    res = d.cli("deliver", USER, input=MSG1, check=False)
    r.check(res.returncode == 75, "postern deliver at the limit exits 75 (EX_TEMPFAIL): %d"
            % res.returncode)
    r.check(maildir_files(d, USER) == inbox, "nothing was delivered")
    out = d.cli("user", "list").stdout.decode()
    r.check("%s quota=102400 quota_messages=3\n" % USER in out,
            "postern user list shows both limits: %r" % out)
    d.cli("user", "quota", USER, "0")
    out = d.cli("user", "list").stdout.decode()
    r.check("%s quota_messages=3\n" % USER in out,
            "user quota without MESSAGES keeps the message limit: %r" % out)
    res = d.cli("user", "quota", USER, "0", "-1", check=False)
    r.check(res.returncode == 64, "a negative count is a usage error: %d" % res.returncode)
    res = d.cli("user", "quota", USER, "0", "many", check=False)
    r.check(res.returncode == 65, "a count that is no number: exit 65: %d" % res.returncode)
    d.cli("user", "quota", USER, "0", "0")
    c = raw(d)
    lines = c.cmd("GETQUOTAROOT INBOX")
    r.check(lines[0] == b'* QUOTAROOT "INBOX"' and b" OK " in lines[1],
            "no limit left: no quota root: %r" % lines)
    c.close()
    users = os.path.join(d.data, "users")
    with open(users) as f:
        text = f.read()
    with open(users, "w") as f:
        f.write(text.rstrip("\n") + " quota_messages=x\n")
    res = d.cli("user", "list", check=False)
    r.check(res.returncode == 78 and b"invalid quota_messages" in res.stderr,
            "a bad quota_messages in the users file: exit 78: %r" % res.stderr)
    with open(users, "w") as f:
        f.write(text)


def test_status_deleted(d, r):
    c = raw(d, USER2, PASSWORD2)
    caps = c.cmd("CAPABILITY")[0]
    r.check(b" STATUS=SIZE" in caps, "CAPABILITY offers STATUS=SIZE")
    c.cmd("CREATE Box")
    big = MSG2 + b"z" * 3000 + b"\r\n"
    for msg in (MSG1, MSG2, big):
        c.send(b"a1 APPEND Box (\\Seen) {%d}\r\n" % len(msg))
        c.raw_line()
        c.send(msg + b"\r\n")
        c.until("a1")
    lines = c.cmd("STATUS Box (DELETED DELETED-STORAGE SIZE)")
    total = len(MSG1) + len(MSG2) + len(big)
    r.check(lines[0] == b'* STATUS "Box" (SIZE %d DELETED 0 DELETED-STORAGE 0)' % total,
            "STATUS with nothing deleted: %r" % lines)
    c.cmd("SELECT Box")
    c.cmd("STORE 2:3 +FLAGS.SILENT (\\Deleted)")
    c.cmd("UNSELECT")
    kib = (len(MSG2) + len(big) + 1023) // 1024
    lines = c.cmd("STATUS Box (MESSAGES DELETED DELETED-STORAGE)")
    r.check(lines[0] == b'* STATUS "Box" (MESSAGES 3 DELETED 2 DELETED-STORAGE %d)' % kib,
            "STATUS DELETED 2 and DELETED-STORAGE %d (KiB, rounded up): %r" % (kib, lines))
    lines = c.cmd('LIST "" "Box" RETURN (STATUS (DELETED-STORAGE DELETED))')
    r.check(lines[1] == b'* STATUS "Box" (DELETED 2 DELETED-STORAGE %d)' % kib,
            "LIST-STATUS with DELETED-STORAGE: %r" % lines)
    c.cmd("SELECT Box")
    c.cmd("EXPUNGE")
    lines = c.cmd("STATUS Box (DELETED DELETED-STORAGE SIZE)")
    r.check(lines[0] == b'* STATUS "Box" (SIZE %d DELETED 0 DELETED-STORAGE 0)' % len(MSG1),
            "after EXPUNGE: %r" % lines)
    res = c.cmd("STATUS Box (DELETED-STORAGES)")[-1]
    r.check(b" BAD" in res, "an unknown item is BAD: %r" % res)
    c.close()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: imap_quota_message.py POSTERN")
    r = Results()
    d = Daemon(sys.argv[1], roles=("imaps", "smtp"))
    with d:
        d.add_user(USER, PASSWORD)
        d.add_user(USER2, PASSWORD2)
        d.cli("user", "quota", USER, "0", str(LIMIT))
        r.run("message quota", lambda: test_message_quota(d, r))
        r.run("status deleted", lambda: test_status_deleted(d, r))
    r.finish()


if __name__ == "__main__":
    main()
