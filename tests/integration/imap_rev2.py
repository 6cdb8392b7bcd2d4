"""IMAP4rev2 (RFC 9051) after ENABLE IMAP4rev2, against the real daemon with
the raw client of imap_protocol.py (exact bytes): CAPABILITY, ENABLE
answers and when they apply (RFC 5161 §3.1), UTF-8 mailbox names on the
wire (RFC 9051 §5.1) seen in modified UTF-7 by IMAP4rev1 sessions and on
disk as Maildir++ folders, and the reverse; SELECT (LIST, no RECENT, no
UNSEEN, CLOSED), no \\Recent anywhere, SEARCH answered as ESEARCH, STATUS
DELETED / SIZE and no STATUS RECENT, invalid UTF-8 refused.  IMAP4rev1
sessions keep their answers.

Usage: imap_rev2.py /path/to/postern
"""
import imaplib
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, Results, tls_context  # noqa: E402
from imap_protocol import Raw, USER, PASSWORD, deliver  # noqa: E402

MSG = (b"From: Bob <bob@example.test>\r\n"
       b"To: Alice <alice@example.test>\r\n"
       b"Subject: %s\r\n"
       b"Date: Mon, 02 Feb 2026 10:00:00 +0000\r\n"
       b"\r\n"
       b"body text\r\n")

ENTWURFE = "Entw\u00fcrfe".encode()          # UTF-8 "Entwürfe"
ENTWURFE7 = b"Entw&APw-rfe"                   # its modified UTF-7
NIHONGO = "\u65e5\u672c\u8a9e".encode()       # "日本語"
NIHONGO7 = b"&ZeVnLIqe-"


def session(d, rev2):
    c = Raw(d.port("imaps"), tls=True)
    c.login()
    if rev2:
        c.cmd("ENABLE IMAP4rev2")
    return c


def user_dir(d):
    return os.path.join(d.data, "mail", "example.test", "alice")


def list_names(lines):
    """Mailbox names of LIST / LSUB answers (quoted form, as bytes)."""
    out = []
    for l in lines:
        m = re.match(rb'\* (?:LIST|LSUB) \([^)]*\) "/" "((?:[^"\\]|\\.)*)"$', l)
        if m:
            out.append(m.group(1))
    return out


def test_enable(d, r):
    c = Raw(d.port("imaps"), tls=True)
    r.check(b"IMAP4rev1 IMAP4rev2 " in c.greeting, "the greeting offers IMAP4rev2: %r" % c.greeting)
    res = c.cmd("ENABLE IMAP4rev2")
    r.check(res[-1].startswith(b"r1 BAD"), "ENABLE before login is BAD: %r" % res)
    res = c.login()
    r.check(b"IMAP4rev1 IMAP4rev2 " in res, "the login's CAPABILITY offers IMAP4rev2: %r" % res)
    res = c.cmd("CAPABILITY")
    r.check(b"* CAPABILITY IMAP4rev1 IMAP4rev2 " in res[0], "CAPABILITY lists both: %r" % res)
    res = c.cmd("ENABLE X-UNKNOWN imap4REV2")
    r.check(res == [b"* ENABLED IMAP4rev2", b"r4 OK Enabled"],
            "ENABLE answers ENABLED IMAP4rev2 (unknown ones ignored): %r" % res)
    res = c.cmd("ENABLE IMAP4rev2")
    r.check(res == [b"* ENABLED", b"r5 OK Enabled"],
            "enabling it again enables nothing new: %r" % res)
    c.close()
    # RFC 5161 §3.1: not once a mailbox was selected (even after UNSELECT)
    c = session(d, False)
    c.cmd("SELECT INBOX")
    res = c.cmd("ENABLE IMAP4rev2")
    r.check(res[0] == b"* ENABLED", "ENABLE in the selected state enables nothing: %r" % res)
    c.cmd("UNSELECT")
    res = c.cmd("ENABLE IMAP4rev2")
    r.check(res[0] == b"* ENABLED", "nor after UNSELECT: %r" % res)
    res = c.cmd("SELECT INBOX")
    r.check(any(re.match(rb"\* \d+ RECENT$", l) for l in res),
            "that session stays IMAP4rev1 (RECENT): %r" % res)
    c.close()
    # imaplib's ENABLE
    m = imaplib.IMAP4_SSL("127.0.0.1", d.port("imaps"), ssl_context=tls_context())
    m.login(USER, PASSWORD)
    typ, data = m.enable("IMAP4rev2")
    untagged = m.response("ENABLED")
    r.check(typ == "OK" and untagged == ("ENABLED", [b"IMAP4rev2"]),
            "imaplib enables IMAP4rev2: %r %r" % (data, untagged))
    m.logout()


