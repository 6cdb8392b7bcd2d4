"""UTF8=ACCEPT (RFC 6855) against the real daemon, exact bytes from the raw
client of imap_protocol.py: CAPABILITY, ENABLE UTF8=ACCEPT and when it
applies (RFC 5161 §3.1), a UTF-8 mailbox name created and listed raw (and
seen in modified UTF-7 by a session that did not enable it), APPEND with
the UTF8 (~{n}) data item (RFC 6855 §4, MULTIAPPEND too, a missing ")" is
BAD), a UTF-8 header found by SEARCH with a UTF-8 quoted string, SEARCH
CHARSET refused with BAD and SORT / THREAD only with UTF-8 (RFC 6855 §3,
errata 4029).

Usage: imap_utf8accept.py /path/to/postern
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
from postern_test import Daemon, Results  # noqa: E402
from imap_protocol import Raw, USER, PASSWORD  # noqa: E402
from imap_rev2 import ENTWURFE, ENTWURFE7, list_names, session as rev2_session  # noqa: E402

GRUSSE = "Gr\u00fc\u00dfe aus K\u00f6ln".encode()   # "Grüße aus Köln"
MSG = (b"From: J\xc3\xbcrgen <j\xc3\xbcrgen@example.test>\r\n"
       b"To: Alice <alice@example.test>\r\n"
       b"Subject: %s\r\n"
       b"Date: Mon, 02 Feb 2026 10:00:00 +0000\r\n"
       b"\r\n"
       b"body text\r\n")


def session(d, utf8):
    """A logged-in IMAP4rev1 session, with UTF8=ACCEPT enabled if utf8."""
    c = rev2_session(d, False)
    if utf8:
        c.cmd("ENABLE UTF8=ACCEPT")
    return c


def test_enable(d, r):
    c = Raw(d.port("imaps"), tls=True)
    res = c.login()
    r.check(b" UTF8=ACCEPT" in res, "login CAPABILITY offers UTF8=ACCEPT: %r" % res)
    res = c.cmd("ENABLE utf8=accept")
    r.check(res == [b"* ENABLED UTF8=ACCEPT", b"r2 OK Enabled"], "ENABLE UTF8=ACCEPT: %r" % res)
    res = c.cmd("ENABLE UTF8=ACCEPT")
    r.check(res[0] == b"* ENABLED", "enabling it again enables nothing new: %r" % res)
    c.close()
    c = session(d, False)
    c.cmd("SELECT INBOX")
    res = c.cmd("ENABLE UTF8=ACCEPT")
    r.check(res[0] == b"* ENABLED", "not once a mailbox was selected: %r" % res)
    c.close()


def test_mailbox(d, r):
    c = session(d, True)
    res = c.cmd(b'CREATE "' + ENTWURFE + b'"')
    r.check(res[-1].startswith(b"r3 OK"), "CREATE with a raw UTF-8 quoted name: %r" % res)
    names = list_names(c.cmd('LIST "" "*"'))
    r.check(ENTWURFE in names and ENTWURFE7 not in names, "LIST shows it raw: %r" % names)
    res = c.cmd(b'STATUS "' + ENTWURFE + b'" (MESSAGES)')
    r.check(res[0] == b'* STATUS "' + ENTWURFE + b'" (MESSAGES 0)', "STATUS by it: %r" % res)
    res = c.cmd(b'CREATE "bad\xff"')
    r.check(b" BAD " in res[-1], "a name that is not UTF-8 is BAD: %r" % res)
    c.close()
    c = session(d, False)
    names = list_names(c.cmd('LIST "" "*"'))
    r.check(ENTWURFE7 in names, "a session without it sees modified UTF-7: %r" % names)
    c.close()
    r.check(os.path.isdir(os.path.join(d.data, "mail", "example.test", "alice",
                                       "." + ENTWURFE7.decode())),
            "on disk it is the modified UTF-7 Maildir++ folder")


def append_utf8(c, tag, mailbox, msgs, close=b")"):
    """APPEND mailbox UTF8 (~{n+}...) per message, non-synchronising."""
    out = tag.encode() + b" APPEND " + mailbox
    for i, m in enumerate(msgs):
        out += b" UTF8 (~{%d+}\r\n" % len(m) + m + (close if i == len(msgs) - 1 else b")")
    c.send(out + b"\r\n")
    return c.until(tag)


def test_append_search(d, r):
    c = session(d, True)
    m1, m2, m3 = MSG % GRUSSE, MSG % b"plain ascii", MSG % b"zweite \xc3\x9cbung"
    res = append_utf8(c, "a1", b'"' + ENTWURFE + b'"', [m1])
    r.check(res[-1].startswith(b"a1 OK [APPENDUID "), "APPEND UTF8 (~{n}): %r" % res)
    res = append_utf8(c, "a2", b'"' + ENTWURFE + b'"', [m2, m3])
    r.check(re.match(rb"a2 OK \[APPENDUID \d+ 2(:3|,3)\]", res[-1]) is not None,
            "MULTIAPPEND of two UTF8 items: %r" % res)
    c.send(b"a5 APPEND INBOX UTF8 (~{%d}\r\n" % len(m1))
    res = c.raw_line()
    r.check(res.startswith(b"+ "), "a synchronising UTF8 literal gets a go-ahead: %r" % res)
    c.send(m1 + b")\r\n")
    res = c.until("a5")
    r.check(res[-1].startswith(b"a5 OK [APPENDUID "), "APPEND UTF8 (~{n}) synchronising: %r" % res)
    c.send(b"a6 APPEND INBOX UTF8 (~{%d+}\r\n" % len(m1) + m1 + b") {%d+}\r\n" % len(m2) +
           m2 + b" UTF8 (~{%d+}\r\n" % len(m3) + m3 + b")\r\n")
    res = c.until("a6")
    r.check(re.match(rb"a6 OK \[APPENDUID \d+ 2(:4|,3,4)\]", res[-1]) is not None,
            "MULTIAPPEND mixing UTF8 and plain literals: %r" % res)
    res = append_utf8(c, "a3", b'"' + ENTWURFE + b'"', [m2], close=b"")
    r.check(res[-1].startswith(b"a3 BAD"), "a UTF8 item without its ) is BAD: %r" % res)
    c.send(b"a4 APPEND INBOX UTF8 ({%d+}\r\n" % len(m2) + m2 + b")\r\n")
    res = c.until("a4")
    r.check(res[-1].startswith(b"a4 BAD"), "UTF8 ( needs a literal8 (~{n}): %r" % res)
    res = c.cmd("NOOP")
    r.check(res[-1].split()[1] == b"OK", "the session goes on: %r" % res)
    res = c.cmd(b'SELECT "' + ENTWURFE + b'"')
    r.check(b"* 3 EXISTS" in res, "three messages: %r" % res)
    res = c.cmd("UID FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
    r.check(any(l == b"Subject: " + GRUSSE + b"\r\n\r\n" for l in res),
            "the UTF-8 header is stored as sent: %r" % res)
    res = c.cmd(b'UID SEARCH SUBJECT "' + "gr\u00fc\u00dfe".encode() + b'"')
    r.check(res[0] == b"* SEARCH 1", "SEARCH SUBJECT with a UTF-8 quoted string: %r" % res)
    res = c.cmd(b'UID SEARCH FROM "j\xc3\xbcrgen" SUBJECT "\xc3\x9cbung"')
    r.check(res[0] == b"* SEARCH 3", "SEARCH FROM and SUBJECT in UTF-8: %r" % res)
    res = c.cmd("UID SEARCH CHARSET UTF-8 ALL")
    r.check(res[-1].split()[1] == b"BAD", "SEARCH CHARSET after ENABLE is BAD: %r" % res)
    res = c.cmd("UID SORT (SUBJECT) US-ASCII ALL")
    r.check(res[-1].split()[1] == b"BAD", "SORT with US-ASCII after ENABLE is BAD: %r" % res)
    res = c.cmd("UID THREAD REFERENCES US-ASCII ALL")
    r.check(res[-1].split()[1] == b"BAD", "THREAD with US-ASCII after ENABLE is BAD: %r" % res)
    res = c.cmd("UID SORT (SUBJECT) UTF-8 ALL")
    r.check(res[0] == b"* SORT 1 2 3", "SORT with UTF-8 works: %r" % res)
    c.close()
    c = session(d, False)
    c.cmd(b'SELECT "' + ENTWURFE7 + b'"')
    res = c.cmd("UID SEARCH CHARSET UTF-8 SUBJECT plain")
    r.check(res[0] == b"* SEARCH 2", "without ENABLE, SEARCH CHARSET is fine: %r" % res)
    c.close()


def main():
    res = Results()
    with Daemon(sys.argv[1], roles=("imaps",)) as d:
        d.add_user(USER, PASSWORD)
        for name, fn in (("enable", test_enable), ("mailbox", test_mailbox),
                         ("append_search", test_append_search)):
            res.run(name, lambda fn=fn: fn(d, res))
        res.check("imap bug:" not in d.log(), "every command ended with its own tagged reply")
    res.finish()


if __name__ == "__main__":
    main()