def test_names(d, r):
    v2 = session(d, True)
    v1 = session(d, False)
    res = v2.cmd(b'CREATE "' + ENTWURFE + b'"')
    r.check(res[-1].startswith(b"r3 OK"), "rev2 CREATE of a UTF-8 name: %r" % res)
    r.check(os.path.isdir(os.path.join(user_dir(d), "." + ENTWURFE7.decode())),
            "on disk it is the Maildir++ folder .Entw&APw-rfe: %r" % os.listdir(user_dir(d)))
    names = list_names(v1.cmd('LIST "" "*"'))
    r.check(ENTWURFE7 in names and ENTWURFE not in names,
            "a rev1 session lists it in modified UTF-7: %r" % names)
    names = list_names(v2.cmd('LIST "" "*"'))
    r.check(ENTWURFE in names and ENTWURFE7 not in names,
            "the rev2 session lists it in UTF-8, quoted: %r" % names)
    # the reverse: created by rev1 in modified UTF-7
    res = v1.cmd(b"CREATE " + NIHONGO7)
    r.check(res[-1].startswith(b"r") and b" OK " in res[-1], "rev1 CREATE in modified UTF-7: %r" % res)
    names = list_names(v2.cmd('LIST "" "*"'))
    r.check(NIHONGO in names, "rev2 sees it in UTF-8: %r" % names)
    # literal, '&', hierarchy, pattern in UTF-8
    name = NIHONGO + b"/R&D"
    v2.send(b"lit CREATE {%d}\r\n" % len(name))
    cont = v2.raw_line()
    v2.send(name + b"\r\n")
    res = v2.until("lit")
    r.check(cont.startswith(b"+") and res[-1].startswith(b"lit OK"),
            "rev2 CREATE with a UTF-8 literal: %r" % res)
    names = list_names(v1.cmd('LIST "" "*"'))
    r.check(NIHONGO7 + b"/R&-D" in names, "'&' is '&-' for rev1: %r" % names)
    res = v2.cmd(b'LIST "" "' + NIHONGO + b'/%"')
    r.check(list_names(res) == [NIHONGO + b"/R&D"], "UTF-8 patterns match UTF-8 names: %r" % res)
    res = v2.cmd(b'LIST "' + NIHONGO + b'/" "*"')
    r.check(list_names(res) == [NIHONGO + b"/R&D"], "and a UTF-8 reference: %r" % res)
    r.check(any(os.path.isdir(os.path.join(user_dir(d), f)) for f in
                (".&ZeVnLIqe-.R&-D",)), "nested on disk: %r" % os.listdir(user_dir(d)))
    # STATUS, SUBSCRIBE / LSUB, APPEND, COPY, RENAME with UTF-8 names
    res = v2.cmd(b'APPEND "' + ENTWURFE + b'" {%d+}\r\n' % len(MSG % b"draft") + (MSG % b"draft"))
    r.check(res[-1].split()[1] == b"OK", "APPEND to a UTF-8 name: %r" % res)
    res = v2.cmd(b'STATUS "' + ENTWURFE + b'" (MESSAGES DELETED SIZE)')
    r.check(re.match(rb'\* STATUS "' + ENTWURFE + rb'" \(MESSAGES 1 SIZE \d+ DELETED 0\)$', res[0])
            is not None, "STATUS answers with the UTF-8 name, DELETED and SIZE: %r" % res)
    res = v1.cmd(b'STATUS "' + ENTWURFE7 + b'" (MESSAGES)')
    r.check(res[0] == b'* STATUS "' + ENTWURFE7 + b'" (MESSAGES 1)', "rev1 STATUS: %r" % res)
    res = v2.cmd(b'STATUS "' + ENTWURFE + b'" (RECENT)')
    r.check(res[-1].split()[1] == b"BAD", "STATUS RECENT is not IMAP4rev2: %r" % res)
    res = v2.cmd(b'SUBSCRIBE "' + ENTWURFE + b'"')
    r.check(res[-1].split()[1] == b"OK", "SUBSCRIBE a UTF-8 name: %r" % res)
    r.check(ENTWURFE in list_names(v2.cmd('LSUB "" "*"')), "LSUB still works, in UTF-8")
    r.check(ENTWURFE7 in list_names(v1.cmd('LSUB "" "*"')), "rev1 LSUB in modified UTF-7")
    res = v2.cmd(b'RENAME "' + ENTWURFE + b'" "Brouillons \xc3\xa9t\xc3\xa9"')
    r.check(res[-1].split()[1] == b"OK", "RENAME to a UTF-8 name: %r" % res)
    names = list_names(v1.cmd('LIST "" "Brouillons*"'))
    r.check(names == [b"Brouillons &AOk-t&AOk-"], "rev1 sees the new name: %r" % names)
    # SELECT of a UTF-8 name; COPY into one
    res = v2.cmd(b'SELECT "Brouillons \xc3\xa9t\xc3\xa9"')
    r.check(res[-1].split()[1] == b"OK" and b'* LIST () "/" "Brouillons \xc3\xa9t\xc3\xa9"' in res,
            "SELECT answers LIST with the UTF-8 name (RFC 9051 §6.3.2): %r" % res)
    r.check(not any(b"RECENT" in l or b"UNSEEN" in l for l in res),
            "and neither RECENT nor UNSEEN: %r" % res)
    res = v2.cmd(b'COPY 1 "' + NIHONGO + b'"')
    r.check(b"[COPYUID" in res[-1], "COPY to a UTF-8 name: %r" % res)
    res = v1.cmd(b"STATUS " + NIHONGO7 + b" (MESSAGES)")
    r.check(res[0].endswith(b"(MESSAGES 1)"), "the copy is there for rev1: %r" % res)
    # LIST-STATUS names the mailbox in UTF-8 too
    res = v2.cmd(b'LIST "" "' + NIHONGO + b'" RETURN (STATUS (MESSAGES DELETED))')
    r.check(b'* STATUS "' + NIHONGO + b'" (MESSAGES 1 DELETED 0)' in res,
            "LIST RETURN (STATUS) in UTF-8: %r" % res)
    # DELETE of a UTF-8 name removes the Maildir++ folder
    res = v2.cmd(b'DELETE "' + NIHONGO + b'/R&D"')
    r.check(res[-1].split()[1] == b"OK" and
            not os.path.isdir(os.path.join(user_dir(d), ".&ZeVnLIqe-.R&-D")),
            "DELETE of a UTF-8 name: %r %r" % (res, os.listdir(user_dir(d))))
    r.check(NIHONGO7 + b"/R&-D" not in list_names(v1.cmd('LIST "" "*"')),
            "gone for rev1 as well")
    # invalid names
    for bad in (b'"\xff\xfe"', b'"Entw\xc3rfe"', b'"\xed\xa0\x80"', b'"\xc0\xaf"'):
        res = v2.cmd(b"CREATE " + bad)
        r.check(res[-1].split()[1] == b"BAD", "CREATE %r (not UTF-8) is BAD: %r" % (bad, res))
    v2.send(b"badlit SELECT {3}\r\n")
    v2.raw_line()
    v2.send(b"a\xc3(\r\n")
    res = v2.until("badlit")
    r.check(res[-1].startswith(b"badlit BAD"), "a literal name not in UTF-8 is BAD: %r" % res)
    res = v2.cmd(b'LIST "" "\xe2\x82*"')
    r.check(res[-1].split()[1] == b"BAD", "a LIST pattern not in UTF-8 is BAD: %r" % res)
    res = v2.cmd(b'CREATE "bell\xc2\x85"')
    r.check(res[-1].split()[1] == b"NO", "a name with a C1 control is refused: %r" % res)
    # rev1 unchanged: 8-bit names are not names there
    res = v1.cmd(b'CREATE "' + ENTWURFE + b'2"')
    r.check(res[-1].split()[1] == b"NO", "rev1 CREATE of raw UTF-8 is refused as before: %r" % res)
    names = list_names(v1.cmd('LIST "" "*"'))
    r.check(all(max(n) < 0x80 for n in names), "rev1 LIST is 7-bit: %r" % names)
    v1.close()
    v2.close()


def test_recent_search(d, r):
    deliver(d, MSG % b"one")
    deliver(d, MSG % b"two")
    v2 = session(d, True)
    res = v2.cmd("SELECT INBOX")
    r.check(res[-1].split()[1] == b"OK" and b'* LIST () "/" "INBOX"' in res,
            "SELECT INBOX: %r" % res)
    r.check(not any(b"RECENT" in l or b"Recent" in l for l in res),
            "no RECENT and no \\Recent in FLAGS / PERMANENTFLAGS: %r" % res)
    n = int([l for l in res if l.endswith(b" EXISTS")][0].split()[1])
    res = v2.cmd("FETCH 1:* (FLAGS)")
    r.check(not any(b"\\Recent" in l for l in res), "FETCH FLAGS without \\Recent: %r" % res)
    res = v2.cmd("SEARCH ALL", tag="s1")
    r.check(res == [b'* ESEARCH (TAG "s1") ALL 1:%d' % n, b"s1 OK SEARCH completed"],
            "SEARCH answers ESEARCH (RFC 9051 §6.4.4): %r" % res)
    res = v2.cmd("UID SEARCH SUBJECT two", tag="s2")
    r.check(len(res) == 2 and re.match(rb'\* ESEARCH \(TAG "s2"\) UID ALL \d+$', res[0]),
            "UID SEARCH too: %r" % res)
    res = v2.cmd("SEARCH SUBJECT nothing-like-it", tag="s3")
    r.check(res == [b'* ESEARCH (TAG "s3")', b"s3 OK SEARCH completed"],
            "no match: ESEARCH without ALL: %r" % res)
    res = v2.cmd("SEARCH RETURN (COUNT) ALL", tag="s4")
    r.check(res[0] == b'* ESEARCH (TAG "s4") COUNT %d' % n, "RETURN still works: %r" % res)
    for key in ("RECENT", "NEW", "OLD"):
        res = v2.cmd("SEARCH " + key)
        r.check(res[-1].split()[1] == b"BAD", "SEARCH %s is not IMAP4rev2: %r" % (key, res))
    # a new message: EXISTS, no RECENT
    deliver(d, MSG % b"three")
    res = v2.cmd("NOOP")
    r.check(b"* %d EXISTS" % (n + 1) in res and not any(b"RECENT" in l for l in res),
            "a new message is EXISTS without RECENT: %r" % res)
    # IDLE: EXISTS without RECENT as well
    v2.send(b"idle IDLE\r\n")
    first = v2.raw_line()
    deliver(d, MSG % b"four")
    lines = [v2.raw_line()]
    v2.send(b"DONE\r\n")
    lines += v2.until("idle")
    r.check(first.startswith(b"+") and lines[0] == b"* %d EXISTS" % (n + 2) and
            not any(b"RECENT" in l for l in lines) and lines[-1].startswith(b"idle OK"),
            "IDLE reports EXISTS without RECENT: %r" % lines)
    n += 1
    # STATUS DELETED
    v2.cmd("STORE 1 +FLAGS.SILENT (\\Deleted)")
    res = v2.cmd("STATUS INBOX (DELETED MESSAGES)")
    r.check(res[0] == b"* STATUS INBOX (MESSAGES %d DELETED 1)" % (n + 1) or
            res[0] == b'* STATUS "INBOX" (MESSAGES %d DELETED 1)' % (n + 1),
            "STATUS DELETED: %r" % res)
    # CLOSED when SELECT replaces the mailbox (RFC 9051 §7.1)
    res = v2.cmd("EXAMINE INBOX")
    r.check(res[0] == b"* OK [CLOSED] Previous mailbox closed",
            "a second SELECT starts with OK [CLOSED]: %r" % res)
    res = v2.cmd('SELECT "no such mailbox"')
    r.check(res[0].startswith(b"* OK [CLOSED]") and res[-1].split()[1] == b"NO",
            "also when the new one fails: %r" % res)
    v2.close()
    # an IMAP4rev1 session is unchanged
    v1 = session(d, False)
    res = v1.cmd("SELECT INBOX")
    r.check(b"* 4 RECENT" in res and
            not any(b"[CLOSED]" in l or l.startswith(b"* LIST") for l in res),
            "rev1 SELECT as before, and the rev2 session left \\Recent to it: %r" % res)
    res = v1.cmd("SEARCH ALL")
    r.check(res[0] == b"* SEARCH 1 2 3 4", "rev1 SEARCH answers SEARCH: %r" % res)
    res = v1.cmd("EXAMINE INBOX")
    r.check(not any(b"[CLOSED]" in l for l in res), "rev1: no CLOSED: %r" % res)
    v1.close()


def main():
    postern = sys.argv[1]
    res = Results()
    with Daemon(postern, roles=("smtp", "imaps")) as d:
        d.add_user(USER, PASSWORD)
        for name, fn in (("enable", test_enable), ("names", test_names),
                         ("recent_search", test_recent_search)):
            res.run(name, lambda fn=fn: fn(d, res))
        log = d.log()
        res.check("imap bug:" not in log, "every command ended with its own tagged reply")
    res.finish()


if __name__ == "__main__":
    main()
